"""Exercises of notebook 01 (central differences)."""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any

import numpy as np

from fl_dp_lab._validate import fail
from fl_dp_lab.exercises._core import (
    as_array,
    as_number,
    feedback,
    graded,
    hints,
    is_unanswered,
    report_unanswered,
)
from fl_dp_lab.numdiff import central_difference

__all__ = ["check_numerical_gradient", "check_optimal_step"]

hints(
    "Exercise 01.1",
    idea="a gradient is one partial derivative per coordinate: move one coordinate at a time "
    "and leave the others where they are.",
    step="loop over np.ndindex(x.shape); for each index, evaluate f on two copies of x, one with "
    "that coordinate moved up by h and one moved down by h.",
    solution="grad = np.empty_like(x); for i in np.ndindex(x.shape): up, down = x.copy(), "
    "x.copy(); up[i] += h; down[i] -= h; grad[i] = (f(up) - f(down)) / (2 * h). Return grad.",
)
hints(
    "Exercise 01.2",
    idea="a smaller h lowers the truncation error but raises the round-off error; the best h "
    "makes the two about equal.",
    step="write the total error as h^2/6 (truncation, third derivative of order 1) plus eps/h "
    "(round-off, |f| of order 1), and find where its derivative in h is zero.",
    solution="def h_best(eps): return (3 * eps) ** (1 / 3)",
)


@graded("Exercise 01.1")
def check_numerical_gradient(numerical_gradient: Any) -> bool:
    """Exercise 01.1: ``numerical_gradient(f, x, h)``, the central-difference gradient.

    Called on two functions of arrays of two shapes the learner does not see
    and compared with the library's ``central_difference`` (its shape and
    values); x must be left unchanged. A one-sided difference, a wrong
    divisor and an x modified in place are each named.
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
        central = np.asarray(central_difference(f, x, h))
        if np.allclose(got, _reference(f, x, h, central=False), rtol=1e-9, atol=1e-12):
            return feedback(
                name,
                False,
                success="",
                hint="that is the forward difference: it steps one way only.",
            )
        if np.allclose(got, 2 * central, rtol=1e-9, atol=1e-12):
            return feedback(
                name,
                False,
                success="",
                hint="off by a factor 2: how far apart are the two points you evaluate?",
            )
        if not np.allclose(got, central, rtol=1e-9, atol=1e-12):
            return feedback(
                name,
                False,
                success="",
                hint="",
            )
    return feedback(
        name,
        True,
        success="one loop of 2 evaluations per coordinate: 2n calls of f for n parameters. "
        "That is why training uses backpropagation and keeps differences for checking.",
    )


def check_optimal_step(answer: Any) -> bool:
    """Exercise 01.2: the best central-difference step as a function ``h_best(eps)``.

    Called with float32's and float64's machine epsilon, the step must land
    within a factor 4 of the step that balances truncation against round-off
    at both, so a number that fits one precision does not pass. Wrong powers
    of eps are named from how the step changes between the two precisions; a
    plain number (such as one copied from the text or the table) gets its own
    hint.
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
        )
    power = float(np.log(h64 / h32) / np.log(eps64 / eps32))  # h ~ c eps^power
    named = (
        (0.0, "your h does not change with eps: a hard-coded number (like the text's 1e-2 or "
              "the table's 8e-3) is right for one precision only. Make h a power of eps."),
        (1 / 4, "that is eps^(1/4): it shrinks too slowly with eps (in float64 it is 20x too "
                "large)."),
        (1 / 2, "that scales as eps^(1/2) (10 sqrt(eps) too), the forward difference's step; "
                "the central difference's truncation error is O(h^2), so the balance moves."),
        (2 / 3, "eps^(2/3) is the size of the best error, not the step that reaches it; the "
                "step balances h^2/6 against eps/h."),
        (1 / 3, "the right power of eps, but the constant in front is off by more than 4x: "
                "with |f| and its third derivative of order 1, so is the constant."),
    )  # fmt: skip
    for exponent, hint in named:
        if abs(power - exponent) < 0.04:
            return feedback(name, False, success="", hint=hint)
    return feedback(name, False, success="")


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
