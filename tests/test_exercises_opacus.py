"""Notebook 07's exercise checks (fl_dp_lab.exercises): right, wrong with a hint, unanswered, malformed."""

from __future__ import annotations

import warnings

import pytest
import torch
from opacus.validators import ModuleValidator
from torch import nn

from fl_dp_lab.exercises import (
    check_opacus_compatible,
    check_opacus_noise_std,
    check_opacus_sample_rate,
)
from fl_dp_lab.opacus_bridge import make_private

NOISE = dict(noise_multiplier=1.1, max_grad_norm=0.5, expected_batch_size=250)


def test_sample_rate_right_answer_is_what_opacus_uses(capsys):
    # The right answer is not hard-coded folklore: Opacus itself derives it.
    x, y = torch.rand(4000, 4), torch.randint(0, 2, (4000,))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        private = make_private(
            nn.Linear(4, 2),
            x,
            y,
            batch_size=256,
            lr=0.1,
            max_grad_norm=1.0,
            noise_multiplier=1.0,
            generator=torch.Generator(),
        )
    assert check_opacus_sample_rate(private.sample_rate, private.optimizer.expected_batch_size)
    assert "✓" in capsys.readouterr().out


def test_sample_rate_wrong_answers_get_targeted_hints(capsys):
    assert check_opacus_sample_rate(256 / 4000, 256) is False
    assert "from the loader itself" in capsys.readouterr().out
    assert check_opacus_sample_rate(1 / 16, 256) is False
    assert "not the loader's nominal one" in capsys.readouterr().out
    assert check_opacus_sample_rate(0.1, 400) is False
    assert "✗" in capsys.readouterr().out
    assert check_opacus_sample_rate(..., 250) is False
    assert "not answered yet" in capsys.readouterr().out


def test_noise_std_right_measured_and_wrong(capsys):
    exact = 1.1 * 0.5 / 250
    assert check_opacus_noise_std(exact, **NOISE) is True
    assert check_opacus_noise_std(exact * 1.01, **NOISE) is True  # a measured value
    capsys.readouterr()
    assert check_opacus_noise_std(1.1 * 0.5 / 256, **NOISE) is False  # the loader's batch size
    assert "about σC / 256" in capsys.readouterr().out
    assert check_opacus_noise_std(1.1 * 0.5, **NOISE) is False
    assert "expected batch size" in capsys.readouterr().out
    assert check_opacus_noise_std(1.1 / 250, **NOISE) is False
    assert "sensitivity C" in capsys.readouterr().out
    assert check_opacus_noise_std(exact**2, **NOISE) is False
    assert "variance" in capsys.readouterr().out
    assert check_opacus_noise_std(..., **NOISE) is False
    assert "not answered yet" in capsys.readouterr().out


def _bn_model() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten())


def test_compatible_model_right_and_forgotten_assignment(capsys):
    model = _bn_model()
    ModuleValidator.fix(model)  # the usual slip: the fixed copy is thrown away
    assert check_opacus_compatible(model) is False
    assert "assign its result" in capsys.readouterr().out
    assert check_opacus_compatible(ModuleValidator.validate(model, strict=False)) is False
    assert "what the validator reports" in capsys.readouterr().out
    fixed = ModuleValidator.fix(model)
    assert check_opacus_compatible(fixed) is True
    assert any(isinstance(m, nn.GroupNorm) for m in fixed.modules())
    assert check_opacus_compatible(...) is False


def test_malformed_answers_raise():
    with pytest.raises(TypeError, match="sample_rate must be a real number"):
        check_opacus_sample_rate("1/16", 250)
    with pytest.raises(TypeError, match="answer must be a real number"):
        check_opacus_noise_std("0.002", **NOISE)
    with pytest.raises(ValueError, match="expected_batch_size must be an integer >= 1"):
        check_opacus_noise_std(
            0.002, noise_multiplier=1.0, max_grad_norm=1.0, expected_batch_size=0
        )
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        check_opacus_compatible("ModuleValidator.fix(model)")
