"""How ``fl_dp_lab.numdiff`` takes its inputs: floats, arrays or tensors in, the same out.

The difference formulas in ``numdiff`` work on one real NumPy array. This
module turns whatever the learner passed (a Python float, a NumPy scalar or
array, a torch tensor) into that array, calls f with the same kind of object
it was given, wraps the result back, and checks every value that crosses the
boundary: x finite and real, h > 0, f's output a single finite number (or an
array of a fixed shape for ``jacobian``). Import the public functions from
``fl_dp_lab.numdiff``; nothing here is part of the public API.
"""

from __future__ import annotations

import numbers
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from fl_dp_lab._validate import check_real, fail

__all__ = [
    "ORDER",
    "array_output",
    "as_real_array",
    "prepare",
    "scalar_output",
    "step_sizes",
    "to_numpy",
]

#: Truncation order p of each method: its error is C h^p.
ORDER = {"forward": 1, "central": 2, "richardson": 4}


def prepare(f: Callable[[Any], Any], x: Any) -> tuple[Callable, np.ndarray, Callable]:
    """Return (f called on NumPy arrays, x as a real NumPy array, result wrapper)."""
    if not callable(f):
        fail("f", "a function", f, TypeError)
    if is_tensor(x):
        torch = sys.modules["torch"]
        x_array = as_real_array(x.detach().cpu().numpy())
        return (
            lambda z: f(torch.from_numpy(np.ascontiguousarray(z))),
            x_array,
            lambda g: torch.from_numpy(np.ascontiguousarray(g)),
        )
    x_array = as_real_array(x)
    if isinstance(x, np.ndarray):
        return f, x_array, lambda g: g
    # A Python or NumPy scalar: call f with scalars, return a scalar of the same kind.
    kind = x_array.dtype.type if isinstance(x, np.generic) else float
    return (
        (lambda z: f(z.reshape(())[()])),
        x_array,
        (lambda g: kind(g.reshape(())[()]) if g.ndim == 0 else g),
    )


def as_real_array(x: Any) -> np.ndarray:
    """x as a finite float32 or float64 array (integers become float64)."""
    if isinstance(x, (bool, np.bool_)):
        fail("x", "a real number or array", x, TypeError)
    if isinstance(x, numbers.Real) and not isinstance(x, np.floating):
        x = float(x)
    array = np.array(x)
    if array.dtype.kind in "iu":
        array = array.astype(np.float64)
    if array.dtype not in (np.float32, np.float64):
        fail("x", "a real float32 or float64 number or array", x, TypeError)
    if not np.all(np.isfinite(array)):
        fail("x", "finite (no nan or inf)", x)
    return array


def step_sizes(x: np.ndarray, h: float | None, method: str) -> np.ndarray:
    """One step per coordinate: h itself, or eps^(1/(p+1)) * max(|x_i|, 1) for ``None``."""
    if h is None:
        eps = np.finfo(x.dtype).eps
        return (eps ** (1.0 / (ORDER[method] + 1)) * np.maximum(np.abs(x), 1)).astype(x.dtype)
    h = check_real("h", h, low=0.0, low_open=True)
    return np.full(x.shape, h, dtype=x.dtype)


def scalar_output(value: Any, name: str, complex_ok: bool = False) -> Any:
    """f's value as one finite number; refuses arrays (use jacobian) and complex values."""
    array = np.asarray(to_numpy(value))
    if array.size != 1:
        fail(name, "a single number (f must be scalar-valued; use jacobian otherwise)", value)
    number = array.reshape(())[()]
    if not complex_ok and np.iscomplexobj(array):
        fail(name, "real", value, TypeError)
    if not np.isfinite(number):
        fail(name, "finite", value)
    return number


def array_output(value: Any, shape: tuple[int, ...] | None) -> np.ndarray:
    """f's value as a finite real array, of ``shape`` when given."""
    array = np.asarray(to_numpy(value))
    if shape is not None and array.shape != shape:
        fail("f's output shape", f"the same at every call, {shape}", array.shape)
    if np.iscomplexobj(array):
        fail("f(x)", "real", value, TypeError)
    if not np.all(np.isfinite(array)):
        fail("f(x)", "finite", value)
    return array


def to_numpy(value: Any) -> Any:
    """A tensor as a NumPy array (detached, on the CPU); anything else unchanged."""
    if is_tensor(value):
        return value.detach().cpu().numpy()
    return value


def is_tensor(value: Any) -> bool:
    """True for a torch tensor, without importing torch (numdiff works without it)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.Tensor)
