"""Notebook 04's sigma dashboard, driven without a browser."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pytest
from scipy import stats

from fl_dp_lab.mechanisms import gaussian_epsilon
from fl_dp_lab.plots.mechanisms import gaussian_privacy_figure, update_gaussian_privacy_figure
from fl_dp_lab.widgets.mechanisms import gaussian_dashboard


def test_dragging_sigma_updates_the_readout_and_reaches_no_privacy():
    box = gaussian_dashboard(sigma=1.0, delta=1e-5)
    slider, readout, output = box.children
    expected = gaussian_epsilon(sigma=1.0, delta=1e-5)
    assert f"({expected:.2f}, 1e-05)-DP" in readout.value
    slider.value = 2.0
    assert f"({gaussian_epsilon(sigma=2.0, delta=1e-5):.2f}, 1e-05)-DP" in readout.value
    slider.value = 0.0  # the edge: no noise
    assert "no privacy: epsilon = inf" in readout.value
    slider.value = slider.step  # the smallest non-zero sigma still draws
    assert "-DP" in readout.value
    slider.value = slider.max
    assert f"({gaussian_epsilon(sigma=5.0, delta=1e-5):.2f}" in readout.value


def test_figure_artists_follow_sigma():
    fig, artists = gaussian_privacy_figure(1.0, sensitivity=2.0, delta=1e-6)
    x, density = artists["line_d"].get_data()
    assert np.trapezoid(density, x) == pytest.approx(1.0, abs=1e-3)
    epsilon = update_gaussian_privacy_figure(artists, 3.0)
    assert epsilon == pytest.approx(gaussian_epsilon(sigma=3.0, delta=1e-6, sensitivity=2.0))
    assert artists["curve_marker"].get_xdata()[0] == pytest.approx(epsilon)
    assert update_gaussian_privacy_figure(artists, 0.0) == math.inf
    assert artists["no_loss_text"].get_visible()
    assert not artists["eps_marker"].get_visible()
    assert not artists["axes"][1].get_legend().get_visible()  # nothing left to label
    assert "ε = ∞" in fig._suptitle.get_text()
    update_gaussian_privacy_figure(artists, 0.5)  # and back again
    assert artists["eps_marker"].get_visible() and not artists["no_loss_text"].get_visible()
    legend = artists["axes"][1].get_legend()
    assert all(handle.get_visible() for handle in legend.legend_handles)  # not copied hidden
    # the tail the delta pays for is stated, P[L > eps] for L ~ N(mu, 2 mu), s = 2, sigma = 0.5
    mean, std = 8.0, 4.0
    tail = stats.norm.sf(gaussian_epsilon(sigma=0.5, delta=1e-6, sensitivity=2.0), mean, std)
    assert artists["tail_text"].get_text().endswith(f"{tail:.1e}")
    plt.close(fig)


def test_noise_too_small_for_any_epsilon_draws_no_privacy_without_crashing():
    fig, artists = gaussian_privacy_figure(1.0)
    assert update_gaussian_privacy_figure(artists, 1e-9) == math.inf
    assert artists["no_loss_text"].get_visible() and not artists["tail_text"].get_visible()
    fig.canvas.draw()  # every artist still renders
    plt.close(fig)


def test_dashboard_validates_its_inputs():
    with pytest.raises(ValueError, match=r"sigma must be in \[0, 5\], got 6.0"):
        gaussian_dashboard(sigma=6.0)
    with pytest.raises(ValueError, match=r"delta must be in \(0, 1\)"):
        gaussian_dashboard(delta=0.0)


def test_dashboard_figure_keeps_the_constrained_layout_it_was_given(monkeypatch):
    # Prepare: catch the figure the dashboard shows; lay out a fresh one for reference
    shown = []
    monkeypatch.setattr(
        "fl_dp_lab.widgets.mechanisms.show_figure", lambda output, fig: shown.append(fig)
    )
    reference, _ = gaussian_privacy_figure(1.0, delta=1e-5)
    reference.draw_without_rendering()
    # Execute
    gaussian_dashboard(sigma=1.0, delta=1e-5)
    # Assert: the axes sit where constrained layout puts them, not at matplotlib's defaults
    fig = shown[-1]
    for ax, expected in zip(fig.axes, reference.axes, strict=True):
        np.testing.assert_allclose(ax.get_position().bounds, expected.get_position().bounds)
    assert fig.axes[0].get_position().x0 != pytest.approx(plt.rcParams["figure.subplot.left"])


def _stops(slider) -> list[float]:
    return [round(k * slider.step, 10) for k in range(round(slider.max / slider.step) + 1)]


def _pixels(fig, *, fresh: bool = False) -> np.ndarray:
    """The frame the dashboard sends (as pixels), or the figure drawn from scratch."""
    from fl_dp_lab.plots import _BLITS, _render

    blit = _BLITS[fig]
    views = blit.views
    if fresh:  # no kept background, no kept view, no kept title
        blit.background, blit.views = None, None
    try:
        return np.asarray(_render(fig))
    finally:
        blit.views = views


def test_every_sigma_stop_shows_its_curves_inside_axes_that_depend_on_sigma_alone():
    # Arrange
    fig, artists = gaussian_privacy_figure(1.0)
    dens, loss, curve = artists["axes"]
    limits = {}
    box = gaussian_dashboard(sigma=1.0)
    stops = _stops(box.children[0])
    # Act: every stop up, then every stop down (the axes may not remember where they were)
    for sigma in [*stops, *stops[::-1]]:
        epsilon = update_gaussian_privacy_figure(artists, sigma)
        shown = tuple((ax.get_xlim(), ax.get_ylim()) for ax in artists["axes"])
        # Assert: the same axes for the same sigma, whichever way the slider came
        assert limits.setdefault(sigma, shown) == shown, sigma
        if sigma == 0:
            continue
        # both densities out to 4 sigma on either side, their peak inside the panel
        assert dens.get_xlim()[0] <= -4 * sigma and dens.get_xlim()[1] >= 1 + 4 * sigma
        assert 0.5 * dens.get_ylim()[1] <= stats.norm.pdf(0, 0, sigma) <= dens.get_ylim()[1]
        # the privacy-loss law from mean - 4 std (or 0) to past epsilon, its peak inside
        mean, std = 1 / (2 * sigma**2), 1 / sigma
        x, pdf = artists["loss_line"].get_data()
        assert x[0] == loss.get_xlim()[0] <= max(0.0, mean - 4 * std)
        assert x[-1] == loss.get_xlim()[1] >= max(mean + 4 * std, epsilon)
        assert pdf.max() <= loss.get_ylim()[1]
        # the epsilon marker on the delta(epsilon) panel, whose curve spans its x-axis
        assert epsilon <= curve.get_xlim()[1] == artists["curve_line"].get_xdata()[-1]
    # a handful of views for 101 stops: each is drawn once when the dashboard is built
    assert len(set(limits.values())) <= 15
    plt.close(fig)


def test_the_sigma_dashboard_draws_every_view_once_and_its_frames_equal_fresh_drawings(
    monkeypatch,
):
    # Arrange: count the full drawings of the figure; catch the figure shown
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from fl_dp_lab.plots import _BLITS
    from fl_dp_lab.widgets import mechanisms

    draws, shown = [], []
    draw, show = FigureCanvasAgg.draw, mechanisms.show_figure
    monkeypatch.setattr(FigureCanvasAgg, "draw", lambda canvas: draws.append(1) or draw(canvas))
    monkeypatch.setattr(
        mechanisms, "show_figure", lambda output, fig: shown.append(fig) or show(output, fig)
    )
    box = gaussian_dashboard(sigma=1.0)
    slider, fig = box.children[0], shown[-1]
    built = len(draws)
    assert 10 <= len(_BLITS[fig].views) <= 15  # each view drawn once, when built
    # Act: Home, End, and every stop in between, as a learner drags
    stops = _stops(slider)
    for sigma in [0.0, 5.0, *stops]:
        slider.value = sigma
    # Assert: no drawing of the whole figure after the build
    assert len(draws) == built
    # and what is sent is the figure drawn from scratch, pixel for pixel, in every band
    for sigma in (0.0, 0.05, 0.35, 1.0, 1.3, 4.95, 0.9, 0.0):
        slider.value = sigma
        assert np.array_equal(_pixels(fig), _pixels(fig, fresh=True)), sigma
