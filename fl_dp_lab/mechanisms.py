"""Differential-privacy mechanisms: randomized response, Laplace, Gaussian (notebook 04).

A randomized algorithm M is (epsilon, delta)-differentially private when, for
every pair of neighbouring datasets D, D' (here: D' is D with one record
added or removed) and every set S of outputs,

    P[M(D) in S] <= exp(epsilon) * P[M(D') in S] + delta

(Dwork & Roth, 2014, "The Algorithmic Foundations of Differential Privacy",
Def. 2.4). The mechanisms below add noise scaled to a query's sensitivity,
the largest change one record can make to it:
``sensitivity = max over neighbours |q(D) - q(D')|``, a finite difference
over datasets (``remove_one_sensitivity`` computes it on one dataset).

The Gaussian mechanism's exact privacy curve delta(epsilon) follows from its
privacy-loss random variable L = log(p(o) / p'(o)), o ~ M(D): with noise
N(0, sigma^2) and sensitivity s, L ~ N(mu, 2 mu), mu = s^2 / (2 sigma^2), and
delta(epsilon) = E[(1 - exp(epsilon - L))_+] (Balle & Wang, 2018, Thm. 8).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy import optimize, special

from fl_dp_lab._validate import check_real, fail

__all__ = [
    "delta_from_privacy_loss",
    "gaussian_delta",
    "gaussian_epsilon",
    "gaussian_mechanism",
    "gaussian_privacy_loss",
    "gaussian_sigma",
    "laplace_mechanism",
    "randomized_response",
    "randomized_response_estimate",
    "remove_one_sensitivity",
]


def randomized_response(bits: Any, *, epsilon: float, rng: np.random.Generator) -> np.ndarray:
    """Report each bit truthfully with probability e^eps / (1 + e^eps), else flip it.

    Each respondent's report is epsilon-DP for their own bit: the ratio of
    the probabilities of any report under bit 0 and bit 1 is at most e^eps
    (Warner, 1965; Dwork & Roth, 2014, Sec. 3.2).

    Args:
        bits: array-like of 0/1 values (one per respondent).
        epsilon: privacy parameter, > 0 (``math.inf`` reports the truth).
        rng: NumPy generator drawing the coin flips.

    Returns:
        int64 array of reported bits, same shape as ``bits``.

    Raises:
        ValueError: a bit is not 0 or 1, or epsilon <= 0.

    >>> randomized_response([1, 0, 1], epsilon=math.inf, rng=np.random.default_rng(0)).tolist()
    [1, 0, 1]
    """
    bits = _check_bits(bits)
    epsilon = check_real("epsilon", epsilon, low=0.0, low_open=True, allow_inf=True)
    _check_rng(rng)
    keep = _truth_probability(epsilon)
    flip = rng.random(bits.shape) >= keep
    return np.where(flip, 1 - bits, bits)


def randomized_response_estimate(reports: Any, *, epsilon: float) -> float:
    """Unbiased estimate of the true fraction of ones from randomized-response reports.

    With p = e^eps / (1 + e^eps), a report is 1 with probability
    p * pi + (1 - p) * (1 - pi), where pi is the true fraction. Solving for
    pi: pi_hat = (mean(reports) - (1 - p)) / (2p - 1), unbiased, with
    variance pi'(1 - pi') / (n (2p - 1)^2) where pi' is the report rate. The
    estimate can fall outside [0, 1]; clipping it would bias it.

    Args:
        reports: array-like of reported 0/1 bits, at least one.
        epsilon: the epsilon the reports were made with, > 0.

    Returns:
        The estimated fraction of ones.

    >>> randomized_response_estimate([1, 1, 0, 0], epsilon=math.log(3))  # p = 3/4
    0.5
    """
    reports = _check_bits(reports, name="reports")
    if reports.size == 0:
        fail("reports", "a non-empty array of 0/1 values", reports)
    epsilon = check_real("epsilon", epsilon, low=0.0, low_open=True, allow_inf=True)
    keep = _truth_probability(epsilon)
    return float((reports.mean() - (1.0 - keep)) / (2.0 * keep - 1.0))


def laplace_mechanism(
    value: Any, *, sensitivity: float, epsilon: float, rng: np.random.Generator
) -> Any:
    """Release ``value + Laplace(0, b)`` with scale b = sensitivity / epsilon: epsilon-DP.

    For a query whose L1 sensitivity is at most ``sensitivity`` the output
    densities on neighbours differ by a factor at most e^eps at every point
    (Dwork & Roth, 2014, Thm. 3.6). The noise has standard deviation sqrt(2) b.

    Args:
        value: the query's true answer, a number or an array (one noise draw each).
        sensitivity: L1 sensitivity of the query, > 0.
        epsilon: privacy parameter, > 0.
        rng: NumPy generator drawing the noise.

    Returns:
        A float (for a scalar ``value``) or a float array of the same shape.

    >>> noisy = laplace_mechanism(10.0, sensitivity=1.0, epsilon=1e6, rng=np.random.default_rng(0))
    >>> round(noisy, 3)
    10.0
    """
    sensitivity = check_real("sensitivity", sensitivity, low=0.0, low_open=True)
    epsilon = check_real("epsilon", epsilon, low=0.0, low_open=True)
    _check_rng(rng)
    value_array = _check_value(value)
    noisy = value_array + rng.laplace(0.0, sensitivity / epsilon, value_array.shape)
    return float(noisy) if noisy.ndim == 0 else noisy


def gaussian_mechanism(
    value: Any, *, sensitivity: float, sigma: float, rng: np.random.Generator
) -> Any:
    """Release ``value + N(0, sigma^2)``: (epsilon, delta)-DP with delta = gaussian_delta(...).

    The noise standard deviation is ``sigma`` itself. The call still states
    the query's L2 sensitivity: the guarantee is a function of sigma /
    sensitivity only, read it with ``gaussian_epsilon(sigma=sigma, delta=...,
    sensitivity=sensitivity)`` or choose sigma with ``gaussian_sigma``.
    ``sigma = 0`` releases the exact value: no privacy (epsilon = inf).

    Args:
        value: the query's true answer, a number or an array.
        sensitivity: L2 sensitivity of the query, > 0.
        sigma: noise standard deviation, >= 0.
        rng: NumPy generator drawing the noise.

    Returns:
        A float (for a scalar ``value``) or a float array of the same shape.

    >>> gaussian_mechanism([1.0, 2.0], sensitivity=1.0, sigma=0.0, rng=np.random.default_rng(0))
    array([1., 2.])
    """
    check_real("sensitivity", sensitivity, low=0.0, low_open=True)
    sigma = check_real("sigma", sigma, low=0.0)
    _check_rng(rng)
    value_array = _check_value(value)
    noisy = value_array + sigma * rng.standard_normal(value_array.shape)
    return float(noisy) if noisy.ndim == 0 else noisy


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
    epsilon > 0 and always below the classic bound.

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


def remove_one_sensitivity(query: Callable[[Sequence[Any]], float], data: Sequence[Any]) -> float:
    """Largest |q(D) - q(D minus record i)| over the records of ``data``: a finite difference.

    This is the local sensitivity of ``query`` at D under add/remove
    neighbours, computed the way notebook 01 computes a derivative: change
    the input a little (one record) and measure the change in the output.
    The global sensitivity that DP needs is the maximum of this over every D;
    for a counting query it is 1 whatever D is.

    Args:
        query: maps a sequence of records to a number.
        data: the dataset D, at least one record.

    Returns:
        The largest absolute change.

    >>> remove_one_sensitivity(sum, [3, 1, 4])
    4.0
    """
    if not callable(query):
        fail("query", "a function of a dataset", query, TypeError)
    if len(data) == 0:
        fail("data", "a dataset with at least one record", data)
    full = float(query(data))
    changes = [abs(full - float(query(_without(data, i)))) for i in range(len(data))]
    return float(max(changes))


def _delta_exact(ratio: float, epsilon: float) -> float:
    """gaussian_delta for sigma / sensitivity = ``ratio`` > 0, computed in log space."""
    a = 0.5 / ratio - epsilon * ratio
    b = -0.5 / ratio - epsilon * ratio
    value = special.ndtr(a) - math.exp(epsilon + special.log_ndtr(b))
    return float(min(1.0, max(0.0, value)))


def _truth_probability(epsilon: float) -> float:
    return 1.0 if math.isinf(epsilon) else 1.0 / (1.0 + math.exp(-epsilon))


def _without(data: Sequence[Any], i: int) -> Sequence[Any]:
    if isinstance(data, np.ndarray):
        return np.delete(data, i, axis=0)
    return list(data[:i]) + list(data[i + 1 :])


def _check_bits(bits: Any, name: str = "bits") -> np.ndarray:
    array = np.asarray(bits)
    if array.dtype == object or not np.all((array == 0) | (array == 1)):
        fail(name, "an array of 0/1 values", bits if array.size < 8 else array.shape)
    return array.astype(np.int64)


def _check_value(value: Any) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        fail("value", "a number or an array of numbers", value, TypeError)
    if not np.all(np.isfinite(array)):
        fail("value", "finite", value)
    return array


def _check_rng(rng: Any) -> None:
    if not isinstance(rng, np.random.Generator):
        fail("rng", "a numpy.random.Generator (np.random.default_rng(seed))", rng, TypeError)
