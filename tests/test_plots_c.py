"""Figures of notebooks 09 and 12 draw the numbers they are given."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pytest

from fl_dp_lab.federated import FederatedHistory
from fl_dp_lab.plots.federated import (
    adaptive_clipping_figure,
    clients_per_round_figure,
    dp_fedavg_runs_figure,
    flower_agreement_figure,
    flower_runs_figure,
    wall_time_figure,
)
from fl_dp_lab.plots.trust import (
    TRUST_MODELS,
    accuracy_at_equal_epsilon_figure,
    image_panels_figure,
    noise_std_figure,
)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _history(accuracy, clip_norm=()):
    rounds = list(range(1, len(accuracy) + 1))
    return FederatedHistory(round=rounds, accuracy=list(accuracy), clip_norm=list(clip_norm))


def test_adaptive_clipping_figure_draws_c_and_three_accuracy_curves():
    # Prepare: three tiny runs; the adaptive one's C falls from 30 to 5
    fixed = _history([0.10, 0.11, 0.10])
    adaptive = _history([0.10, 0.12, 0.14], clip_norm=[30.0, 12.0, 5.0])
    reference = _history([0.12, 0.15, 0.18])
    # Execute
    fig = adaptive_clipping_figure(
        fixed, adaptive, reference, fixed_clip=30.0, median_norm=5.0, chance=0.11
    )
    # Assert: left holds C per round and the two horizontal references; right the runs in %
    left, right = fig.axes
    assert list(left.lines[0].get_ydata()) == [30.0, 12.0, 5.0]
    assert [line.get_ydata()[0] for line in left.lines[1:]] == [30.0, 5.0]
    assert left.get_yscale() == "log"
    curves = {line.get_label(): line.get_ydata() for line in right.lines}
    assert np.allclose(curves["adaptive"], [10.0, 12.0, 14.0])
    assert np.allclose(curves["fixed C = 2"], [12.0, 15.0, 18.0])
    assert np.allclose(curves["chance"], 11.0)
    assert "fixed C = 30" in curves


def test_noise_std_figure_draws_one_line_per_model_in_order():
    ms = np.array([10, 100])
    std = {"central": np.array([0.4, 0.04]), "local": np.array([1.3, 0.4])}
    fig = noise_std_figure(ms, std)
    (ax,) = fig.axes
    assert [line.get_label() for line in ax.lines] == ["local", "central"]
    assert np.allclose(ax.lines[0].get_ydata(), [1.3, 0.4])
    assert ax.lines[1].get_color() == TRUST_MODELS["central"][0]
    assert (ax.get_xscale(), ax.get_yscale()) == ("log", "log")


def test_image_panels_figure_shows_each_image_clamped_with_its_title():
    picture = np.linspace(-1.0, 2.0, 64)
    fig = image_panels_figure([("a", picture), ("b", np.zeros(64))], title="two digits")
    assert [ax.get_title() for ax in fig.axes] == ["a", "b"]
    shown = fig.axes[0].images[0].get_array()
    assert shown.shape == (8, 8) and shown.min() == 0.0 and shown.max() == 1.0
    assert fig._suptitle.get_text() == "two digits"


def test_image_panels_figure_rejects_no_panels():
    with pytest.raises(ValueError, match="panels"):
        image_panels_figure([], title="nothing")


def test_flower_agreement_figure_draws_both_runs_per_round():
    in_process = _history([0.3, 0.5, 0.6])
    flower = _history([0.31, 0.49, 0.6])
    fig = flower_agreement_figure(in_process, flower)
    (ax,) = fig.axes
    lines = {line.get_label(): list(line.get_ydata()) for line in ax.lines}
    assert lines == {
        "in-process run_dp_fedavg": [0.3, 0.5, 0.6],
        "Flower simulation": [0.31, 0.49, 0.6],
    }
    assert list(ax.get_xticks()) == [1, 2, 3] and ax.get_ylim() == (0.0, 1.0)


def test_flower_runs_figure_draws_accuracies_and_clients_side_by_side():
    ours = FederatedHistory(round=[1, 2], accuracy=[0.2, 0.4], clients=[4, 7])
    flower_a = FederatedHistory(round=[1, 2], accuracy=[0.3, 0.5], clients=[5, 5])
    flower_b = FederatedHistory(round=[1, 2], accuracy=[0.1, 0.6], clients=[5, 5])
    fig = flower_runs_figure(ours, flower_a, flower_b)
    ax_acc, ax_clients = fig.axes
    assert [list(line.get_ydata()) for line in ax_acc.lines] == [[0.2, 0.4], [0.3, 0.5], [0.1, 0.6]]
    bars = [(round(p.get_x() + p.get_width() / 2, 6), p.get_height()) for p in ax_clients.patches]
    assert bars == [(0.8, 4), (1.8, 7), (1.2, 5), (2.2, 5)]
    assert ax_clients.get_ylim()[1] == pytest.approx(1.4 * 7)


def test_clients_per_round_figure_draws_the_counts_and_the_binomial_pmf():
    fig = clients_per_round_figure(
        [9, 10, 10, 11], num_clients=100, sample_rate=0.1, bins=[8, 10, 12]
    )
    (ax,) = fig.axes
    heights = [p.get_height() for p in ax.patches]
    assert heights == pytest.approx([0.125, 0.375])  # density: 1 and 3 of 4 rounds, bins of 2
    (pmf,) = ax.lines
    assert list(pmf.get_xdata()) == [8, 9, 10, 11, 12]
    assert pmf.get_ydata()[2] == pytest.approx(0.1319, abs=1e-4)  # P[Binomial(100, 0.1) = 10]
    assert "qK = 10 clients" in ax.get_title()


def test_dp_fedavg_runs_figure_draws_epsilon_and_both_accuracy_curves():
    no_noise = FederatedHistory(round=[1, 2], accuracy=[0.3, 0.4], epsilon=[math.inf] * 2)
    private = FederatedHistory(round=[1, 2], accuracy=[0.2, 0.25], epsilon=[1.5, 2.5])
    fig = dp_fedavg_runs_figure(no_noise, private, sigma=1.0, delta=1e-5, ceiling=0.5, chance=0.1)
    left, right = fig.axes
    assert list(left.lines[0].get_ydata()) == [1.5, 2.5]
    assert left.get_ylabel() == "user-level ε (δ = 1e-5)"
    curves = {line.get_label(): line.get_ydata() for line in right.lines}
    assert np.allclose(curves["σ = 1 (ε = 2.5)"], [20.0, 25.0])
    assert np.allclose(curves["no noise (ε = ∞)"], [30.0, 40.0])
    assert np.allclose(curves["centralised"], 50.0) and np.allclose(curves["chance"], 10.0)


def test_wall_time_figure_stacks_the_parts_and_rejects_too_many():
    parts = {"start": 3.0, "rounds": 1.0}
    fig = wall_time_figure(parts, in_process_s=0.5, simulation_s=4.0, share=0.75)
    (ax,) = fig.axes
    bars = [(p.get_x(), p.get_width()) for p in ax.patches]
    assert bars == [(0.0, 3.0), (3.0, 1.0), (0.0, 0.5)]
    assert "75%" in ax.get_title()
    with pytest.raises(ValueError, match="parts"):
        wall_time_figure(dict.fromkeys("abcde", 1.0), in_process_s=1, simulation_s=5, share=0.5)


def test_accuracy_at_equal_epsilon_figure_draws_each_model_and_the_references():
    epsilons = (1.0, 4.0)
    accuracy = {
        (model, e): 0.1 * k + e / 100 for k, model in enumerate(TRUST_MODELS) for e in epsilons
    }
    accuracy[("no noise", math.inf)] = 0.5
    fig = accuracy_at_equal_epsilon_figure(accuracy, epsilons=epsilons, delta=1e-5, chance=0.11)
    (ax,) = fig.axes
    curves = {line.get_label(): line.get_ydata() for line in ax.lines}
    assert np.allclose(curves["local"], [1.0, 4.0])
    assert np.allclose(curves["distributed"], [21.0, 24.0])
    assert np.allclose(curves["no noise"], 50.0) and np.allclose(curves["chance"], 11.0)
    assert ax.get_xscale() == "log"
