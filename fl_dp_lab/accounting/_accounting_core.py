"""The validated core behind ``fl_dp_lab.accounting``: epsilon by RDP or PLD, with caches.

Private; ``fl_dp_lab.accounting`` and ``fl_dp_lab.accounting._composition`` call it after
checking their arguments.
"""

from __future__ import annotations

import math
import warnings
from functools import lru_cache
from typing import Literal, get_args

import numpy as np

from fl_dp_lab._validate import check_int, check_real, fail
from fl_dp_lab.accounting import _pld, _rdp

__all__ = [
    "ACCOUNTANTS",
    "Accountant",
    "DEFAULT_ORDERS",
    "MAX_STEPS",
    "check_mechanism",
    "check_orders",
    "composed_pld",
    "directions",
    "epsilon_checked",
    "rdp_cached",
    "rdp_to_epsilon_checked",
]

#: Rényi orders used by default: dp_accounting's (1.1 ... 10.9, 11 ... 63, 128 ... 1024).
DEFAULT_ORDERS: tuple[float, ...] = _rdp.DEFAULT_ORDERS
#: ``accountant`` values: Renyi DP (Mironov, 2017) or the privacy-loss distribution.
Accountant = Literal["rdp", "pld"]
ACCOUNTANTS: tuple[Accountant, ...] = get_args(Accountant)
#: Below this noise multiplier epsilon is reported as inf, the bound it is in effect: one
#: step's privacy loss reaches 1 / (2 sigma^2) >= 5e17 nats, past what the PLD grid holds
#: (between 1e-20 and 1e-9, sigma with q = 1e-300, or composed with other steps, failed
#: inside numpy), and further down RDP's terms exp(1 / sigma^2) overflow float64.
NEGLIGIBLE_NOISE = 1e-9
#: The most steps the accountants take: more than any training run, and where the PLD
#: accountant already needs seconds (its FFT window is coarsened so far that epsilon is
#: loose by orders of magnitude; 1e15 steps took minutes). RDP would be instant, but one
#: bound for both keeps "what steps may be" the same everywhere.
MAX_STEPS = 10**9


def epsilon_checked(
    sigma: float, q: float, steps: int, delta: float, accountant: Accountant
) -> float:
    """``accounting.epsilon`` after validation."""
    if steps == 0:
        return 0.0
    if sigma < NEGLIGIBLE_NOISE:  # 0 included: no noise, no privacy
        return math.inf
    if accountant == "rdp":
        rdp = steps * rdp_cached(q, sigma, DEFAULT_ORDERS)
        return rdp_to_epsilon_checked(rdp, np.array(DEFAULT_ORDERS), delta)[0]
    return max(
        _pld.epsilon_for_delta(composed_pld(sigma, q, steps, direction), delta)
        for direction in directions(q)
    )


def directions(*sample_rates: float) -> tuple[_pld.Direction, ...]:
    """The neighbouring directions ("remove", "add") whose PLDs must both be composed.

    Without subsampling (every q = 1) the two have the same privacy-loss
    distribution, N(1 / (2 sigma^2), 1 / sigma^2) per step, so one suffices.
    """
    return ("remove",) if all(q == 1.0 for q in sample_rates) else ("remove", "add")


@lru_cache(maxsize=32)
def composed_pld(sigma: float, q: float, steps: int, direction: _pld.Direction) -> _pld.GridPLD:
    return _pld.composed([(sigma, q, steps)], direction)


@lru_cache(maxsize=256)
def rdp_cached(q: float, sigma: float, orders: tuple[float, ...]) -> np.ndarray:
    values = _rdp.rdp_per_step(q, sigma, np.asarray(orders, dtype=np.float64))
    values.setflags(write=False)
    return values


def check_mechanism(sigma, q, steps, delta) -> tuple[float, float, int, float]:
    sigma = check_real("noise_multiplier", sigma, low=0.0)
    q = check_real("sample_rate", q, low=0.0, high=1.0, low_open=True)
    steps = check_int("steps", steps, minimum=0, maximum=MAX_STEPS)
    delta = check_real("delta", delta, low=0.0, high=1.0, low_open=True, high_open=True)
    return sigma, q, steps, delta


def check_orders(orders) -> np.ndarray:
    array = np.asarray(orders, dtype=np.float64).ravel()
    if array.size == 0 or np.any(~np.isfinite(array)) or np.any(array <= 1.0):
        fail("orders", "a non-empty sequence of finite numbers > 1", orders)
    return array


def rdp_to_epsilon_checked(
    rdp: np.ndarray, orders: np.ndarray, delta: float
) -> tuple[float, float]:
    """``accounting.rdp_to_epsilon`` after validation: convert, and warn at the grid's edge."""
    eps, order = _rdp.rdp_to_eps(rdp, orders, delta)
    if math.isfinite(eps) and eps > 0 and order in (orders.min(), orders.max()):
        warnings.warn(
            f"the best Rényi order {order:g} is at the edge of the orders grid "
            f"[{orders.min():g}, {orders.max():g}]; extend the grid for a tighter epsilon",
            RuntimeWarning,
            stacklevel=3,
        )
    return eps, order
