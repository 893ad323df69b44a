"""What the dashboards draw from shortcuts and memory equals what is computed afresh.

Notebook 05b's PLD curve composes its earlier step counts on the grid of its last one
(``fl_dp_lab.accounting._composition._pld_curve``) and the dashboard remembers every stop's curves;
the dashboards of notebooks 01, 04, 06 and 07 redraw figures in place. Each shortcut is
held here to the accountant or to a figure built from scratch.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from fl_dp_lab.accounting import epsilon, epsilon_curves, remembered_epsilon_curves

DELTA = 1e-5


@pytest.mark.parametrize(
    ("sigma", "q", "steps"),
    [(0.1, 0.01, 1000), (0.2, 1.0, 100), (0.3, 0.3, 3162), (1.0, 0.01, 10_000), (4.0, 1e-4, 56)],
)
def test_the_pld_curve_ends_at_the_accountants_epsilon_and_tracks_it_before(sigma, q, steps):
    # Execute
    grid, curves = epsilon_curves(
        noise_multiplier=sigma, sample_rate=q, steps=steps, delta=DELTA, points=6, methods=["pld"]
    )
    # Assert: the last point is the accountant's number itself, not a close one
    fresh = [epsilon(noise_multiplier=sigma, sample_rate=q, steps=int(t), delta=DELTA)
             for t in grid]  # fmt: skip
    assert grid[-1] == steps and curves["pld"][-1] == fresh[-1]
    # the earlier points, composed on the last one's grid, agree to 0.1 % (all upper bounds)
    np.testing.assert_allclose(curves["pld"], fresh, rtol=1e-3)


def test_the_pld_curve_is_the_accountants_at_every_point_where_its_grid_is_the_same():
    # sigma = 4: no step count needs a coarser grid, so the shortcut changes no number
    grid, curves = epsilon_curves(
        noise_multiplier=4.0, sample_rate=0.01, steps=10_000, delta=DELTA, points=6
    )
    fresh = [epsilon(noise_multiplier=4.0, sample_rate=0.01, steps=int(t), delta=DELTA)
             for t in grid]  # fmt: skip
    assert curves["pld"].tolist() == fresh


def test_no_noise_gives_an_infinite_curve_and_one_step_its_own_epsilon():
    _, none = epsilon_curves(noise_multiplier=0.0, sample_rate=0.1, steps=100, delta=DELTA,
                             methods=["pld"])  # fmt: skip
    assert np.all(np.isinf(none["pld"]))
    grid, one = epsilon_curves(noise_multiplier=1.0, sample_rate=0.1, steps=1, delta=DELTA,
                               methods=["pld"])  # fmt: skip
    assert grid.tolist() == [1]
    assert one["pld"][0] == epsilon(noise_multiplier=1.0, sample_rate=0.1, steps=1, delta=DELTA)


def test_remembered_curves_equal_the_curves_computed_afresh():
    # Arrange: a stop remembered once
    args = dict(noise_multiplier=0.7, sample_rate=0.05, steps=562, delta=DELTA, points=6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        first = remembered_epsilon_curves(**args)
        # Act: asked again, now from memory
        again = remembered_epsilon_curves(**args, compute=False)
        grid, fresh = epsilon_curves(**args)
    # Assert
    assert again is not None
    for remembered in (first, again):
        assert remembered[0].tolist() == grid.tolist()
        for method, values in fresh.items():
            assert remembered[1][method].tolist() == values.tolist(), method


def test_windows_from_a_pld_s_remembered_moments_equal_those_of_a_fresh_copy():
    from fl_dp_lab.accounting import _pld

    # Arrange: one step's PLD at weak noise, whose moments the curve's step counts share
    one = _pld.subsampled_gaussian_pld(0.2, 0.1, 0.002, "remove")
    counts = [10_000, 10, 1585, 1, 251]
    warm = [_pld._window([(one, c)]) for c in counts]  # each count adds its t to the memory
    # Act: the same windows from copies that remember nothing
    fresh = [
        _pld._window([(_pld.GridPLD(one.offset, one.pmf.copy(), one.infinity_mass,
                                    one.interval), c)])
        for c in counts
    ]  # fmt: skip
    # Assert
    assert warm == fresh
    assert len(one.moments["log_mgf"]) > 2 * 16  # several counts' t: shared, not recomputed


@pytest.mark.parametrize("count", [2, 99, 100, 1000, 100_000])
def test_a_spectrum_s_power_in_polar_form_is_numpy_s_complex_power(count):
    from scipy import fft

    from fl_dp_lab.accounting import _pld

    # Arrange: the spectrum of one step's PLD on a composition's window
    one = _pld.subsampled_gaussian_pld(0.5, 0.05, 0.002, "remove")
    spectrum = fft.rfft(one.pmf, n=1 << 17)
    # Act
    ours = _pld._power(spectrum, count)
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        numpy_s = spectrum**count
    # Assert: the composed masses agree to round-off (either power carries a relative
    # error of about count * 1e-16: count times a logarithm's rounding)
    ours_pmf, numpy_pmf = fft.irfft(ours, n=1 << 17), fft.irfft(numpy_s, n=1 << 17)
    assert np.max(np.abs(ours_pmf - numpy_pmf)) <= 1e-16 * max(count, 100) * np.max(numpy_pmf)
    np.testing.assert_allclose(np.abs(ours), np.abs(numpy_s), rtol=1e-9, atol=1e-300)


def _pixels(fig) -> np.ndarray:
    from fl_dp_lab.plots import _render

    return np.asarray(_render(fig))


def _fresh_pixels(fig) -> np.ndarray:
    """The same figure drawn from scratch: no background, no kept title kept."""
    from fl_dp_lab.plots import _BLITS

    _BLITS[fig].background = None
    return _pixels(fig)


def test_a_title_pasted_from_memory_gives_the_pixels_of_one_drawn_afresh():
    import matplotlib.pyplot as plt

    from fl_dp_lab.plots import _BLITS, animate, new_figure

    # Arrange: two panels whose titles and lines move, like a dashboard's
    fig, (left, right) = new_figure(1, 2, width=3.0, height=2.5)
    (line,) = left.plot([0, 1], [0, 1])
    (dots,) = right.plot([0, 1], [1, 0], "o")
    left.set_title("left: fixed")
    right.set_title("right: 0")
    animate(fig, [line, dots, left.title, right.title])
    fig.draw_without_rendering()
    fig.set_layout_engine("none")
    for k in range(1, 4):
        _pixels(fig)
        _pixels(fig)  # drawn twice the same, the left title's pixels are kept
        # Act: new data and a new right title; the left one stays
        line.set_ydata([0, k / 4])
        right.title.set_text(f"right: {k}")
        shown = _pixels(fig)
        kept = {t.get_text() for t, (_, px) in _BLITS[fig].titles.items() if px is not None}
        # Assert: the left title was pasted from memory, and the frame is the figure drawn
        # from scratch, pixel for pixel
        assert kept == {"left: fixed"}
        assert np.array_equal(shown, _fresh_pixels(fig))
    # a title that changes after being kept is drawn anew
    left.title.set_text("left: moved")
    assert np.array_equal(_pixels(fig), _fresh_pixels(fig))
    plt.close(fig)


def test_the_step_size_dashboard_frames_equal_fresh_drawings():
    from fl_dp_lab.plots import _BLITS
    from fl_dp_lab.widgets.numdiff import step_size_explorer

    box = step_size_explorer(np.sin, np.cos, x=1.0, h=1e-2)
    slider = box.children[1]
    blit = _BLITS[box.figure]
    for values in ((1e-3, 1e-4, 1e-5), (1e-9, 1e-8, 0.5)):
        for value in values:  # each redraw moves the secant and its title; the error's stays
            slider.value = value
        assert any(pixels is not None for _, pixels in blit.titles.values())
        assert np.array_equal(_pixels(box.figure), _fresh_pixels(box.figure))
