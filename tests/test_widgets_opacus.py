"""Notebook 07's sweep dashboard and figures, driven without a browser."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pytest

from fl_dp_lab.opacus_bridge import SweepResult
from fl_dp_lab.plots.opacus import (
    plot_accuracy_by_epsilon,
    plot_agreement,
    plot_batch_sizes,
    plot_epsilon_curves,
    plot_sweep,
)
from fl_dp_lab.widgets.opacus import sweep_dashboard, sweep_readout


@pytest.fixture
def result() -> SweepResult:
    return SweepResult(
        noise_multipliers=np.array([0.0, 0.5, 1.0, 2.0]),
        max_grad_norms=np.array([0.1, 1.0, 10.0]),
        accuracy=np.array(
            [[0.80, 0.90, 0.91], [0.78, 0.87, 0.60], [0.75, 0.85, 0.40], [0.7, 0.8, 0.2]]
        ),
        epsilon=np.array([math.inf, 40.0, 8.0, 2.0]),
        baseline_accuracy=0.92,
        delta=1e-5,
        sample_rate=0.0625,
        steps=32,
    )


def test_dragging_the_sliders_updates_the_readout(result):
    box = sweep_dashboard(result)
    sigma, norm, readout, _ = box.children
    assert "σ = 1, C = 1: test accuracy 85.0 %" in readout.value and "ε = 8.00" in readout.value
    norm.value = 10.0
    assert "40.0 %" in readout.value
    sigma.value = 2.0
    assert "20.0 %" in readout.value and "ε = 2.00" in readout.value
    plt.close("all")


def test_sigma_zero_shows_no_privacy_and_does_not_crash(result):
    box = sweep_dashboard(result, noise_multiplier=2.0, max_grad_norm=0.1)
    sigma, norm, readout, _ = box.children
    sigma.value = sigma.options[0][1]  # the left edge: sigma = 0
    assert "no privacy" in readout.value and "80.0 %" in readout.value
    norm.value = norm.options[-1][1]  # the right edge of C
    assert "no privacy" in readout.value and "91.0 %" in readout.value
    plt.close("all")


def test_dashboard_rejects_what_is_not_a_sweep_or_off_its_grid(result):
    with pytest.raises(TypeError, match="result must be an fl_dp_lab.opacus_bridge.SweepResult"):
        sweep_dashboard({"accuracy": [[0.9]]})
    with pytest.raises(ValueError, match="max_grad_norm must be one of the sweep's values"):
        sweep_dashboard(result, max_grad_norm=2.0)
    plt.close("all")


def test_readout_text():
    assert sweep_readout(0.0, 1.0, 0.5, math.inf, 1e-5).endswith("clipping alone protects nobody")
    assert "(ε = 1.50, δ = 1e-05)" in sweep_readout(2.0, 1.0, 0.5, 1.5, 1e-5)


def test_sweep_figure_marks_the_cell_and_rejects_values_off_the_grid(result):
    fig, artists = plot_sweep(result, 0.5, 1.0)
    assert artists["point"].get_xydata().tolist() == [[0.5, 87.0]]
    assert artists["no_privacy"].get_text() == ""
    with pytest.raises(ValueError, match="noise_multiplier must be one of the sweep's values"):
        plot_sweep(result, 0.7, 1.0)
    plt.close(fig)


def test_other_figures_build_and_validate():
    figures = [
        plot_agreement(np.arange(3.0), np.arange(3.0), xlabel="a", ylabel="b", title="t"),
        plot_batch_sizes([240, 250, 262, 255], num_examples=4000, sample_rate=0.0625),
        plot_epsilon_curves(np.arange(1, 4), {"ours": np.ones(3)}, delta=1e-5, title="t"),
        plot_accuracy_by_epsilon(
            [1, 3], np.array([[0.8, 0.82], [0.86, 0.85]]), baseline=[0.9, 0.91], title="t"
        ),
    ]
    assert all(f.axes for f in figures)
    with pytest.raises(ValueError, match="ours and theirs must be non-empty with the same size"):
        plot_agreement(np.arange(3.0), np.arange(2.0), xlabel="a", ylabel="b", title="t")
    with pytest.raises(ValueError, match="accuracies must be an array of shape"):
        plot_accuracy_by_epsilon([1, 3, 8], np.zeros((2, 2)), baseline=[0.9], title="t")
    plt.close("all")
