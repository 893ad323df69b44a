"""Exercises of notebooks 01-02: finite differences, gradients, per-example gradients."""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from fl_dp_lab._validate import fail
from fl_dp_lab.exercises._core import (
    as_array,
    as_number,
    feedback,
    graded,
    is_unanswered,
    report_unanswered,
)

__all__ = [
    "check_numerical_gradient",
    "check_optimal_step",
    "check_per_example_norms",
    "check_softmax_regression_gradient",
]


@graded("Exercise 01.1")
def check_numerical_gradient(numerical_gradient: Any) -> bool:
    """Exercise 01.1: ``numerical_gradient(f, x, h)``, the central-difference gradient.

    For a scalar function f of an array x, coordinate i of the answer is
    (f(x + h e_i) - f(x - h e_i)) / (2h), with e_i the i-th unit vector; the
    result has x's shape and x is left unchanged. Tested on two functions
    against the exact central difference, so a forward difference, a missing
    factor 2 or an x modified in place is caught.
    """
    name = "Exercise 01.1"
    if is_unanswered(numerical_gradient):
        return report_unanswered(name)
    if not callable(numerical_gradient):
        fail(
            "numerical_gradient",
            "a function numerical_gradient(f, x, h)",
            numerical_gradient,
            TypeError,
        )
    cases = [
        (lambda v: float(np.sum(np.sin(v) * v)), np.array([0.3, -1.2, 2.0]), 1e-4),
        (lambda v: float(np.prod(v) + v[0, 1] ** 3), np.array([[1.0, 2.0], [0.5, -1.0]]), 1e-3),
    ]
    for f, x, h in cases:
        before = x.copy()
        got = as_array(
            "numerical_gradient(f, x, h)",
            numerical_gradient(f, x, h),
            x.shape,
            why="one partial derivative per coordinate of x, each from moving that "
            "coordinate alone",
        )
        # x[i] += h; ...; x[i] -= 2 * h; ...; x[i] += h leaves a rounding residue, not a change
        if not np.allclose(x, before, rtol=0.0, atol=1e-12):
            return feedback(
                name,
                False,
                success="",
                hint="your function changed x: perturb a copy "
                "(z = x.copy()), or save the old value and put it back "
                "(old = x[i]; ...; x[i] = old).",
            )
        central = _reference(f, x, h, central=True)
        if np.allclose(got, _reference(f, x, h, central=False), rtol=1e-9, atol=1e-12):
            return feedback(
                name,
                False,
                success="",
                hint="that is the forward difference "
                "(f(x + h e_i) - f(x)) / h; step both ways and divide by 2h.",
            )
        if np.allclose(got, 2 * central, rtol=1e-9, atol=1e-12):
            return feedback(
                name,
                False,
                success="",
                hint="off by a factor 2: the two points x + h e_i and x - h e_i are 2h apart.",
            )
        if not np.allclose(got, central, rtol=1e-9, atol=1e-12):
            return feedback(
                name,
                False,
                success="",
                hint="coordinate i needs f evaluated at x with "
                "only x[i] moved by +h and by -h; loop over np.ndindex(x.shape).",
            )
    return feedback(
        name,
        True,
        success="one loop of 2 evaluations per coordinate: 2n calls of f for n parameters. "
        "That is why training uses backpropagation and keeps differences for checking.",
        hint="",
    )


