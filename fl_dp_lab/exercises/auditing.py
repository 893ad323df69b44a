"""Exercises of notebook 10 (auditing privacy)."""

from __future__ import annotations

import math
from typing import Any

from fl_dp_lab.exercises._core import as_number, feedback, hints, is_unanswered, report_unanswered

__all__ = ["check_audit_ceiling", "check_fpr_upper_bound", "check_trials_needed"]

hints(
    "Exercise 10.1",
    idea="3 errors in 500 is an estimate; the audit needs a rate the true FPR stays below with "
    "high confidence, the upper end of an exact binomial interval.",
    step="the upper end of the two-sided 95 % Clopper-Pearson interval is a quantile of a Beta "
    "distribution; which tail, and which parameters?",
    solution="scipy.stats.beta.ppf(0.975, 3 + 1, 500 - 3), or "
    "fl_dp_lab.auditing.clopper_pearson(3, 500)[1].",
)
hints(
    "Exercise 10.2",
    idea="the strongest possible attack makes no error at all; even then the audit only knows "
    "the error rates up to a confidence interval.",
    step="with no errors in n trials, the upper end of the interval is u = 1 - 0.025^(1/n); "
    "put u in for both error rates of the audit's bound.",
    solution="epsilon_lower_bound(true_positives=500, false_positives=0, true_negatives=500, "
    "false_negatives=0, delta=1e-5)",
)
hints(
    "Exercise 10.3",
    idea="the ceiling of a perfect attack grows with the number of trials; find where it first "
    "passes the claim.",
    step="loop n = 1, 2, ... and compute the ceiling of an audit with no errors in n trials of "
    "each kind.",
    solution="n = 1; while epsilon_lower_bound(true_positives=n, false_positives=0, "
    "true_negatives=n, false_negatives=0, delta=1e-5) <= 4.38: n += 1",
)


def check_fpr_upper_bound(answer: Any) -> bool:
    """Exercise 10.1: the 95 % Clopper-Pearson upper bound on the FPR for 3 errors in 500.

    Compared, to a relative 5e-3, with the library's ``clopper_pearson``. The
    plug-in rate, a one-sided bound, the lower end's family and the lower
    end itself are each named.
    """
    from scipy import stats  # here, not at the top: importing it costs every notebook ~1 s

    name = "Exercise 10.1"
    if is_unanswered(answer):
        return report_unanswered(name)
    from fl_dp_lab.auditing import clopper_pearson

    value = as_number("answer", answer)
    k, n = 3, 500
    expected = clopper_pearson(k, n, confidence=0.95)[1]
    wrong = {
        k / n: "that is the plug-in rate; the audit needs an upper confidence bound, "
        "a rate the true FPR stays below with 97.5 % probability.",
        float(stats.beta.ppf(0.95, k + 1, n - k)): "that is a one-sided 95 % bound; the two-sided "
        "95 % interval leaves 2.5 % in each tail.",
        float(stats.beta.ppf(0.975, k, n - k + 1)): "that Beta distribution belongs to the "
        "lower end; the upper end's has other parameters.",
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
    )


def check_audit_ceiling(answer: Any) -> bool:
    """Exercise 10.2: the largest epsilon an audit with 500 held-out trials a world can certify.

    Compared, to a relative 2e-3, with the library's ``epsilon_lower_bound``
    for an attack that makes no error, at delta = 1e-5. The plug-in rates
    (an infinite answer), both worlds counted together, a one-sided bound
    and the rule of thumb log(n) are each named.
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
            hint="with the plug-in rates 0 / 500 the bound divides by zero; the audit uses "
            "upper confidence bounds on the rates, which are never 0.",
        )
    wrong = {
        ceiling(1000, 0.025): "only the held-out half is counted: n = 500 per world, not 1,000.",
        ceiling(500, 0.05): "that is a one-sided 95 % bound; the two-sided interval's upper end "
        "leaves 2.5 %.",
        math.log(500): "log(n) is the right order of magnitude, but the question asks for the "
        "bound itself.",
    }
    # 3 significant digits (4.91) pass, with or without delta; the slips are >= 4 % away
    for value_wrong, hint in wrong.items():
        if math.isclose(value, value_wrong, rel_tol=2e-3):
            return feedback(name, False, success="", hint=hint)
    from fl_dp_lab.auditing import epsilon_lower_bound

    expected = epsilon_lower_bound(
        true_positives=500, false_positives=0, true_negatives=500, false_negatives=0, delta=delta
    )
    return feedback(
        name,
        math.isclose(value, expected, rel_tol=2e-3),
        success="that is all that 500 trials a world can ever certify: an accountant claiming "
        "ε = 8 cannot be caught by this audit, bug or no bug.",
    )


def check_trials_needed(answer: Any) -> bool:
    """Exercise 10.3: the fewest counted trials per world that could certify more than 4.38.

    Searched here with the ceiling of a perfect attack at delta = 1e-5; the
    smallest n against the unrounded claim (the notebook's ``claims[0]``) is
    accepted too. Both worlds counted together, one short, a one-sided bound
    and the rule of thumb e^eps are each named.
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
        )
    wrong = {
        2 * expected: "that counts both worlds (or the threshold half too); the question asks "
        "for the counted trials in each world.",
        min(expected, unrounded) - 1: "almost: that n certifies just under 4.38.",
        smallest(0.05): "that uses a one-sided 95 % bound; the audit's upper ends leave 2.5 %.",
        round(math.exp(target)): "e^eps is only a rule of thumb for the ceiling.",
    }
    for value_wrong, hint in wrong.items():
        if value == value_wrong:
            return feedback(name, False, success="", hint=hint)
    return feedback(
        name,
        value == expected,
        success=f"n = {expected}: with fewer counted trials a world, even a bug that leaks "
        "everything passes an audit of one step at sigma = 1.",
    )
