"""The few tiny models the course trains, each seeded through a ``torch.Generator``.

All models take images of shape ``(n, H, W)`` or ``(n, 1, H, W)`` (or flat
features ``(n, d)``) and return logits. None of them uses BatchNorm: it mixes
examples within a batch, so per-example gradients (and therefore DP-SGD) are
undefined for it; ``SmallCNN`` needs no normalisation at all.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from fl_dp_lab._validate import check_generator, check_int

__all__ = ["MLP", "LogisticRegression", "SmallCNN", "count_parameters", "reset_parameters"]


class LogisticRegression(nn.Module):
    """Multinomial logistic regression: one linear layer on flattened inputs.

    Args:
        in_features: input size after flattening (64 for 8x8 digits, 784 for MNIST).
        num_classes: number of classes.
        generator: seeds the initial weights; ``None`` starts from zeros
            (the loss is convex, so zeros are a fine start).

    >>> model = LogisticRegression(64, 10, generator=torch.Generator().manual_seed(0))
    >>> model(torch.zeros(3, 8, 8)).shape
    torch.Size([3, 10])
    """

    def __init__(
        self, in_features: int, num_classes: int, *, generator: torch.Generator | None = None
    ) -> None:
        super().__init__()
        self.linear = nn.Linear(
            check_int("in_features", in_features, minimum=1),
            check_int("num_classes", num_classes, minimum=2),
        )
        if generator is None:
            nn.init.zeros_(self.linear.weight)
            nn.init.zeros_(self.linear.bias)
        else:
            reset_parameters(self, generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1))


class MLP(nn.Module):
    """A one-hidden-layer perceptron, ``in_features -> hidden -> num_classes`` with tanh.

    tanh rather than ReLU: it is smooth, so central-difference gradient checks
    (notebook 02) behave, and it is what Papernot et al. (2021) recommend for
    DP-SGD (bounded activations keep gradient norms tame).

    Args:
        in_features: input size after flattening.
        hidden: hidden units.
        num_classes: number of classes.
        generator: seeds the initial weights.

    >>> model = MLP(784, 128, 10, generator=torch.Generator().manual_seed(0))
    >>> count_parameters(model)
    101770
    """

    def __init__(
        self, in_features: int, hidden: int, num_classes: int, *, generator: torch.Generator
    ) -> None:
        super().__init__()
        self.fc1 = nn.Linear(
            check_int("in_features", in_features, minimum=1), check_int("hidden", hidden, minimum=1)
        )
        self.fc2 = nn.Linear(hidden, check_int("num_classes", num_classes, minimum=2))
        reset_parameters(self, check_generator("generator", generator))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.tanh(self.fc1(x.flatten(1))))


class SmallCNN(nn.Module):
    """The two-convolution network of the Opacus MNIST example, with tanh.

    conv(16, 8x8, stride 2, pad 3) -> maxpool(2, 1) -> conv(32, 4x4, stride 2)
    -> maxpool(2, 1) -> linear(512 -> 32) -> linear(32 -> num_classes), for
    28x28 single-channel images (26,010 parameters).

    Args:
        num_classes: number of classes.
        generator: seeds the initial weights.

    >>> model = SmallCNN(10, generator=torch.Generator().manual_seed(0))
    >>> model(torch.zeros(2, 28, 28)).shape
    torch.Size([2, 10])
    """

    def __init__(self, num_classes: int = 10, *, generator: torch.Generator) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 8, stride=2, padding=3)
        self.conv2 = nn.Conv2d(16, 32, 4, stride=2)
        self.fc1 = nn.Linear(32 * 4 * 4, 32)
        self.fc2 = nn.Linear(32, check_int("num_classes", num_classes, minimum=2))
        reset_parameters(self, check_generator("generator", generator))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3:
            x = x.unsqueeze(1)
        x = nn.functional.max_pool2d(torch.tanh(self.conv1(x)), 2, 1)
        x = nn.functional.max_pool2d(torch.tanh(self.conv2(x)), 2, 1)
        return self.fc2(torch.tanh(self.fc1(x.flatten(1))))


def reset_parameters(model: nn.Module, generator: torch.Generator) -> nn.Module:
    """Re-draw every weight and bias from U(-1/sqrt(fan_in), 1/sqrt(fan_in)).

    This is PyTorch's default range for ``nn.Linear`` and ``nn.Conv2d``
    biases, applied to weights too, drawn from ``generator`` instead of the
    global RNG so a seed fixes the model. Returns ``model`` for chaining.
    """
    check_generator("generator", generator)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.Linear, nn.Conv2d)):
                bound = 1.0 / math.sqrt(module.weight[0].numel())
                for p in (module.weight, module.bias):
                    if p is not None:
                        p.copy_(torch.rand(p.shape, generator=generator) * 2 * bound - bound)
    return model


def count_parameters(model: nn.Module) -> int:
    """Number of trainable scalars in ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
