"""Federated averaging (FedAvg) and user-level DP-FedAvg, built from small pieces.

A client update is a difference of model weights, ``theta_local - theta_global``,
flattened into one vector. FedAvg averages those vectors weighted by client
size (McMahan et al., 2017); DP-FedAvg clips each to L2 norm C, adds Gaussian
noise N(0, (sigma*C)^2) to their sum and divides by the *expected* number of
clients (McMahan et al., 2018), which makes the released average
(epsilon, delta)-DP with respect to adding or removing one whole client.

The pieces here (flatten, local update, clip, noisy aggregate, Poisson client
sampling) are what notebooks 08-09 write out by hand and what the Flower app
of notebook 11 reuses. ``run_fedavg`` and ``run_dp_fedavg`` (in
``fl_dp_lab._simulation``) put them together; the batched many-client local
training lives in ``fl_dp_lab._vectorised`` and the secure-aggregation toy in
``fl_dp_lab.secure_aggregation``, all re-exported here.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn

from fl_dp_lab._validate import check_int, check_real, fail
from fl_dp_lab.training import shuffled_batches

__all__ = [
    "assign_flat_parameters",
    "clip_update",
    "dp_aggregate",
    "flatten_parameters",
    "local_update",
    "poisson_client_sample",
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
    The caller's ``model`` is left untouched.

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
    _check_client_data(x, y)
    local = copy.deepcopy(model)
    before = flatten_parameters(local)
    params = list(local.parameters())
    for _ in range(epochs):
        for batch in shuffled_batches(len(x), batch_size, generator):
            grads = torch.autograd.grad(loss_fn(local(x[batch]), y[batch]), params)
            with torch.no_grad():
                for p, g in zip(params, grads, strict=True):
                    p -= lr * g
    return flatten_parameters(local) - before


def clip_update(update: torch.Tensor, *, clip_norm: float) -> torch.Tensor:
    """Scale ``update`` so its L2 norm is at most ``clip_norm``: Delta * min(1, C / ||Delta||).

    A zero update stays zero (no division by a zero norm). Works on one
    vector ``(P,)`` or row by row on a matrix ``(num_clients, P)``.

    >>> clip_update(torch.tensor([3.0, 4.0]), clip_norm=1.0).tolist()
    [0.6000000238418579, 0.800000011920929]
    """
    clip_norm = check_real("clip_norm", clip_norm, low=0.0, low_open=True)
    if not isinstance(update, torch.Tensor):
        fail("update", "a torch.Tensor", update, TypeError)
    if update.dim() not in (1, 2):
        fail("update", "a vector (P,) or a matrix (num_clients, P)", tuple(update.shape))
    norms = torch.linalg.vector_norm(update, dim=-1, keepdim=True)
    scale = torch.clamp(clip_norm / torch.clamp(norms, min=1e-12), max=1.0)
    return update * scale


def dp_aggregate(
    updates: torch.Tensor,
    *,
    clip_norm: float,
    noise_multiplier: float,
    expected_clients: float,
    generator: torch.Generator,
) -> torch.Tensor:
    """The user-level DP average: (sum_k clip(Delta_k) + N(0, (sigma*C)^2 I)) / (q*K).

    Each row of ``updates`` is one client's flattened update. After clipping,
    adding or removing one client changes the sum by at most C in L2 norm
    (its sensitivity), so Gaussian noise of standard deviation sigma*C per
    coordinate makes the sum a Gaussian mechanism with noise multiplier
    sigma. Dividing by the *expected* number of clients q*K rather than the
    number actually sampled keeps the denominator data-independent, so the
    division is post-processing (McMahan et al., 2018, "Learning
    differentially private recurrent language models", Algorithm 1 with
    the fixed-denominator estimator f~_f). Zero sampled clients is allowed:
    the result is then pure noise.

    Args:
        updates: shape ``(num_clients, P)``, or a list of ``(P,)`` vectors;
            ``num_clients`` may be 0 (a Poisson round with no clients) but P >= 1.
        clip_norm: C > 0.
        noise_multiplier: sigma >= 0 (0 gives the clipped average without noise).
        expected_clients: q*K > 0, the fixed denominator.
        generator: draws the noise.

    Returns:
        The noisy average update, shape ``(P,)``.

    >>> updates = torch.tensor([[3.0, 4.0], [0.0, 0.5]])
    >>> dp_aggregate(updates, clip_norm=1.0, noise_multiplier=0.0, expected_clients=2,
    ...              generator=torch.Generator().manual_seed(0)).tolist()
    [0.30000001192092896, 0.6499999761581421]
    """
    clip_norm = check_real("clip_norm", clip_norm, low=0.0, low_open=True)
    noise_multiplier = check_real("noise_multiplier", noise_multiplier, low=0.0)
    expected_clients = check_real("expected_clients", expected_clients, low=0.0, low_open=True)
    if isinstance(updates, (list, tuple)):
        if len(updates) == 0:
            fail("updates", "non-empty (pass shape (0, P) for a round with no clients)", updates)
        updates = _stack_updates(updates)
    if not isinstance(updates, torch.Tensor):
        fail("updates", "a torch.Tensor of shape (num_clients, num_params)", updates, TypeError)
    if updates.dim() != 2 or updates.shape[1] == 0:
        fail("updates", "a matrix of shape (num_clients, num_params >= 1)", tuple(updates.shape))
    if not isinstance(generator, torch.Generator):
        fail("generator", "a torch.Generator", generator, TypeError)
    # L2 sensitivity of the sum is C: every row was clipped to norm <= C.
    total = clip_update(updates, clip_norm=clip_norm).sum(0)
    noise = torch.randn(total.shape, generator=generator, dtype=total.dtype)
    return (total + noise_multiplier * clip_norm * noise) / expected_clients


def poisson_client_sample(
    num_clients: int, *, sample_rate: float, generator: torch.Generator
) -> torch.Tensor:
    """Client ids of one round: each client joins independently with probability q.

    Poisson sampling is what the subsampled-Gaussian accountant assumes; the
    number of clients per round is Binomial(K, q), not fixed.

    >>> poisson_client_sample(10, sample_rate=1.0, generator=torch.Generator()).tolist()
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
    """
    num_clients = check_int("num_clients", num_clients, minimum=1)
    sample_rate = check_real("sample_rate", sample_rate, low=0.0, high=1.0, low_open=True)
    if not isinstance(generator, torch.Generator):
        fail("generator", "a torch.Generator", generator, TypeError)
    draws = torch.rand(num_clients, generator=generator)
    return torch.nonzero(draws < sample_rate).flatten()


def _stack_updates(updates: list[torch.Tensor] | tuple[torch.Tensor, ...]) -> torch.Tensor:
    shapes = {tuple(u.shape) if isinstance(u, torch.Tensor) else None for u in updates}
    if None in shapes:
        fail("updates", "a list of torch.Tensors", updates, TypeError)
    if len(shapes) != 1 or len(next(iter(shapes))) != 1:
        fail("updates", "vectors of one shape (P,)", sorted(shapes, key=str))
    return torch.stack(list(updates))


def _check_client_data(x: object, y: object) -> None:
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
        fail("x and y", "torch.Tensors", (type(x).__name__, type(y).__name__), TypeError)
    if len(x) != len(y) or len(x) == 0:
        fail("x and y", "non-empty with the same length", (len(x), len(y)))
