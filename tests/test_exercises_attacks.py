"""Notebook 03's exercise checks: right, typical wrong, unanswered, malformed."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fl_dp_lab.exercises import check_auc_by_pairs, check_row_ratio


def _one_row(grad_weight, grad_bias):
    row = int(grad_bias.abs().argmax())
    return grad_weight[row] / grad_bias[row]


def test_row_ratio_accepts_one_row_for_images_it_has_never_seen(capsys):
    assert check_row_ratio(_one_row) is True
    assert "✓" in capsys.readouterr().out
    # any row with a non-zero bias gradient works; a 2-D view of the image is the same answer
    assert check_row_ratio(lambda w, b: w[1] / b[1]) is True
    assert check_row_ratio(lambda w, b: _one_row(w, b).reshape(-1, 1)) is True
    assert check_row_ratio(...) is False
    assert "not answered yet" in capsys.readouterr().out


def test_row_ratio_rejects_the_secret_image_and_the_usual_slips(capsys):
    # the notebook's secret image, in scope in the notebook: the check uses other images
    secret = torch.rand(784, generator=torch.Generator().manual_seed(42))
    assert check_row_ratio(lambda w, b: secret) is False
    assert "same image for two different gradients" in capsys.readouterr().out
    assert check_row_ratio(lambda w, b: w[0] / b[0]) is False  # row 0 carries nothing
    assert "inf or nan" in capsys.readouterr().out
    row = lambda b: int(b.abs().argmax())  # noqa: E731
    assert check_row_ratio(lambda w, b: b[row(b)] / w[row(b)]) is False
    assert "upside down" in capsys.readouterr().out
    assert check_row_ratio(lambda w, b: w / b[:, None]) is False
    assert "all rows at once" in capsys.readouterr().out
    assert check_row_ratio(lambda w, b: w[row(b)]) is False  # forgot to divide
    assert "✗" in capsys.readouterr().out
    assert check_row_ratio(lambda w, b: torch.zeros(3)) is False
    assert "has shape (3,), but it must have shape (784,)" in capsys.readouterr().out
    with pytest.raises(TypeError, match="image_from_gradient must be a function"):
        check_row_ratio(secret)
    with pytest.raises(TypeError, match="must be an array of numbers"):
        check_row_ratio(lambda w, b: ["a", "b"])


def _pairs(m, n):
    m, n = np.asarray(m)[:, None], np.asarray(n)[None, :]
    return float(np.mean((m > n) + 0.5 * (m == n)))


def test_auc_by_pairs_right_answers(capsys):
    assert check_auc_by_pairs(_pairs) is True
    assert "✓" in capsys.readouterr().out
    members, others = np.array([3.0, 2.0, 2.0]), np.array([2.0, 1.0])
    assert check_auc_by_pairs(_pairs, members, others) is True  # the notebook's scores added
    # a sort-based count with midranks is right too
    from scipy import stats

    def by_ranks(m, n):
        ranks = stats.rankdata(np.r_[m, n])
        return (ranks[: len(m)].sum() - len(m) * (len(m) + 1) / 2) / (len(m) * len(n))

    assert check_auc_by_pairs(by_ranks) is True


def test_auc_by_pairs_rejects_tie_rules_flips_and_scales(capsys):
    wrong = {
        "m >= n (ties as 1)": (lambda m, n: np.mean(m[:, None] >= n[None, :]), "tied pair"),
        "m > n (ties as 0)": (lambda m, n: np.mean(m[:, None] > n[None, :]), "tied pair"),
        "1 - AUC": (lambda m, n: 1 - _pairs(m, n), "1 - AUC"),
        "percentage": (lambda m, n: 100 * _pairs(m, n), "not a percentage"),
        "count": (lambda m, n: _pairs(m, n) * len(m) * len(n), "a share of them"),
        "constant": (lambda m, n: 0.75, "not yet"),
    }
    for label, (answer, hint) in wrong.items():
        assert check_auc_by_pairs(answer) is False, label
        out = capsys.readouterr().out
        assert "✗" in out and hint in out, (label, out)
    assert check_auc_by_pairs(...) is False
    assert "not answered yet" in capsys.readouterr().out
    with pytest.raises(TypeError, match="auc_by_pairs must be a function"):
        check_auc_by_pairs(0.75)
    with pytest.raises(TypeError, match="must be a real number"):
        check_auc_by_pairs(lambda m, n: "0.75")
