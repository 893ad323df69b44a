"""Exercises of notebook 03 (gradients leak)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from fl_dp_lab._validate import fail
from fl_dp_lab.attacks import auc, roc_curve
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
def check_row_ratio(answer: Any) -> bool:
    """Exercise 03.1: ``image_from_gradient(grad_weight, grad_bias)`` reads x from ONE row.

    For one example through z = W x + b, dL/dW = g x^T and dL/db = g, so the
    right answer is grad_weight[i] / grad_bias[i] for a row i whose bias
    gradient is not (nearly) zero. The function is called on gradients of
    images the learner has never seen (drawn here, 784 and 12 pixels, with a
    zero bias gradient in row 0), so returning the notebook's secret image
    itself, or always dividing by row 0, fails. Catches the inverted ratio,
    every row's ratio at once and an answer that ignores the gradient.
    """
    name = "Exercise 03.1"
    if is_unanswered(answer):
        return report_unanswered(name)
    if not callable(answer):
        fail(
            "image_from_gradient",
            "a function image_from_gradient(grad_weight, grad_bias)",
            answer,
            TypeError,
        )
    outputs, truths = [], []
    for x, g in _hidden_linear_cases():
        grad_weight, grad_bias = torch.outer(g, x), g.clone()
        value = as_array("image_from_gradient(...)", answer(grad_weight.clone(), grad_bias.clone()))
        if value.shape == tuple(grad_weight.shape):
            return feedback(
                name,
                False,
                success="",
                hint="that is the ratio for every row at once; the image is ONE row i of it, "
                "grad_weight[i] / grad_bias[i], for a row whose grad_bias[i] is not near 0.",
            )
        if value.size == x.numel():  # a 28 x 28 view of the same image is the same answer
            value = value.reshape(-1)
        outputs.append(as_array("image_from_gradient(...)", value, (x.numel(),), why="one image"))
        truths.append(x.numpy().astype(np.float64))
        # the first two cases are two different 784-pixel images
        if len(outputs) == 2 and np.all(np.isfinite(value)) and np.allclose(*outputs):
            return feedback(
                name,
                False,
                success="",
                hint="your function returns the same image for two different gradients: it must "
                "read the image from grad_weight and grad_bias alone (the check feeds it images "
                "you have never seen).",
            )
    for value, truth in zip(outputs, truths, strict=True):
        if np.allclose(value, truth, atol=1e-4):
            continue
        if not np.all(np.isfinite(value)):
            hint = (
                "some pixels are inf or nan: that row's grad_bias[i] is 0 (the example "
                "sent nothing through it). Pick the row with the largest |grad_bias|."
            )
        elif np.allclose(value * truth, 1.0, atol=1e-4):
            hint = (
                "the ratio is upside down: divide the weight row by the bias entry, "
                "since dL/dW_i = dL/db_i * x."
            )
        else:
            hint = (
                "pick a row i with a clearly non-zero grad_bias[i] (e.g. the largest "
                "|grad_bias|) and divide grad_weight[i] by grad_bias[i]."
            )
        return feedback(name, False, success="", hint=hint)
    return feedback(
        name,
        True,
        success="one row of one example's gradient is the whole image, for any image: "
        "sharing gradients is sharing data.",
        hint="",
    )


def check_auc_by_pairs(
    answer: Any, member_scores: Any = None, nonmember_scores: Any = None
) -> bool:
    """Exercise 03.2: ``auc_by_pairs(member_scores, nonmember_scores)``, the AUC by counting pairs.

    AUC = P(score(member) > score(non-member)) + 0.5 P(tie); the function must
    match the area under ``roc_curve`` to 1e-9 on every case: a hand-worked
    one with ties, scores rounded to one decimal (many ties, so counting a tie
    as 1 with ``mean(m >= n)`` or as 0 with ``mean(m > n)`` fails), random
    continuous scores, and the notebook's scores when given. Catches 1 - AUC
    (scores used the wrong way round), ties counted as 0 or 1, a percentage
    and a count of pairs not divided by their number.
    """
    name = "Exercise 03.2"
    if is_unanswered(answer):
        return report_unanswered(name)
    if not callable(answer):
        fail(
            "auc_by_pairs",
            "a function auc_by_pairs(member_scores, nonmember_scores)",
            answer,
            TypeError,
        )
    cases = _auc_cases()
    if member_scores is not None and nonmember_scores is not None:
        cases.append(
            (
                as_array("member_scores", member_scores).ravel(),
                as_array("nonmember_scores", nonmember_scores).ravel(),
            )
        )
    for members, others in cases:
        value = as_number("auc_by_pairs(...)", answer(members.copy(), others.copy()))
        scores = np.r_[members, others]
        expected = auc(*roc_curve(scores, np.r_[np.ones(members.size), np.zeros(others.size)]))
        if abs(value - expected) < 1e-9:
            continue
        wins = np.mean(members[:, None] > others[None, :])
        ties = np.mean(members[:, None] == others[None, :])
        pairs = members.size * others.size
        if abs(value - (1 - expected)) < 1e-9:
            hint = "that is 1 - AUC: count pairs where the MEMBER has the higher score."
        elif ties > 0 and (abs(value - wins) < 1e-9 or abs(value - wins - ties) < 1e-9):
            hint = (
                "a tied pair is a coin flip: count it 1/2 (this case has ties; "
                "m > n counts them 0, m >= n counts them 1)."
            )
        elif abs(value / 100 - expected) < 1e-9:
            hint = "an AUC is a probability in [0, 1], not a percentage."
        elif abs(value / pairs - expected) < 1e-9:
            hint = (
                f"that counts the pairs ranked right; divide by the number of pairs "
                f"({members.size} x {others.size} here)."
            )
        else:
            hint = (
                "compare every member score with every non-member score: "
                "mean of (m > n) + 0.5 (m == n), with m as a column and n as a row."
            )
        return feedback(name, False, success="", hint=hint)
    return feedback(
        name,
        True,
        success="the share of (member, non-member) pairs ranked right, ties half: the "
        "Mann-Whitney statistic, the same number as the area under the ROC curve.",
        hint="",
    )


def _hidden_linear_cases() -> list[tuple[torch.Tensor, torch.Tensor]]:
    # images the learner cannot see, and g with row 0 carrying nothing (g_0 = 0)
    generator = torch.Generator().manual_seed(3)
    cases = []
    for pixels, rows in ((784, 10), (784, 10), (12, 5)):
        x = torch.rand(pixels, generator=generator)
        g = torch.randn(rows, generator=generator)
        g[0] = 0.0
        cases.append((x, g))
    return cases


def _auc_cases() -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(3)
    return [
        (np.array([3.0, 2.0, 2.0, 0.5]), np.array([2.0, 1.0, 0.0])),  # AUC 9/12 by hand
        (np.round(rng.normal(0.4, 1.0, 30), 1), np.round(rng.normal(0.0, 1.0, 25), 1)),
        (rng.normal(0.5, 1.0, 20), rng.normal(0.0, 1.0, 40)),
    ]
