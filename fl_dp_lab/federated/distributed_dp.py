"""Distributed DP over the integers: noise shares that survive secure aggregation's modular sum.

In distributed DP each of m clients adds a *share* of the noise to its own
update before secure aggregation masks it; the server decodes only the noisy
sum. Secure aggregation adds integers modulo M = 2^b, so everything must be an
integer: the client scales its clipped update, rounds it to integers without
bias (``stochastic_round``), adds integer noise, and reduces modulo 2^b
(``wrap``); the server reads the sum back as a centred residue (``unwrap``).

The integer noise:

- ``discrete_gaussian``: N_Z(0, sigma^2), P[X = x] proportional to
  exp(-x^2 / (2 sigma^2)) on the integers, sampled *exactly* by rejection
  from a discrete Laplace (Canonne, Kamath & Steinke 2020, "The discrete
  Gaussian for differential privacy", Algorithms 1-3), with exact rational
  arithmetic and uniform random bits: no floating-point rounding enters.
- ``skellam``: Poisson(mu/2) - Poisson(mu/2), variance mu (Agarwal, Kairouz &
  Liu 2021, "The Skellam mechanism for differentially private federated
  learning"); closed under summation, so m shares of variance mu/m sum to a
  Skellam of variance mu exactly.

The sum of m independent discrete Gaussians is *not* exactly a discrete
Gaussian, but it is close: Kairouz, Liu & Steinke (2021), "The distributed
discrete Gaussian mechanism for federated learning with secure aggregation",
Theorem 1, pay for the gap with tau = 10 sum_{k=1}^{m-1} exp(-2 pi^2 sigma^2
k / (k + 1)) per coordinate (sigma >= 1/2 the share's scale) in the RDP
bound of their Proposition 14 (Eq. 17); ``sum_closeness_tau`` computes it,
``sum_divergence`` measures the true gap by convolution, and
``distributed_discrete_gaussian_epsilon`` is the accountant built on it.

Dropout: a client that drops after being sampled never adds its share, so the
sum carries less noise than planned. ``noise_share_std`` over-provisions every
share by 1 / sqrt(1 - p) for an expected dropout rate p.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction
from numbers import Rational, Real

import numpy as np
import torch

from fl_dp_lab._validate import check_generator, check_int, check_real, fail

__all__ = [
    "discrete_gaussian",
    "discrete_gaussian_pmf",
    "distributed_discrete_gaussian_epsilon",
    "distributed_discrete_gaussian_rdp",
    "noise_share_std",
    "rounded_sensitivity",
    "skellam",
    "stochastic_round",
    "sum_closeness_tau",
    "sum_divergence",
    "unwrap",
    "wrap",
]

#: The largest sigma^2 the samplers take (keeps the discrete Laplace's uniform draw in int64).
MAX_SIGMA_SQUARED = 2.0**60
_CHUNK_BITS = 62  # random bits per draw: torch.randint below a power of two is exact


def discrete_gaussian(
    shape: Sequence[int] | int, *, sigma_squared: float | Fraction, generator: torch.Generator
) -> torch.Tensor:
    """Exact samples of the discrete Gaussian N_Z(0, sigma^2), int64.

    Canonne, Kamath & Steinke (2020), Algorithm 3: with t = floor(sigma) + 1,
    draw Y from the discrete Laplace of scale t (their Algorithm 2) and keep it
    with probability exp(-(|Y| - sigma^2 / t)^2 / (2 sigma^2)). Every Bernoulli
    draw is exact: exp(-gamma) for rational gamma by their Algorithm 1, and
    Bernoulli(n / d) by comparing a uniform number, read 62 random bits at a
    time, with the binary expansion of n / d. ``sigma_squared`` is taken as the
    exact rational it is (a float is a fraction with a power-of-two
    denominator), so the samples follow N_Z(0, sigma_squared) exactly, up to
    the quality of torch's generator. Vectorised over the entries; each
    round of rejection redraws only the entries still pending.

    Note that sigma^2 is the scale, not the variance: the variance of
    N_Z(0, sigma^2) is below sigma^2: by 2.1e-7 relative at sigma = 1, by less
    than 1e-12 from sigma = 2 (``discrete_gaussian_pmf`` gives it exactly).

    Args:
        shape: shape of the output.
        sigma_squared: the scale sigma^2, in [0, 2^60]; an int, float or Fraction.
        generator: the source of all random bits.

    Returns:
        int64 tensor of the given shape.

    >>> x = discrete_gaussian(5, sigma_squared=4, generator=torch.Generator().manual_seed(0))
    >>> x.dtype, tuple(x.shape)
    (torch.int64, (5,))
    """
    ratio = _check_sigma_squared(sigma_squared)
    generator = check_generator("generator", generator)
    size = _check_shape(shape)
    count = math.prod(size)
    out = np.zeros(count, dtype=np.int64)
    if ratio == 0 or count == 0:
        return torch.from_numpy(out).reshape(size)
    a, b = ratio.numerator, ratio.denominator
    t = math.isqrt(a // b) + 1  # floor(sigma) + 1
    pending = np.arange(count)
    while pending.size:
        y = _discrete_laplace(pending.size, t, generator)
        magnitude = np.abs(y).astype(object)
        # gamma = (|y| - sigma^2/t)^2 / (2 sigma^2) = (|y| b t - a)^2 / (2 a b t^2), exactly
        keep = _bernoulli_exp(
            (magnitude * (b * t) - a) ** 2, _full(y.size, 2 * a * b * t * t), generator
        )
        out[pending[keep]] = y[keep]
        pending = pending[~keep]
    return torch.from_numpy(out).reshape(size)


def discrete_gaussian_pmf(
    values: np.ndarray | Sequence[int], *, sigma_squared: float
) -> np.ndarray:
    """P[X = x] for X ~ N_Z(0, sigma^2) at each integer x of ``values`` (float64).

    exp(-x^2 / (2 sigma^2)) / Z, Z = sum over all integers, summed out to 40
    sigma + 40 where the terms are below 1e-300 of the largest.

    >>> p = discrete_gaussian_pmf(np.arange(-200, 201), sigma_squared=9.0)
    >>> round(float(p.sum()), 12), round(float((np.arange(-200, 201) ** 2 * p).sum()), 6)
    (1.0, 9.0)
    """
    ratio = _check_sigma_squared(sigma_squared)
    x = np.asarray(values)
    if x.dtype.kind not in "iu":
        fail("values", "integers", x.dtype, TypeError)
    s2 = float(ratio)
    if s2 == 0:
        return (x == 0).astype(np.float64)
    radius = int(40 * math.sqrt(s2)) + 40
    grid = np.arange(-radius, radius + 1, dtype=np.float64)
    normaliser = np.exp(-(grid**2) / (2 * s2)).sum()
    return np.exp(-(x.astype(np.float64) ** 2) / (2 * s2)) / normaliser


def skellam(
    shape: Sequence[int] | int, *, variance: float, generator: torch.Generator
) -> torch.Tensor:
    """Symmetric Skellam noise: Poisson(mu/2) - Poisson(mu/2), mu = ``variance``, int64.

    Agarwal, Kairouz & Liu (2021): integer, mean 0, variance mu, and the sum
    of independent Skellams is a Skellam with the summed variance, so m
    shares of variance mu / m add up to exactly the noise planned. The
    Poisson draws are torch's.

    >>> x = skellam(4, variance=10.0, generator=torch.Generator().manual_seed(0))
    >>> x.dtype, tuple(x.shape)
    (torch.int64, (4,))
    """
    mu = check_real("variance", variance, low=0.0, high=MAX_SIGMA_SQUARED)
    generator = check_generator("generator", generator)
    size = _check_shape(shape)
    rate = torch.full(size, mu / 2, dtype=torch.float64)
    first = torch.poisson(rate, generator=generator)
    return (first - torch.poisson(rate, generator=generator)).long()


def stochastic_round(values: torch.Tensor, *, generator: torch.Generator) -> torch.Tensor:
    """Round each x to floor(x) + 1 with probability x - floor(x), else floor(x); int64.

    Unbiased: E[round(x)] = x, so the server's decoded sum has no rounding bias
    (nearest rounding would bias every coordinate the same way). Each entry
    moves by less than 1, so a vector's L2 norm grows by less than sqrt(d)
    (``rounded_sensitivity``).

    >>> stochastic_round(torch.tensor([2.0, -3.0]), generator=torch.Generator()).tolist()
    [2, -3]
    """
    if not isinstance(values, torch.Tensor) or not values.is_floating_point():
        fail("values", "a floating-point torch.Tensor", values, TypeError)
    generator = check_generator("generator", generator)
    x = values.double()
    if not bool(torch.isfinite(x).all()) or (x.numel() and float(x.abs().max()) >= 2.0**52):
        fail("values", "finite and below 2^52 in magnitude", float(x.abs().max()))
    low = torch.floor(x)
    up = torch.rand(x.shape, generator=generator, dtype=torch.float64) < (x - low)
    return (low + up.double()).long()


def wrap(values: torch.Tensor, *, bits: int) -> torch.Tensor:
    """Reduce integers modulo M = 2^bits into [0, M): what secure aggregation adds.

    >>> wrap(torch.tensor([-1, 5]), bits=4).tolist()
    [15, 5]
    """
    bits = check_int("bits", bits, minimum=2, maximum=62)
    _check_integer_tensor("values", values)
    return torch.remainder(values.long(), 2**bits)


def unwrap(values: torch.Tensor, *, bits: int) -> torch.Tensor:
    """The centred residue: x mod 2^bits read in [-2^(bits-1), 2^(bits-1)).

    Exactly the inverse of ``wrap`` for integers in that range; a sum outside
    it comes back wrong by a multiple of 2^bits (the modular wrap-around), so
    the modulus must hold the noisy sum of every client.

    >>> unwrap(wrap(torch.tensor([-8, 7, 9]), bits=4), bits=4).tolist()
    [-8, 7, -7]
    """
    bits = check_int("bits", bits, minimum=2, maximum=62)
    _check_integer_tensor("values", values)
    half = 2 ** (bits - 1)
    return torch.remainder(values.long() + half, 2**bits) - half


def noise_share_std(
    *, noise_multiplier: float, clip_norm: float, num_clients: int, dropout_rate: float = 0.0
) -> float:
    """Each client's noise std so that the surviving shares sum to std sigma C.

    Without dropout, m shares of std sigma C / sqrt(m) add up to N(0, (sigma
    C)^2), the noise of central DP-FedAvg. If each sampled client drops with
    probability p, only about m (1 - p) shares arrive; over-provisioning each
    share to std sigma C / sqrt(m (1 - p)) restores sigma C in expectation of
    the count (it is a factor 1 / sqrt(1 - p) on every share: 1.054 at p =
    0.1, 1.414 at p = 0.5). More dropouts than expected still leave less
    noise than accounted for: account with the survivors you can guarantee.

    >>> round(noise_share_std(noise_multiplier=1.0, clip_norm=1.0, num_clients=100), 6)
    0.1
    >>> round(noise_share_std(noise_multiplier=1.0, clip_norm=1.0, num_clients=100,
    ...                       dropout_rate=0.1), 6)
    0.105409
    """
    sigma = check_real("noise_multiplier", noise_multiplier, low=0.0)
    c = check_real("clip_norm", clip_norm, low=0.0, low_open=True)
    m = check_int("num_clients", num_clients, minimum=1)
    p = check_real("dropout_rate", dropout_rate, low=0.0, high=1.0, high_open=True)
    return sigma * c / math.sqrt(m * (1.0 - p))


def rounded_sensitivity(*, scaled_clip_norm: float, dim: int) -> tuple[float, float]:
    """(L2, L1) sensitivity of one client's stochastically rounded, scaled, clipped update.

    A vector of L2 norm at most c (after scaling) moves by less than 1 per
    entry when rounded, so its rounded norm is at most c + sqrt(d): that is
    the L2 sensitivity of the integer sum under add/remove of one client, and
    its L1 sensitivity is at most sqrt(d) times that. Kairouz, Liu & Steinke
    (2021, Sec. 4.1) get a tighter bound by redrawing the rounding until the
    norm is small ("conditional randomized rounding"); this one holds always.

    >>> rounded_sensitivity(scaled_clip_norm=100.0, dim=4)
    (102.0, 204.0)
    """
    c = check_real("scaled_clip_norm", scaled_clip_norm, low=0.0, low_open=True)
    d = check_int("dim", dim, minimum=1)
    l2 = c + math.sqrt(d)
    return l2, math.sqrt(d) * l2


def sum_closeness_tau(*, sigma_squared: float, num_clients: int) -> float:
    """tau = 10 sum_{k=1}^{m-1} exp(-2 pi^2 sigma^2 k / (k + 1)): how far a sum of DGs is from one.

    Kairouz, Liu & Steinke (2021), Theorem 1: for sigma >= 1/2, the sum of m
    independent N_Z(0, sigma^2) is close to N_Z(0, m sigma^2), and tau is the
    per-coordinate price of the gap in the RDP bound of their Proposition 14
    (``distributed_discrete_gaussian_rdp``). ``sum_divergence`` measures the
    gap itself; in the tests its largest log-ratio stays below tau. tau
    vanishes fast: 0.85 at sigma = 1/2 and m = 2, 5.5e-4 at sigma = 1 and m =
    100, below 1e-30 at sigma = 3.

    >>> sum_closeness_tau(sigma_squared=4.0, num_clients=1)
    0.0
    """
    s2 = check_real("sigma_squared", sigma_squared, low=0.25, high=MAX_SIGMA_SQUARED)
    m = check_int("num_clients", num_clients, minimum=1)
    k = np.arange(1, m, dtype=np.float64)
    return float(10.0 * np.exp(-2.0 * math.pi**2 * s2 * k / (k + 1)).sum())


def sum_divergence(*, sigma_squared: float, num_clients: int) -> tuple[float, float]:
    """Measured gap between the sum of m N_Z(0, sigma^2) and N_Z(0, m sigma^2).

    The sum's pmf is computed exactly (up to float64) by convolving the
    share's pmf m times. Returns (max |log ratio| of the two pmfs, total
    variation distance). The log ratio is read where N_Z(0, m sigma^2) is
    above 1e-9 of its peak (the convolution's round-off makes smaller
    probabilities unreliable; the region holds all but about 1e-8 of the mass).

    >>> gap, tv = sum_divergence(sigma_squared=4.0, num_clients=5)
    >>> gap < 1e-9 and tv < 1e-9
    True
    """
    s2 = check_real("sigma_squared", sigma_squared, low=0.25, high=1e4)
    m = check_int("num_clients", num_clients, minimum=1, maximum=1000)
    radius = int(40 * math.sqrt(s2)) + 40
    share = discrete_gaussian_pmf(np.arange(-radius, radius + 1), sigma_squared=s2)
    total = np.ones(1)
    for _ in range(m):
        total = np.convolve(total, share)
    support = np.arange(-m * radius, m * radius + 1)
    target = discrete_gaussian_pmf(support, sigma_squared=m * s2)
    reliable = target > 1e-9 * target.max()
    gap = float(np.abs(np.log(total[reliable] / target[reliable])).max())
    return gap, float(0.5 * np.abs(total - target).sum())


def distributed_discrete_gaussian_rdp(
    *,
    orders: Sequence[float] | np.ndarray,
    sigma_squared: float,
    num_clients: int,
    l2_sensitivity: float,
    l1_sensitivity: float,
    dim: int,
) -> np.ndarray:
    """Rényi DP of one release of the sum of m clients' integer vectors plus N_Z(0, sigma^2) shares.

    Kairouz, Liu & Steinke (2021), Theorem 1 and Proposition 14 (Eq. 17): with tau
    from ``sum_closeness_tau``, s^2 = m sigma^2, sensitivities D2, D1 of the
    integer sum and d coordinates, the release is (alpha, eps(alpha))-RDP with

        eps(alpha) = min( alpha D2^2 / (2 s^2) + tau d,
                          alpha/2 (D2^2 / s^2 + 2 D1 tau / s + tau^2 d),
                          alpha/2 (D2 / s + tau sqrt(d))^2 ).

    With tau = 0 all three are alpha D2^2 / (2 s^2), the continuous
    Gaussian's RDP with the same variance: the tau terms are the whole price
    of the integers (besides the rounding's larger sensitivity).

    >>> rdp = distributed_discrete_gaussian_rdp(orders=[2.0], sigma_squared=100.0, num_clients=4,
    ...     l2_sensitivity=10.0, l1_sensitivity=10.0, dim=1)
    >>> rdp.tolist()  # tau is 0 to float precision: 2 * 100 / (2 * 400)
    [0.25]
    """
    alpha = np.asarray(orders, dtype=np.float64)
    if (
        alpha.ndim != 1
        or alpha.size == 0
        or not np.all(alpha > 1)
        or not np.all(np.isfinite(alpha))
    ):
        fail("orders", "a non-empty list of finite orders > 1", orders)
    tau = sum_closeness_tau(sigma_squared=sigma_squared, num_clients=num_clients)
    d2 = check_real("l2_sensitivity", l2_sensitivity, low=0.0)
    d1 = check_real("l1_sensitivity", l1_sensitivity, low=0.0)
    d = check_int("dim", dim, minimum=1)
    s = math.sqrt(num_clients * float(sigma_squared))
    first = alpha * d2**2 / (2 * s**2) + tau * d
    second = alpha / 2 * (d2**2 / s**2 + 2 * d1 * tau / s + tau**2 * d)
    third = alpha / 2 * (d2 / s + tau * math.sqrt(d)) ** 2
    return np.minimum(np.minimum(first, second), third)


def distributed_discrete_gaussian_epsilon(
    *,
    sigma_squared: float,
    num_clients: int,
    l2_sensitivity: float,
    l1_sensitivity: float,
    dim: int,
    delta: float,
    steps: int = 1,
) -> tuple[float, float]:
    """(epsilon of the distributed discrete Gaussian, epsilon of a continuous Gaussian) at delta.

    ``steps`` releases (every client in every round, no subsampling credit)
    compose by adding RDP; both are converted with ``accounting.rdp_to_epsilon``
    on the same orders, so the difference is the price of the integers.

    >>> dg, cont = distributed_discrete_gaussian_epsilon(sigma_squared=0.3, num_clients=10,
    ...     l2_sensitivity=1.0, l1_sensitivity=1.0, dim=1, delta=1e-5)
    >>> dg > cont
    True
    """
    from fl_dp_lab.accounting import rdp_to_epsilon

    steps = check_int("steps", steps, minimum=1)
    orders = np.concatenate([np.linspace(1.01, 10, 200), np.linspace(10.5, 1000, 400)])
    rdp = distributed_discrete_gaussian_rdp(
        orders=orders, sigma_squared=sigma_squared, num_clients=num_clients,
        l2_sensitivity=l2_sensitivity, l1_sensitivity=l1_sensitivity, dim=dim,
    )  # fmt: skip
    continuous = orders * l2_sensitivity**2 / (2 * num_clients * float(sigma_squared))
    return (
        rdp_to_epsilon(rdp=steps * rdp, orders=orders, delta=delta)[0],
        rdp_to_epsilon(rdp=steps * continuous, orders=orders, delta=delta)[0],
    )


def _check_sigma_squared(value: object) -> Fraction:
    """``value`` as an exact Fraction in [0, MAX_SIGMA_SQUARED]."""
    if isinstance(value, bool) or not isinstance(value, Real):
        fail("sigma_squared", "a real number (int, float or Fraction)", value, TypeError)
    check_real("sigma_squared", float(value), low=0.0, high=MAX_SIGMA_SQUARED)
    # exact either way; float() also takes a Real that Fraction refuses (numpy.float32)
    return Fraction(value) if isinstance(value, Rational) else Fraction(float(value))


def _check_shape(shape: object) -> tuple[int, ...]:
    size = (shape,) if isinstance(shape, int | np.integer) else tuple(shape)  # type: ignore[arg-type]
    return tuple(check_int("shape", s, minimum=0) for s in size)


def _check_integer_tensor(name: str, values: object) -> None:
    if (
        not isinstance(values, torch.Tensor)
        or values.is_floating_point()
        or values.dtype == torch.bool
    ):
        fail(name, "an integer torch.Tensor", values, TypeError)


def _full(size: int, value: int) -> np.ndarray:
    """An object array of ``size`` copies of the Python int ``value``."""
    out = np.empty(size, dtype=object)
    out[:] = value
    return out


def _bits(size: int, generator: torch.Generator) -> np.ndarray:
    """``size`` integers uniform on [0, 2^62) (a power-of-two range: torch draws it exactly)."""
    return torch.randint(0, 2**_CHUNK_BITS, (size,), generator=generator).numpy()


def _uniform_below(size: int, bound: int, generator: torch.Generator) -> np.ndarray:
    """``size`` integers uniform on {0, ..., bound - 1} (bound <= 2^62), by rejection."""
    shift = _CHUNK_BITS - max((bound - 1).bit_length(), 1)
    out = np.empty(size, dtype=np.int64)
    pending = np.arange(size)
    while pending.size:
        draw = _bits(pending.size, generator) >> shift
        ok = draw < bound
        out[pending[ok]] = draw[ok]
        pending = pending[~ok]
    return out


def _bernoulli_ratio(num: np.ndarray, den: np.ndarray, generator: torch.Generator) -> np.ndarray:
    """Exact Bernoulli(num / den) per entry (object arrays of ints, 0 <= num <= den).

    A uniform U in [0, 1) is read 62 bits at a time and compared with the
    binary expansion of num / den; the first differing chunk decides U < p.
    """
    out = np.zeros(num.size, dtype=bool)
    pending = np.arange(num.size)
    rest = num.copy()
    while pending.size:
        scaled = rest[pending] * (1 << _CHUNK_BITS)
        digit = scaled // den[pending]
        rest[pending] = scaled - digit * den[pending]
        draw = _bits(pending.size, generator).astype(object)
        out[pending] = draw < digit
        pending = pending[draw == digit]
    return out


def _bernoulli_exp_unit(num: np.ndarray, den: np.ndarray, generator: torch.Generator) -> np.ndarray:
    """Exact Bernoulli(exp(-gamma)), gamma = num / den in [0, 1] (CKS 2020, Algorithm 1)."""
    out = np.zeros(num.size, dtype=bool)
    pending = np.arange(num.size)
    k = 1
    while pending.size:  # draw A ~ Bernoulli(gamma / k) until A = 0; answer: k odd
        more = _bernoulli_ratio(num[pending], den[pending] * k, generator)
        out[pending[~more]] = k % 2 == 1
        pending = pending[more]
        k += 1
    return out


def _bernoulli_exp(num: np.ndarray, den: np.ndarray, generator: torch.Generator) -> np.ndarray:
    """Exact Bernoulli(exp(-gamma)) for any rational gamma = num / den >= 0 (CKS 2020, Alg. 1).

    exp(-gamma) = exp(-1)^floor(gamma) * exp(-(gamma - floor(gamma))): all the factors must succeed.
    """
    whole = num // den
    out = np.ones(num.size, dtype=bool)
    pending = np.flatnonzero(whole > 0)
    step = 0
    while pending.size:
        ok = _bernoulli_exp_unit(_full(pending.size, 1), _full(pending.size, 1), generator)
        out[pending[~ok]] = False
        step += 1
        pending = pending[ok & (whole[pending] > step)]
    alive = np.flatnonzero(out)
    out[alive] = _bernoulli_exp_unit(num[alive] - whole[alive] * den[alive], den[alive], generator)
    return out


def _discrete_laplace(size: int, t: int, generator: torch.Generator) -> np.ndarray:
    """``size`` exact draws with P[Y = y] proportional to exp(-|y| / t) (CKS 2020, Algorithm 2)."""
    out = np.zeros(size, dtype=np.int64)
    pending = np.arange(size)
    while pending.size:
        n = pending.size
        u = _uniform_below(n, t, generator)
        keep = _bernoulli_exp_unit(u.astype(object), _full(n, t), generator)
        v = np.zeros(n, dtype=np.int64)  # V: Bernoulli(exp(-1)) successes before a failure
        counting = np.arange(n)
        while counting.size:
            ok = _bernoulli_exp_unit(_full(counting.size, 1), _full(counting.size, 1), generator)
            v[counting[ok]] += 1
            counting = counting[ok]
        y = u + t * v
        negative = _bits(n, generator) >> (_CHUNK_BITS - 1) == 1
        keep &= ~(negative & (y == 0))  # -0 is rejected, so 0 is not counted twice
        out[pending[keep]] = np.where(negative, -y, y)[keep]
        pending = pending[~keep]
    return out
