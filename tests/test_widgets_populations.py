"""Notebook 09b's dashboard, driven without a browser."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest

from fl_dp_lab.federated import FederatedHistory
from fl_dp_lab.plots.populations import scale_figure, update_scale_figure
from fl_dp_lab.widgets.populations import scale_dashboard

SIZES = [10**3, 10**4, 10**6]
TARGETS = [1.0, 2.0]


def _history(accuracy: float, eps: float, rounds: int = 4) -> FederatedHistory:
    return FederatedHistory(
        round=list(range(1, rounds + 1)),
        loss=[1.0] * rounds,
        accuracy=[accuracy * r / rounds for r in range(1, rounds + 1)],
        clients=[10] * rounds,
        epsilon=[eps * r / rounds for r in range(1, rounds + 1)],
        clip_norm=[1.0] * rounds,
    )


def _runs() -> dict:
    # accuracy grows with K and with epsilon, distinct for every run
    return {
        (t, k): _history(0.3 + 0.1 * i + 0.05 * t, t) for t in TARGETS for i, k in enumerate(SIZES)
    }


def test_the_dashboard_follows_both_sliders_to_their_ends():
    runs, baseline = _runs(), _history(0.8, float("inf"))
    box = scale_dashboard(runs, baseline)
    eps_slider, k_slider, readout, _ = box.children
    assert (eps_slider.value, k_slider.value) == (2.0, 10**6)  # middle epsilon, largest K
    assert "K = 1,000,000" in readout.value and "60.0 %" in readout.value
    assert "20.0 points below" in readout.value
    k_slider.value = 10**3
    eps_slider.value = 1.0
    assert "K = 1,000, target ε = 1" in readout.value and "35.0 %" in readout.value
    assert "45.0 points below" in readout.value
    plt.close("all")


def test_the_figure_shows_the_chosen_run_and_the_curve_over_k():
    runs, baseline = _runs(), _history(0.8, float("inf"))
    fig, artists = scale_figure(runs, baseline, epsilon=1.0, num_clients=10**4)
    update_scale_figure(artists, runs, epsilon=2.0, num_clients=10**3)
    x, y = artists["by_k"].get_data()
    assert list(x) == SIZES
    assert np.allclose(y, [100 * runs[(2.0, k)].accuracy[-1] for k in SIZES])
    assert np.allclose(artists["curve"].get_data()[1], 100 * np.array(runs[(2.0, 10**3)].accuracy))
    assert np.allclose(artists["chosen"].get_data()[0], [10**3])
    plt.close(fig)


def test_missing_runs_and_absent_start_values_are_refused():
    runs, baseline = _runs(), _history(0.8, float("inf"))
    del runs[(1.0, 10**4)]
    with pytest.raises(ValueError, match="every"):
        scale_dashboard(runs, baseline)
    with pytest.raises(ValueError, match="values present in runs"):
        scale_dashboard(_runs(), baseline, epsilon=3.0)
