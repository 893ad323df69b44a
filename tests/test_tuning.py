"""Tests for fl_dp_lab.accounting.best_of_random_runs_epsilon: the privacy cost of picking the best of several runs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fl_dp_lab.accounting import (
    DEFAULT_ORDERS,
    best_of_random_runs_epsilon,
    epsilon,
    rdp_subsampled_gaussian,
    rdp_to_epsilon,
)

ORDERS = np.array(DEFAULT_ORDERS, dtype=float)


def _gaussian_rdp(sigma: float) -> np.ndarray:
    return ORDERS / (2 * sigma**2)  # one Gaussian mechanism, sensitivity 1 (Mironov 2017)


def test_never_below_one_run_and_grows_with_the_number_of_candidates():
    one_run = _gaussian_rdp(4.0)
    single, _ = rdp_to_epsilon(rdp=one_run, orders=ORDERS, delta=1e-5)
    bounds = [
        best_of_random_runs_epsilon(run_rdp=one_run, orders=ORDERS, mean_runs=k, delta=1e-5)
        for k in (1, 3, 10, 100, 1000)
    ]
    assert single < bounds[0]
    assert all(a < b for a, b in zip(bounds, bounds[1:]))


def test_matches_theorem_2_at_one_pair_of_orders_worked_by_hand():
    # Prepare: one Gaussian run at sigma = 4 and E[K] = 10; Theorem 2 (eta = 1) at the
    # single pair (lambda, lambda_hat) = (8, 4), converted with Mironov's simpler
    # eps = r + log(1/delta) / (lambda - 1), which is never below the tighter conversion.
    sigma, mean_runs, delta = 4.0, 10.0, 1e-5
    lam, lam_hat = 8.0, 4.0
    r_lam, r_hat = lam / (2 * sigma**2), lam_hat / (2 * sigma**2)
    by_hand = (
        r_lam + 2 * (1 - 1 / lam_hat) * r_hat + 2 * math.log(mean_runs) / lam_hat
        + math.log(mean_runs) / (lam - 1) + math.log(1 / delta) / (lam - 1)
    )  # fmt: skip
    # Execute
    ours = best_of_random_runs_epsilon(
        run_rdp=_gaussian_rdp(sigma), orders=ORDERS, mean_runs=mean_runs, delta=delta
    )
    # Assert: the grid minimum can only be lower, and not by much on a fine grid
    assert ours <= by_hand
    assert ours > 0.6 * by_hand


def test_private_selection_beats_naive_composition_for_many_runs():
    # The course's claim (notebooks 07, 09): a dozen or more candidates are cheaper to
    # select privately than to compose naively; a handful are not.
    q, sigma, steps, delta = 0.005, 1.0, 1000, 1e-5
    run = steps * rdp_subsampled_gaussian(sample_rate=q, noise_multiplier=sigma, orders=ORDERS)
    for k, selection_wins in ((2, False), (100, True)):
        naive = epsilon(noise_multiplier=sigma, sample_rate=q, steps=k * steps, delta=delta)
        best = best_of_random_runs_epsilon(run_rdp=run, orders=ORDERS, mean_runs=k, delta=delta)
        assert (best < naive) is selection_wins


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"mean_runs": 0.5}, "mean_runs"),
        ({"mean_runs": float("nan")}, "mean_runs"),
        ({"delta": 0.0}, "delta"),
        ({"run_rdp": [1.0, 2.0]}, "run_rdp"),
        ({"run_rdp": [-1.0] * len(DEFAULT_ORDERS)}, "run_rdp"),
        ({"run_rdp": [math.inf] * len(DEFAULT_ORDERS)}, "run_rdp"),
    ],
)
def test_bad_input_is_refused_by_name(kwargs, name):
    args = {"run_rdp": _gaussian_rdp(4.0), "orders": ORDERS, "mean_runs": 10.0, "delta": 1e-5}
    args.update(kwargs)
    with pytest.raises(ValueError, match=name):
        best_of_random_runs_epsilon(**args)
