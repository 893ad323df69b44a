"""Exercises of notebook 04 (differential privacy)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from fl_dp_lab.exercises._core import (
    as_array,
    as_number,
    feedback,
    graded,
    hints,
    is_unanswered,
    report_unanswered,
)
from fl_dp_lab.mechanisms import (
    gaussian_privacy_loss,
    laplace_mechanism,
    randomized_response_estimate,
)

__all__ = ["check_gaussian_privacy_loss", "check_private_sum", "check_rr_estimator"]

hints(
    "Exercise 04.1",
    idea="the reports are a known mix of the truth and coin flips; undo the mix.",
    step="with p the chance of telling the truth, E[mean(reports)] = p * pi + (1 - p) * "
    "(1 - pi) for a true share pi. Solve that line for pi.",
    solution="p = e^eps / (1 + e^eps); return (mean(reports) - (1 - p)) / (2 * p - 1).",
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


hints(
    "Exercise 04.2",
    idea="bound what one person can contribute first, then add noise scaled to that bound: "
    "one person's income moves a sum of clipped incomes by at most the clip.",
    step="clip every income to [0, clip] (np.clip), add them up, and add one Laplace draw from "
    "the rng you are given, rng.laplace(loc, scale, size); section 4 gives its scale.",
    solution="def private_sum(incomes, *, clip, epsilon, rng): return float(np.clip(incomes, "
    "0, clip).sum() + rng.laplace(0.0, clip / epsilon))",
)
hints(
    "Exercise 04.3",
    idea="write both log-densities out: the normalising constants cancel, and what is left is "
    "a difference of two squared distances, linear in o.",
    step="log N(o; m, sigma^2 I) is -||o - m||^2 / (2 sigma^2) plus a constant; subtract the "
    "two and sum over the coordinates of each row. For the moments, write o = m + sigma z: L is "
    "then linear in the Gaussian z.",
    solution="def privacy_loss(o, m, m_prime, sigma): return ((o - m_prime) ** 2 - (o - m) ** "
    "2).sum(axis=1) / (2 * sigma**2). def loss_moments(m, m_prime, sigma): mu = "
    "np.sum((m - m_prime) ** 2) / (2 * sigma**2); return mu, 2 * mu",
)

#: Exercise 04.2's hidden cases: (clip, epsilon); the incomes are drawn in the check
_SUM_CASES = ((100.0, 0.5), (50.0, 2.0), (20.0, 1.0))
_SUM_RELEASES = 4_000


@graded("Exercise 04.2")
def check_private_sum(private_sum: Any) -> bool:
    """Exercise 04.2: ``private_sum(incomes, *, clip, epsilon, rng)``, a private sum built by hand.

    Called 4,000 times (one seed each) on each of three hidden data sets,
    with values below 0 and above the clip, at three (clip, epsilon)
    settings. The releases must centre on the sum of the values clipped to
    [0, clip], have the spread of the library's ``laplace_mechanism`` at the
    sum's sensitivity (to 6 %, about 4 standard errors) and the Laplace
    shape, and come from the given ``rng``. A missing or one-sided clip, the
    sensitivity of a count, the scale upside down, Gaussian noise and a
    global random generator are each named.
    """
    name = "Exercise 04.2"
    if is_unanswered(private_sum):
        return report_unanswered(name)
    if not callable(private_sum):
        raise TypeError(
            "private_sum must be a function private_sum(incomes, *, clip, epsilon, rng), "
            f"got {private_sum!r}"
        )
    data = np.random.default_rng(42)
    for case, (clip, eps) in enumerate(_SUM_CASES):
        incomes = data.uniform(-0.2 * clip, 3.0 * clip, 25)

        def release(seed: int, incomes: np.ndarray = incomes, clip: float = clip, eps: float = eps):
            rng = np.random.default_rng(seed)
            return as_number(
                "private_sum(...)", private_sum(incomes.copy(), clip=clip, epsilon=eps, rng=rng)
            )

        seeds = range(1000 * case, 1000 * case + _SUM_RELEASES)
        releases = np.array([release(seed) for seed in seeds])
        clipped_sum = float(np.clip(incomes, 0.0, clip).sum())
        reference = np.array(
            [
                laplace_mechanism(
                    clipped_sum, sensitivity=clip, epsilon=eps, rng=np.random.default_rng(s)
                )
                for s in seeds
            ]
        )
        want = float(np.mean(np.abs(reference - clipped_sum)))
        centre = float(np.median(releases))
        spread = float(np.mean(np.abs(releases - centre)))
        at = f"at clip {clip:g}, epsilon {eps:g}:"
        if release(seeds[0]) != releases[0]:
            hint = f"{at} the same seed gave two different releases: draw the noise from the rng "
            hint += "argument, not from a global generator."
        elif abs(centre - clipped_sum) > 0.15 * want:
            if abs(centre - float(incomes.sum())) < 0.15 * want:
                hint = f"{at} the releases centre on the raw sum: one large income moves it "
                hint += "without bound."
            elif abs(centre - float(np.clip(incomes, -clip, clip).sum())) < 0.15 * want:
                hint = f"{at} negative incomes were kept: the incomes are clipped to [0, clip]."
            elif abs(centre - float(np.minimum(incomes, clip).sum())) < 0.15 * want:
                hint = f"{at} only the top was clipped: the incomes are clipped to [0, clip]."
            else:
                hint = f"{at} the releases do not centre on the sum of the clipped incomes."
        elif spread == 0.0:
            hint = f"{at} every release is the same: no noise was added."
        elif float(np.sqrt(np.mean((releases - centre) ** 2))) / spread < 1.33:
            hint = f"{at} the noise is not Laplace-shaped (its tails are too thin)."
        elif abs(spread / want - 1) <= 0.06:
            continue
        elif abs(spread / want * clip - 1) <= 0.06:
            hint = f"{at} that noise suits a count, whose sensitivity is 1; how much can one "
            hint += "person move a sum of clipped incomes?"
        elif abs(spread / want / eps**2 - 1) <= 0.06:
            hint = f"{at} upside down: more privacy (smaller epsilon) must mean MORE noise."
        elif abs(spread / want - 1 / math.sqrt(2)) <= 0.05:
            hint = f"{at} the spread is off by sqrt(2): the Laplace scale b is not its standard "
            hint += "deviation."
        else:
            hint = f"{at} the noise is {spread / want:.2f} times as wide as it should be."
        return feedback(name, False, success="", hint=hint)
    return feedback(
        name,
        True,
        success="clip, sum, then Laplace noise scaled to what one person can change: clipping "
        "is what makes the sensitivity finite, and DP-SGD clips gradients for the same reason.",
    )


@graded("Exercise 04.3")
def check_gaussian_privacy_loss(privacy_loss: Any, loss_moments: Any) -> bool:
    """Exercise 04.3: the privacy loss of the d-dimensional Gaussian mechanism and its moments.

    ``privacy_loss(o, m, m_prime, sigma)`` (one loss per row of o) is compared,
    to a relative 1e-5 (float32 passes), with the difference of the two
    log-densities computed here, on hidden cases in 1, 3 and 6 dimensions.
    ``loss_moments(m, m_prime, sigma)`` (mean and variance of the loss when o
    is drawn on D) is compared, to a relative 1e-6, with the library's
    ``gaussian_privacy_loss`` for the same pair. The loss the wrong way round,
    one loss per coordinate, the standard deviation for the variance and a
    distance other than the Euclidean one are each named.
    """
    from scipy import stats  # here, not at the top: importing it costs every notebook ~1 s

    name = "Exercise 04.3"
    if is_unanswered(privacy_loss) or is_unanswered(loss_moments):
        return report_unanswered(name)
    for what, function in (("privacy_loss", privacy_loss), ("loss_moments", loss_moments)):
        if not callable(function):
            raise TypeError(f"{what} must be a function, got {function!r}")
    rng = np.random.default_rng(4)
    for d, sigma in ((1, 0.7), (3, 2.0), (6, 1.3)):
        m, m_prime = rng.normal(0, 1, d), rng.normal(0, 1, d)
        o = m + sigma * rng.normal(0, 1, (50, d))
        truth = (stats.norm.logpdf(o, m, sigma) - stats.norm.logpdf(o, m_prime, sigma)).sum(1)
        case = f"in {d} dimension{'s' if d > 1 else ''}:"
        value = privacy_loss(o.copy(), m.copy(), m_prime.copy(), sigma)
        if np.shape(value) == o.shape and d > 1:
            return feedback(
                name,
                False,
                success="",
                hint=f"{case} one loss per coordinate; the loss of an "
                "output is ONE number per row (the densities of a vector multiply).",
            )
        got = as_array("privacy_loss(o, m, m_prime, sigma)", value, (len(o),), why="one per row")
        if not np.allclose(got, truth, rtol=1e-5, atol=1e-6):  # float32 answers pass
            if np.allclose(got, -truth, rtol=1e-5, atol=1e-6):
                hint = f"{case} the loss is the wrong way round: log p_D(o) - log p_D'(o)."
            else:
                hint = f"{case} privacy_loss is off."
            return feedback(name, False, success="", hint=hint)
        distance = float(np.linalg.norm(m - m_prime))
        mean, std = gaussian_privacy_loss(sigma=sigma, sensitivity=distance)
        moments = as_array("loss_moments(m, m_prime, sigma)", loss_moments(m, m_prime, sigma), (2,),
                           why="the pair (mean, variance)")  # fmt: skip
        if np.allclose(moments, (mean, std**2), rtol=1e-6, atol=1e-9):
            continue
        l1 = float(np.abs(m - m_prime).sum())
        if np.allclose(moments, (mean, std), rtol=1e-6, atol=1e-9):
            hint = f"{case} the second number is the standard deviation; the variance is asked."
        elif d > 1 and math.isclose(moments[0], l1**2 / (2 * sigma**2), rel_tol=1e-6):
            hint = f"{case} the distance between m and m' is measured in the wrong norm."
        else:
            hint = f"{case} loss_moments is off (privacy_loss is right: simulate it and compare)."
        return feedback(name, False, success="", hint=hint)
    return feedback(
        name,
        True,
        success="L ~ N(mu, 2 mu) with mu = ||m - m'||^2 / (2 sigma^2) in any dimension: only the "
        "distance between the two means matters, which is why one DP-SGD step, a vector of "
        "millions of coordinates, is analysed as a pair of one-dimensional Gaussians.",
    )
