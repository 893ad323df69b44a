"""Notebook 06's clipping dashboard and figures, driven without a browser."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from fl_dp_lab.accounting import epsilon
from fl_dp_lab.dpsgd import DPHistory, add_noise, clip_per_sample
from fl_dp_lab.plots.dpsgd import (
    batch_size_figure,
    clipping_figure,
    clipping_picture,
    gradient_plane,
    norms_figure,
    privacy_utility_figure,
    project_batch,
    reconstruction_figure,
    timing_figure,
    training_figure,
    update_clipping_figure,
)
from fl_dp_lab.widgets.dpsgd import clipping_dashboard


def _per_sample(batch: int = 16, size: int = 40) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randn(batch, size, generator=g) * torch.linspace(0.2, 4.0, batch)[:, None] + 0.3


def test_dragging_sigma_and_c_redraws_and_reaches_no_privacy():
    box = clipping_dashboard(_per_sample(), sample_rate=0.1, steps=50, delta=1e-5)
    sigma, clip, readout, _ = box.children
    spent = epsilon(noise_multiplier=1.0, sample_rate=0.1, steps=50, delta=1e-5, accountant="rdp")
    assert f"({spent:.2f}, 1e-05)-DP" in readout.value
    sigma.value = 0.0  # the edge: no noise
    assert "no privacy: epsilon = inf" in readout.value
    sigma.value = sigma.step  # the smallest non-zero sigma still draws
    assert "-DP" in readout.value
    sigma.value = sigma.max
    clip.value = clip.min
    assert "100% of the examples were clipped" in readout.value
    clip.value = clip.max
    assert "C = 5.00" in readout.value


def test_picture_clips_in_full_dimension_and_draws_noise_of_std_sigma_c_over_b():
    # Prepare
    per_sample = _per_sample(batch=16)
    axes = gradient_plane(per_sample)
    # Execute
    picture = clipping_picture(
        per_sample, axes, max_grad_norm=1.5, noise_multiplier=2.0,
        generator=torch.Generator().manual_seed(1), draws=4000,
    )  # fmt: skip
    # Assert: orthonormal axes, the first along the mean gradient
    torch.testing.assert_close(axes.T @ axes, torch.eye(2), atol=1e-5, rtol=0)
    assert picture.true_mean[1] == pytest.approx(0.0, abs=1e-5)
    assert np.all(np.linalg.norm(picture.clipped, axis=1) <= 1.5 + 1e-5)  # projections shrink
    assert picture.noise_std == pytest.approx(2.0 * 1.5 / 16)
    # 4,000 draws: the std's standard error is ~1.1 %, the band 5 %
    spread = (picture.cloud - picture.clipped_mean).std(0)
    np.testing.assert_allclose(spread, picture.noise_std, rtol=0.05)
    norms = per_sample.norm(dim=1)
    assert picture.clipped_share == pytest.approx(float((norms > 1.5).double().mean()))


def test_projected_picture_matches_clipping_and_noising_the_full_batch():
    # Prepare: the reference clips every example in full dimension, then projects
    per_sample = _per_sample(batch=16)
    axes = gradient_plane(per_sample)
    clipped = clip_per_sample({"g": per_sample}, max_grad_norm=0.7)["g"]
    noisy = add_noise({"g": clipped.sum(0)}, max_grad_norm=0.7, noise_multiplier=1.3,
                      generator=torch.Generator().manual_seed(5))["g"]  # fmt: skip
    # Execute: the dashboard's path, projected once
    picture = clipping_picture(
        project_batch(per_sample, axes), max_grad_norm=0.7, noise_multiplier=1.3,
        generator=torch.Generator().manual_seed(5),
    )  # fmt: skip
    # Assert
    np.testing.assert_allclose(picture.clipped, (clipped @ axes).numpy(), atol=1e-5)
    np.testing.assert_allclose(picture.clipped_mean, (clipped.mean(0) @ axes).numpy(), atol=1e-5)
    np.testing.assert_allclose(picture.step, (noisy / 16 @ axes).numpy(), atol=1e-5)
    np.testing.assert_allclose(picture.points, (per_sample @ axes).numpy(), atol=1e-5)
    with pytest.raises(TypeError, match="axes"):
        clipping_picture(per_sample, max_grad_norm=1.0, noise_multiplier=1.0,
                         generator=torch.Generator())  # fmt: skip


def test_figure_artists_follow_the_picture():
    per_sample = _per_sample()
    axes = gradient_plane(per_sample)

    def picture(c, s):
        return clipping_picture(per_sample, axes, max_grad_norm=c, noise_multiplier=s,
                                generator=torch.Generator().manual_seed(0))  # fmt: skip

    fig, artists = clipping_figure(picture(1.0, 1.0))
    assert artists["ball"].get_radius() == 1.0
    update_clipping_figure(artists, picture(2.5, 0.0))
    assert artists["ball"].get_radius() == 2.5
    assert "no privacy" in artists["right"].get_title()
    np.testing.assert_allclose(artists["step"].get_xdata(), [picture(2.5, 0.0).clipped_mean[0]])
    plt.close(fig)


def test_dashboard_validates_its_inputs():
    with pytest.raises(ValueError, match=r"noise_multiplier must be in \[0, 5\]"):
        clipping_dashboard(_per_sample(), noise_multiplier=6.0, sample_rate=0.1, steps=5)
    with pytest.raises(ValueError, match="per_sample must be a tensor of shape"):
        clipping_dashboard(torch.ones(3), sample_rate=0.1, steps=5)
    with pytest.raises(ValueError, match=r"sample_rate must be in \(0, 1\]"):
        clipping_dashboard(_per_sample(), sample_rate=0.0, steps=5)


def test_notebook_figures_state_what_their_data_show():
    history = DPHistory(epoch=[1, 2], test_accuracy=[0.80, 0.86], epsilon=[1.5, 3.0])
    assert training_figure(history, [0.70, 0.90], delta=1e-5).axes[0].get_title() == (
        "DP-SGD ends 4.0 points behind plain SGD"
    )
    assert "ahead of" in training_figure(history, [0.9, 0.85], delta=1e-5).axes[0].get_title()
    assert "ε = 3.00" in training_figure(history, [0.7, 0.9], delta=1e-5).axes[1].get_title()
    timing = timing_figure({"fast": 1.0, "slow": 50.0})
    assert timing.axes[0].get_title() == "slow is 50x slower than fast"
    norms = norms_figure(np.array([0.5, 2.0, 4.0, 8.0]), np.array([0.5, 1, 1, 1]), max_grad_norm=1)
    assert norms.axes[0].get_title().startswith("Clipping caps 75% of the examples at C")
    others = [
        batch_size_figure(np.array([500, 510, 520]), 512, np.array([0, 1, 1, 2])),
        privacy_utility_figure([1.0, 3.0], [0.84, 0.87], 0.9, delta=1e-5),
        reconstruction_figure([np.zeros(784), np.ones(784)], ["original", "attack"]),
    ]
    assert [len(f.axes) for f in others] == [2, 1, 2]
    plt.close("all")


def test_moving_axes_redraw_one_panel_and_frames_equal_fresh_drawings(monkeypatch):
    # Arrange: catch the figure shown; count drawings of the whole figure
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from fl_dp_lab.plots import _BLITS, _render
    from fl_dp_lab.widgets import dpsgd

    shown, draws = [], []
    show, draw = dpsgd.show_figure, FigureCanvasAgg.draw
    monkeypatch.setattr(dpsgd, "show_figure", lambda out, fig: shown.append(fig) or show(out, fig))
    # gradient norms up to about 2.5: C's stops up to 5 outgrow them
    box = clipping_dashboard(_per_sample() / 10, sample_rate=0.1, steps=50, delta=1e-5)
    sigma, clip, _, _ = box.children
    fig = shown[-1]
    monkeypatch.setattr(FigureCanvasAgg, "draw", lambda canvas: draws.append(1) or draw(canvas))
    limits = set()
    # Act: C from end to end (the ball outgrows the gradients: the left panel's axes grow),
    # then sigma (the noise cloud moves the right panel's)
    for control in (clip, sigma):
        stops = np.round(np.arange(control.min, control.max + 1e-9, 0.25), 10)
        for value in [*stops, *stops[::-1]]:
            control.value = float(value)
            limits.add(tuple(ax.get_xlim() for ax in fig.axes))
    # Assert: both panels' axes moved, and were redrawn one panel at a time
    assert len({left for left, _ in limits}) > 3 and len({right for _, right in limits}) > 3
    assert draws == []
    # each frame is the figure drawn from scratch, pixel for pixel
    for c, s in ((4.0, 0.5), (0.3, 3.0), (2.0, 0.0)):
        clip.value, sigma.value = c, s
        frame = np.asarray(_render(fig))
        _BLITS[fig].background = None
        assert np.array_equal(frame, np.asarray(_render(fig))), (c, s)
