"""Exercises of notebook 05 (privacy accounting)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from fl_dp_lab.accounting import epsilon, noise_multiplier_for_epsilon, rdp_to_epsilon
from fl_dp_lab.exercises._core import as_number, feedback, hints, is_unanswered, report_unanswered

__all__ = ["check_calibrated_sigma", "check_gaussian_rdp_epsilon"]

#: Exercise 05.1's setting: T Gaussian steps (no subsampling), integer orders 2 ... 256.
RDP_EXERCISE = {"noise_multiplier": 10.0, "steps": 1000, "delta": 1e-5}
RDP_EXERCISE_ORDERS = np.arange(2, 257)
#: Exercise 05.2's setting: the budget and the training run to calibrate sigma for.
CALIBRATION_EXERCISE = {"target_epsilon": 2.0, "sample_rate": 0.01, "steps": 3000, "delta": 1e-5}

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
    idea="epsilon falls as sigma grows: search for the smallest sigma whose epsilon is still "
    "within the budget.",
    step="bisect on sigma with accounting.epsilon (the PLD accountant) until the spent epsilon "
    "is just under 2, or let the library search for you.",
    solution="noise_multiplier_for_epsilon(target_epsilon=2.0, sample_rate=0.01, steps=3000, "
    "delta=1e-5)",
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
    sigma, steps, delta = (RDP_EXERCISE[k] for k in ("noise_multiplier", "steps", "delta"))
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


def check_calibrated_sigma(answer: Any) -> bool:
    """Exercise 05.2: the noise multiplier that spends at most epsilon = 2 on the given run.

    q = 0.01, T = 3000, delta = 1e-5, by the PLD accountant. Right when the PLD
    epsilon of the answer is at most the target and at least 99 % of it: a
    calibrated sigma never spends more than the budget, not even 0.1 % more.
    Too little noise (over budget, printed with as many digits as it takes to
    see that it is over), the RDP calibration (safe but wasteful) and too much
    noise are each named. Never raises: a string, NaN, infinity, a negative
    number or a list gets a hint, ``...`` or ``None`` the "not answered yet"
    line.
    """
    name = "Exercise 05.2"
    if is_unanswered(answer):
        return report_unanswered(name)
    try:
        sigma = as_number("answer", answer)
    except TypeError:
        return feedback(
            name,
            False,
            success="",
            hint=f"the answer must be one number, the noise multiplier σ; got {answer!r}.",
        )
    if math.isnan(sigma) or sigma < 0:
        return feedback(
            name, False, success="", hint=f"a noise multiplier is a number >= 0; got {sigma!r}."
        )
    if math.isinf(sigma):
        return feedback(
            name,
            False,
            success="",
            hint="infinite noise spends no budget, and the model learns nothing: find the "
            "smallest σ that stays within ε = 2.",
        )
    setting = {k: v for k, v in CALIBRATION_EXERCISE.items() if k != "target_epsilon"}
    target = CALIBRATION_EXERCISE["target_epsilon"]
    spent = epsilon(noise_multiplier=sigma, **setting)
    rdp_sigma = noise_multiplier_for_epsilon(target_epsilon=target, accountant="rdp", **setting)
    if spent > target:
        return feedback(
            name,
            False,
            success="",
            hint=f"too little noise: σ = {sigma:.6g} spends ε = "
            f"{_digits(spent, target)} > {target:g}. A calibrated σ never spends more than the "
            "budget; search for a larger σ.",
        )
    if math.isclose(sigma, rdp_sigma, rel_tol=2e-3):
        return feedback(
            name,
            False,
            success="",
            hint="that is the RDP accountant's σ: safe, but the PLD accountant proves the same "
            "ε with less noise.",
        )
    return feedback(
        name,
        spent >= 0.99 * target,
        success=f"σ = {sigma:.4f} spends ε = {_digits(spent, target)} <= {target:g}. Every bit "
        "of noise you do not need is accuracy you keep.",
        hint=f"σ = {sigma:.4g} spends only ε = {spent:.4g}: more noise than the budget needs.",
    )


def _digits(value: float, other: float) -> str:
    """``value`` with the fewest significant digits (at least 4) that differ from ``other``."""
    for digits in range(4, 18):
        text = f"{value:.{digits}g}"
        if value == other or float(text) != other:
            return text
    return repr(value)
