"""Exercises of notebook 10 (auditing privacy)."""

from __future__ import annotations

import math
from typing import Any

from fl_dp_lab.exercises._core import as_number, feedback, is_unanswered, report_unanswered

__all__ = ["check_audit_ceiling", "check_fpr_upper_bound", "check_trials_needed"]


def check_fpr_upper_bound(answer: Any) -> bool:
    """Exercise 10.1: the 95 % Clopper-Pearson upper bound on the FPR for 3 errors in 500.

    The audit guessed "canary in" on 3 of 500 trials without the canary.
    The upper end of the two-sided 95 % Clopper-Pearson interval is the
    0.975 quantile of Beta(k + 1, n - k) = Beta(4, 497), about 0.0174:
    almost three times the plug-in rate 3 / 500 = 0.006.
    """
    from scipy import stats  # here, not at the top: importing it costs every notebook ~1 s

    name = "Exercise 10.1"
    if is_unanswered(answer):
        return report_unanswered(name)
    value = as_number("answer", answer)
    k, n = 3, 500
    expected = float(stats.beta.ppf(0.975, k + 1, n - k))
    wrong = {
        k / n: "that is the plug-in rate k / n; the audit needs an upper confidence bound, "
        "a rate the true FPR stays below with 97.5 % probability.",
        float(stats.beta.ppf(0.95, k + 1, n - k)): "that is a one-sided 95 % bound; the two-sided "
        "95 % interval leaves 2.5 % in each tail, so use the 0.975 quantile.",
        float(stats.beta.ppf(0.975, k, n - k + 1)): "Beta(k, n - k + 1) gives the lower end's "
        "family; the upper end is the quantile of Beta(k + 1, n - k).",
        float(stats.beta.ppf(0.025, k, n - k + 1)): "that is the lower end of the interval; the "
        "audit plugs in the upper end (the worst case for the attack).",
    }
    # 3 significant digits (0.0174) pass; the slips below are all more than 10 % away
    for value_wrong, hint in wrong.items():
        if math.isclose(value, value_wrong, rel_tol=5e-3):
            return feedback(name, False, success="", hint=hint)
    return feedback(
        name,
        math.isclose(value, expected, rel_tol=5e-3),
        success=f"FPR <= {expected:.4f} with 97.5 % confidence, almost three times the "
        "plug-in 0.006: with few errors, the interval, not the estimate, sets the bound.",
        hint="use scipy.stats.beta.ppf(q, a, b) with q = 1 - 0.05 / 2, a = k + 1, b = n - k.",
    )


def check_audit_ceiling(answer: Any) -> bool:
    """Exercise 10.2: the largest epsilon an audit with 500 held-out trials a world can certify.

    With no error at all, FP = FN = 0 in n = 500 trials each, the
    Clopper-Pearson upper bounds are u = 1 - 0.025^(1/500) ~= 0.00735 and
    the bound is log((1 - delta - u) / u) ~= 4.91 at delta = 1e-5. No
    audit of that size, however strong its attack, certifies more.
    """
    name = "Exercise 10.2"
    if is_unanswered(answer):
        return report_unanswered(name)
    value = as_number("answer", answer)
    delta = 1e-5

    def ceiling(trials: int, tail: float) -> float:
        u = 1.0 - tail ** (1.0 / trials)
        return math.log((1.0 - delta - u) / u)

    if math.isinf(value):
        return feedback(
            name,
            False,
            success="",
            hint="with the plug-in rates 0 / 500 the formula divides by zero; the audit uses the "
            "Clopper-Pearson upper bounds, which are never 0.",
        )
    wrong = {
        ceiling(1000, 0.025): "only the held-out half is counted: n = 500 per world, not 1,000.",
        ceiling(500, 0.05): "that is a one-sided 95 % bound; the two-sided interval's upper end "
        "leaves 2.5 %: u = 1 - 0.025 ** (1 / 500).",
        math.log(500): "log(n) is the right order of magnitude, but compute the bound itself: "
        "u = 1 - 0.025 ** (1 / n), then log((1 - delta - u) / u).",
    }
    # 3 significant digits (4.91) pass, with or without delta; the slips are >= 4 % away
    for value_wrong, hint in wrong.items():
        if math.isclose(value, value_wrong, rel_tol=2e-3):
            return feedback(name, False, success="", hint=hint)
    expected = ceiling(500, 0.025)
    return feedback(
        name,
        math.isclose(value, expected, rel_tol=2e-3),
        success=f"ε <= {expected:.2f} is all that 500 trials a world can ever certify: an "
        "accountant claiming ε = 8 cannot be caught by this audit, bug or no bug.",
        hint="no errors means FP = FN = 0; call epsilon_lower_bound with those counts "
        "(500 trials a world), or compute u = 1 - 0.025 ** (1 / 500) and log((1 - delta - u) / u).",
    )


def check_trials_needed(answer: Any) -> bool:
    """Exercise 10.3: the fewest counted trials per world that could certify more than 4.38.

    A perfect attack (no errors in n counted trials per world) certifies
    log((1 - delta - u) / u) with u = 1 - 0.025^(1/n), at delta = 1e-5.
    That first exceeds 4.38 (the accountant's claim at sigma = 1, rounded) at
    n = 297; n = 296 gives 4.3788, above the unrounded claim 4.3772, so 296
    (searched against the notebook's ``claims[0]``) is right too. Below that no
    audit of one step at sigma = 1 can catch any bug, however blatant.
    """
    from fl_dp_lab.accounting import epsilon

    name = "Exercise 10.3"
    if is_unanswered(answer):
        return report_unanswered(name)
    value = as_number("answer", answer)
    target, delta = 4.38, 1e-5
    claim = epsilon(noise_multiplier=1.0, sample_rate=1.0, steps=1, delta=delta)  # 4.3772

    def smallest(tail: float, target: float = target) -> int:
        n = 1
        while math.log((1.0 - delta) / (1.0 - tail ** (1.0 / n)) - 1.0) <= target:
            n += 1
        return n

    expected = smallest(0.025)
    unrounded = smallest(0.025, claim)  # one fewer: the claim is a little under 4.38
    if value == unrounded and unrounded != expected:
        return feedback(
            name,
            True,
            success=f"n = {unrounded} beats the unrounded claim {claim:.4f}; against the rounded "
            f"4.38 it takes {expected}. Either way: with fewer counted trials a world, even a bug "
            "that leaks everything passes an audit of one step at sigma = 1.",
            hint="",
        )
    wrong = {
        2 * expected: "that counts both worlds (or the threshold half too); the question asks "
        "for the counted trials in each world.",
        min(expected, unrounded) - 1: f"almost: n = {min(expected, unrounded) - 1} certifies "
        "just under 4.38. Find the smallest n whose ceiling is above it.",
        smallest(0.05): "that uses a one-sided 95 % bound; the audit's upper ends leave 2.5 %: "
        "u = 1 - 0.025 ** (1 / n).",
        round(math.exp(target)): "e^eps is only a rule of thumb for the ceiling; compute the "
        "Clopper-Pearson ceiling for each n.",
    }
    for value_wrong, hint in wrong.items():
        if value == value_wrong:
            return feedback(name, False, success="", hint=hint)
    return feedback(
        name,
        value == expected,
        success=f"n = {expected}: with fewer counted trials a world, even a bug that leaks "
        "everything passes an audit of one step at sigma = 1.",
        hint="loop n = 1, 2, ... and stop at the first n whose ceiling, epsilon_lower_bound with "
        "no errors in n trials of each kind, is above 4.38.",
    )
