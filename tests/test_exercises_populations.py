"""Notebook 09b's exercise checks: right, typical wrong, unanswered, malformed."""

from __future__ import annotations

import pytest
import torch

from fl_dp_lab.exercises import check_noise_on_the_mean, check_round_sampler
from fl_dp_lab.federated import dp_aggregate
from fl_dp_lab.populations import sample_client_ids

SETTING = {"noise_multiplier": 0.6, "clip_norm": 2.0, "sample_rate": 1e-3, "num_clients": 10**6}


def test_noise_on_the_mean_matches_dp_aggregate_and_names_the_usual_slips(capsys):
    # Reference: the empirical std of dp_aggregate's output on all-zero updates.
    zeros = torch.zeros(0, 200_000, dtype=torch.float64)
    noise = dp_aggregate(
        zeros,
        clip_norm=2.0,
        noise_multiplier=0.6,
        expected_clients=1000.0,
        generator=torch.Generator().manual_seed(0),
    )
    measured = float(noise.std())  # 200,000 draws: relative standard error 0.16 %
    assert check_noise_on_the_mean(measured, **SETTING) is True
    assert "✓" in capsys.readouterr().out
    for wrong, words in [
        (1.2, "noise on the sum"),
        (0.6e-3, "sigma times C"),
        (1.2e-6, "not by K"),
        (1.44e-6, "variance"),
        (5.0, "Hint"),
    ]:
        assert check_noise_on_the_mean(wrong, **SETTING) is False
        assert words in capsys.readouterr().out
    assert check_noise_on_the_mean(..., **SETTING) is False
    assert "not answered yet" in capsys.readouterr().out
    with pytest.raises(TypeError, match="answer must be a real number"):
        check_noise_on_the_mean("1e-3", **SETTING)


def _poisson_round(num_clients, sample_rate, generator):
    """The right answer, written as the exercise asks: a Binomial size, then distinct ids."""
    size = int(
        torch.binomial(
            torch.tensor(float(num_clients), dtype=torch.float64),
            torch.tensor(sample_rate, dtype=torch.float64),
            generator=generator,
        )
    )
    ids = torch.empty(0, dtype=torch.int64)
    while len(ids) < size:
        more = torch.randint(0, num_clients, (size - len(ids),), generator=generator)
        ids = torch.unique(torch.cat([ids, more]))
    return ids


def _mask_round(num_clients, sample_rate, generator):  # right law, one coin per client
    return torch.nonzero(torch.rand(num_clients, generator=generator) < sample_rate).flatten()


def _fixed_size_round(num_clients, sample_rate, generator):  # Flower's way: always qK clients
    return torch.randperm(num_clients, generator=generator)[: round(sample_rate * num_clients)]


def _with_replacement(num_clients, sample_rate, generator):  # a client can come twice
    size = int(torch.binomial(torch.tensor(float(num_clients)), torch.tensor(sample_rate),
                              generator=generator))  # fmt: skip
    return torch.randint(0, num_clients, (size,), generator=generator)


def _lowest_ids(num_clients, sample_rate, generator):  # right sizes, always the first clients
    size = int(torch.binomial(torch.tensor(float(num_clients)), torch.tensor(sample_rate),
                              generator=generator))  # fmt: skip
    return torch.arange(size)


def _global_rng(num_clients, sample_rate, generator):  # ignores the generator it is given
    return _poisson_round(num_clients, sample_rate, torch.Generator().manual_seed(
        int(torch.randint(0, 2**31, (1,)))))  # fmt: skip


def _poisson_size(num_clients, sample_rate, generator):  # size ~ Poisson(qK), capped at K
    rate = torch.tensor(float(num_clients * sample_rate))
    size = min(num_clients, int(torch.poisson(rate, generator=generator)))
    return torch.randperm(num_clients, generator=generator)[:size]


def test_round_sampler_accepts_the_library_and_a_hand_written_sampler(capsys):
    assert check_round_sampler(lambda k, q, g: sample_client_ids(k, sample_rate=q, generator=g))
    assert "✓ Exercise 09b.2" in capsys.readouterr().out
    assert check_round_sampler(_poisson_round)
    assert check_round_sampler(lambda k, q, g: _poisson_round(k, q, g).tolist())  # a list too


@pytest.mark.parametrize(
    ("sampler", "named"),
    [
        (_mask_round, "something of length K"),
        (_fixed_size_round, "never changes"),
        (_with_replacement, "appears twice"),
        (_lowest_ids, "far more often than others"),
        (_global_rng, "draw from the generator passed in"),
        (_poisson_size, "vary"),
        (lambda k, q, g: None, "returned None"),
    ],
)
def test_round_sampler_names_each_plausible_slip(sampler, named, capsys):
    assert check_round_sampler(sampler) is False
    out = capsys.readouterr().out
    assert "✗ Exercise 09b.2" in out and named in out, out


@pytest.mark.slow
def test_round_sampler_stops_a_loop_over_every_client(capsys):
    def loop(num_clients, sample_rate, generator):  # one coin per client, in Python
        coins = (torch.rand(1, generator=generator) < sample_rate for _ in range(num_clients))
        return [k for k, joined in enumerate(coins) if joined]

    assert check_round_sampler(loop) is False
    assert "did not finish in 5 s" in capsys.readouterr().out


def test_round_sampler_unanswered_or_malformed(capsys):
    assert check_round_sampler(...) is False
    assert "not answered yet" in capsys.readouterr().out
    with pytest.raises(TypeError):
        check_round_sampler(0.633)
