"""Notebooks 08-09's exercise checks: right, typical wrong, unanswered, malformed."""

from __future__ import annotations

import copy
import re

import pytest
import torch

from fl_dp_lab.accounting import epsilon
from fl_dp_lab.exercises import (
    check_budget_plan,
    check_dp_aggregate,
    check_fedavg_average,
    check_fedprox_update,
    check_user_level_epsilon,
)
from fl_dp_lab.federated.client_updates import flatten_parameters
from fl_dp_lab.training import shuffled_batches


def test_fedavg_average_right_unweighted_and_malformed(capsys):
    def right(updates, sizes):
        sizes = torch.as_tensor(sizes, dtype=updates.dtype)
        return (sizes[:, None] * updates).sum(0) / sizes.sum()

    assert check_fedavg_average(right) is True
    assert "✓" in capsys.readouterr().out
    assert check_fedavg_average(lambda updates, sizes: updates.mean(0)) is False
    assert "plain mean" in capsys.readouterr().out
    assert check_fedavg_average(lambda updates, sizes: (sizes[:, None] * updates).sum(0)) is False
    assert "Hint" in capsys.readouterr().out
    assert check_fedavg_average(...) is False
    assert "not answered yet" in capsys.readouterr().out
    with pytest.raises(TypeError, match="average must be a function"):
        check_fedavg_average(3.0)
    assert check_fedavg_average(lambda updates, sizes: updates) is False
    assert "shape (3, 2), but it must have shape (2,)" in capsys.readouterr().out
    assert check_fedavg_average(lambda updates, sizes: None) is False  # forgot to return
    assert "does the function end with `return`" in capsys.readouterr().out


def _fedprox(sign=1.0, factor=1.0, copy_model=True, weights=False):
    """FedProx's local update, right or with one slip."""

    def fedprox_update(model, x, y, *, epochs, batch_size, lr, mu, generator):
        local = copy.deepcopy(model) if copy_model else model
        before = flatten_parameters(model).clone()
        params = list(local.parameters())
        anchor = [p.detach().clone() for p in params]
        for _ in range(epochs):
            for batch in shuffled_batches(len(x), batch_size, generator):
                loss = torch.nn.functional.cross_entropy(local(x[batch]), y[batch])
                grads = torch.autograd.grad(loss, params)
                with torch.no_grad():
                    for p, g, p0 in zip(params, grads, anchor, strict=True):
                        p -= lr * (g + sign * factor * mu * (p - p0))
        after = flatten_parameters(local)
        return after if weights else after - before

    return fedprox_update


def test_fedprox_update_right_answer_passes(capsys):
    assert check_fedprox_update(_fedprox()) is True
    assert "✓" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("slip", "words"),
    [
        (dict(sign=-1.0), "pushes away"),
        (dict(factor=0.5), "wrong factor"),
        (dict(factor=2.0), "wrong factor"),
        (dict(factor=0.0), "proximal term is missing"),
        (dict(copy_model=False), "caller's model changed"),
        (dict(weights=True), "new weights"),
    ],
)
def test_fedprox_update_rejects_the_usual_slips(slip, words, capsys):
    assert check_fedprox_update(_fedprox(**slip)) is False
    out = capsys.readouterr().out
    assert "✗" in out and words in out, out


def test_fedprox_update_unanswered_and_malformed(capsys):
    assert check_fedprox_update(...) is False
    assert "not answered yet" in capsys.readouterr().out
    with pytest.raises(TypeError, match="fedprox_update must be a function"):
        check_fedprox_update(0.1)


def _dp_average(clip=True, denominator="expected", noise_scale="sigma_c"):
    def dp_average(updates, clip_norm, noise_multiplier, expected_clients, generator):
        rows = updates
        if clip:
            norms = updates.norm(dim=1, keepdim=True).clamp(min=1e-12)
            rows = updates * torch.clamp(clip_norm / norms, max=1.0)
        total = rows.sum(0)
        std = noise_multiplier * clip_norm if noise_scale == "sigma_c" else noise_multiplier
        total = total + std * torch.randn(total.shape, generator=generator, dtype=updates.dtype)
        count = expected_clients if denominator == "expected" else len(updates)
        return total / count

    return dp_average


