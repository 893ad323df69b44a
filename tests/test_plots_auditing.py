"""fl_dp_lab.plots.auditing: notebook 10's figures draw the numbers they are given."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest

from fl_dp_lab.plots.auditing import (
    plot_attack_strength,
    plot_audit_sweep,
    plot_bound_vs_trials,
    plot_canary_scores,
    plot_tradeoff,
)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_tradeoff_draws_the_rates_and_the_box():
    fig = plot_tradeoff(
        epsilon=1.0,
        delta=1e-5,
        fpr=0.26,
        fnr=0.28,
        fpr_high=0.29,
        fnr_high=0.31,
        certified_epsilon=0.88,
    )
    ax = fig.axes[0]
    point = [line for line in ax.lines if line.get_marker() == "o"][0]
    assert (point.get_xdata()[0], point.get_ydata()[0]) == (0.26, 0.28)
    box = ax.patches[0]
    assert (box.get_width(), box.get_height()) == (0.29, 0.31)
    assert "certified ε ≥ 0.88" in [t.get_text() for t in ax.get_legend().get_texts()]


def test_bound_vs_trials_has_one_point_per_size_on_both_panels():
    sizes = [50, 500, 5000]
    fig = plot_bound_vs_trials(
        sizes, [1.2, 1.1, 1.0], [0.5, 0.8, 0.9], [2.5, 4.9, 7.2], true_epsilon=1
    )
    left, right = fig.axes
    assert [len(line.get_xdata()) for line in left.lines[1:]] == [3, 3]
    assert list(right.lines[0].get_ydata()) == [2.5, 4.9, 7.2]
    assert left.get_xscale() == right.get_xscale() == "log"


def test_canary_scores_label_each_verdict():
    rng = np.random.default_rng(0)
    scores = {
        "correct": (rng.normal(1, 1, 50), rng.normal(0, 1, 50)),
        "bug: no clipping": (rng.normal(9, 1, 50), rng.normal(0, 1, 50)),
    }
    fig = plot_canary_scores(
        scores,
        {"correct": 0.5, "bug: no clipping": 4.5},
        {"correct": 0.1, "bug: no clipping": 4.9},
        accountant_epsilon=1.99,
    )
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0].endswith("passes") and titles[1].endswith("caught")


def test_audit_sweep_labels_only_the_audited_noise_levels():
    fig = plot_audit_sweep(
        [1.0, 2.0, 4.0],
        {"correct": [0.9, 0.4, 0.0], "bug: no clipping": [4.9, 4.9, 4.7]},
        accountant_sigmas=np.geomspace(0.9, 4.5, 10),
        accountant_epsilons=np.linspace(5, 0.8, 10),
        ceiling=4.91,
        delta=1e-5,
    )
    ax = fig.axes[0]
    fig.canvas.draw()
    shown = [t.get_text() for t in ax.get_xticklabels(minor=True) if t.get_text()]
    assert shown == []  # no "3 x 10^0" minor labels beside 1, 2, 4
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "2", "4"]


def test_attack_strength_fits_the_ceiling_and_every_bar():
    fig = plot_attack_strength(
        ["strong", "weak"], [4.74, 0.2], accountant_epsilon=1.99, ceiling=4.91
    )
    ax = fig.axes[0]
    assert ax.get_xlim()[1] > 4.91
    widths = sorted(bar.get_width() for bar in ax.patches)
    assert widths == [0.2, 4.74]
