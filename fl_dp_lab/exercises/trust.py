"""Exercises of notebook 12 (whom do you trust: local, central, distributed DP)."""

from __future__ import annotations

from typing import Any

from fl_dp_lab.exercises._core import (
    as_array,
    as_number,
    feedback,
    graded,
    is_unanswered,
    report_unanswered,
)

__all__ = ["check_batch_clip_influence", "check_local_noise_factor"]


def check_local_noise_factor(answer: Any) -> bool:
    """Exercise 12.1: local vs central noise on the average, m = 100 clients, same epsilon.

    Each local client adds N(0, (sigma C)^2); central DP adds it once to the
    sum. On the average of 100 clients: sigma C sqrt(100) / 100 against
    sigma C / 100, a factor sqrt(100) = 10 in std (100 in variance).
    """
    name = "Exercise 12.1"
    if is_unanswered(answer):
        return report_unanswered(name)
    value = as_number("answer", answer)
    if abs(value - 100) < 1e-9:
        return feedback(
            name, False, success="", hint="100 is the ratio of the variances; the std is its root."
        )
    if abs(value - 0.1) < 1e-9:
        return feedback(name, False, success="", hint="local DP needs *more* noise, not less.")
    if abs(value - 1) < 1e-9:
        return feedback(
            name,
            False,
            success="",
            hint="the sigma is the same, but local DP adds it m times: independent noises add "
            "up in variance.",
        )
    return feedback(
        name,
        abs(value - 10) < 1e-6,
        success="10 times the noise: sqrt(m) independent noises where central DP adds one. "
        "Distributed DP gets central's 1 with each client adding only a share.",
        hint="the sum of m independent N(0, s^2) has std s sqrt(m); divide both by m.",
    )


@graded("Exercise 12.2")
def check_batch_clip_influence(answer: Any) -> bool:
    """Exercise 12.2: how far can one example move a clipped batch gradient (units of C, B = 32)?

    Answer: a pair (per-batch clipping, per-sample clipping) = (2, 1/32).
    Clipping the batch mean to C bounds it only by the diameter of the ball,
    2 C (the example can flip the clipped mean's direction); per-sample
    clipping with a fixed denominator B bounds it by ||clip(g_i)|| / B <= C / B.
    """
    name = "Exercise 12.2"
    if is_unanswered(answer):
        return report_unanswered(name)
    batch, sample = as_array("answer", answer, (2,), "a pair (per-batch bound, per-sample bound)")
    if abs(batch - 1) < 1e-9:
        hint = (
            "both clipped means have norm <= C, but they can point in opposite directions: "
            "the difference can reach twice C."
        )
        return feedback(name, False, success="", hint=hint)
    if abs(sample - 2 / 32) < 1e-9:
        hint = (
            "removing an example removes its own clipped gradient (norm <= C) from the sum; "
            "the others stay: C / B."
        )
        return feedback(name, False, success="", hint=hint)
    if abs(sample - 1) < 1e-9:
        return feedback(name, False, success="", hint="divide by the batch size B = 32.")
    return feedback(
        name,
        abs(batch - 2) < 1e-9 and abs(sample - 1 / 32) < 1e-9,
        success="per-batch clipping lets one example own the whole clipped gradient: 64 times "
        "what per-sample clipping allows at B = 32, so the same noise protects it 64 times less.",
        hint="per-batch: the diameter of a ball of radius C; per-sample: C / B.",
    )
