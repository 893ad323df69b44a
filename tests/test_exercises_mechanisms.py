"""Notebook 04's exercise checks: right, typical wrong, unanswered, malformed."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fl_dp_lab.exercises import check_basic_composition, check_laplace_scale, check_rr_estimator


def test_rr_estimator_right_naive_and_wrong(capsys):
    def right(reports, epsilon):
        p = math.exp(epsilon) / (1 + math.exp(epsilon))
        return (np.mean(reports) - (1 - p)) / (2 * p - 1)

    assert check_rr_estimator(right) is True
    assert "✓" in capsys.readouterr().out
    assert check_rr_estimator(lambda reports, epsilon: np.mean(reports)) is False
    assert "raw share" in capsys.readouterr().out
    wrong_p = lambda r, e: (np.mean(r) - (1 - math.exp(e))) / (2 * math.exp(e) - 1)  # noqa: E731
    assert check_rr_estimator(wrong_p) is False
    assert "Hint" in capsys.readouterr().out
    assert check_rr_estimator(...) is False
    assert "not answered yet" in capsys.readouterr().out
    with pytest.raises(TypeError, match="estimator must be a function"):
        check_rr_estimator(0.3)


def test_laplace_scale_catches_the_usual_slips(capsys):
    assert check_laplace_scale(200) is True
    assert check_laplace_scale(2.0) is False
    assert "sensitivity" in capsys.readouterr().out.split("✓")[-1]
    assert check_laplace_scale(50.0) is False
    assert "upside down" in capsys.readouterr().out
    assert check_laplace_scale(math.sqrt(2) * 200) is False
    assert "standard deviation" in capsys.readouterr().out
    assert check_laplace_scale(...) is False
    with pytest.raises(TypeError, match="answer must be a real number"):
        check_laplace_scale("200")


def test_basic_composition_right_and_wrong(capsys):
    assert check_basic_composition(1.0, 4e-6) is True
    assert check_basic_composition(torch.tensor(0.25) * 4, torch.tensor(4e-6)) is True  # float32
    assert check_basic_composition(np.float32(1.0), np.float32(4e-6)) is True
    assert check_basic_composition(0.25, 1e-6) is False
    assert "ONE release" in capsys.readouterr().out
    assert check_basic_composition(1.0, 1e-6) is False
    assert "delta is one release's" in capsys.readouterr().out
    assert check_basic_composition(0.5, 4e-6) is False
    assert check_basic_composition(..., 4e-6) is False
    assert "not answered yet" in capsys.readouterr().out
    with pytest.raises(TypeError, match="delta must be a real number"):
        check_basic_composition(1.0, "4e-6")
