"""Exercises of notebook 04 (differential privacy)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from fl_dp_lab.exercises._core import as_number, feedback, is_unanswered, report_unanswered
from fl_dp_lab.mechanisms import randomized_response_estimate

__all__ = ["check_basic_composition", "check_laplace_scale", "check_rr_estimator"]


def check_rr_estimator(estimator: Any) -> bool:
    """Exercise 04.1: a function ``estimator(reports, epsilon)`` that unbiases randomized response.

    Must return (mean(reports) - (1 - p)) / (2p - 1) with p = e^eps / (1 +
    e^eps), checked on fixed report vectors at three epsilons. Catches the
    naive mean of the reports and p = e^eps (not a probability).
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
        hint = "that is the raw share of 1-reports, biased towards 1/2 by the coin flips. Solve "
        hint += "E[mean] = p * pi + (1 - p) * (1 - pi) for pi."
        return feedback(name, False, success="", hint=hint)
    return feedback(
        name,
        all(abs(g - x) < 1e-9 for g, x in zip(got, expected, strict=True)),
        success="the noise each person adds averages out over many people: private individuals, "
        "accurate statistics.",
        hint="p = e^eps / (1 + e^eps) is the chance of telling the truth; "
        "return (mean(reports) - (1 - p)) / (2 * p - 1).",
    )


def check_laplace_scale(answer: Any) -> bool:
    """Exercise 04.2: Laplace scale for a sum of incomes clipped to [0, 100] (k$), epsilon = 0.5.

    One person changes the sum by at most 100 (add/remove neighbours), so the
    sensitivity is 100 and the scale b = 100 / 0.5 = 200. Catches 1 / eps
    (sensitivity forgotten) and eps * sensitivity (upside down).
    """
    name = "Exercise 04.2"
    if is_unanswered(answer):
        return report_unanswered(name)
    value = as_number("answer", answer)
    hints = {
        2.0: "that is 1 / epsilon: the scale must grow with the sensitivity, the largest change "
        "one person can make to the sum.",
        50.0: "upside down: more privacy (smaller epsilon) must mean MORE noise.",
        math.sqrt(2) * 200: "that is the noise's standard deviation; the question asks for the "
        "Laplace scale b.",
    }
    for wrong, hint in hints.items():
        if abs(value - wrong) < 1e-6:
            return feedback(name, False, success="", hint=hint)
    return feedback(
        name,
        abs(value - 200.0) < 1e-6,
        success="b = sensitivity / epsilon = 100 / 0.5. Clipping is what makes the sensitivity "
        "finite: DP-SGD clips gradients for the same reason.",
        hint="sensitivity = the most one person can change the sum (incomes are clipped to "
        "[0, 100]); the scale is sensitivity / epsilon.",
    )


def check_basic_composition(epsilon: Any, delta: Any) -> bool:
    """Exercise 04.3: total (epsilon, delta) of 4 releases, each (0.25, 1e-6)-DP, composed.

    Basic composition adds both: (1.0, 4e-6). Catches delta left at 1e-6
    and epsilon left per-release.
    """
    name = "Exercise 04.3"
    if is_unanswered(epsilon) or is_unanswered(delta):
        return report_unanswered(name)
    eps, dlt = as_number("epsilon", epsilon), as_number("delta", delta)

    def near(value: float, target: float) -> bool:  # relative: float32 answers pass
        return math.isclose(value, target, rel_tol=1e-5)

    if near(eps, 0.25):
        hint = "0.25 is the budget of ONE release; an attacker sees all four."
        return feedback(name, False, success="", hint=hint)
    if near(eps, 1.0) and near(dlt, 1e-6):
        return feedback(
            name, False, success="", hint="the deltas add up too, not only the epsilons."
        )
    return feedback(
        name,
        near(eps, 1.0) and near(dlt, 4e-6),
        success="(1.0, 4e-6): basic composition is simple but loose; notebook 05 composes "
        "thousands of steps far more tightly.",
        hint="basic composition: k mechanisms, each (eps, delta)-DP, are (k eps, k delta)-DP "
        "together.",
    )
