"""fl_dp_lab.models: shapes, seeding, no BatchNorm, parameter counts."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fl_dp_lab.models import MLP, LogisticRegression, SmallCNN, count_parameters, reset_parameters


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize(
    ("make", "x", "params"),
    [
        (lambda g: LogisticRegression(64, 10, generator=g), torch.rand(5, 8, 8), 650),
        (lambda g: MLP(784, 128, 10, generator=g), torch.rand(5, 28, 28), 101_770),
        (lambda g: SmallCNN(10, generator=g), torch.rand(5, 1, 28, 28), 26_010),
    ],
)
def test_models_give_logits_are_seeded_and_have_documented_size(make, x, params):
    a, b, c = make(_gen(0)), make(_gen(0)), make(_gen(1))
    assert a(x).shape == (5, 10)
    assert torch.equal(a(x), b(x)) and not torch.equal(a(x), c(x))
    assert count_parameters(a) == params
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in a.modules())


def test_small_cnn_accepts_images_with_or_without_channel_axis():
    model = SmallCNN(generator=_gen())
    x = torch.rand(3, 28, 28)
    assert torch.allclose(model(x), model(x.unsqueeze(1)))


def test_reset_parameters_draws_within_default_pytorch_bound():
    model = reset_parameters(nn.Linear(100, 3), _gen())
    assert model.weight.abs().max() <= 0.1 and model.weight.abs().max() > 0.09
    assert float(model.weight.detach().std()) == pytest.approx(
        0.1 / 3**0.5, rel=0.1
    )  # U(-b, b) has std b/sqrt(3)


def test_logistic_regression_without_generator_starts_at_zero():
    model = LogisticRegression(4, 3)
    assert all(torch.count_nonzero(p) == 0 for p in model.parameters())


def test_bad_arguments_are_named():
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        MLP(4, 4, 2, generator=0)
    with pytest.raises(ValueError, match="num_classes must be an integer >= 2, got 1"):
        LogisticRegression(4, 1)
    with pytest.raises(ValueError, match="hidden must be an integer >= 1, got 0"):
        MLP(4, 0, 2, generator=_gen())
