"""Per-sample gradient norms and clipped sums from layer activations and backprops.

The machinery behind ``method="ghost"`` (and ``method="hooks"``) of
``fl_dp_lab.dpsgd``. One ordinary forward pass records, with forward hooks,
the input ``a`` and the output ``z`` of every ``nn.Linear`` and ``nn.Conv2d``;
one backward pass to those outputs only (no parameter gradients) gives the
backprops ``g_i = d loss_i / d z_i``. Every layer then reads as a matrix
product per example: with ``A_i`` (T x D) the layer's input rows (T = 1 for a
linear layer on 2-D input; the T positions of a sequence; the T unfolded
patches of a convolution) and ``G_i`` (T x P) the backprops,

    grad_W loss_i = G_i^T A_i,        grad_b loss_i = sum_t G_i[t].

Norms without per-sample gradients ("ghost norms", Goodfellow 2015;
Li et al. 2022; Bu et al. 2023):

- T = 1: ||G_i^T A_i||_F = ||a_i|| * ||g_i|| (the norm of an outer product);
- T > 1 and T * (D + P) < D * P: the Gram-matrix trick,
  ||G_i^T A_i||_F^2 = sum_{t,s} (A_i A_i^T)[t,s] * (G_i G_i^T)[t,s];
- otherwise the layer's per-sample gradient is materialised (one bmm),
  which is then the cheaper of the two.

The clipped sum needs no second backward pass: since example i's loss reaches
the layer only through z_i, the reweighted loss sum_i w_i loss_i has backprops
w_i g_i, so its weight gradient is the single product (w * G)^T A over the
whole batch ("book-keeping", Bu et al. 2023).

Models in bfloat16 or float16, models with trainable parameters outside
``nn.Linear``/``nn.Conv2d`` (or a
grouped, string-padded or non-zero-padded convolution, a layer called twice,
an in-place op on a layer output, a layer whose input's first axis is not the
batch's, such as tokens flattened to (B * T, D) rows or a time-major (T, B, D)
layout) are not covered: ``capture`` returns ``None`` and the caller falls
back to ``torch.func.vmap``. Every layer must be batch-first, as in Opacus: a
time-major layout whose T happens to equal B cannot be told apart from a
batch-first one, and would be clipped per time step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import torch
from torch import nn
from torch.nn.grad import conv2d_weight

from fl_dp_lab._types import LossFn

__all__ = ["Layer", "capture", "clipped_sum", "per_sample_gradients", "squared_norms"]


@dataclass
class Layer:
    """One supported layer's record: parameter names, input columns A, backprops G."""

    module: nn.Module
    weight: str | None  # name in model.named_parameters(), None when frozen
    bias: str | None
    inputs: torch.Tensor  # the layer's input, as the forward pass saw it
    output_shape: torch.Size  # the layer's output z, (B, ...)
    activations: torch.Tensor  # (B, D, T): column t is the input row A_i[t]; (B, D) when T = 1
    backprops: torch.Tensor  # (B, P, T), per-example: d loss_i / d z_i; (B, P) when T = 1
    per_sample: torch.Tensor | None = None  # (B, P, D) once materialised


def capture(
    model: nn.Module,
    loss_fn: LossFn,
    x: torch.Tensor,
    y: torch.Tensor,
    trainable: dict[str, nn.Parameter] | None = None,
) -> tuple[list[Layer], torch.Tensor] | None:
    """Forward and backward once; return the layers' records and the mean loss, or ``None``.

    ``trainable`` ({name: parameter} of the parameters that require grad) saves
    a second walk over the model when the caller has it already.
    """
    modules = _supported_modules(model, trainable)
    if modules is None:
        return None
    seen: dict[int, list[tuple[torch.Tensor, torch.Tensor, int]]] = {}

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        seen.setdefault(id(module), []).append((inputs[0].detach(), output, output._version))

    handles = [module.register_forward_hook(hook) for module, _, _ in modules]
    try:
        loss = loss_fn(model(x), y)
    finally:
        for handle in handles:
            handle.remove()
    records = [seen.get(id(module), []) for module, _, _ in modules]
    if any(len(r) != 1 or r[0][1]._version != r[0][2] for r in records):
        return None  # a layer ran twice (or never), or its output was changed in place
    if any(r[0][0].dim() != 4 for (m, _, _), r in zip(modules, records) if type(m) is nn.Conv2d):
        return None  # unbatched input: no example axis to take per-sample gradients over
    if any(r[0][0].dim() < 2 or len(r[0][0]) != len(x) or len(r[0][1]) != len(x) for r in records):
        return None  # a layer whose first axis is not the batch (tokens flattened, time-major)
    outputs = [r[0][1] for r in records]
    # loss is the batch mean, so len(x) * d loss / d z_i = d loss_i / d z_i: start the
    # backward pass from len(x) instead of 1 (no extra multiply on the graph)
    scale = loss.detach().new_full((), len(x))
    backprops = torch.autograd.grad(loss, outputs, scale, allow_unused=True)
    layers = []
    for (module, weight, bias), ((inp, out, _),), back in zip(modules, records, backprops):
        back = torch.zeros_like(out) if back is None else back
        layers.append(Layer(module, weight, bias, inp, out.shape, *_columns(module, inp, back)))
    return layers, loss.detach()


