"""The feedback pattern (fl_dp_lab.exercises._core) and notebook 00's checks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fl_dp_lab import exercises
from fl_dp_lab.exercises import check_first_difference, check_slope_function
from fl_dp_lab.exercises._core import WrongShape, as_array, as_number


def test_every_check_is_exported_and_documented():
    checks = [name for name in exercises.__all__ if name.startswith("check_")]
    assert len(checks) >= 2
    for name in checks:
        assert getattr(exercises, name).__doc__, f"{name} has no docstring"


def test_first_difference_right_wrong_unanswered(capsys):
    assert check_first_difference(((2.1) ** 3 - (1.9) ** 3) / 0.2) is True
    assert "✓" in capsys.readouterr().out
    assert check_first_difference(12.0) is False  # the exact derivative, not the difference
    assert "exact derivative" in capsys.readouterr().out
    assert check_first_difference(12.5) is False
    assert "✗" in capsys.readouterr().out
    assert check_first_difference(...) is False
    assert "not answered yet" in capsys.readouterr().out


def test_first_difference_accepts_numpy_and_torch_scalars():
    value = ((2.1) ** 3 - (1.9) ** 3) / 0.2
    assert check_first_difference(np.float64(value))
    assert check_first_difference(torch.tensor(value, dtype=torch.float64))


def test_slope_function_catches_forward_difference(capsys):
    assert check_slope_function(lambda f, x, h: (f(x + h) - f(x - h)) / (2 * h)) is True
    assert check_slope_function(lambda f, x, h: (f(x + h) - f(x)) / h) is False
    assert "Hint" in capsys.readouterr().out


def test_malformed_answers_raise_instead_of_grading():
    with pytest.raises(TypeError, match="answer must be a real number"):
        check_first_difference("12.01")
    with pytest.raises(TypeError, match="slope must be a function"):
        check_slope_function(3.0)
    with pytest.raises(WrongShape, match=r"has shape \(3,\), but it must have shape \(2,\)"):
        as_array("answer", [1, 2, 3], shape=(2,))
    assert as_number("answer", np.array(2.5)) == 2.5
    assert math.isclose(as_array("x", torch.ones(2)).sum(), 2.0)


def test_first_difference_takes_float32_and_names_the_usual_slips(capsys):
    f = lambda t: t**3  # noqa: E731
    assert check_first_difference((torch.tensor(2.1) ** 3 - torch.tensor(1.9) ** 3) / 0.2) is True
    assert "✓" in capsys.readouterr().out
    assert check_first_difference([12.01]) is True  # a one-element list is a number
    for wrong, words in (
        ((f(2.1) - f(2.0)) / 0.1, "forward difference"),
        ((f(2.0) - f(1.9)) / 0.1, "backward difference"),
        ((f(2.1) - f(1.9)) / 0.1, "factor 2"),
        (12.0, "exact derivative"),
    ):
        assert check_first_difference(wrong) is False
        assert words in capsys.readouterr().out
    assert check_first_difference(12.02) is False
    assert "✗ Exercise 00.1: not yet" in capsys.readouterr().out
