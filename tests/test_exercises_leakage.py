"""Notebook 03's exercise checks: right, typical wrong, unanswered, malformed."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fl_dp_lab.exercises import check_auc_by_pairs, check_row_ratio


@pytest.fixture
def linear_gradients():
    x = torch.tensor([0.0, 0.5, 1.0, 0.25])
    g = torch.tensor([0.3, -1.2, 0.0])  # row 2 carries no signal
    return x, torch.outer(g, x), g


def test_row_ratio_right_and_wrong(linear_gradients, capsys):
    x, grad_weight, grad_bias = linear_gradients
    assert check_row_ratio(grad_weight[1] / grad_bias[1], grad_weight, grad_bias) is True
    assert "✓" in capsys.readouterr().out
    assert check_row_ratio(grad_bias[1] / grad_weight[1], grad_weight, grad_bias) is False
    assert "upside down" in capsys.readouterr().out
    assert check_row_ratio(grad_weight[1], grad_weight, grad_bias) is False
    assert "Hint" in capsys.readouterr().out
    assert check_row_ratio(..., grad_weight, grad_bias) is False
    assert "not answered yet" in capsys.readouterr().out


def test_row_ratio_shapes_and_malformed_answers(linear_gradients, capsys):
    _, grad_weight, grad_bias = linear_gradients
    assert check_row_ratio(torch.zeros(3), grad_weight, grad_bias) is False
    assert "has shape (3,), but it must have shape" in capsys.readouterr().out
    # every row's ratio at once: the right idea, one step short
    every_row = grad_weight / grad_bias[:, None]
    assert check_row_ratio(every_row, grad_weight, grad_bias) is False
    assert "every row at once" in capsys.readouterr().out
    # the image viewed as a square is the same answer
    square = (grad_weight[1] / grad_bias[1]).reshape(2, 2)
    assert check_row_ratio(square, grad_weight, grad_bias) is True
    with pytest.raises(TypeError, match="answer must be an array of numbers"):
        check_row_ratio(["a", "b", "c", "d"], grad_weight, grad_bias)


def test_auc_by_pairs_right_and_typical_wrong(capsys):
    members = np.array([3.0, 2.0, 2.0, 0.5])
    others = np.array([2.0, 1.0, 0.0])
    # by hand: 3 beats all 3; each 2 beats 2 and ties 1; 0.5 beats 1 -> (3 + 2.5 + 2.5 + 1) / 12
    right = 9.0 / 12.0
    assert check_auc_by_pairs(right, members, others) is True
    assert "✓" in capsys.readouterr().out
    assert check_auc_by_pairs(1 - right, members, others) is False
    assert "1 - AUC" in capsys.readouterr().out
    assert check_auc_by_pairs(8.0 / 12.0, members, others) is False  # ties counted as 0
    assert "coin flip" in capsys.readouterr().out
    assert check_auc_by_pairs(0.9, members, others) is False
    assert check_auc_by_pairs(0.7503, members, others) is True  # printed to 3 decimals
    assert check_auc_by_pairs(75.0, members, others) is False
    assert "not a percentage" in capsys.readouterr().out
    assert check_auc_by_pairs(9.0, members, others) is False  # pairs ranked right, not divided
    assert "divide by the number of pairs, 12" in capsys.readouterr().out
    assert check_auc_by_pairs(..., members, others) is False
    assert "not answered yet" in capsys.readouterr().out
    with pytest.raises(TypeError, match="answer must be a real number"):
        check_auc_by_pairs("0.75", members, others)
