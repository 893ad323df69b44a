"""Exercises of notebook 10 (auditing privacy)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from fl_dp_lab.exercises._core import (
    as_number,
    feedback,
    graded,
    hints,
    is_unanswered,
    report_unanswered,
)

__all__ = ["check_audit_verdict", "check_clopper_pearson_upper", "check_trials_needed"]

hints(
    "Exercise 10.3",
    idea="the ceiling of a perfect attack grows with the number of trials; find where it first "
    "passes the claim.",
    step="loop n = 1, 2, ... and compute the ceiling of an audit with no errors in n trials of "
    "each kind.",
    solution="n = 1; while epsilon_lower_bound(true_positives=n, false_positives=0, "
    "true_negatives=n, false_negatives=0, delta=1e-5) <= 4.38: n += 1",
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


hints(
    "Exercise 10.1",
    idea="3 errors in 500 is an estimate; the audit needs a rate the true rate stays below with "
    "high confidence, the upper end of an exact binomial interval, for any k and n.",
    step="the upper end of the two-sided Clopper-Pearson interval is a quantile of a Beta "
    "distribution: which tail (alpha / 2 is left in it), which parameters, and what when k = n?",
    solution="def cp_upper(k, n, confidence=0.95): return 1.0 if k == n else "
    "stats.beta.ppf(1 - (1 - confidence) / 2, k + 1, n - k)",
)
hints(
    "Exercise 10.2",
    idea="an audit accuses code only when its lower bound on epsilon, which holds with 95 % "
    "confidence, is above what the accountant claims.",
    step="play the membership game with canary_scores (the canary, C and sigma above), "
    "turn the scores into a bound with audit_scores, and compare its epsilon with the claim.",
    solution="def leaks(mechanism, trials): scores = canary_scores(mechanism, grads, canary, "
    "trials=trials, max_grad_norm=C, noise_multiplier=SIGMA, generator=generator); return "
    "audit_scores(*scores, delta=DELTA).epsilon > claimed",
)

#: Exercise 10.1's hidden cases: (successes, trials, confidence), the edges k = 0 and k = n too.
_CP_CASES = ((3, 500, 0.95), (0, 50, 0.95), (40, 40, 0.9), (17, 40, 0.99), (1, 1000, 0.95))


@graded("Exercise 10.1")
def check_clopper_pearson_upper(cp_upper: Any) -> bool:
    """Exercise 10.1: ``cp_upper(k, n, confidence)``, the upper end of a Clopper-Pearson interval.

    Called on hidden cases (a few errors in many trials, no error at all,
    nothing but errors, and other confidence levels) and compared, to a
    relative 1e-7, with the library's ``clopper_pearson``. The plug-in rate,
    a one-sided bound, the lower end's Beta distribution and a missing value
    when k = n are each named.
    """
    from scipy import stats  # here, not at the top: importing it costs every notebook ~1 s

    from fl_dp_lab.auditing import clopper_pearson

    name = "Exercise 10.1"
    if is_unanswered(cp_upper):
        return report_unanswered(name)
    if not callable(cp_upper):
        raise TypeError(f"cp_upper must be a function cp_upper(k, n, confidence), got {cp_upper!r}")
    for k, n, confidence in _CP_CASES:
        value = as_number("cp_upper(k, n, confidence)", cp_upper(k, n, confidence))
        expected = clopper_pearson(k, n, confidence=confidence)[1]
        if math.isclose(value, expected, rel_tol=1e-7):
            continue
        alpha = 1 - confidence
        case = f"at k = {k}, n = {n}, confidence = {confidence:g}"
        if math.isnan(value):
            hint = f"{case} the result is nan: what is the upper end when every trial is an error?"
        elif math.isclose(value, k / n, rel_tol=1e-9, abs_tol=1e-12):
            hint = f"{case} that is the plug-in rate k / n, not an upper confidence bound."
        elif k < n and math.isclose(value, stats.beta.ppf(1 - alpha, k + 1, n - k), rel_tol=1e-7):
            hint = f"{case} that is a one-sided bound; the two-sided interval leaves alpha / 2 in "
            hint += "each tail."
        elif k > 0 and math.isclose(
            value, stats.beta.ppf(1 - alpha / 2, k, n - k + 1), rel_tol=1e-7
        ):
            hint = f"{case} that Beta distribution belongs to the lower end."
        elif k == 0 and math.isclose(value, 0.0, abs_tol=1e-12):
            hint = f"{case} an upper bound of 0 after no error would certify anything: the "
            hint += "upper end is never 0."
        else:
            hint = f"{case} the result is off."
        return feedback(name, False, success="", hint=hint)
    return feedback(
        name,
        True,
        success="the exact interval for every k and n: with few errors the interval, not the "
        "estimate, sets the bound, and even no error at all leaves a bound above 0.",
    )


@graded("Exercise 10.2")
def check_audit_verdict(leaks: Any) -> bool:
    """Exercise 10.2: ``leaks(mechanism, trials)``, an audit that says whether a noisy sum leaks.

    The learner's function is called (with a few hundred trials per world)
    on implementations it has never seen:
    a correct one (a new wrapper around ``noisy_clipped_sum``, so comparing
    functions by identity fails) and planted bugs that are not in the
    notebook, and must answer False for the correct code and True for each
    bug. An audit that accuses correct code and one that misses a bug are
    each named.
    """
    name = "Exercise 10.2"
    if is_unanswered(leaks):
        return report_unanswered(name)
    if not callable(leaks):
        raise TypeError(f"leaks must be a function leaks(mechanism, trials), got {leaks!r}")
    for mechanism, buggy in _audit_suspects():
        verdict = leaks(mechanism, _AUDIT_TRIALS)
        if not isinstance(verdict, bool | np.bool_):
            raise TypeError(f"leaks(mechanism) must be True or False, got {verdict!r}")
        if bool(verdict) == buggy:
            continue
        if not buggy:
            hint = (
                "your audit accused correct code (a wrapper you have not seen around "
                "noisy_clipped_sum). Does it compare the certified lower bound, counted on "
                "held-out trials, with the accountant's claim?"
            )
        else:
            hint = (
                "your audit missed a planted bug that leaks far more than the accountant claims. "
                "Is the score the projection on the canary, at C > 1?"
            )
        return feedback(name, False, success="", hint=hint)
    return feedback(
        name,
        True,
        success="your audit caught planted bugs it had never seen (noise sized for a mean but "
        "added to a sum; noise on one parameter tensor only) and passed correct code: a "
        "black-box test of privacy code, with a 95 % guarantee on every accusation.",
    )


def _audit_suspects() -> list[tuple[Callable[..., dict[str, torch.Tensor]], bool]]:
    """(mechanism, has a bug): a correct wrapper and planted bugs the notebook does not show."""
    from fl_dp_lab.auditing.canaries import noisy_clipped_sum
    from fl_dp_lab.dpsgd import add_noise, clip_per_sample

    def correct(per_sample_grads, *, max_grad_norm, noise_multiplier, generator):
        return noisy_clipped_sum(
            per_sample_grads,
            max_grad_norm=max_grad_norm,
            noise_multiplier=noise_multiplier,
            generator=generator,
        )

    def noise_for_the_mean(per_sample_grads, *, max_grad_norm, noise_multiplier, generator):
        clipped = clip_per_sample(per_sample_grads, max_grad_norm=max_grad_norm)
        rows = len(next(iter(clipped.values())))
        summed = {key: grad.sum(0) for key, grad in clipped.items()}
        return add_noise(
            summed,
            max_grad_norm=max_grad_norm / rows,  # the mean's sensitivity, on the sum
            noise_multiplier=noise_multiplier,
            generator=generator,
        )

    def noise_on_last_tensor_only(per_sample_grads, *, max_grad_norm, noise_multiplier, generator):
        clipped = clip_per_sample(per_sample_grads, max_grad_norm=max_grad_norm)
        summed = {key: grad.sum(0) for key, grad in clipped.items()}
        last = list(summed)[-1]
        noisy = add_noise(
            {last: summed[last]},
            max_grad_norm=max_grad_norm,
            noise_multiplier=noise_multiplier,
            generator=generator,
        )
        return {**summed, **noisy}

    return [
        (correct, False),
        (noise_for_the_mean, True),  # noise sized for the mean (sigma C / B), added to the sum
        (noise_on_last_tensor_only, True),  # the other tensors are released without noise
    ]


#: trials per world the check asks of the learner's audit (the held-out half is counted)
_AUDIT_TRIALS = 400
