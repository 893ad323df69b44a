"""Exercises of notebook 09b (DP-FedAvg on populations of 10^3 to 10^6 users)."""

from __future__ import annotations

import math
from typing import Any

from fl_dp_lab.exercises._core import as_number, feedback, is_unanswered, report_unanswered

__all__ = ["check_noise_on_the_mean", "check_chance_of_taking_part"]


def check_noise_on_the_mean(
    answer: Any, *, noise_multiplier: float, clip_norm: float, sample_rate: float, num_clients: int
) -> bool:
    """Exercise 09b.1: the noise std per coordinate of DP-FedAvg's released average.

    ``dp_aggregate`` adds N(0, (sigma C)^2) to each coordinate of the sum of
    clipped updates and divides by the expected number of clients qK, so
    the noise on the average has std sigma C / (qK). Hints for sigma C (the
    noise on the sum, not divided), sigma / (qK) (C forgotten), sigma C / K
    (divided by the population instead of the round) and the variance
    (sigma C / (qK))^2.
    """
    name = "Exercise 09b.1"
    if is_unanswered(answer):
        return report_unanswered(name)
    value = as_number("answer", answer)
    sigma, c, q, k = noise_multiplier, clip_norm, sample_rate, num_clients
    expected = sigma * c / (q * k)
    wrong = (
        (sigma * c, "that is the noise on the sum; the server divides the sum by qK."),
        (
            sigma / (q * k),
            "the noise std on the sum is sigma times C (the sensitivity), not sigma.",
        ),
        (sigma * c / k, "divide by the expected number of clients in a round, qK, not by K."),
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
        hint="noise std on the sum is σC (sensitivity C); the server divides the sum by qK.",
    )


def check_chance_of_taking_part(answer: Any, *, sample_rate: float, rounds: int) -> bool:
    """Exercise 09b.2: the probability that one user takes part in at least one of T rounds.

    Under Poisson sampling a user joins each round independently with
    probability q, so P(at least once) = 1 - (1 - q)^T. Hints for qT (the
    expected number of rounds, which can exceed 1), (1 - q)^T (never taking
    part) and q^T (every round).
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
        success=f"1 - (1 - q)^T = {expected:.3g}: most users never contribute at all, which "
        "is where the amplification by sampling comes from.",
        hint="each round is an independent coin of probability q; what is the chance that all "
        "T coins miss?",
    )
