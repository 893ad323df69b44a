"""Exercises of notebook 05 (privacy accounting)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any, TypedDict

import numpy as np

from fl_dp_lab.accounting import epsilon, rdp_to_epsilon
from fl_dp_lab.exercises._core import (
    as_number,
    feedback,
    graded,
    hints,
    is_unanswered,
    report_unanswered,
)

__all__ = ["check_calibrate", "check_gaussian_rdp_epsilon"]

#: Exercise 05.1's setting: T Gaussian steps (no subsampling), integer orders 2 ... 256.


class _RdpSetting(TypedDict):
    """The Gaussian steps of Exercise 05.1 (q = 1)."""

    noise_multiplier: float
    steps: int
    delta: float


RDP_EXERCISE: _RdpSetting = {"noise_multiplier": 10.0, "steps": 1000, "delta": 1e-5}
RDP_EXERCISE_ORDERS = np.arange(2, 257)

hints(
    "Exercise 05.1",
    idea="Rényi DP composes by adding: find one step's RDP at every order, add it up over the "
    "steps, and convert to (epsilon, delta) only once, at the end.",
    step="one Gaussian step's RDP at order alpha is linear in alpha (the notebook derives it); "
    "multiply by the number of steps, then convert once, taking the best order.",
    solution="rdp = steps * orders / (2 * sigma**2); "
    "rdp_to_epsilon(rdp=rdp, orders=orders, delta=delta)[0].",
)
hints(
    "Exercise 05.2",
    idea="epsilon falls as sigma grows: keep an interval [low, high] with high within the "
    "budget and low over it, and halve it until it is narrow.",
    step="at the middle of the interval, ask spent(mid): within the budget, it becomes the new "
    "high; over, the new low. Return high, the end that is always within the budget; sigma "
    "spans decades, so halve in log space (mid = sqrt(low * high)).",
    solution="low, high = 0.1, 100.0; while high / low > 1 + 1e-4: mid = math.sqrt(low * high); "
    "low, high = (low, mid) if spent(mid) <= target else (mid, high). return high",
)


def check_gaussian_rdp_epsilon(answer: Any) -> bool:
    """Exercise 05.1: epsilon of 1000 Gaussian steps (sigma = 10, q = 1) by RDP, delta = 1e-5.

    Compared, to a relative 1e-3, with the library's RDP computed over the
    integer orders 2 ... 256; the library's RDP accountant (which also tries
    fractional orders) is accepted with a note. One step only, the classic
    conversion, basic composition of the per-step epsilons and an
    (epsilon, order) pair are each named.
    """
    from fl_dp_lab.accounting import rdp_subsampled_gaussian

    name = "Exercise 05.1"
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


@graded("Exercise 05.2")
def check_calibrate(calibrate: Any) -> bool:
    """Exercise 05.2: ``calibrate(spent, target)``, the smallest sigma that stays within a budget.

    ``spent(sigma)`` is a decreasing function (the epsilon a run spends at
    noise multiplier sigma). The learner's function is called on hidden
    functions, one of them the library's RDP accountant at a hidden
    setting, whose answers lie between 0.1 and 100. Right when the answer
    spends at most the target and a sigma 0.2 % smaller would spend more:
    never over the budget, and no more noise than it needs. Over the
    budget, far more noise than needed and an answer that does not depend
    on the function are each named.
    """
    name = "Exercise 05.2"
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
