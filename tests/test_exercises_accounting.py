"""Notebook 05's exercise checks: right, typical wrong, unanswered, malformed."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fl_dp_lab.accounting import epsilon, noise_multiplier_for_epsilon, rdp_to_epsilon
from fl_dp_lab.exercises import check_calibrated_sigma, check_gaussian_rdp_epsilon


def test_gaussian_rdp_epsilon_right_and_the_usual_slips(capsys):
    sigma, steps, delta, orders = 10.0, 1000, 1e-5, np.arange(2, 257)
    one_step = orders / (2 * sigma**2)
    right = rdp_to_epsilon(rdp=steps * one_step, orders=orders, delta=delta)[0]
    assert check_gaussian_rdp_epsilon(right) is True
    assert "✓" in capsys.readouterr().out
    single = rdp_to_epsilon(rdp=one_step, orders=orders, delta=delta)[0]
    assert check_gaussian_rdp_epsilon(single) is False
    assert "ONE step" in capsys.readouterr().out
    classic = np.min(steps * one_step + math.log(1 / delta) / (orders - 1))
    assert check_gaussian_rdp_epsilon(classic) is False
    assert "classic conversion" in capsys.readouterr().out
    assert check_gaussian_rdp_epsilon(steps * single) is False
    assert "basic composition" in capsys.readouterr().out
    assert check_gaussian_rdp_epsilon(right * 1.5) is False
    assert "Hint" in capsys.readouterr().out
    assert check_gaussian_rdp_epsilon(...) is False
    assert "not answered yet" in capsys.readouterr().out
    with pytest.raises(TypeError, match="answer must be a real number"):
        check_gaussian_rdp_epsilon("4.2")
    pair = rdp_to_epsilon(rdp=steps * one_step, orders=orders, delta=delta)
    assert check_gaussian_rdp_epsilon(pair) is False  # the whole (epsilon, order) pair
    assert "first entry, [0]" in capsys.readouterr().out
    library = epsilon(noise_multiplier=sigma, sample_rate=1.0, steps=steps, delta=delta,
                      accountant="rdp")  # fmt: skip
    assert library < right / 1.01  # fractional orders: tighter, so only the note accepts it
    assert check_gaussian_rdp_epsilon(library) is True
    assert "fractional orders" in capsys.readouterr().out


def test_calibrated_sigma_right_rdp_too_little_and_too_much(capsys):
    setting = dict(sample_rate=0.01, steps=3000, delta=1e-5)
    right = noise_multiplier_for_epsilon(target_epsilon=2.0, **setting)
    assert check_calibrated_sigma(right) is True
    assert "✓" in capsys.readouterr().out
    rdp = noise_multiplier_for_epsilon(target_epsilon=2.0, accountant="rdp", **setting)
    assert rdp > right * 1.01  # RDP needs visibly more noise, so the hint can tell them apart
    assert check_calibrated_sigma(rdp) is False
    assert "RDP accountant's σ" in capsys.readouterr().out
    assert check_calibrated_sigma(right * 0.9) is False
    assert "too little noise" in capsys.readouterr().out
    assert check_calibrated_sigma(right * 1.3) is False
    assert "more noise than the budget needs" in capsys.readouterr().out
    assert check_calibrated_sigma(0.0) is False
    assert "too little noise" in capsys.readouterr().out
    assert check_calibrated_sigma(...) is False
    assert "not answered yet" in capsys.readouterr().out
    assert check_calibrated_sigma([1.0, 2.0]) is False  # a wrong answer never raises
    assert "one number" in capsys.readouterr().out


def test_calibrated_sigma_allows_no_slack_over_the_budget_and_shows_why(capsys):
    setting = dict(sample_rate=0.01, steps=3000, delta=1e-5)
    right = noise_multiplier_for_epsilon(target_epsilon=2.0, **setting)
    assert epsilon(noise_multiplier=right, **setting) <= 2.0
    # a sigma 0.05 % too small spends about 0.02 % too much: the old 0.1 % slack accepted it
    over = right * 0.9995
    spent = epsilon(noise_multiplier=over, **setting)
    assert 2.0 < spent < 2.002
    assert check_calibrated_sigma(over) is False
    out = capsys.readouterr().out
    printed = out.split("spends ε = ")[1].split(" ")[0]
    assert float(printed) > 2.0  # enough digits that the hint never reads "2 > 2"
    assert "never spends more than the budget" in out


def test_calibrated_sigma_classic_wrong_answers_get_hints(capsys):
    setting = dict(sample_rate=0.01, steps=3000, delta=1e-5)
    # a hard-coded sigma = 1, "the usual value"
    assert check_calibrated_sigma(1.0) is False
    assert "too little noise" in capsys.readouterr().out
    # calibrated at the wrong delta (1e-4, ten times the budget's)
    wrong_delta = noise_multiplier_for_epsilon(
        target_epsilon=2.0, sample_rate=0.01, steps=3000, delta=1e-4
    )
    assert check_calibrated_sigma(wrong_delta) is False
    assert "too little noise" in capsys.readouterr().out
    # the sampling rate from an off-by-one denominator, q = 1 / 99 (more sampling, more noise):
    # safe, but if it wastes more than 1 % of the budget it is not the answer
    off_by_one = noise_multiplier_for_epsilon(target_epsilon=2.0, sample_rate=1 / 99, **{
        k: v for k, v in setting.items() if k != "sample_rate"})  # fmt: skip
    spent = epsilon(noise_multiplier=off_by_one, **setting)
    assert check_calibrated_sigma(off_by_one) is (0.99 * 2.0 <= spent <= 2.0)
    capsys.readouterr()


@pytest.mark.parametrize("answer", [float("nan"), "1.3", [1.0, 2.0], -1.0, float("inf"), {}])
def test_calibrated_sigma_never_raises_on_a_wrong_answer(answer, capsys):
    assert check_calibrated_sigma(answer) is False
    assert "✗" in capsys.readouterr().out


def test_calibrated_sigma_none_is_unanswered(capsys):
    assert check_calibrated_sigma(None) is False
    assert "not answered yet" in capsys.readouterr().out