def check_optimal_step(answer: Any) -> bool:
    """Exercise 01.2: the best central-difference step as a function of machine epsilon.

    Balancing truncation h^2/6 |f'''| with round-off eps |f| / h (|f| and
    |f'''| of order 1) gives h*(eps) = (3 eps)^(1/3) ~ eps^(1/3). The answer
    is a function ``h_best(eps)``; it is called with float32's eps (1.2e-7,
    h* = 4.9e-3) and float64's (2.2e-16, h* = 6.1e-6) and must land within a
    factor 4 of eps^(1/3) at both, so a number that happens to fit one
    precision does not pass. Wrong powers of eps are named from the slope
    log(h64 / h32) / log(eps64 / eps32): 0 (a hard-coded number such as the
    text's 1e-2 or the table's 8e-3), 1/4, 1/2 (forward difference, e.g.
    10 sqrt(eps)) and 2/3 (the best error, not the step). A plain number is
    a wrong answer with its own hint.
    """
    name = "Exercise 01.2"
    if is_unanswered(answer):
        return report_unanswered(name)
    if isinstance(answer, numbers.Real | np.ndarray) and not callable(answer):
        value = as_number("h_best", answer)
        copied = {1e-2: "the text's 1e-2", 8e-3: "the table's 8e-3"}
        source = next((v for k, v in copied.items() if abs(value / k - 1) < 0.05), "a number")
        return feedback(
            name,
            False,
            success="",
            hint=f"{source} is one precision's step, hard-coded: write h as a function of eps, "
            "def h_best(eps): return ..., so that it also gives float64's step.",
        )
    if not callable(answer):
        fail("h_best", "a function h_best(eps)", answer, TypeError)
    eps32, eps64 = float(np.finfo(np.float32).eps), float(np.finfo(np.float64).eps)
    h32 = as_number("h_best(float32 eps)", answer(eps32))
    h64 = as_number("h_best(float64 eps)", answer(eps64))
    if not (h32 > 0 and h64 > 0 and np.isfinite(h32) and np.isfinite(h64)):
        return feedback(name, False, success="", hint="a step size is a positive number.")
    best32, best64 = eps32 ** (1 / 3), eps64 ** (1 / 3)
    if best32 / 4 <= h32 <= 4 * best32 and best64 / 4 <= h64 <= 4 * best64:
        return feedback(
            name,
            True,
            success=f"h* ~ eps^(1/3): {h32:.1e} in float32, {h64:.1e} in float64 ({h32 / h64:.0f}x "
            "larger). This is why float32 gradient checks need a big h and stay noisy.",
            hint="",
        )
    power = float(np.log(h64 / h32) / np.log(eps64 / eps32))  # h ~ c eps^power
    named = (
        (0.0, "your h does not change with eps: a hard-coded number (like the text's 1e-2 or "
              "the table's 8e-3) is right for one precision only. Make h a power of eps."),
        (1 / 4, "that is eps^(1/4): it shrinks too slowly with eps (in float64 it is 20x too "
                "large). Set the derivative of h^2/6 + eps/h to zero: h^3 ~ eps."),
        (1 / 2, "that scales as eps^(1/2) (10 sqrt(eps) too), the forward difference's step; "
                "the central difference's truncation error is O(h^2), so the balance moves."),
        (2 / 3, "eps^(2/3) is the size of the best error, not the step that reaches it; the "
                "step balances h^2/6 against eps/h."),
        (1 / 3, "the right power of eps, eps^(1/3), but the constant in front is off by more "
                "than 4x: with |f| and |f'''| of order 1, h = (3 eps)^(1/3)."),
    )  # fmt: skip
    for exponent, hint in named:
        if abs(power - exponent) < 0.04:
            return feedback(name, False, success="", hint=hint)
    return feedback(
        name,
        False,
        success="",
        hint="minimise h^2/6 + eps/h: set its derivative to zero and solve for h in terms of eps.",
    )


