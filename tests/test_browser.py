"""A real browser opens the course: JupyterLab + headless Chromium driven by Playwright.

Starts JupyterLab on 127.0.0.1 over a temporary copy of notebook 00 (so nothing is
written into the repository), runs all cells, moves the slider of the widget
round trip, and asserts that the kernel's answer changed on the page. A screenshot
goes to build/browser/. Skipped, with the reason, only when Chromium is absent and
FL_DP_LAB_REQUIRE_BROWSER is unset (CI sets it, so there the test always runs).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = pytest.mark.browser

if CHROMIUM is None and not os.environ.get("FL_DP_LAB_REQUIRE_BROWSER"):
    pytest.skip(
        "Chromium is not installed (Debian: apt-get install chromium); .ci/run installs it",
        allow_module_level=True,
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def jupyterlab(tmp_path):
    """A JupyterLab server on 127.0.0.1 serving a copy of notebook 00; yields its URL."""
    shutil.copy(ROOT / "notebooks" / "00_start_here.ipynb", tmp_path / "00_start_here.ipynb")
    settings = tmp_path / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    # no news or update pop-up over the notebook (and no request to the internet)
    (settings / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )
    # start the notebook's own kernel without asking (a fresh JupyterLab may show a
    # "Select Kernel" dialog otherwise)
    panel = tmp_path / "settings" / "@jupyterlab" / "notebook-extension"
    panel.mkdir(parents=True)
    (panel / "tracker.jupyterlab-settings").write_text(json.dumps({"autoStartDefaultKernel": True}))
    port, token = _free_port(), secrets.token_hex(16)
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}  # inline figures
    env.update(
        JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "workspaces"),
        JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
        JUPYTER_CONFIG_DIR=str(tmp_path / "config"),
    )
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={tmp_path}",
         "--LabApp.news_url="] + (["--allow-root"] if os.geteuid() == 0 else []),
        env=env, stdout=subprocess.DEVNULL, stderr=open(tmp_path / "server.log", "w"),
        start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    log = (tmp_path / "server.log").read_text()
                    pytest.fail(f"JupyterLab did not start:\n{log[-3000:]}")
                time.sleep(0.5)
        yield url, token
    finally:
        _stop(server)


def _stop(server: subprocess.Popen) -> None:
    """Stop the server and every kernel it started (they share its process group)."""
    try:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=20)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


def test_notebook_00_runs_and_its_widget_answers_in_a_real_browser(jupyterlab):
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    url, token = jupyterlab
    shots = ROOT / "build" / "browser"
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            try:
                page.goto(f"{url}/lab/tree/00_start_here.ipynb?token={token}")
                page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=90_000)
                dialog = page.locator(".jp-Dialog button:has-text('Select')")
                with contextlib.suppress(PlaywrightTimeout):
                    dialog.click(timeout=5_000)
                page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']",
                                       timeout=90_000)  # fmt: skip
                # Execute: Run > Run All Cells, then wait for the widget round trip to render
                page.click(".lm-MenuBar-itemLabel:text-is('Run')")
                page.click(".lm-Menu-itemLabel:text-is('Run All Cells')")
                readout = page.wait_for_selector(".fl-dp-lab-readout", timeout=120_000)
                before = readout.inner_text()
                handle = page.wait_for_selector(".widget-slider .noUi-handle")
                handle.focus()
                for _ in range(4):
                    page.keyboard.press("ArrowRight")
                # four steps of 0.25 from x = 1: the kernel must answer for x = 2
                page.wait_for_function(
                    "() => document.querySelector('.fl-dp-lab-readout').innerText"
                    ".startsWith('x = 2.00')",
                    timeout=30_000,
                )
                after = readout.inner_text()
                page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']",
                                       timeout=120_000)  # fmt: skip
                errors = page.locator(
                    ".jp-OutputArea-output[data-mime-type*='stderr']"
                ).all_inner_texts()
                images = page.locator(".jp-OutputArea-output img").count()
                readout.scroll_into_view_if_needed()
                page.screenshot(path=str(shots / "00_start_here.png"))
            except Exception:
                page.screenshot(path=str(shots / "00_start_here_failure.png"))
                raise
        finally:
            browser.close()
    # Assert: the kernel answered the slider, every cell ran, figures rendered
    assert before.startswith("x = 1.00") and after != before and after.startswith("x = 2.00")
    assert not [e for e in errors if "Traceback" in e or "Error" in e], errors
    assert images >= 2
