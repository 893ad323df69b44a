"""Types the modules share: the loss-function signature and the training histories.

Shared infrastructure, like ``_validate``: every module may import from here. The
public modules re-export the names a learner meets (``training.History``,
``dpsgd.DPHistory``, ``opacus_bridge.OpacusHistory``).

One History family: ``History`` holds what every training loop records, one
entry per epoch; a private variant adds only what it measures on top.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

__all__ = ["DPHistory", "Gradients", "History", "LossFn", "OpacusHistory"]

#: ``loss_fn(output, target)``: the MEAN loss over a batch, like
#: ``torch.nn.functional.cross_entropy``.
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
#: Per-sample gradients keyed like ``model.named_parameters()``, each of shape
#: ``(batch, *parameter.shape)``.
Gradients = dict[str, torch.Tensor]


@dataclass
class History:
    """What a training run recorded, one entry per epoch.

    Attributes:
        epoch: 1, 2, ...
        train_loss: mean training loss over the epoch's batches.
        test_loss, test_accuracy: on the evaluation set after the epoch
            (empty when no evaluation set was given).
    """

    epoch: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    test_loss: list[float] = field(default_factory=list)
    test_accuracy: list[float] = field(default_factory=list)


@dataclass
class DPHistory(History):
    """What ``train_dp_sgd`` recorded, one entry per epoch (on top of ``History``).

    Attributes:
        steps: DP-SGD steps taken so far.
        epsilon: epsilon spent so far at the run's delta (math.inf when sigma = 0).
    """

    steps: list[int] = field(default_factory=list)
    epsilon: list[float] = field(default_factory=list)


@dataclass
class OpacusHistory(History):
    """What an Opacus training run recorded (on top of ``History``).

    Attributes:
        epsilon: the epsilon spent by the whole run, at the delta it was asked
            for (``math.inf`` without noise, ``nan`` when not asked).
    """

    epsilon: float = float("nan")
