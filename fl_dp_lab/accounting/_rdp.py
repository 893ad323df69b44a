"""Rényi DP of the Poisson-subsampled Gaussian and its conversion to (epsilon, delta).

Private math behind ``fl_dp_lab.accounting``; the public, validated functions
live there. Callers pass checked arguments.

References:
    Mironov, Talwar, Zhang (2019), "Rényi Differential Privacy of the Sampled
    Gaussian Mechanism", arXiv:1908.10530, Sections 3.2 (integer orders) and
    3.3 (fractional orders).
    Balle, Barthe, Gaboardi, Hsu, Sato (2020), "Hypothesis Testing
    Interpretations and Rényi Differential Privacy", AISTATS, Theorem 21;
    Canonne, Kamath, Steinke (2020), "The Discrete Gaussian for Differential
    Privacy", Proposition 12 (the conversion dp_accounting and Opacus use).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import gammaln, logsumexp

__all__ = ["DEFAULT_ORDERS", "LARGE_NOISE", "rdp_per_step", "rdp_to_eps"]

_MAX_POINTS = 20_000
#: Noise multipliers above this count as this one (see ``rdp_per_step``); as in ``_pld``.
LARGE_NOISE = 1e100  # quadrature nodes per order, at most

#: dp_accounting's default orders: 1.1 ... 10.9 in steps of 0.1, 11 ... 63, 128 ... 1024.
DEFAULT_ORDERS: tuple[float, ...] = tuple(
    [1 + x / 10.0 for x in range(1, 100)] + list(range(11, 64)) + [128, 256, 512, 1024]
)


def rdp_per_step(q: float, sigma: float, orders: np.ndarray) -> np.ndarray:
    """RDP of one step of the Poisson-subsampled Gaussian at each order (sigma > 0).

    Sigma above ``LARGE_NOISE`` is treated as ``LARGE_NOISE``: the RDP only falls
    as sigma grows, so this is an upper bound, and sigma^2 cannot overflow.
    """
    orders = np.asarray(orders, dtype=np.float64)
    sigma = min(sigma, LARGE_NOISE)
    if q == 1.0:
        return orders / (2.0 * sigma**2)
    log_a = np.empty(len(orders))
    integer = orders == np.round(orders)
    if np.any(integer):
        log_a[integer] = _log_a_integer(q, sigma, orders[integer])
    if np.any(~integer):
        log_a[~integer] = _log_a_fractional(q, sigma, orders[~integer])
    return log_a / (orders - 1.0)


def rdp_to_eps(rdp: np.ndarray, orders: np.ndarray, delta: float) -> tuple[float, float]:
    """Smallest epsilon over orders, by eps = r + log(1 - 1/a) - log(delta * a) / (a - 1).

    Orders <= 1.01 are skipped (the bound is unstable there); a Rényi divergence
    so small that delta**2 > 1 - exp(-r) gives epsilon = 0 (KL bound, as
    dp_accounting does).
    """
    rdp = np.asarray(rdp, dtype=np.float64)
    orders = np.asarray(orders, dtype=np.float64)
    eps = np.full(len(orders), np.inf)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        usable = orders > 1.01
        a = orders[usable]
        r = rdp[usable]
        eps[usable] = r + np.log1p(-1.0 / a) - np.log(delta * a) / (a - 1.0)
    tiny = np.isfinite(rdp) & (rdp >= 0) & (delta**2 + np.expm1(-np.maximum(rdp, 0)) > 0)
    eps[tiny | (rdp < 0)] = 0.0
    eps[np.isnan(eps)] = np.inf
    best = int(np.argmin(eps))
    return max(0.0, float(eps[best])), float(orders[best])


def _log_a_integer(q: float, sigma: float, orders: np.ndarray) -> np.ndarray:
    """log A_a for integer orders a by the binomial expansion (Mironov et al. 2019, 3.2).

    A_a = sum_k binom(a, k) (1 - q)^(a - k) q^k exp((k^2 - k) / (2 sigma^2)).
    """
    a = orders[:, None]
    k = np.arange(int(orders.max()) + 1, dtype=np.float64)[None, :]
    with np.errstate(invalid="ignore"):
        log_binom = gammaln(a + 1.0) - gammaln(k + 1.0) - gammaln(np.maximum(a - k, 0) + 1.0)
        terms = log_binom + k * math.log(q) + (a - k) * math.log1p(-q)
    terms = np.where(k <= a, terms + (k * k - k) / (2.0 * sigma**2), -np.inf)
    return logsumexp(terms, axis=1)


def _log_a_fractional(q: float, sigma: float, orders: np.ndarray) -> np.ndarray:
    """log A_a for any order a > 1 by quadrature of A_a = E_{x ~ N(0, sigma^2)}[(1 + q u(x))^a].

    Here u(x) = exp((2x - 1) / (2 sigma^2)) - 1 is the likelihood ratio of
    N(1, sigma^2) to N(0, sigma^2), minus one, so E[u] = 0 and
    A_a - 1 = E[(1 + q u)^a - 1 - a q u]: an integrand of size q^2 that we
    integrate without cancellation. The integrand is smooth and Gaussian-tailed,
    so the trapezoidal rule on a grid finer than min(sigma, sigma^2) converges
    exponentially fast. Opacus and dp_accounting sum the two-sided binomial
    series of Mironov et al. (2019, Section 3.3) instead; that series decays
    only polynomially when q is near 1/2 (dp_accounting then drops the order
    with a warning), which the quadrature does not suffer from.
    """
    top = max(1.0, float(orders.max())) + 14.0 * sigma
    step = max(min(sigma, sigma**2) / 12.0, (top + 14.0 * sigma) / _MAX_POINTS)
    x = np.arange(-14.0 * sigma, top, step)
    log_phi0 = -0.5 * (x / sigma) ** 2 - math.log(sigma * math.sqrt(2.0 * math.pi))
    log_phi1 = -0.5 * ((x - 1.0) / sigma) ** 2 - math.log(sigma * math.sqrt(2.0 * math.pi))
    log_mix = np.logaddexp(math.log1p(-q), math.log(q) + log_phi1 - log_phi0)  # log(1 + q u)
    phi0, q_u_phi0 = np.exp(log_phi0), q * (np.exp(log_phi1) - np.exp(log_phi0))
    out = np.empty(len(orders))
    for i, a in enumerate(orders):  # one order at a time keeps memory at one grid
        log_power = a * log_mix  # log (1 + q u)^a
        log_terms = log_power + log_phi0
        if log_terms.max() > 30.0:  # A_a is huge: no cancellation, sum in log space
            out[i] = float(logsumexp(log_terms)) + math.log(step)
            continue
        with np.errstate(over="ignore", invalid="ignore"):
            small = np.expm1(log_power) * phi0 - a * q_u_phi0
            large = np.exp(log_terms) - phi0 - a * q_u_phi0
        integrand = np.where(log_power < 30.0, small, large)
        out[i] = math.log1p(float(np.sum(integrand)) * step)
    return out
