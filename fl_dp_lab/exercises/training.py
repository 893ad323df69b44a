"""Exercises of notebook 02 (gradients and SGD)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from fl_dp_lab._validate import fail
from fl_dp_lab.exercises._core import (
    as_array,
    feedback,
    graded,
    hints,
    is_unanswered,
    report_unanswered,
)

__all__ = ["check_per_example_norms", "check_softmax_regression_gradient"]

hints(
    "Exercise 02.1",
    idea="differentiate the loss of one example through the softmax: the gradient of "
    "cross-entropy with respect to the logits is strikingly simple.",
    step="with P the softmax probabilities and Y the one-hot labels, the gradient with respect "
    "to the logits z is (P - Y) / n; chain it through z = x W^T + b.",
    solution="P = softmax(x @ weight.T + bias) (row by row); Y = one-hot(y); "
    "return (P - Y).T @ x / n, (P - Y).mean(0).",
)
hints(
    "Exercise 02.2",
    idea="each example gets its own backward pass (or its own closed-form gradient), and its "
    "norm runs over every parameter tensor at once.",
    step="for each i: the loss of example i alone, torch.autograd.grad over "
    "model.parameters(), then the squares of every gradient tensor added up.",
    solution="norms = [torch.sqrt(sum(g.pow(2).sum() for g in torch.autograd.grad("
    "F.cross_entropy(model(x[i:i+1]), y[i:i+1]), list(model.parameters())))) for i in "
    "range(len(x))]. For logistic regression, at once: ||softmax(model(x))_i - "
    "one_hot(y_i)|| * sqrt(||x_i||^2 + 1).",
)


@graded("Exercise 02.1")
def check_softmax_regression_gradient(gradient: Any) -> bool:
    """Exercise 02.1: ``gradient(weight, bias, x, y)`` of the mean softmax cross-entropy.

    Returns the pair (gradient for the weight, gradient for the bias), each
    shaped like its parameter. Checked against torch autograd in float64 on
    random data the learner does not see; a sum instead of a mean and a
    flipped sign are named.
    """
    name = "Exercise 02.1"
    if is_unanswered(gradient):
        return report_unanswered(name)
    if not callable(gradient):
        fail("gradient", "a function gradient(weight, bias, x, y)", gradient, TypeError)
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(4, 6, dtype=torch.float64, generator=generator)
    bias = torch.randn(4, dtype=torch.float64, generator=generator)
    x = torch.randn(9, 6, dtype=torch.float64, generator=generator)
    y = torch.randint(0, 4, (9,), generator=generator)
    w, b = weight.clone().requires_grad_(True), bias.clone().requires_grad_(True)
    grad_w, grad_b = torch.autograd.grad(nn.functional.cross_entropy(x @ w.T + b, y), (w, b))
    answer = gradient(
        weight.numpy().copy(), bias.numpy().copy(), x.numpy().copy(), y.numpy().copy()
    )
    if not isinstance(answer, tuple | list) or len(answer) != 2:
        fail("gradient(...)", "a pair (grad_weight, grad_bias)", answer, TypeError)
    why = "a gradient has the shape of its parameter (weight is classes x features)"
    g_w = as_array("grad_weight", answer[0], tuple(weight.shape), why=why)
    g_b = as_array("grad_bias", answer[1], tuple(bias.shape), why=why)
    true_w, true_b = grad_w.numpy(), grad_b.numpy()
    if np.allclose(g_w, len(x) * true_w) and np.allclose(g_b, len(x) * true_b):
        return feedback(
            name,
            False,
            success="",
            hint="that is n times too large: the loss is the mean over the batch, not the sum.",
        )
    if np.allclose(g_w, -true_w) and np.allclose(g_b, -true_b):
        return feedback(name, False, success="", hint="the sign is flipped.")
    # float32 answers (torch's default) are right to about 1e-7 relative
    ok = np.allclose(g_w, true_w, rtol=1e-5, atol=1e-7) and np.allclose(
        g_b, true_b, rtol=1e-5, atol=1e-7
    )
    return feedback(
        name,
        ok,
        success="the error of each prediction times its input, averaged. "
        "Every example contributes its own term, which is what DP-SGD will clip.",
    )


@graded("Exercise 02.2")
def check_per_example_norms(norms: Any, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> bool:
    """Exercise 02.2: the L2 norm of each example's gradient, all parameters together.

    One number per example, checked against a loop of single-example
    backward passes on the given model and data. Squared norms and the norm
    of one parameter tensor only are named.
    """
    name = "Exercise 02.2"
    if is_unanswered(norms):
        return report_unanswered(name)
    got = as_array("norms", norms, (len(x),), why="one number per example")
    per_parameter = []
    for i in range(len(x)):
        loss = nn.functional.cross_entropy(model(x[i : i + 1]), y[i : i + 1])
        grads = torch.autograd.grad(loss, [p for p in model.parameters() if p.requires_grad])
        per_parameter.append([float(g.pow(2).sum()) for g in grads])
    squares = np.array(per_parameter)
    truth = np.sqrt(squares.sum(1))
    if np.allclose(got, truth**2, rtol=1e-4):
        return feedback(name, False, success="", hint="those are squared norms.")
    if any(np.allclose(got, np.sqrt(squares[:, j]), rtol=1e-4) for j in range(squares.shape[1])):
        return feedback(
            name,
            False,
            success="",
            hint="that is one parameter tensor only; the norm runs over all of them "
            "(weights and biases).",
        )
    return feedback(
        name,
        np.allclose(got, truth, rtol=1e-4, atol=1e-7),
        success=f"norms from {truth.min():.2g} to {truth.max():.2g}: one example can move the "
        "model far more than another. Clipping (notebook 06) caps exactly these numbers.",
    )
