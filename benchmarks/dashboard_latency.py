"""Time every dashboard of the course in a real browser, key press to new figure on screen.

Runs the tour of ``scripts/browser_tour.py``: JupyterLab on 127.0.0.1 over copies of the
notebooks and headless Chromium through Playwright. In each notebook it runs all cells,
then presses arrow keys on every slider of every dashboard (``--presses`` each way, from
the nearer end) and clicks every toggle button, and times each press from the key event
to the moment the dashboard's new figure is decoded and painted (``performance.now()``
in the page, so it includes the kernel's redraw, the widget message and the browser's
decode). Prints one row per control (presses timed, median and max ms, the target's
verdict) and one per dashboard (the median and max over all its presses). The target is
a median of 100 ms and a max of 250 ms per redraw; this is a measurement and exits 0
whatever the verdicts are (the tests never assert speed). Needs Chromium (Debian:
``apt-get install chromium``) and ``playwright``; all 12 notebooks take a few minutes.

    python benchmarks/dashboard_latency.py                 # every notebook, 5 presses each way
    python benchmarks/dashboard_latency.py 02 04           # some notebooks (numbers or names)
    python benchmarks/dashboard_latency.py 05 --sweep      # also every slider stop, end to end
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _load_tour():
    """scripts/browser_tour.py as a module (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location(
        "browser_tour", ROOT / "scripts" / "browser_tour.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


browser_tour = _load_tour()


def dashboard_summary(results) -> str:
    """One row per dashboard: median and max over all presses of all its controls."""
    median_ms, max_ms = browser_tour.TARGET_MEDIAN_MS, browser_tour.TARGET_MAX_MS
    rows = [
        f"per dashboard (target: median <= {median_ms:.0f} ms, max <= {max_ms:.0f} ms)",
        f"{'notebook':<34} {'dashboard':>9} {'n':>4} {'missed':>6} {'median ms':>10} "
        f"{'max ms':>8}  target",
    ]
    for result in results:
        for index in range(result.dashboards):
            controls = [c for c in result.controls if c.dashboard == index]
            times = [t for c in controls for t in c.latencies_ms]
            missed = sum(c.missed for c in controls)
            median = statistics.median(times) if times else float("nan")
            worst = max(times) if times else float("nan")
            ok = bool(times) and not missed and median <= median_ms and worst <= max_ms
            rows.append(
                f"{result.name:<34} {index:>9} {len(times):>4} {missed:>6} "
                f"{median:>10.0f} {worst:>8.0f}  {'ok' if ok else 'over'}"
            )
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", help="notebook numbers or names (default: all)")
    parser.add_argument("--presses", type=int, default=5, help="arrow presses each way (default 5)")
    parser.add_argument("--sweep", action="store_true", help="also visit every slider stop")
    args = parser.parse_args()
    names = browser_tour.notebook_names(args.notebooks)
    if not names:
        parser.error(f"no notebook matches {args.notebooks}")
    results = browser_tour.tour(names, presses=args.presses, sweep=args.sweep)
    for result in results:
        print(
            f"{result.name}: ran in {result.run_seconds:.1f} s, {result.dashboards} dashboard(s), "
            f"{len(result.stderr)} stderr output(s)"
        )
    print()
    print(browser_tour.table(results))
    print()
    print(dashboard_summary(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
