"""The Gaussian mechanism's exact privacy curve: delta(epsilon), its inverse, calibration.

For the Gaussian mechanism M(D) = q(D) + N(0, sigma^2) on a query of L2
sensitivity s, the privacy-loss random variable L = log(p(o) / p'(o)),
o ~ M(D), is normal: L ~ N(mu, 2 mu) with mu = s^2 / (2 sigma^2). Its
privacy curve is delta(epsilon) = E[(1 - exp(epsilon - L))_+], in closed
form (Balle & Wang, 2018, Thm. 8); ``gaussian_sigma`` solves it for sigma
(the analytic Gaussian mechanism) and ``gaussian_epsilon`` for epsilon.
Re-exported by ``fl_dp_lab.mechanisms``, the public home of notebook 04.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
from scipy import optimize, special

from fl_dp_lab._validate import check_real, fail

__all__ = [
    "delta_from_privacy_loss",
    "gaussian_delta",
    "gaussian_epsilon",
    "gaussian_privacy_loss",
    "gaussian_sigma",
]


def gaussian_sigma(
    *, epsilon: float, delta: float, sensitivity: float = 1.0, analytic: bool = True
) -> float:
    """The noise standard deviation that makes the Gaussian mechanism (epsilon, delta)-DP.

    ``analytic=False``: the classic bound sigma = sqrt(2 ln(1.25 / delta)) *
    sensitivity / epsilon (Dwork & Roth, 2014, Thm. A.1), proven only for
    epsilon < 1 (a warning is raised otherwise). ``analytic=True``: the
    analytic Gaussian mechanism of Balle & Wang (2018, Thm. 8 and Alg. 1), the
    smallest sigma whose exact delta(epsilon), ``gaussian_delta``, equals
    ``delta`` (found by root finding on the monotone curve); valid for every
    epsilon > 0.

    The analytic sigma is below the classic one wherever the classic bound
    is proven (epsilon < 1), and stays below it up to about epsilon = 8.4 at
    delta = 1e-5 (7.5 at 1e-3, 9.4 at 1e-8). Above that crossing the classic
    formula gives LESS noise than the exact calibration: it under-noises, and
    its sigma is not (epsilon, delta)-DP (at epsilon = 10, delta = 1e-5 its true
    delta is about 2.3e-5). Use the analytic sigma for epsilon >= 1.

    Args:
        epsilon: target epsilon, > 0.
        delta: target delta, in (0, 1).
        sensitivity: L2 sensitivity, > 0.
        analytic: choose the exact calibration (default) or the classic bound.

    Returns:
        sigma > 0.

    >>> round(gaussian_sigma(epsilon=0.5, delta=1e-5, analytic=False), 4)
    9.6896
    >>> round(gaussian_sigma(epsilon=0.5, delta=1e-5), 4)
    7.0318
    """
    epsilon = check_real("epsilon", epsilon, low=0.0, low_open=True)
    delta = check_real("delta", delta, low=0.0, high=1.0, low_open=True, high_open=True)
    sensitivity = check_real("sensitivity", sensitivity, low=0.0, low_open=True)
    if not isinstance(analytic, bool):
        fail("analytic", "True or False", analytic, TypeError)
    if not analytic:
        if epsilon >= 1.0:
            warnings.warn(
                f"the classic Gaussian bound is proven only for epsilon < 1, got {epsilon!r}; "
                "use analytic=True",
                stacklevel=2,
            )
        return math.sqrt(2.0 * math.log(1.25 / delta)) * sensitivity / epsilon
    # delta(sigma) decreases from 1 (sigma -> 0) to 0 (sigma -> inf): bracket, then solve.
    low, high = 1e-3, 1.0
    while _delta_exact(high / sensitivity, epsilon) > delta:
        low, high = high, 2.0 * high
    while _delta_exact(low / sensitivity, epsilon) < delta:
        low /= 2.0
    return optimize.brentq(
        lambda s: _delta_exact(s / sensitivity, epsilon) - delta, low, high, xtol=1e-12, rtol=1e-12
    )


def gaussian_delta(*, sigma: float, epsilon: float, sensitivity: float = 1.0) -> float:
    """The exact delta(epsilon) of the Gaussian mechanism with noise std ``sigma``.

    delta = Phi(s / (2 sigma) - eps sigma / s) - e^eps Phi(-s / (2 sigma) - eps sigma / s),
    with s the L2 sensitivity and Phi the standard normal CDF (Balle & Wang,
    2018, Thm. 8). This is tight: no smaller delta holds at this epsilon.
    ``sigma = 0`` gives delta = 1 (no privacy).

    Args:
        sigma: noise standard deviation, >= 0.
        epsilon: epsilon at which to read the curve, >= 0 (``math.inf`` gives 0).
        sensitivity: L2 sensitivity, > 0.

    Returns:
        delta in [0, 1].

    >>> round(gaussian_delta(sigma=1.0, epsilon=1.0), 6)
    0.126937
    """
    sigma = check_real("sigma", sigma, low=0.0)
    epsilon = check_real("epsilon", epsilon, low=0.0, allow_inf=True)
    sensitivity = check_real("sensitivity", sensitivity, low=0.0, low_open=True)
    if math.isinf(epsilon):
        return 0.0
    if sigma == 0.0:
        return 1.0
    return _delta_exact(sigma / sensitivity, epsilon)


def gaussian_epsilon(*, sigma: float, delta: float, sensitivity: float = 1.0) -> float:
    """The smallest epsilon with gaussian_delta(sigma, epsilon) <= delta (the inverse curve).

    ``sigma = 0`` returns ``math.inf``: the exact value is released, no
    epsilon holds. Returns 0.0 when even epsilon = 0 meets ``delta``.

    Args:
        sigma: noise standard deviation, >= 0.
        delta: target delta, in (0, 1).
        sensitivity: L2 sensitivity, > 0.

    Returns:
        epsilon >= 0, or ``math.inf``.

    >>> round(gaussian_epsilon(sigma=1.0, delta=gaussian_delta(sigma=1.0, epsilon=1.0)), 6)
    1.0
    """
    sigma = check_real("sigma", sigma, low=0.0)
    delta = check_real("delta", delta, low=0.0, high=1.0, low_open=True, high_open=True)
    sensitivity = check_real("sensitivity", sensitivity, low=0.0, low_open=True)
    if sigma == 0.0:
        return math.inf
    ratio = sigma / sensitivity
    if _delta_exact(ratio, 0.0) <= delta:
        return 0.0
    high = 1.0
    while _delta_exact(ratio, high) > delta:
        high *= 2.0
        if high > 1e12:  # sigma so small that the curve underflows: treat as no privacy
            return math.inf
    return optimize.brentq(
        lambda e: _delta_exact(ratio, e) - delta, 0.0, high, xtol=1e-12, rtol=1e-12
    )


def gaussian_privacy_loss(*, sigma: float, sensitivity: float = 1.0) -> tuple[float, float]:
    """Mean and standard deviation of the Gaussian mechanism's privacy-loss variable.

    For outputs o ~ N(q(D), sigma^2) and the neighbour's density N(q(D'),
    sigma^2) with |q(D) - q(D')| = s, L = log p_D(o) / p_D'(o) is normal with
    mean mu = s^2 / (2 sigma^2) and variance 2 mu (Balle & Wang, 2018, Lemma 3).

    Args:
        sigma: noise standard deviation, > 0.
        sensitivity: L2 sensitivity, > 0.

    Returns:
        ``(mean, std)`` of L.

    >>> gaussian_privacy_loss(sigma=1.0)
    (0.5, 1.0)
    """
    sigma = check_real("sigma", sigma, low=0.0, low_open=True)
    sensitivity = check_real("sensitivity", sensitivity, low=0.0, low_open=True)
    mean = sensitivity**2 / (2.0 * sigma**2)
    return mean, math.sqrt(2.0 * mean)


def delta_from_privacy_loss(losses: Any, *, epsilon: float) -> float:
    """Monte-Carlo delta(epsilon) = mean of (1 - exp(epsilon - L))_+ over privacy-loss samples.

    Holds for any mechanism whose privacy-loss samples L are drawn with the
    output distributed as on D (Balle & Wang, 2018, Thm. 5): the part of the
    privacy loss above epsilon that e^eps cannot cover is what delta pays for.

    Args:
        losses: 1-D array-like of privacy-loss samples, at least one, finite.
        epsilon: >= 0.

    Returns:
        The estimated delta in [0, 1].

    >>> round(delta_from_privacy_loss([0.0, 1.0, 2.0], epsilon=1.0), 6)  # (1 - 1/e) / 3
    0.210707
    """
    losses = np.asarray(losses, dtype=np.float64)
    if losses.ndim != 1 or losses.size == 0 or not np.all(np.isfinite(losses)):
        fail("losses", "a non-empty 1-D array of finite numbers", losses.shape)
    epsilon = check_real("epsilon", epsilon, low=0.0)
    return float(np.mean(np.clip(-np.expm1(epsilon - losses), 0.0, None)))


def _delta_exact(ratio: float, epsilon: float) -> float:
    """gaussian_delta for sigma / sensitivity = ``ratio`` > 0, computed in log space."""
    a = 0.5 / ratio - epsilon * ratio
    b = -0.5 / ratio - epsilon * ratio
    value = special.ndtr(a) - math.exp(epsilon + special.log_ndtr(b))
    return float(min(1.0, max(0.0, value)))
