"""Time one redraw of notebook 04's sigma dashboard, as a learner dragging the slider sees it.

A redraw is ``update_gaussian_privacy_figure`` (the exact epsilon at the fixed
delta, the privacy-loss law, the delta(epsilon) curve) plus rendering the
figure to PNG, which is what the notebook's inline backend sends to the
browser. The target is a redraw that feels live on release of the slider.

    python benchmarks/mechanisms.py            # 12 slider moves
    python benchmarks/mechanisms.py --quick    # 4
"""

from __future__ import annotations

import argparse
import statistics
import time

import matplotlib

matplotlib.use("agg")

from fl_dp_lab.plots import course_style, figure_png  # noqa: E402
from fl_dp_lab.plots.mechanisms import (  # noqa: E402
    gaussian_privacy_figure,
    update_gaussian_privacy_figure,
)
from fl_dp_lab.widgets._output import freeze_layout  # noqa: E402

POLICIES = ("re-solved every redraw", "fixed after first draw")


def time_redraws(moves: int) -> dict[str, tuple[float, float]]:
    """Median ms of (update, update + PNG render) per layout policy over ``moves`` positions.

    The two figures are redrawn in turn at each slider position, so load on a
    shared machine hits both alike.
    """
    figures = {}
    for name in POLICIES:
        fig, artists = gaussian_privacy_figure(1.0, delta=1e-5)
        if name == "fixed after first draw":
            freeze_layout(fig)  # as the dashboard does
        else:
            fig.draw_without_rendering()
        figures[name] = (fig, artists)
    times: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in POLICIES}
    for k in range(moves):
        sigma = 0.05 + 4.95 * k / max(moves - 1, 1)
        for name, (fig, artists) in figures.items():
            start = time.perf_counter()
            update_gaussian_privacy_figure(artists, sigma)
            middle = time.perf_counter()
            figure_png(fig)  # the PNG the dashboard sends
            end = time.perf_counter()
            times[name][0].append(1e3 * (middle - start))
            times[name][1].append(1e3 * (end - start))
    return {name: (statistics.median(c), statistics.median(t)) for name, (c, t) in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 slider moves instead of 12")
    args = parser.parse_args()
    course_style()
    moves = 4 if args.quick else 12
    print(f"notebook 04 sigma dashboard, median over {moves} slider moves (ms)")
    print(f"{'layout':<28}{'update':>10}{'update + PNG':>16}")
    rows = time_redraws(moves)
    for name, (update, total) in rows.items():
        print(f"{name:<28}{update:>10.1f}{total:>16.1f}")
    slow, fast = rows["re-solved every redraw"][1], rows["fixed after first draw"][1]
    print(f"fixed layout is {slow / fast:.1f}x faster per redraw")


if __name__ == "__main__":
    main()
