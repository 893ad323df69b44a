"""Notebooks 05a and 05b's exercise checks: right, typical wrong, unanswered, malformed."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fl_dp_lab.accounting import (
    epsilon,
    noise_multiplier_for_epsilon,
    privacy_loss_distribution,
    rdp_to_epsilon,
)
from fl_dp_lab.exercises import (
    check_calibrate,
    check_gaussian_rdp_epsilon,
    check_pld_epsilon,
    check_rdp_of_phases,
    reset_tries,
)


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


def _bisect(spent, target, low=0.1, high=100.0, keep="high", ratio=1 + 1e-4):
    while high / low > ratio:
        mid = math.sqrt(low * high)
        low, high = (low, mid) if spent(mid) <= target else (mid, high)
    return high if keep == "high" else low


def test_calibrate_right_answers_pass(capsys):
    assert check_calibrate(_bisect) is True
    assert "✓" in capsys.readouterr().out

    def linear(spent, target, low=0.1, high=100.0):  # plain bisection, to an absolute 1e-5
        while high - low > 1e-5:
            mid = (low + high) / 2
            low, high = (low, mid) if spent(mid) <= target else (mid, high)
        return high

    assert check_calibrate(linear) is True


def test_calibrate_finds_what_the_library_finds():
    setting = dict(sample_rate=0.01, steps=3000, delta=1e-5)
    ours = _bisect(lambda s: epsilon(noise_multiplier=s, accountant="rdp", **setting), 2.0)
    library = noise_multiplier_for_epsilon(target_epsilon=2.0, accountant="rdp", **setting)
    assert abs(ours / library - 1) < 2e-3


def test_calibrate_rejects_the_usual_slips(capsys):
    def grid(spent, target):  # steps of 10 %: within budget, but wasteful
        sigma = 0.1
        while spent(sigma) > target:
            sigma *= 1.1
        return sigma

    for answer, words in (
        (lambda spent, target: _bisect(spent, target, keep="low"), "over the budget"),
        (grid, "more noise than needed"),
        (lambda spent, target: _bisect(spent, target, ratio=1.05), "more noise than needed"),
        (lambda spent, target: 2.0, "same sigma"),
        (lambda spent, target: -1.0, "finite number > 0"),
    ):
        assert check_calibrate(answer) is False
        out = capsys.readouterr().out
        assert "✗" in out and words in out, out


def test_calibrate_unanswered_and_malformed(capsys):
    assert check_calibrate(None) is False
    assert "not answered yet" in capsys.readouterr().out
    with pytest.raises(TypeError, match="calibrate must be a function"):
        check_calibrate(1.3)
    with pytest.raises(TypeError, match=r"calibrate\(spent, target\) must be a real number"):
        check_calibrate(lambda spent, target: "1.3")


ORDERS = np.arange(2, 257)


def _run_epsilon(phases, delta):
    total = sum(steps * ORDERS / (2 * sigma**2) for sigma, steps in phases)
    return rdp_to_epsilon(rdp=total, orders=ORDERS, delta=delta)[0]


def test_rdp_of_phases_right_answer_passes(capsys):
    assert check_rdp_of_phases(_run_epsilon) is True
    assert "✓" in capsys.readouterr().out


def test_rdp_of_phases_rejects_the_usual_slips(capsys):
    for answer, words in (
        (lambda phases, delta: sum(_run_epsilon([p], delta) for p in phases), "adds the epsilons"),
        (lambda phases, delta: _run_epsilon([(s, 1) for s, _ in phases], delta), "one step per"),
        (lambda phases, delta: _run_epsilon(phases[-1:], delta), "one phase only"),
        (lambda phases, delta: 2.0 * _run_epsilon(phases, delta), "your function returns"),
    ):
        reset_tries()
        assert check_rdp_of_phases(answer) is False
        out = capsys.readouterr().out
        assert "✗" in out and words in out, out


def test_rdp_of_phases_classic_conversion_and_a_constant_are_named(capsys):
    def classic(phases, delta):
        total = sum(steps * ORDERS / (2 * sigma**2) for sigma, steps in phases)
        return float(np.min(total + math.log(1 / delta) / (ORDERS - 1)))

    assert check_rdp_of_phases(classic) is False
    assert "classic conversion" in capsys.readouterr().out
    first = _run_epsilon([(10.0, 100), (30.0, 2000)], 1e-5)  # the first hidden run, right
    assert check_rdp_of_phases(lambda phases, delta: first) is False
    assert "same epsilon for different runs" in capsys.readouterr().out


def test_rdp_of_phases_unanswered_and_malformed(capsys):
    assert check_rdp_of_phases(...) is False
    assert "not answered yet" in capsys.readouterr().out
    with pytest.raises(TypeError, match="run_epsilon must be a function"):
        check_rdp_of_phases(4.2)
    with pytest.raises(TypeError, match=r"run_epsilon\(phases, delta\) must be a real number"):
        check_rdp_of_phases(lambda phases, delta: "4.2")


def _delta_of(losses, pmf, infinity_mass, eps):
    above = losses > eps
    return infinity_mass + np.sum(pmf[above] * -np.expm1(eps - losses[above]))


def _pld_epsilon(losses, pmf, infinity_mass, delta, keep="high", steps=60):
    low, high = 0.0, float(losses.max())
    for _ in range(steps):
        mid = (low + high) / 2
        low, high = (
            (low, mid) if _delta_of(losses, pmf, infinity_mass, mid) <= delta else (mid, high)
        )
    return high if keep == "high" else low


def test_pld_epsilon_right_answer_passes_and_matches_the_accountant(capsys):
    assert check_pld_epsilon(_pld_epsilon) is True
    assert "✓" in capsys.readouterr().out
    setting = dict(noise_multiplier=1.0, sample_rate=0.05, steps=50)
    losses, pmf, infinity_mass = privacy_loss_distribution(**setting)  # remove direction
    ours = _pld_epsilon(losses, pmf, infinity_mass, 1e-5)
    assert ours <= epsilon(delta=1e-5, accountant="pld", **setting) * (1 + 1e-9)


def test_pld_epsilon_rejects_the_usual_slips(capsys):
    def tail(losses, pmf, infinity_mass, delta):
        low, high = 0.0, float(losses.max())
        for _ in range(60):
            mid = (low + high) / 2
            within = infinity_mass + pmf[losses > mid].sum() <= delta
            low, high = (low, mid) if within else (mid, high)
        return high

    for answer, words in (
        (tail, "tail P(L > eps)"),
        (lambda lo, p, i, d: _pld_epsilon(lo, p, 0.0, d), "counts in full"),
        (lambda lo, p, i, d: _pld_epsilon(lo, p, i, d, keep="low", steps=8), "over the budget"),
        (lambda lo, p, i, d: _pld_epsilon(lo, p, i, d, steps=8), "a smaller epsilon would too"),
        (lambda lo, p, i, d: 50.0, "smaller epsilon would too"),
        (lambda lo, p, i, d: -1.0, "finite number >= 0"),
    ):
        reset_tries()
        assert check_pld_epsilon(answer) is False
        out = capsys.readouterr().out
        assert "✗" in out and words in out, out


def test_pld_epsilon_unanswered_and_malformed(capsys):
    assert check_pld_epsilon(None) is False
    assert "not answered yet" in capsys.readouterr().out
    with pytest.raises(TypeError, match="pld_epsilon must be a function"):
        check_pld_epsilon(0.9)
    with pytest.raises(TypeError, match="must be a real number"):
        check_pld_epsilon(lambda losses, pmf, infinity_mass, delta: "0.9")