@graded("Exercise 02.1")
def check_softmax_regression_gradient(gradient: Any) -> bool:
    """Exercise 02.1: ``gradient(weight, bias, x, y)`` of the mean softmax cross-entropy.

    With logits z = x W^T + b, probabilities P = softmax(z) and one-hot labels
    Y, the mean loss L = -1/n sum_i log P[i, y_i] has
    dL/dW = (P - Y)^T x / n (shape of W) and dL/db = sum_i (P - Y)_i / n.
    Checked against torch autograd in float64 on random data.
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
    nn.functional.cross_entropy(x @ w.T + b, y).backward()
    answer = gradient(
        weight.numpy().copy(), bias.numpy().copy(), x.numpy().copy(), y.numpy().copy()
    )
    if not isinstance(answer, tuple | list) or len(answer) != 2:
        fail("gradient(...)", "a pair (grad_weight, grad_bias)", answer, TypeError)
    why = "a gradient has the shape of its parameter (weight is classes x features)"
    g_w = as_array("grad_weight", answer[0], tuple(weight.shape), why=why)
    g_b = as_array("grad_bias", answer[1], tuple(bias.shape), why=why)
    true_w, true_b = w.grad.numpy(), b.grad.numpy()
    if np.allclose(g_w, len(x) * true_w) and np.allclose(g_b, len(x) * true_b):
        return feedback(
            name, False, success="", hint="the loss is the mean over the batch: divide by n."
        )
    if np.allclose(g_w, -true_w) and np.allclose(g_b, -true_b):
        return feedback(
            name, False, success="", hint="the sign is flipped: it is P - Y, not Y - P."
        )
    # float32 answers (torch's default) are right to about 1e-7 relative
    ok = np.allclose(g_w, true_w, rtol=1e-5, atol=1e-7) and np.allclose(
        g_b, true_b, rtol=1e-5, atol=1e-7
    )
    return feedback(
        name,
        ok,
        success="(P - Y)^T x / n: the error of each prediction times its input. "
        "Every example contributes its own term, which is what DP-SGD will clip.",
        hint="compute P = softmax(x @ weight.T + bias) row by row, subtract the one-hot labels, "
        "then grad_weight = (P - Y).T @ x / n and grad_bias = (P - Y).mean(0).",
    )


@graded("Exercise 02.2")
def check_per_example_norms(norms: Any, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> bool:
    """Exercise 02.2: the L2 norm of each example's gradient, all parameters together.

    For example i, g_i = grad of cross_entropy(model(x[i:i+1]), y[i:i+1]) with
    respect to every parameter, and the answer is ||g_i||_2 (one number per
    example, the square root of the sum of squares over all parameters).
    Checked against a plain loop with autograd.
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
        return feedback(
            name, False, success="", hint="those are squared norms: take the square root."
        )
    if any(np.allclose(got, np.sqrt(squares[:, j]), rtol=1e-4) for j in range(squares.shape[1])):
        return feedback(
            name,
            False,
            success="",
            hint="that is one parameter tensor only; "
            "sum the squares over all of them (weights and biases) first.",
        )
    linear = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if len(linear) == 1 and len(list(model.parameters())) == 2:  # logistic regression
        hint = (
            "example i's error is softmax(model(x))[i] - one_hot(y[i]) (probabilities, not "
            "logits, and one example's loss, not the batch mean), and its norm is "
            "||error_i|| * sqrt(||x_i||^2 + 1); compute all rows at once under torch.no_grad()."
        )
    else:
        hint = (
            "for each i: loss of example i alone, torch.autograd.grad over "
            "model.parameters(), then sqrt(sum of g.pow(2).sum() over the parameters)."
        )
    return feedback(
        name,
        np.allclose(got, truth, rtol=1e-4, atol=1e-7),
        success=f"norms from {truth.min():.2g} to {truth.max():.2g}: one example can move the "
        "model far more than another. Clipping (notebook 06) caps exactly these numbers.",
        hint=hint,
    )


def _reference(
    f: Callable[[np.ndarray], float], x: np.ndarray, h: float, *, central: bool
) -> np.ndarray:
    grad = np.empty_like(x)
    for index in np.ndindex(x.shape):
        plus, minus = x.copy(), x.copy()
        plus[index] += h
        minus[index] -= h if central else 0.0
        grad[index] = (f(plus) - f(minus)) / ((2 * h) if central else h)
    return grad
