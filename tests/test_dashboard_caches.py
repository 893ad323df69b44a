"""What the dashboards draw from shortcuts and memory equals what is computed afresh.

Notebook 05's PLD curve composes its earlier step counts on the grid of its last one
(``fl_dp_lab._composition._pld_curve``) and the dashboard remembers every stop's curves;
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
