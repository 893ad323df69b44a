"""Exercises of notebooks 05a (composition and Rényi DP) and 05b (subsampling and the PLD)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any, TypedDict

import numpy as np

from fl_dp_lab.accounting import (
    Direction,
    epsilon,
    privacy_loss_distribution,
    rdp_subsampled_gaussian,
    rdp_to_epsilon,
)
from fl_dp_lab.exercises._core import (
    as_number,
    feedback,
    graded,
    hints,
    is_unanswered,
    report_unanswered,
)

__all__ = [
    "check_calibrate",
    "check_gaussian_rdp_epsilon",
    "check_pld_epsilon",
    "check_rdp_of_phases",
]

#: Exercise 05a.1's setting: T Gaussian steps (no subsampling), integer orders 2 ... 256.


class _RdpSetting(TypedDict):
    """The Gaussian steps of Exercise 05a.1 (q = 1)."""

    noise_multiplier: float
    steps: int
    delta: float


RDP_EXERCISE: _RdpSetting = {"noise_multiplier": 10.0, "steps": 1000, "delta": 1e-5}
RDP_EXERCISE_ORDERS = np.arange(2, 257)

hints(
    "Exercise 05a.1",
    idea="Rényi DP composes by adding: find one step's RDP at every order, add it up over the "
    "steps, and convert to (epsilon, delta) only once, at the end.",
    step="one Gaussian step's RDP at order alpha is linear in alpha (the notebook derives it); "
    "multiply by the number of steps, then convert once, taking the best order.",
    solution="rdp = steps * orders / (2 * sigma**2); "
    "rdp_to_epsilon(rdp=rdp, orders=orders, delta=delta)[0].",
)
hints(
    "Exercise 05b.2",
    idea="epsilon falls as sigma grows: keep an interval [low, high] with high within the "
    "budget and low over it, and halve it until it is narrow.",
    step="at the middle of the interval, ask spent(mid): within the budget, it becomes the new "
    "high; over, the new low. Return high, the end that is always within the budget; sigma "
    "spans decades, so halve in log space (mid = sqrt(low * high)).",
    solution="low, high = 0.1, 100.0; while high / low > 1 + 1e-4: mid = math.sqrt(low * high); "
    "low, high = (low, mid) if spent(mid) <= target else (mid, high). return high",
)


def check_gaussian_rdp_epsilon(answer: Any) -> bool:
    """Exercise 05a.1: epsilon of 1000 Gaussian steps (sigma = 10, q = 1) by RDP, delta = 1e-5.

    Compared, to a relative 1e-3, with the library's RDP computed over the
    integer orders 2 ... 256; the library's RDP accountant (which also tries
    fractional orders) is accepted with a note. One step only, the classic
    conversion, basic composition of the per-step epsilons and an
    (epsilon, order) pair are each named.
    """
    name = "Exercise 05a.1"
    if is_unanswered(answer):
        return report_unanswered(name)
    if isinstance(answer, tuple) and len(answer) == 2:
        return feedback(
            name,
            False,
            success="",
            hint="that is the pair (epsilon, best order) that rdp_to_epsilon returns; "
            "the answer is its first entry, [0].",
        )
    value = as_number("answer", answer)
    sigma, steps = RDP_EXERCISE["noise_multiplier"], RDP_EXERCISE["steps"]
    delta = RDP_EXERCISE["delta"]
    orders = RDP_EXERCISE_ORDERS
    one_step = np.asarray(
        rdp_subsampled_gaussian(noise_multiplier=sigma, sample_rate=1.0, orders=orders)
    )
    expected = rdp_to_epsilon(rdp=steps * one_step, orders=orders, delta=delta)[0]
    single = rdp_to_epsilon(rdp=one_step, orders=orders, delta=delta)[0]
    wrong = {
        single: "that is ONE step. Rényi DP composes by adding: T steps have T times the RDP "
        "at every order, and only then do you convert.",
        float(np.min(steps * one_step + math.log(1 / delta) / (orders - 1))): "that is "
        "Mironov's classic conversion; the course's conversion (Balle et al. 2020) is tighter.",
        steps * single: "that converts one step and multiplies epsilon by T: basic composition.",
    }
    for candidate, hint in wrong.items():
        if math.isclose(value, candidate, rel_tol=1e-3):
            return feedback(name, False, success="", hint=hint)
    library = epsilon(
        noise_multiplier=sigma, sample_rate=1.0, steps=steps, delta=delta, accountant="rdp"
    )
    by_hand = math.isclose(value, expected, rel_tol=1e-3)
    if math.isclose(value, library, rel_tol=1e-3) and not by_hand:
        return feedback(
            name,
            True,
            success=f"ε ≈ {library:.2f} from the library's RDP accountant, which also tries "
            f"fractional orders; the integer orders 2 ... 256 give {expected:.2f}. Try it by "
            "hand too: the sum of RDP over steps is the whole idea.",
        )
    return feedback(
        name,
        math.isclose(value, expected, rel_tol=1e-3),
        success=f"ε ≈ {expected:.2f}, against {steps * single:.0f} for T times one step's ε. "
        "Adding RDP and converting once is what makes long training affordable: ε grows like "
        "sqrt(T) while each step's privacy loss is small, and closer to linearly once the "
        "composed loss, T / (2 sigma^2), becomes large (here it is already 5).",
    )


def _finite_positive(spent: Callable[[float], float]) -> Callable[[float], float]:
    """``spent`` that answers inf (no privacy) for sigma <= 0 instead of failing."""

    def guarded(sigma: float) -> float:
        return math.inf if not sigma > 0 else float(spent(sigma))

    return guarded


def _calibration_cases() -> list[tuple[str, Callable[[float], float], float]]:
    """(what, a decreasing epsilon-of-sigma, target): hidden from the learner."""

    def rdp(sigma: float) -> float:
        # a bisection probes extreme sigmas, where the best Renyi order sits at the edge of
        # the grid: the accountant's warning is advice on tightness, not an error
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return epsilon(
                noise_multiplier=sigma, sample_rate=0.02, steps=400, delta=1e-5, accountant="rdp"
            )

    return [
        ("eps = 3 / sigma", lambda s: 3.0 / s, 1.5),
        ("eps = 10 exp(-sigma)", lambda s: 10.0 * math.exp(-s), 0.5),
        ("eps = (5 - sigma)^2 below 5, 0 above", lambda s: max(0.0, 5.0 - s) ** 2, 1.0),
        ("RDP, q = 0.02, T = 400", rdp, 1.0),
    ]


@graded("Exercise 05b.2")
def check_calibrate(calibrate: Any) -> bool:
    """Exercise 05b.2: ``calibrate(spent, target)``, the smallest sigma that stays within a budget.

    ``spent(sigma)`` is a decreasing function (the epsilon a run spends at
    noise multiplier sigma). The learner's function is called on hidden
    functions, one of them the library's RDP accountant at a hidden
    setting, whose answers lie between 0.1 and 100. Right when the answer
    spends at most the target and a sigma 0.2 % smaller would spend more:
    never over the budget, and no more noise than it needs. Over the
    budget, far more noise than needed and an answer that does not depend
    on the function are each named.
    """
    name = "Exercise 05b.2"
    if is_unanswered(calibrate):
        return report_unanswered(name)
    if not callable(calibrate):
        raise TypeError(f"calibrate must be a function calibrate(spent, target), got {calibrate!r}")
    answers = []
    for what, spent, target in _calibration_cases():
        guarded = _finite_positive(spent)
        sigma = as_number("calibrate(spent, target)", calibrate(guarded, target))
        answers.append(sigma)
        at = f"for {what} and target {target:g}:"
        if len(answers) > 1 and len(set(answers)) == 1:
            hint = "your function returns the same sigma for different budgets: it must search "
            hint += "with the spent function it is given."
        elif not sigma > 0 or not math.isfinite(sigma):
            hint = f"{at} sigma = {sigma!r}; a noise multiplier is a finite number > 0."
        elif guarded(sigma) > target:
            hint = f"{at} sigma = {sigma:.6g} spends {guarded(sigma):.6g} > {target:g}: over the "
            hint += "budget. Which end of your search interval always stays within it?"
        elif guarded(sigma / 1.002) <= target:
            hint = f"{at} sigma = {sigma:.6g} stays within the budget, but a sigma 0.2 % smaller "
            hint += "would too: more noise than needed. Search until the interval is narrower."
        else:
            continue
        return feedback(name, False, success="", hint=hint)
    return feedback(
        name,
        True,
        success="within every budget and never more noise than a tolerance of 0.2 %: the same "
        "search noise_multiplier_for_epsilon runs, now yours.",
    )


# ---------------------------------------------------------------- Exercise 05a.2

hints(
    "Exercise 05a.2",
    idea="Rényi DP adds across different mechanisms too: at every order, add up what each "
    "phase spends (its number of steps times one step's RDP), and convert the total once.",
    step="one plain Gaussian step at noise multiplier sigma has RDP linear in the order (the "
    "notebook derives it); sum steps * that over the phases, order by order, then take the best "
    "order of the course's conversion over the integer orders 2 ... 256.",
    solution="total = sum(steps * orders / (2 * sigma**2) for sigma, steps in phases); "
    "return rdp_to_epsilon(rdp=total, orders=orders, delta=delta)[0]",
)

#: Hidden runs whose noise changes: (phases of (noise multiplier, steps), delta).
_PHASE_CASES: list[tuple[list[tuple[float, int]], float]] = [
    ([(10.0, 100), (30.0, 2000)], 1e-5),
    ([(3.0, 20)], 1e-6),
    ([(40.0, 5000), (8.0, 100), (25.0, 1000)], 1e-5),
]


def _gaussian_rdp(phases: list[tuple[float, int]], orders: np.ndarray) -> np.ndarray:
    """Total RDP of plain Gaussian phases at ``orders`` (q = 1), from the library."""
    total = np.zeros(len(orders))
    for sigma, steps in phases:
        one = rdp_subsampled_gaussian(sample_rate=1.0, noise_multiplier=sigma, orders=orders)
        total += steps * np.asarray(one)
    return total


def _quiet_rdp_epsilon(rdp: np.ndarray, orders: np.ndarray, delta: float) -> float:
    """``rdp_to_epsilon(...)[0]`` without its grid-edge advice (the checks probe edges)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return rdp_to_epsilon(rdp=rdp, orders=orders, delta=delta)[0]


