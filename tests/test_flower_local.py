"""Integration tests of scripts/flower_local.sh: Flower's Deployment Engine on 127.0.0.1.

The script starts a SuperLink and SuperNodes, runs the app with ``flwr run``
and must stop every process it started, also when it fails or is
interrupted. Ports are picked free by the operating system, so the tests do
not clash with other Flower processes on the machine.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "flower_local.sh"

pytestmark = pytest.mark.flower


def _processes_using(folder: Path) -> list[psutil.Process]:
    """Live processes whose command line or environment mentions ``folder``."""
    found = []
    for process in psutil.process_iter(["cmdline", "status"]):
        try:
            if process.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            text = " ".join(process.info["cmdline"] or [])
            if str(folder) in text or str(folder) in process.environ().get("FLWR_HOME", ""):
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def _wait_until_gone(folder: Path, timeout: float = 15.0) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout
    while (left := _processes_using(folder)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return left


def test_local_deployment_runs_the_app_and_stops_everything(tmp_path):
    # Prepare: 2 SuperNodes, 1 round with every client, a bounded run
    out = tmp_path / "run"
    # Execute
    completed = subprocess.run(
        [str(SCRIPT), "-n", "2", "-t", "240", "-o", str(out), "-c", "num-rounds=1 sample-rate=1.0"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    # Assert: the run finished, both partitions trained, nothing is left running
    assert completed.returncode == 0, completed.stderr[-3000:]
    history = json.loads((out / "history.json").read_text())
    assert history["round"] == [1] and history["clients"] == [2]
    assert history["partitions"] == [0, 1]
    assert 0.0 < history["accuracy"][0] <= 1.0
    assert "round 1: 2 of 2 clients sampled" in completed.stdout
    assert _wait_until_gone(out) == []


def test_interrupt_stops_every_process(tmp_path):
    # Prepare: start a long run, wait until the SuperNodes are up
    out = tmp_path / "run"
    process = subprocess.Popen(
        [str(SCRIPT), "-n", "2", "-t", "240", "-o", str(out), "-c", "num-rounds=50"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while len(_processes_using(out)) < 3 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert len(_processes_using(out)) >= 3, "SuperLink and SuperNodes did not start"
    # Execute: Ctrl-C
    os.kill(process.pid, signal.SIGINT)
    status = process.wait(timeout=60)
    # Assert
    assert status != 0
    assert _wait_until_gone(out) == []


def test_bad_arguments_fail_fast_and_start_nothing(tmp_path):
    completed = subprocess.run(
        [str(SCRIPT), "-n", "zero", "-o", str(tmp_path / "run")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert completed.returncode == 2
    assert "-n must be a positive integer" in completed.stderr
    assert _processes_using(tmp_path) == []