def squared_norms(layers: list[Layer]) -> torch.Tensor:
    """Per-example squared L2 norm of the whole gradient, shape (B,)."""
    total = None
    for layer in layers:
        a, g = layer.activations, layer.backprops
        if a.dim() == 2:  # T = 1: ||g a^T||^2 = ||a||^2 ||g||^2, and the bias part is ||g||^2
            g_sq = _row_dot(g)
            if layer.weight is None:
                part = g_sq
            elif layer.bias is None:
                part = g_sq.mul_(_row_dot(a))
            else:
                part = torch.addcmul(g_sq, g_sq, _row_dot(a))
        else:
            batch, d, t = a.shape
            p = g.shape[1]
            part = torch.zeros(batch, dtype=a.dtype)
            if layer.weight is not None:
                if t * (d + p) < d * p:
                    gram_a = torch.bmm(a.transpose(1, 2), a)
                    gram_g = torch.bmm(g.transpose(1, 2), g)
                    part += (gram_a * gram_g).sum((1, 2))
                else:
                    layer.per_sample = torch.bmm(g, a.transpose(1, 2))
                    part += layer.per_sample.square().sum((1, 2))
            if layer.bias is not None:
                part += _row_dot(g.sum(2))
        total = part if total is None else total.add_(part)
    assert total is not None  # capture never returns an empty list of layers
    return total


def clipped_sum(
    layers: list[Layer], factors: torch.Tensor, out: dict[str, torch.Tensor] | None = None
) -> dict[str, torch.Tensor]:
    """sum_i factors[i] * grad loss_i for every captured parameter, without per-sample gradients.

    With ``out`` ({name: tensor of the parameter's shape}), the sums are added
    into its tensors in place (a linear layer's weight by one ``addmm_``) and
    ``out`` is returned.
    """
    result = {} if out is None else out
    for layer in layers:
        module = layer.module
        if layer.activations.dim() == 2:  # a linear layer on (B, D) rows: one matrix product
            a, g_t = layer.activations, layer.backprops.t()  # (B, D) and (P, B)
            if layer.weight is not None:  # (w * G)^T A
                if out is None:
                    result[layer.weight] = torch.mm(g_t * factors, a)
                else:
                    out[layer.weight].addmm_(g_t * factors, a)
            if layer.bias is not None:  # sum_i w_i g_i = G^T w, one matrix-vector product
                if out is None:
                    result[layer.bias] = torch.mv(g_t, factors)
                else:
                    out[layer.bias].addmv_(g_t, factors)
            continue
        g = layer.backprops * factors.view(-1, 1, 1)
        if layer.weight is not None:
            if layer.per_sample is not None:
                flat = torch.einsum("b,bpd->pd", factors, layer.per_sample)
            elif isinstance(module, nn.Conv2d):
                flat = conv2d_weight(
                    layer.inputs,
                    module.weight.shape,
                    g.reshape(layer.output_shape),
                    module.stride,
                    module.padding,
                    module.dilation,
                )
            else:
                flat = g.transpose(1, 2).reshape(-1, g.shape[1]).T @ _rows(layer.activations)
            _store(result, layer.weight, flat.reshape(_weight(module).shape), out is not None)
        if layer.bias is not None:
            _store(result, layer.bias, g.sum((0, 2)), out is not None)
    return result


