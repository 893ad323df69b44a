"""Composition theorems side by side: basic, advanced, RDP and PLD on one mechanism.

Private home of the functions ``fl_dp_lab.accounting`` re-exports
(``advanced_composition``, ``composed_epsilon``, ``epsilon_curves``).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Literal, get_args

import numpy as np

from fl_dp_lab._validate import check_choice, check_int, check_real
from fl_dp_lab.accounting import _pld
from fl_dp_lab.accounting._accounting_core import (
    ACCOUNTANTS,
    NEGLIGIBLE_NOISE,
    check_mechanism,
    composed_pld,
    directions,
    epsilon_checked,
)

__all__ = [
    "COMPOSITIONS",
    "Composition",
    "advanced_composition",
    "composed_epsilon",
    "epsilon_curves",
]

#: Composition methods ``composed_epsilon`` knows, loosest first.
Composition = Literal["basic", "advanced", "rdp", "pld"]
COMPOSITIONS: tuple[Composition, ...] = get_args(Composition)


def advanced_composition(
    *, epsilon: float, delta: float, steps: int, delta_slack: float
) -> tuple[float, float]:
    """(epsilon, delta) of ``steps`` runs of an (epsilon, delta)-DP mechanism, any order.

    Dwork, Rothblum, Vadhan (2010), Theorem III.3 (advanced composition):
    eps_total = sqrt(2 T log(1/delta')) eps + T eps (exp(eps) - 1),
    delta_total = T delta + delta'. Basic composition (T eps, T delta) is the
    same theorem's crude cousin; advanced wins once T is large, and both
    lose to RDP and PLD, which use the mechanism itself rather than only its
    (epsilon, delta).

    >>> eps, dlt = advanced_composition(epsilon=0.1, delta=1e-7, steps=100, delta_slack=1e-5)
    >>> round(eps, 3), round(dlt, 12)
    (5.85, 2e-05)
    """
    eps = check_real("epsilon", epsilon, low=0.0)
    dlt = check_real("delta", delta, low=0.0, high=1.0)
    steps = check_int("steps", steps, minimum=0)
    slack = check_real("delta_slack", delta_slack, low=0.0, high=1.0, low_open=True, high_open=True)
    total = math.sqrt(2.0 * steps * math.log(1.0 / slack)) * eps + steps * eps * math.expm1(eps)
    return total, steps * dlt + slack


def composed_epsilon(
    *,
    noise_multiplier: float,
    sample_rate: float,
    steps: int,
    delta: float,
    method: Composition = "pld",
) -> float:
    """Epsilon of ``steps`` subsampled-Gaussian steps by one of four composition methods.

    - "basic": each step is (eps0, delta / T)-DP (eps0 from the exact one-step
      PLD, amplification by subsampling included) and epsilons add: T eps0;
    - "advanced": each step is (eps0, delta / (2T))-DP and Dwork-Rothblum-Vadhan
      composition spends the other delta / 2;
    - "rdp" and "pld": as ``epsilon``.

    The same mechanism and the same total delta for all four, so a plot of them
    against T compares the analyses, not the mechanisms.

    >>> [round(composed_epsilon(noise_multiplier=4.0, sample_rate=0.01, steps=1000,
    ...                         delta=1e-5, method=m), 2) for m in COMPOSITIONS]
    [18.71, 3.49, 0.3, 0.27]
    """
    sigma, q, steps, delta = check_mechanism(noise_multiplier, sample_rate, steps, delta)
    check_choice("method", method, COMPOSITIONS)
    return _composed(sigma, q, steps, delta, method)


def _composed(sigma: float, q: float, steps: int, delta: float, method: Composition) -> float:
    """``composed_epsilon`` after validation."""
    if method in ACCOUNTANTS or steps == 0 or sigma == 0.0:
        return epsilon_checked(sigma, q, steps, delta, "rdp" if method == "rdp" else "pld")
    if method == "basic":
        return steps * epsilon_checked(sigma, q, 1, delta / steps, "pld")
    step_eps = epsilon_checked(sigma, q, 1, delta / (2 * steps), "pld")
    return advanced_composition(
        epsilon=step_eps, delta=delta / (2 * steps), steps=steps, delta_slack=delta / 2
    )[0]


def epsilon_curves(
    *,
    noise_multiplier: float,
    sample_rate: float,
    steps: int,
    delta: float,
    points: int = 8,
    methods: Sequence[Composition] = COMPOSITIONS,
) -> tuple[np.ndarray, dict[Composition, np.ndarray]]:
    """Epsilon against step count for each method, at ``points`` log-spaced step counts.

    What notebook 05b's figure and dashboard draw: a few step counts from 1 to
    ``steps``. Every point of the "rdp", "basic" and "advanced" curves is
    ``composed_epsilon`` at its step count. The "pld" curve's last point is the
    PLD accountant's epsilon for ``steps`` (``accounting.epsilon``, the same
    number); its earlier points are composed on the grid that accountant chose
    for ``steps`` (``_pld_curve``), which skips the search for a grid per step
    count: they are the accountant's own numbers wherever its grid for that step
    count is the same one (whenever the last step count's losses fit its grid
    without coarsening it, as at sigma = 4, q = 0.01, T = 10,000), and otherwise
    still pessimistic upper bounds on the same mechanism, within 0.1 % of the
    accountant's (1e-5 where we looked). The RDP curve uses ``DEFAULT_ORDERS``;
    where noise is so weak that its best order is the grid's edge (1.1), the
    curve is that grid's bound, still an upper bound, and no edge-of-grid
    warning is raised: the caller cannot pass other orders here.

    Returns:
        (step counts, {method: epsilons}); all inf when sigma is 0.

    >>> grid, curves = epsilon_curves(noise_multiplier=4.0, sample_rate=0.01, steps=100,
    ...                               delta=1e-5, points=3)
    >>> grid.tolist(), bool(np.all(curves["pld"] <= curves["rdp"]))
    ([1, 10, 100], True)
    """
    sigma, q, steps, delta = check_mechanism(noise_multiplier, sample_rate, steps, delta)
    points = check_int("points", points, minimum=2)
    for method in methods:
        check_choice("method", method, COMPOSITIONS)
    grid = np.unique(np.round(np.geomspace(1, max(steps, 1), points)).astype(int))
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="the best Rényi order .* is at the edge", category=RuntimeWarning
        )
        curves = {
            m: _pld_curve(sigma, q, grid, delta)
            if m == "pld"
            else np.array([_composed(sigma, q, int(t), delta, m) for t in grid])
            for m in methods
        }
    return grid, curves


def _pld_curve(sigma: float, q: float, grid: np.ndarray, delta: float) -> np.ndarray:
    """PLD epsilon at each step count of ``grid`` (increasing), all on the last one's grid.

    The last point is ``epsilon_checked`` itself. The accountant picks a loss grid
    per step count, and at weak noise each pick costs FFTs of 2^21 points (one
    per coarsening of the grid); here the earlier step counts reuse the grid of
    the last one, already chosen, so each costs one FFT no longer than the last
    one's, and their Chernoff windows share that grid's one-step moments.
    Connect-the-dots rounding is pessimistic on any grid, so every point is an
    upper bound on the mechanism's epsilon.
    """
    steps = int(grid[-1])
    final = epsilon_checked(sigma, q, steps, delta, "pld")
    if sigma < NEGLIGIBLE_NOISE or steps <= 1:
        return np.array([epsilon_checked(sigma, q, int(t), delta, "pld") for t in grid])
    values = []
    for t in grid[:-1]:
        eps = 0.0
        for direction in directions(q):
            interval = composed_pld(sigma, q, steps, direction).interval  # cached by the call above
            one = _pld.subsampled_gaussian_pld(min(sigma, _pld.LARGE_NOISE), q, interval, direction)
            eps = max(eps, _pld.epsilon_for_delta(_pld.compose([(one, int(t))]), delta))
        values.append(eps)
    return np.array([*values, final])
