"""The one feedback pattern every exercise uses.

A ``check_*`` function takes the learner's answer, prints one line that
starts with a mark, and returns ``True`` only for a right answer:

- ``✓`` right, with a sentence on why it matters;
- ``✗`` not yet, with a hint that points at the idea, not the answer;
- ``…`` unanswered (the cell still holds ``...``), with what to do.

Hints come in tiers. Every exercise registers its ``Hints`` (``hints``): the
idea, the next step and the solution. The check counts the wrong tries of each
exercise, and the first wrong answer gets the idea, the second the next step,
and the formula or code only from the third (``SOLUTION_FROM``). A wrong
answer the check recognises (a forward difference, a one-sided bound) is named
too, in words that do not give the answer away. ``reset_tries`` starts the
count again. Docstrings say what a check tests, never the value it expects,
and a success message never prints a number that answers another exercise.

A wrong answer never raises, so a learner can try again and the notebook
still runs top to bottom. An answer of the wrong shape is a wrong answer too
(a transposed gradient, one number where one per coordinate is due): a check
decorated with ``graded`` prints ✗ with both shapes. An answer that is not
what the exercise asks for at all (a string where a number is due, a number
where a function is due) raises ``TypeError`` with the course's usual message,
because that is a slip in the cell, not a wrong idea. Solution cells call
``assert check_*(...)`` so CI proves every solution passes.
"""

from __future__ import annotations

import functools
import numbers
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from fl_dp_lab._validate import fail

__all__ = [
    "SOLUTION_FROM",
    "Hints",
    "WrongShape",
    "as_array",
    "as_number",
    "feedback",
    "graded",
    "hints",
    "is_unanswered",
    "registered_hints",
    "report_unanswered",
    "reset_tries",
    "tries",
]

#: The wrong try from which the solution itself is shown (the 1st gets the idea, the 2nd the step).
SOLUTION_FROM = 3


@dataclass(frozen=True)
class Hints:
    """The three tiers of help for one exercise: the idea, the next step, the solution."""

    idea: str
    step: str
    solution: str

    def at(self, attempt: int) -> str:
        """The help for wrong try number ``attempt`` (1, 2, ...).

        >>> tiers = Hints(idea="think", step="do", solution="x = 1")
        >>> [tiers.at(n) for n in (1, 2, 3)]
        ['Idea: think', 'Next step: do', 'Solution: x = 1']
        """
        if attempt >= SOLUTION_FROM:
            return f"Solution: {self.solution}"
        if attempt == 2:
            return f"Next step: {self.step}"
        return f"Idea: {self.idea}"


_HINTS: dict[str, Hints] = {}
_TRIES: dict[str, int] = {}


def hints(name: str, *, idea: str, step: str, solution: str) -> Hints:
    """Register (and return) the tiered help of exercise ``name``."""
    _HINTS[name] = Hints(idea=idea, step=step, solution=solution)
    return _HINTS[name]


def registered_hints() -> dict[str, Hints]:
    """Every exercise's tiered help, by exercise name (a copy)."""
    return dict(_HINTS)


def tries(name: str) -> int:
    """How many wrong answers exercise ``name`` has had since the last reset."""
    return _TRIES.get(name, 0)


def reset_tries(name: str | None = None) -> None:
    """Start counting wrong tries again, for exercise ``name`` or (``None``) for every exercise.

    >>> reset_tries("Exercise 0.1")
    >>> tries("Exercise 0.1")
    0
    """
    if name is None:
        _TRIES.clear()
    else:
        _TRIES.pop(name, None)


Check = TypeVar("Check", bound=Callable[..., bool])


class WrongShape(ValueError):
    """An answer of the wrong shape; a ``graded`` check reports it as ✗, not as an error."""


def graded(name: str) -> Callable[[Check], Check]:
    """Decorate the check of exercise ``name``: a ``WrongShape`` it raises prints ✗ instead.

    >>> @graded("Exercise 0.0")
    ... def check_pair(answer):
    ...     return feedback("Exercise 0.0", as_array("answer", answer, (2,)).sum() == 3,
    ...                     success="1 + 2.", hint="two numbers that add up to 3.")
    >>> check_pair([1, 2])
    ✓ Exercise 0.0: correct. 1 + 2.
    True
    >>> reset_tries("Exercise 0.0")
    >>> check_pair([1, 2, 3])
    ✗ Exercise 0.0: not yet (try 1). Hint: answer has shape (3,), but it must have shape (2,).
    False
    """

    def decorate(check: Check) -> Check:
        @functools.wraps(check)
        def run(*args: Any, **kwargs: Any) -> bool:
            try:
                return check(*args, **kwargs)
            except WrongShape as wrong:
                return feedback(name, False, success="", hint=str(wrong))

        return run  # type: ignore[return-value]

    return decorate


def is_unanswered(answer: Any) -> bool:
    """True when the learner has not replaced the ``...`` placeholder (or left ``None``)."""
    return answer is Ellipsis or answer is None


def report_unanswered(name: str) -> bool:
    """Print the "not answered yet" line for exercise ``name`` and return ``False``."""
    print(f"… {name}: not answered yet. Replace the `...` with your answer and run the cell again.")
    return False


def feedback(name: str, ok: bool, *, success: str, hint: str = "") -> bool:
    """Print ✓ with ``success``, or ✗ with ``hint`` and the tier of help due; return ``ok``.

    ``hint`` names what is wrong with this answer (empty when the check has
    nothing specific to say); the registered ``Hints`` of ``name`` add the
    idea, the next step or the solution, by the number of wrong tries so far.
    """
    if ok:
        print(f"✓ {name}: correct. {success}")
        return True
    attempt = _TRIES[name] = _TRIES.get(name, 0) + 1
    tiers = _HINTS.get(name)
    parts = [text for text in (hint, tiers.at(attempt) if tiers else "") if text]
    print(f"✗ {name}: not yet (try {attempt}). Hint: {' '.join(parts)}")
    return False


def as_number(name: str, answer: Any) -> float:
    """Return ``answer`` as a float, raising ``TypeError`` if it is not a real number.

    Accepts Python and NumPy numbers, 0-d arrays, one-element tensors and
    one-element lists.
    """
    if isinstance(answer, list | tuple) and len(answer) == 1:
        answer = answer[0]
    if hasattr(answer, "item"):
        size = answer.numel() if hasattr(answer, "numel") else getattr(answer, "size", 1)
        if size == 1:
            answer = answer.item()
    if isinstance(answer, bool) or not isinstance(answer, numbers.Real):
        fail(name, "a real number", answer, TypeError)
    return float(answer)


def as_array(
    name: str, answer: Any, shape: tuple[int, ...] | None = None, why: str = ""
) -> np.ndarray:
    """Return ``answer`` as a float64 NumPy array, checking ``shape`` when given.

    Accepts lists, NumPy arrays and torch tensors (detached, moved to the CPU).
    Another shape raises ``WrongShape`` naming both shapes and ``why`` (what the
    shape means), which a ``graded`` check prints as its hint.
    """
    if answer is None:  # a learner's function that computed its result but did not return it
        raise WrongShape(f"{name} is None: does the function end with `return`?")
    if hasattr(answer, "detach"):
        answer = answer.detach().cpu().numpy()
    try:
        array = np.asarray(answer, dtype=np.float64)
    except (TypeError, ValueError):
        fail(name, "an array of numbers", answer, TypeError)
    if shape is not None and array.shape != tuple(shape):
        reason = f": {why}" if why else ""
        raise WrongShape(
            f"{name} has shape {array.shape}, but it must have shape {tuple(shape)}{reason}."
        )
    return array
