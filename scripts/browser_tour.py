"""Take the course in a real browser and time every dashboard: JupyterLab + headless Chromium.

    python scripts/browser_tour.py                    # every notebook: stderr, latency table
    python scripts/browser_tour.py 05b 06 --sweep     # some notebooks, every slider stop

Copies the notebooks to a temporary folder, starts JupyterLab there on 127.0.0.1 (no
autosave, every cell attached to the page) and, for each notebook in turn, opens it,
runs Run > Run All Cells, waits until every code cell has run and collects every
stderr output the page shows. Then, in every dashboard (a widget carrying the CSS class
``fl-dp-lab-dashboard``), it presses Home and End on each slider, then arrow keys away
from the nearer end and back (with ``--sweep``: every stop from Home to End and from End
to Home), puts the slider back where it started, and clicks each toggle button. It times
each press from the key event to the moment the dashboard's new figure (the ``img`` in
its ``fl-dp-lab-figure``) is decoded and painted, measured in the page with
``performance.now()``, and to the last figure painted before the kernel is idle again
("settled": later than the first only where a dashboard shows a partial figure first).
The kernel of each notebook is shut down before the next one opens. Screenshots of
each dashboard go to ``build/browser/``.

``tests/test_browser.py`` runs this tour in ``make test``; ``benchmarks/dashboard_latency.py``
prints the same table with more presses. Needs Chromium (Debian: ``apt-get install
chromium``) and the ``playwright`` package.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
SHOTS = ROOT / "build" / "browser"
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
#: The issue's target for a redraw, key press to new figure on screen.
TARGET_MEDIAN_MS, TARGET_MAX_MS = 100.0, 250.0

# In the page: remember when a key goes down or a button is pressed; when a dashboard's
# figure gets a new image, wait for it to decode and for the next frame, then stop the clock.
_INSTRUMENT = """() => {
  const clock = window.__flClock = {start: 0, stop: 0, last: 0};
  const begin = () => { clock.start = performance.now(); clock.stop = 0; clock.last = 0; };
  document.addEventListener('keydown', begin, true);
  document.addEventListener('mousedown', begin, true);
  const shown = (img) => {
    if (!clock.start) return;
    img.decode().catch(() => null).then(() => requestAnimationFrame(() => {
      if (!clock.start) return;
      if (!clock.stop) clock.stop = performance.now();
      clock.last = performance.now();  // a later image (the final figure) moves this on
    }));
  };
  for (const figure of document.querySelectorAll('.fl-dp-lab-figure')) {
    new MutationObserver((records) => {
      for (const r of records) {
        if (r.type === 'attributes' && r.target.tagName === 'IMG') shown(r.target);
        for (const node of r.addedNodes || []) {
          const img = node.tagName === 'IMG' ? node
            : node.querySelector && node.querySelector('img');
          if (img) shown(img);
        }
      }
    }).observe(figure, {subtree: true, childList: true, attributes: true,
                        attributeFilter: ['src']});
    if (figure.tagName === 'IMG') {
      new MutationObserver(() => shown(figure)).observe(
        figure, {attributes: true, attributeFilter: ['src']});
    }
  }
}"""

# Every code cell shows an execution count. A solution cell whose input is collapsed shows
# an empty prompt (before and after it runs), so it is left to the kernel's idle state that
# follows; an unrun cell shows "[ ]" and a running one "[*]".
_ALL_RAN = """() => {
  const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')]
    .map(p => p.textContent.trim()).filter(t => t !== '');
  return prompts.length > 0 && prompts.every(t => /\\[\\d+\\]/.test(t));
}"""


@dataclass
class Control:
    """One slider or toggle button of a dashboard and its redraw times, in ms.

    ``latencies_ms``: key press to the first new figure on screen; ``settled_ms``: key
    press to the last figure drawn before the kernel went idle (the same, unless the
    dashboard shows a partial figure first and the full one after it).
    """

    dashboard: int
    label: str
    latencies_ms: list[float] = field(default_factory=list)
    missed: int = 0  # presses after which the figure did not change within the wait
    settled_ms: list[float] = field(default_factory=list)

    @property
    def settled_median_ms(self) -> float:
        return statistics.median(self.settled_ms) if self.settled_ms else float("nan")

    @property
    def settled_max_ms(self) -> float:
        return max(self.settled_ms) if self.settled_ms else float("nan")

    @property
    def median_ms(self) -> float:
        return statistics.median(self.latencies_ms) if self.latencies_ms else float("nan")

    @property
    def max_ms(self) -> float:
        return max(self.latencies_ms) if self.latencies_ms else float("nan")


@dataclass
class NotebookTour:
    """What one notebook showed in the browser."""

    name: str
    run_seconds: float
    stderr: list[str]
    dashboards: int
    controls: list[Control]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _settings(folder: Path) -> None:
    """JupyterLab settings for an unattended run: no news, no dialogs, no autosave."""
    files = {
        # no news or update pop-up over the notebook (and no request to the internet)
        "apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
        # start the notebook's kernel without a "Select Kernel" dialog; attach every cell
        # to the page, so each prompt and output can be read
        "notebook-extension/tracker": {"autoStartDefaultKernel": True, "windowingMode": "none"},
        # the run must not write outputs into the copied notebooks while it goes
        "docmanager-extension/plugin": {"autosave": False},
    }
    for name, values in files.items():
        path = folder / "@jupyterlab" / f"{name}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))


@contextlib.contextmanager
def jupyterlab(root: Path) -> Iterator[tuple[str, str]]:
    """A JupyterLab server on 127.0.0.1 serving ``root``; yields ``(url, token)``.

    The server and every kernel it started are stopped on exit (they share a
    process group). Its log is ``root/server.log``.
    """
    _settings(root / ".settings")
    port, token = _free_port(), secrets.token_hex(16)
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}  # inline figures
    env.update(
        JUPYTERLAB_SETTINGS_DIR=str(root / ".settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(root / ".workspaces"),
        JUPYTER_RUNTIME_DIR=str(root / ".runtime"),
        JUPYTER_CONFIG_DIR=str(root / ".config"),
    )
    log = root / "server.log"
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
         "--LabApp.news_url="] + (["--allow-root"] if os.geteuid() == 0 else []),
        env=env, stdout=subprocess.DEVNULL, stderr=log.open("w"), start_new_session=True,
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
                    tail = log.read_text()[-3000:]
                    raise RuntimeError(f"JupyterLab did not start:\n{tail}") from None
                time.sleep(0.5)
        yield url, token
    finally:
        _stop(server)


def _stop(server: subprocess.Popen) -> None:
    try:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=20)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


def _shutdown_kernels(url: str, token: str) -> None:
    """Shut down every running kernel, so each notebook starts in a fresh one."""
    headers = {"Authorization": f"token {token}"}
    with urllib.request.urlopen(urllib.request.Request(f"{url}/api/kernels", headers=headers)) as r:
        kernels = json.load(r)
    for kernel in kernels:
        request = urllib.request.Request(
            f"{url}/api/kernels/{kernel['id']}", method="DELETE", headers=headers
        )
        with contextlib.suppress(OSError):
            urllib.request.urlopen(request, timeout=30)


def _wait_idle(page, timeout_ms: int = 120_000) -> None:
    """Wait until the notebook's kernel is idle (the toolbar and status bar both say so)."""
    page.wait_for_function(
        """() => {
          const marks = [...document.querySelectorAll('.jp-Notebook-ExecutionIndicator')];
          return marks.length > 0 && marks.every(m => m.dataset.status === 'idle');
        }""",
        timeout=timeout_ms,
        polling=100,
    )


