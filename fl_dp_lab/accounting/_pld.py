"""Privacy-loss distributions (PLDs) of the Poisson-subsampled Gaussian, on a grid.

Private math behind ``fl_dp_lab.accounting``; callers pass checked arguments.

A PLD is the distribution of the privacy loss L = log(P(x) / Q(x)) for x ~ P,
where (P, Q) are the output distributions on two neighbouring datasets. For
any epsilon, the tightest delta is the hockey-stick divergence

    delta(epsilon) = P(L = inf) + E[(1 - exp(epsilon - L))_+],

and composing mechanisms adds their losses, so the PLD of T steps is the
T-fold convolution of one step's PLD (Sommer, Meiser, Mohammadi 2019; Koskela,
Jälkö, Honkela 2020).

One step of DP-SGD with sample rate q and noise multiplier sigma (sensitivity
1, Poisson sampling, add/remove neighbours) has two directions:

- remove: P = (1 - q) N(0, s^2) + q N(1, s^2), Q = N(0, s^2),
  L(x) = log(1 - q + q exp((2x - 1) / (2 s^2))), increasing in x;
- add: P = N(0, s^2), Q = the mixture, L(x) = -(the same), decreasing in x.

We keep both and report the larger epsilon, as dp_accounting does.

Discretisation ("connect the dots", Doroshenko, Ghazi, Kamath, Kumar,
Manurangsi 2022): losses live on the grid k * h. The P-mass and Q-mass of
each interval (k - 1) h < L <= k h are split between its two end points so
that both masses are kept. This is a mean-preserving spread of exp(-L) inside
the interval, and (1 - exp(epsilon) exp(-L))_+ is convex in exp(-L), so delta
can only grow: the grid PLD is pessimistic (epsilon an upper bound) and yet
has no per-step bias. Mass below the grid is rounded up to its first point;
mass above it is counted as infinite loss.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal

import numpy as np
from scipy import fft
from scipy.special import ndtr

from fl_dp_lab._validate import fail

__all__ = [
    "LARGE_NOISE",
    "MIN_COMPOSED_DELTA",
    "Direction",
    "GridPLD",
    "compose",
    "composed",
    "epsilon_for_delta",
    "grid_interval",
    "subsampled_gaussian_pld",
]

#: A neighbouring direction: "remove" (the record is in the first dataset) or "add".
Direction = Literal["remove", "add"]

_TAIL_Z = 9.5  # truncate x at 9.5 noise std: each Gaussian tail beyond holds < 1.1e-21
_LOG_WINDOW_TAIL = -50.0  # composed mass left outside the FFT window: < exp(-50) each side
#: Smallest delta read off an FFT-composed PLD. Below it the FFT's round-off (about 1e-16
#: of the peak mass at every grid point, kept only where positive) dominates the tail, and
#: epsilon, though still an upper bound, drifts several percent above the truth (1e-12 at
#: sigma = 2, q = 1, T = 1e5 gives 3 %); the RDP accountant has no such floor.
MIN_COMPOSED_DELTA = 1e-10
#: The smallest delta for one step: the grid cuts each tail at _TAIL_Z, and below about
#: 1e-21 the cut-off mass (counted as an infinite loss, pessimistically) would read as eps = inf
MIN_ONE_STEP_DELTA = 1e-20
#: Noise multipliers above this are treated as this one: epsilon falls as sigma grows, so
#: the result is still an upper bound (0 at every delta the accountants accept), and sigma^2
#: no longer overflows float64 (sigma = 1e300 raised OverflowError).
LARGE_NOISE = 1e100
_MAX_ONE_STEP = 2**18  # grid points of one step's PLD, at most
_MAX_WINDOW = 2**21  # grid points of a composed PLD (the FFT length), at most
_BLOCK = 2048  # grid points per block of epsilon_for_delta's first, coarse pass


@dataclass(frozen=True)
class GridPLD:
    """Masses ``pmf[i]`` at losses ``(offset + i) * interval``, plus mass at +infinity.

    ``composed`` marks a PLD that went through an FFT: its tail is trustworthy
    only down to about ``MIN_COMPOSED_DELTA`` (round-off of 1e-16 per grid point).
    ``moments`` remembers what ``_chernoff_window`` computed from this PLD (its
    grid index's mean and variance, log E[exp(t i)] at each t asked): the windows
    of several step counts of one step's PLD share them.
    """

    offset: int
    pmf: np.ndarray
    infinity_mass: float
    interval: float
    composed: bool = False
    moments: dict = field(default_factory=dict, compare=False, repr=False)


@lru_cache(maxsize=64)
def subsampled_gaussian_pld(
    sigma: float, q: float, interval: float, direction: Direction
) -> GridPLD:
    """One step's pessimistic grid PLD in ``direction`` ("remove" or "add")."""
    h = interval
    x_lo, x_hi = -_TAIL_Z * sigma, 1.0 + _TAIL_Z * sigma
    sign = 1.0 if direction == "remove" else -1.0
    loss_lo, loss_hi = sorted(sign * _mixture_log_ratio(np.array([x_lo, x_hi]), sigma, q))
    if direction == "add" and q < 1.0:
        loss_hi = -math.log1p(-q)  # the add-direction loss never exceeds log(1/(1-q))
    # at least one interval: with an enormous sigma the whole loss range rounds to one point
    low = math.floor(loss_lo / h)
    k = np.arange(low, max(math.ceil(loss_hi / h), low + 1) + 1)
    losses = k * h
    x = _inverse_loss(losses, sigma, q, sign)  # boundaries, in order of increasing loss
    # P and Q masses of each interval (losses[i-1], losses[i]]
    if direction == "remove":
        n0 = _interval_mass(x, 0.0, sigma, increasing=True)
        n1 = _interval_mass(x, 1.0, sigma, increasing=True)
        p_int, q_int = (1 - q) * n0 + q * n1, n0
        p_below = (1 - q) * ndtr(x[0] / sigma) + q * ndtr((x[0] - 1) / sigma)
        p_above = (1 - q) * ndtr(-x[-1] / sigma) + q * ndtr(-(x[-1] - 1) / sigma)
    else:
        n0 = _interval_mass(x, 0.0, sigma, increasing=False)
        n1 = _interval_mass(x, 1.0, sigma, increasing=False)
        p_int, q_int = n0, (1 - q) * n0 + q * n1
        p_below = ndtr(-x[0] / sigma)
        p_above = ndtr(x[-1] / sigma) if np.isfinite(x[-1]) else 0.0
    # split (p_int, q_int) between the interval's ends l0 < l1 = l0 + h keeping both masses:
    # upper + lower = p_int and upper exp(-l1) + lower exp(-l0) = q_int
    with np.errstate(divide="ignore"):  # q_int exp(l0) as one exponent: no overflow at l0 > 709
        q_scaled = np.exp(np.log(q_int) + losses[:-1])
    upper = (p_int - q_scaled) / (-math.expm1(-h))
    upper = np.clip(upper, 0.0, p_int)
    pmf = np.zeros(len(losses))
    pmf[1:] += upper
    pmf[:-1] += p_int - upper
    pmf[0] += p_below
    return GridPLD(int(k[0]), pmf, float(p_above), h)


def grid_interval(sigma: float, q: float, finest: float = 1e-4) -> float:
    """A grid step fine enough for one step's loss: a tenth of its standard deviation.

    Connect-the-dots errors shrink like (interval / spread of L)^2; a tenth of
    the spread keeps epsilon within about 0.1 % of the 1e-4 grid while making
    wide losses (small sigma, large q) tens of times cheaper. Never finer
    than ``finest`` (dp_accounting's default) nor coarser than 2e-3, unless
    one step's losses span more than ``_MAX_ONE_STEP`` such steps (sigma below
    about 0.07): then the span over ``_MAX_ONE_STEP``, so memory stays bounded.
    """
    x = np.linspace(-10.0 * sigma, 1.0 + 10.0 * sigma, 801)
    weights = (1 - q) * np.exp(-0.5 * (x / sigma) ** 2) + q * np.exp(-0.5 * ((x - 1) / sigma) ** 2)
    weights /= weights.sum()
    loss = _mixture_log_ratio(x, sigma, q)
    spread = math.sqrt(max(float(np.dot(weights, loss**2) - np.dot(weights, loss) ** 2), 0.0))
    return max(float(np.clip(0.1 * spread, finest, 2e-3)), _loss_span(sigma, q) / _MAX_ONE_STEP)


def composed(parts: list[tuple[float, float, int]], direction: Direction) -> GridPLD:
    """The grid PLD of ``count`` steps of each ``(sigma, q, count)``, in ``direction``.

    All parts share one grid: the finest ``grid_interval`` among them, made
    coarser when the composed losses would need more than ``_MAX_WINDOW``
    points (a weak noise multiplier over many steps, where epsilon runs into
    the hundreds or more). Connect-the-dots rounding is pessimistic on any
    grid, so a coarser grid only loosens epsilon, never lowers it, and its
    effect is tiny next to an epsilon that large.
    """
    # epsilon only falls as sigma grows, so a capped sigma still gives an upper bound
    parts = [(min(sigma, LARGE_NOISE), q, count) for sigma, q, count in parts]
    h = min(grid_interval(sigma, q) for sigma, q, _ in parts)
    h = max([h] + [_loss_span(sigma, q) / _MAX_ONE_STEP for sigma, q, _ in parts])
    window = None
    for _ in range(8):
        plds = [(subsampled_gaussian_pld(sigma, q, h, direction), c) for sigma, q, c in parts]
        if sum(c for _, c in plds) <= 1:  # one step: no composition, no window
            break
        window = _window(plds)
        if window[1] - window[0] + 1 <= _MAX_WINDOW:
            break
        h *= 1.1 * (window[1] - window[0] + 1) / _MAX_WINDOW
        window = None
    return compose(plds, window)


def compose(
    parts: list[tuple[GridPLD, int]], window: tuple[int, int, float] | None = None
) -> GridPLD:
    """The PLD of running each ``(pld, count)`` ``count`` times, by one FFT.

    The circular convolution lives on a window chosen by a Chernoff bound, so
    at most exp(-50) of mass falls outside it on either side; the part above it
    is added to the infinite-loss mass (pessimistic), the part below wraps to
    higher losses (also pessimistic). ``window`` is ``_window(parts)`` when the
    caller has it already. Each spectrum is raised to its count by ``_power``.
    """
    parts = [(pld, count) for pld, count in parts if count > 0]
    h = parts[0][0].interval
    survive = math.prod((1.0 - pld.infinity_mass) ** count for pld, count in parts)
    if len(parts) == 1 and parts[0][1] == 1:
        return parts[0][0]
    lowest = sum(pld.offset * c for pld, c in parts)
    low, high, tail = window if window is not None else _window(parts)
    size = fft.next_fast_len(high - low + 1, real=True)
    spectrum = np.ones(size // 2 + 1, dtype=np.complex128)
    for pld, count in parts:
        if len(pld.pmf) <= size:  # zero-padded to the window, as the fold below would give
            spectrum *= _power(fft.rfft(pld.pmf, n=size), count)
            continue
        folded = np.bincount(np.arange(len(pld.pmf)) % size, weights=pld.pmf, minlength=size)
        spectrum *= _power(fft.rfft(folded), count)
    pmf = np.maximum(fft.irfft(spectrum, n=size), 0.0)
    pmf = np.roll(pmf, (lowest - low) % size)
    return GridPLD(low, pmf, 1.0 - survive + tail, h, composed=True)


def _power(spectrum: np.ndarray, count: int) -> np.ndarray:
    """``spectrum ** count``, in polar form for large counts: |z|^count exp(i count arg z).

    numpy's complex power takes a complex logarithm and exponential at every
    frequency (about 90 ms for a million); the polar form is the same formula
    (the same rounding: count times the logarithm of |z| and of the angle) and
    skips the frequencies whose power underflows to zero, most of them when
    the count is large. Counts below 100 keep numpy's repeated multiplication.
    """
    if count < 100:
        return spectrum**count
    radius = np.abs(spectrum)
    with np.errstate(divide="ignore"):
        log_power = count * np.log(radius)
    live = np.flatnonzero(log_power > -750.0)  # exp(-750) is 0 in float64
    out = np.zeros(len(spectrum), dtype=np.complex128)
    angle = count * np.angle(spectrum[live])
    magnitude = np.exp(log_power[live])
    out.real[live] = magnitude * np.cos(angle)
    out.imag[live] = magnitude * np.sin(angle)
    return out


def epsilon_for_delta(pld: GridPLD, delta: float) -> float:
    """Smallest epsilon >= 0 with delta(epsilon) <= delta, solved exactly between grid points.

    Works in the log domain, so composed losses of any size (thousands, for a
    tiny noise multiplier) give their true epsilon rather than overflowing.
    """
    if pld.composed and delta < MIN_COMPOSED_DELTA:
        fail(
            "delta",
            f">= {MIN_COMPOSED_DELTA:g} for the PLD accountant over several steps (smaller "
            "deltas drown in FFT round-off); use accountant='rdp' for them",
            delta,
        )
    if not pld.composed and delta < MIN_ONE_STEP_DELTA:
        fail(
            "delta",
            f">= {MIN_ONE_STEP_DELTA:g} for the PLD accountant (its grid cuts each tail at "
            f"{_TAIL_Z:g} noise standard deviations); use accountant='rdp' for smaller ones",
            delta,
        )
    if pld.infinity_mass > delta:
        return math.inf  # the mechanism fails to hide more than delta of the time
    first = max(1 - pld.offset, 0)  # the first grid point whose loss is > 0
    skipped = _below_crossing(pld.pmf[first:], pld.interval, delta)
    first += skipped
    kept = first + np.flatnonzero(pld.pmf[first:] > 0)
    if len(kept) == 0:
        return 0.0
    losses = (pld.offset + kept) * pld.interval
    pmf = pld.pmf[kept]
    # S[j] = P(L >= l_j) + P(L = inf), log R[j] = log E[exp(-L); L >= l_j]  (suffix sums),
    # delta(l_j) = S[j + 1] - exp(l_j) R[j + 1], non-increasing in j. First the sums at the
    # ends of blocks of _BLOCK grid points (one vectorised pass) find the block where
    # delta(l_j) crosses delta; then that block's running sums give the exact crossing.
    n = len(pmf)
    blocks = -(-n // _BLOCK)
    pad = blocks * _BLOCK - n
    log_terms = np.log(pmf) - losses
    block_terms = np.append(log_terms, np.full(pad, -np.inf)).reshape(blocks, _BLOCK)
    top = block_terms.max(axis=1)
    block_log_r = np.log(np.exp(block_terms - top[:, None]).sum(axis=1)) + top
    block_mass = np.append(pmf, np.zeros(pad)).reshape(blocks, _BLOCK).sum(axis=1)
    # at the start of block b (b = blocks: past the end): raw S (no infinity mass), log R
    s_start = np.append(np.cumsum(block_mass[::-1])[::-1], 0.0)
    log_r_start = np.append(np.logaddexp.accumulate(block_log_r[::-1])[::-1], -np.inf)
    ends = np.minimum(np.arange(1, blocks + 1) * _BLOCK, n)  # delta at each block's last point
    at_ends = s_start[1:] + pld.infinity_mass - np.exp(losses[ends - 1] + log_r_start[1:])
    b = int(np.argmax(at_ends <= delta))  # the last point of all leaves infinity_mass <= delta
    low, high = b * _BLOCK, int(ends[b])
    s = np.cumsum(np.append(s_start[b + 1], pmf[low:high][::-1]))[::-1] + pld.infinity_mass
    log_r = np.logaddexp.accumulate(np.append(log_r_start[b + 1], log_terms[low:high][::-1]))
    log_r = log_r[::-1]  # s[k], log_r[k]: S and log R at grid point low + k, k <= high - low
    if skipped == 0 and low == 0 and s[0] - math.exp(log_r[0]) <= delta:  # delta(0) <= delta
        return 0.0
    at_grid = s[1:] - np.exp(losses[low:high] + log_r[1:])  # delta(l_j); exponent <= 0
    meets = at_grid <= delta
    if not meets.any():  # only rounding can get here
        return math.inf
    k = int(np.argmax(meets))
    j = low + k  # first grid point that meets delta
    # between l_{j-1} and l_j the losses above epsilon are exactly {l_i: i >= j}
    eps = math.log(s[k] - delta) - float(log_r[k])
    lower = losses[j - 1] if j > 0 else 0.0
    return float(min(max(eps, lower), losses[j]))


def _below_crossing(pmf: np.ndarray, interval: float, delta: float) -> int:
    """How many of the lowest grid points surely have delta(l) > delta (whole blocks, less one).

    delta(l_j) >= (1 - 1/e) P(L >= l_j + 1): grid point j is below the crossing wherever
    the mass from a nat above it upwards exceeds delta / (1 - 1/e). Block sums of
    ``pmf`` (blocks aligned on the top) bound that mass from below.
    """
    blocks = -(-len(pmf) // _BLOCK)
    if blocks == 0:
        return 0
    pad = blocks * _BLOCK - len(pmf)
    mass = np.append(np.zeros(pad), pmf).reshape(blocks, _BLOCK).sum(axis=1)
    above = np.append(np.cumsum(mass[::-1])[::-1], 0.0)  # from each block's start to the top
    ahead = 1 + math.ceil((1.0 / interval + 1.0) / _BLOCK)  # blocks from a point to 1 nat up
    surely = 0.6 * above[np.minimum(np.arange(blocks) + ahead, blocks)] > delta  # 0.6 < 1 - 1/e
    count = int(np.argmin(surely))  # a prefix of the blocks; the top one never is
    return max((count - 1) * _BLOCK - pad, 0)


def _loss_span(sigma: float, q: float) -> float:
    """Width of the range of one step's losses that ``subsampled_gaussian_pld`` puts on its grid."""
    low, high = _mixture_log_ratio(np.array([-_TAIL_Z * sigma, 1.0 + _TAIL_Z * sigma]), sigma, q)
    return float(high - low)


def _mixture_log_ratio(x: np.ndarray, sigma: float, q: float) -> np.ndarray:
    """log(1 - q + q exp((2x - 1) / (2 sigma^2))), computed stably."""
    z = (2.0 * x - 1.0) / (2.0 * sigma**2)
    if q == 1.0:
        return z
    return np.logaddexp(math.log1p(-q), math.log(q) + z)


def _inverse_loss(losses: np.ndarray, sigma: float, q: float, sign: float) -> np.ndarray:
    """x with sign * _mixture_log_ratio(x) = loss (-inf where no x reaches it).

    Solves 1 - q + q exp(z) = exp(v), v = sign * loss, z = (2x - 1) / (2 sigma^2):
    z = log((exp(v) - (1 - q)) / q). For v > 30 the log is taken as
    v + log1p(-(1 - q) exp(-v)) - log q, so losses past 709 (a tiny noise
    multiplier) keep their own boundaries instead of overflowing to x = inf.
    """
    if q == 1.0:
        return sign * losses * sigma**2 + 0.5
    v = sign * losses
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        near = np.log((np.expm1(v) + q) / q)
        # the ratio overflows for a tiny q (1e-300) at v > 18: take the difference of logs
        near = np.where(np.isposinf(near), np.log(np.expm1(v) + q) - math.log(q), near)
        far = v + np.log1p(-(1.0 - q) * np.exp(-np.maximum(v, 30.0))) - math.log(q)
        x = sigma**2 * np.where(v > 30.0, far, near) + 0.5
    return np.where(np.isnan(x), -np.inf, x)


def _interval_mass(x: np.ndarray, mean: float, sigma: float, *, increasing: bool) -> np.ndarray:
    """N(mean, sigma^2) mass between consecutive boundaries ``x``, using the far tail for accuracy.

    ``x`` is increasing or decreasing; each boundary's two tail probabilities are
    computed once and shared by the two intervals it closes.
    """
    z = (x - mean) / sigma
    upper, lower = ndtr(-z), ndtr(z)
    a, b = (slice(None, -1), slice(1, None)) if increasing else (slice(1, None), slice(None, -1))
    return np.where(z[a] > 0, upper[a] - upper[b], lower[b] - lower[a])


def _window(parts: list[tuple[GridPLD, int]]) -> tuple[int, int, float]:
    """Grid indices [low, high] of the composed PLD, and the mass that may lie above high."""
    lowest = sum(pld.offset * c for pld, c in parts)
    highest = sum((pld.offset + len(pld.pmf) - 1) * c for pld, c in parts)
    low, high, tail = _chernoff_window(parts)
    low, high = max(low, lowest), min(high, highest)
    return low, high, 0.0 if high == highest else tail


def _chernoff_window(parts: list[tuple[GridPLD, int]]) -> tuple[int, int, float]:
    """Grid indices [low, high] holding all but exp(-50) of the composed mass on each side.

    P(S >= u) <= exp(sum_c c log M(t) - t u) for any t > 0, with M the moment
    generating function of one step's grid index (and symmetrically below),
    tried at t from 1e-4 to 20 over the spread (heavy tails need small t), on a
    lattice of three t per decade fixed by the per-step spread: the step counts
    of one curve share their t and so each PLD's log M(t) (``GridPLD.moments``).
    """
    total = sum(count for _, count in parts)
    spread = sum(count * _index_moments(pld)[1] for pld, count in parts)
    per_step = math.sqrt(max(spread / total, 1e-12))
    # t sqrt(spread) = 20 * 10**(-k / 3) * sqrt(total) in [1e-4, 20]
    shift = 1.5 * math.log10(total)
    k = np.arange(math.ceil(shift - 1e-9), math.floor(shift + 3.0 * math.log10(2e5) + 1e-9) + 1)
    t = 20.0 * 10.0 ** (-k / 3.0) / per_step
    t = np.concatenate([t, -t])
    log_mgf = np.zeros(len(t))
    for pld, count in parts:
        log_mgf += count * (t * pld.offset + _log_mgf(pld, t))
    bounds = (log_mgf - _LOG_WINDOW_TAIL) / t
    high = math.ceil(float(np.min(bounds[t > 0])))
    low = math.floor(float(np.max(bounds[t < 0])))
    return low, high, math.exp(_LOG_WINDOW_TAIL)


def _index_moments(pld: GridPLD) -> tuple[float, float]:
    """Mean and variance of the grid index i under ``pld.pmf`` (remembered in the PLD)."""
    if "index" not in pld.moments:
        idx = np.arange(len(pld.pmf))
        mass = pld.pmf.sum()
        m = float(np.dot(idx, pld.pmf) / mass)
        pld.moments["index"] = (m, float(np.dot((idx - m) ** 2, pld.pmf) / mass))
    return pld.moments["index"]


def _log_mgf(pld: GridPLD, t: np.ndarray) -> np.ndarray:
    """log sum_i pmf[i] exp(t i) at each t, each value computed once per PLD."""
    known = pld.moments.setdefault("log_mgf", {})
    new = np.array([x for x in t.tolist() if x not in known])
    if len(new):
        live = pld.pmf > 0
        idx = np.flatnonzero(live)
        log_pmf = np.log(pld.pmf[live])
        exponent = new[:, None] * idx
        exponent += log_pmf
        top = exponent.max(axis=1)
        exponent -= top[:, None]
        np.exp(exponent, out=exponent)
        log_sum = np.log(exponent.sum(axis=1)) + top
        known.update(zip(new.tolist(), log_sum.tolist()))
    return np.array([known[x] for x in t.tolist()])
