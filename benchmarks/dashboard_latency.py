"""Time every dashboard of the course in a real browser, key press to new figure on screen.

Runs the tour of ``scripts/browser_tour.py``: JupyterLab on 127.0.0.1 over copies of the
notebooks and headless Chromium through Playwright. In each notebook it runs all cells,
then presses Home and End on every slider of every dashboard, then arrow keys
(``--presses`` each way, from the nearer end; with ``--sweep`` every stop from Home to End
and from End to Home) and clicks every toggle button, and times each press from the key
event to the moment the dashboard's new figure is decoded and painted (``performance.now()``
in the page, so it includes the kernel's redraw, the widget message and the browser's
decode). Prints one row per control (presses timed, median and max ms, the target's
verdict) and one per dashboard (the median and max over all its presses). The target is
a median of 100 ms and a max of 250 ms per redraw; this is a measurement and exits 0
whatever the verdicts are (the tests never assert speed). Needs Chromium (Debian:
``apt-get install chromium``) and ``playwright``; all the notebooks take a few minutes.

    python benchmarks/dashboard_latency.py                 # every notebook, 5 presses each way
    python benchmarks/dashboard_latency.py 02 04           # some notebooks (numbers or names)
    python benchmarks/dashboard_latency.py 05b --sweep     # also every slider stop, end to end
    python benchmarks/dashboard_latency.py --kernel        # the redraws in Python, no browser

``--kernel`` times the kernel's side alone, in this process: it builds the slider
dashboards of notebooks 01, 02, 04, 05b, 06-09b and 12 (those built from training runs get made-up
runs on the notebooks' grids, and 06 random gradients of its model's size: the same
figures, no training) and sets each slider to Home, End, then every stop up and every
stop down (05b's q and T also at sigma = 0.2, where epsilon is slowest), and each toggle
to each option, timing each change to the first figure rendered (JPEG bytes ready to
send) and to the last one, and printing the figure's size, the median JPEG bytes a
redraw sends, and how many redraws drew the whole figure or only its changed panels.
It is less affected by a loaded machine than the browser's numbers and leaves out the
widget messages and the browser's decode.
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
        f"{'max ms':>8}  {'target':<6}  {'settled median':>14} {'max':>6}",
    ]
    for result in results:
        for index in range(result.dashboards):
            controls = [c for c in result.controls if c.dashboard == index]
            times = [t for c in controls for t in c.latencies_ms]
            settled = [t for c in controls for t in c.settled_ms] or [float("nan")]
            missed = sum(c.missed for c in controls)
            median = statistics.median(times) if times else float("nan")
            worst = max(times) if times else float("nan")
            ok = bool(times) and not missed and median <= median_ms and worst <= max_ms
            rows.append(
                f"{result.name:<34} {index:>9} {len(times):>4} {missed:>6} "
                f"{median:>10.0f} {worst:>8.0f}  {'ok' if ok else 'over':<6}  "
                f"{statistics.median(settled):>14.0f} {max(settled):>6.0f}"
            )
    return "\n".join(rows)


def _kernel_dashboards() -> dict:
    """Notebook number -> a function building that notebook's dashboard from cheap inputs.

    Notebooks 02, 06-09b and 12 build theirs from training runs; here 06 gets random
    per-sample gradients of its MLP's size and the others made-up histories on the
    notebooks' grids (same sliders, same figures: the redraw never trains).
    """
    import math

    import numpy as np
    import torch

    from fl_dp_lab.data import dirichlet_partition
    from fl_dp_lab.federated import FederatedHistory
    from fl_dp_lab.opacus_bridge import SweepResult
    from fl_dp_lab.training import History
    from fl_dp_lab.widgets.accounting import accounting_dashboard
    from fl_dp_lab.widgets.dpsgd import clipping_dashboard
    from fl_dp_lab.widgets.federated import dirichlet_dashboard, dp_fedavg_dashboard
    from fl_dp_lab.widgets.mechanisms import gaussian_dashboard
    from fl_dp_lab.widgets.numdiff import step_size_explorer
    from fl_dp_lab.widgets.opacus import sweep_dashboard
    from fl_dp_lab.widgets.populations import scale_dashboard
    from fl_dp_lab.widgets.training import learning_rate_explorer
    from fl_dp_lab.widgets.trust import trust_dashboard

    def federated(accuracy: float, eps: float, rounds: int) -> FederatedHistory:
        grow = [1 - 0.7 ** (r + 1) for r in range(rounds)]
        return FederatedHistory(
            round=list(range(1, rounds + 1)), loss=[1.0] * rounds,
            accuracy=[accuracy * g for g in grow], clients=[10] * rounds,
            epsilon=[eps * (r + 1) / rounds for r in range(rounds)], clip_norm=[1.0] * rounds,
        )  # fmt: skip

    def training():  # notebook 02: 7 rates x 3 batch sizes, 5 epochs each
        rates, sizes = [0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0], [16, 64, 256]
        runs = {}
        for i, lr in enumerate(rates):
            for j, size in enumerate(sizes):
                loss = [2.3 * 0.5 ** ((e + 1) * (i + 1) / (j + 1)) + 0.05 for e in range(5)]
                accuracy = [min(0.97, 0.5 + 0.08 * (e + 1) * (i + 1) / (j + 1)) for e in range(5)]
                runs[(lr, size)] = History([1, 2, 3, 4, 5], loss, [0.0] * 5, accuracy)
        runs[(10.0, 16)].train_loss[-2:] = [math.inf, math.nan]  # a diverged run
        return learning_rate_explorer(runs, lr=0.1, batch_size=64)

    def clipping():  # per-sample norms spread around 1, as an MLP's at the start of training
        generator = torch.Generator().manual_seed(0)
        grads = torch.randn(64, 784 * 128 + 128 + 128 * 10 + 10, generator=generator)
        norms = torch.exp(0.6 * torch.randn(64, 1, generator=generator))
        grads = grads / grads.norm(dim=1, keepdim=True) * norms
        return clipping_dashboard(grads, sample_rate=0.128, steps=64, seed=0)

    def sweep():
        sigmas, norms = np.array([0.0, 0.5, 1.0, 2.0]), np.array([0.1, 1.0, 3.0])
        accuracy = 0.9 - 0.05 * sigmas[:, None] * (1 + np.arange(3))[None, :] / 3
        epsilons = np.array([np.inf, 12.0, 3.0, 1.0])
        result = SweepResult(sigmas, norms, accuracy, epsilons, 0.9, 1e-5, 1 / 16, 32)
        return sweep_dashboard(result, noise_multiplier=1.0, max_grad_norm=1.0)

    def dirichlet():  # notebook 08: 1,437 digits on 10 clients, 5 alphas, 20 rounds each
        labels = np.random.default_rng(0).integers(0, 10, 1437)
        alphas = [0.05, 0.1, 0.3, 1.0, 100.0]
        partitions = {a: dirichlet_partition(labels, 10, alpha=a, seed=0) for a in alphas}
        histories = {a: federated(0.6 + 0.06 * i, math.inf, 20) for i, a in enumerate(alphas)}
        return dirichlet_dashboard(labels, partitions, histories, alpha=0.1)

    def dp_fedavg():  # notebook 09: sigma x C x clients a round, 10 rounds each
        sweep = {
            (s, c, m): federated(0.4 - 0.05 * s + 0.001 * m, 20 / s if s else math.inf, 10)
            for s in (0.0, 0.5, 1.0, 2.0) for c in (0.5, 1.0, 2.0) for m in (25, 50, 100)
        }  # fmt: skip
        return dp_fedavg_dashboard(sweep, delta=1e-5, max_epsilon=20.0)

    def populations():  # notebook 09b: 3 targets x 4 populations, 15 rounds each
        runs = {(t, k): federated(0.7 + 0.01 * t + 0.005 * math.log10(k), t, 15)
                for t in (1.0, 2.0, 4.0) for k in (10**3, 10**4, 10**5, 10**6)}  # fmt: skip
        return scale_dashboard(runs, federated(0.76, math.inf, 15), epsilon=2.0,
                               num_clients=10**6)  # fmt: skip

    def trust():  # notebook 12: 3 models x 3 epsilons x 3 clients a round
        models = {"local": 0.2, "central": 0.7, "distributed": 0.69}
        accuracy = {(model, e, m): base + 0.02 * math.log(e) + 0.0005 * m
                    for model, base in models.items() for e in (1.0, 4.0, 16.0)
                    for m in (10, 30, 100)}  # fmt: skip
        no_noise = {10: 0.8, 30: 0.82, 100: 0.85}
        return trust_dashboard(accuracy, no_noise, chance=0.11, epsilon=4.0, num_clients=100)

    return {
        "01": lambda: step_size_explorer(np.sin, np.cos, x=1.0, h=1e-2),
        "02": training,
        "04": gaussian_dashboard,
        "05b": accounting_dashboard,
        "06": clipping,
        "07": sweep,
        "08": dirichlet,
        "09": dp_fedavg,
        "09b": populations,
        "12": trust,
    }


def _selected(builds: dict, names: list[str]) -> list[str]:
    """The dashboards ``names`` asks for: "09" is notebook 09, "09b" 09b, "05b_subsampling" 05b."""
    if not names:
        return list(builds)
    return [n for n in builds if any(a == n or a.startswith(n + "_") for a in names)]


def kernel_sweep(names: list[str]) -> str:
    """Time every slider stop (and toggle) of the dashboards' redraws in this process."""
    import time

    import ipywidgets as widgets
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from fl_dp_lab import plots
    from fl_dp_lab.widgets import _output

    rendered: list[float] = []
    sizes: list[int] = []
    render, draw = _output.figure_jpeg, FigureCanvasAgg.draw
    full: list[int] = []

    def counted_draw(canvas):
        full.append(1)
        return draw(canvas)

    some = getattr(plots, "_draw_stale_axes", None)  # panels redrawn alone, where there is that
    panels: list[int] = []

    def counted_panels(canvas, fig, blit):
        drawn = some(canvas, fig, blit)
        panels.append(drawn)
        return drawn

    def timed_render(fig):
        data = render(fig)
        rendered.append(time.perf_counter())
        sizes.append(len(data))
        return data

    _output.figure_jpeg = timed_render
    FigureCanvasAgg.draw = counted_draw
    if some is not None:
        plots._draw_stale_axes = counted_panels
    builds = _kernel_dashboards()
    controls = (widgets.FloatSlider, widgets.FloatLogSlider, widgets.SelectionSlider,
                widgets.ToggleButtons)  # fmt: skip
    rows = [f"{'dashboard':<18} {'control':<16} {'n':>4} {'first: median':>14} {'max':>7} "
            f"{'settled: median':>16} {'max':>7}  (ms)  {'kB/frame':>8} {'full draws':>10} "
            f"{'panel redraws':>13}"]  # fmt: skip
    try:
        for name in _selected(builds, names):
            start = time.perf_counter()
            box = builds[name]()
            view = next(c for c in _descendants(box) if isinstance(c, widgets.Image))
            width, height = _jpeg_size(view.value)
            rows.append(f"{name} built in {time.perf_counter() - start:.2f} s, "
                        f"figure {width} x {height} px")  # fmt: skip
            found = [c for c in _descendants(box) if isinstance(c, controls)]
            runs = [(name, found)]
            if name == "05b":
                runs.append(("05b at σ = 0.2", found[1:]))
            for label, driven in runs:
                if label != name:
                    found[0].value = 0.2
                for control in driven:
                    first, settled = [], []
                    stops = _stops(control)
                    begin = control.value
                    sizes.clear()
                    full.clear()
                    panels.clear()
                    for value in [stops[0], stops[-1], *stops, *stops[::-1]]:
                        if value == control.value:
                            continue
                        rendered.clear()
                        start = time.perf_counter()
                        control.value = value
                        end = time.perf_counter()
                        first.append(1e3 * ((rendered[0] if rendered else end) - start))
                        settled.append(1e3 * (end - start))
                    control.value = begin
                    kilobytes = statistics.median(sizes) / 1e3 if sizes else float("nan")
                    rows.append(
                        f"{label:<18} {control.description or type(control).__name__:<16} "
                        f"{len(first):>4} {statistics.median(first):>14.0f} {max(first):>7.0f} "
                        f"{statistics.median(settled):>16.0f} {max(settled):>7.0f}        "
                        f"{kilobytes:>8.0f} {len(full):>10} {sum(panels):>13}"
                    )
    finally:
        _output.figure_jpeg, FigureCanvasAgg.draw = render, draw
        if some is not None:
            plots._draw_stale_axes = some
    return "\n".join(rows)


