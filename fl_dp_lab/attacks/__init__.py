"""Attacks that show why gradients and models leak their training data (notebook 03).

Three attacks, each a pure function so later notebooks can re-run them
against DP-protected gradients (notebook 06) and DP client updates (notebook 09):

- ``reconstruct_from_linear_gradient``: for a linear layer z = W x + b and one
  example, dL/dW = (dL/dz) x^T and dL/db = dL/dz, so every row i with
  dL/db_i != 0 gives x = (dL/dW)_i / (dL/db)_i exactly (Phong et al., 2018,
  Sec. 3; Geiping et al., 2020, Prop. D.1).
  ``reconstruct_from_noisy_linear_gradient`` is the same leak read from a
  clipped and noised gradient (notebook 06): the best rank-one fit of the
  weight gradient with its bias column, the maximum-likelihood estimate
  under isotropic Gaussian noise.
- ``gradient_inversion``: Deep Leakage from Gradients (Zhu, Liu & Han, 2019):
  optimise dummy inputs and soft labels until their gradient matches the
  observed one. It works on early-training gradients, not on a trained
  network's (see its docstring for the stronger attacks that do).
- ``membership_inference_scores`` + ``roc_curve`` + ``auc``: the loss-threshold
  attack of Yeom et al. (2018): guess "member" when the model's loss on an
  example is below a threshold; the ROC sweeps the threshold, and
  ``bootstrap_auc_interval`` gives the AUC's uncertainty. These live in
  ``fl_dp_lab.attacks._membership`` and are re-exported here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy import optimize
from torch import nn
from tqdm.auto import tqdm

from fl_dp_lab._types import LossFn
from fl_dp_lab._validate import (
    check_bool,
    check_choice,
    check_generator,
    check_int,
    check_real,
    fail,
)
from fl_dp_lab.attacks._membership import (
    auc,
    bootstrap_auc_interval,
    membership_inference_scores,
    roc_curve,
    tpr_at_fpr,
)

__all__ = [
    "InversionResult",
    "auc",
    "bootstrap_auc_interval",
    "gradient_inversion",
    "gradients_from_update",
    "match_reconstructions",
    "membership_inference_scores",
    "psnr",
    "reconstruct_from_linear_gradient",
    "reconstruct_from_noisy_linear_gradient",
    "roc_curve",
    "tpr_at_fpr",
]

def reconstruct_from_linear_gradient(
    grad_weight: torch.Tensor, grad_bias: torch.Tensor
) -> torch.Tensor:
    """Recover the input of a linear layer from its weight and bias gradients.

    For one example, dL/dW = g x^T and dL/db = g with g = dL/dz, so the
    weight gradient is rank one and x follows from any row with g_i != 0.
    Using every row at once (least squares), x = sum_i g_i (dL/dW)_i / sum_i
    g_i^2, which is exact for one example and for a batch gives the average
    of the inputs weighted by their g (a blend, not one image). Under DP
    noise its weights are the noisy g itself, and the noise's energy in the
    denominator shrinks the image towards black;
    ``reconstruct_from_noisy_linear_gradient`` is the stronger attack there.

    Args:
        grad_weight: shape ``(out_features, in_features)``.
        grad_bias: shape ``(out_features,)``, not all zero.

    Returns:
        The reconstructed input, shape ``(in_features,)``.

    Raises:
        ValueError: shapes disagree, or the bias gradient is zero (nothing to divide by).

    >>> x = torch.tensor([1.0, 2.0, 3.0])
    >>> g = torch.tensor([0.5, -2.0])
    >>> reconstruct_from_linear_gradient(torch.outer(g, x), g)
    tensor([1., 2., 3.])
    """
    _check_linear_gradient(grad_weight, grad_bias)
    energy = torch.sum(grad_bias * grad_bias)
    if energy == 0:
        fail("grad_bias", "non-zero somewhere (the example left no gradient)", "all zeros")
    return grad_bias @ grad_weight / energy


def reconstruct_from_noisy_linear_gradient(
    grad_weight: torch.Tensor, grad_bias: torch.Tensor
) -> torch.Tensor:
    """Recover a linear layer's input from a NOISY gradient: the best rank-one fit.

    For one example the layer's gradient with its bias column appended is
    rank one, M = [dL/dW | dL/db] = g (x, 1)^T, g = dL/dz. DP-SGD releases
    M + Z (clipping scales g, not the ratio x) with Z i.i.d. N(0, s^2) in
    every entry. Maximising the likelihood over g and x means minimising
    ||M + Z - g (x, 1)^T||_F, whose answer is the truncated SVD (Eckart &
    Young, 1936): with u and v the top left and right singular vectors,

        x = v[:-1] / v[-1] = sum_i u_i (dL/dW)_i / sum_i u_i (dL/db)_i,

    every row of the weight gradient combined, weighted by u, the direction
    of g denoised with the help of all the weight rows. The plain least
    squares of ``reconstruct_from_linear_gradient`` weights the rows by the
    noisy bias gradient instead. Without noise the two agree and are exact
    (Phong et al., 2018, Sec. 3; Geiping et al., 2020, Prop. D.1); under
    noise this one needs no knowledge of s. Once the noise drowns the signal
    (||g|| ||(x, 1)|| below about s (sqrt(out) + sqrt(in + 1)), random-matrix
    theory) the top singular vector is noise and so is the image.

    Args:
        grad_weight: shape ``(out_features, in_features)``, possibly noised.
        grad_bias: shape ``(out_features,)``, noised like ``grad_weight``.

    Returns:
        The reconstructed input, shape ``(in_features,)``, in ``grad_weight``'s dtype.

    Raises:
        ValueError: shapes disagree, or the fitted bias column is zero.

    >>> x = torch.tensor([1.0, 2.0, 3.0])
    >>> g = torch.tensor([0.5, -2.0])
    >>> reconstruct_from_noisy_linear_gradient(torch.outer(g, x), g)
    tensor([1., 2., 3.])
    """
    _check_linear_gradient(grad_weight, grad_bias)
    stacked = torch.cat([grad_weight, grad_bias[:, None]], dim=1).detach().double()
    _, _, vh = torch.linalg.svd(stacked, full_matrices=False)
    top = vh[0]
    if top[-1] == 0:
        fail("grad_bias", "not orthogonal to the fitted rank-one direction", "a zero bias column")
    return (top[:-1] / top[-1]).to(grad_weight.dtype)


@dataclass
class InversionResult:
    """What ``gradient_inversion`` returns.

    Attributes:
        inputs: the reconstructed batch, shape ``batch_shape``.
        labels: soft labels (probabilities), shape ``(batch_size, num_classes)``.
        loss: gradient-matching loss after each step.
    """

    inputs: torch.Tensor
    labels: torch.Tensor
    loss: list[float] = field(default_factory=list)


def gradient_inversion(
    model: nn.Module,
    loss_fn: LossFn,
    target_grads: Mapping[str, torch.Tensor],
    *,
    batch_shape: tuple[int, ...],
    num_classes: int,
    steps: int,
    generator: torch.Generator,
    labels: torch.Tensor | None = None,
    optimizer: str = "adam",
    lr: float = 0.1,
    restarts: int = 1,
    progress: bool = False,
) -> InversionResult:
    """Deep Leakage from Gradients: find inputs whose gradient matches ``target_grads``.

    Minimises sum over the named parameters of ||grad_theta loss(model(x'),
    y') - target||^2 over dummy inputs x' (drawn U(0, 1) from ``generator``)
    and, unless ``labels`` is given, dummy soft labels y' = softmax(logits')
    (Zhu, Liu & Han, 2019, Alg. 1). ``target_grads`` may hold any subset of
    the parameters and any gradient at all (a clipped and noised one, a DP
    client update) so the same attack measures what a defence leaves.
    Assumes ``loss_fn`` is the mean loss over a batch and accepts
    probabilities as targets (``nn.functional.cross_entropy`` does).

    What it can and cannot do. This plain squared-distance matching works on
    the gradients of an untrained or barely trained network (notebook 03:
    over 25 dB PSNR on 8x8 digits with the 64-32-10 MLP untrained, over
    18 dB after one epoch); even there some random starts diverge, hence
    ``restarts`` (the attacker sees the matching loss, so keeping the lowest
    is fair). On the same MLP trained to 96 % test accuracy, where a
    well-classified example's loss and gradient are tiny, it ends no closer
    to the image than its random start (below 10 dB), and neither 1,000
    Adam steps, L-BFGS nor the true label rescued it. It does not invert
    "any differentiable model's gradient". Stronger attacks exist: Zhu et al.
    used L-BFGS; iDLG (Zhao, Mopuri & Bilen, 2020) reads the label off the
    last layer's bias gradient first; Geiping et al. (2020) match the
    gradient's direction (cosine similarity) with a total-variation prior,
    which reconstructs images from trained ImageNet networks.

    Args:
        model: the model whose gradient leaked (its parameters are not changed).
        loss_fn: ``loss_fn(output, target)`` -> mean loss.
        target_grads: ``{name: gradient}`` keyed like ``model.named_parameters()``.
        batch_shape: shape of the batch the gradient averaged, (batch size, *one
            input's shape), e.g. ``(1, 8, 8)`` for one 8x8 image; the dummy inputs
            x' take this shape.
        num_classes: number of classes of the soft labels.
        steps: optimiser steps, >= 1.
        generator: draws the dummy start.
        labels: known integer labels ``(batch size,)``; ``None`` optimises soft labels.
        optimizer: ``"adam"`` (default: robust from a random start) or ``"lbfgs"``
            (as in the paper: faster when it converges, but it stalls from some starts).
        lr: optimiser learning rate, > 0.
        restarts: independent random starts, >= 1 (drawn one after the other from
            ``generator``); the run whose final matching loss is lowest is returned.
        progress: show a ``tqdm.auto`` bar.

    Returns:
        An ``InversionResult`` with the reconstruction and the loss per step
        (of the returned run).

    >>> from fl_dp_lab.models import LogisticRegression
    >>> model = LogisticRegression(4, 3, generator=torch.Generator().manual_seed(0))
    >>> x, y = torch.tensor([[0.1, 0.9, 0.4, 0.7]]), torch.tensor([2])
    >>> grads = torch.autograd.grad(nn.functional.cross_entropy(model(x), y), model.parameters())
    >>> leaked = dict(zip(["linear.weight", "linear.bias"], grads))
    >>> out = gradient_inversion(model, nn.functional.cross_entropy, leaked, batch_shape=(1, 4),
    ...     num_classes=3, steps=100, generator=torch.Generator().manual_seed(1))
    >>> [round(v, 1) for v in out.inputs[0].tolist()], out.labels.argmax(1).tolist()
    ([0.1, 1.0, 0.4, 0.8], [2])
    """
    if not isinstance(model, nn.Module):
        fail("model", "a torch.nn.Module", model, TypeError)
    params = dict(model.named_parameters())
    if not isinstance(target_grads, Mapping) or not target_grads:
        fail("target_grads", "a non-empty dict {parameter name: gradient}", target_grads, TypeError)
    for name, grad in target_grads.items():
        if name not in params:
            fail("target_grads keys", f"parameter names of the model {sorted(params)}", name)
        if tuple(grad.shape) != tuple(params[name].shape):
            fail(f"target_grads[{name!r}] shape", f"{tuple(params[name].shape)}", tuple(grad.shape))
    if not isinstance(batch_shape, (tuple, list)) or len(batch_shape) < 2:
        fail("batch_shape", "a tuple (batch size, *input shape)", batch_shape, TypeError)
    batch_shape = tuple(check_int("batch_shape entries", d, minimum=1) for d in batch_shape)
    batch_size = batch_shape[0]
    num_classes = check_int("num_classes", num_classes, minimum=2)
    steps = check_int("steps", steps, minimum=1)
    check_choice("optimizer", optimizer, ("lbfgs", "adam"))
    lr = check_real("lr", lr, low=0.0, low_open=True)
    restarts = check_int("restarts", restarts, minimum=1)
    check_bool("progress", progress)
    if labels is not None and tuple(labels.shape) != (batch_size,):
        fail("labels shape", f"({batch_size},)", tuple(labels.shape))

    targets = {n: g.detach() for n, g in target_grads.items()}
    generator = check_generator("generator", generator)
    runs = []
    for _ in tqdm(range(restarts), desc="restarts", disable=not progress or restarts == 1):
        runs.append(
            _invert_once(
                model, loss_fn, targets, batch_shape, num_classes,
                steps=steps, generator=generator, labels=labels, optimizer=optimizer, lr=lr,
                progress=progress,
            )
        )  # fmt: skip
    best, _ = min(runs, key=lambda run: run[1])
    return best


def gradients_from_update(
    model: nn.Module, update: torch.Tensor, *, lr: float
) -> dict[str, torch.Tensor]:
    """Turn a flat client update into the gradient dict ``gradient_inversion`` matches.

    A federated client that takes ONE local SGD step on its whole data from
    the server's weights sends update = new - old = -lr * gradient (FedSGD,
    McMahan et al., 2017). Splitting ``-update / lr`` by the shapes of
    ``model.named_parameters()`` (the order ``flatten_parameters`` uses)
    gives back that gradient, clipped and noised if the update was, so the
    attack of notebook 03 runs unchanged against a DP client update
    (notebook 09). For several local steps it is only an approximation.

    Args:
        model: the server's model, whose parameter shapes define the split.
        update: flat tensor ``(P,)`` with P the number of parameters.
        lr: the client's learning rate, > 0.

    Returns:
        ``{name: tensor}`` keyed like ``model.named_parameters()``.

    >>> from fl_dp_lab.models import LogisticRegression
    >>> grads = gradients_from_update(LogisticRegression(2, 2), -0.5 * torch.arange(6.0), lr=0.5)
    >>> grads["linear.bias"].tolist()
    [4.0, 5.0]
    """
    if not isinstance(model, nn.Module):
        fail("model", "a torch.nn.Module", model, TypeError)
    lr = check_real("lr", lr, low=0.0, low_open=True)
    named = list(model.named_parameters())
    size = sum(p.numel() for _, p in named)
    if not isinstance(update, torch.Tensor) or tuple(update.shape) != (size,):
        fail("update", f"a flat tensor of shape ({size},)", getattr(update, "shape", update))
    parts = torch.split(-update.detach() / lr, [p.numel() for _, p in named])
    return {name: part.reshape(p.shape) for (name, p), part in zip(named, parts, strict=True)}


def match_reconstructions(x_true: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """Order the reconstructions to pair them with the true images (min total MSE).

    A batch gradient is a mean, blind to the order of the examples, so a
    batch reconstruction comes back in any order. The Hungarian algorithm
    (``scipy.optimize.linear_sum_assignment``) finds the pairing.

    Args:
        x_true, x_hat: tensors of the same shape ``(batch, ...)``.

    Returns:
        ``x_hat`` reordered so that row i is the reconstruction of ``x_true[i]``.

    >>> match_reconstructions(torch.tensor([[0.0], [1.0]]), torch.tensor([[0.9], [0.1]]))
    tensor([[0.1000],
            [0.9000]])
    """
    _check_same_shape(x_true, x_hat)
    a = x_true.detach().flatten(1)
    b = x_hat.detach().flatten(1)
    cost = torch.cdist(a.double(), b.double()) ** 2
    rows, cols = optimize.linear_sum_assignment(cost.numpy())
    return x_hat[torch.as_tensor(cols[np.argsort(rows)])]


def psnr(x_true: torch.Tensor, x_hat: torch.Tensor, *, data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio per image: 10 log10(data_range^2 / MSE), in dB.

    Higher is better; an exact copy gives ``inf``. The scale the course uses
    for 8x8 and 28x28 digits in [0, 1]: above about 25 dB a reconstruction is
    hard to tell from the original by eye, about 20 dB is clearly
    recognisable, about 10 dB is a blur (a uniform random image scores about 6 dB).

    Args:
        x_true, x_hat: tensors of the same shape ``(batch, ...)``.
        data_range: max minus min of the pixel scale, > 0.

    Returns:
        Tensor ``(batch,)`` of PSNR values.

    >>> psnr(torch.zeros(1, 4), torch.full((1, 4), 0.1))
    tensor([20.])
    """
    _check_same_shape(x_true, x_hat)
    data_range = check_real("data_range", data_range, low=0.0, low_open=True)
    mse = ((x_true.detach() - x_hat.detach()) ** 2).flatten(1).mean(1)
    return 10.0 * torch.log10(data_range**2 / mse)


def _invert_once(
    model: nn.Module,
    loss_fn: LossFn,
    targets: Mapping[str, torch.Tensor],
    shape: tuple[int, ...],
    num_classes: int,
    *,
    steps: int,
    generator: torch.Generator,
    labels: torch.Tensor | None,
    optimizer: str,
    lr: float,
    progress: bool,
) -> tuple[InversionResult, float]:
    """One DLG run from one random start: the result and its final matching loss."""
    params = dict(model.named_parameters())
    names = list(targets)
    dummy_x = torch.rand(shape, generator=generator).requires_grad_(True)
    dummy_logits = torch.randn((shape[0], num_classes), generator=generator).requires_grad_(True)
    variables = [dummy_x] if labels is not None else [dummy_x, dummy_logits]

    def matching_loss() -> torch.Tensor:
        target = labels if labels is not None else torch.softmax(dummy_logits, dim=1)
        loss = loss_fn(model(dummy_x), target)
        grads = torch.autograd.grad(loss, [params[n] for n in names], create_graph=True)
        squares = (((g - targets[n]) ** 2).sum() for g, n in zip(grads, names, strict=True))
        return sum(squares, torch.zeros(()))

    opt: torch.optim.Optimizer
    if optimizer == "lbfgs":
        opt = torch.optim.LBFGS(variables, lr=lr, max_iter=1, line_search_fn="strong_wolfe")
    else:
        opt = torch.optim.Adam(variables, lr=lr)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = matching_loss()
        loss.backward()
        return loss

    history: list[float] = []
    for _ in tqdm(range(steps), desc="inversion", disable=not progress, leave=False):
        history.append(float(opt.step(closure).detach()))
    final = float(matching_loss().detach())
    model.zero_grad(set_to_none=True)
    soft = (
        nn.functional.one_hot(labels, num_classes).float()
        if labels is not None
        else torch.softmax(dummy_logits, dim=1)
    )
    result = InversionResult(inputs=dummy_x.detach(), labels=soft.detach(), loss=history)
    return result, final if np.isfinite(final) else float("inf")


def _check_same_shape(a: torch.Tensor, b: torch.Tensor) -> None:
    for name, t in (("x_true", a), ("x_hat", b)):
        if not isinstance(t, torch.Tensor) or t.dim() < 2:
            fail(name, "a tensor of shape (batch, ...)", getattr(t, "shape", t), TypeError)
    if a.shape != b.shape:
        fail("x_hat's shape", f"x_true's shape {tuple(a.shape)}", tuple(b.shape))


def _check_linear_gradient(grad_weight: torch.Tensor, grad_bias: torch.Tensor) -> None:
    if not isinstance(grad_weight, torch.Tensor) or grad_weight.dim() != 2:
        fail("grad_weight", "a 2-D tensor (out_features, in_features)", grad_weight, TypeError)
    if not isinstance(grad_bias, torch.Tensor) or grad_bias.shape != grad_weight.shape[:1]:
        shape = getattr(grad_bias, "shape", grad_bias)
        fail("grad_bias", f"a tensor of shape ({grad_weight.shape[0]},)", shape)
