"""Exercises of notebook 03 (attacks: gradients leak)."""

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
    hints,
    is_unanswered,
    report_unanswered,
)

__all__ = ["check_auc_by_pairs", "check_row_ratio"]

hints(
    "Exercise 03.1",
    idea="for one example through z = W x + b, write dL/dW and dL/db with the chain rule: both "
    "carry the same factor dL/dz.",
    step="dL/dW = g x^T and dL/db = g: every row of the weight gradient is x scaled by one "
    "entry of g. Pick a row where that entry is clearly non-zero.",
    solution="i = grad_bias.abs().argmax(); return grad_weight[i] / grad_bias[i]",
)
hints(
    "Exercise 03.2",
    idea="the AUC is the chance that a random member scores higher than a random non-member, "
    "a tie counting as a coin flip.",
    step="compare every member score with every non-member score at once: a column against a "
    "row broadcasts to a table of pairs.",
    solution="m, n = members[:, None], nonmembers[None, :]; "
    "return float(np.mean((m > n) + 0.5 * (m == n)))",
)


@graded("Exercise 03.1")
def check_row_ratio(answer: Any) -> bool:
    """Exercise 03.1: ``image_from_gradient(grad_weight, grad_bias)`` reads the input back.

    The function is called on one example's gradients of a linear layer, for
    images the learner has never seen (of two sizes, with one row that
    carries nothing), and must return each image. Returning the notebook's
    secret image, relying on one fixed row, the inverted ratio, every row at
    once and an answer that ignores the gradient are each named.
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
                hint="that is one answer per row, all rows at once; the image is ONE row of it.",
            )
        if value.size == x.numel():  # a 28 x 28 view of the same image is the same answer
            value = value.reshape(-1)
        outputs.append(as_array("image_from_gradient(...)", value, (x.numel(),), why="one image"))
        truths.append(x.numpy().astype(np.float64))
        # the first two cases are two different 784-pixel images
        if len(outputs) == 2 and np.all(np.isfinite(value)) and np.allclose(outputs[0], outputs[1]):
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
                "some pixels are inf or nan: the row you used carries nothing (its bias "
                "gradient is 0). Does every row carry the image?"
            )
        elif np.allclose(value * truth, 1.0, atol=1e-4):
            hint = "the ratio is upside down."
        else:
            hint = ""
        return feedback(name, False, success="", hint=hint)
    return feedback(
        name,
        True,
        success="one row of one example's gradient is the whole image, for any image: "
        "sharing gradients is sharing data.",
    )


def check_auc_by_pairs(
    answer: Any, member_scores: Any = None, nonmember_scores: Any = None
) -> bool:
    """Exercise 03.2: ``auc_by_pairs(member_scores, nonmember_scores)``, the AUC by counting pairs.

    The function must match the area under the library's ``roc_curve`` to
    1e-9 on hidden cases (one small case with ties, scores with many ties,
    continuous scores) and on the notebook's scores when given. Scores used
    the wrong way round, ties mishandled, a percentage and an undivided count
    are each named.
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
            hint = "that is 1 - AUC: the scores are used the wrong way round."
        elif ties > 0 and (abs(value - wins) < 1e-9 or abs(value - wins - ties) < 1e-9):
            hint = "this case has ties: how much should a tied pair count?"
        elif abs(value / 100 - expected) < 1e-9:
            hint = "an AUC is a probability in [0, 1], not a percentage."
        elif abs(value / pairs - expected) < 1e-9:
            hint = "that is a count of pairs; the AUC is a share of them."
        else:
            hint = ""
        return feedback(name, False, success="", hint=hint)
    return feedback(
        name,
        True,
        success="the share of (member, non-member) pairs ranked right, ties half: the "
        "Mann-Whitney statistic, the same number as the area under the ROC curve.",
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