def _phase_slips(phases: list[tuple[float, int]], delta: float) -> dict[str, float]:
    """The usual wrong answers for one hidden run, by the words that name them."""
    orders = RDP_EXERCISE_ORDERS
    each = [_quiet_rdp_epsilon(_gaussian_rdp([p], orders), orders, delta) for p in phases]
    total = _gaussian_rdp(phases, orders)
    slips = {
        "that converts each phase to (epsilon, delta) and adds the epsilons: basic composition "
        "of the phases. Add the RDP, order by order, and convert once.": float(sum(each)),
        "that counts one step per phase: each phase spends its number of steps times one "
        "step's RDP.": _quiet_rdp_epsilon(
            _gaussian_rdp([(s, 1) for s, _ in phases], orders), orders, delta
        ),
        "that is Mironov's classic conversion; the course's conversion (Balle et al. 2020) is "
        "tighter.": float(np.min(total + math.log(1 / delta) / (orders - 1))),
    }
    if len(phases) > 1:
        for eps_one in each:
            slips[
                "that is the epsilon of one phase only: every phase touches the same data, so "
                "all of them count."
            ] = eps_one
    return slips


@graded("Exercise 05a.2")
def check_rdp_of_phases(run_epsilon: Any) -> bool:
    """Exercise 05a.2: ``run_epsilon(phases, delta)``, the RDP epsilon of a run whose noise changes.

    ``phases`` is a list of ``(noise_multiplier, steps)``: that many plain
    Gaussian steps (no subsampling) at that noise multiplier, one phase after
    the other on the same data. The learner's function is called on hidden
    runs and compared, to a relative 1e-3, with the library's RDP over the
    integer orders 2 ... 256 (the library's default orders are accepted too).
    Adding the phases' epsilons, ignoring the step counts, keeping one phase,
    the classic conversion and an answer that ignores its input are each named.
    """
    name = "Exercise 05a.2"
    if is_unanswered(run_epsilon):
        return report_unanswered(name)
    if not callable(run_epsilon):
        raise TypeError(
            f"run_epsilon must be a function run_epsilon(phases, delta), got {run_epsilon!r}"
        )
    from fl_dp_lab.accounting import DEFAULT_ORDERS

    answers = []
    for phases, delta in _PHASE_CASES:
        value = as_number("run_epsilon(phases, delta)", run_epsilon(list(phases), delta))
        answers.append(value)
        at = f"for phases {phases} and delta {delta:g}:"
        if len(answers) > 1 and len(set(answers)) == 1:
            return feedback(
                name,
                False,
                success="",
                hint="your function returns the same epsilon for different runs: it must "
                "use the phases it is given.",
            )
        orders = RDP_EXERCISE_ORDERS
        expected = _quiet_rdp_epsilon(_gaussian_rdp(phases, orders), orders, delta)
        library_orders = np.asarray(DEFAULT_ORDERS, dtype=np.float64)
        library = _quiet_rdp_epsilon(_gaussian_rdp(phases, library_orders), library_orders, delta)
        if any(math.isclose(value, e, rel_tol=1e-3) for e in (expected, library)):
            continue
        for words, slip in _phase_slips(phases, delta).items():
            if math.isclose(value, slip, rel_tol=1e-3):
                return feedback(name, False, success="", hint=f"{at} {words}")
        return feedback(name, False, success="", hint=f"{at} your function returns {value:.6g}.")
    return feedback(
        name,
        True,
        success="every hidden run, whatever its phases, is accounted by one sum of Rényi "
        "divergences and one conversion: how an accountant follows a run whose noise, clip or "
        "batch changes along the way.",
    )


