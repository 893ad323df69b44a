"""What one client computes in FedAvg: a difference of model weights.

A client update is ``theta_local - theta_global`` flattened into one
vector, so the server can clip, sum and noise it like any vector. The
client trains either with plain mini-batch SGD (``local_update``, McMahan
et al., 2017) or with record-level DP-SGD (``dp_sgd_local_update``, Abadi
et al., 2016, through ``fl_dp_lab.dpsgd``). Public names are re-exported by
``fl_dp_lab.federated``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn

from fl_dp_lab._validate import check_int, check_real, fail
from fl_dp_lab.training import check_data, shuffled_batches

__all__ = [
    "assign_flat_parameters",
    "dp_sgd_local_update",
    "flatten_parameters",
    "local_update",
]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def flatten_parameters(model: nn.Module) -> torch.Tensor:
    """All parameters of ``model`` as one detached vector, in ``named_parameters`` order.

    >>> from fl_dp_lab.models import LogisticRegression
    >>> flatten_parameters(LogisticRegression(64, 10)).shape
    torch.Size([650])
    """
    if not isinstance(model, nn.Module):
        fail("model", "a torch.nn.Module", model, TypeError)
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()]).clone()


def assign_flat_parameters(model: nn.Module, flat: torch.Tensor) -> None:
    """Copy the vector ``flat`` into the parameters of ``model`` (the inverse of flattening).

    >>> from fl_dp_lab.models import LogisticRegression
    >>> model = LogisticRegression(4, 2)
    >>> assign_flat_parameters(model, torch.arange(10.0))
    >>> model.linear.bias.tolist()
    [8.0, 9.0]
    """
    if not isinstance(model, nn.Module):
        fail("model", "a torch.nn.Module", model, TypeError)
    if not isinstance(flat, torch.Tensor):
        fail("flat", "a torch.Tensor", flat, TypeError)
    size = sum(p.numel() for p in model.parameters())
    if flat.shape != (size,):
        fail(
            "flat", f"a vector of shape ({size},) (the model's parameter count)", tuple(flat.shape)
        )
    offset = 0
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(flat[offset : offset + p.numel()].view_as(p))
            offset += p.numel()


def local_update(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    generator: torch.Generator,
    loss_fn: LossFn = nn.functional.cross_entropy,
) -> torch.Tensor:
    """A client's FedAvg update: train a copy with plain SGD, return new minus old weights.

    ClientUpdate of McMahan et al. (2017, Algorithm 1): ``epochs`` passes over
    the client's data in shuffled mini-batches of ``batch_size``
    (``shuffled_batches``), each step theta <- theta - lr * grad mean_loss(batch).
    Only parameters with ``requires_grad`` train: a frozen parameter's slice
    of the update is zero. The caller's ``model`` is left untouched.

    Args:
        model: the current global model (not modified).
        x, y: the client's inputs and labels, same non-zero length.
        epochs: local epochs E, >= 1.
        batch_size: local batch size B, >= 1 (B >= len(x) means one full-batch step an epoch).
        lr: local learning rate, > 0.
        generator: shuffles the client's batches.
        loss_fn: mean loss over a batch.

    Returns:
        The update Delta = theta_after - theta_before, shape ``(P,)``.

    >>> from fl_dp_lab.models import LogisticRegression
    >>> model = LogisticRegression(2, 2)
    >>> x, y = torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 1])
    >>> update = local_update(model, x, y, epochs=1, batch_size=2, lr=1.0,
    ...                       generator=torch.Generator().manual_seed(0))
    >>> update.tolist()
    [0.25, -0.25, -0.25, 0.25, 0.0, 0.0]
    """
    epochs = check_int("epochs", epochs, minimum=1)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    lr = check_real("lr", lr, low=0.0, low_open=True)
    check_data(x, y)
    local = copy.deepcopy(model)
    before = flatten_parameters(local)
    params = [p for p in local.parameters() if p.requires_grad]  # frozen ones stay put
    if not params:
        return torch.zeros_like(before)
    for _ in range(epochs):
        for batch in shuffled_batches(len(x), batch_size, generator):
            grads = torch.autograd.grad(loss_fn(local(x[batch]), y[batch]), params)
            with torch.no_grad():
                for p, g in zip(params, grads, strict=True):
                    p -= lr * g
    return flatten_parameters(local) - before


def dp_sgd_local_update(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epochs: int,
    lr: float,
    sample_rate: float,
    noise_multiplier: float,
    max_grad_norm: float,
    generator: torch.Generator,
    loss_fn: LossFn = nn.functional.cross_entropy,
) -> torch.Tensor:
    """A client update trained with record-level DP-SGD (Abadi et al., 2016).

    round(epochs / q) steps, each on a Poisson batch (every example joins
    with probability q): theta <- theta - lr * (sum of per-example
    gradients clipped to C + N(0, (sigma*C)^2 I)) / (q*n), built from
    ``fl_dp_lab.dpsgd`` (``poisson_batches``, ``clipped_gradient_sum``,
    ``add_noise``). An empty batch still takes the noise-only step, as the
    accountant assumes. This protects each *example* of the client
    (record-level DP); the client's update as a whole is not clipped here.

    Args:
        model: the current global model (not modified).
        x, y: the client's inputs and labels, same non-zero length.
        epochs: expected passes over the data, >= 1.
        lr: learning rate, > 0.
        sample_rate: q in (0, 1], the per-example sampling rate.
        noise_multiplier: sigma >= 0.
        max_grad_norm: per-example clip norm C > 0.
        generator: draws the batches and the noise.
        loss_fn: mean loss over a batch.

    Returns:
        The update theta_after - theta_before, shape ``(P,)``.
    """
    epochs = check_int("epochs", epochs, minimum=1)
    lr = check_real("lr", lr, low=0.0, low_open=True)
    sample_rate = check_real("sample_rate", sample_rate, low=0.0, high=1.0, low_open=True)
    noise_multiplier = check_real("noise_multiplier", noise_multiplier, low=0.0)
    max_grad_norm = check_real("max_grad_norm", max_grad_norm, low=0.0, low_open=True)
    check_data(x, y)
    from fl_dp_lab import dpsgd

    local = copy.deepcopy(model)
    before = flatten_parameters(local)
    steps = max(1, round(epochs / sample_rate))
    expected_batch_size = sample_rate * len(y)
    for batch in dpsgd.poisson_batches(
        len(y), sample_rate=sample_rate, steps=steps, generator=generator
    ):
        if len(batch) > 0:
            grad_sum = dpsgd.clipped_gradient_sum(
                local, loss_fn, x[batch], y[batch], max_grad_norm=max_grad_norm
            )
        else:  # a noise-only step, for the trainable parameters only (frozen ones stay put)
            trainable = [(n, p) for n, p in local.named_parameters() if p.requires_grad]
            grad_sum = {n: torch.zeros_like(p) for n, p in trainable}
        noisy = dpsgd.add_noise(
            grad_sum,
            max_grad_norm=max_grad_norm,
            noise_multiplier=noise_multiplier,
            generator=generator,
        )
        with torch.no_grad():
            for name, p in local.named_parameters():
                if name in noisy:  # clipped_gradient_sum covers the trainable parameters
                    p -= lr * noisy[name] / expected_batch_size
    return flatten_parameters(local) - before
