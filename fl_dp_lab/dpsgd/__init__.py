"""DP-SGD from its parts: per-sample gradients, clipping, noise, Poisson sampling.

One DP-SGD step (Abadi et al., 2016, Algorithm 1) on a Poisson-sampled batch B:

    g~ = (sum_{i in B} clip_C(grad loss_i) + N(0, sigma^2 C^2 I)) / (q N),
    clip_C(v) = v * min(1, C / ||v||),

with C = ``max_grad_norm``, sigma = ``noise_multiplier``, q = ``sample_rate``
and q N the expected batch size. Clipping bounds every example's influence on
the sum (L2 sensitivity C under add/remove neighbours), the Gaussian noise
hides it, and the accountant (``fl_dp_lab.accounting``) turns sigma, q and the
number of steps into (epsilon, delta).

Conventions: ``loss_fn(output, target)`` returns the MEAN loss over a batch
(like ``torch.nn.functional.cross_entropy``); a per-sample gradient is the
gradient of one example's own loss; gradients are dicts keyed like
``model.named_parameters()`` (trainable parameters only).

The per-sample gradients and their norms (``per_sample_gradients``,
``per_sample_norms``, ``ghost_norms``) live in ``fl_dp_lab.dpsgd._per_sample`` and
the layer arithmetic of ghost clipping in ``fl_dp_lab.dpsgd._ghost``; this module
re-exports the first and builds the step on both.

Bad input never weakens privacy. Every function here refuses, with a
``ValueError`` or ``TypeError`` that names the argument, rather than clip
what clipping cannot bound:

- a non-finite contribution: a per-sample gradient with a NaN or inf entry
  (its norm is then NaN or inf, and min(1, C / norm) would turn the whole sum
  into NaN, or let the inf through) is refused naming the example's index in
  the batch; nothing is dropped silently, so the accountant's analysis holds
  for every run that returns. The check reads the norms clipping computes
  anyway, so it costs no pass over the data;
- integer or boolean gradients (their squared norm wraps around) and arrays
  that are not torch tensors;
- a model with a layer that mixes the examples of a batch (BatchNorm in train
  mode, or any trainable layer outside ``PER_EXAMPLE_LAYERS``), in every
  ``method``: the sensitivity of the clipped sum would not be C.

Gradients in bfloat16 or float16 are clipped with norms and factors in
float64, shrunk by the dtype's rounding unit so the clipped norm stays at most C
after the cast back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, get_args

import torch
from torch import nn
from tqdm.auto import tqdm

from fl_dp_lab._types import DPHistory, Gradients, LossFn
from fl_dp_lab._validate import (
    check_bool,
    check_choice,
    check_finite_norms,
    check_float_tensor,
    check_generator,
    check_int,
    check_noise_survives_rounding,
    check_real,
    fail,
)
from fl_dp_lab.dpsgd import _ghost
from fl_dp_lab.dpsgd._per_sample import (
    PER_EXAMPLE_LAYERS,
    _check_batch,
    _check_gradients,
    _norms,
    _trainable,
    clip_limit,
    ghost_norms,
    norm_dtype,
    per_sample_gradients,
    per_sample_norms,
)
from fl_dp_lab.training import evaluate

__all__ = [
    "PER_EXAMPLE_LAYERS",
    "DPSGD",
    "ClipMethod",
    "DPHistory",
    "add_noise",
    "clip_factors",
    "clip_limit",
    "clip_per_sample",
    "clipped_gradient_sum",
    "dp_sgd_step",
    "ghost_norms",
    "norm_dtype",
    "per_sample_gradients",
    "per_sample_norms",
    "poisson_batches",
    "train_dp_sgd",
]

#: The most steps ``poisson_batches`` draws and ``train_dp_sgd`` runs: a million
#: steps already take hours here, and the batch list is held in memory (a rate of
#: 1e-9 would otherwise ask for a billion batches an epoch).
MAX_STEPS = 1_000_000
#: The most examples (or clients) one Poisson draw covers: 10^8 draws take 400 MB;
#: 10^10 asked torch for 40 GB and failed with a raw allocation error.
MAX_EXAMPLES = 100_000_000

@dataclass(frozen=True, kw_only=True)
class DPSGD:
    """DP-SGD's settings: epochs, learning rate, sigma, C and q, checked when built.

    What ``train_dp_sgd`` runs, and what a federated client runs inside
    DP-FedAvg (``fl_dp_lab.federated.LocalDPSGD`` is this class): about
    epochs / q steps on Poisson batches of rate q, each example's gradient
    clipped to C = ``max_grad_norm``, Gaussian noise of std sigma * C on the
    sum (Abadi et al., 2016). Every field is keyword-only, so the learning
    rate cannot be swapped with sigma by position; override one field with
    ``dataclasses.replace(settings, noise_multiplier=2.0)``, which checks again.

    Attributes:
        epochs: expected passes over the data, >= 1.
        lr: learning rate, > 0.
        noise_multiplier: sigma >= 0 of the per-example noise.
        max_grad_norm: per-example clip norm C > 0.
        sample_rate: q in (0, 1], the per-example sampling rate.

    >>> DPSGD(epochs=1, lr=0.5, noise_multiplier=1.0)
    DPSGD(epochs=1, lr=0.5, noise_multiplier=1.0, max_grad_norm=1.0, sample_rate=0.5)
    """

    epochs: int
    lr: float
    noise_multiplier: float
    max_grad_norm: float = 1.0
    sample_rate: float = 0.5

    def __post_init__(self) -> None:
        checked = {
            "epochs": check_int("epochs", self.epochs, minimum=1),
            "lr": check_real("lr", self.lr, low=0.0, low_open=True),
            "noise_multiplier": check_real("noise_multiplier", self.noise_multiplier, low=0.0),
            "max_grad_norm": check_real(
                "max_grad_norm", self.max_grad_norm, low=0.0, low_open=True
            ),
            "sample_rate": check_real(
                "sample_rate", self.sample_rate, low=0.0, high=1.0, low_open=True
            ),
        }
        for name, value in checked.items():  # the normalised values, on a frozen object
            object.__setattr__(self, name, value)


#: ``method`` values of ``clipped_gradient_sum``, ``dp_sgd_step`` and ``train_dp_sgd``.
ClipMethod = Literal["ghost", "vmap", "loop", "hooks"]
CLIP_METHODS: tuple[ClipMethod, ...] = get_args(ClipMethod)
#: How a refusal names one example of a batch x, and where a non-finite gradient comes from.
_EXAMPLE = "the gradient of example {0} (row x[{0}] of the batch)"
_NON_FINITE_WHY = (
    "look for NaN or inf in that row of x or y, in the model's weights, or a loss "
    "that overflows; a contribution that cannot be clipped is refused, never dropped"
)


def clip_per_sample(grads: Gradients, *, max_grad_norm: float) -> Gradients:
    """Scale every example's gradient to norm at most C: v * min(1, C / (||v|| + 1e-6)).

    The 1e-6 guards a zero gradient (and matches Opacus), so clipped norms are
    strictly below C for every example whose norm exceeds C. Norms are taken in
    float32 at least; bfloat16 and float16 gradients are clipped in float64 to
    C / (1 + u) (u the dtype's unit roundoff) before the cast back, so their
    clipped norms, rounded, stay at most C.

    Raises:
        TypeError: ``grads`` is not a dict of floating-point tensors (B, ...).
        ValueError: an example's gradient has a NaN or inf entry (named by index).

    >>> clip_per_sample({"w": torch.tensor([[3.0, 4.0], [0.3, 0.4]])}, max_grad_norm=1.0)["w"]
    tensor([[0.6000, 0.8000],
            [0.3000, 0.4000]])
    """
    max_grad_norm = check_real("max_grad_norm", max_grad_norm, low=0.0, low_open=True)
    _check_gradients(grads)
    return _clip(grads, max_grad_norm, "the gradient of example {0} (row {0} of grads)")


def clip_factors(norms: torch.Tensor, *, max_grad_norm: float) -> torch.Tensor:
    """The factor w_i = min(1, C / (||g_i|| + 1e-6)) that clipping scales example i by.

    ``clip_per_sample`` multiplies every per-sample gradient g_i by its w_i, so
    ||w_i g_i|| <= C (Abadi et al., 2016, Algorithm 1); 1e-6 guards a zero norm,
    as Opacus does. With the factors, the clipped sum of a batch stacked as rows of
    G is the matrix product w @ G.

    Args:
        norms: the per-sample L2 norms ||g_i||, a floating-point tensor (not modified).
        max_grad_norm: C > 0.

    Returns:
        The factors, one per example, in (0, 1] and in ``norms``'s dtype.

    >>> clip_factors(torch.tensor([5.0, 0.5]), max_grad_norm=1.0)
    tensor([0.2000, 1.0000])
    """
    norms = check_float_tensor("norms", norms)
    max_grad_norm = check_real("max_grad_norm", max_grad_norm, low=0.0, low_open=True)
    return _clip_factors(norms.clone(), max_grad_norm)


def clipped_gradient_sum(
    model: nn.Module,
    loss_fn: LossFn,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    max_grad_norm: float,
    method: ClipMethod = "ghost",
) -> Gradients:
    """sum_i clip_C(grad loss_i) over the batch, {name: tensor (*param.shape)}.

    ``"loop"``, ``"vmap"`` and ``"hooks"`` materialise per-sample gradients,
    clip and sum. ``"ghost"`` (ghost clipping, Li et al. 2022; Bu et al. 2023)
    never does: it gets the norms from layer inputs and backprops, then the
    reweighted sum sum_i w_i grad loss_i with w_i = min(1, C / ||grad loss_i||),
    which is the gradient of sum_i w_i loss_i, as one matrix product per
    layer ((w * G)^T A) instead of a second backward pass. It covers
    ``nn.Linear`` and ``nn.Conv2d`` (groups 1, zero padding) and falls back to
    vmap for models with any other trainable layer, or with a layer whose input
    does not start with the batch axis (tokens flattened to rows, time-major);
    layers must be batch-first, as in Opacus. An empty batch gives zeros.

    >>> from fl_dp_lab.models import LogisticRegression
    >>> model = LogisticRegression(4, 2, generator=torch.Generator().manual_seed(0))
    >>> x, y = torch.ones(3, 4), torch.tensor([0, 1, 1])
    >>> sums = [clipped_gradient_sum(model, nn.functional.cross_entropy, x, y,
    ...         max_grad_norm=0.1, method=m)["linear.bias"] for m in ("ghost", "loop")]
    >>> bool(torch.allclose(*sums))
    True
    """
    return _clipped_sum_and_loss(model, loss_fn, x, y, max_grad_norm, method)[0]


def add_noise(
    grad_sum: Gradients,
    *,
    max_grad_norm: float,
    noise_multiplier: float,
    generator: torch.Generator,
) -> Gradients:
    """grad_sum + N(0, (sigma C)^2 I) on every coordinate (the Gaussian mechanism).

    The L2 sensitivity of a sum of clipped gradients is C, so noise of std
    sigma * C gives the privacy the accountant computes for sigma.
    sigma = 0 returns an unchanged copy (no privacy).

    Raises:
        TypeError: ``grad_sum`` is not a dict of floating-point tensors.
        ValueError: an entry of ``grad_sum`` is NaN or inf (noise cannot hide it),
            or sigma * C overflows the tensors' dtype.

    >>> g = torch.Generator().manual_seed(0)
    >>> add_noise({"w": torch.zeros(2)}, max_grad_norm=1.0, noise_multiplier=0.0, generator=g)
    {'w': tensor([0., 0.])}
    """
    max_grad_norm = check_real("max_grad_norm", max_grad_norm, low=0.0, low_open=True)
    noise_multiplier = check_real("noise_multiplier", noise_multiplier, low=0.0)
    check_generator("generator", generator)
    if not isinstance(grad_sum, dict) or not grad_sum:
        fail("grad_sum", "a non-empty dict {name: tensor}", grad_sum, TypeError)
    for name, g in grad_sum.items():
        check_float_tensor(f"grad_sum[{name!r}]", g)
        if not bool(torch.isfinite(g).all()):
            fail(f"grad_sum[{name!r}]", "finite (noise cannot hide a NaN or inf)", g)
    std = noise_multiplier * max_grad_norm
    _check_noise_survives(grad_sum, std)
    if std == 0.0:
        return {name: g.clone() for name, g in grad_sum.items()}
    return {
        name: torch.add(g, torch.randn(g.shape, generator=generator, dtype=g.dtype), alpha=std)
        for name, g in grad_sum.items()
    }


def poisson_batches(
    num_examples: int, *, sample_rate: float, steps: int, generator: torch.Generator
) -> list[torch.Tensor]:
    """``steps`` batches, each holding every index independently with probability q.

    Batch sizes vary (Binomial(N, q), mean q N) and a batch may be empty;
    an empty batch is still a step (noise only), as the subsampled-Gaussian
    analysis assumes (Abadi et al., 2016; Mironov et al., 2019). Each index
    joins with probability exactly q, however small (see ``_poisson_indices``).
    At most ``MAX_STEPS`` batches (the list is built in memory) of at most
    ``MAX_EXAMPLES`` examples.

    >>> [b.tolist() for b in poisson_batches(6, sample_rate=0.5, steps=2,
    ...                                       generator=torch.Generator().manual_seed(0))]
    [[0, 2, 3, 4], [0, 2, 4, 5]]
    """
    num_examples = check_int("num_examples", num_examples, minimum=1, maximum=MAX_EXAMPLES)
    sample_rate = check_real("sample_rate", sample_rate, low=0.0, high=1.0, low_open=True)
    steps = check_int("steps", steps, minimum=0, maximum=MAX_STEPS)
    check_generator("generator", generator)
    return [_poisson_indices(num_examples, sample_rate, generator) for _ in range(steps)]


def dp_sgd_step(
    model: nn.Module,
    loss_fn: LossFn,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    lr: float,
    max_grad_norm: float,
    noise_multiplier: float,
    expected_batch_size: float,
    generator: torch.Generator,
    method: ClipMethod = "ghost",
) -> Gradients:
    """One DP-SGD step in place: theta <- theta - lr * (clipped sum + noise) / (q N).

    Dividing by the expected batch size q N, not the realised one, keeps the
    sensitivity at C / (q N) (like Opacus's ``DPOptimizer`` followed by SGD);
    this treats N, the data set's size, as public: under add/remove neighbours
    N itself differs by one, so the size can leak unless it is released privately.
    ``x`` may be empty (a noise-only step). ``.grad`` is left untouched.

    Returns:
        The noisy gradient that was applied, {name: tensor (*param.shape)}.

    >>> from fl_dp_lab.models import LogisticRegression
    >>> model = LogisticRegression(4, 2)
    >>> g = dp_sgd_step(model, nn.functional.cross_entropy, torch.ones(0, 4),
    ...     torch.ones(0, dtype=torch.long), lr=1.0, max_grad_norm=1.0, noise_multiplier=0.0,
    ...     expected_batch_size=2, generator=torch.Generator().manual_seed(0))
    >>> model.linear.bias
    Parameter containing:
    tensor([0., 0.], requires_grad=True)
    """
    lr = check_real("lr", lr, low=0.0, low_open=True)
    max_grad_norm = check_real("max_grad_norm", max_grad_norm, low=0.0, low_open=True)
    noise_multiplier = check_real("noise_multiplier", noise_multiplier, low=0.0)
    size = check_real("expected_batch_size", expected_batch_size, low=0.0, low_open=True)
    check_generator("generator", generator)
    check_choice("method", method, CLIP_METHODS)
    _check_batch(model, x, y, allow_empty=True)
    _check_step_scales(model, lr, max_grad_norm, noise_multiplier, size)
    return _step(
        model, loss_fn, x, y, lr, max_grad_norm, noise_multiplier, size, generator, method
    )[0]


def train_dp_sgd(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    settings: DPSGD,
    delta: float,
    generator: torch.Generator,
    x_test: torch.Tensor | None = None,
    y_test: torch.Tensor | None = None,
    method: ClipMethod = "ghost",
    progress: bool = True,
    loss_fn: LossFn = nn.functional.cross_entropy,
) -> DPHistory:
    """Train ``model`` in place with DP-SGD on Poisson batches; record loss, accuracy, epsilon.

    ``settings`` holds sigma, C, q, the learning rate and the epochs. An
    epoch is round(1 / q) steps (one pass over the data in expectation).
    After each epoch, epsilon is ``fl_dp_lab.accounting.epsilon`` at the
    steps so far (Poisson sampling; add/remove neighbours). ``x_test`` and
    ``y_test`` (both or neither) are evaluated after every epoch.

    Returns:
        A ``DPHistory``; ``train_loss`` is the mean over the epoch's non-empty batches.

    >>> from fl_dp_lab.models import LogisticRegression
    >>> x, y = torch.tensor([[-2.0], [-1.0], [1.0], [2.0]]), torch.tensor([0, 0, 1, 1])
    >>> settings = DPSGD(epochs=2, lr=0.5, noise_multiplier=1.0, max_grad_norm=1.0, sample_rate=0.5)
    >>> history = train_dp_sgd(LogisticRegression(1, 2), x, y, settings=settings, delta=1e-5,
    ...     generator=torch.Generator().manual_seed(0), progress=False)
    >>> history.steps, [round(e, 2) for e in history.epsilon]  # 2 steps an epoch (1 / q)
    ([2, 4], [4.85, 6.68])
    """
    if not isinstance(settings, DPSGD):
        fail("settings", "a DPSGD", settings, TypeError)
    sample_rate, noise_multiplier = settings.sample_rate, settings.noise_multiplier
    max_grad_norm, lr, epochs = settings.max_grad_norm, settings.lr, settings.epochs
    delta = check_real("delta", delta, low=0.0, high=1.0, low_open=True, high_open=True)
    check_choice("method", method, CLIP_METHODS)
    check_bool("progress", progress)
    if (x_test is None) != (y_test is None):
        fail("x_test and y_test", "both given or both None", (type(x_test), type(y_test)))
    _check_batch(model, x, y)
    _check_step_scales(model, lr, max_grad_norm, noise_multiplier, sample_rate * len(x))
    from fl_dp_lab.accounting import epsilon as accountant_epsilon

    steps_per_epoch = max(1, round(1 / sample_rate))
    if epochs * steps_per_epoch > MAX_STEPS:
        fail(
            "sample_rate and epochs",
            f"at most MAX_STEPS = {MAX_STEPS:,} steps in all (epochs * round(1 / sample_rate))",
            f"{epochs * steps_per_epoch:,} steps (sample_rate={sample_rate!r}, epochs={epochs})",
        )
    history = DPHistory()
    bar = tqdm(total=epochs * steps_per_epoch, desc="DP-SGD steps", disable=not progress)
    for epoch in range(1, epochs + 1):
        losses = []
        for batch in poisson_batches(
            len(x), sample_rate=sample_rate, steps=steps_per_epoch, generator=generator
        ):
            _, loss = _step(
                model, loss_fn, x[batch], y[batch], lr, max_grad_norm, noise_multiplier,
                sample_rate * len(x), generator, method,
            )  # fmt: skip
            if loss is not None:
                losses.append(loss)
            bar.update()
        steps = epoch * steps_per_epoch
        history.epoch.append(epoch)
        history.steps.append(steps)
        history.train_loss.append(sum(losses) / len(losses) if losses else float("nan"))
        history.epsilon.append(
            accountant_epsilon(
                noise_multiplier=noise_multiplier, sample_rate=sample_rate, steps=steps, delta=delta
            )
        )
        if x_test is not None and y_test is not None:
            test_loss, test_accuracy = evaluate(model, x_test, y_test, loss_fn)
            history.test_loss.append(test_loss)
            history.test_accuracy.append(test_accuracy)
        bar.set_postfix(epsilon=f"{history.epsilon[-1]:.2f}")
    bar.close()
    return history


def _step(
    model: nn.Module,
    loss_fn: LossFn,
    x: torch.Tensor,
    y: torch.Tensor,
    lr: float,
    max_grad_norm: float,
    noise_multiplier: float,
    expected_batch_size: float,
    generator: torch.Generator,
    method: ClipMethod,
) -> tuple[Gradients, float | None]:
    """dp_sgd_step on checked arguments, also returning the batch's mean loss (None if empty).

    The noise is drawn first, already divided by q N: it does not depend on the
    batch, and its tensors then take the clipped sum / (q N) in place, so the
    noisy gradient is built without a pass of its own.
    """
    params = _trainable(model)
    # L2 sensitivity of the clipped sum is C, so its noise has std sigma * C (here over q N)
    std = noise_multiplier * max_grad_norm / expected_batch_size
    noisy = {name: _gaussian_like(p, std, generator) for name, p in params.items()}
    loss = _add_clipped_sum(
        noisy, model, params, loss_fn, x, y, max_grad_norm, method, 1.0 / expected_batch_size
    )
    with torch.no_grad():
        for name, g in noisy.items():
            params[name].sub_(g, alpha=lr)
    return noisy, loss


def _clipped_sum_and_loss(
    model: nn.Module,
    loss_fn: LossFn,
    x: torch.Tensor,
    y: torch.Tensor,
    max_grad_norm: float,
    method: ClipMethod,
) -> tuple[Gradients, float | None]:
    max_grad_norm = check_real("max_grad_norm", max_grad_norm, low=0.0, low_open=True)
    check_choice("method", method, CLIP_METHODS)
    _check_batch(model, x, y, allow_empty=True)
    params = _trainable(model)
    sums = {name: torch.zeros_like(p.detach()) for name, p in params.items()}
    loss = _add_clipped_sum(sums, model, params, loss_fn, x, y, max_grad_norm, method, 1.0)
    return sums, loss


def _add_clipped_sum(
    out: Gradients,
    model: nn.Module,
    params: dict[str, nn.Parameter],
    loss_fn: LossFn,
    x: torch.Tensor,
    y: torch.Tensor,
    max_grad_norm: float,
    method: ClipMethod,
    scale: float,
) -> float | None:
    """out[name] += scale * sum_i clip_C(grad loss_i)[name]; return the mean loss (None: empty)."""
    if len(x) == 0:
        return None
    if method == "ghost":
        captured = _ghost.capture(model, loss_fn, x, y, params)
        if captured is not None:
            layers, loss = captured
            _check_finite_loss(float(loss), model, x)  # before anything is summed into ``out``
            norms = _ghost.squared_norms(layers).sqrt_()
            if bool(torch.isfinite(norms).all()):
                _ghost.clipped_sum(layers, _clip_factors(norms, max_grad_norm, scale), out)
                return float(loss)
            # a NaN or inf gradient, or one whose float32 square overflows: vmap and
            # clip_per_sample tell the two apart (and refuse the first by its index)
        method = "vmap"
    with torch.no_grad():
        mean_loss = _check_finite_loss(float(loss_fn(model(x), y)), model, x)
    grads = per_sample_gradients(model, loss_fn, x, y, method)
    clipped = _clip(grads, max_grad_norm, _EXAMPLE)
    for name, g in clipped.items():
        out[name].add_(g.sum(0), alpha=scale)
    return mean_loss


def _check_finite_loss(loss: float, model: nn.Module, x: torch.Tensor) -> float:
    """A NaN or inf loss would put NaN into every weight: refuse it before any update.

    Checking the loss costs nothing (it is computed anyway) and catches a NaN or
    inf anywhere in the batch or the weights; a pass over x would cost a quarter
    of a step, so x and the weights are looked at only to name the culprit once
    the loss is known to be bad.
    """
    if math.isfinite(loss):
        return loss
    bad_weights = [n for n, p in model.named_parameters() if not bool(torch.isfinite(p).all())]
    if bad_weights:
        fail(
            "the model's weights",
            "finite (an earlier step overflowed: lower lr, max_grad_norm or "
            "noise_multiplier, or look for NaN in the initial weights)",
            f"NaN or inf in {', '.join(bad_weights)}; loss {loss}",
        )
    if x.is_floating_point():
        rows = (~torch.isfinite(x.flatten(1) if x.dim() > 1 else x[:, None])).any(1)
        if bool(rows.any()):
            fail(
                f"x[{int(rows.nonzero()[0, 0])}]", "finite (NaN or inf in the data)", f"loss {loss}"
            )
    fail(
        "loss_fn(model(x), y)",
        "finite on finite data and weights (the loss overflows: scale the data, or use a "
        "numerically stable loss such as cross_entropy on logits)",
        loss,
    )
    return loss  # unreachable: fail raises


def _check_step_scales(
    model: nn.Module, lr: float, max_grad_norm: float, noise_multiplier: float, size: float
) -> None:
    """Refuse hyperparameters whose step overflows the weights' dtype before it is taken.

    The noise std sigma C / (q N) and the largest move of a weight, lr (sigma C + C) / (q N)
    per coordinate at about one standard deviation, must be finite numbers of the model's
    dtype; past that every weight becomes inf or NaN at once.
    """
    params = list(_trainable(model).values())
    std = noise_multiplier * max_grad_norm / size
    _check_fits(
        "noise_multiplier * max_grad_norm / expected_batch_size (the noise std)", std, params
    )
    _check_fits(
        "lr * (noise_multiplier + 1) * max_grad_norm / expected_batch_size (one step)",
        lr * (noise_multiplier + 1.0) * max_grad_norm / size,
        params,
    )


def _check_fits(name: str, value: float, tensors: object) -> None:
    """Refuse ``value`` if it overflows the dtype of the first tensor of ``tensors``."""
    first = next(iter(tensors), None)  # type: ignore[call-overload]
    if first is None or not first.is_floating_point():
        return
    limit = torch.finfo(first.dtype).max
    if not value <= limit:
        fail(name, f"at most {limit:.3g} (the largest {first.dtype} number)", value)


def _check_noise_survives(grad_sum: Gradients, std: float) -> None:
    """Refuse noise of std ``std`` that would overflow, or vanish by rounding into a sum entry.

    ``add_noise`` on entries of 3e38 returned them unchanged in float32; the limit,
    per tensor at its own precision, is ``_validate.check_noise_survives_rounding``'s.
    """
    for name, g in grad_sum.items():
        if isinstance(g, torch.Tensor) and g.is_floating_point() and g.numel():
            largest = float(torch.finfo(g.dtype).max) / 64.0  # noise rarely exceeds 40 std
            if std > largest:
                fail("noise_multiplier * max_grad_norm", f"<= {largest:.3g} for {g.dtype}", std)
            tiny = float(torch.finfo(g.dtype).tiny)  # below, the noise underflows towards 0
            if 0.0 < std < tiny:
                fail("noise_multiplier * max_grad_norm", f"0 or >= {tiny:.3g} for {g.dtype}", std)
            magnitude = float(g.detach().abs().max())
            if math.isfinite(magnitude):  # non-finite entries are refused elsewhere
                eps = torch.finfo(g.dtype).eps
                check_noise_survives_rounding(
                    f"grad_sum[{name!r}]", magnitude, std, eps, "noise_multiplier * max_grad_norm"
                )


def _poisson_indices(n: int, q: float, generator: torch.Generator) -> torch.Tensor:
    """The indices of range(n) kept by n independent coin flips of probability exactly q.

    ``torch.rand`` in float32 is k / 2^24 with k uniform on {0, ..., 2^24 - 1}, so
    the usual test u < q keeps an index with probability ceil(q 2^24) / 2^24: q
    rounded up to a multiple of 2^-24 = 6e-8 (60 times q at q = 1e-9), while the
    accountant is told q. Here q 2^24 = K + f (K whole, 0 <= f < 1, both exact in
    float64): k < K keeps the index, and a tie k = K keeps it with probability f,
    decided the same way by a 53-bit float64 draw (f 2^53 = K' + f', and so on
    while ties remain; a float64 q has finitely many binary digits, so this ends).
    The probability is then exactly K / 2^24 + f / 2^24 = q. Ties are rare
    (2^-24 per draw): the indices equal those of u < q except at a tie, and for
    q a multiple of 2^-24 (1, 0.5, 0.25, ...) always.
    """
    draws = torch.rand(n, generator=generator)  # k / 2^24
    scaled = q * 2.0**24
    whole = math.floor(scaled)
    threshold = whole / 2.0**24  # K / 2^24 (K <= 2^24): exact in float32, so compared exactly
    keep = draws < threshold
    tied = torch.nonzero(draws == threshold).flatten()
    fraction = scaled - whole
    while len(tied) and fraction > 0.0:
        draws = torch.rand(len(tied), generator=generator, dtype=torch.float64) * 2.0**53
        scaled = fraction * 2.0**53
        whole = math.floor(scaled)
        keep[tied[draws < whole]] = True
        tied = tied[draws == whole]
        fraction = scaled - whole
    return torch.nonzero(keep).flatten()


def _gaussian_like(param: torch.Tensor, std: float, generator: torch.Generator) -> torch.Tensor:
    """A fresh tensor shaped like ``param`` with N(0, std^2) entries (zeros when std = 0)."""
    if std == 0.0:
        return torch.zeros_like(param, memory_format=torch.contiguous_format)
    noise = torch.empty_like(param, memory_format=torch.contiguous_format)
    return noise.normal_(0.0, std, generator=generator)


def _clip(grads: Gradients, max_grad_norm: float, what: str) -> Gradients:
    """clip_per_sample on checked arguments; ``what`` names example {0} in a refusal."""
    norms = _norms(grads)
    check_finite_norms(what, norms, _NON_FINITE_WHY)
    dtype = next(iter(grads.values())).dtype
    factors = _clip_factors(norms, max_grad_norm, dtype=dtype)
    return {
        name: (g * factors.view(-1, *[1] * (g.dim() - 1))).to(dtype) for name, g in grads.items()
    }


def _clip_factors(
    norms: torch.Tensor,
    max_grad_norm: float,
    scale: float = 1.0,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """scale * min(1, C' / (norm + 1e-6)) for every example, computed in ``norms``'s memory.

    C' is ``clip_limit`` for gradients of ``dtype`` (C itself for
    float32 and float64, slightly less for half types).
    """
    limit = clip_limit(max_grad_norm, dtype) * scale
    return norms.add_(1e-6).reciprocal_().mul_(limit).clamp_(max=scale)
