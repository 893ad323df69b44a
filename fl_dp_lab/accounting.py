"""Privacy accounting for DP-SGD and DP-FedAvg: how much epsilon T noisy steps spend.

One step of DP-SGD (or one round of DP-FedAvg) is the Poisson-subsampled
Gaussian mechanism: every record (client) joins the batch independently with
probability q = ``sample_rate``, the clipped contributions are summed (L2
sensitivity C) and N(0, (sigma C)^2) noise is added, sigma =
``noise_multiplier``. Neighbouring datasets differ by adding or removing one
record. This module answers "what (epsilon, delta) does T such steps satisfy?"
two ways, as Opacus and dp_accounting do:

- ``"rdp"``: Rényi DP (Mironov 2017) of one step (Mironov, Talwar, Zhang
  2019) times T, converted to (epsilon, delta) with the bound of Balle et al.
  (2020) / Canonne, Kamath, Steinke (2020);
- ``"pld"``: the privacy-loss distribution of one step on a grid, composed T
  times by FFT and read off exactly (Koskela et al. 2020; Doroshenko et al.
  2022). Tighter than RDP, and pessimistic by construction.

Pure functions come first; ``PrivacyAccountant`` only keeps a history.
The math lives in ``fl_dp_lab._rdp`` and ``fl_dp_lab._pld``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from fl_dp_lab import _pld, _rdp
from fl_dp_lab._validate import check_choice, check_int, check_real, fail

__all__ = [
    "DEFAULT_ORDERS",
    "PrivacyAccountant",
    "epsilon",
    "noise_multiplier_for_epsilon",
    "rdp_subsampled_gaussian",
    "rdp_to_epsilon",
]

#: Rényi orders used by default: dp_accounting's (1.1 ... 10.9, 11 ... 63, 128 ... 1024).
DEFAULT_ORDERS: tuple[float, ...] = _rdp.DEFAULT_ORDERS

ACCOUNTANTS = ("rdp", "pld")
PLD_INTERVAL = 1e-4  # grid step of the privacy loss, as dp_accounting's PLDAccountant


def epsilon(
    *,
    noise_multiplier: float,
    sample_rate: float,
    steps: int,
    delta: float,
    accountant: str = "pld",
) -> float:
    """Epsilon spent by ``steps`` Poisson-subsampled Gaussian steps, at ``delta``.

    Assumptions: Poisson sampling with rate q (not shuffled fixed-size
    batches), add/remove neighbours, sensitivity C and noise std sigma C.

    Args:
        noise_multiplier: sigma >= 0, noise std over the clipping norm. 0 means no
            noise: the result is ``math.inf``.
        sample_rate: q in (0, 1], the probability each record joins a step.
        steps: T >= 0, the number of steps (0 spends nothing).
        delta: target delta in (0, 1).
        accountant: "pld" (tighter) or "rdp".

    Returns:
        The epsilon; ``math.inf`` when sigma is 0.

    Raises:
        ValueError, TypeError: on an argument outside its range.

    >>> round(epsilon(noise_multiplier=4.0, sample_rate=0.01, steps=10_000,
    ...               delta=1e-5, accountant="rdp"), 3)
    1.035
    """
    sigma, q, steps, delta = _check_mechanism(noise_multiplier, sample_rate, steps, delta)
    check_choice("accountant", accountant, ACCOUNTANTS)
    return _epsilon(sigma, q, steps, delta, accountant)


def rdp_subsampled_gaussian(
    *, sample_rate: float, noise_multiplier: float, orders: Sequence[float] | np.ndarray
) -> np.ndarray:
    """Rényi DP of ONE step of the Poisson-subsampled Gaussian, at each order.

    For order a > 1, RDP_a = log(A_a) / (a - 1) with
    A_a = E_{x ~ N(0, s^2)}[(1 - q + q exp((2x - 1) / (2 s^2)))^a]
    (Mironov, Talwar, Zhang 2019, Theorem 5 and Section 3; the remove direction
    dominates for Poisson sampling). Integer orders use the exact binomial sum
    of Section 3.2; fractional orders integrate A_a numerically (see
    ``fl_dp_lab._rdp``). With q = 1 this is a / (2 sigma^2), the Gaussian's RDP.
    T steps have T times this RDP.

    Args:
        sample_rate: q in (0, 1].
        noise_multiplier: sigma >= 0 (0 gives infinite RDP).
        orders: Rényi orders, each > 1.

    Returns:
        Array of RDP values, one per order.

    >>> rdp_subsampled_gaussian(sample_rate=1.0, noise_multiplier=2.0, orders=[2, 8])
    array([0.25, 1.  ])
    """
    q = check_real("sample_rate", sample_rate, low=0.0, high=1.0, low_open=True)
    sigma = check_real("noise_multiplier", noise_multiplier, low=0.0)
    orders = _check_orders(orders)
    if sigma == 0.0:
        return np.full(len(orders), np.inf)
    return _rdp_cached(q, sigma, tuple(orders.tolist()))


def rdp_to_epsilon(
    *, rdp: Sequence[float] | np.ndarray, orders: Sequence[float] | np.ndarray, delta: float
) -> tuple[float, float]:
    """Convert RDP curve to (epsilon, best order) at ``delta``.

    eps = min over a of  rdp_a + log(1 - 1/a) - log(delta a) / (a - 1)
    (Balle et al. 2020, Theorem 21; Canonne, Kamath, Steinke 2020, Prop. 12),
    tighter than Mironov's rdp_a + log(1/delta) / (a - 1) by
    log(1 - 1/a) - log(a) / (a - 1) < 0. Warns when the best order is the
    smallest or largest in ``orders``: a wider grid may give a smaller epsilon.

    Args:
        rdp: RDP at each order (>= 0; inf allowed).
        orders: the orders, each > 1, same length as ``rdp``.
        delta: target delta in (0, 1).

    Returns:
        (epsilon, order attaining it).

    >>> rdp_to_epsilon(rdp=[0.5, 1.0, 2.0], orders=[2, 4, 8], delta=1e-5)[1]
    8.0
    """
    orders = _check_orders(orders)
    rdp = np.asarray(rdp, dtype=np.float64)
    if rdp.shape != orders.shape:
        fail("rdp", f"an array of the same shape as orders {orders.shape}", rdp.shape)
    if np.any(np.isnan(rdp)) or np.any(rdp < 0):
        fail("rdp", "non-negative numbers (inf allowed)", rdp)
    delta = check_real("delta", delta, low=0.0, high=1.0, low_open=True, high_open=True)
    eps, order = _rdp.rdp_to_eps(rdp, orders, delta)
    if math.isfinite(eps) and eps > 0 and order in (orders.min(), orders.max()):
        warnings.warn(
            f"the best Rényi order {order:g} is at the edge of the orders grid "
            f"[{orders.min():g}, {orders.max():g}]; extend the grid for a tighter epsilon",
            RuntimeWarning,
            stacklevel=2,
        )
    return eps, order


def _epsilon(sigma: float, q: float, steps: int, delta: float, accountant: str) -> float:
    """``epsilon`` after validation."""
    if steps == 0:
        return 0.0
    if sigma == 0.0:
        return math.inf
    if accountant == "rdp":
        rdp = steps * _rdp_cached(sigma=sigma, q=q, orders=DEFAULT_ORDERS)
        return rdp_to_epsilon(rdp=rdp, orders=DEFAULT_ORDERS, delta=delta)[0]
    return max(
        _pld.epsilon_for_delta(_composed_pld(sigma, q, steps, direction), delta)
        for direction in ("remove", "add")
    )


@lru_cache(maxsize=32)
def _composed_pld(sigma: float, q: float, steps: int, direction: str) -> _pld.GridPLD:
    one = _pld.subsampled_gaussian_pld(sigma, q, PLD_INTERVAL, direction)
    return _pld.compose([(one, steps)])


@lru_cache(maxsize=256)
def _rdp_cached(q: float, sigma: float, orders: tuple[float, ...]) -> np.ndarray:
    values = _rdp.rdp_per_step(q, sigma, np.asarray(orders, dtype=np.float64))
    values.setflags(write=False)
    return values


def _check_mechanism(sigma, q, steps, delta) -> tuple[float, float, int, float]:
    sigma = check_real("noise_multiplier", sigma, low=0.0)
    q = check_real("sample_rate", q, low=0.0, high=1.0, low_open=True)
    steps = check_int("steps", steps, minimum=0)
    delta = check_real("delta", delta, low=0.0, high=1.0, low_open=True, high_open=True)
    return sigma, q, steps, delta


def _check_orders(orders) -> np.ndarray:
    array = np.asarray(orders, dtype=np.float64).ravel()
    if array.size == 0 or np.any(~np.isfinite(array)) or np.any(array <= 1.0):
        fail("orders", "a non-empty sequence of finite numbers > 1", orders)
    return array
