"""Local training of many clients at once: one batched SGD step for all of them.

The readable reference is ``fl_dp_lab.federated.local_update``, called once
per client. Here every client's copy of the parameters is stacked along a
new leading axis and ``torch.func.vmap(torch.func.grad(...))`` takes one SGD
step for all clients together. Clients hold different amounts of data, so
their mini-batches are padded to one size with a 0/1 mask (the masked loss
is the mean over the real rows only), and clients with fewer steps simply
stop: clients are ordered by their number of steps, so the ones still
training at step t are a prefix of the stack.

Each client shuffles its batches with its own ``torch.Generator`` exactly as
``local_update`` does, so both give the same updates up to float rounding.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from fl_dp_lab._validate import check_int, check_real, fail
from fl_dp_lab.training import check_data

__all__ = ["batched_local_updates"]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def batched_local_updates(
    model: nn.Module,
    xs: Sequence[torch.Tensor],
    ys: Sequence[torch.Tensor],
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    generators: Sequence[torch.Generator],
    loss_fn: LossFn = nn.functional.cross_entropy,
) -> torch.Tensor:
    """Updates of all clients, shape ``(num_clients, P)``, trained side by side.

    Same algorithm and same batches as calling ``local_update`` on each
    client with its generator (clients with no data return a zero update;
    parameters with ``requires_grad`` False are not trained, their slice is zero).
    Checks its arguments as ``local_update`` does (it is public through
    ``fl_dp_lab.federated``).
    """
    epochs = check_int("epochs", epochs, minimum=1)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    lr = check_real("lr", lr, low=0.0, low_open=True)
    sizes = (len(xs), len(ys), len(generators))
    if len(set(sizes)) != 1:
        fail("xs, ys and generators", "sequences of one length", sizes)
    for k, (x, y) in enumerate(zip(xs, ys)):
        tensors = isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor)
        if not (tensors and len(x) == len(y) == 0):  # a client with no data is allowed
            check_data(x, y, name=f"client {k}'s x and y")
    names = [name for name, _ in model.named_parameters()]
    start = {name: p.detach() for name, p in model.named_parameters()}
    # frozen parameters (requires_grad False) are constants: not differentiated, not moved
    frozen = {name: p.detach() for name, p in model.named_parameters() if not p.requires_grad}
    trained = [name for name in names if name not in frozen]
    num_clients = len(xs)
    flat_start = torch.cat([p.reshape(-1) for p in start.values()])
    if num_clients == 0 or not trained:
        return flat_start.new_zeros(num_clients, flat_start.numel())
    index, mask, order, steps = _schedule(xs, epochs, batch_size, generators)
    x_all = torch.cat([xs[k] for k in order])
    y_all = torch.cat([ys[k] for k in order])
    # every client starts from the global model: stack K copies
    params = {n: start[n].unsqueeze(0).repeat(num_clients, *[1] * start[n].dim()) for n in trained}

    def per_example_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return loss_fn(output.unsqueeze(0), target.unsqueeze(0))

    per_example = (
        functools.partial(nn.functional.cross_entropy, reduction="none")
        if loss_fn is nn.functional.cross_entropy
        else vmap(per_example_loss)
    )

    def masked_loss(
        client_params: dict[str, torch.Tensor], xb: torch.Tensor, yb: torch.Tensor, mb: torch.Tensor
    ) -> torch.Tensor:
        output = functional_call(model, {**frozen, **client_params}, (xb,))
        return (per_example(output, yb) * mb).sum() / mb.sum().clamp(min=1.0)

    step = vmap(grad(masked_loss))
    for t in range(int(steps[0]) if len(steps) else 0):
        active = int((steps > t).sum())  # clients are sorted by steps, descending
        rows = index[:active, t]
        grads = step(
            {n: p[:active] for n, p in params.items()}, x_all[rows], y_all[rows], mask[:active, t]
        )
        for n in trained:
            params[n][:active] -= lr * grads[n]
    flat = torch.cat(
        [
            (params[n] if n in params else start[n].expand(num_clients, *start[n].shape)).reshape(
                num_clients, -1
            )
            for n in names
        ],
        dim=1,
    )
    updates = torch.empty_like(flat)
    updates[torch.as_tensor(order)] = flat - flat_start
    return updates


def _schedule(
    xs: Sequence[torch.Tensor],
    epochs: int,
    batch_size: int,
    generators: Sequence[torch.Generator],
) -> tuple[torch.Tensor, torch.Tensor, list[int], torch.Tensor]:
    """Padded row indices (K, T, W) into the concatenated data, their mask, the client order.

    Client k's epoch is ``shuffled_batches(n_k, batch_size, generator_k)``: one
    permutation cut into chunks, drawn exactly as ``local_update`` draws it.
    Clients are ordered by their number of local steps, most first; row
    indices refer to the data concatenated in that order.
    """
    sizes = [len(x) for x in xs]
    width = max(1, min(batch_size, max(sizes)))
    blocks: list[torch.Tensor] = []
    for n, gen in zip(sizes, generators, strict=True):
        per_epoch = -(-n // batch_size)  # ceil(n / B) batches, the last one short
        block = torch.full((epochs * per_epoch, width), -1, dtype=torch.long)
        for e in range(epochs if n > 0 else 0):
            perm = torch.randperm(n, generator=gen)
            rows = block[e * per_epoch : (e + 1) * per_epoch].view(-1)
            rows[:n] = perm  # width == B here unless there is one batch of n < B rows
        blocks.append(block)
    order = sorted(range(len(xs)), key=lambda k: -len(blocks[k]))
    steps = torch.tensor([len(blocks[k]) for k in order])
    index = torch.full((len(xs), max(1, int(steps[0])), width), -1, dtype=torch.long)
    offset = 0
    for row, k in enumerate(order):
        block = blocks[k]
        index[row, : len(block)] = torch.where(block >= 0, block + offset, -1)
        offset += sizes[k]
    mask = (index >= 0).float()
    return index.clamp(min=0), mask, order, steps
