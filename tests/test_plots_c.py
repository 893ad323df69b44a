"""Figures of notebooks 09 and 12 draw the numbers they are given."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest

from fl_dp_lab.federated import FederatedHistory
from fl_dp_lab.plots.federated import (
    adaptive_clipping_figure,
    flower_agreement_figure,
    flower_runs_figure,
)
from fl_dp_lab.plots.trust import TRUST_MODELS, image_panels_figure, noise_std_figure


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