def _timed(page, act, wait_ms: int) -> tuple[float, float] | None:
    """Do ``act()``; return ms from its input event to the first and to the last new
    figure painted before the kernel went idle, or None if none came."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page.evaluate("() => { Object.assign(window.__flClock, {start: 0, stop: 0, last: 0}); }")
    act()
    try:
        page.wait_for_function("() => window.__flClock.stop > 0", timeout=wait_ms)
    except PlaywrightTimeout:
        return None
    finally:
        _wait_idle(page)
    page.wait_for_timeout(50)  # the last image's decode and frame, after the idle message
    return page.evaluate(
        "() => { const c = window.__flClock; return [c.stop - c.start, c.last - c.start]; }"
    )


def _record(control: Control, timed: tuple[float, float] | None) -> None:
    if timed is None:
        control.missed += 1
    else:
        control.latencies_ms.append(timed[0])
        control.settled_ms.append(timed[1])


def _drive_slider(page, slider, control: Control, presses: int, sweep: bool) -> None:
    """Home, End, then arrows from the end nearer the start value and back; with
    ``sweep``, every stop from Home to End and from End to Home. Each press is timed.

    The slider is then put back at its start value (untimed), so the next slider of the
    dashboard is driven from the dashboard's own start state.
    """
    handle = slider.locator(".noUi-handle").first

    def now() -> float:
        return float(handle.get_attribute("aria-valuenow"))

    start = now()
    low = float(handle.get_attribute("aria-valuemin"))
    high = float(handle.get_attribute("aria-valuemax"))
    near_low = start - low <= high - start
    keys = ["Home", "End"]  # the far ends first: a learner drags there
    keys += ["Home" if near_low else "End"]  # back to the nearer end
    keys += ["ArrowRight" if near_low else "ArrowLeft"] * presses
    keys += ["ArrowLeft" if near_low else "ArrowRight"] * presses
    if sweep:
        keys += ["Home"] + ["ArrowRight"] * 1000 + ["End"] + ["ArrowLeft"] * 1000
    for key in keys:
        value = now()
        if key == "ArrowRight" and value >= high or key == "ArrowLeft" and value <= low:
            continue  # at that end already (a sweep's 1000 presses stop here)
        if key in ("Home", "End") and value == (low if key == "Home" else high):
            continue  # no change, no redraw to time
        handle.focus()
        _record(control, _timed(page, lambda key=key: page.keyboard.press(key), wait_ms=30_000))
    _return_to(page, handle, start, now, low, high)


def _return_to(page, handle, start: float, now, low: float, high: float) -> None:
    """Arrow the handle back to ``start`` (untimed; each press still waits for the kernel)."""
    for _ in range(1000):
        value = now()
        if abs(value - start) <= 1e-9 * max(1.0, abs(start)):
            return
        handle.focus()
        page.keyboard.press("ArrowRight" if value < start else "ArrowLeft")
        _wait_idle(page)
        if now() == value:  # no move possible (an end): give up rather than spin
            return


def tour_notebook(page, url: str, token: str, name: str, *, presses: int = 3,
                  sweep: bool = False) -> NotebookTour:  # fmt: skip
    """Open ``name`` (a copy in the server's root), run it, drive its dashboards."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    # a workspace of its own, so the tabs of the notebooks before it are not restored
    page.goto(f"{url}/lab/workspaces/tour-{Path(name).stem}/tree/{name}?token={token}")
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=90_000)
    with contextlib.suppress(PlaywrightTimeout):  # in case the kernel dialog shows anyway
        page.locator(".jp-Dialog button:has-text('Select')").click(timeout=3_000)
    _wait_idle(page, 90_000)
    start = time.monotonic()
    page.click(".lm-MenuBar-itemLabel:text-is('Run')")
    page.click(".lm-Menu-itemLabel:text-is('Run All Cells')")
    page.wait_for_function(_ALL_RAN, timeout=300_000, polling=250)
    _wait_idle(page, 300_000)
    run_seconds = time.monotonic() - start
    stderr = page.locator(
        ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
    ).all_inner_texts()
    page.evaluate(_INSTRUMENT)
    controls: list[Control] = []
    dashboards = page.locator(".fl-dp-lab-dashboard")
    for index in range(dashboards.count()):
        dashboard = dashboards.nth(index)
        dashboard.scroll_into_view_if_needed()
        sliders = dashboard.locator(".widget-slider")
        for k in range(sliders.count()):
            slider = sliders.nth(k)
            label = slider.locator(".widget-label").first.inner_text().strip() or f"slider {k}"
            control = Control(index, label)
            _drive_slider(page, slider, control, presses, sweep)
            controls.append(control)
        toggles = dashboard.locator(".widget-toggle-buttons")
        for k in range(toggles.count()):
            buttons = toggles.nth(k).locator("button")
            for b in range(buttons.count()):
                button = buttons.nth(b)
                if "mod-active" in (button.get_attribute("class") or ""):
                    continue
                control = Control(index, f"button {button.inner_text().strip()}")
                _record(control, _timed(page, button.click, wait_ms=30_000))
                controls.append(control)
            buttons.first.click()  # back to where it started, for the next control
            _wait_idle(page)
        SHOTS.mkdir(parents=True, exist_ok=True)
        dashboard.screenshot(path=str(SHOTS / f"{Path(name).stem}_dashboard{index}.png"))
    stderr += page.locator(
        ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
    ).all_inner_texts()[len(stderr) :]
    return NotebookTour(name, run_seconds, stderr, dashboards.count(), controls)


