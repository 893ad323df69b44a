"""Per-sample gradients and their norms, the first part of DP-SGD (notebook 06, section 1).

Re-exported by ``fl_dp_lab.dpsgd``; import them from there. A per-sample
gradient is the gradient of one example's own loss, grad loss_i, where
``loss_fn(output, target)`` returns the MEAN loss over a batch (like
``torch.nn.functional.cross_entropy``); gradients are dicts keyed like
``model.named_parameters()`` (trainable parameters only), each tensor with the
batch as its first axis. Three ways to compute them (Goodfellow, 2015):
a loop of one backward pass per example, ``torch.func.vmap``, and one
forward/backward with the layer trick of ``fl_dp_lab.dpsgd._ghost``; ``ghost_norms``
gets their norms without materialising them.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
from torch import nn

from fl_dp_lab._types import Gradients, LossFn
from fl_dp_lab._validate import check_choice, check_float_tensor, fail
from fl_dp_lab.dpsgd import _ghost

__all__ = [
    "PER_EXAMPLE_LAYERS",
    "PER_SAMPLE_METHODS",
    "ghost_norms",
    "per_sample_gradients",
    "per_sample_norms",
]

#: ``method`` values of ``per_sample_gradients``.
PerSampleMethod = Literal["loop", "vmap", "hooks"]
PER_SAMPLE_METHODS: tuple[PerSampleMethod, ...] = get_args(PerSampleMethod)
#: Layers that may hold trainable parameters in a model given to DP-SGD: each computes
#: one example's output from that example alone, so a per-sample gradient exists and
#: adding one example moves the clipped sum by at most C. BatchNorm is on it only in
#: eval mode (it then applies fixed statistics); in train mode it normalises with the
#: batch's mean and variance, which mixes examples, and is refused.
PER_EXAMPLE_LAYERS: tuple[type[nn.Module], ...] = (
    nn.Linear,
    nn.Bilinear,
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
    nn.Embedding,
    nn.LayerNorm,
    nn.GroupNorm,
    nn.InstanceNorm1d,
    nn.InstanceNorm2d,
    nn.InstanceNorm3d,
    nn.PReLU,
)


def per_sample_gradients(
    model: nn.Module,
    loss_fn: LossFn,
    x: torch.Tensor,
    y: torch.Tensor,
    method: PerSampleMethod = "vmap",
) -> Gradients:
    """The gradient of every example's own loss, {name: tensor (B, *param.shape)}.

    Methods (all give the same numbers):

    - ``"loop"``: one backward pass per example (the definition; slow).
    - ``"vmap"``: ``torch.func.vmap(torch.func.grad(loss of one example))``,
      any model without batch-mixing layers.
    - ``"hooks"``: G_i^T A_i from the layer inputs and backprops of one
      ordinary forward/backward (Opacus's hooks mode; see ``fl_dp_lab.dpsgd._ghost``);
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
    materialise one layer, whichever is cheaper (see ``fl_dp_lab.dpsgd._ghost``).
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
    return _norms(grads)


def _norms(grads: Gradients, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Per-example L2 norms of checked gradients, in float32 at least (float64 for half types).

    A bfloat16 or float16 sum of squares loses up to half a percent, which would let
    clipping overshoot C; float32 and float64 gradients are reduced in their own dtype.
    A float32 norm that overflows (entries above about 1e19) is taken again in float64,
    so that only a gradient that really holds a NaN or inf has a non-finite norm.
    """
    if dtype is None:
        norms = _norms(grads, norm_dtype(next(iter(grads.values())).dtype))
        if norms.dtype == torch.float32 and not bool(torch.isfinite(norms).all()):
            return _norms(grads, torch.float64)
        return norms
    squares = [torch.linalg.vector_norm(g.flatten(1), dim=1, dtype=dtype) for g in grads.values()]
    if len(squares) == 1:
        return squares[0]
    return torch.linalg.vector_norm(torch.stack(squares), dim=0)


def norm_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype norms and clip factors of ``dtype`` gradients are computed in."""
    return dtype if dtype in (torch.float32, torch.float64) else torch.float64


def clip_limit(max_grad_norm: float, dtype: torch.dtype | None) -> float:
    """The norm C' to clip ``dtype`` contributions to, so that they end at most C after the cast.

    C' = C for float32 and float64 (or ``dtype`` None); for narrower dtypes, whose
    norms and factors are computed in float64, C' = C / (1 + u), u = eps / 2 of
    ``dtype``: the cast back rounds every entry by at most a factor (1 + u), which
    would otherwise carry a clipped norm up to C (1 + u).
    """
    if dtype is not None and norm_dtype(dtype) != dtype:
        return max_grad_norm / (1.0 + torch.finfo(dtype).eps / 2)
    return max_grad_norm


def check_per_example_model(model: nn.Module) -> None:
    """Refuse a model with a layer that mixes examples, naming it and the fix.

    Every module holding trainable parameters must be one of ``PER_EXAMPLE_LAYERS``,
    and no BatchNorm (nor an InstanceNorm that tracks running statistics) may be in
    train mode: both make one example's output, and so its gradient, depend on the
    other examples of the batch, and the clipped sum's sensitivity is then not C.
    Modules without trainable parameters are trusted (activations, Flatten, Dropout,
    containers): code in a custom ``forward`` that mixes examples cannot be seen here.
    """
    for name, module in model.named_modules():
        label = f"model.{name}" if name else "model"
        mixes = isinstance(module, nn.modules.batchnorm._BatchNorm) or (
            isinstance(module, nn.modules.instancenorm._InstanceNorm) and module.track_running_stats
        )
        if mixes and module.training:
            fail(
                f"{label} ({type(module).__name__})",
                "a layer that treats each example on its own (BatchNorm normalises with "
                "the batch's statistics, so one example changes every other's gradient): "
                "use nn.GroupNorm, or opacus.validators.ModuleValidator.fix(model), "
                "or call .eval() on the layer to use fixed statistics",
                "a batch-mixing layer in train mode",
            )
        owns = any(p.requires_grad for p in module.parameters(recurse=False))
        if owns and not mixes and not isinstance(module, PER_EXAMPLE_LAYERS):
            fail(
                f"{label} ({type(module).__name__})",
                "one of the supported layers with trainable parameters ("
                + ", ".join(t.__name__ for t in PER_EXAMPLE_LAYERS)
                + "): freeze its parameters (requires_grad_(False)) or build it from them",
                "a layer whose per-example gradients are not known to exist",
            )


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
    check_per_example_model(model)


def _check_gradients(grads: Gradients, name: str = "grads") -> None:
    """Refuse anything but a non-empty dict of floating-point (B, ...) tensors, one B."""
    if not isinstance(grads, dict) or not grads:
        fail(name, "a non-empty dict {name: tensor (B, ...)}", grads, TypeError)
    for key, g in grads.items():
        check_float_tensor(f"{name}[{key!r}]", g)
        if g.dim() == 0:
            fail(f"{name}[{key!r}]", "a tensor (B, ...) with a batch axis", tuple(g.shape))
    sizes = {len(g) for g in grads.values()}
    if len(sizes) != 1:
        fail(name, "tensors with the same batch size", sorted(sizes))
    dtypes = {g.dtype for g in grads.values()}
    if len(dtypes) != 1:
        fail(name, "tensors of one dtype", sorted(map(str, dtypes)))
