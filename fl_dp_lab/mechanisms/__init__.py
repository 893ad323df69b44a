"""Differential-privacy mechanisms: randomized response, Laplace, Gaussian (notebook 04).

A randomized algorithm M is (epsilon, delta)-differentially private when, for
every pair of neighbouring datasets D, D' (here: D' is D with one record
added or removed) and every set S of outputs,

    P[M(D) in S] <= exp(epsilon) * P[M(D') in S] + delta

(Dwork & Roth, 2014, "The Algorithmic Foundations of Differential Privacy",
Def. 2.4). delta is an additive slack on every event's probability, not "the
chance that something worse happens" (that reading, a privacy loss above
epsilon with probability at most delta, is probabilistic DP, a stronger
notion); it must be far below 1/n, since publishing one random record of n
in full is (0, 1/n)-DP. The mechanisms below add noise scaled to a query's
GLOBAL sensitivity, the largest change one record can make to it on any
dataset: ``sensitivity = max over all neighbours |q(D) - q(D')|``, a finite
difference over datasets. ``local_sensitivity_remove_one`` computes the
LOCAL sensitivity, the same maximum at one given D only; noise calibrated to
it is not DP, because the noise scale then depends on D and leaks it
(Nissim, Raskhodnikova & Smith, 2007).

Floating point: these functions add NumPy's floating-point noise to a float,
as textbooks write it. That is not DP as implemented: the doubles that
``value + noise`` can produce depend on ``value``, so the least significant
bits of an output can tell q(D) from q(D') (Mironov, 2012, for the Laplace
mechanism; Jin et al., 2022, for Gaussian samplers in DP libraries). The fixes
sample noise on a discrete grid with exact arithmetic: the snapping mechanism
(Mironov, 2012), the discrete Laplace and Gaussian (Canonne, Kamath & Steinke,
2020). Opacus's ``PrivacyEngine(secure_mode=True)`` is its fix for DP-SGD: a
cryptographically secure generator (torchcsprng) instead of a seeded one,
and each Gaussian draw made from several draws so that the floating-point
attack becomes infeasible (Holohan & Braghin, 2021). Fine for teaching and
experiments, which is what this module is for; not for a deployment.

The Gaussian mechanism's exact privacy curve delta(epsilon) follows from its
privacy-loss random variable L = log(p(o) / p'(o)), o ~ M(D): with noise
N(0, sigma^2) and sensitivity s, L ~ N(mu, 2 mu), mu = s^2 / (2 sigma^2), and
delta(epsilon) = E[(1 - exp(epsilon - L))_+] (Balle & Wang, 2018, Thm. 8).
``gaussian_delta``, ``gaussian_epsilon``, ``gaussian_sigma`` (the analytic
Gaussian mechanism), ``gaussian_privacy_loss`` and ``delta_from_privacy_loss``
live in ``fl_dp_lab.mechanisms._gaussian_privacy`` and are re-exported here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from fl_dp_lab._validate import check_noise_survives_rounding, check_real, fail
from fl_dp_lab.mechanisms._gaussian_privacy import (
    delta_from_privacy_loss,
    gaussian_delta,
    gaussian_epsilon,
    gaussian_privacy_loss,
    gaussian_sigma,
)

__all__ = [
    "delta_from_privacy_loss",
    "gaussian_delta",
    "gaussian_epsilon",
    "gaussian_kl_divergence",
    "gaussian_log_density_ratio",
    "gaussian_mechanism",
    "gaussian_privacy_loss",
    "gaussian_renyi_divergence",
    "gaussian_sigma",
    "laplace_log_density_ratio",
    "laplace_mechanism",
    "local_sensitivity_remove_one",
    "randomized_response",
    "randomized_response_estimate",
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
    scale = sensitivity / epsilon
    _check_noise_fits(value_array, math.sqrt(2.0) * scale, "sensitivity / epsilon", scale)
    noisy = value_array + rng.laplace(0.0, scale, value_array.shape)
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
    _check_noise_fits(value_array, sigma, "sigma", sigma)
    noisy = value_array + sigma * rng.standard_normal(value_array.shape)
    return float(noisy) if noisy.ndim == 0 else noisy


def local_sensitivity_remove_one(
    query: Callable[[Sequence[Any]], float], data: Sequence[Any]
) -> float:
    """Largest |q(D) - q(D minus record i)| over the records of ``data``: a finite difference.

    This is the LOCAL sensitivity of ``query`` at this one D (removal side
    of add/remove neighbours), computed the way notebook 01 computes a
    derivative: change the input a little (one record) and measure the change
    in the output. The global sensitivity that DP needs is the maximum over
    every D (for a counting query 1, whatever D is). Do not calibrate noise
    to this number: it depends on D, so noise scaled by it leaks D through
    its spread (Nissim, Raskhodnikova & Smith, 2007, who also give the fix,
    smooth sensitivity).

    Args:
        query: maps a sequence of records to a number.
        data: the dataset D, at least one record.

    Returns:
        The largest absolute change.

    >>> local_sensitivity_remove_one(sum, [3, 1, 4])
    4.0
    """
    if not callable(query):
        fail("query", "a function of a dataset", query, TypeError)
    if len(data) == 0:
        fail("data", "a dataset with at least one record", data)
    full = float(query(data))
    changes = [abs(full - float(query(_without(data, i)))) for i in range(len(data))]
    return float(max(changes))


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


def _check_noise_fits(value: np.ndarray, std: float, scale_name: str, scale: float) -> None:
    """Refuse a noise scale that overflows or underflows float64, or a value it vanishes into.

    The output must stay finite (the noise rarely exceeds 40 std; 64 leaves room), the
    noise std must be a normal float64 (>= 2.2e-308; below it underflows towards 0), and
    the noise must survive rounding at |value| (``_validate.check_noise_survives_rounding``).
    """
    magnitude = float(np.max(np.abs(value))) if value.size else 0.0
    if not math.isfinite(magnitude + 64.0 * std):
        fail(scale_name, "small enough that value + noise stays finite in float64", scale)
    tiny = float(np.finfo(np.float64).tiny)
    if 0.0 < std < tiny:  # subnormal noise loses its precision, then rounds to 0
        fail(scale_name, f"large enough for noise of std >= {tiny:.3g} (float64)", scale)
    eps = float(np.finfo(np.float64).eps)
    check_noise_survives_rounding("value", magnitude, std, eps, noise_from=scale_name)


def _check_rng(rng: Any) -> None:
    if not isinstance(rng, np.random.Generator):
        fail("rng", "a numpy.random.Generator (np.random.default_rng(seed))", rng, TypeError)


# --- Likelihood ratios and divergences (the probability primer, notebook 00b) ---------------


def gaussian_log_density_ratio(x: Any, *, mean_p: float, mean_q: float, sigma: float) -> np.ndarray:
    """log p(x) / q(x) for p = N(mean_p, sigma^2) and q = N(mean_q, sigma^2), pointwise.

    The normalising constants cancel, leaving
    ((x - mean_q)^2 - (x - mean_p)^2) / (2 sigma^2)
    = (mean_p - mean_q) (2x - mean_p - mean_q) / (2 sigma^2): a straight line in x,
    so it is unbounded. With x ~ p it is the Gaussian mechanism's privacy-loss
    variable, N(mu, 2 mu) with mu = (mean_p - mean_q)^2 / (2 sigma^2)
    (``gaussian_privacy_loss``; Balle & Wang, 2018, Lemma 3).

    Args:
        x: points, a number or an array (a CPU tensor works too).
        mean_p: mean of p (the numerator).
        mean_q: mean of q (the denominator).
        sigma: common standard deviation, > 0.

    Returns:
        float64 array of the shape of ``x``.

    >>> gaussian_log_density_ratio([-1.0, 0.0, 1.0], mean_p=0.0, mean_q=1.0, sigma=1.0).tolist()
    [1.5, 0.5, -0.5]
    """
    x = _check_value(x)
    mean_p = check_real("mean_p", mean_p)
    mean_q = check_real("mean_q", mean_q)
    sigma = check_real("sigma", sigma, low=0.0, low_open=True)
    return (mean_p - mean_q) * (2.0 * x - mean_p - mean_q) / (2.0 * sigma**2)


def laplace_log_density_ratio(x: Any, *, mean_p: float, mean_q: float, scale: float) -> np.ndarray:
    """log p(x) / q(x) for p = Laplace(mean_p, b) and q = Laplace(mean_q, b), pointwise.

    With densities exp(-|x - m| / b) / (2b) the ratio is
    (|x - mean_q| - |x - mean_p|) / b, which by the triangle inequality never
    leaves [-|mean_p - mean_q| / b, |mean_p - mean_q| / b]: for a shift of at most
    the sensitivity and b = sensitivity / epsilon it is within [-epsilon, epsilon]
    everywhere, which is why the Laplace mechanism is epsilon-DP with delta = 0
    (Dwork & Roth, 2014, Thm. 3.6).

    Args:
        x: points, a number or an array (a CPU tensor works too).
        mean_p: location of p (the numerator).
        mean_q: location of q (the denominator).
        scale: common scale b, > 0 (standard deviation sqrt(2) b).

    Returns:
        float64 array of the shape of ``x``.

    >>> laplace_log_density_ratio([-5.0, 0.5, 5.0], mean_p=0.0, mean_q=1.0, scale=1.0).tolist()
    [1.0, 0.0, -1.0]
    """
    x = _check_value(x)
    mean_p = check_real("mean_p", mean_p)
    mean_q = check_real("mean_q", mean_q)
    scale = check_real("scale", scale, low=0.0, low_open=True)
    return (np.abs(x - mean_q) - np.abs(x - mean_p)) / scale


def gaussian_kl_divergence(*, mean_p: float, std_p: float, mean_q: float, std_q: float) -> float:
    """KL(p || q) = E_p[log p(x) / q(x)] for p = N(mean_p, std_p^2), q = N(mean_q, std_q^2).

    Closed form: log(std_q / std_p) + (std_p^2 + (mean_p - mean_q)^2) / (2 std_q^2) - 1/2,
    in nats; 0 only when p = q, and not symmetric when the variances differ. With
    equal variances it is (mean_p - mean_q)^2 / (2 sigma^2), the mean mu of the
    Gaussian privacy loss (Cover & Thomas, 2006, "Elements of Information Theory",
    Sec. 8.6 and Exercise 8.9 for the differential-entropy ingredients).

    Args:
        mean_p: mean of p.
        std_p: standard deviation of p, > 0.
        mean_q: mean of q.
        std_q: standard deviation of q, > 0.

    Returns:
        The divergence in nats, >= 0.

    >>> gaussian_kl_divergence(mean_p=0.0, std_p=1.0, mean_q=1.0, std_q=1.0)
    0.5
    """
    mean_p, std_p, mean_q, std_q = _check_gaussian_pair(mean_p, std_p, mean_q, std_q)
    shift = mean_p - mean_q
    ratio = std_p / std_q
    return float(-math.log(ratio) + 0.5 * (ratio**2 - 1.0) + shift**2 / (2.0 * std_q**2))


def gaussian_renyi_divergence(
    *, order: float, mean_p: float, std_p: float, mean_q: float, std_q: float
) -> float:
    """Rényi divergence D_order(p || q) of p = N(mean_p, std_p^2) from q = N(mean_q, std_q^2).

    D_a(p || q) = 1 / (a - 1) * log E_q[(p(x) / q(x))^a] (Rényi, 1961). For
    Gaussians, with v_a = a std_q^2 + (1 - a) std_p^2,

        D_a = log(std_q / std_p) + log(std_q^2 / v_a) / (2 (a - 1))
              + a (mean_p - mean_q)^2 / (2 v_a)

    when v_a > 0, and infinity otherwise (the integral diverges) (Gil, Alajaji
    & Linder, 2013, "Rényi divergence measures for commonly used univariate
    continuous distributions", Table 2). Order 1 is the limit, the KL
    divergence. With equal variances it is a (mean_p - mean_q)^2 / (2 sigma^2),
    the Rényi DP of the Gaussian mechanism (Mironov, 2017, Prop. 7), which
    ``fl_dp_lab.accounting.rdp_subsampled_gaussian`` gives at sample_rate 1.

    Args:
        order: the Rényi order a, > 0 (1 gives the KL divergence).
        mean_p: mean of p.
        std_p: standard deviation of p, > 0.
        mean_q: mean of q.
        std_q: standard deviation of q, > 0.

    Returns:
        The divergence in nats, >= 0, possibly ``math.inf``.

    >>> gaussian_renyi_divergence(order=2.0, mean_p=0.0, std_p=1.0, mean_q=1.0, std_q=1.0)
    1.0
    """
    order = check_real("order", order, low=0.0, low_open=True)
    mean_p, std_p, mean_q, std_q = _check_gaussian_pair(mean_p, std_p, mean_q, std_q)
    if order == 1.0:
        return gaussian_kl_divergence(mean_p=mean_p, std_p=std_p, mean_q=mean_q, std_q=std_q)
    mixed = order * std_q**2 + (1.0 - order) * std_p**2
    if mixed <= 0.0:
        return math.inf
    shift = mean_p - mean_q
    # log(std_q^2 / v_a) / (2 (a - 1)) = r log1p(t) / (2t), t = (1 - a) r: no 0 / 0 at a = 1
    spread = (std_p**2 - std_q**2) / std_q**2
    t = (1.0 - order) * spread
    log_term = 0.5 * spread if t == 0.0 else math.log1p(t) / (2.0 * t) * spread
    value = math.log(std_q / std_p) + log_term + order * shift**2 / (2.0 * mixed)
    return float(max(0.0, value))


def _check_gaussian_pair(
    mean_p: float, std_p: float, mean_q: float, std_q: float
) -> tuple[float, float, float, float]:
    return (
        check_real("mean_p", mean_p),
        check_real("std_p", std_p, low=0.0, low_open=True),
        check_real("mean_q", mean_q),
        check_real("std_q", std_q, low=0.0, low_open=True),
    )
