"""Exercises of notebook 00 (start here)."""

from __future__ import annotations

from typing import Any

from fl_dp_lab.exercises._core import as_number, feedback, hints, is_unanswered, report_unanswered
from fl_dp_lab.numdiff import central_difference

__all__ = ["check_first_difference", "check_slope_function"]

hints(
    "Exercise 00.1",
    idea="step a little to each side of x and see how much f changes per unit of x.",
    step="evaluate f at x + h and at x - h; the two points are 2h apart.",
    solution="(f(x + h) - f(x - h)) / (2 * h) with f(x) = x**3, x = 2, h = 0.1.",
)
hints(
    "Exercise 00.2",
    idea="the function does for any f, x and h what you did by hand in 00.1.",
    step="call f twice, once on each side of x, and divide the change by the distance.",
    solution="def slope(f, x, h): return (f(x + h) - f(x - h)) / (2 * h)",
)


def check_first_difference(answer: Any) -> bool:
    """Exercise 00.1: the central difference of f(x) = x**3 at x = 2 with h = 0.1.

    Compared with the library's ``central_difference``, to 1e-4 (a float32
    computation passes). The exact derivative, the forward and backward
    differences and a division by h instead of 2h are each named.
    """
    name = "Exercise 00.1"
    if is_unanswered(answer):
        return report_unanswered(name)
    value = as_number("answer", answer)

    def f(t: float) -> float:
        return t**3

    x, h = 2.0, 0.1
    expected = float(central_difference(f, x, h))
    tolerance = 1e-4  # float32 rounds the answer at about 1e-6; every slip below is >= 0.01 away
    if abs(value - 3 * x**2) < tolerance:
        return feedback(
            name,
            False,
            success="",
            hint="that is the exact derivative; the question asks for the central "
            "difference with h = 0.1, which is a little off it.",
        )
    for wrong, hint in (
        ((f(x + h) - f(x)) / h, "that is the forward difference: it steps to one side only."),
        ((f(x) - f(x - h)) / h, "that is the backward difference: it steps to one side only."),
        (expected * 2, "off by a factor 2: how far apart are the two points you evaluate?"),
    ):
        if abs(value - wrong) < tolerance:
            return feedback(name, False, success="", hint=hint)
    return feedback(
        name,
        abs(value - expected) < tolerance,
        success=f"{value:.6f} is the true slope plus h**2: the central difference is off by "
        "h**2 for a cubic. Notebook 01 shows where that h**2 comes from.",
    )


def check_slope_function(slope: Any) -> bool:
    """Exercise 00.2: a function ``slope(f, x, h)`` returning the central difference.

    Called on two functions the learner does not see, and compared with the
    library's ``central_difference``, so one-sided differences and a wrong
    divisor fail.
    """
    import math

    name = "Exercise 00.2"
    if is_unanswered(slope):
        return report_unanswered(name)
    if not callable(slope):
        raise TypeError(f"slope must be a function slope(f, x, h), got {slope!r}")
    cases = [(math.sin, 0.3, 1e-3), (lambda t: t * t, -1.0, 0.5)]
    ok = True
    for f, x, h in cases:
        expected = float(central_difference(f, x, h))
        got = as_number("slope(f, x, h)", slope(f, x, h))
        ok = ok and abs(got - expected) <= 1e-12 * max(1.0, abs(expected))
    return feedback(
        name,
        ok,
        success="this one line is where the whole course starts.",
    )
