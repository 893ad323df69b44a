"""Milliseconds per epsilon query: ours (RDP, PLD) vs Opacus (RDP, PRV) vs dp_accounting (RDP, PLD).

A query is a cold "epsilon after T steps of the Poisson-subsampled Gaussian
at delta": every cache of ours is cleared first and every library builds a
fresh accountant, as a training loop asking once per epoch would. The
methods are interleaved round by round (so machine load hits all alike) and
each cell is the median over rounds; dp_accounting's PLD at the 1e-4 grid
that the tests compare against is slow, so it runs fewer rounds. The last
table times one redraw of notebook 05b's dashboard (``epsilon_curves`` for
all four methods plus moving the figure's lines and rendering it) after a
slider moves to values it has not seen, then at the sliders' edges (sigma = 0.1
with q = 1 and T = 1e5 puts epsilon in the millions: the PLD grid coarsens to
stay bounded, and that redraw takes seconds rather than milliseconds).

    python benchmarks/accounting.py            # full tables (about a minute)
    python benchmarks/accounting.py --quick    # smoke run
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import platform
import statistics
import time
import warnings
from collections.abc import Callable

import dp_accounting as dpa
import matplotlib
from dp_accounting.pld import pld_privacy_accountant
from dp_accounting.rdp import rdp_privacy_accountant
from opacus.accountants import PRVAccountant, RDPAccountant

from fl_dp_lab import accounting
from fl_dp_lab.accounting import _accounting_core, _pld

matplotlib.use("Agg")
logging.getLogger("absl").setLevel(logging.ERROR)

# (noise_multiplier, sample_rate, steps, delta)
SETTINGS = [
    (4.0, 0.01, 10_000, 1e-5),  # Abadi et al. 2016
    (1.1, 0.004, 1_000, 1e-5),
    (1.0, 0.01, 100_000, 1e-5),
    (10.0, 0.001, 100_000, 1e-7),
]
SLOW = {"dp_accounting PLD"}


def ours(kind: str) -> Callable[..., float]:
    def query(sigma: float, q: float, steps: int, delta: float) -> float:
        _accounting_core.composed_pld.cache_clear()
        _accounting_core.rdp_cached.cache_clear()
        _pld.subsampled_gaussian_pld.cache_clear()
        return accounting.epsilon(
            noise_multiplier=sigma, sample_rate=q, steps=steps, delta=delta, accountant=kind
        )

    return query


def opacus(cls: type) -> Callable[..., float]:
    def query(sigma: float, q: float, steps: int, delta: float) -> float:
        acc = cls()
        acc.history = [(sigma, q, steps)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return acc.get_epsilon(delta)

    return query


def dp_accounting(make: Callable[[], object]) -> Callable[..., float]:
    def query(sigma: float, q: float, steps: int, delta: float) -> float:
        acc = make()
        acc.compose(dpa.PoissonSampledDpEvent(q, dpa.GaussianDpEvent(sigma)), steps)
        return acc.get_epsilon(delta)

    return query


METHODS = {
    "ours RDP": ours("rdp"),
    "ours PLD": ours("pld"),
    "Opacus RDP": opacus(RDPAccountant),
    "Opacus PRV": opacus(PRVAccountant),
    "dp_accounting RDP": dp_accounting(rdp_privacy_accountant.RdpAccountant),
    "dp_accounting PLD": dp_accounting(
        lambda: pld_privacy_accountant.PLDAccountant(value_discretization_interval=1e-4)
    ),
}


def time_queries(rounds: int) -> None:
    print(
        f"{'sigma':>5} {'q':>6} {'T':>7} {'delta':>6} | {'method':18} {'ms/query':>9} "
        f"{'x ours PLD':>10} {'epsilon':>8}"
    )
    for setting in SETTINGS:
        times: dict[str, list[float]] = {name: [] for name in METHODS}
        values: dict[str, float] = {}
        for r in range(rounds):
            for name, query in METHODS.items():
                if name in SLOW and r >= max(1, rounds // 3):
                    continue
                start = time.perf_counter()
                try:
                    values[name] = query(*setting)
                except Exception as error:  # noqa: BLE001 - PRV can fail at large epsilon
                    values[name] = float("nan")
                    print(f"  ({name} failed: {type(error).__name__}: {error})")
                times[name].append(1000 * (time.perf_counter() - start))
        base = statistics.median(times["ours PLD"])
        sigma, q, steps, delta = setting
        for name in METHODS:
            ms = statistics.median(times[name])
            print(
                f"{sigma:5g} {q:6g} {steps:7d} {delta:6g} | {name:18} {ms:9.1f} "
                f"{ms / base:10.2f} {values[name]:8.4f}"
            )
        print()


def time_redraw(rounds: int) -> None:
    from fl_dp_lab.plots import figure_png
    from fl_dp_lab.plots.accounting import epsilon_steps_figure
    from fl_dp_lab.widgets._output import freeze_layout
    from fl_dp_lab.widgets.accounting import accounting_dashboard

    with contextlib.redirect_stdout(io.StringIO()):  # display() prints outside Jupyter
        dashboard = accounting_dashboard(noise_multiplier=4.0, sample_rate=0.01, steps=10_000)
    sigma, q, steps = dashboard.children[:3]
    moves = [(sigma, 2.0 + 0.3 * i) for i in range(rounds)]
    moves += [(q, 10.0 ** (-3 + 0.25 * i)) for i in range(rounds)]
    moves += [(steps, 10.0 ** (2 + 0.5 * i)) for i in range(min(rounds, 7))]
    times = []
    for slider, value in moves:
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):  # display() prints outside Jupyter
            slider.value = value
        times.append(1000 * (time.perf_counter() - start))
    # how much of a redraw is the PNG itself (fl_dp_lab.plots.figure_png, as the dashboard)
    grid, curves = accounting.epsilon_curves(
        noise_multiplier=4.0, sample_rate=0.01, steps=10_000, delta=1e-5, points=6
    )
    fig, _ = epsilon_steps_figure(grid, curves, title="t", delta=1e-5)
    freeze_layout(fig)  # as the dashboard does
    renders = []
    for _ in range(3):
        start = time.perf_counter()
        figure_png(fig)
        renders.append(1000 * (time.perf_counter() - start))
    redraw, render = statistics.median(times), statistics.median(renders)
    print(
        f"dashboard redraw, {len(times)} slider moves to new values: median {redraw:.0f} ms "
        f"(max {max(times):.0f}) for the accounting, the lines and the PNG it sends; "
        f"the PNG alone takes {render:.0f} ms"
    )
    # the slider edges: the weakest nonzero noise, no subsampling, the most steps
    edges = [(q, 1.0), (steps, 1e5), (sigma, 0.1), (sigma, 0.0), (sigma, 0.2), (q, 1e-4)]
    for slider, value in edges:
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            slider.value = value
        print(
            f"  edge {slider.description} -> {value:g}: "
            f"{1000 * (time.perf_counter() - start):.0f} ms, PNG included"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one round each")
    args = parser.parse_args()
    rounds = 1 if args.quick else 5
    print(
        f"python {platform.python_version()}, {platform.machine()}, "
        f"median of {rounds} cold queries ({max(1, rounds // 3)} for dp_accounting PLD)\n"
    )
    time_queries(rounds)
    time_redraw(2 if args.quick else 6)


if __name__ == "__main__":
    main()