def test_dp_aggregate_right_and_the_usual_slips(capsys):
    assert check_dp_aggregate(_dp_average()) is True
    assert "✓" in capsys.readouterr().out
    assert check_dp_aggregate(_dp_average(clip=False)) is False
    assert "clip every row" in capsys.readouterr().out
    assert check_dp_aggregate(_dp_average(denominator="actual")) is False
    assert "how many clients came" in capsys.readouterr().out
    assert check_dp_aggregate(_dp_average(noise_scale="sigma")) is False
    assert "noise of std sigma" in capsys.readouterr().out

    def slip(noise_std=None, clip_to=None, after=False, safe=True):
        """A dp_average with one slip: noise_std(sigma, C), a fixed clip_to, noise after /."""

        def dp_average(updates, clip_norm, noise_multiplier, expected_clients, generator):
            c = clip_norm if clip_to is None else clip_to
            norms = updates.norm(dim=1, keepdim=True)
            if safe:
                total = (updates * torch.clamp(c / norms.clamp(min=1e-12), max=1.0)).sum(0)
            else:  # u / ||u|| * min(||u||, C): 0/0 on a zero update
                total = (updates / norms * norms.clamp(max=c)).sum(0)
            std = (
                noise_multiplier * clip_norm
                if noise_std is None
                else noise_std(noise_multiplier, clip_norm)
            )
            noise = std * torch.randn(total.shape, generator=generator, dtype=updates.dtype)
            if after:
                return total / expected_clients + noise
            return (total + noise) / expected_clients

        return dp_average

    # each slip that sigma * C = 1 would hide (variance = std = sqrt(std)) is caught
    assert check_dp_aggregate(slip(noise_std=lambda s, c: (s * c) ** 2)) is False
    assert "the variance used as the std" in capsys.readouterr().out
    assert check_dp_aggregate(slip(noise_std=lambda s, c: (s * c) ** 0.5)) is False
    assert "noise std came out" in capsys.readouterr().out
    assert check_dp_aggregate(slip(noise_std=lambda s, c: c)) is False  # noise even at sigma 0
    assert "without noise" in capsys.readouterr().out
    assert check_dp_aggregate(slip(clip_to=1.0)) is False
    assert "clipped to norm 1" in capsys.readouterr().out
    assert check_dp_aggregate(slip(after=True)) is False
    assert "added after the division" in capsys.readouterr().out
    assert check_dp_aggregate(slip(safe=False)) is False  # 0/0 on the all-zero updates
    assert "not finite" in capsys.readouterr().out
    assert check_dp_aggregate(slip()) is True
    assert check_dp_aggregate(...) is False
    assert "not answered yet" in capsys.readouterr().out
    with pytest.raises(TypeError, match="dp_average must be a function"):
        check_dp_aggregate(torch.zeros(2))


def test_user_level_epsilon_catches_per_round_and_no_sampling(capsys):
    right = epsilon(noise_multiplier=1.0, sample_rate=0.05, steps=50, delta=1e-5)
    assert check_user_level_epsilon(right) is True
    one_round = epsilon(noise_multiplier=1.0, sample_rate=0.05, steps=1, delta=1e-5)
    assert check_user_level_epsilon(one_round) is False
    assert "one round's epsilon" in capsys.readouterr().out
    no_sampling = epsilon(noise_multiplier=1.0, sample_rate=1.0, steps=50, delta=1e-5)
    assert check_user_level_epsilon(no_sampling) is False
    assert "amplification" in capsys.readouterr().out
    assert check_user_level_epsilon(2 * right) is False
    assert "✗" in capsys.readouterr().out
    rdp = epsilon(noise_multiplier=1.0, sample_rate=0.05, steps=50, delta=1e-5, accountant="rdp")
    assert rdp > 1.1 * right  # far enough from PLD that only the RDP branch accepts it
    assert check_user_level_epsilon(rdp) is True
    assert "RDP accountant" in capsys.readouterr().out
    assert check_user_level_epsilon(...) is False
    assert check_user_level_epsilon([right]) is True  # a one-element list is a number
    with pytest.raises(TypeError, match="answer must be a real number"):
        check_user_level_epsilon([right, right])