def notebook_names(prefixes: Sequence[str] = ()) -> list[str]:
    """The course's notebook file names starting with any of ``prefixes`` (none: all)."""
    names = sorted(p.name for p in NOTEBOOKS.glob("[0-9][0-9]*_*.ipynb"))
    return [n for n in names if not prefixes or any(n.startswith(a) for a in prefixes)]


def tour(names: Sequence[str] | None = None, *, presses: int = 3,
         sweep: bool = False) -> list[NotebookTour]:  # fmt: skip
    """Run the tour over ``names`` (notebook file names; default: all)."""
    from playwright.sync_api import sync_playwright

    if CHROMIUM is None:
        raise RuntimeError("Chromium is not installed (Debian: apt-get install chromium)")
    names = list(names) if names else notebook_names()
    results = []
    with tempfile.TemporaryDirectory(prefix="fl-dp-lab-tour-") as folder:
        root = Path(folder)
        for name in names:
            shutil.copy(NOTEBOOKS / name, root / name)
        with jupyterlab(root) as (url, token), sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                for name in names:
                    page = browser.new_page(viewport={"width": 1400, "height": 1000})
                    try:
                        results.append(tour_notebook(page, url, token, name, presses=presses,
                                                     sweep=sweep))  # fmt: skip
                    except Exception:
                        SHOTS.mkdir(parents=True, exist_ok=True)
                        page.screenshot(path=str(SHOTS / f"{Path(name).stem}_failure.png"))
                        raise
                    finally:
                        page.close()
                        _shutdown_kernels(url, token)
            finally:
                browser.close()
    return results


