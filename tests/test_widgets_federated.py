"""Notebooks 08-09's dashboards, driven without a browser."""

from __future__ import annotations

import io
import math

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from fl_dp_lab.data import dirichlet_partition
from fl_dp_lab.federated import FederatedHistory
from fl_dp_lab.plots.federated import (
    client_label_counts,
    dirichlet_figure,
    dp_fedavg_figure,
    fedavg_curves,
    update_dirichlet_figure,
    update_dp_fedavg_figure,
)
from fl_dp_lab.widgets.federated import dirichlet_dashboard, dp_fedavg_dashboard


def _history(accuracy: float, eps: float, rounds: int = 3) -> FederatedHistory:
    return FederatedHistory(
        round=list(range(1, rounds + 1)),
        loss=[1.0] * rounds,
        accuracy=[accuracy * r / rounds for r in range(1, rounds + 1)],
        clients=[10] * rounds,
        epsilon=[eps * r / rounds for r in range(1, rounds + 1)],
        clip_norm=[1.0] * rounds,
    )


def test_dirichlet_dashboard_follows_the_slider_to_both_ends():
    labels = np.repeat(np.arange(10), 20)
    alphas = [0.05, 1.0, 100.0]
    partitions = {a: dirichlet_partition(labels, 8, alpha=a, seed=0) for a in alphas}
    histories = {a: _history(0.5 + 0.1 * i, math.inf) for i, a in enumerate(alphas)}
    box = dirichlet_dashboard(labels, partitions, histories, alpha=1.0)
    slider, readout, _ = box.children
    assert "α = 1" in readout.value and "60.0 %" in readout.value
    slider.value = 0.05
    few = float(readout.value.split("holds ")[1].split(" of")[0])
    assert "α = 0.05" in readout.value and "50.0 %" in readout.value
    slider.value = 100.0
    many = float(readout.value.split("holds ")[1].split(" of")[0])
    assert many > few and many == pytest.approx(10.0)
    with pytest.raises(ValueError, match="alpha must be one of"):
        dirichlet_dashboard(labels, partitions, histories, alpha=0.5)


def test_dirichlet_bars_follow_the_partition_on_a_fixed_axis():
    # Arrange: two partitions with different client sizes
    labels = np.repeat(np.arange(10), 20)
    partitions = {a: dirichlet_partition(labels, 8, alpha=a, seed=0) for a in (0.05, 100.0)}
    histories = {a: _history(0.5, math.inf) for a in partitions}
    largest = max(len(c) for p in partitions.values() for c in p)
    fig, artists = dirichlet_figure(labels, partitions[0.05], histories, 0.05,
                                    max_examples=largest)  # fmt: skip
    before = artists["left"].get_xlim()
    # Act
    update_dirichlet_figure(artists, partitions[100.0], 100.0)
    # Assert: same axis; each client's stacked bars end at its number of examples
    assert artists["left"].get_xlim() == before == (0, 1.5 * largest)
    ends = np.zeros(8)
    for collection in artists["bars"]:
        for k, path in enumerate(collection.get_paths()):
            ends[k] = max(ends[k], path.vertices[:, 0].max())
    np.testing.assert_allclose(ends, [len(c) for c in partitions[100.0]])
    plt.close(fig)


def test_dp_dashboard_shows_epsilon_accuracy_and_no_privacy_at_sigma_zero():
    sweep = {}
    for sigma in (0.0, 1.0, 2.0):
        for clip in (0.5, 2.0):
            for clients in (50, 200):
                eps = math.inf if sigma == 0 else clients / (100 * sigma)
                sweep[(sigma, clip, clients)] = _history(0.3 - 0.05 * sigma, eps)
    box = dp_fedavg_dashboard(sweep, delta=1e-5)
    sigma_slider, clip_slider, clients_slider, readout, _ = box.children
    assert (sigma_slider.value, clip_slider.value, clients_slider.value) == (1.0, 0.5, 200)
    assert "(2.00, 1e-05)-DP for every user" in readout.value and "25.0 %" in readout.value
    clients_slider.value = 50
    assert "(0.50, 1e-05)-DP" in readout.value
    sigma_slider.value = 0.0
    assert "no privacy (ε = ∞)" in readout.value and "30.0 %" in readout.value
    sigma_slider.value = 2.0
    clip_slider.value = 2.0
    assert "σ = 2, C = 2, 50 clients" in readout.value and "(0.25, 1e-05)-DP" in readout.value


def test_dp_dashboard_refuses_an_incomplete_sweep():
    with pytest.raises(ValueError, match="every combination"):
        dp_fedavg_dashboard(
            {(0.0, 1.0, 10): _history(0.2, math.inf), (1.0, 2.0, 10): _history(0.2, 1.0)},
            delta=1e-5,
        )
    with pytest.raises(ValueError, match="sweep must be"):
        dp_fedavg_dashboard({}, delta=1e-5)


def test_dp_figure_renders_a_no_privacy_run_without_error():
    # sigma = 0 histories have epsilon = inf every round: the figure must still draw
    fig, artists = dp_fedavg_figure(_history(0.3, math.inf))
    fig.savefig(io.BytesIO(), format="png")
    assert artists["no_privacy"].get_visible()
    assert len(artists["eps"].get_xdata()) == len(artists["eps"].get_ydata()) == 0
    update_dp_fedavg_figure(artists, _history(0.2, 3.0))
    fig.savefig(io.BytesIO(), format="png")
    assert not artists["no_privacy"].get_visible() and len(artists["eps"].get_ydata()) == 3
    plt.close(fig)


def test_figures_draw_what_they_are_given():
    fig, artists = dp_fedavg_figure(_history(0.3, 4.0))
    assert list(artists["eps"].get_ydata()) == pytest.approx([4 / 3, 8 / 3, 4.0])
    assert not artists["no_privacy"].get_visible()
    plt.close(fig)
    fig, ax = fedavg_curves({"a": _history(0.9, math.inf)}, title="t", reference=0.95)
    assert list(ax.lines[0].get_ydata()) == pytest.approx([30.0, 60.0, 90.0])
    plt.close(fig)
    counts = client_label_counts(np.array([0, 1, 1]), [np.array([0, 1]), np.array([2])], 2)
    assert counts.tolist() == [[1, 1], [0, 1]]
    assert torch.is_tensor(torch.as_tensor(counts))


def test_the_readout_of_a_run_with_no_rounds_says_so():
    from fl_dp_lab.federated import FederatedHistory
    from fl_dp_lab.widgets.federated import dp_fedavg_readout

    with pytest.raises(ValueError, match="history must be a run with at least one round"):
        dp_fedavg_readout(1.0, 1.0, 10, FederatedHistory(), 1e-5)