# ---------------------------------------------------------------- Exercise 05b.1

hints(
    "Exercise 05b.1",
    idea="delta(eps) falls as eps grows: first write delta(eps) for the distribution you are "
    "given, then search for the smallest eps >= 0 at which it is within delta.",
    step="delta(eps) is the mass at +infinity plus, for every finite loss l above eps, its "
    "mass times (1 - exp(eps - l)); bisect eps between 0 and the largest finite loss, and "
    "return the end whose delta(eps) is within the budget.",
    solution="def d(e): above = losses > e; return infinity_mass + np.sum(pmf[above] * "
    "-np.expm1(e - losses[above])); lo, hi = 0.0, float(losses.max()); repeat 60 times: "
    "mid = (lo + hi) / 2; lo, hi = (lo, mid) if d(mid) <= delta else (mid, hi). return hi",
)


def _hockey_stick(losses: np.ndarray, pmf: np.ndarray, infinity_mass: float, eps: float) -> float:
    """delta(eps) of a grid privacy-loss distribution (no overflow for losses far below eps)."""
    above = losses > eps
    return float(infinity_mass + np.sum(pmf[above] * -np.expm1(eps - losses[above])))


def _smallest_epsilon(delta_of: Callable[[float], float], top: float, delta: float) -> float:
    """Smallest eps in [0, top] with delta_of(eps) <= delta, by bisection (delta_of decreasing)."""
    if delta_of(0.0) <= delta:
        return 0.0
    low, high = 0.0, top
    for _ in range(80):
        mid = (low + high) / 2
        low, high = (low, mid) if delta_of(mid) <= delta else (mid, high)
    return high