def table(results: Sequence[NotebookTour]) -> str:
    """The latency table: one row per control, with the target's verdict."""
    rows = [f"{'notebook':<34} {'control':<22} {'n':>3} {'median ms':>10} {'max ms':>8}  "
            f"{'target':<6}  {'settled median':>14} {'max':>6}"]  # fmt: skip
    for result in results:
        if not result.controls:
            rows.append(f"{result.name:<34} {'(no dashboard)':<22}")
        for c in result.controls:
            ok = c.median_ms <= TARGET_MEDIAN_MS and c.max_ms <= TARGET_MAX_MS and not c.missed
            verdict = "ok" if ok else "MISSED" if c.missed else "over"
            rows.append(f"{result.name:<34} {c.label[:22]:<22} {len(c.latencies_ms):>3} "
                        f"{c.median_ms:>10.0f} {c.max_ms:>8.0f}  {verdict:<6}  "
                        f"{c.settled_median_ms:>14.0f} {c.settled_max_ms:>6.0f}")  # fmt: skip
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", help="notebook numbers or names (default: all)")
    parser.add_argument("--presses", type=int, default=3, help="arrow presses each way")
    parser.add_argument("--sweep", action="store_true", help="also visit every slider stop")
    args = parser.parse_args()
    names = notebook_names(args.notebooks)
    results = tour(names, presses=args.presses, sweep=args.sweep)
    for result in results:
        print(f"{result.name}: ran in {result.run_seconds:.1f} s, "
              f"{len(result.stderr)} stderr output(s)")  # fmt: skip
        for text in result.stderr:
            print("    " + text.strip().replace("\n", "\n    ")[:2000])
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
