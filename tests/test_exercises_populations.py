"""Notebook 09b's exercise checks: right, typical wrong, unanswered, malformed."""

from __future__ import annotations

import pytest
import torch

from fl_dp_lab.exercises import check_chance_of_taking_part, check_noise_on_the_mean
from fl_dp_lab.federated import dp_aggregate

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


def test_chance_of_taking_part_against_a_simulation(capsys):
    # Reference: 20,000 simulated users, each joining each of 200 rounds with q = 0.005.
    generator = torch.Generator().manual_seed(0)
    joined = (torch.rand(20_000, 200, generator=generator) < 0.005).any(1).double().mean()
    assert abs(float(joined) - 0.6330) < 0.015  # 1 - 0.995^200 = 0.633, std error 0.0034
    assert check_chance_of_taking_part(0.6330, sample_rate=0.005, rounds=200) is True
    assert "✓" in capsys.readouterr().out
    for wrong, words in [(1.0, "expected number"), (0.367, "never taking part"), (0.2, "Hint")]:
        assert check_chance_of_taking_part(wrong, sample_rate=0.005, rounds=200) is False
        assert words in capsys.readouterr().out
    assert check_chance_of_taking_part(None, sample_rate=0.005, rounds=200) is False
    assert "not answered yet" in capsys.readouterr().out
    with pytest.raises(TypeError):
        check_chance_of_taking_part([0.1, 0.2], sample_rate=0.005, rounds=200)
