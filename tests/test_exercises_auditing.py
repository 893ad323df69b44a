"""Notebook 10's checks: right answers pass, the usual wrong ones get their hint."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from fl_dp_lab.accounting import epsilon as accountant_epsilon
from fl_dp_lab.auditing import clopper_pearson, epsilon_lower_bound
from fl_dp_lab.exercises import check_audit_ceiling, check_fpr_upper_bound, check_trials_needed


def test_fpr_upper_bound_right_answers_pass(capsys):
    assert check_fpr_upper_bound(stats.beta.ppf(0.975, 4, 497)) is True
    assert check_fpr_upper_bound(clopper_pearson(3, 500)[1]) is True
    assert check_fpr_upper_bound(np.float64(clopper_pearson(3, 500)[1])) is True
    assert check_fpr_upper_bound(0.0174) is True  # rounded to 3 digits, as printed
    assert "✓" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("wrong", "hint"),
    [
        (3 / 500, "plug-in rate"),
        (stats.beta.ppf(0.95, 4, 497), "one-sided"),
        (stats.beta.ppf(0.975, 3, 498), "belongs to the lower end"),
        (clopper_pearson(3, 500)[0], "lower end"),
        (0.02, "not yet"),
    ],
)
def test_fpr_upper_bound_wrong_answers_get_their_hint(capsys, wrong, hint):
    assert check_fpr_upper_bound(wrong) is False
    out = capsys.readouterr().out
    assert "✗" in out and hint in out


def test_audit_ceiling_right_answers_pass(capsys):
    by_library = epsilon_lower_bound(
        true_positives=500, false_positives=0, true_negatives=500, false_negatives=0, delta=1e-5
    )
    u = 1 - 0.025 ** (1 / 500)
    assert check_audit_ceiling(by_library) is True
    assert check_audit_ceiling(math.log((1 - 1e-5 - u) / u)) is True
    assert check_audit_ceiling(torch.tensor(by_library, dtype=torch.float64)) is True
    assert "✓" in capsys.readouterr().out
    assert check_audit_ceiling(round(by_library, 2)) is True  # three significant digits
    assert check_audit_ceiling(math.log((1 - u) / u)) is True  # delta = 1e-5 moves it by 1e-5


@pytest.mark.parametrize(
    ("wrong", "hint"),
    [
        (math.inf, "divides by zero"),
        (
            epsilon_lower_bound(
                true_positives=1000,
                false_positives=0,
                true_negatives=1000,
                false_negatives=0,
                delta=1e-5,
            ),
            "held-out half",
        ),
        (math.log((1 - 1e-5 - (1 - 0.05 ** (1 / 500))) / (1 - 0.05 ** (1 / 500))), "one-sided"),
        (math.log(500), "log(n)"),
        (4.0, "epsilon_lower_bound"),
    ],
)
def test_audit_ceiling_wrong_answers_get_their_hint(capsys, wrong, hint):
    assert check_audit_ceiling(wrong) is False
    out = capsys.readouterr().out
    assert "✗" in out and hint in out


def _ceiling(n: int) -> float:
    return epsilon_lower_bound(
        true_positives=n, false_positives=0, true_negatives=n, false_negatives=0, delta=1e-5
    )


def test_trials_needed_right_answer_is_the_first_ceiling_above_the_claim(capsys):
    # Independent search with the library: the first n whose ceiling passes 4.38.
    n = next(n for n in range(1, 2000) if _ceiling(n) > 4.38)
    assert _ceiling(n - 1) <= 4.38 < _ceiling(n)
    assert check_trials_needed(n) is True
    assert check_trials_needed(np.int64(n)) is True
    assert f"n = {n}" in capsys.readouterr().out
    # searched against the unrounded claim (the notebook's claims[0] = 4.3772): one fewer
    claim = accountant_epsilon(noise_multiplier=1.0, sample_rate=1.0, steps=1, delta=1e-5)
    m = next(m for m in range(1, 2000) if _ceiling(m) > claim)
    assert m == n - 1
    assert check_trials_needed(m) is True
    assert "unrounded claim" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("wrong", "hint"),
    [
        (594, "both worlds"),
        (295, "almost"),
        (241, "one-sided"),
        (80, "rule of thumb"),
        (300, "not yet"),
    ],
)
def test_trials_needed_wrong_answers_get_their_hint(capsys, wrong, hint):
    assert check_trials_needed(wrong) is False
    out = capsys.readouterr().out
    assert "✗" in out and hint in out


@pytest.mark.parametrize("check", [check_fpr_upper_bound, check_audit_ceiling, check_trials_needed])
def test_unanswered_and_malformed(capsys, check):
    assert check(...) is False
    assert "not answered yet" in capsys.readouterr().out
    with pytest.raises(TypeError, match="answer must be a real number"):
        check("0.0174")
    with pytest.raises(TypeError, match="answer must be a real number"):
        check([0.1, 0.2])