def _pld_references(
    losses: np.ndarray, pmf: np.ndarray, infinity_mass: float, delta: float
) -> tuple[float, float, float]:
    """Smallest epsilon by delta(eps), by the tail P(L > eps), and by delta(eps) without +inf."""
    top = float(losses.max())
    right = _smallest_epsilon(lambda e: _hockey_stick(losses, pmf, infinity_mass, e), top, delta)
    tail = _smallest_epsilon(lambda e: infinity_mass + float(pmf[losses > e].sum()), top, delta)
    no_infinity = _smallest_epsilon(lambda e: _hockey_stick(losses, pmf, 0.0, e), top, delta)
    return right, tail, no_infinity


def _pld_cases() -> list[tuple[str, np.ndarray, np.ndarray, float, float]]:
    """(what, losses, pmf, mass at +infinity, delta): hidden from the learner."""
    cases = []
    settings: tuple[tuple[float, float, int, Direction, float], ...] = (
        (1.0, 0.05, 50, "remove", 1e-5),
        (4.0, 0.01, 1000, "add", 1e-6),
    )
    for sigma, q, steps, direction, delta in settings:
        losses, pmf, infinity_mass = privacy_loss_distribution(
            noise_multiplier=sigma, sample_rate=q, steps=steps, direction=direction
        )
        what = f"sigma = {sigma:g}, q = {q:g}, {steps} steps ({direction})"
        cases.append((what, losses, pmf, infinity_mass, delta))
    # a small made-up distribution with mass at +infinity (a step that can reveal everything)
    losses = np.linspace(-1.0, 3.0, 41)
    weights = np.exp(-((losses - 0.5) ** 2))
    infinity_mass = 2e-6
    pmf = (1 - infinity_mass) * weights / weights.sum()
    cases.append(
        ("a made-up distribution with P(L = inf) = 2e-6", losses, pmf, infinity_mass, 1e-5)
    )
    return cases


