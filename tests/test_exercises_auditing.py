"""Notebook 10's checks: right answers pass, the usual wrong ones get their hint."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from fl_dp_lab.accounting import epsilon as accountant_epsilon
from fl_dp_lab.auditing import audit_scores, clopper_pearson, epsilon_lower_bound
from fl_dp_lab.auditing.canaries import canary_scores, dirac_canary, noisy_clipped_sum
from fl_dp_lab.exercises import (
    check_audit_verdict,
    check_clopper_pearson_upper,
    check_trials_needed,
)


def _cp_upper(k, n, confidence=0.95):
    return 1.0 if k == n else float(stats.beta.ppf(1 - (1 - confidence) / 2, k + 1, n - k))


def test_clopper_pearson_upper_right_answers_pass(capsys):
    assert check_clopper_pearson_upper(_cp_upper) is True
    assert "✓" in capsys.readouterr().out
    # the closed form at no error and the library itself are right too
    assert check_clopper_pearson_upper(lambda k, n, c: clopper_pearson(k, n, confidence=c)[1])


@pytest.mark.parametrize(
    ("wrong", "hint"),
    [
        (lambda k, n, c: k / n, "plug-in rate"),
        (lambda k, n, c: stats.beta.ppf(1 - (1 - c) / 2, k + 1, n - k), "nan"),
        (lambda k, n, c: 1.0 if k == n else stats.beta.ppf(c, k + 1, n - k), "one-sided"),
        (lambda k, n, c: 1.0 if k == n else stats.beta.ppf(1 - (1 - c) / 2, k, n - k + 1), "lower end"),
        (lambda k, n, c: 1.0 if k == n else stats.beta.ppf(0.975, k + 1, n - k), "confidence = 0.9"),
    ],
)  # fmt: skip
def test_clopper_pearson_upper_wrong_answers_get_their_hint(capsys, wrong, hint):
    assert check_clopper_pearson_upper(wrong) is False
    out = capsys.readouterr().out
    assert "✗" in out and hint in out, out


@pytest.fixture(scope="module")
def audit_setup():
    """Notebook 10's section 3 in small: a real batch's gradients, a Dirac canary, C = 8, σ = 2."""
    from fl_dp_lab.data import load_digits
    from fl_dp_lab.dpsgd import per_sample_gradients
    from fl_dp_lab.models import LogisticRegression

    generator = torch.Generator().manual_seed(0)
    x_train, y_train, _, _ = load_digits()
    model = LogisticRegression(64, 10, generator=generator)
    grads = per_sample_gradients(
        model, torch.nn.functional.cross_entropy, torch.as_tensor(x_train[:32]),
        torch.as_tensor(y_train[:32]), method="hooks",
    )  # fmt: skip
    claimed = accountant_epsilon(noise_multiplier=2.0, sample_rate=1.0, steps=1, delta=1e-5)
    return grads, dirac_canary(grads, norm=16 * 8.0), claimed, generator


def _audit(setup, *, statistic="projection", compare="bound"):
    grads, canary, claimed, generator = setup

    def leaks(mechanism, trials):
        scores = canary_scores(mechanism, grads, canary, trials=trials, max_grad_norm=8.0,
                               noise_multiplier=2.0, generator=generator, statistic=statistic)  # fmt: skip
        result = audit_scores(*scores, delta=1e-5)
        if compare == "always":
            return True
        return bool(result.epsilon > claimed)

    return leaks


def test_audit_verdict_right_audit_passes(audit_setup, capsys):
    assert check_audit_verdict(_audit(audit_setup)) is True
    assert "✓" in capsys.readouterr().out


def test_audit_verdict_rejects_an_accuser_and_an_identity_test(audit_setup, capsys):
    assert check_audit_verdict(_audit(audit_setup, compare="always")) is False
    assert "accused correct code" in capsys.readouterr().out
    # comparing with the notebook's correct function by identity: the check's wrapper is new
    assert (
        check_audit_verdict(lambda mechanism, trials: mechanism is not noisy_clipped_sum) is False
    )
    assert "accused correct code" in capsys.readouterr().out
    assert check_audit_verdict(lambda mechanism, trials: False) is False
    assert "missed a planted bug" in capsys.readouterr().out
    with pytest.raises(TypeError, match="must be True or False"):
        check_audit_verdict(lambda mechanism, trials: 4.2)


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


def test_unanswered_and_malformed(capsys):
    for check in (check_clopper_pearson_upper, check_audit_verdict, check_trials_needed):
        assert check(...) is False
        assert "not answered yet" in capsys.readouterr().out
    with pytest.raises(TypeError, match="answer must be a real number"):
        check_trials_needed("297")
    with pytest.raises(TypeError, match="cp_upper must be a function"):
        check_clopper_pearson_upper(0.0174)
    with pytest.raises(TypeError, match="leaks must be a function"):
        check_audit_verdict(True)
