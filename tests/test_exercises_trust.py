"""Notebook 12's exercise checks: right, typical wrong, unanswered, malformed."""

from __future__ import annotations

import math

import pytest

from fl_dp_lab.exercises import check_batch_clip_influence, check_local_noise_factor
from fl_dp_lab.federated.trust_models import noise_std_on_average


def test_local_noise_factor(capsys):
    kw = dict(epsilon=1.0, delta=1e-5, clip_norm=1.0, num_clients=100)
    right = noise_std_on_average(trust_model="local", **kw) / noise_std_on_average(
        trust_model="central", **kw
    )
    assert check_local_noise_factor(right) is True
    assert "✓" in capsys.readouterr().out
    assert check_local_noise_factor(100) is False
    assert "variances" in capsys.readouterr().out
    assert check_local_noise_factor(1.0) is False
    assert "m times" in capsys.readouterr().out
    assert check_local_noise_factor(...) is False
    assert "not answered yet" in capsys.readouterr().out
    with pytest.raises(TypeError, match="answer must be a real number"):
        check_local_noise_factor("ten")


def test_batch_clip_influence(capsys):
    assert check_batch_clip_influence((2, 1 / 32)) is True
    assert "✓" in capsys.readouterr().out
    assert check_batch_clip_influence((1, 1 / 32)) is False
    assert "opposite directions" in capsys.readouterr().out
    assert check_batch_clip_influence((2, 2 / 32)) is False
    assert "its own clipped gradient" in capsys.readouterr().out
    assert check_batch_clip_influence((2, math.inf)) is False
    assert check_batch_clip_influence([2]) is False
    assert "must have shape (2,)" in capsys.readouterr().out
    assert check_batch_clip_influence(...) is False