@graded("Exercise 05b.1")
def check_pld_epsilon(pld_epsilon: Any) -> bool:
    """Exercise 05b.1: ``pld_epsilon(losses, pmf, infinity_mass, delta)``, epsilon read off a PLD.

    The learner's function is called on hidden privacy-loss distributions (two
    composed by the library, one made up with mass at +infinity). Right when
    the epsilon it returns satisfies the distribution's delta(epsilon) <= delta
    and is at most 0.1 % (or 1e-5) above the smallest epsilon that does.
    Reading the tail probability P(L > eps) instead of delta(eps), dropping the
    mass at infinity, an epsilon over the budget or far above it and an answer
    that ignores its input are each named.
    """
    name = "Exercise 05b.1"
    if is_unanswered(pld_epsilon):
        return report_unanswered(name)
    if not callable(pld_epsilon):
        raise TypeError(
            "pld_epsilon must be a function pld_epsilon(losses, pmf, infinity_mass, delta), "
            f"got {pld_epsilon!r}"
        )
    answers = []
    for what, losses, pmf, infinity_mass, delta in _pld_cases():
        value = as_number(
            "pld_epsilon(losses, pmf, infinity_mass, delta)",
            pld_epsilon(losses.copy(), pmf.copy(), infinity_mass, delta),
        )
        answers.append(value)
        at = f"for {what} and delta {delta:g}:"
        right, tail, no_infinity = _pld_references(losses, pmf, infinity_mass, delta)
        if len(answers) > 1 and len(set(answers)) == 1:
            hint = "your function returns the same epsilon for different distributions: it "
            hint += "must read the one it is given."
        elif not value >= 0 or not math.isfinite(value):
            hint = f"{at} epsilon = {value!r}; an epsilon is a finite number >= 0."
        elif math.isclose(value, tail, rel_tol=1e-3) and not math.isclose(
            tail, right, rel_tol=1e-3
        ):
            hint = f"{at} that epsilon makes the tail P(L > eps) at most delta, which is "
            hint += "sufficient but loose: delta(eps) weighs each loss above eps by how far "
            hint += "above eps it lies."
        elif _hockey_stick(losses, pmf, infinity_mass, value) > delta * (1 + 1e-9):
            hint = f"{at} epsilon = {value:.6g} gives delta(eps) = "
            hint += f"{_hockey_stick(losses, pmf, infinity_mass, value):.3g} > {delta:g}: over "
            hint += "the budget."
            if infinity_mass > 0 and math.isclose(value, no_infinity, rel_tol=1e-3):
                hint += " The mass at +infinity counts in full at every eps."
            else:
                hint += " Which end of your search interval always stays within it?"
        elif value > max(right * 1.001, right + 1e-5):
            hint = f"{at} epsilon = {value:.6g} stays within delta, but a smaller epsilon "
            hint += "would too: search until the interval is narrower."
        else:
            continue
        return feedback(name, False, success="", hint=hint)
    return feedback(
        name,
        True,
        success="every hidden distribution read right: this is the last step of the PLD "
        "accountant, after the FFT has composed the steps.",
    )
