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
  2022), pessimistic by construction;
- ``"best"`` (``epsilon`` only): the smaller of the two.

Both are valid upper bounds on the same mechanism's epsilon, and neither is
always the smaller. PLD is usually tighter (0.948 against RDP's 1.035 for
Abadi et al.'s q = 0.01, sigma = 4, 10,000 steps), and far tighter over few
steps, where RDP's conversion term log(1/delta)/(alpha - 1) dominates. RDP
wins when a tiny per-step loss is composed very many times: each composition
adds the PLD grid's rounding, so q = 1e-4, sigma = 10, 100,000 steps, delta =
1e-5 gives PLD 0.024 against RDP 0.0087. Where one number is reported, report
the smaller (``accountant="best"``).

Pure functions come first; ``PrivacyAccountant`` only keeps a history.
The math lives in the private submodules ``_rdp`` and ``_pld``, cached in
``_accounting_core``; the composition theorems compared in notebook 05a in
``_composition``, and the privacy cost of a hyperparameter sweep (private
selection, notebooks 07 and 09) in ``_tuning``. Their public names are
re-exported here: import them from ``fl_dp_lab.accounting``.
"""

from __future__ import annotations

import math
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from typing import Literal, get_args

import numpy as np

from fl_dp_lab._validate import check_choice, check_int, check_real, fail
from fl_dp_lab.accounting import _pld
from fl_dp_lab.accounting._accounting_core import (
    ACCOUNTANTS,
    DEFAULT_ORDERS,
    MAX_STEPS,
    NEGLIGIBLE_NOISE,
    Accountant,
    check_mechanism,
    check_orders,
    composed_pld,
    directions,
    epsilon_checked,
    rdp_cached,
    rdp_to_epsilon_checked,
)
from fl_dp_lab.accounting._composition import (
    COMPOSITIONS,
    Composition,
    advanced_composition,
    composed_epsilon,
    epsilon_curves,
)
from fl_dp_lab.accounting._pld import Direction
from fl_dp_lab.accounting._tuning import best_of_random_runs_epsilon

__all__ = [
    "DEFAULT_ORDERS",
    "COMPOSITIONS",
    "MAX_STEPS",
    "Accountant",
    "Composition",
    "Direction",
    "EpsilonAccountant",
    "PrivacyAccountant",
    "advanced_composition",
    "best_of_random_runs_epsilon",
    "composed_epsilon",
    "epsilon_curves",
    "epsilon",
    "noise_multiplier_for_epsilon",
    "privacy_loss_distribution",
    "rdp_subsampled_gaussian",
    "remembered_epsilon_curves",
    "rdp_to_epsilon",
]


_SIGMA_RANGE = (0.01, 1e4)  # where noise_multiplier_for_epsilon searches
#: ``accountant`` values of ``epsilon`` and ``noise_multiplier_for_epsilon``: "best"
#: reports the smaller of the two.
EpsilonAccountant = Literal["rdp", "pld", "best"]
_EPSILON_ACCOUNTANTS: tuple[EpsilonAccountant, ...] = get_args(EpsilonAccountant)


def epsilon(
    *,
    noise_multiplier: float,
    sample_rate: float,
    steps: int,
    delta: float,
    accountant: EpsilonAccountant = "pld",
) -> float:
    """Epsilon spent by ``steps`` Poisson-subsampled Gaussian steps, at ``delta``.

    Assumptions: Poisson sampling with rate q (not shuffled fixed-size
    batches), add/remove neighbours, sensitivity C and noise std sigma C.
    The PLD grid has spacing 1e-4 (dp_accounting's default) or a tenth of one
    step's privacy-loss spread, whichever is larger: the epsilon stays an
    upper bound and within about 0.1 % of the 1e-4 grid's, at a fraction of
    the cost when one step's loss is wide. Where that grid would exceed about
    2 million points (sigma below about 0.5 with many steps, epsilon in the
    hundreds or more) it is coarsened: still an upper bound, memory bounded.

    Args:
        noise_multiplier: sigma >= 0, noise std over the clipping norm. 0 means no
            noise: the result is ``math.inf``.
        sample_rate: q in (0, 1], the probability each record joins a step.
        steps: T in [0, MAX_STEPS = 10^9], the number of steps (0 spends nothing).
        delta: target delta in (0, 1); at least 1e-10 for "pld" over more than
            one step, whose FFT round-off swamps smaller tails.
        accountant: "pld" (the default), "rdp", or "best": min(PLD, RDP). Both are
            upper bounds, so their minimum is one too, and the number to report.
            "pld" stays the default: it is the smaller in every setting the
            course trains with (tests/test_accounting.py checks them), it
            matches dp_accounting's PLD and Opacus's PRV, and "best" pays for
            an RDP curve on top. It is larger at tiny per-step losses composed
            very many times (module docstring); ask for "best" there.

    Returns:
        The epsilon; ``math.inf`` when sigma is 0.

    Raises:
        ValueError, TypeError: on an argument outside its range (naming it).

    >>> round(epsilon(noise_multiplier=4.0, sample_rate=0.01, steps=10_000,
    ...               delta=1e-5, accountant="rdp"), 3)
    1.035
    >>> round(epsilon(noise_multiplier=4.0, sample_rate=0.01, steps=10_000,
    ...               delta=1e-5, accountant="best"), 3)  # PLD's 0.948 is the smaller here
    0.948
    """
    sigma, q, steps, delta = check_mechanism(noise_multiplier, sample_rate, steps, delta)
    check_choice("accountant", accountant, _EPSILON_ACCOUNTANTS)
    if accountant == "best":
        return _smaller_bound(sigma, q, steps, delta)
    return epsilon_checked(sigma, q, steps, delta, accountant)


def privacy_loss_distribution(
    *,
    noise_multiplier: float,
    sample_rate: float,
    steps: int,
    direction: Direction = "remove",
) -> tuple[np.ndarray, np.ndarray, float]:
    """The grid PLD that ``epsilon(accountant="pld")`` reads epsilon from.

    The privacy loss L = log(P(x) / Q(x)) of ``steps`` Poisson-subsampled
    Gaussian steps, x ~ P, in one neighbouring ``direction``: "remove" (P
    has the record: P = (1 - q) N(0, s^2) + q N(1, s^2), Q = N(0, s^2)) or
    "add" (the roles swapped). Its hockey-stick
    delta(eps) = P(L = inf) + sum over l > eps of pmf(l) (1 - exp(eps - l))
    is an upper bound on the mechanism's delta at eps (see ``fl_dp_lab.accounting._pld``).

    Returns:
        (losses, pmf, mass at +infinity); losses are multiples of the grid step.

    >>> losses, pmf, inf_mass = privacy_loss_distribution(
    ...     noise_multiplier=4.0, sample_rate=0.01, steps=100)
    >>> round(float(pmf.sum() + inf_mass), 9)
    1.0
    """
    sigma, q, steps, _ = check_mechanism(noise_multiplier, sample_rate, steps, 0.5)
    check_choice("direction", direction, get_args(Direction))
    if sigma < NEGLIGIBLE_NOISE:
        fail(
            "noise_multiplier",
            f">= {NEGLIGIBLE_NOISE:g} (with less noise the loss is infinite in float64)",
            sigma,
        )
    if steps == 0:
        return np.zeros(1), np.ones(1), 0.0
    pld = composed_pld(sigma, q, steps, direction)
    losses = (pld.offset + np.arange(len(pld.pmf))) * pld.interval
    return losses, pld.pmf.copy(), pld.infinity_mass


def rdp_subsampled_gaussian(
    *, sample_rate: float, noise_multiplier: float, orders: Sequence[float] | np.ndarray
) -> np.ndarray:
    """Rényi DP of ONE step of the Poisson-subsampled Gaussian, at each order.

    For order a > 1, RDP_a = log(A_a) / (a - 1) with
    A_a = E_{x ~ N(0, s^2)}[(1 - q + q exp((2x - 1) / (2 s^2)))^a]
    (Mironov, Talwar, Zhang 2019, Theorem 5 and Section 3; the remove direction
    dominates for Poisson sampling). Integer orders use the exact binomial sum
    of Section 3.2; fractional orders integrate A_a numerically (see
    ``fl_dp_lab.accounting._rdp``). With q = 1 this is a / (2 sigma^2), the Gaussian's RDP.
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
    orders = check_orders(orders)
    if sigma < NEGLIGIBLE_NOISE:  # 0 included; below, the terms overflow float64
        return np.full(len(orders), np.inf)
    return rdp_cached(q, sigma, tuple(orders.tolist()))


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

    >>> rdp_to_epsilon(rdp=[0.5, 1.0, 4.0], orders=[2, 4, 8], delta=1e-5)[1]
    4.0
    """
    orders = check_orders(orders)
    rdp = np.asarray(rdp, dtype=np.float64)
    if rdp.shape != orders.shape:
        fail("rdp", f"an array of the same shape as orders {orders.shape}", rdp.shape)
    if np.any(np.isnan(rdp)) or np.any(rdp < 0):
        fail("rdp", "non-negative numbers (inf allowed)", rdp)
    delta = check_real("delta", delta, low=0.0, high=1.0, low_open=True, high_open=True)
    return rdp_to_epsilon_checked(rdp, orders, delta)


def noise_multiplier_for_epsilon(
    *,
    target_epsilon: float,
    sample_rate: float,
    steps: int,
    delta: float,
    accountant: EpsilonAccountant = "pld",
) -> float:
    """The noise multiplier sigma at which ``steps`` steps spend ``target_epsilon``.

    Epsilon falls as sigma grows, so we bracket the answer and shrink the
    bracket (bisection on log sigma) until the epsilon achieved is within
    0.1 % of the target, never above it: the returned sigma always satisfies
    epsilon(sigma) <= target_epsilon (what Opacus's ``get_noise_multiplier``
    promises too). For "pld", RDP is calibrated first (cheap) and its sigma
    starts the search, which brackets from there in whichever direction the
    PLD epsilon asks (RDP is usually, not always, the larger of the two).

    Args:
        target_epsilon: epsilon > 0 to spend.
        sample_rate: q in (0, 1].
        steps: T >= 1.
        delta: target delta in (0, 1).
        accountant: "pld", "rdp" or "best". Each accountant's epsilon falls as
            sigma grows, so min(PLD, RDP) <= target exactly when sigma is at
            least the smaller of the two calibrated sigmas: "best" returns that.

    Returns:
        sigma > 0.

    Raises:
        ValueError: if even sigma = 1e4 spends more than the target. The
            search stops at sigma = 0.01: a target so loose that less noise
            would do returns 0.01.

    >>> sigma = noise_multiplier_for_epsilon(target_epsilon=1.0, sample_rate=0.01,
    ...                                      steps=1000, delta=1e-5, accountant="rdp")
    >>> 0.99 < epsilon(noise_multiplier=sigma, sample_rate=0.01, steps=1000,
    ...                delta=1e-5, accountant="rdp") <= 1.0
    True
    """
    target = check_real("target_epsilon", target_epsilon, low=0.0, low_open=True)
    _, q, steps, delta = check_mechanism(1.0, sample_rate, steps, delta)
    if steps == 0:
        fail("steps", "an integer >= 1 (zero steps spend no epsilon)", steps)
    check_choice("accountant", accountant, _EPSILON_ACCOUNTANTS)
    if accountant == "best":
        return min(_calibrate(target, q, steps, delta, kind) for kind in ACCOUNTANTS)
    return _calibrate(target, q, steps, delta, accountant)


class PrivacyAccountant:
    """Keeps the history of noisy steps and reports the epsilon spent so far.

    Like Opacus's accountants: ``history`` is a list of
    ``(noise_multiplier, sample_rate, steps)``; repeated calls with the same
    sigma and q extend the last entry. Different entries compose exactly: RDP
    adds per-order RDP, PLD convolves all the steps' PLDs in one FFT.

    Args:
        accountant: "pld" (default) or "rdp".

    >>> acc = PrivacyAccountant(accountant="rdp")
    >>> acc.step(noise_multiplier=4.0, sample_rate=0.01, steps=5_000)
    >>> acc.step(noise_multiplier=4.0, sample_rate=0.01, steps=5_000)
    >>> acc.history
    ((4.0, 0.01, 10000),)
    >>> round(acc.get_epsilon(1e-5), 3)
    1.035
    """

    def __init__(self, accountant: Accountant = "pld") -> None:
        self.accountant = check_choice("accountant", accountant, ACCOUNTANTS)
        self._history: list[tuple[float, float, int]] = []

    @property
    def history(self) -> tuple[tuple[float, float, int], ...]:
        """The recorded ``(noise_multiplier, sample_rate, steps)`` entries, read-only.

        A tuple: only ``step`` adds to it, after checking the entry (an entry
        appended by hand with negative steps would have lowered epsilon).
        """
        return tuple(self._history)

    def step(self, *, noise_multiplier: float, sample_rate: float, steps: int = 1) -> None:
        """Record ``steps`` (a positive integer) steps at ``noise_multiplier`` and ``sample_rate``.

        The steps recorded at one (noise_multiplier, sample_rate) may total at
        most ``MAX_STEPS``, so that ``get_epsilon`` can always answer.
        """
        sigma, q, steps, _ = check_mechanism(noise_multiplier, sample_rate, steps, 0.5)
        if steps == 0:
            fail("steps", "an integer >= 1", steps)
        recorded = sum(t for s, r, t in self._history if (s, r) == (sigma, q))
        if recorded + steps > MAX_STEPS:
            fail(
                "steps",
                f"at most {MAX_STEPS - recorded:,} more at this noise_multiplier and sample_rate "
                f"(MAX_STEPS = {MAX_STEPS:,} in all)",
                steps,
            )
        if self._history and self._history[-1][:2] == (sigma, q):
            self._history[-1] = (sigma, q, self._history[-1][2] + steps)
        else:
            self._history.append((sigma, q, steps))

    def get_epsilon(self, delta: float) -> float:
        """Epsilon of everything recorded so far, at ``delta`` in (0, 1)."""
        delta = check_real("delta", delta, low=0.0, high=1.0, low_open=True, high_open=True)
        totals: dict[tuple[float, float], int] = {}
        for sigma, q, steps in self._history:
            totals[(sigma, q)] = totals.get((sigma, q), 0) + steps
        if not totals:
            return 0.0
        if any(sigma < NEGLIGIBLE_NOISE for sigma, _ in totals):
            return math.inf
        if len(totals) == 1:
            (((sigma, q), steps),) = totals.items()
            return epsilon_checked(sigma, q, steps, delta, self.accountant)
        if self.accountant == "rdp":
            rdp = sum(
                (t * rdp_cached(q, s, DEFAULT_ORDERS) for (s, q), t in totals.items()),
                np.zeros(len(DEFAULT_ORDERS)),
            )
            return rdp_to_epsilon_checked(rdp, np.array(DEFAULT_ORDERS), delta)[0]
        parts = [(s, q, t) for (s, q), t in totals.items()]
        return max(
            _pld.epsilon_for_delta(_pld.composed(parts, direction), delta)
            for direction in directions(*(q for _, q, _ in parts))
        )


def _smaller_bound(sigma: float, q: float, steps: int, delta: float) -> float:
    """min(PLD, RDP) epsilon; RDP's edge-of-grid warning only when RDP is the one returned."""
    pld = epsilon_checked(sigma, q, steps, delta, "pld")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rdp = epsilon_checked(sigma, q, steps, delta, "rdp")
    if rdp < pld:
        for warning in caught:
            warnings.warn(warning.message, warning.category, stacklevel=3)
    return min(pld, rdp)


def _calibrate(target: float, q: float, steps: int, delta: float, accountant: Accountant) -> float:
    """Bracket sigma by doubling, then bisect log sigma until epsilon is in [0.999, 1] target."""

    def spent(sigma: float) -> float:
        with warnings.catch_warnings():  # edge-of-grid orders while bracketing are expected
            warnings.simplefilter("ignore", RuntimeWarning)
            return epsilon_checked(sigma, q, steps, delta, accountant)

    low, high = _SIGMA_RANGE
    start = 1.0 if accountant == "rdp" else _calibrate(target, q, steps, delta, "rdp")
    if spent(start) > target:
        low = start
        while spent(min(2.0 * low, high)) > target:
            if 2.0 * low >= high:
                fail("target_epsilon", f"reachable with noise_multiplier <= {high:g}", target)
            low *= 2.0
        high = min(2.0 * low, high)
    else:
        high = start
        while low < high / 2.0 and spent(high / 2.0) <= target:
            high /= 2.0
        low = max(high / 2.0, low)
        if spent(low) <= target:
            return low
    while spent(high) < 0.999 * target and high / low > 1.0 + 1e-9:
        middle = math.sqrt(low * high)
        if spent(middle) > target:
            low = middle
        else:
            high = middle
    return high


# ---------------------------------------------------------------------------------------
# Remembered curves for dashboards: a slider revisits its stops, so each stop's curves are
# computed once per session. Separate from the accountant above; only widgets call it.
# ---------------------------------------------------------------------------------------

_CURVES_REMEMBERED = 4096  # (sigma, q, T, method) entries: about 1 MB at 6 points each
_curves_memo: OrderedDict[tuple, tuple[np.ndarray, np.ndarray]] = OrderedDict()


def remembered_epsilon_curves(
    *,
    noise_multiplier: float,
    sample_rate: float,
    steps: int,
    delta: float,
    points: int = 8,
    methods: Sequence[Composition] = COMPOSITIONS,
    compute: bool = True,
) -> tuple[np.ndarray, dict[Composition, np.ndarray]] | None:
    """``epsilon_curves``, remembered per method: what a dashboard asks at each slider stop.

    The first call for a ``(noise_multiplier, sample_rate, steps, delta, points,
    method)`` computes that method's curve with ``epsilon_curves`` (the same
    numbers, not an approximation); later calls return it from memory (the
    last 4,096 curves are kept; arrays are read-only). With ``compute=False``
    nothing is computed: the result is ``None`` unless every method is
    remembered, so a dashboard can first draw what it already has.

    >>> args = dict(noise_multiplier=4.0, sample_rate=0.01, steps=100, delta=1e-5, points=3)
    >>> remembered_epsilon_curves(**args, methods=["pld"], compute=False) is None
    True
    >>> grid, curves = remembered_epsilon_curves(**args, methods=["pld"])
    >>> bool(curves["pld"][-1] == epsilon(noise_multiplier=4.0, sample_rate=0.01,
    ...                                   steps=100, delta=1e-5))
    True
    >>> remembered_epsilon_curves(**args, methods=["pld"], compute=False)[0].tolist()
    [1, 10, 100]
    """
    sigma, q, steps, delta = check_mechanism(noise_multiplier, sample_rate, steps, delta)
    points = check_int("points", points, minimum=2)
    methods = tuple(check_choice("method", m, COMPOSITIONS) for m in methods)
    if not methods:
        fail("methods", "a non-empty sequence of " + ", ".join(COMPOSITIONS), methods)
    grid = np.empty(0, dtype=int)  # every method's curve shares one grid, set below
    curves: dict[Composition, np.ndarray] = {}
    for method in methods:
        key = (sigma, q, steps, delta, points, method)
        if key in _curves_memo:
            _curves_memo.move_to_end(key)
        elif not compute:
            return None
        else:
            grid_m, values = epsilon_curves(
                noise_multiplier=sigma,
                sample_rate=q,
                steps=steps,
                delta=delta,
                points=points,
                methods=(method,),
            )
            for array in (grid_m, values[method]):
                array.setflags(write=False)
            _curves_memo[key] = (grid_m, values[method])
            while len(_curves_memo) > _CURVES_REMEMBERED:
                _curves_memo.popitem(last=False)
        grid, curves[method] = _curves_memo[key]
    return grid, curves
