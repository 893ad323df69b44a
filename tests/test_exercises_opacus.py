"""Notebook 07's exercise checks (fl_dp_lab.exercises): right, wrong with a hint, unanswered, malformed."""

from __future__ import annotations

import warnings

import pytest
import torch
from opacus import PrivacyEngine
from opacus.validators import ModuleValidator
from torch import nn

from fl_dp_lab.exercises import (
    check_make_private_with_epsilon,
    check_opacus_compatible,
    check_opacus_sample_rate,
)
from fl_dp_lab.opacus_bridge import make_private


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


def _with_epsilon(accountant="prv", max_grad_norm=None):
    def make_private_for(model, optimizer, loader, *, target_epsilon, delta, epochs, max_grad_norm):
        return PrivacyEngine(accountant=accountant).make_private_with_epsilon(
            module=model, optimizer=optimizer, data_loader=loader, target_epsilon=target_epsilon,
            target_delta=delta, epochs=epochs, max_grad_norm=clip or max_grad_norm,
        )  # fmt: skip

    clip = max_grad_norm
    return make_private_for


def test_make_private_with_epsilon_right_answers_pass(capsys):
    assert check_make_private_with_epsilon(_with_epsilon()) is True
    assert "searched σ" in capsys.readouterr().out
    assert check_make_private_with_epsilon(_with_epsilon("rdp")) is True  # safe, a note
    assert "RDP accountant" in capsys.readouterr().out


def test_make_private_with_epsilon_rejects_the_usual_slips(capsys):
    def fixed_sigma(model, optimizer, loader, *, max_grad_norm, **budget):
        return PrivacyEngine().make_private(module=model, optimizer=optimizer, data_loader=loader,
                                            noise_multiplier=1.0, max_grad_norm=max_grad_norm)  # fmt: skip

    def more_epochs(model, optimizer, loader, *, epochs, **rest):
        return _with_epsilon()(model, optimizer, loader, epochs=2 * epochs, **rest)

    for answer, words in (
        (fixed_sigma, "is not what Opacus calibrates"),
        (more_epochs, "is not what Opacus calibrates"),
        (_with_epsilon(max_grad_norm=5.0), "clips at 5"),
        (lambda model, optimizer, loader, **kw: (model, optimizer, loader), "not Opacus's DPOptimizer"),
    ):  # fmt: skip
        assert check_make_private_with_epsilon(answer) is False
        out = capsys.readouterr().out
        assert "✗" in out and words in out, out


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
    with pytest.raises(TypeError, match="make_private_for must be a function"):
        check_make_private_with_epsilon(1.5)
    with pytest.raises(TypeError, match="must return what make_private_with_epsilon returns"):
        check_make_private_with_epsilon(lambda *args, **kwargs: 1.5)
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        check_opacus_compatible("ModuleValidator.fix(model)")
