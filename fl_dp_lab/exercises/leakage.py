"""Exercises of notebook 03 (gradients leak)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from fl_dp_lab.attacks import auc, reconstruct_from_linear_gradient, roc_curve
from fl_dp_lab.exercises._core import (
    as_array,
    as_number,
    feedback,
    graded,
    is_unanswered,
    report_unanswered,
)

__all__ = ["check_auc_by_pairs", "check_row_ratio"]


@graded("Exercise 03.1")
def check_row_ratio(answer: Any, grad_weight: torch.Tensor, grad_bias: torch.Tensor) -> bool:
    """Exercise 03.1: recover the input from ONE row of a linear layer's gradients.

    The right answer is grad_weight[i] / grad_bias[i] for a row i whose bias
    gradient is not (nearly) zero; it must equal the image to 1e-4. Catches
    the inverted ratio and a row whose bias gradient is ~0 (the ratio blows up).
    """
    name = "Exercise 03.1"
    if is_unanswered(answer):
        return report_unanswered(name)
    expected = reconstruct_from_linear_gradient(grad_weight, grad_bias).detach().numpy()
    value = as_array("answer", answer)
    if value.shape == tuple(grad_weight.shape):
        return feedback(
            name,
            False,
            success="",
            hint="that is the ratio for every row at once; the image is ONE row i of it, "
            "grad_weight[i] / grad_bias[i], for a row whose grad_bias[i] is not near 0.",
        )
    if value.size == expected.size:  # a 28 x 28 view of the same image is the same answer
        value = value.reshape(expected.shape)
    value = as_array("answer", value, shape=expected.shape, why="one image, shaped like x")
    ok = bool(np.allclose(value, expected, atol=1e-4))
    nonzero = np.abs(expected) > 1e-6
    if not ok and nonzero.any():
        # grad_bias[i] / grad_weight[i] = 1 / x for every row: the ratio upside down
        with np.errstate(divide="ignore", invalid="ignore"):
            inverted = np.allclose(value[nonzero] * expected[nonzero], 1.0, atol=1e-4)
        if inverted:
            return feedback(
                name, False, success="", hint="the ratio is upside down: divide the weight row "
                "by the bias entry, since dL/dW_i = dL/db_i * x.",
            )  # fmt: skip
    return feedback(
        name,
        ok,
        success="one row of one example's gradient is the whole image: sharing gradients is "
        "sharing data.",
        hint="pick a row i with a clearly non-zero grad_bias[i] (e.g. the largest |grad_bias|) "
        "and divide grad_weight[i] by grad_bias[i].",
    )


def check_auc_by_pairs(answer: Any, member_scores: Any, nonmember_scores: Any) -> bool:
    """Exercise 03.2: the AUC as the share of (member, non-member) pairs ranked right.

    AUC = P(score(member) > score(non-member)) + 0.5 P(tie); it must match
    the area under ``roc_curve`` to 5e-4 (so a value printed to 3 decimals
    passes). Catches 1 - AUC (scores used the wrong way round, e.g. the loss
    instead of minus the loss), ties counted as 0 or 1 instead of 1/2, a
    percentage and a count of pairs not divided by their number.
    """
    name = "Exercise 03.2"
    if is_unanswered(answer):
        return report_unanswered(name)
    value = as_number("answer", answer)
    members = as_array("member_scores", member_scores).ravel()
    others = as_array("nonmember_scores", nonmember_scores).ravel()
    scores = np.r_[members, others]
    labels = np.r_[np.ones(members.size), np.zeros(others.size)]
    expected = auc(*roc_curve(scores, labels))
    wins = np.mean(members[:, None] > others[None, :])
    ties = np.mean(members[:, None] == others[None, :])
    if abs(value - (1 - expected)) < 1e-9 and abs(expected - 0.5) > 1e-9:
        hint = "that is 1 - AUC: count pairs where the MEMBER has the higher score."
        return feedback(name, False, success="", hint=hint)
    if ties > 0 and (abs(value - wins) < 1e-9 or abs(value - wins - ties) < 1e-9):
        return feedback(name, False, success="", hint="a tied pair is a coin flip: count it 1/2.")
    if value > 1:
        pairs = members.size * others.size
        if abs(value / 100 - expected) < 5e-4:
            hint = "an AUC is a probability in [0, 1], not a percentage."
        elif abs(value / pairs - expected) < 1e-9:
            hint = f"that counts the pairs ranked right; divide by the number of pairs, {pairs}."
        else:
            hint = "an AUC is a share of pairs, between 0 and 1."
        return feedback(name, False, success="", hint=hint)
    return feedback(
        name,
        abs(value - expected) < 5e-4,
        success=f"AUC = {expected:.3f}: the chance the attack ranks a random member above a "
        "random non-member (the Mann-Whitney statistic).",
        hint="compare every member score with every non-member score: "
        "mean of (m > n) + 0.5 (m == n).",
    )
