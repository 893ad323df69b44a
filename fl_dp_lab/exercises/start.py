"""Exercises of notebook 00 (start here)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fl_dp_lab.exercises._core import as_number, feedback, is_unanswered, report_unanswered

__all__ = ["check_first_difference", "check_slope_function"]


def check_first_difference(answer: Any) -> bool:
    """Exercise 00.1: the central difference of f(x) = x**3 at x = 2 with h = 0.1.

    The exact value is (2.1**3 - 1.9**3) / 0.2 = 12.01: the true slope 12
    plus h**2 = 0.01, the error term notebook 01 explains. Accepted to 1e-4, so
    a float32 computation passes; the forward (12.61) and backward (11.41)
    differences and a division by h instead of 2h (24.02) get their own hints.
    """
    name = "Exercise 00.1"
    if is_unanswered(answer):
        return report_unanswered(name)
    value = as_number("answer", answer)
    expected = (2.1**3 - 1.9**3) / 0.2
    tolerance = 1e-4  # float32 rounds 12.01 at about 1e-6; every slip below is >= 0.01 away
    if abs(value - 12.0) < tolerance:
        return feedback(
            name,
            False,
            success="",
            hint="12 is the exact derivative 3x**2; the question asks for the central "
            "difference with h = 0.1, which is a little off. Compute (f(x+h) - f(x-h)) / (2*h).",
        )
    for wrong, hint in (
        ((2.1**3 - 2**3) / 0.1, "that is the forward difference (f(x+h) - f(x)) / h."),
        ((2**3 - 1.9**3) / 0.1, "that is the backward difference (f(x) - f(x-h)) / h."),
        (expected * 2, "off by a factor 2: x+h and x-h are 2*h apart, so divide by 2*h."),
    ):
        if abs(value - wrong) < tolerance:
            return feedback(
                name, False, success="", hint=f"{hint} Compute (f(x+h) - f(x-h)) / (2*h)."
            )
    return feedback(
        name,
        abs(value - expected) < tolerance,
        success=f"{value:.6f} = 12 + h**2: the central difference is off by h**2 for a cubic. "
        "Notebook 01 shows where that h**2 comes from.",
        hint="compute (f(x+h) - f(x-h)) / (2*h) with f(x) = x**3, x = 2, h = 0.1.",
    )


def check_slope_function(slope: Any) -> bool:
    """Exercise 00.2: a function ``slope(f, x, h)`` returning the central difference.

    Tested on sin at 0.3 and on x**2 at -1 against the exact formula, so a
    forward difference or a missing factor 2 is caught.
    """
    import math

    name = "Exercise 00.2"
    if is_unanswered(slope):
        return report_unanswered(name)
    if not isinstance(slope, Callable):
        raise TypeError(f"slope must be a function slope(f, x, h), got {slope!r}")
    cases = [(math.sin, 0.3, 1e-3), (lambda t: t * t, -1.0, 0.5)]
    ok = True
    for f, x, h in cases:
        expected = (f(x + h) - f(x - h)) / (2 * h)
        got = as_number("slope(f, x, h)", slope(f, x, h))
        ok = ok and abs(got - expected) <= 1e-12 * max(1.0, abs(expected))
    return feedback(
        name,
        ok,
        success="this one line is where the whole course starts.",
        hint="step both ways: f(x + h) and f(x - h), and divide by the distance between them, 2*h.",
    )
