"""Figures of notebooks 04 and 05b draw the numbers they are given, with the labels they name."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest

from fl_dp_lab.plots.accounting import (
    best_bound_figure,
    calibration_figure,
    opacus_orders_figure,
    privacy_loss_density_figure,
    rdp_conversion_figure,
)
from fl_dp_lab.plots.mechanisms import plot_privacy_loss_and_delta, plot_rr_estimates


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _legend(ax) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_rdp_conversion_figure_draws_both_curves_and_the_best_point():
    # Prepare: three orders, two conversions, the best point of the tighter one
    orders = np.array([2.0, 8.0, 32.0])
    # Execute
    fig, ax = rdp_conversion_figure(
        orders, np.array([3.0, 1.5, 2.0]), np.array([2.5, 1.1, 1.6]), (8.0, 1.1), title="t"
    )
    # Assert: two curves on the orders, a dot at (8, 1.1) named in the legend, a log x axis
    assert list(ax.lines[0].get_ydata()) == [3.0, 1.5, 2.0]
    assert list(ax.lines[1].get_ydata()) == [2.5, 1.1, 1.6]
    assert (ax.lines[2].get_xdata()[0], ax.lines[2].get_ydata()[0]) == (8.0, 1.1)
    assert "best: ε = 1.100 at α = 8" in _legend(ax)
    assert ax.get_xscale() == "log" and ax.get_title() == "t"
    assert fig.axes == [ax]


def test_opacus_orders_figure_puts_each_accountant_on_its_own_line():
    sigmas = np.array([2.0, 20.0])
    fig, ax = opacus_orders_figure(
        sigmas, np.array([5.0, 0.3]), np.array([5.0, 0.2]), ylabel="ε here", title="gap"
    )
    assert [list(line.get_ydata()) for line in ax.lines] == [[5.0, 0.3], [5.0, 0.2]]
    assert _legend(ax) == ["Opacus RDP (orders ≤ 63)", "ours / dp_accounting (orders ≤ 1024)"]
    assert ax.get_yscale() == "log" and ax.get_ylabel() == "ε here"


def test_calibration_figure_has_one_line_per_accountant_and_ticks_at_the_targets():
    targets = np.array([0.5, 1.0, 4.0])
    fig, ax = calibration_figure(
        targets,
        {"rdp": np.array([3.0, 1.8, 0.9]), "pld": np.array([2.8, 1.7, 0.85])},
        xlabel="target ε",
        title="c",
    )
    assert _legend(ax) == ["RDP", "PLD"]
    assert list(ax.lines[1].get_ydata()) == [2.8, 1.7, 0.85]
    assert list(ax.get_xticks()) == [0.5, 1.0, 4.0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0.5", "1", "4"]


def test_privacy_loss_and_delta_draws_the_histogram_and_three_curves():
    rng = np.random.default_rng(0)
    losses = rng.normal(0.5, 1.0, 1000)
    grid = np.array([0.0, 1.0, 2.0])
    deltas = {
        "exact": np.array([0.4, 0.1, 0.01]),
        "library": np.array([0.4, 0.1, 0.011]),
        "monte_carlo": np.array([0.39, 0.1, 0.012]),
    }
    fig = plot_privacy_loss_and_delta(losses, (0.5, 1.0), grid, deltas, epsilon=1.0)
    left, right = fig.axes
    # Left: the histogram holds all draws (density 1 over the bins it covers), the epsilon line
    heights = np.array([patch.get_height() for patch in left.patches])
    widths = np.array([patch.get_width() for patch in left.patches])
    assert (heights * widths).sum() == pytest.approx(1.0)
    assert "1,000 draws of L" in _legend(left)
    assert list(left.lines[-1].get_xdata()) == [1.0, 1.0]
    # Right: the three curves in the order exact, library, Monte Carlo, on a log scale
    assert [list(line.get_ydata()) for line in right.lines] == [
        list(deltas["exact"]),
        list(deltas["library"]),
        list(deltas["monte_carlo"]),
    ]
    assert right.get_yscale() == "log"


def test_rr_estimates_draws_one_histogram_per_epsilon_and_the_truth():
    rng = np.random.default_rng(0)
    estimates = {0.5: rng.normal(0.3, 0.03, 300), 2.0: rng.normal(0.3, 0.01, 300)}
    fig = plot_rr_estimates(
        estimates, {0.5: 0.44, 2.0: 0.33}, truth=0.3, bins=np.linspace(0.2, 0.4, 41)
    )
    ax = fig.axes[0]
    # Assert: 40 bars per epsilon, each histogram counting the estimates inside the bins
    assert len(ax.patches) == 80
    inside = ((estimates[0.5] >= 0.2) & (estimates[0.5] <= 0.4)).sum()
    assert sum(patch.get_height() for patch in ax.patches[:40]) == inside
    assert list(ax.lines[0].get_xdata()) == [0.3, 0.3]
    assert _legend(ax) == [
        "ε = 0.5: naive share 0.44",
        "ε = 2.0: naive share 0.33",
        "true share 0.30",
    ]
    assert ax.get_ylabel() == "surveys (of 300)"


def test_privacy_loss_density_figure_divides_by_the_grid_spacing_and_marks_epsilon():
    losses = np.array([0.0, 0.5, 1.0])
    fig, ax = privacy_loss_density_figure(losses, np.array([0.2, 0.5, 0.3]), 0.95, title="d")
    assert list(ax.lines[0].get_ydata()) == [0.4, 1.0, 0.6]  # pmf / 0.5
    assert list(ax.lines[1].get_xdata()) == [0.95, 0.95]
    assert _legend(ax) == ["ε = 0.950"]


def test_best_bound_figure_draws_pld_rdp_and_best_on_log_axes():
    steps = np.array([10, 100, 1000])
    by = {
        "pld": np.array([0.1, 0.3, 1.2]),
        "rdp": np.array([0.2, 0.4, 1.0]),
        "best": np.array([0.1, 0.3, 1.0]),
    }
    fig, ax = best_bound_figure(steps, by, xlabel="steps T", title="b")
    assert [list(line.get_ydata()) for line in ax.lines] == [
        [0.1, 0.3, 1.2],
        [0.2, 0.4, 1.0],
        [0.1, 0.3, 1.0],
    ]
    assert _legend(ax) == ["PLD (grid 1e-4)", "RDP", "best = min of the two"]
    assert ax.get_xscale() == ax.get_yscale() == "log"