def per_sample_gradients(layers: list[Layer]) -> dict[str, torch.Tensor]:
    """Materialised per-sample gradients, {name: (B, *shape)} (Opacus's "hooks" mode)."""
    result = {}
    for layer in layers:
        g, a = layer.backprops, layer.activations
        if a.dim() == 2:  # T = 1: the outer product g_i a_i^T
            g, a = g.unsqueeze(2), a.unsqueeze(2)
        if layer.weight is not None:
            grad = torch.bmm(g, a.transpose(1, 2))
            result[layer.weight] = grad.reshape(len(g), *_weight(layer.module).shape)
        if layer.bias is not None:
            result[layer.bias] = g.sum(2)
    return result


def _supported_modules(
    model: nn.Module, trainable: dict[str, nn.Parameter] | None
) -> list[tuple[nn.Module, str | None, str | None]] | None:
    """(module, weight name, bias name) for every layer holding trainable parameters, or None.

    None when a trainable parameter lives outside a supported layer (or in two).
    """
    if trainable is None:
        trainable = {name: p for name, p in model.named_parameters() if p.requires_grad}
    if any(p.dtype not in (torch.float32, torch.float64) for p in trainable.values()):
        return None  # half precision: its layer norms would be too coarse to clip by
    names = {id(p): name for name, p in trainable.items()}
    covered: set[int] = set()
    modules = []
    for module in model.modules():
        if not _is_supported(module):
            if any(p.requires_grad for p in module.parameters(recurse=False)):
                return None  # even one a supported layer shares (tied weights): not covered
            continue
        found: list[str | None] = []
        for param in (module.weight, module.bias):
            if param is None or not param.requires_grad:
                found.append(None)
            elif id(param) in covered or id(param) not in names:
                return None  # a parameter shared between layers
            else:
                covered.add(id(param))
                found.append(names[id(param)])
        if found[0] is not None or found[1] is not None:
            modules.append((module, found[0], found[1]))
    if len(covered) != len(names) or not modules:
        return None
    return modules


def _is_supported(module: nn.Module) -> bool:
    if type(module) is nn.Linear:
        return True
    return (
        type(module) is nn.Conv2d
        and module.groups == 1
        and not isinstance(module.padding, str)
        and module.padding_mode == "zeros"
    )


def _columns(
    module: nn.Module, inp: torch.Tensor, back: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The layer's input columns A (B, D, T) and backprops G (B, P, T), as views where possible.

    A linear layer on 2-D input (T = 1) keeps its rows, A (B, D) and G (B, P).
    """
    batch = len(inp)
    if isinstance(module, nn.Conv2d):
        patches = nn.functional.unfold(
            inp, module.kernel_size, dilation=module.dilation,
            padding=cast(tuple[int, ...], module.padding),  # never a string: _is_supported
            stride=module.stride,
        )  # fmt: skip
        return patches, back.flatten(2)
    if inp.dim() == 2:  # nn.Linear, the other supported layer
        return inp, back
    a = inp.reshape(batch, -1, inp.shape[-1]).transpose(1, 2)
    return a, back.reshape(batch, -1, back.shape[-1]).transpose(1, 2)


def _row_dot(rows: torch.Tensor) -> torch.Tensor:
    """Squared L2 norm of every row of a (B, D) matrix, shape (B,).

    ``vector_norm`` reduces in one pass; ``vecdot`` would first build the (B, D) product.
    """
    return torch.linalg.vector_norm(rows, dim=1).square_()


def _store(
    result: dict[str, torch.Tensor], name: str, value: torch.Tensor, accumulate: bool
) -> None:
    if accumulate:
        result[name].add_(value)
    else:
        result[name] = value


def _rows(columns: torch.Tensor) -> torch.Tensor:
    """(B, D, T) columns as a (B * T, D) matrix of rows."""
    return columns.transpose(1, 2).reshape(-1, columns.shape[1])


def _weight(module: nn.Module) -> torch.Tensor:
    """The weight of a supported layer (nn.Linear or nn.Conv2d: both have one)."""
    return cast(torch.Tensor, module.weight)
