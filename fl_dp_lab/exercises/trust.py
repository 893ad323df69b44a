"""Exercises of notebook 12 (whom do you trust: local, central, distributed DP)."""

from __future__ import annotations

from typing import Any

from fl_dp_lab.exercises._core import (
    as_array,
    as_number,
    feedback,
    graded,
    hints,
    is_unanswered,
    report_unanswered,
)

__all__ = ["check_batch_clip_influence", "check_local_noise_factor"]

hints(
    "Exercise 12.1",
    idea="at the same epsilon every noise has the same sigma; what differs is how many "
    "independent noises end up in the average, and independent noises add up in variance.",
    step="write the noise on the average both ways: local DP sums m noises of std sigma C, "
    "central DP adds one to the sum; divide each std by m and take the ratio.",
    solution="(sigma C sqrt(m) / m) / (sigma C / m) = sqrt(m); with m = 100 clients, "
    "local_factor = math.sqrt(100).",
)
hints(
    "Exercise 12.2",
    idea="the bound is the largest distance between the clipped gradient with and without one "
    "example, in units of C; ask what each kind of clipping guarantees about that difference.",
    step="per-batch: both clipped means lie in the ball of radius C, so how far apart can two "
    "points of that ball be? Per-sample: the sum changes by one clipped gradient (norm at most "
    "C), and the sum is divided by the fixed B.",
    solution="influence_bounds = (2, 1 / 32): twice C per batch (the diameter of the ball), "
    "C / B per sample.",
)


@graded("Exercise 12.1")
def check_local_noise_factor(answer: Any) -> bool:
    """Exercise 12.1: local vs central noise on the average of m = 100 clients, at the same epsilon.

    The answer is the ratio of the standard deviations of the noise on the
    average (local over central), as a number. Giving the ratio of the
    variances, a factor below one and the same noise in both get their own
    hints.
    """
    name = "Exercise 12.1"
    if is_unanswered(answer):
        return report_unanswered(name)
    value = as_number("answer", answer)
    expected = 100**0.5  # sqrt(m): m independent noises on the sum against one
    if abs(value - expected**2) < 1e-9:
        return feedback(
            name, False, success="", hint="100 is the ratio of the variances; the std is its root."
        )
    if abs(value - 1 / expected) < 1e-9:
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
        abs(value - expected) < 1e-6,
        success=f"{expected:.0f} times the noise: sqrt(m) independent noises where central DP "
        "adds one. Distributed DP gets central's 1 with each client adding only a share.",
    )


@graded("Exercise 12.2")
def check_batch_clip_influence(answer: Any) -> bool:
    """Exercise 12.2: how far one example can move a clipped batch gradient, in units of C (B = 32).

    The answer is a pair (per-batch clipping bound, per-sample clipping
    bound), both as multiples of C. A per-batch bound that forgets the
    clipped means can point in opposite directions, a per-sample bound that
    counts the example twice and one not divided by the batch size get their
    own hints.
    """
    name = "Exercise 12.2"
    if is_unanswered(answer):
        return report_unanswered(name)
    batch, sample = as_array("answer", answer, (2,), "a pair (per-batch bound, per-sample bound)")
    size = 32
    per_batch, per_sample = 2.0, 1 / size  # the ball's diameter; one clipped gradient over B
    if abs(batch - 1) < 1e-9:
        hint = (
            "both clipped means have norm <= C, but they can point in opposite directions: "
            "how far apart can two points of that ball be?"
        )
        return feedback(name, False, success="", hint=hint)
    if abs(sample - 2 / size) < 1e-9:
        hint = (
            "removing an example removes its own clipped gradient (norm <= C) from the sum; "
            "the other examples' gradients stay as they were."
        )
        return feedback(name, False, success="", hint=hint)
    if abs(sample - 1) < 1e-9:
        return feedback(name, False, success="", hint="divide by the batch size B = 32.")
    return feedback(
        name,
        abs(batch - per_batch) < 1e-9 and abs(sample - per_sample) < 1e-9,
        success="per-batch clipping lets one example own the whole clipped gradient: 64 times "
        "what per-sample clipping allows at B = 32, so the same noise protects it 64 times less.",
    )