def _weighted(shift=0.0, divide_by="total", power=1):
    """A FedAvg average with one slip: weights n_k + shift, n_k**power, another denominator."""

    def average(updates, sizes):
        weights = torch.as_tensor(sizes, dtype=updates.dtype) ** power + shift
        total = (weights[:, None] * updates).sum(0)
        if divide_by == "total":
            return total / weights.sum()
        return total / len(weights) if divide_by == "clients" else total

    return average


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        # the hand-checkable case's answer, copied: (1*[1,0] + 2*[0,1] + 7*[2,2]) / 10
        (lambda updates, sizes: torch.tensor([1.5, 1.6]), "same vector for different updates"),
        (lambda updates, sizes: torch.zeros(updates.shape[1]), "same vector for different"),
        (lambda updates, sizes: updates.mean(0), "plain mean"),
        (_weighted(shift=1.0), "off by one (one more"),
        (_weighted(shift=-1.0), "off by one (one less"),
        (_weighted(divide_by="nothing"), "not yet an average"),
        (_weighted(divide_by="clients"), "dividing by the number of clients"),
        (_weighted(power=2), "not the size-weighted average"),
        (lambda updates, sizes: updates[0], "not the size-weighted average"),
    ],
)
def test_fedavg_average_rejects_wrong_answers_with_their_hint(answer, hint, capsys):
    assert check_fedavg_average(answer) is False
    out = capsys.readouterr().out
    assert re.match(r"✗ Exercise 08\.1: not yet \(try \d+\)\. Hint: ", out) and hint in out


def test_fedavg_average_accepts_right_answers_written_differently(capsys):
    def with_numpy(updates, sizes):
        u, n = updates.numpy().astype("float64"), sizes.numpy().astype("float64")
        return (n @ u) / n.sum()

    for right in (_weighted(), with_numpy, lambda u, s: (s / s.sum()) @ u):
        assert check_fedavg_average(right) is True
        assert "✓" in capsys.readouterr().out
    # the constant that the one hand-checkable case alone would have accepted
    assert _weighted()(
        torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 2.0]]), torch.tensor([1.0, 2.0, 7.0])
    ).tolist() == pytest.approx([1.5, 1.6])


def _plan(target, *, num_clients, delta):
    """10 expected clients a round, noise a tenth of C on the average, the most rounds."""
    q = 10 / num_clients
    sigma = 0.1 * q * num_clients

    def spend(rounds):
        return epsilon(noise_multiplier=sigma, sample_rate=q, steps=rounds, delta=delta)

    low, high = 1, 2
    while spend(high) <= target:
        low, high = high, 2 * high
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if spend(mid) <= target else (low, mid)
    return dict(noise_multiplier=sigma, sample_rate=q, rounds=low, clip_norm=1.0)


def test_budget_plan_right_answer_passes(capsys):
    assert check_budget_plan(_plan) is True
    assert "defend your choice" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("plan", "words"),
    [
        (dict(noise_multiplier=0.3, rounds=5000), "over the budget"),
        (dict(noise_multiplier=1.0, rounds=20), "left unused"),
        (dict(noise_multiplier=5.0, rounds=50), "noise on the average update"),
        (dict(noise_multiplier=20.0, rounds=5, sample_rate=0.5), "too few to train"),
        (dict(noise_multiplier=2.0, rounds=100, sample_rate=1e-3), "clients a round"),
    ],
)
def test_budget_plan_rejects_the_usual_slips(plan, words, capsys):
    def fixed(target, *, num_clients, delta):
        return dict(dict(sample_rate=10 / num_clients, clip_norm=1.0), **plan)

    assert check_budget_plan(fixed) is False
    out = capsys.readouterr().out
    assert "✗" in out and words in out, out


def test_budget_plan_unanswered_and_malformed(capsys):
    assert check_budget_plan(...) is False
    assert "not answered yet" in capsys.readouterr().out
    with pytest.raises(TypeError, match="must return a dict"):
        check_budget_plan(lambda target, *, num_clients, delta: (1.0, 0.01, 100, 1.0))
