"""How ``fl_dp_lab.numdiff.gradient_check`` scores a claimed gradient against a numeric one.

The relative error of coordinate i is

    |a_i - n_i| / max(|a_i|, |n_i|, 1e-3 * s),   s = max_j max(|a_j|, |n_j|)

with a the claimed and n the numeric gradient: relative where the gradient is
large, measured against 1e-3 of the largest entry where it is tiny, since a
central difference cannot resolve a coordinate much smaller than its own
error (the metric of CS231n's gradient-check notes, with a floor). The
largest of these is dominated by the worst-resolved coordinate, so in
float32 it stays near 1e-3 to 1e-2 even for a right gradient. The
norm-wise relative error

    ||a - n||_2 / max(||a||_2, ||n||_2)

weighs every coordinate by its size, so tiny badly resolved coordinates do
not dominate it: it separates a right float32 gradient (~3e-5) from one
0.5 % off (~5e-3), which the per-coordinate maximum cannot (Higham, 2002,
"Accuracy and Stability of Numerical Algorithms", 2nd ed., Sec. 1.5 and
7.1, on norm-wise vs component-wise errors). Import ``GradientCheck`` and
``gradient_check`` from ``fl_dp_lab.numdiff``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["GradientCheck", "normwise_error", "relative_errors", "score"]


@dataclass(frozen=True)
class GradientCheck:
    """The outcome of ``gradient_check``.

    Attributes:
        max_relative_error: the largest per-coordinate relative error.
        tolerance: the threshold it was compared with.
        worst_index: the coordinate where it occurs.
        analytic: the gradient under test, as a NumPy array.
        numeric: the central-difference gradient, as a NumPy array.
    """

    max_relative_error: float
    tolerance: float
    worst_index: tuple[int, ...]
    analytic: np.ndarray
    numeric: np.ndarray

    @property
    def relative_errors(self) -> np.ndarray:
        """The relative error of every coordinate (shape of x); the largest is reported."""
        return relative_errors(self.analytic, self.numeric)

    @property
    def normwise_relative_error(self) -> float:
        """||analytic - numeric|| / max(||analytic||, ||numeric||): one number, all coordinates."""
        return normwise_error(self.analytic, self.numeric)

    @property
    def passed(self) -> bool:
        """True when ``max_relative_error <= tolerance``."""
        return self.max_relative_error <= self.tolerance

    def __bool__(self) -> bool:
        return self.passed

    def __repr__(self) -> str:
        verdict = "passed" if self.passed else "FAILED"
        return (
            f"GradientCheck({verdict}: max relative error {self.max_relative_error:.2e} "
            f"at {self.worst_index}, tolerance {self.tolerance:.0e})"
        )


def relative_errors(analytic: np.ndarray, numeric: np.ndarray) -> np.ndarray:
    """Per-coordinate relative error with the floor 1e-3 * s (module docstring).

    The third coordinate is tiny, so it is measured against 1e-3 * 1.01:

    >>> relative_errors(np.array([1.0, 0.0, 2e-6]), np.array([1.01, 0.0, 1e-6])).round(6)
    array([0.009901, 0.      , 0.00099 ])
    """
    scale = np.maximum(np.abs(analytic), np.abs(numeric))
    floor = max(1e-3 * float(scale.max(initial=0.0)), np.finfo(np.float64).tiny)
    return np.abs(analytic - numeric) / np.maximum(scale, floor)


def normwise_error(analytic: np.ndarray, numeric: np.ndarray) -> float:
    """Norm-wise relative error ||a - n||_2 / max(||a||_2, ||n||_2); 0 when both are 0.

    >>> round(normwise_error(np.array([1.0, 0.0, 2e-6]), np.array([1.01, 0.0, 1e-6])), 6)
    0.009901
    """
    scale = max(float(np.linalg.norm(analytic)), float(np.linalg.norm(numeric)))
    return float(np.linalg.norm(analytic - numeric)) / scale if scale > 0 else 0.0


def score(analytic: np.ndarray, numeric: np.ndarray, *, tolerance: float) -> GradientCheck:
    """The ``GradientCheck`` of two float64 gradients of the same shape."""
    errors = relative_errors(analytic, numeric)
    worst = np.unravel_index(int(np.argmax(errors)), errors.shape) if errors.size else ()
    return GradientCheck(
        max_relative_error=float(errors.max(initial=0.0)),
        tolerance=tolerance,
        worst_index=tuple(int(i) for i in worst),
        analytic=analytic,
        numeric=numeric,
    )
