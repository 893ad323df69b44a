"""One Opacus DP-SGD step without a data loader, to set beside ``fl_dp_lab.dpsgd``.

Re-exported by ``fl_dp_lab.opacus_bridge``; import them from there. These
helpers build Opacus's per-sample gradients (``GradSampleModule``) and its
``DPOptimizer`` directly, the way ``PrivacyEngine.make_private`` would, so that
notebook 07, ``tests/test_opacus_agreement.py`` and
``benchmarks/dpsgd_step.py`` can compare one Opacus step with one of ours on
the same batch. Nothing here re-implements DP-SGD.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Literal, get_args

import torch
from opacus import GradSampleModule
from opacus.optimizers import DPOptimizer
from torch import nn

from fl_dp_lab._types import LossFn
from fl_dp_lab._validate import (
    check_choice,
    check_finite_norms,
    check_generator,
    check_int,
    check_real,
    fail,
)

__all__ = [
    "GRAD_SAMPLE_MODES",
    "opacus_dp_optimizer",
    "opacus_dp_step",
    "opacus_per_sample_gradients",
]

#: Opacus's ways of getting per-sample gradient norms: backward hooks,
#: ``torch.func`` (vmap), and ghost clipping (norms without per-sample gradients).
GradSampleMode = Literal["hooks", "functorch", "ghost"]
GRAD_SAMPLE_MODES: tuple[GradSampleMode, ...] = get_args(GradSampleMode)


def opacus_per_sample_gradients(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    loss_fn: LossFn = nn.functional.cross_entropy,
) -> dict[str, torch.Tensor]:
    """Per-sample gradients from Opacus's ``GradSampleModule`` (backward hooks).

    ``loss_fn`` returns the mean loss over the batch, so Opacus is told
    ``loss_reduction="mean"`` and rescales by the batch size: row i is the
    gradient of example i's own loss. ``model`` is left as it was (hooks removed,
    ``.grad`` untouched).

    Returns:
        ``{name: tensor (B, *param.shape)}`` keyed like ``model.named_parameters()``.

    >>> from fl_dp_lab.models import LogisticRegression
    >>> grads = opacus_per_sample_gradients(LogisticRegression(4, 2), torch.ones(3, 4),
    ...                                     torch.tensor([0, 1, 1]))
    >>> grads["linear.bias"]  # softmax(0, 0) - one_hot(label), one row per example
    tensor([[-0.5000,  0.5000],
            [ 0.5000, -0.5000],
            [ 0.5000, -0.5000]])
    """
    if len(x) != len(y) or len(x) == 0:
        fail("x and y", "non-empty with the same length", (len(x), len(y)))
    saved = {name: p.grad for name, p in model.named_parameters()}
    gsm = GradSampleModule(model, loss_reduction="mean")
    try:
        with ignore_no_input_grad_warning():
            loss_fn(gsm(x), y).backward()
        grads = {name: _grad_sample(p).detach().clone() for name, p in model.named_parameters()}
    finally:
        gsm.to_standard_module()
        for name, p in model.named_parameters():
            p.grad = saved[name]
    return grads


def opacus_dp_optimizer(
    model: nn.Module,
    *,
    lr: float,
    max_grad_norm: float,
    noise_multiplier: float,
    expected_batch_size: int,
    generator: torch.Generator,
    grad_sample_mode: GradSampleMode = "hooks",
) -> tuple[GradSampleModule, DPOptimizer, Callable[..., Any]]:
    """Opacus's three DP-SGD pieces for ``model``, built without a data loader.

    This is what ``PrivacyEngine.make_private`` assembles, minus the sampler
    and the accountant: a grad-sample wrapper of ``model`` (hooks, functorch
    or ghost clipping), a ``DPOptimizer`` around plain SGD, and the loss to
    call (Opacus's two-pass loss for ghost clipping, else cross-entropy).
    Call ``wrapped.to_standard_module()`` when done to remove the hooks.

    Returns:
        ``(wrapped_model, dp_optimizer, criterion)``; a training step is
        ``optimizer.zero_grad(); criterion(wrapped(x), y).backward(); optimizer.step()``.
    """
    from opacus.grad_sample.utils import get_gsm_class
    from opacus.optimizers import get_optimizer_class
    from opacus.utils.fast_gradient_clipping_utils import DPLossFastGradientClipping

    lr = check_real("lr", lr, low=0.0, low_open=True)
    max_grad_norm = check_real("max_grad_norm", max_grad_norm, low=0.0, low_open=True)
    noise_multiplier = check_real("noise_multiplier", noise_multiplier, low=0.0)
    expected_batch_size = check_int("expected_batch_size", expected_batch_size, minimum=1)
    check_choice("grad_sample_mode", grad_sample_mode, GRAD_SAMPLE_MODES)
    generator = check_generator("generator", generator)
    ghost = grad_sample_mode == "ghost"
    extra = {"max_grad_norm": max_grad_norm} if ghost else {}
    wrapped = get_gsm_class(grad_sample_mode)(model, loss_reduction="mean", **extra)
    optimizer_class = get_optimizer_class(
        clipping="flat", distributed=False, grad_sample_mode=grad_sample_mode
    )
    optimizer = optimizer_class(
        torch.optim.SGD(model.parameters(), lr=lr),
        noise_multiplier=noise_multiplier,
        max_grad_norm=max_grad_norm,
        expected_batch_size=expected_batch_size,
        generator=generator,
    )
    criterion: Callable[..., Any] = nn.CrossEntropyLoss()
    if ghost:
        criterion = DPLossFastGradientClipping(wrapped, optimizer, criterion, "mean")
    return wrapped, optimizer, criterion


def opacus_dp_step(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    lr: float,
    max_grad_norm: float,
    noise_multiplier: float,
    expected_batch_size: int,
    generator: torch.Generator,
    grad_sample_mode: GradSampleMode = "hooks",
) -> dict[str, torch.Tensor]:
    """One Opacus ``DPOptimizer`` SGD step on the batch ``(x, y)``, applied to ``model`` in place.

    The update is p <- p - lr * g with
    g = (sum_i clip_C(grad_i) + N(0, (sigma C)^2 I)) / expected_batch_size,
    clip_C(v) = v * min(1, C / (||v|| + 1e-6)) (Opacus's clip factor), and
    cross-entropy as the mean loss (``loss_reduction="mean"``). Note the
    division by the *expected* batch size, not by ``len(x)``: under Poisson
    sampling the batch size is random, and dividing by it would leak it.

    A non-finite contribution is refused, as in ``fl_dp_lab.dpsgd``: Opacus
    would clip an inf per-sample gradient to 0 * inf = NaN. The noisy gradient
    is checked after Opacus's ``pre_step`` (clip, noise, scale) and before the
    weights move; on a NaN or inf, ``model`` is left unchanged and the example
    is named.

    Returns:
        The noisy gradient g, ``{name: tensor}`` keyed like ``model.named_parameters()``.

    Raises:
        TypeError: ``x`` or ``y`` is not a tensor.
        ValueError: an example's gradient (or the loss) is NaN or inf.

    >>> from fl_dp_lab.models import LogisticRegression
    >>> model = LogisticRegression(4, 2)  # zeros: every per-sample bias gradient is +-0.5
    >>> g = opacus_dp_step(model, torch.ones(3, 4), torch.tensor([0, 1, 1]), lr=1.0,
    ...     max_grad_norm=0.1, noise_multiplier=0.0, expected_batch_size=4,
    ...     generator=torch.Generator())
    >>> g["linear.bias"]  # each example clipped from norm sqrt(10)/2 to 0.1, summed, / 4 (not 3)
    tensor([ 0.0079, -0.0079])
    """
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
        fail("x and y", "torch.Tensors", (type(x).__name__, type(y).__name__), TypeError)
    if len(x) != len(y):
        fail("x and y", "the same length", (len(x), len(y)))
    wrapped, optimizer, criterion = opacus_dp_optimizer(
        model,
        lr=lr,
        max_grad_norm=max_grad_norm,
        noise_multiplier=noise_multiplier,
        expected_batch_size=expected_batch_size,
        generator=generator,
        grad_sample_mode=grad_sample_mode,
    )
    try:
        optimizer.zero_grad()
        with ignore_no_input_grad_warning():
            criterion(wrapped(x), y).backward()
        if optimizer.pre_step():  # clip, add noise, scale: what DPOptimizer.step does first
            _check_finite_step(wrapped, model, x)
            optimizer.original_optimizer.step()
        noisy = {
            name: p.grad.detach().clone()
            for name, p in model.named_parameters()
            if p.grad is not None
        }
    finally:
        wrapped.to_standard_module()
    return noisy


def _check_finite_step(wrapped: GradSampleModule, model: nn.Module, x: torch.Tensor) -> None:
    """Refuse a noisy gradient with NaN or inf before it moves the weights; name the example.

    Only the noisy gradient (one number per parameter) is read on the normal path;
    the per-sample norms are looked at only to name the culprit.
    """
    if all(bool(torch.isfinite(p.grad).all()) for p in model.parameters() if p.grad is not None):
        return
    try:  # ghost clipping keeps the norms it clipped by
        norms = wrapped.per_sample_gradient_norms
    except AttributeError:  # hooks and functorch keep the per-sample gradients
        stored = (getattr(p, "grad_sample", None) for p in model.parameters())
        samples = [g for g in stored if isinstance(g, torch.Tensor)]
        norms = torch.stack([g.flatten(1).norm(dim=1) for g in samples]).norm(dim=0)
    check_finite_norms(
        "the gradient of example {0} (row x[{0}] of the batch)",
        norms,
        "look for NaN or inf in that row of x or y, or in the model's weights",
    )
    fail("the noisy gradient", "finite (lower max_grad_norm or noise_multiplier)", "NaN or inf")


@contextmanager
def ignore_no_input_grad_warning() -> Iterator[None]:
    """Ignore torch's "Full backward hook is firing ..." warning, and only it, in the block.

    Opacus puts a full backward hook on every layer. On the first layer none
    of the inputs needs a gradient (the input is the data batch), so torch
    warns that the hook gets None where the gradient with respect to the
    inputs would be. The warning is harmless here: Opacus's hook ignores that
    argument (``_forward_input``) and uses only the gradient with respect to
    the outputs and the activations saved in the forward pass. Making the
    batch require a gradient would also silence it, but would compute a
    gradient with respect to the data that nothing uses.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore",
            message="Full backward hook is firing when gradients are computed with respect to "
            "module outputs since no inputs require gradients",
            category=UserWarning,
        )
        yield


def _grad_sample(param: torch.Tensor) -> torch.Tensor:
    """The per-sample gradients Opacus's hooks stored on ``param`` (an attribute Opacus adds)."""
    grad_sample = getattr(param, "grad_sample", None)
    if not isinstance(grad_sample, torch.Tensor):
        raise RuntimeError("Opacus left no per-sample gradient on a trainable parameter")
    return grad_sample
