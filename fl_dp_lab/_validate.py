"""Argument checks shared by every public function of ``fl_dp_lab``.

One message pattern everywhere, so a learner always reads the same shape of
error: ``"<name> must be <what is allowed>, got <value!r>"``. Public functions
call these once, at the top; private helpers trust their callers.
"""

from __future__ import annotations

import math
import numbers
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

if TYPE_CHECKING:  # torch only for the annotation: the NumPy-only modules import this file
    import torch

__all__ = [
    "check_bool",
    "check_choice",
    "check_finite_norms",
    "check_float_tensor",
    "check_generator",
    "check_int",
    "check_noise_survives_rounding",
    "check_real",
    "fail",
]


def fail(name: str, allowed: str, value: Any, error: type[Exception] = ValueError) -> NoReturn:
    """Raise ``error`` with the course's one message pattern."""
    raise error(f"{name} must be {allowed}, got {value!r}")


def check_int(
    name: str,
    value: Any,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
) -> int:
    """Return ``value`` as an ``int`` after checking its type and range.

    Booleans and floats are refused (``steps=1.5`` is a bug, not a request to
    round). NumPy integers are accepted.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        fail(name, "an integer", value, TypeError)
    value = int(value)
    if minimum is not None and value < minimum:
        fail(name, f"an integer >= {minimum}", value)
    if maximum is not None and value > maximum:
        fail(name, f"an integer <= {maximum}", value)
    return value


def check_real(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    allow_inf: bool = False,
) -> float:
    """Return ``value`` as a ``float`` after checking it is a finite real in range.

    ``low_open``/``high_open`` make the bound strict: ``low=0, low_open=True``
    means "> 0". NaN is always refused; infinity only with ``allow_inf``.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        fail(name, "a real number", value, TypeError)
    value = float(value)
    if math.isnan(value) or (math.isinf(value) and not allow_inf):
        fail(name, "a finite number", value)
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high:
        fail(name, _describe_range(low, high, low_open, high_open), value)
    return value


def check_bool(name: str, value: Any) -> bool:
    """Return ``value`` after checking it is a ``bool``."""
    if not isinstance(value, bool):
        fail(name, "True or False", value, TypeError)
    return value


_Choice = TypeVar("_Choice")


def check_choice(name: str, value: Any, choices: tuple[_Choice, ...]) -> _Choice:
    """Return ``value`` after checking it is one of ``choices``."""
    if value not in choices:
        fail(name, "one of " + ", ".join(repr(c) for c in choices), value)
    return value


def _describe_range(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    if low is not None and high is not None:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        return f"in {left}{low:g}, {high:g}{right}"
    if low is not None:
        return f"{'>' if low_open else '>='} {low:g}"
    return f"{'<' if high_open else '<='} {high:g}"


def check_generator(name: str, value: Any) -> torch.Generator:
    """Return ``value`` if it is a ``torch.Generator``; refuse anything else by name.

    ``None`` is refused too: torch would silently draw from its global generator,
    and every random draw in the course takes a generator passed in.
    """
    import torch  # here: the NumPy-only modules import this file without torch

    if not isinstance(value, torch.Generator):
        fail(name, "a torch.Generator, e.g. torch.Generator().manual_seed(0)", value, TypeError)
    return value


def check_float_tensor(name: str, value: Any) -> Any:
    """Return ``value`` if it is a floating-point ``torch.Tensor``; refuse anything else by name.

    A NumPy array, a list or None is a TypeError that says how to convert it;
    an integer or boolean tensor is refused too: its squared norm can wrap
    around (int64) or overflow (int32), so clipping would not bound it.
    """
    import torch  # here: the NumPy-only modules import this file without torch

    if not isinstance(value, torch.Tensor):
        hint = " (torch.as_tensor(array, dtype=torch.float32) converts an array)"
        fail(name, "a torch.Tensor" + hint, _short(value), TypeError)
    if not value.is_floating_point():
        fail(
            name,
            "a floating-point tensor (float32, float64, ...)",
            f"dtype {value.dtype}",
            TypeError,
        )
    return value


def check_finite_norms(what: str, norms: Any, why: str) -> None:
    """Refuse the first non-finite entry of ``norms`` (one L2 norm per contribution) by index.

    ``what`` names one contribution with a ``{}`` for its index ("updates[{}]",
    "the gradient of example {}"); ``why`` says where such a value usually
    comes from. The check reads only the norms clipping computes anyway: a
    NaN or inf anywhere in a contribution makes its norm NaN or inf.
    """
    import torch

    finite = torch.isfinite(norms)
    if not bool(finite.all()):
        index = int((~finite).nonzero()[0, 0])
        fail(what.format(index), f"finite to be clipped ({why})", f"norm {float(norms[index])}")


def _short(value: Any) -> str:
    """A type name and at most 60 characters of ``value``'s repr, for messages."""
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"


#: How finely the working precision must resolve the noise (``check_noise_survives_rounding``).
NOISE_RESOLUTION = 2.0**-6


def check_noise_survives_rounding(
    name: str, magnitude: float, noise_std: float, machine_epsilon: float, noise_from: str = ""
) -> None:
    """Refuse a value so large that adding noise of std ``noise_std`` is lost to rounding.

    Where the limit comes from: near a value v, consecutive floats are about
    |v| * eps apart (eps = 2^-52 in float64, 2^-23 in float32), and v + noise
    is rounded to that grid. Once the gap passes 2 * noise_std the noise rounds
    away entirely (``gaussian_mechanism(1e300, ...)`` returned 1e300 exactly,
    no privacy at all); before that it is coarsely quantised. We require the
    gap to be at most ``NOISE_RESOLUTION`` = 1/64 of the noise std, that is
    |v| <= noise_std / (64 eps): 7e13 noise stds in float64, 1.3e5 in float32.
    ``magnitude`` is the largest |v| (finite); ``noise_std`` 0 (no noise) passes;
    ``noise_from`` names the arguments that set the noise, for the message.
    """
    if noise_std > 0.0 and magnitude * machine_epsilon > NOISE_RESOLUTION * noise_std:
        limit = NOISE_RESOLUTION * noise_std / machine_epsilon
        source = f" (from {noise_from})" if noise_from else ""
        gap = magnitude * machine_epsilon
        fail(
            name,
            f"at most {limit:.3g} in magnitude, so that noise of std {noise_std:.3g}{source} "
            f"survives rounding (floats near {magnitude:.3g} are {gap:.3g} apart; the limit "
            "keeps that gap below 1/64 of the noise std)",
            f"a largest magnitude of {magnitude:.3g}",
        )
