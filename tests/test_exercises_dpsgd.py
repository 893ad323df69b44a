"""Notebook 06's exercise checks: right, typical wrong, unanswered, malformed."""

from __future__ import annotations

import math

import pytest
import torch

from fl_dp_lab.dpsgd import clip_per_sample
from fl_dp_lab.exercises import (
    check_clip_factors,
    check_clip_function,
    check_empty_batch_probability,
)


def test_clip_factors_right_and_the_usual_slips(capsys):
    assert check_clip_factors([1.0, 0.5, 0.25]) is True
    assert "✓" in capsys.readouterr().out
    opacus_style = (1.0 / (torch.tensor([0.5, 2.0, 4.0]) + 1e-6)).clamp(max=1.0)
    assert check_clip_factors(opacus_style) is True
    assert check_clip_factors([2.0, 0.5, 0.25]) is False  # C / ||g|| without the min
    assert "scale it *up*" in capsys.readouterr().out.split("✓")[-1]
    assert check_clip_factors([0.5, 2.0, 4.0]) is False  # ||g|| / C
    assert "upside down" in capsys.readouterr().out
    assert check_clip_factors([1.0, 0.5, 0.5]) is False
    assert "Hint" in capsys.readouterr().out
    assert check_clip_factors(...) is False
    assert "not answered yet" in capsys.readouterr().out
    assert check_clip_factors([1.0, 0.5]) is False  # a wrong shape is a wrong answer
    assert "shape (2,), but it must have shape (3,)" in capsys.readouterr().out
    with pytest.raises(TypeError, match="array of numbers"):
        check_clip_factors(["a", "b", "c"])


def test_clip_function_right_and_the_usual_slips(capsys):
    def right(g, c):
        return clip_per_sample({"g": g[None]}, max_grad_norm=c)["g"][0]

    assert check_clip_function(right) is True
    assert "✓" in capsys.readouterr().out
    assert check_clip_function(lambda g, c: g * c / g.norm()) is False  # 0/0 on the zero vector
    assert "NaN" in capsys.readouterr().out
    assert check_clip_function(lambda g, c: g * c / (g.norm() + 1e-6)) is False  # no min
    assert "stretched" in capsys.readouterr().out
    assert check_clip_function(lambda g, c: g) is False  # no clipping at all
    assert "Hint" in capsys.readouterr().out
    assert check_clip_function(lambda g, c: torch.clamp(g, -c, c)) is False  # per coordinate
    assert "every coordinate" in capsys.readouterr().out
    assert check_clip_function(lambda g, c: g * min(1.0, c / float(g.norm()))) is False
    assert "ZeroDivisionError" in capsys.readouterr().out

    def in_place(g, c):  # clips g in place and forgets to return it
        g.mul_(min(1.0, c / (float(g.norm()) + 1e-6)))

    assert check_clip_function(in_place) is False
    assert "returned None" in capsys.readouterr().out
    assert check_clip_function(...) is False
    assert "not answered yet" in capsys.readouterr().out
    with pytest.raises(TypeError, match="clip must be a function"):
        check_clip_function(1.0)
    assert check_clip_function(lambda g, c: g.sum()) is False
    assert "must be shaped like g" in capsys.readouterr().out


def test_empty_batch_probability_right_and_the_usual_slips(capsys):
    assert check_empty_batch_probability(0.95**20) is True
    assert "0.358" in capsys.readouterr().out
    assert check_empty_batch_probability(1 - 0.95**20) is False
    assert "not* empty" in capsys.readouterr().out
    assert check_empty_batch_probability(0.05**20) is False
    assert "*every* example joins" in capsys.readouterr().out
    assert check_empty_batch_probability(0) is False
    assert "no minimum size" in capsys.readouterr().out
    assert check_empty_batch_probability(math.exp(-1)) is False
    assert "Poisson approximation" in capsys.readouterr().out
    assert check_empty_batch_probability(0.5) is False
    assert check_empty_batch_probability(None) is False
    assert "not answered yet" in capsys.readouterr().out
    with pytest.raises(TypeError, match="answer must be a real number"):
        check_empty_batch_probability("0.36")
