"""Notebook 04's exercise checks: right, typical wrong, unanswered, malformed."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fl_dp_lab.exercises import check_gaussian_privacy_loss, check_private_sum, check_rr_estimator


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


def _private_sum(incomes, *, clip, epsilon, rng):
    return float(np.clip(incomes, 0.0, clip).sum() + rng.laplace(0.0, clip / epsilon))


def test_private_sum_right_answers_pass(capsys):
    assert check_private_sum(_private_sum) is True
    assert "✓" in capsys.readouterr().out

    def by_exponentials(incomes, *, clip, epsilon, rng):  # Laplace = difference of exponentials
        b = clip / epsilon
        return float(
            np.minimum(np.maximum(incomes, 0), clip).sum() + rng.exponential(b) - rng.exponential(b)
        )

    assert check_private_sum(by_exponentials) is True


@pytest.mark.parametrize(
    ("slip", "words"),
    [
        (lambda i, *, clip, epsilon, rng: float(i.sum() + rng.laplace(0, clip / epsilon)), "raw sum"),
        (lambda i, *, clip, epsilon, rng: float(np.clip(i, 0, clip).sum() + rng.laplace(0, 1 / epsilon)), "count"),
        (lambda i, *, clip, epsilon, rng: float(np.clip(i, 0, clip).sum() + rng.laplace(0, clip * epsilon)), "upside down"),
        (lambda i, *, clip, epsilon, rng: float(np.clip(i, 0, clip).sum() + rng.normal(0, clip / epsilon)), "Laplace-shaped"),
        (lambda i, *, clip, epsilon, rng: float(np.clip(i, 0, clip).sum() + np.random.default_rng().laplace(0, clip / epsilon)), "global generator"),
        (lambda i, *, clip, epsilon, rng: float(np.clip(i, -clip, clip).sum() + rng.laplace(0, clip / epsilon)), "negative incomes"),
        (lambda i, *, clip, epsilon, rng: float(np.clip(i, 0, clip).sum()), "no noise"),
    ],
)  # fmt: skip
def test_private_sum_rejects_the_usual_slips_with_their_hint(slip, words, capsys):
    assert check_private_sum(slip) is False
    out = capsys.readouterr().out
    assert "✗" in out and words in out, out


def test_private_sum_unanswered_and_malformed(capsys):
    assert check_private_sum(...) is False
    assert "not answered yet" in capsys.readouterr().out
    with pytest.raises(TypeError, match="private_sum must be a function"):
        check_private_sum(200.0)


def _privacy_loss(o, m, m_prime, sigma):
    return (((o - m_prime) ** 2).sum(1) - ((o - m) ** 2).sum(1)) / (2 * sigma**2)


def _loss_moments(m, m_prime, sigma):
    mu = float(np.sum((m - m_prime) ** 2) / (2 * sigma**2))
    return mu, 2 * mu


def test_gaussian_privacy_loss_right_answers_pass(capsys):
    assert check_gaussian_privacy_loss(_privacy_loss, _loss_moments) is True
    assert "✓" in capsys.readouterr().out
    from scipy import stats

    def by_densities(o, m, m_prime, sigma):  # the definition, written with scipy
        return (stats.norm.logpdf(o, m, sigma) - stats.norm.logpdf(o, m_prime, sigma)).sum(1)

    moments_as_tensor = lambda m, mp, s: torch.tensor(_loss_moments(m, mp, s))  # noqa: E731
    assert check_gaussian_privacy_loss(by_densities, moments_as_tensor) is True


@pytest.mark.parametrize(
    ("loss", "moments", "words"),
    [
        (lambda o, m, mp, s: -_privacy_loss(o, m, mp, s), _loss_moments, "wrong way round"),
        (lambda o, m, mp, s: ((o - mp) ** 2 - (o - m) ** 2) / (2 * s**2), _loss_moments, "shape"),
        (_privacy_loss, lambda m, mp, s: (_loss_moments(m, mp, s)[0], math.sqrt(_loss_moments(m, mp, s)[1])), "standard deviation"),
        (_privacy_loss, lambda m, mp, s: (np.abs(m - mp).sum() ** 2 / (2 * s**2), np.abs(m - mp).sum() ** 2 / s**2), "wrong norm"),
        (_privacy_loss, lambda m, mp, s: (np.sum((m - mp) ** 2) / (2 * s), np.sum((m - mp) ** 2) / s), "loss_moments is off"),
    ],
)  # fmt: skip
def test_gaussian_privacy_loss_rejects_the_usual_slips(loss, moments, words, capsys):
    assert check_gaussian_privacy_loss(loss, moments) is False
    out = capsys.readouterr().out
    assert "✗" in out and words in out, out


def test_gaussian_privacy_loss_unanswered_and_malformed(capsys):
    assert check_gaussian_privacy_loss(_privacy_loss, ...) is False
    assert "not answered yet" in capsys.readouterr().out
    with pytest.raises(TypeError, match="loss_moments must be a function"):
        check_gaussian_privacy_loss(_privacy_loss, (0.5, 1.0))
