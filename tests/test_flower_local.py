"""Integration tests of scripts/flower_local.sh: Flower's Deployment Engine on 127.0.0.1.

The script starts a SuperLink and SuperNodes, runs the app with ``flwr run``
and must stop every process it started, also when it fails or is
interrupted. Ports are picked free by the operating system, so the tests do
not clash with other Flower processes on the machine. Every run has a time
limit, and the ``out`` fixture kills any process still using the run's folder
at teardown, so a failing test cannot leave a SuperLink or SuperNode behind.
"""

from __future__ import annotations

import contextlib
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


def _stop(folder: Path) -> None:
    """Kill whatever of a run is still alive: the test's own safety net after a failure."""
    for process in _processes_using(folder):
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()


def _run_script(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    """Run the script; past ``timeout`` send it SIGTERM (its trap stops its processes), then fail."""
    process = subprocess.Popen(
        [str(SCRIPT), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGTERM)
        try:
            process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
        pytest.fail(f"{SCRIPT.name} {' '.join(args)} did not finish in {timeout} s")
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


@pytest.fixture
def out(tmp_path):
    """The run's output folder; every process still using it is killed at teardown."""
    folder = tmp_path / "run"
    yield folder
    _stop(folder)


def test_local_deployment_runs_the_app_and_stops_everything(out):
    # Prepare: 2 SuperNodes, 1 round with every client, a bounded run
    args = [
        "-n",
        "2",
        "-t",
        "240",
        "-o",
        str(out),
        "-c",
        "num-rounds=1 sample-rate=1.0 timeout=200.0",
    ]
    # Execute
    completed = _run_script(args, timeout=300)
    # Assert: the run finished, both partitions trained, nothing is left running
    assert completed.returncode == 0, completed.stderr[-3000:]
    history = json.loads((out / "history.json").read_text())
    assert history["round"] == [1] and history["clients"] == [2]
    assert history["partitions"] == [0, 1]
    assert 0.0 < history["accuracy"][0] <= 1.0
    assert "round 1: 2 of 2 clients sampled" in completed.stdout
    assert _wait_until_gone(out) == []


def test_interrupt_stops_every_process(out):
    # Prepare: start a long run, wait until `flwr run` has submitted it (the script,
    # the SuperLink, 2 SuperNodes and `flwr run` all mention the output folder)
    errors = out.parent / "script.stderr"
    with errors.open("w") as stderr:
        process = subprocess.Popen(
            [str(SCRIPT), "-n", "2", "-t", "240", "-o", str(out), "-c", "num-rounds=50"],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            # a shell cannot trap a signal it was started with ignored, and an earlier test in
            # this worker (Ray, a kernel) may have left SIGINT ignored: start from a terminal's state
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )

    def running() -> bool:
        return (out / "flwr_run.log").exists() and len(_processes_using(out)) >= 5

    deadline = time.monotonic() + 120
    while not running() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert running(), "SuperLink, SuperNodes and flwr run did not start"
    # Execute: Ctrl-C
    os.kill(process.pid, signal.SIGINT)
    try:
        status = process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        left = _processes_using(out)
        pytest.fail(
            f"the script did not stop within 60 s of Ctrl-C; still running: {left}; "
            f"its stderr: {errors.read_text()[-2000:]}"
        )
    # Assert
    assert status != 0
    assert _wait_until_gone(out) == []


def test_a_run_past_its_time_limit_fails_and_stops_everything(out):
    # Prepare: 50 rounds cannot finish in 8 s (starting the processes alone takes longer)
    args = ["-n", "2", "-t", "8", "-o", str(out), "-c", "num-rounds=50"]
    # Execute
    completed = _run_script(args, timeout=120)
    # Assert: a failure exit status, a reason on stderr, and nothing left running
    assert completed.returncode == 1
    assert "flower_local:" in completed.stderr and "stopped" in completed.stderr
    assert not (out / "history.json").exists()
    assert _wait_until_gone(out) == []


def test_bad_arguments_fail_fast_and_start_nothing(tmp_path):
    completed = _run_script(["-n", "zero", "-o", str(tmp_path / "run")], timeout=30)
    assert completed.returncode == 2
    assert "-n must be a positive integer" in completed.stderr
    assert _processes_using(tmp_path) == []
