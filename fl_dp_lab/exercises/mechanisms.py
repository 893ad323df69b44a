"""Exercises of notebook 04 (differential privacy)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from fl_dp_lab.exercises._core import as_number, feedback, hints, is_unanswered, report_unanswered
from fl_dp_lab.mechanisms import randomized_response_estimate

__all__ = ["check_basic_composition", "check_laplace_scale", "check_rr_estimator"]

hints(
    "Exercise 04.1",
    idea="the reports are a known mix of the truth and coin flips; undo the mix.",
    step="with p the chance of telling the truth, E[mean(reports)] = p * pi + (1 - p) * "
    "(1 - pi) for a true share pi. Solve that line for pi.",
    solution="p = e^eps / (1 + e^eps); return (mean(reports) - (1 - p)) / (2 * p - 1).",
)
hints(
    "Exercise 04.2",
    idea="the Laplace scale grows with how much one person can move the answer and shrinks "
    "as the budget grows.",
    step="the sensitivity of a sum of values clipped to [0, 100] is the most one added or "
    "removed person can change it.",
    solution="b = sensitivity / epsilon, with sensitivity 100 and epsilon 0.5.",
)
hints(
    "Exercise 04.3",
    idea="an attacker sees every release: the privacy losses of the four add up.",
    step="basic composition adds the epsilons, and the deltas too.",
    solution="epsilon = 4 * 0.25 and delta = 4 * 1e-6.",
)


def check_rr_estimator(estimator: Any) -> bool:
    """Exercise 04.1: a function ``estimator(reports, epsilon)`` that unbiases randomized response.

    Called on hidden report vectors at three epsilons and compared with the
    library's ``randomized_response_estimate``. The raw share of 1-reports is
    named.
    """
    name = "Exercise 04.1"
    if is_unanswered(estimator):
        return report_unanswered(name)
    if not callable(estimator):
        raise TypeError(
            f"estimator must be a function estimator(reports, epsilon), got {estimator!r}"
        )
    rng = np.random.default_rng(0)
    cases = [(rng.integers(0, 2, 200), eps) for eps in (0.5, 1.0, math.log(3))]
    got = [as_number("estimator(reports, epsilon)", estimator(r, e)) for r, e in cases]
    expected = [randomized_response_estimate(r, epsilon=e) for r, e in cases]
    if all(abs(g - r.mean()) < 1e-9 for g, (r, _) in zip(got, cases, strict=True)):
        hint = "that is the raw share of 1-reports, biased towards 1/2 by the coin flips."
        return feedback(name, False, success="", hint=hint)
    return feedback(
        name,
        all(abs(g - x) < 1e-9 for g, x in zip(got, expected, strict=True)),
        success="the noise each person adds averages out over many people: private individuals, "
        "accurate statistics.",
    )


def check_laplace_scale(answer: Any) -> bool:
    """Exercise 04.2: Laplace scale for a sum of incomes clipped to [0, 100] (k$), epsilon = 0.5.

    Accepted to 1e-6. The sensitivity forgotten, the ratio upside down and
    the noise's standard deviation instead of the scale are each named.
    """
    name = "Exercise 04.2"
    if is_unanswered(answer):
        return report_unanswered(name)
    value = as_number("answer", answer)
    sensitivity, eps = 100.0, 0.5
    expected = sensitivity / eps
    slips = {
        1 / eps: "the scale must grow with the sensitivity, the largest change one person can "
        "make to the sum.",
        eps * sensitivity: "upside down: more privacy (smaller epsilon) must mean MORE noise.",
        math.sqrt(2) * expected: "that is the noise's standard deviation; the question asks "
        "for the Laplace scale b.",
    }
    for wrong, hint in slips.items():
        if abs(value - wrong) < 1e-6:
            return feedback(name, False, success="", hint=hint)
    return feedback(
        name,
        abs(value - expected) < 1e-6,
        success="the scale is the sensitivity over epsilon. Clipping is what makes the "
        "sensitivity finite: DP-SGD clips gradients for the same reason.",
    )


def check_basic_composition(epsilon: Any, delta: Any) -> bool:
    """Exercise 04.3: total (epsilon, delta) of 4 releases, each (0.25, 1e-6)-DP, composed.

    By basic composition, to a relative 1e-5 (float32 passes). Epsilon left
    per release and delta left per release are each named.
    """
    name = "Exercise 04.3"
    if is_unanswered(epsilon) or is_unanswered(delta):
        return report_unanswered(name)
    eps, dlt = as_number("epsilon", epsilon), as_number("delta", delta)
    k, eps_one, delta_one = 4, 0.25, 1e-6

    def near(value: float, target: float) -> bool:  # relative: float32 answers pass
        return math.isclose(value, target, rel_tol=1e-5)

    if near(eps, eps_one):
        hint = "that epsilon is the budget of ONE release; an attacker sees all four."
        return feedback(name, False, success="", hint=hint)
    if near(eps, k * eps_one) and near(dlt, delta_one):
        return feedback(name, False, success="", hint="epsilon is right; delta is one release's.")
    return feedback(
        name,
        near(eps, k * eps_one) and near(dlt, k * delta_one),
        success="basic composition is simple but loose; notebook 05 composes thousands of "
        "steps far more tightly.",
    )
