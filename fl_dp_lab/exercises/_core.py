"""The one feedback pattern every exercise uses.

A ``check_*`` function takes the learner's answer, prints one line that
starts with a mark, and returns ``True`` only for a right answer:

- ``✓`` right, with a sentence on why it matters;
- ``✗`` not yet, with a hint that points at the idea, not the answer;
- ``…`` unanswered (the cell still holds ``...``), with what to do.

A wrong answer never raises, so a learner can try again and the notebook
still runs top to bottom. A malformed answer (a string where a number is
due, an array of the wrong shape) raises ``TypeError``/``ValueError`` with the
course's usual message, because that is a bug in the cell, not a wrong idea.
Solution cells call ``assert check_*(...)`` so CI proves every solution passes.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from fl_dp_lab._validate import fail

__all__ = [
    "as_array",
    "as_number",
    "feedback",
    "is_unanswered",
    "report_unanswered",
]


def is_unanswered(answer: Any) -> bool:
    """True when the learner has not replaced the ``...`` placeholder (or left ``None``)."""
    return answer is Ellipsis or answer is None


def report_unanswered(name: str) -> bool:
    """Print the "not answered yet" line for exercise ``name`` and return ``False``."""
    print(f"… {name}: not answered yet. Replace the `...` with your answer and run the cell again.")
    return False


def feedback(name: str, ok: bool, *, success: str, hint: str) -> bool:
    """Print ✓ with ``success`` or ✗ with ``hint`` for exercise ``name``; return ``ok``."""
    if ok:
        print(f"✓ {name}: correct. {success}")
    else:
        print(f"✗ {name}: not yet. Hint: {hint}")
    return bool(ok)


def as_number(name: str, answer: Any) -> float:
    """Return ``answer`` as a float, raising ``TypeError`` if it is not a real number.

    Accepts Python and NumPy numbers and 0-d arrays or one-element tensors.
    """
    if hasattr(answer, "item"):
        size = answer.numel() if hasattr(answer, "numel") else getattr(answer, "size", 1)
        if size == 1:
            answer = answer.item()
    if isinstance(answer, bool) or not isinstance(answer, numbers.Real):
        fail(name, "a real number", answer, TypeError)
    return float(answer)


def as_array(name: str, answer: Any, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Return ``answer`` as a float64 NumPy array, checking ``shape`` when given.

    Accepts lists, NumPy arrays and torch tensors (detached, moved to the CPU).
    """
    if hasattr(answer, "detach"):
        answer = answer.detach().cpu().numpy()
    try:
        array = np.asarray(answer, dtype=np.float64)
    except (TypeError, ValueError):
        fail(name, "an array of numbers", answer, TypeError)
    if shape is not None and array.shape != tuple(shape):
        fail(f"{name}'s shape", f"{tuple(shape)}", array.shape)
    return array
