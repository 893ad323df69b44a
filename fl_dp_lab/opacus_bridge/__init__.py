"""Thin helpers that run the course's models and data through Opacus (notebook 07).

Opacus (Yousefpour et al., 2021) turns a PyTorch model, optimizer and data
loader into DP-SGD: ``PrivacyEngine.make_private`` wraps the model in a
``GradSampleModule`` (per-sample gradients), the optimizer in a
``DPOptimizer`` (clip each per-sample gradient to ``max_grad_norm``, sum, add
N(0, (noise_multiplier * max_grad_norm)^2) per coordinate, divide by the
*expected* batch size ``sample_rate * N``) and the loader in a
``DPDataLoader`` (Poisson sampling with rate ``sample_rate = 1 / len(loader)``).

Nothing here re-implements DP-SGD: these functions only wire tensors into
Opacus so that notebook 07, its tests and ``benchmarks/dpsgd_step.py`` build
Opacus the same way. Two details they take care of:

- determinism: Opacus's Poisson sampler draws from torch's global RNG unless
  it is given a generator; here the caller's ``generator`` drives both the
  sampler and the noise;
- ``grad_sample_mode="ghost"`` (ghost clipping) returns a fourth object, a
  wrapped loss whose ``backward()`` runs the two passes; the helpers hide that
  difference so every mode is called alike.

Training with the ``PrivacyEngine`` (``make_private``,
``make_private_with_epsilon``, ``train_private``,
``private_sweep``) is here; the single-step helpers that build a
``GradSampleModule`` or ``DPOptimizer`` without a loader
(``opacus_per_sample_gradients``, ``opacus_dp_optimizer``, ``opacus_dp_step``)
live in ``fl_dp_lab.opacus_bridge._opacus_step`` and are re-exported here.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from opacus import PrivacyEngine
from opacus.optimizers import DPOptimizer
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from tqdm.auto import tqdm

from fl_dp_lab._types import OpacusHistory
from fl_dp_lab._validate import (
    check_bool,
    check_choice,
    check_generator,
    check_int,
    check_real,
    fail,
)
from fl_dp_lab.opacus_bridge._opacus_step import (
    GRAD_SAMPLE_MODES,
    GradSampleMode,
    ignore_no_input_grad_warning,
    opacus_dp_optimizer,
    opacus_dp_step,
    opacus_per_sample_gradients,
)
from fl_dp_lab.training import evaluate

__all__ = [
    "GRAD_SAMPLE_MODES",
    "OpacusHistory",
    "PrivateTraining",
    "SweepResult",
    "make_private",
    "make_private_with_epsilon",
    "opacus_dp_optimizer",
    "opacus_dp_step",
    "opacus_per_sample_gradients",
    "private_sweep",
    "train_private",
]


@dataclass
class PrivateTraining:
    """The objects ``PrivacyEngine.make_private`` returns, plus what it decided.

    Attributes:
        engine: the ``PrivacyEngine`` (its ``accountant`` keeps the step history).
        module: the model wrapped in a ``GradSampleModule``; train and evaluate this.
        optimizer: the ``DPOptimizer`` (clip, sum, noise, divide by expected batch).
        criterion: the loss to call as ``criterion(output, target)``; with
            ghost clipping it is Opacus's wrapped loss.
        data_loader: the Poisson-sampling ``DPDataLoader``.
        noise_multiplier: sigma actually used (the one ``make_private_with_epsilon``
            found for its budget).
        sample_rate: q = 1 / len(data_loader) = batch_size / N.
    """

    engine: PrivacyEngine
    module: nn.Module
    optimizer: DPOptimizer
    criterion: Callable[..., Any]
    data_loader: DataLoader
    noise_multiplier: float
    sample_rate: float


@dataclass
class SweepResult:
    """Final test accuracy and epsilon of a sigma x C grid of Opacus runs.

    Attributes:
        noise_multipliers, max_grad_norms: the grid axes.
        accuracy: array ``(len(noise_multipliers), len(max_grad_norms))`` in [0, 1].
        epsilon: array ``(len(noise_multipliers),)``; epsilon does not depend on C.
        baseline_accuracy: the same training with noise and clipping switched off
            (plain SGD on the same Poisson batches' expected size).
        delta, sample_rate, steps: the accounting parameters (Opacus's
            q = 1 / len(data_loader), steps = epochs * len(data_loader)).
    """

    noise_multipliers: np.ndarray
    max_grad_norms: np.ndarray
    accuracy: np.ndarray
    epsilon: np.ndarray
    baseline_accuracy: float
    delta: float
    sample_rate: float
    steps: int


#: The privacy accountants of Opacus that ``make_private`` offers.
OpacusAccountant = Literal["rdp", "prv"]
#: The largest target_epsilon make_private_with_epsilon hands to Opacus's sigma search.
_MAX_TARGET_EPSILON = 100.0


def make_private(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    batch_size: int,
    lr: float,
    max_grad_norm: float,
    noise_multiplier: float,
    generator: torch.Generator,
    grad_sample_mode: GradSampleMode = "ghost",
    accountant: OpacusAccountant = "rdp",
) -> PrivateTraining:
    """Make ``model`` trainable with Opacus DP-SGD at noise multiplier sigma; SGD, Poisson batches.

    ``PrivacyEngine.make_private``. To start from a budget instead, use
    ``make_private_with_epsilon`` (Opacus's own split). Opacus derives the
    sample rate from the loader it is given: q = 1 / len(loader) =
    1 / ceil(len(x) / batch_size) (1/16 = 0.0625 for 4,000 examples in
    batches of 256, not 256/4000 = 0.064), and divides gradient sums by the
    expected batch size int(q * len(x)) (250, not 256).

    Args:
        model: a model without BatchNorm (see ``opacus.validators.ModuleValidator``).
        x, y: training inputs and labels.
        batch_size: the loader's batch size; sets q = 1 / ceil(len(x) / batch_size).
        lr: SGD learning rate, > 0.
        max_grad_norm: C, the per-sample clipping norm, > 0.
        noise_multiplier: sigma >= 0.
        generator: drives Poisson sampling and the noise.
        grad_sample_mode: one of ``GRAD_SAMPLE_MODES``.
        accountant: Opacus accountant, ``"rdp"`` or ``"prv"``.

    Returns:
        A ``PrivateTraining``.
    """
    sigma = check_real("noise_multiplier", noise_multiplier, low=0.0)
    return _make_private(
        model, x, y, batch_size, lr, max_grad_norm, generator, grad_sample_mode, accountant,
        {"noise_multiplier": sigma},
    )  # fmt: skip


def make_private_with_epsilon(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    batch_size: int,
    lr: float,
    max_grad_norm: float,
    target_epsilon: float,
    epochs: int,
    generator: torch.Generator,
    delta: float = 1e-5,
    grad_sample_mode: GradSampleMode = "ghost",
    accountant: OpacusAccountant = "rdp",
) -> PrivateTraining:
    """``make_private`` with sigma calibrated to a budget: ``target_epsilon`` at ``delta``.

    ``PrivacyEngine.make_private_with_epsilon``: Opacus searches sigma so that
    ``epochs / q`` steps spend exactly ``target_epsilon`` at ``delta``; the
    sigma it found is ``PrivateTraining.noise_multiplier``.

    Args:
        target_epsilon: the budget, in (0, 100] (beyond, the guarantee means
            nothing, e^100 = 2.7e43, and Opacus's search, to 0.01 absolute, slows:
            150 s for 100 with "prv"; 1e300 never returned).
        epochs: the passes over the data the budget is planned for, >= 1.
        delta: the delta of the budget.
        the others: as in ``make_private``.

    Returns:
        A ``PrivateTraining``.
    """
    target_epsilon = check_real(
        "target_epsilon", target_epsilon, low=0.0, high=_MAX_TARGET_EPSILON, low_open=True
    )
    epochs = check_int("epochs", epochs, minimum=1)
    delta = check_real("delta", delta, low=0.0, high=1.0, low_open=True, high_open=True)
    return _make_private(
        model, x, y, batch_size, lr, max_grad_norm, generator, grad_sample_mode, accountant,
        {"target_epsilon": target_epsilon, "target_delta": delta, "epochs": epochs},
    )  # fmt: skip


def _make_private(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    lr: float,
    max_grad_norm: float,
    generator: torch.Generator,
    grad_sample_mode: GradSampleMode,
    accountant: OpacusAccountant,
    budget: dict[str, Any],
) -> PrivateTraining:
    """Both ``make_private`` calls: ``budget`` holds sigma, or the target epsilon's arguments."""
    batch_size = check_int("batch_size", batch_size, minimum=1, maximum=len(x))
    lr = check_real("lr", lr, low=0.0, low_open=True)
    max_grad_norm = check_real("max_grad_norm", max_grad_norm, low=0.0, low_open=True)
    check_choice("grad_sample_mode", grad_sample_mode, GRAD_SAMPLE_MODES)
    check_choice("accountant", accountant, ("rdp", "prv"))
    generator = check_generator("generator", generator)
    if len(x) != len(y):
        fail("x and y", "the same length", (len(x), len(y)))
    loader = DataLoader(TensorDataset(x, y), batch_size=batch_size)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    common = dict(
        module=model,
        optimizer=optimizer,
        criterion=nn.CrossEntropyLoss(),
        data_loader=loader,
        max_grad_norm=max_grad_norm,
        noise_generator=generator,
        grad_sample_mode=grad_sample_mode,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Secure RNG turned off": fine for a course
        engine = PrivacyEngine(accountant=accountant)
        if "noise_multiplier" in budget:
            out = engine.make_private(**budget, **common)
        else:
            out = engine.make_private_with_epsilon(**budget, **common)
    module, dp_optimizer, *rest = out
    criterion = rest[0] if len(rest) == 2 else nn.CrossEntropyLoss()
    data_loader = rest[-1]
    data_loader.batch_sampler.generator = generator  # Poisson draws from our generator
    return PrivateTraining(
        engine=engine,
        module=module,
        optimizer=dp_optimizer,
        criterion=criterion,
        data_loader=data_loader,
        noise_multiplier=float(dp_optimizer.noise_multiplier),
        sample_rate=data_loader.sample_rate,
    )


def train_private(
    private: PrivateTraining,
    *,
    epochs: int,
    delta: float | None = 1e-5,
    x_test: torch.Tensor | None = None,
    y_test: torch.Tensor | None = None,
    progress: bool = False,
) -> OpacusHistory:
    """Run ``epochs`` passes of Opacus DP-SGD; record loss, test accuracy and the epsilon spent.

    One epoch is ``len(data_loader) = 1 / q`` Poisson batches; every batch is
    one optimizer step, so the accountant sees ``epochs / q`` steps in all.
    Epsilon is read once, at the end, from the engine's own accountant
    (Opacus's RDP takes a fraction of a second per call); ``delta=None`` skips it.
    """
    epochs = check_int("epochs", epochs, minimum=1)
    check_bool("progress", progress)
    if (x_test is None) != (y_test is None):
        fail("x_test and y_test", "both given or both None", (type(x_test), type(y_test)))
    if delta is not None:  # checked before training, not after it
        delta = check_real("delta", delta, low=0.0, high=1.0, low_open=True, high_open=True)
    history = OpacusHistory()
    for epoch in tqdm(range(1, epochs + 1), desc="epochs", disable=not progress, leave=False):
        private.module.train()
        losses = []
        for xb, yb in private.data_loader:
            private.optimizer.zero_grad()
            loss = private.criterion(private.module(xb), yb)
            with ignore_no_input_grad_warning():  # harmless: the data needs no gradient
                loss.backward()
            private.optimizer.step()
            losses.append(float(loss.detach()) if len(xb) else float("nan"))
        history.epoch.append(epoch)
        history.train_loss.append(float(np.nanmean(losses)))
        if x_test is not None and y_test is not None:
            test_loss, test_accuracy = evaluate(private.module, x_test, y_test)
            history.test_loss.append(test_loss)
            history.test_accuracy.append(test_accuracy)
    if delta is not None:
        history.epsilon = _epsilon(private, delta)
    return history


def private_sweep(
    noise_multipliers: Sequence[float],
    max_grad_norms: Sequence[float],
    *,
    make_model: Callable[[torch.Generator], nn.Module],
    train: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    batch_size: int,
    epochs: int,
    lr: float,
    seed: int,
    delta: float = 1e-5,
    baseline_lr: float | None = None,
    progress: bool = True,
) -> SweepResult:
    """Train one Opacus (ghost clipping) model per (sigma, C) pair; collect accuracy and epsilon.

    Every run starts from ``make_model(torch.Generator().manual_seed(seed))``
    and samples batches and noise from ``torch.Generator().manual_seed(seed + 1)``,
    so runs differ only in sigma and C. The baseline is plain SGD with
    shuffled batches of ``batch_size`` and the same epochs, at ``baseline_lr``
    (default ``lr``; clipping bounds the private step, so the private and the
    non-private runs may each need their own learning rate). ``train`` and
    ``test`` are ``(inputs, labels)`` pairs; the test accuracy after the
    last epoch is what the grid records.
    """
    from fl_dp_lab.training import train as train_sgd

    x, y = _pair("train", train)
    x_test, y_test = _pair("test", test)
    sigmas = np.array([check_real("noise_multipliers", s, low=0.0) for s in noise_multipliers])
    norms = np.array(
        [check_real("max_grad_norms", c, low=0.0, low_open=True) for c in max_grad_norms]
    )
    if sigmas.size == 0 or norms.size == 0:
        fail("noise_multipliers and max_grad_norms", "non-empty", (sigmas.size, norms.size))
    seed = check_int("seed", seed, minimum=0)
    delta = check_real("delta", delta, low=0.0, high=1.0, low_open=True, high_open=True)
    accuracy = np.zeros((sigmas.size, norms.size))
    epsilon = np.zeros(sigmas.size)
    grid = [(i, j) for i in range(sigmas.size) for j in range(norms.size)]
    for i, j in tqdm(grid, desc="sigma x C", disable=not progress, leave=False):
        model = make_model(torch.Generator().manual_seed(seed))
        private = make_private(
            model,
            x,
            y,
            batch_size=batch_size,
            lr=lr,
            max_grad_norm=float(norms[j]),
            noise_multiplier=float(sigmas[i]),
            generator=torch.Generator().manual_seed(seed + 1),
        )
        account = delta if j == 0 else None  # epsilon depends on sigma only
        history = train_private(private, epochs=epochs, delta=account, x_test=x_test, y_test=y_test)
        accuracy[i, j] = history.test_accuracy[-1]
        epsilon[i] = history.epsilon if j == 0 else epsilon[i]
        # the same for every run of the grid: the loader's batch size fixes them
        sample_rate, steps = private.sample_rate, epochs * len(private.data_loader)
    baseline = make_model(torch.Generator().manual_seed(seed))
    baseline_history = train_sgd(
        baseline,
        x,
        y,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr if baseline_lr is None else baseline_lr,
        x_test=x_test,
        y_test=y_test,
        generator=torch.Generator().manual_seed(seed + 1),
        progress=False,
    )
    return SweepResult(
        noise_multipliers=sigmas,
        max_grad_norms=norms,
        accuracy=accuracy,
        epsilon=epsilon,
        baseline_accuracy=baseline_history.test_accuracy[-1],
        delta=delta,
        sample_rate=sample_rate,
        steps=steps,
    )


def _pair(name: str, value: object) -> tuple[torch.Tensor, torch.Tensor]:
    """Check an ``(inputs, labels)`` pair of tensors of one length."""
    if (
        not isinstance(value, tuple)
        or len(value) != 2
        or not all(isinstance(v, torch.Tensor) for v in value)
    ):
        fail(name, "a pair (inputs, labels) of tensors", type(value), TypeError)
    inputs, labels = value
    if len(inputs) != len(labels):
        fail(f"{name} inputs and labels", "the same length", (len(inputs), len(labels)))
    return inputs, labels


def _epsilon(private: PrivateTraining, delta: float) -> float:
    delta = check_real("delta", delta, low=0.0, high=1.0, low_open=True, high_open=True)
    if private.noise_multiplier == 0:
        return float("inf")
    return float(private.engine.get_epsilon(delta))
