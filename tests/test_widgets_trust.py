"""Notebook 12's dashboard (three trust models over epsilon and m), driven without a browser."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest

from fl_dp_lab.plots.trust import TRUST_MODELS, trust_figure, update_trust_figure
from fl_dp_lab.widgets.trust import trust_dashboard

SIZES = [30, 100, 300]
TARGETS = [1.0, 4.0, 16.0]
OFFSET = {"local": 0.0, "central": 0.2, "distributed": 0.19}


def _accuracy() -> dict:
    # distinct for every run: grows with epsilon and m, central > distributed > local
    return {
        (model, e, m): 0.1 + OFFSET[model] + 0.02 * i + 0.1 * j
        for model in TRUST_MODELS
        for i, e in enumerate(TARGETS)
        for j, m in enumerate(SIZES)
    }


NO_NOISE = {30: 0.7, 100: 0.75, 300: 0.8}


def test_the_dashboard_follows_both_sliders_to_their_ends():
    accuracy = _accuracy()
    box = trust_dashboard(accuracy, NO_NOISE, chance=0.12)
    eps_slider, m_slider, readout, view = box.children
    assert (eps_slider.value, m_slider.value) == (4.0, 300)  # middle epsilon, largest m
    # m = 300 (j = 2), eps = 4 (i = 1): local 0.1 + 0.02 + 0.2 = 32 %
    assert "m ≈ 300, target ε = 4" in readout.value
    assert "local 32.0 %" in readout.value and "central 52.0 %" in readout.value
    assert "distributed 51.0 %" in readout.value and "no noise 80.0 %" in readout.value
    first = view.value
    m_slider.value = 30
    eps_slider.value = 1.0
    assert "m ≈ 30, target ε = 1" in readout.value
    assert "local 10.0 %" in readout.value and "no noise 70.0 %" in readout.value
    assert view.value != first  # the figure was drawn again
    eps_slider.value = 16.0
    assert "central 34.0 %" in readout.value
    plt.close("all")


def test_the_figure_draws_each_model_against_epsilon_at_the_chosen_m():
    accuracy = _accuracy()
    fig, artists = trust_figure(accuracy, NO_NOISE, chance=0.12, epsilon=1.0, num_clients=30)
    update_trust_figure(artists, accuracy, NO_NOISE, epsilon=16.0, num_clients=100)
    for model in TRUST_MODELS:
        x, y = artists[f"curve:{model}"].get_data()
        assert list(x) == TARGETS
        assert np.allclose(y, [100 * accuracy[(model, e, 100)] for e in TARGETS])
        mx, my = artists[f"marker:{model}"].get_data()
        assert list(mx) == [16.0] and np.allclose(my, [100 * accuracy[(model, 16.0, 100)]])
    assert np.allclose(artists["no_noise"].get_data()[1], [75.0, 75.0])
    assert "m ≈ 100" in artists["ax"].get_title() and "ε = 16" in artists["ax"].get_title()
    plt.close(fig)


def test_missing_runs_and_absent_start_values_are_refused():
    accuracy = _accuracy()
    del accuracy[("distributed", 4.0, 100)]
    with pytest.raises(ValueError, match="every"):
        trust_dashboard(accuracy, NO_NOISE, chance=0.1)
    with pytest.raises(ValueError, match="no_noise must be"):
        trust_dashboard(_accuracy(), {30: 0.7}, chance=0.1)
    with pytest.raises(ValueError, match="values present in accuracy"):
        trust_dashboard(_accuracy(), NO_NOISE, chance=0.1, epsilon=3.0)
