"""Tests of the exercise checks of notebook 11."""

from __future__ import annotations

import numpy as np
import pytest
from flwr.clientapp.mod import fixedclipping_mod

from fl_dp_lab.exercises import (
    check_empty_round_probability,
    check_flower_noise_std,
    check_train_mods,
)
from fl_dp_lab.flower.app import make_client_app


def test_flower_noise_std(capsys):
    assert check_flower_noise_std(0.8 * 1.5 / 4)
    assert "✓" in capsys.readouterr().out
    assert not check_flower_noise_std(0.8 * 1.5)  # std of the sum, not the average
    assert "divide by the number of sampled clients" in capsys.readouterr().out
    assert not check_flower_noise_std(0.2)  # forgot C
    assert "sensitivity C" in capsys.readouterr().out
    assert check_flower_noise_std(np.float32(0.3))  # float32 rounding is not a wrong answer
    assert not check_flower_noise_std(...)
    assert "not answered yet" in capsys.readouterr().out
    with pytest.raises(TypeError):
        check_flower_noise_std("0.3")


def test_empty_round_probability(capsys):
    assert check_empty_round_probability(0.7**10)
    assert not check_empty_round_probability(0)  # thinks sampling is fixed-size
    assert "every client flips its own coin" in capsys.readouterr().out
    assert not check_empty_round_probability(0.3**10)
    assert "stay out" in capsys.readouterr().out
    assert check_empty_round_probability(0.0282)  # the printed value, 3 digits
    assert not check_empty_round_probability(0.02975)  # a simulated frequency
    assert "simulated frequency" in capsys.readouterr().out
    assert not check_empty_round_probability(...)
    with pytest.raises(TypeError):
        check_empty_round_probability([0.1, 0.2])


def test_train_mods(capsys):
    assert check_train_mods(make_client_app(train_mods=[fixedclipping_mod]))
    assert "✓" in capsys.readouterr().out
    assert not check_train_mods(make_client_app(app_mods=[fixedclipping_mod]))
    assert "evaluate messages fail" in capsys.readouterr().out
    assert not check_train_mods(make_client_app())  # no clipping at all
    assert "not clipped" in capsys.readouterr().out
    assert not check_train_mods(...)
    with pytest.raises(TypeError):
        check_train_mods(fixedclipping_mod)
