"""Exercises of notebook 09b (DP-FedAvg on populations of 10^3 to 10^6 users)."""

from __future__ import annotations

import math
from typing import Any

from fl_dp_lab.exercises._core import (
    as_number,
    feedback,
    graded,
    hints,
    is_unanswered,
    report_unanswered,
)

__all__ = ["check_chance_of_taking_part", "check_noise_on_the_mean"]

hints(
    "Exercise 09b.1",
    idea="follow the noise from where it is added to what is released: dp_aggregate adds it "
    "to the sum of the clipped updates, and the server then divides that sum.",
    step="on the sum, the noise std is the noise multiplier times the sensitivity, sigma C; "
    "the server divides the sum by the expected number of clients in a round, q times K.",
    solution="noise_std = sigma * C / (q * K) = 0.6 * 2.0 / (1e-3 * 10**6)",
)
hints(
    "Exercise 09b.2",
    idea="each round is an independent coin of probability q for this user; which is easier to "
    "compute, taking part at least once or the opposite event?",
    step="the user misses one round with probability 1 - q and all T independent rounds with "
    "the product of T such factors; the answer is the complement of that.",
    solution="chance = 1 - (1 - q) ** T = 1 - (1 - 0.005) ** 200",
)


@graded("Exercise 09b.1")
def check_noise_on_the_mean(
    answer: Any, *, noise_multiplier: float, clip_norm: float, sample_rate: float, num_clients: int
) -> bool:
    """Exercise 09b.1: the noise std per coordinate of DP-FedAvg's released average.

    The setting (noise multiplier, clip norm, sampling rate, population)
    comes as keywords; the answer is compared, to 1 % relative, with the std
    of ``dp_aggregate``'s noise after the server's division. The noise on
    the sum, a forgotten clip norm, a division by the population instead of
    the round, and the variance get their own hints.
    """
    name = "Exercise 09b.1"
    if is_unanswered(answer):
        return report_unanswered(name)
    value = as_number("answer", answer)
    sigma, c, q, k = noise_multiplier, clip_norm, sample_rate, num_clients
    expected = sigma * c / (q * k)
    wrong = (
        (sigma * c, "that is the noise on the sum; the server divides the sum before release."),
        (
            sigma / (q * k),
            "the noise std on the sum is sigma times C (the sensitivity), not sigma.",
        ),
        (sigma * c / k, "divide by the expected number of clients in a round, not by K."),
        (expected**2, "that is a variance; the question asks for the standard deviation."),
    )
    if not math.isclose(value, expected, rel_tol=0.01):
        for guess, hint in wrong:
            if math.isclose(value, guess, rel_tol=0.01):
                return feedback(name, False, success="", hint=hint)
    return feedback(
        name,
        math.isclose(value, expected, rel_tol=0.01),
        success=f"σC/(qK) = {expected:.2e}: for the same σ, the noise on the average falls "
        "as the round grows, and qK can grow with the population at the same q.",
    )


@graded("Exercise 09b.2")
def check_chance_of_taking_part(answer: Any, *, sample_rate: float, rounds: int) -> bool:
    """Exercise 09b.2: the probability that one user takes part in at least one of T rounds.

    Poisson sampling at the keyword ``sample_rate`` over ``rounds`` rounds;
    the answer is compared, to 1 % relative, with the exact probability. The
    expected number of rounds (which can exceed 1), the chance of never
    taking part and the chance of taking part in every round get their own
    hints.
    """
    name = "Exercise 09b.2"
    if is_unanswered(answer):
        return report_unanswered(name)
    value = as_number("answer", answer)
    q, t = sample_rate, rounds
    expected = -math.expm1(t * math.log1p(-q)) if q < 1 else 1.0
    wrong = (
        (
            q * t,
            "qT is the expected number of rounds a user takes part in, not a probability: "
            "use the complement of never taking part.",
        ),
        ((1 - q) ** t, "that is the probability of never taking part; take its complement."),
        (q**t, "that is the probability of taking part in every round."),
    )
    if not math.isclose(value, expected, rel_tol=0.01):
        for guess, hint in wrong:
            if math.isclose(value, guess, rel_tol=0.01):
                return feedback(name, False, success="", hint=hint)
    return feedback(
        name,
        math.isclose(value, expected, rel_tol=0.01),
        success=f"1 - (1 - q)^T = {expected:.3g}: each round sees only a fraction q of the "
        "users, which is where the amplification by sampling comes from, and over T rounds "
        f"{expected:.0%} of them take part at least once.",
    )
