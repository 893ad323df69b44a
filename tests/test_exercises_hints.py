"""Answers do not leak: docstrings, first hints and success messages; hints escalate with tries."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch
from torch import nn

from fl_dp_lab import exercises
from fl_dp_lab.accounting import epsilon
from fl_dp_lab.exercises._core import (
    SOLUTION_FROM,
    Hints,
    feedback,
    hints,
    registered_hints,
    reset_tries,
    tries,
)
from fl_dp_lab.populations import sample_client_ids


@pytest.fixture(autouse=True)
def _fresh_tries():
    reset_tries()
    yield
    reset_tries()


#: What must never be readable before the third try: each check's expected value(s), written
#: here independently of the checks, and the formula or call that gives the answer away.
ANSWERS: dict[str, list[float | str]] = {
    "check_first_difference": [(2.1**3 - 1.9**3) / 0.2, "f(x - h)) / (2"],
    "check_slope_function": ["(2 * h)", "(2h)", "2*h"],
    "check_numerical_gradient": ["(2h)", "(2 * h)", "e_i) - f("],
    "check_optimal_step": ["(3 eps)", "eps^(1/3)", "eps ** (1 / 3)"],
    "check_softmax_regression_gradient": ["(P - Y)^T", "(P - Y).T"],
    "check_per_example_norms": ["sqrt(||x_i||", "g.pow(2).sum()"],
    "check_row_ratio": ["grad_weight[i] / grad_bias[i]", "argmax"],
    "check_auc_by_pairs": ["0.5 P(tie)", "0.5 * (m == n)", "(m > n) + 0.5"],
    "check_rr_estimator": ["(2p - 1)", "(2 * p - 1)", "e^eps / (1 + e^eps)"],
    "check_private_sum": ["clip / epsilon", "np.clip(incomes, 0"],
    "check_gaussian_privacy_loss": ["||m - m'||^2 / (2 sigma^2)", "2 * mu", "(2 * sigma**2)"],
    "check_gaussian_rdp_epsilon": [19.80, 19.05, "orders / (2 * sigma"],
    "check_rdp_of_phases": ["/ (2 * sigma**2)", "rdp_to_epsilon(rdp=total", "for sigma, steps in"],
    "check_pld_epsilon": ["(1 - exp(eps - l))", "-np.expm1(e - losses", "pmf[above]"],
    "check_calibrate": ["math.sqrt(low * high)", "low, high = (low, mid)"],
    "check_clip_factors": [0.25, "min(1, C /"],
    "check_clip_function": ["min(1.0, max_grad_norm", "min(1, C / ||g||)"],
    "check_dp_sgd_step": ["noisy[name] / expected_batch_size", "add_noise(summed"],
    "check_opacus_sample_rate": [1 / 16, 250.0, "ceil(4000 / 256)"],
    "check_make_private_with_epsilon": ["PrivacyEngine().make_private_with_epsilon("],
    "check_opacus_compatible": ["ModuleValidator.fix("],
    "check_fedavg_average": ["/ sum_k n_k", "sizes.sum()"],
    "check_fedprox_update": ["mu * (p - p0)", "g + mu"],
    "check_budget_plan": ["sigma = 0.1 * q * K", "q = 10 / K"],
    "check_dp_aggregate": ["(sigma*C)^2 I)) /", "torch.randn("],
    "check_user_level_epsilon": [
        epsilon(noise_multiplier=1.0, sample_rate=0.05, steps=50, delta=1e-5),
        "sample_rate=0.05, steps=50",
    ],
    "check_clopper_pearson_upper": ["Beta(k + 1, n - k)", "k + 1, n - k)"],
    "check_audit_verdict": [".epsilon > claimed", "audit_scores(*scores"],
    "check_trials_needed": [297.0, 296.0],
    "check_flower_noise_std": [0.8 * 1.5 / 4, "0.8 * 1.5 / 4"],
    "check_empty_round_probability": [0.7**10, "0.7^10", "(1 - q)^K"],
    "check_train_mods": ["train_mods=[fixedclipping_mod]"],
    "check_client_app": [
        "local_update(model, x, y",
        "arrays_to_flat(message.content['arrays'], model)",
        "manual_seed(config['seed'])",
        "'num-examples': len(y)",
    ],
    "check_pairwise_sq_distances": ["a[:, None", "b[None, :", "unsqueeze(", "(n, 1, d)"],
    "check_train_step": ["optimizer.zero_grad()", "loss.backward()", "optimizer.step()"],
    "check_laplace_sampler": ["log1p(-", "-b times the log", "exponential_(", "randint(0, 2"],
    "check_renyi_monte_carlo": ["logsumexp((order - 1)", "E_P[(P / Q)^(a - 1)]", "/ (order - 1)"],
    "check_local_noise_factor": ["sqrt(100)", "= sqrt(m)", "is 10", "factor 10", "10 times"],
    "check_batch_clip_influence": [1 / 32, "(2, 1 / 32)", "twice C", "C / B"],
    "check_noise_on_the_mean": [0.6 * 2.0 / (1e-3 * 10**6), "/ (q * K)", "/ (qK)", "C/(qK)"],
    "check_round_sampler": ["torch.binomial(", "Binomial(K, q)", "torch.unique(", "randint(0,"],
}


#: An exercise number: notebook, an optional lettered part of it (00a, 09b), the exercise.
_NUMBER = r"Exercise (\d\d[a-z]?\.\d)"


def _leaks(text: str, answers: list[float | str]) -> list[str]:
    """The answers found in ``text``: strings verbatim, numbers at 2 to 4 significant digits."""
    found = []
    for answer in answers:
        if isinstance(answer, str):
            if answer in text:
                found.append(answer)
            continue
        for digits in (2, 3, 4):
            shown = f"{answer:.{digits}g}"
            if re.search(rf"(?<![\d.]){re.escape(shown)}(?![\d])", text):
                found.append(shown)
    return found


def test_every_check_has_a_row_in_the_answer_table_and_registered_hints():
    checks = {name for name in exercises.__all__ if name.startswith("check_")}
    assert checks <= set(ANSWERS), sorted(checks - set(ANSWERS))
    names = set(registered_hints())
    for check in checks:
        number = re.search(_NUMBER, getattr(exercises, check).__doc__)
        assert number, check
        assert f"Exercise {number[1]}" in names, check


@pytest.mark.parametrize("check", sorted(ANSWERS))
def test_no_docstring_states_its_answer(check):
    doc = getattr(exercises, check).__doc__
    assert not _leaks(doc, ANSWERS[check]), (check, _leaks(doc, ANSWERS[check]))


def test_the_scan_finds_an_answer_where_there_is_one():
    assert _leaks("the value is 12.01, the true slope plus h**2", ANSWERS["check_first_difference"])
    assert _leaks("eps = 2.67", ANSWERS["check_user_level_epsilon"])
    assert not _leaks("eps = 12.67 or 2.676", ANSWERS["check_user_level_epsilon"])


def _linear_setup():
    generator = torch.Generator().manual_seed(0)
    model = nn.Linear(3, 2)
    x = torch.randn(4, 3, generator=generator)
    y = torch.tensor([0, 1, 1, 0])
    return model, x, y


def _bn_model() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten())


def _fixed_size_round(num_clients, sample_rate, generator):
    return torch.randperm(num_clients, generator=generator)[: round(sample_rate * num_clients)]


def _train_less_client_app():
    from flwr.clientapp import ClientApp

    return ClientApp()  # answers no train message


#: A wrong answer for each check (called the same way three times in a row).
WRONG = {
    "check_first_difference": lambda: ((12.5,), {}),
    "check_slope_function": lambda: ((lambda f, x, h: 0.0,), {}),
    "check_numerical_gradient": lambda: ((lambda f, x, h: np.zeros_like(x),), {}),
    "check_optimal_step": lambda: ((lambda eps: eps,), {}),
    "check_softmax_regression_gradient": lambda: (
        (lambda w, b, x, y: (np.zeros_like(w), np.zeros_like(b)),),
        {},
    ),
    "check_per_example_norms": lambda: ((torch.zeros(4), *_linear_setup()), {}),
    "check_row_ratio": lambda: ((lambda w, b: w[0] * 0,), {}),
    "check_auc_by_pairs": lambda: ((lambda m, n: 0.75,), {}),
    "check_rr_estimator": lambda: ((lambda r, e: 0.5,), {}),
    "check_private_sum": lambda: ((lambda incomes, *, clip, epsilon, rng: 0.0,), {}),
    "check_gaussian_privacy_loss": lambda: (
        (lambda o, m, mp, s: np.zeros(len(o)), lambda m, mp, s: (0.0, 0.0)),
        {},
    ),
    "check_gaussian_rdp_epsilon": lambda: ((3.0,), {}),
    "check_rdp_of_phases": lambda: ((lambda phases, delta: 3.0,), {}),
    "check_pld_epsilon": lambda: ((lambda losses, pmf, infinity_mass, delta: 50.0,), {}),
    "check_calibrate": lambda: ((lambda spent, target: 50.0,), {}),
    "check_clip_factors": lambda: (([1.0, 0.5, 0.5],), {}),
    "check_clip_function": lambda: ((lambda g, c: g,), {}),
    "check_dp_sgd_step": lambda: ((lambda model, x, y, **setting: None,), {}),
    "check_opacus_sample_rate": lambda: ((0.1, 400), {}),
    "check_make_private_with_epsilon": lambda: (
        (lambda m, o, loader, **budget: (m, o, loader),),
        {},
    ),
    "check_opacus_compatible": lambda: ((_bn_model(),), {}),
    "check_fedavg_average": lambda: ((lambda u, n: u[0],), {}),
    "check_fedprox_update": lambda: ((lambda model, x, y, **setting: torch.zeros(1),), {}),
    "check_budget_plan": lambda: (
        (
            lambda t, *, num_clients, delta: dict(
                noise_multiplier=9.0, sample_rate=0.5, rounds=1, clip_norm=1.0
            ),
        ),
        {},
    ),
    "check_dp_aggregate": lambda: ((lambda u, c, s, m, g: torch.zeros(u.shape[1]),), {}),
    "check_user_level_epsilon": lambda: ((10.0,), {}),
    "check_clopper_pearson_upper": lambda: ((lambda k, n, confidence: 0.5,), {}),
    "check_audit_verdict": lambda: ((lambda mechanism, trials: True,), {}),
    "check_trials_needed": lambda: ((1000,), {}),
    "check_flower_noise_std": lambda: ((0.9,), {}),
    "check_empty_round_probability": lambda: ((0.5,), {}),
    "check_client_app": lambda: ((_train_less_client_app(),), {}),
    "check_pairwise_sq_distances": lambda: ((lambda a, b: torch.zeros(len(a), len(b)),), {}),
    "check_train_step": lambda: ((lambda model, optimizer, x, y: 0.0,), {}),
    "check_laplace_sampler": lambda: ((lambda n, scale, g: torch.rand(n, generator=g),), {}),
    "check_renyi_monte_carlo": lambda: ((lambda log_ratios, order: 0.0,), {}),
    "check_local_noise_factor": lambda: ((3.0,), {}),
    "check_batch_clip_influence": lambda: (((0.5, 0.5),), {}),
    "check_noise_on_the_mean": lambda: (
        (5.0,),
        dict(noise_multiplier=0.6, clip_norm=2.0, sample_rate=1e-3, num_clients=10**6),
    ),
    "check_round_sampler": lambda: ((_fixed_size_round,), {}),
}
#: checks whose wrong answer costs a Flower run; their tiers are the same mechanism
SLOW = {"check_train_mods"}


def test_every_check_has_a_wrong_answer_or_is_named_slow():
    assert set(ANSWERS) == set(WRONG) | SLOW


@pytest.mark.parametrize("check", sorted(WRONG))
def test_hints_escalate_and_the_solution_waits_for_the_third_try(check, capsys):
    function = getattr(exercises, check)
    name = "Exercise " + re.search(_NUMBER, function.__doc__)[1]
    tiers = registered_hints()[name]
    outputs = []
    for attempt in (1, 2, 3, 4):
        args, kwargs = WRONG[check]()
        assert function(*args, **kwargs) is False
        outputs.append(capsys.readouterr().out)
        assert tries(name) == attempt
    first, second, third, fourth = outputs
    assert "(try 1)" in first and tiers.idea in first, first
    assert tiers.step in second and tiers.step not in first, second
    for early in (first, second):
        assert tiers.solution not in early and "Solution:" not in early, early
    assert f"Solution: {tiers.solution}" in third and tiers.solution in fourth
    # the first hint names the idea, never the value, the formula or the call
    assert not _leaks(first, ANSWERS[check]), (check, _leaks(first, ANSWERS[check]))
    reset_tries(name)
    assert tries(name) == 0
    args, kwargs = WRONG[check]()
    function(*args, **kwargs)
    assert tiers.idea in capsys.readouterr().out  # after a reset, the idea again


def test_tries_are_counted_per_exercise_and_reset_one_or_all(capsys):
    hints("Exercise 99.1", idea="i1", step="s1", solution="x1")
    hints("Exercise 99.2", idea="i2", step="s2", solution="x2")
    for _ in range(SOLUTION_FROM):
        feedback("Exercise 99.1", False, success="")
    feedback("Exercise 99.2", False, success="", hint="named slip.")
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith("Hint: Idea: i1") and out[1].endswith("Hint: Next step: s1")
    assert out[2].endswith("Hint: Solution: x1")
    assert out[3] == "✗ Exercise 99.2: not yet (try 1). Hint: named slip. Idea: i2"
    assert (tries("Exercise 99.1"), tries("Exercise 99.2")) == (3, 1)
    assert feedback("Exercise 99.1", True, success="done.") is True
    assert "✓ Exercise 99.1: correct. done." in capsys.readouterr().out
    reset_tries("Exercise 99.1")
    assert (tries("Exercise 99.1"), tries("Exercise 99.2")) == (0, 1)
    reset_tries()
    assert tries("Exercise 99.2") == 0
    assert Hints(idea="a", step="b", solution="c").at(7) == "Solution: c"


def _cp_upper(k, n, confidence):
    from scipy import stats

    return 1.0 if k == n else stats.beta.ppf(1 - (1 - confidence) / 2, k + 1, n - k)


#: A right answer for each check whose success message could carry numbers.
RIGHT = {
    "check_first_difference": lambda: (((2.1**3 - 1.9**3) / 0.2,), {}),
    "check_gaussian_rdp_epsilon": lambda: (
        (
            epsilon(
                noise_multiplier=10.0, sample_rate=1.0, steps=1000, delta=1e-5, accountant="rdp"
            ),
        ),
        {},
    ),
    "check_clip_factors": lambda: (([1.0, 0.5, 0.25],), {}),
    "check_opacus_sample_rate": lambda: ((1 / 16, 250), {}),
    "check_user_level_epsilon": lambda: (
        (epsilon(noise_multiplier=1.0, sample_rate=0.05, steps=50, delta=1e-5),),
        {},
    ),
    "check_clopper_pearson_upper": lambda: ((_cp_upper,), {}),
    "check_trials_needed": lambda: ((297,), {}),
    "check_flower_noise_std": lambda: ((0.3,), {}),
    "check_empty_round_probability": lambda: ((0.7**10,), {}),
    "check_local_noise_factor": lambda: ((math.sqrt(100),), {}),
    "check_batch_clip_influence": lambda: (((2.0, 1 / 32),), {}),
    "check_noise_on_the_mean": lambda: (
        (0.6 * 2.0 / (1e-3 * 10**6),),
        dict(noise_multiplier=0.6, clip_norm=2.0, sample_rate=1e-3, num_clients=10**6),
    ),
    "check_round_sampler": lambda: (
        (lambda k, q, g: sample_client_ids(k, sample_rate=q, generator=g),),
        {},
    ),
}


@pytest.mark.parametrize("check", sorted(RIGHT))
def test_success_messages_do_not_answer_another_exercise(check, capsys):
    args, kwargs = RIGHT[check]()
    assert getattr(exercises, check)(*args, **kwargs) is True
    out = capsys.readouterr().out.split("correct.", 1)[1]  # the message, not the exercise's name
    others = {other: answers for other, answers in ANSWERS.items() if other != check}
    numbers_only = {k: [a for a in v if not isinstance(a, str)] for k, v in others.items()}
    leaked = {k: _leaks(out, v) for k, v in numbers_only.items() if _leaks(out, v)}
    assert not leaked, (check, out, leaked)


def test_a_float32_answer_is_still_right_after_many_wrong_tries(capsys):
    for _ in range(5):
        exercises.check_flower_noise_std(0.9)
    assert exercises.check_flower_noise_std(np.float32(0.3)) is True
    assert math.isclose(float(np.float32(0.3)), 0.3, rel_tol=1e-7)