def _jpeg_size(data: bytes) -> tuple[int, int]:
    """Width and height in pixels of the JPEG ``data``."""
    import io

    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        return image.size


def _descendants(box) -> list:
    """Every widget inside ``box``, depth first, in page order."""
    found = []
    for child in getattr(box, "children", ()):
        found.append(child)
        found.extend(_descendants(child))
    return found


def _stops(slider) -> list:
    """Every value a slider's arrow keys reach, low to high (log sliders: base ** exponent)."""
    if hasattr(slider, "options"):  # selection sliders and toggle buttons: (label, value)s
        return [value for _, value in slider._options_full]
    count = int(round((slider.max - slider.min) / slider.step))
    exponents = [slider.min + k * slider.step for k in range(count + 1)]
    if hasattr(slider, "base"):
        return [slider.base**e for e in exponents]
    return [round(e, 10) for e in exponents]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", help="notebook numbers or names (default: all)")
    parser.add_argument("--presses", type=int, default=5, help="arrow presses each way (default 5)")
    parser.add_argument("--sweep", action="store_true", help="also visit every slider stop")
    parser.add_argument("--kernel", action="store_true", help="time the redraws in Python only")
    args = parser.parse_args()
    if args.kernel:
        print(kernel_sweep(args.notebooks))
        return 0
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
