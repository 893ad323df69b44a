"""Finite differences, Richardson extrapolation, the complex step, gradient checks.

Taylor's theorem gives, for a smooth f and a step h > 0,

    f(x + h) = f(x) + h f'(x) + h^2/2 f''(x) + h^3/6 f'''(x) + O(h^4)

so the forward difference (f(x+h) - f(x)) / h = f'(x) + h/2 f''(x) + O(h^2)
has truncation error O(h), and the central difference
(f(x+h) - f(x-h)) / (2h) = f'(x) + h^2/6 f'''(x) + O(h^4) has O(h^2): the even
terms cancel. In floating point every evaluation of f carries a relative
round-off of about eps (machine epsilon), which the division by h amplifies
to about eps |f| / h. Balancing the two terms gives the best step,
h ~ eps^(1/2) for forward and h ~ eps^(1/3) for central differences
(Nocedal & Wright, 2006, "Numerical Optimization", Sec. 8.1).

``h=None`` everywhere keeps that balance's scaling in eps and drops its
constants (such as (3 |f| / |f'''|)^(1/3), which depend on f), scaled to
the size of x:

    h_i = eps^(1 / (p + 1)) * max(|x_i|, 1)

with p the method's order (1 forward, 2 central, 4 Richardson) and eps the
machine epsilon of x's dtype (2.2e-16 for float64, 1.2e-7 for float32).
The step actually used is the representable one, (x + h) - x (Press et al.,
2007, "Numerical Recipes", 3rd ed., Sec. 5.7).

Every function takes x as a float, a NumPy array or a torch tensor and calls
f with the same kind of object; float32 inputs are differenced in float32.
For an array x, f must return a scalar and the result is the gradient, with
x's shape; ``jacobian`` handles vector-valued f. (How inputs are converted
and checked lives in ``_numdiff_inputs``; how a gradient check is scored, in
``_gradient_check``.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from fl_dp_lab._validate import check_real, fail
from fl_dp_lab.numdiff._gradient_check import GradientCheck, normwise_error, score
from fl_dp_lab.numdiff._numdiff_inputs import (
    ORDER,
    array_output,
    as_real_array,
    prepare,
    scalar_output,
    step_sizes,
    to_numpy,
)

__all__ = [
    "GradientCheck",
    "central_difference",
    "complex_step",
    "default_step",
    "fitted_order",
    "forward_difference",
    "gradient_check",
    "jacobian",
    "normwise_relative_error",
    "richardson",
]


def forward_difference(f: Callable[[Any], Any], x: Any, h: float | None = None) -> Any:
    """Forward difference (f(x + h) - f(x)) / h, truncation error O(h).

    Args:
        f: scalar-valued function of x.
        x: a float, NumPy array or torch tensor (float32 or float64).
        h: step > 0; ``None`` picks eps^(1/2) * max(|x|, 1) (see module docstring).

    Returns:
        f'(x) for a scalar x, the gradient (shape of x) for an array.

    Raises:
        ValueError: h <= 0, non-finite x, or f(x) not a single finite number.

    >>> round(forward_difference(lambda t: t**2, 3.0, h=1e-3), 6)
    6.001
    """
    return _difference(f, x, h, "forward")


def central_difference(f: Callable[[Any], Any], x: Any, h: float | None = None) -> Any:
    """Central difference (f(x + h) - f(x - h)) / (2h), truncation error h^2/6 f'''(x).

    Args:
        f: scalar-valued function of x.
        x: a float, NumPy array or torch tensor (float32 or float64).
        h: step > 0; ``None`` picks eps^(1/3) * max(|x|, 1) (see module docstring).

    Returns:
        f'(x) for a scalar x, the gradient (shape of x) for an array.

    Raises:
        ValueError: h <= 0, non-finite x, or f(x) not a single finite number.

    >>> round(central_difference(lambda t: t**3, 2.0, h=0.1), 10)
    12.01
    >>> central_difference(lambda v: (v**2).sum(), np.array([1.0, -2.0]))
    array([ 2., -4.])
    """
    return _difference(f, x, h, "central")


def richardson(f: Callable[[Any], Any], x: Any, h: float | None = None) -> Any:
    """Richardson extrapolation of the central difference, error O(h^4).

    With D(h) the central difference, D(h) = f' + c h^2 + O(h^4), so
    (4 D(h/2) - D(h)) / 3 cancels the h^2 term (Richardson, 1911;
    Burden & Faires, "Numerical Analysis", Sec. 4.2).

    Args:
        f: scalar-valued function of x.
        x: a float, NumPy array or torch tensor.
        h: the larger step > 0; ``None`` picks eps^(1/5) * max(|x|, 1).

    Returns:
        f'(x) for a scalar x, the gradient (shape of x) for an array.

    Raises:
        ValueError: as ``central_difference``; also when x + h/2 rounds to x.

    >>> round(richardson(np.exp, 0.0, h=0.01), 8)  # error h^4/480 * f'''''(x)
    1.0
    """
    return _difference(f, x, h, "richardson")


def complex_step(f: Callable[[Any], Any], x: Any, h: float = 1e-20) -> Any:
    """Complex-step derivative Im f(x + ih) / h, exact to machine precision.

    Taylor in the imaginary direction: f(x + ih) = f(x) + ih f'(x) - h^2/2 f''(x)
    - i h^3/6 f'''(x) + ..., so Im f(x + ih) / h = f'(x) - h^2/6 f'''(x): an O(h^2)
    error with no subtraction, hence no cancellation, so h can be 1e-20
    (Squire & Trapp, 1998, SIAM Review 40(1)). f must be real-analytic and
    written with operations that accept complex input (no abs, no comparisons).

    Args:
        f: scalar-valued function, called on complex input.
        x: a float, NumPy array or torch tensor (float32 uses complex64).
        h: step, at least the smallest normal number of x's dtype (1e-38 in
            float32, 2e-308 in float64): below it ih underflows and the
            derivative would silently come out as 0.

    Returns:
        f'(x) for a scalar x, the gradient (shape of x) for an array.

    Raises:
        ValueError: h too small or <= 0, non-finite x, f(x + ih) not one finite number.
        TypeError: f returned a real number for complex input (it dropped Im).

    >>> complex_step(np.sin, 0.0)
    1.0
    """
    h = check_real("h", h, low=0.0, low_open=True)
    call, x_array, wrap = prepare(f, x)
    complex_dtype = np.complex64 if x_array.dtype == np.float32 else np.complex128
    tiny = float(np.finfo(x_array.dtype).tiny)
    if h < tiny:
        fail("h", f">= {tiny:.1e} (smaller steps underflow in {complex_dtype.__name__})", h)
    grad = np.empty_like(x_array)
    for i in range(x_array.size):
        z = x_array.astype(complex_dtype)
        z.flat[i] += 1j * h
        value = scalar_output(call(z), "f(x + ih)", complex_ok=True)
        if not np.iscomplexobj(value):
            fail(
                "f(x + ih)",
                "complex (f dropped the imaginary part: no abs, comparisons or float casts)",
                value,
                TypeError,
            )
        grad.flat[i] = value.imag / h
    return wrap(grad)


def jacobian(f: Callable[[Any], Any], x: Any, h: float | None = None) -> Any:
    """Jacobian J[i, j] = d f_i / d x_j by central differences, one column per input.

    Args:
        f: function of x returning an array (any shape, the same at every call).
        x: a float, NumPy array or torch tensor.
        h: step > 0; ``None`` as in ``central_difference``.

    Returns:
        An array of shape ``f(x).shape + x.shape``.

    Raises:
        ValueError: as ``central_difference``, or f's output changes shape.

    >>> jacobian(lambda v: np.array([v[0] * v[1], v[0] + v[1]]), np.array([2.0, 3.0]))
    array([[3., 2.],
           [1., 1.]])
    """
    call, x_array, wrap = prepare(f, x)
    steps = step_sizes(x_array, h, "central")
    if np.any(x_array + steps == x_array):
        fail("h", f"large enough that x + h != x in {x_array.dtype}", h)
    out_shape = array_output(call(x_array), None).shape
    columns = np.empty(out_shape + (x_array.size,), dtype=x_array.dtype)
    for i in range(x_array.size):
        plus, minus = x_array.copy(), x_array.copy()
        plus.flat[i] += steps.flat[i]
        minus.flat[i] -= steps.flat[i]
        diff = array_output(call(plus), out_shape) - array_output(call(minus), out_shape)
        columns[..., i] = diff / (plus.flat[i] - minus.flat[i])
    return wrap(columns.reshape(out_shape + x_array.shape))


def gradient_check(
    f: Callable[[Any], Any],
    grad_f: Callable[[Any], Any] | Any,
    x: Any,
    h: float | None = None,
    *,
    tolerance: float | None = None,
) -> GradientCheck:
    """Compare a claimed gradient with central differences, coordinate by coordinate.

    The relative error of coordinate i is

        |a_i - n_i| / max(|a_i|, |n_i|, 1e-3 * s),   s = max_j max(|a_j|, |n_j|)

    with a the claimed and n the numeric gradient: relative where the
    gradient is large, measured against 1e-3 of the largest entry where it is
    tiny, since a central difference cannot resolve a coordinate much smaller
    than its own error (CS231n's gradient-check metric, with a floor). Works
    on NumPy functions and on torch functions or modules: pass x as a tensor
    and f receives tensors. Check in float64: with this per-coordinate
    metric, float32 round-off alone gives relative errors of 1e-3 to 1e-2,
    so its tolerance must be loose enough to hide bugs of that size (the
    norm-wise error, ``result.normwise_relative_error``, still separates
    them in float32). ``result.relative_errors`` holds every coordinate's error.

    Args:
        f: scalar-valued function of x.
        grad_f: a function returning the claimed gradient at x, or that gradient.
        x: a float, NumPy array or torch tensor.
        h: step > 0; ``None`` as in ``central_difference``.
        tolerance: pass threshold; ``None`` means 1e-5 for float64, 5e-2 for float32
            (a right gradient usually shows 1e-10 to 1e-7 in float64; the
            margin covers coordinates compared against the floor).

    Returns:
        A ``GradientCheck``; ``bool(result)`` says whether it passed.

    >>> gradient_check(lambda v: (v**3).sum(), lambda v: 3 * v**2, np.array([1.0, 2.0])).passed
    True
    >>> gradient_check(lambda v: (v**3).sum(), lambda v: 2 * v**2, np.array([1.0, 2.0])).passed
    False
    """
    if tolerance is None:
        tolerance = 5e-2 if np.asarray(to_numpy(x)).dtype == np.float32 else 1e-5
    tolerance = check_real("tolerance", tolerance, low=0.0, low_open=True)
    numeric = np.asarray(to_numpy(central_difference(f, x, h)), dtype=np.float64)
    claimed = grad_f(x) if callable(grad_f) else grad_f
    analytic = np.asarray(to_numpy(claimed), dtype=np.float64)
    if analytic.shape != numeric.shape:
        fail("grad_f(x)'s shape", f"the shape of x, {numeric.shape}", analytic.shape)
    if not np.all(np.isfinite(analytic)):
        fail("grad_f(x)", "finite", claimed)
    return score(analytic, numeric, tolerance=tolerance)


def normwise_relative_error(analytic: Any, numeric: Any) -> float:
    """Norm-wise relative error of two gradients: ||a - n||_2 / max(||a||_2, ||n||_2).

    One number for the whole gradient, in which each coordinate counts by its
    size, so the round-off of tiny, badly resolved coordinates does not
    dominate it as it dominates ``gradient_check``'s per-coordinate maximum
    (Higham, 2002, Sec. 1.5). A uniform bug (every entry 0.5 % too small)
    gives 0.005 in any precision; float32 round-off in notebook 02's check
    gives about 3e-5. Computed in float64; 0 when both are zero.

    Args:
        analytic, numeric: floats, arrays or tensors of the same shape.

    Returns:
        The norm-wise relative error, in [0, 2].

    Raises:
        ValueError: the shapes differ or an entry is not finite.

    >>> round(normwise_relative_error(np.array([3.0, 4.0]), np.array([3.0, 4.0]) * 0.995), 12)
    0.005
    """
    a = np.asarray(to_numpy(analytic), dtype=np.float64)
    n = np.asarray(to_numpy(numeric), dtype=np.float64)
    if a.shape != n.shape:
        fail("numeric's shape", f"analytic's shape {a.shape}", n.shape)
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(n))):
        fail("analytic and numeric", "finite", "a non-finite entry")
    return normwise_error(a, n)


def default_step(x: Any, *, method: str = "central") -> np.ndarray:
    """The step ``h=None`` picks: eps^(1/(p+1)) * max(|x|, 1), p the method's order.

    >>> float(default_step(1.0))  # eps^(1/3) in float64
    6.055454452393343e-06
    >>> round(float(default_step(np.float32(100.0))), 4)  # eps^(1/3) * 100 in float32
    0.4922
    """
    if method not in ORDER:
        fail("method", "one of " + ", ".join(repr(m) for m in ORDER), method)
    return step_sizes(as_real_array(x), None, method)


def fitted_order(h: Any, errors: Any) -> float:
    """Slope of log(error) against log(h) by least squares: the measured order p in C h^p.

    >>> round(fitted_order([1e-3, 1e-2, 1e-1], [1e-6, 1e-4, 1e-2]), 6)
    2.0
    """
    h, errors = np.asarray(h, dtype=np.float64), np.asarray(errors, dtype=np.float64)
    if h.shape != errors.shape or h.ndim != 1 or h.size < 2:
        fail("h and errors", "1-d arrays of the same length >= 2", (h.shape, errors.shape))
    if not (np.all(h > 0) and np.all(errors > 0) and np.all(np.isfinite(errors))):
        fail("h and errors", "positive and finite (they are put on a log scale)", (h, errors))
    return float(np.polyfit(np.log(h), np.log(errors), 1)[0])


def _difference(f: Callable[[Any], Any], x: Any, h: float | None, method: str) -> Any:
    call, x_array, wrap = prepare(f, x)
    steps = step_sizes(x_array, h, method)
    grad = np.empty_like(x_array)
    f_x = scalar_output(call(x_array), "f(x)") if method == "forward" else None
    smallest = steps / 2 if method == "richardson" else steps  # Richardson also uses h/2
    if np.any(x_array + smallest == x_array):
        fail("h", f"large enough that x + h != x in {x_array.dtype}", h)
    for i in range(x_array.size):
        grad.flat[i] = _one_coordinate(call, x_array, i, steps.flat[i], method, f_x)
    return wrap(grad)


def _one_coordinate(call, x, i, h, method, f_x):
    def shifted(step):
        z = x.copy()
        z.flat[i] += step
        return z

    if method == "forward":
        plus = shifted(h)
        return (scalar_output(call(plus), "f(x + h)") - f_x) / (plus.flat[i] - x.flat[i])
    if method == "central":
        plus, minus = shifted(h), shifted(-h)
        diff = scalar_output(call(plus), "f(x + h)") - scalar_output(call(minus), "f(x - h)")
        return diff / (plus.flat[i] - minus.flat[i])
    coarse = _one_coordinate(call, x, i, h, "central", None)
    fine = _one_coordinate(call, x, i, h / 2, "central", None)
    return (4 * fine - coarse) / 3
