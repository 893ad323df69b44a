"""Per-sample gradients and their norms, the first part of DP-SGD (notebook 06, section 1).

Re-exported by ``fl_dp_lab.dpsgd``; import them from there. A per-sample
gradient is the gradient of one example's own loss, grad loss_i, where
``loss_fn(output, target)`` returns the MEAN loss over a batch (like
``torch.nn.functional.cross_entropy``); gradients are dicts keyed like
``model.named_parameters()`` (trainable parameters only), each tensor with the
batch as its first axis. Three ways to compute them (Goodfellow, 2015):
a loop of one backward pass per example, ``torch.func.vmap``, and one
forward/backward with the layer trick of ``fl_dp_lab._ghost``; ``ghost_norms``
gets their norms without materialising them.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from fl_dp_lab import _ghost
from fl_dp_lab._validate import check_choice, fail

__all__ = ["PER_SAMPLE_METHODS", "ghost_norms", "per_sample_gradients", "per_sample_norms"]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Gradients = dict[str, torch.Tensor]
#: ``method`` values of ``per_sample_gradients``.
PER_SAMPLE_METHODS = ("loop", "vmap", "hooks")


def per_sample_gradients(
    model: nn.Module, loss_fn: LossFn, x: torch.Tensor, y: torch.Tensor, method: str = "vmap"
) -> Gradients:
    """The gradient of every example's own loss, {name: tensor (B, *param.shape)}.

    Methods (all give the same numbers):

    - ``"loop"``: one backward pass per example (the definition; slow).
    - ``"vmap"``: ``torch.func.vmap(torch.func.grad(loss of one example))``,
      any model without batch-mixing layers.
    - ``"hooks"``: G_i^T A_i from the layer inputs and backprops of one
      ordinary forward/backward (Opacus's hooks mode; see ``fl_dp_lab._ghost``);
      ``nn.Linear``/``nn.Conv2d`` only, otherwise it falls back to vmap.

    >>> from fl_dp_lab.models import LogisticRegression
    >>> model = LogisticRegression(4, 2, generator=torch.Generator().manual_seed(0))
    >>> x, y = torch.ones(3, 4), torch.tensor([0, 1, 1])
    >>> per_sample_gradients(model, nn.functional.cross_entropy, x, y)["linear.weight"].shape
    torch.Size([3, 2, 4])
    """
    _check_batch(model, x, y)
    check_choice("method", method, PER_SAMPLE_METHODS)
    if method == "hooks":
        captured = _ghost.capture(model, loss_fn, x, y)
        if captured is not None:
            return _ghost.per_sample_gradients(captured[0])
        method = "vmap"
    params = _trainable(model)
    if method == "loop":
        rows = [
            torch.autograd.grad(loss_fn(model(x[i : i + 1]), y[i : i + 1]), list(params.values()))
            for i in range(len(x))
        ]
        return {name: torch.stack([row[k] for row in rows]) for k, name in enumerate(params)}
    detached = {name: p.detach() for name, p in params.items()}
    buffers = dict(model.named_buffers())

    def loss_one(p: Gradients, xi: torch.Tensor, yi: torch.Tensor) -> torch.Tensor:
        out = torch.func.functional_call(model, (p, buffers), (xi.unsqueeze(0),))
        return loss_fn(out, yi.unsqueeze(0))

    return torch.func.vmap(torch.func.grad(loss_one), in_dims=(None, 0, 0))(detached, x, y)


def ghost_norms(
    model: nn.Module, loss_fn: LossFn, x: torch.Tensor, y: torch.Tensor
) -> torch.Tensor:
    """Per-sample gradient norms ||grad loss_i||, shape (B,), without per-sample gradients.

    For ``nn.Linear`` on 2-D input the weight part is ||a_i|| * ||g_i|| (input
    times backprop); sequences and convolutions use the Gram-matrix trick or
    materialise one layer, whichever is cheaper (see ``fl_dp_lab._ghost``).
    Models with other trainable layers fall back to vmap.

    >>> from fl_dp_lab.models import LogisticRegression
    >>> model = LogisticRegression(4, 2, generator=torch.Generator().manual_seed(0))
    >>> x, y = torch.ones(3, 4), torch.tensor([0, 1, 1])
    >>> loss = nn.functional.cross_entropy
    >>> bool(torch.allclose(ghost_norms(model, loss, x, y),
    ...      per_sample_norms(per_sample_gradients(model, loss, x, y))))
    True
    """
    _check_batch(model, x, y)
    captured = _ghost.capture(model, loss_fn, x, y)
    if captured is None:
        return per_sample_norms(per_sample_gradients(model, loss_fn, x, y, "vmap"))
    return _ghost.squared_norms(captured[0]).sqrt()


def per_sample_norms(grads: Gradients) -> torch.Tensor:
    """The L2 norm of each example's whole gradient (all parameters together), shape (B,).

    >>> grads = {"w": torch.tensor([[3.0, 0.0], [0.0, 1.0]]), "b": torch.tensor([[4.0], [0.0]])}
    >>> per_sample_norms(grads)
    tensor([5., 1.])
    """
    _check_gradients(grads)
    return torch.stack([g.flatten(1).square().sum(1) for g in grads.values()]).sum(0).sqrt()


def _trainable(model: nn.Module) -> dict[str, nn.Parameter]:
    if not isinstance(model, nn.Module):
        fail("model", "a torch.nn.Module", model, TypeError)
    return {name: p for name, p in model.named_parameters() if p.requires_grad}


def _check_batch(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, allow_empty: bool = False
) -> None:
    if not isinstance(model, nn.Module):
        fail("model", "a torch.nn.Module", model, TypeError)
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
        fail("x and y", "torch.Tensors", (type(x).__name__, type(y).__name__), TypeError)
    if len(x) != len(y):
        fail("x and y", "batches of the same size", (len(x), len(y)))
    if len(x) == 0 and not allow_empty:
        fail("x and y", "non-empty batches", (len(x), len(y)))


def _check_gradients(grads: Gradients) -> None:
    if not isinstance(grads, dict) or not grads:
        fail("grads", "a non-empty dict {name: tensor (B, ...)}", grads, TypeError)
    sizes = {len(g) for g in grads.values()}
    if len(sizes) != 1:
        fail("grads", "tensors with the same batch size", sorted(sizes))
