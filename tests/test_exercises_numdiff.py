"""Notebook 01's checks: right answers pass, typical mistakes get their hint."""

from __future__ import annotations

import numpy as np
import pytest

from fl_dp_lab.exercises import check_numerical_gradient, check_optimal_step


def _central(f, x, h):
    grad = np.empty_like(x)
    for index in np.ndindex(x.shape):
        z = x.copy()
        z[index] += h
        up = f(z)
        z[index] -= 2 * h
        grad[index] = (up - f(z)) / (2 * h)
    return grad


def _forward(f, x, h):
    grad = np.empty_like(x)
    for index in np.ndindex(x.shape):
        z = x.copy()
        z[index] += h
        grad[index] = (f(z) - f(x)) / h
    return grad


def _in_place(f, x, h):
    grad = np.empty_like(x)
    for index in np.ndindex(x.shape):
        x[index] += h
        up = f(x)
        x[index] -= 2 * h
        grad[index] = (up - f(x)) / (2 * h)  # forgets to restore x[index]
    return grad


def test_numerical_gradient(capsys):
    assert check_numerical_gradient(_central) is True
    assert "✓" in capsys.readouterr().out
    assert check_numerical_gradient(_forward) is False
    assert "forward difference" in capsys.readouterr().out
    assert check_numerical_gradient(lambda f, x, h: 2 * _central(f, x, h)) is False
    assert "factor 2" in capsys.readouterr().out
    assert check_numerical_gradient(_in_place) is False
    assert "changed x" in capsys.readouterr().out
    assert check_numerical_gradient(lambda f, x, h: np.zeros_like(x)) is False
    assert "Hint" in capsys.readouterr().out

    def restores_by_arithmetic(f, x, h):  # x[i] += h, -= 2h, += h: rounding residue only
        grad = np.empty_like(x)
        for index in np.ndindex(x.shape):
            x[index] += h
            up = f(x)
            x[index] -= 2 * h
            grad[index] = (up - f(x)) / (2 * h)
            x[index] += h
        return grad

    assert check_numerical_gradient(restores_by_arithmetic) is True
    assert check_numerical_gradient(...) is False
    assert "not answered yet" in capsys.readouterr().out


def test_optimal_step_accepts_eps_to_the_third_and_names_each_wrong_answer(capsys):
    # right: eps^(1/3) and (3 eps)^(1/3), as a function of eps (checked at float32 and float64)
    assert check_optimal_step(lambda eps: eps ** (1 / 3)) is True
    assert "float64" in capsys.readouterr().out
    assert check_optimal_step(lambda eps: (3 * eps) ** (1 / 3)) is True
    assert check_optimal_step(lambda eps: np.cbrt(np.float32(eps))) is True
    capsys.readouterr()
    # wrong: each one within the old float32-only band (best/4 to 4 best), each named
    wrong = {
        "eps^(1/4)": (lambda eps: eps**0.25, "eps^(1/4)"),
        "10 sqrt(eps)": (lambda eps: 10 * eps**0.5, "forward difference"),
        "1e-2 hard-coded": (lambda eps: 1e-2, "hard-coded"),
        "8e-3 from the table": (lambda eps: 8e-3, "does not change with eps"),
        "eps^(2/3)": (lambda eps: eps ** (2 / 3), "best error"),
        "constant off": (lambda eps: 20 * eps ** (1 / 3), "constant in front"),
        "float32 eps baked in": (lambda eps: np.finfo(np.float32).eps ** (1 / 3), "hard-coded"),
    }
    for label, (answer, hint) in wrong.items():
        assert check_optimal_step(answer) is False, label
        out = capsys.readouterr().out
        assert "✗" in out and hint in out, (label, out)
    # plain numbers copied from the text or the table: wrong, and named
    assert check_optimal_step(1e-2) is False
    assert "the text's 1e-2" in capsys.readouterr().out
    assert check_optimal_step(8e-3) is False
    assert "the table's 8e-3" in capsys.readouterr().out
    assert check_optimal_step(np.float32(5e-3)) is False
    assert "function of eps" in capsys.readouterr().out
    assert check_optimal_step(lambda eps: -eps) is False
    assert "positive" in capsys.readouterr().out
    assert check_optimal_step(lambda eps: eps) is False  # a power no hint names
    assert "✗" in capsys.readouterr().out
    assert check_optimal_step(...) is False
    assert "not answered yet" in capsys.readouterr().out


def test_malformed_answers_raise_and_wrong_shapes_are_graded(capsys):
    with pytest.raises(TypeError, match="numerical_gradient must be a function"):
        check_numerical_gradient(3)
    with pytest.raises(TypeError, match="h_best must be a function"):
        check_optimal_step("5e-3")
    with pytest.raises(TypeError, match=r"h_best\(float32 eps\) must be a real number"):
        check_optimal_step(lambda eps: "small")
    # moving every coordinate at once gives one number, not one per coordinate
    assert check_numerical_gradient(lambda f, x, h: (f(x + h) - f(x - h)) / (2 * h)) is False
    assert "must have shape (3,): one partial derivative" in capsys.readouterr().out
