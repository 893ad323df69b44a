"""Notebook 02's checks: right answers pass, typical mistakes get their hint."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fl_dp_lab.exercises import check_per_example_norms, check_softmax_regression_gradient
from fl_dp_lab.models import MLP


def _softmax_gradient(weight, bias, x, y):
    z = x @ weight.T + bias
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    p[np.arange(len(y)), y] -= 1
    return p.T @ x / len(y), p.mean(0)


def test_softmax_regression_gradient(capsys):
    assert check_softmax_regression_gradient(_softmax_gradient) is True
    assert "✓" in capsys.readouterr().out

    def summed(w, b, x, y):
        g_w, g_b = _softmax_gradient(w, b, x, y)
        return g_w * len(y), g_b * len(y)

    assert check_softmax_regression_gradient(summed) is False
    assert "mean over the batch" in capsys.readouterr().out

    def flipped(w, b, x, y):
        g_w, g_b = _softmax_gradient(w, b, x, y)
        return -g_w, -g_b

    assert check_softmax_regression_gradient(flipped) is False
    assert "sign" in capsys.readouterr().out
    assert check_softmax_regression_gradient(lambda w, b, x, y: (w * 0, b * 0)) is False
    assert "softmax" in capsys.readouterr().out
    assert check_softmax_regression_gradient(...) is False

    def in_float32(w, b, x, y):
        g_w, g_b = _softmax_gradient(*(a.astype(np.float32) for a in (w, b, x)), y)
        return g_w, g_b

    assert check_softmax_regression_gradient(in_float32) is True


def _model_and_data():
    generator = torch.Generator().manual_seed(0)
    model = MLP(6, 5, 3, generator=generator)
    x = torch.randn(7, 6, generator=generator)
    y = torch.randint(0, 3, (7,), generator=generator)
    return model, x, y


def _loop_norms(model, x, y):
    norms = []
    for i in range(len(x)):
        loss = torch.nn.functional.cross_entropy(model(x[i : i + 1]), y[i : i + 1])
        grads = torch.autograd.grad(loss, list(model.parameters()))
        norms.append(torch.sqrt(sum(g.pow(2).sum() for g in grads)))
    return torch.stack(norms)


def test_per_example_norms(capsys):
    model, x, y = _model_and_data()
    norms = _loop_norms(model, x, y)
    assert check_per_example_norms(norms, model, x, y) is True
    assert "✓" in capsys.readouterr().out
    assert check_per_example_norms(norms**2, model, x, y) is False
    assert "squared" in capsys.readouterr().out
    weight_only = []
    for i in range(len(x)):
        loss = torch.nn.functional.cross_entropy(model(x[i : i + 1]), y[i : i + 1])
        weight_only.append(torch.autograd.grad(loss, model.fc1.weight)[0].norm())
    assert check_per_example_norms(torch.stack(weight_only), model, x, y) is False
    assert "one parameter tensor" in capsys.readouterr().out
    assert check_per_example_norms(norms * 1.1, model, x, y) is False
    assert check_per_example_norms(..., model, x, y) is False


def test_malformed_answers_raise_and_wrong_shapes_are_graded(capsys):
    model, x, y = _model_and_data()
    assert check_per_example_norms(np.ones(3), model, x, y) is False
    assert "norms has shape (3,), but it must have shape (7,)" in capsys.readouterr().out
    with pytest.raises(TypeError, match="must be a pair"):
        check_softmax_regression_gradient(lambda w, b, x, y: w)
    assert check_softmax_regression_gradient(lambda w, b, x, y: (w.T, b)) is False
    assert "grad_weight has shape (6, 4), but it must have shape (4, 6)" in capsys.readouterr().out
