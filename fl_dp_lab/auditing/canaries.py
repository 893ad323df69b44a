"""Canary audits of DP-SGD: does one step's privatised gradient sum keep its promise? (notebook 10).

One DP-SGD step releases the noisy clipped sum of a batch's per-sample gradients,

    S(B) = sum_i clip_C(g_i) + Z,   Z ~ N(0, sigma^2 C^2 I),

with clip_C(g) = g * min(1, C / ||g||). Adding one example moves the clipped
sum by at most C (the L2 sensitivity), so the step is a Gaussian mechanism
with noise multiplier sigma: its exact epsilon is
``fl_dp_lab.mechanisms.gaussian_epsilon(sigma=sigma, delta=delta)``, the same
number ``fl_dp_lab.accounting.epsilon`` reports for one step at sample rate 1.

The audit (gradient canaries: Nasr et al., 2021; Nasr et al., 2023). The
auditor plants a canary gradient c, here a "Dirac" canary: all of its norm on one
coordinate, where the other examples contribute only a constant. Each trial
runs the mechanism on the batch without c and with c, and scores the
output by its projection on c / ||c||. For the correct code the two
worlds' scores are N(m, sigma^2 C^2) and N(m + C, sigma^2 C^2) whenever
||c|| >= C; for two worlds that differ only by a shift along c, this
projection is the likelihood-ratio test (Neyman-Pearson), so no attack on
one output does better, and the audit's bound (``fl_dp_lab.auditing``)
approaches the accountant's epsilon as the trials grow, without passing it.

The mechanism under audit is a black box with the signature of
``noisy_clipped_sum``: ``(per_sample_grads, *, max_grad_norm,
noise_multiplier, generator) -> dict``. Two PLANTED BUGS, here only to be
caught by the audit and never to be used, share that signature:
``buggy_sum_without_clipping`` and ``buggy_sum_noise_not_scaled``.

Non-finite input is refused, as everywhere a contribution is clipped
(``fl_dp_lab.dpsgd``): a per-sample gradient or a canary with a NaN or inf
entry raises a ``ValueError`` naming the example (or the canary) before any
trial runs, and integer gradients a ``TypeError``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Literal

import numpy as np
import torch
from tqdm.auto import tqdm

from fl_dp_lab._validate import (
    check_bool,
    check_choice,
    check_finite_norms,
    check_float_tensor,
    check_generator,
    check_int,
    check_real,
    fail,
)
from fl_dp_lab.auditing import AuditResult, audit_scores
from fl_dp_lab.dpsgd import add_noise, clip_per_sample

__all__ = [
    "audit_gradient_sum",
    "buggy_sum_noise_not_scaled",
    "buggy_sum_without_clipping",
    "canary_scores",
    "dirac_canary",
    "noisy_clipped_sum",
]

Gradients = Mapping[str, torch.Tensor]
Mechanism = Callable[..., dict[str, torch.Tensor]]
#: How a trial's output is scored: its projection on the canary, or its norm.
Statistic = Literal["projection", "norm"]


def noisy_clipped_sum(
    per_sample_grads: Gradients,
    *,
    max_grad_norm: float,
    noise_multiplier: float,
    generator: torch.Generator,
) -> dict[str, torch.Tensor]:
    """The privatised gradient sum of one DP-SGD step, from ``fl_dp_lab.dpsgd``'s pieces.

    sum_i clip_C(g_i) + N(0, sigma^2 C^2 I), with C = ``max_grad_norm`` and
    sigma = ``noise_multiplier`` (Abadi et al., 2016, Alg. 1). This is the
    correct implementation the audit should pass.

    Args:
        per_sample_grads: ``{name: tensor (B, *shape)}``, one row per example.
        max_grad_norm: C > 0.
        noise_multiplier: sigma >= 0.
        generator: draws the noise.

    Returns:
        ``{name: tensor (*shape)}``.

    >>> grads = {"w": torch.tensor([[3.0, 4.0], [0.3, 0.4]])}
    >>> noisy_clipped_sum(grads, max_grad_norm=1.0, noise_multiplier=0.0,
    ...                   generator=torch.Generator().manual_seed(0))["w"]
    tensor([0.9000, 1.2000])
    """
    clipped = clip_per_sample(dict(per_sample_grads), max_grad_norm=max_grad_norm)
    summed = {name: grad.sum(0) for name, grad in clipped.items()}
    # L2 sensitivity is C: every term was clipped above
    return add_noise(
        summed, max_grad_norm=max_grad_norm, noise_multiplier=noise_multiplier, generator=generator
    )


def buggy_sum_without_clipping(
    per_sample_grads: Gradients,
    *,
    max_grad_norm: float,
    noise_multiplier: float,
    generator: torch.Generator,
) -> dict[str, torch.Tensor]:
    """PLANTED BUG, for the audit only: the noisy sum *without clipping*.

    The noise is still N(0, sigma^2 C^2 I), calibrated to a sensitivity of
    C, but nothing bounds an example's gradient, so one canary of norm k*C
    moves the sum by k*C: the real noise multiplier is sigma / k, and the
    accountant's epsilon is a lie. The audit must catch it.
    """
    summed = {name: grad.sum(0) for name, grad in per_sample_grads.items()}
    return add_noise(
        summed, max_grad_norm=max_grad_norm, noise_multiplier=noise_multiplier, generator=generator
    )


def buggy_sum_noise_not_scaled(
    per_sample_grads: Gradients,
    *,
    max_grad_norm: float,
    noise_multiplier: float,
    generator: torch.Generator,
) -> dict[str, torch.Tensor]:
    """PLANTED BUG, for the audit only: noise std sigma instead of sigma * C.

    Clipping is right, but the noise forgets the factor C (it is added as if
    C were 1), so the real noise multiplier is sigma / C. At C = 1 the bug is
    invisible, to the audit as to the accountant, and at C < 1 it adds *more*
    noise than intended, which no audit flags: audit with C > 1.
    """
    clipped = clip_per_sample(dict(per_sample_grads), max_grad_norm=max_grad_norm)
    summed = {name: grad.sum(0) for name, grad in clipped.items()}
    return add_noise(
        summed, max_grad_norm=1.0, noise_multiplier=noise_multiplier, generator=generator
    )


def dirac_canary(per_sample_grads: Gradients, *, norm: float) -> dict[str, torch.Tensor]:
    """A canary gradient shaped like one example's: zero except ``norm`` on one coordinate.

    The coordinate is the first entry of the first parameter. A canary with
    all its mass on one coordinate is the strongest gradient canary for the
    Gaussian mechanism ("Dirac canary", Nasr et al., 2023): the
    other examples add only a constant there, so the two worlds differ by a
    pure shift that a projection detects optimally.

    Args:
        per_sample_grads: ``{name: tensor (B, *shape)}``, to copy names, shapes and dtype.
        norm: the canary's L2 norm, > 0 (>= C to be a worst case for clipped code).

    Returns:
        ``{name: tensor (1, *shape)}``, ready to append to the batch.

    >>> canary = dirac_canary({"w": torch.zeros(5, 2), "b": torch.zeros(5, 1)}, norm=3.0)
    >>> canary["w"], canary["b"]
    (tensor([[3., 0.]]), tensor([[0.]]))
    """
    _check_gradients(per_sample_grads)
    norm = check_real("norm", norm, low=0.0, low_open=True)
    dtype = next(iter(per_sample_grads.values())).dtype
    if norm > torch.finfo(dtype).max:  # it would be stored as inf
        fail("norm", f"at most {torch.finfo(dtype).max:.3g} (the largest {dtype} number)", norm)
    canary = {name: torch.zeros_like(grad[:1]) for name, grad in per_sample_grads.items()}
    canary[next(iter(canary))].view(-1)[0] = norm
    return canary


def canary_scores(
    mechanism: Mechanism,
    per_sample_grads: Gradients,
    canary: Gradients,
    *,
    trials: int,
    max_grad_norm: float,
    noise_multiplier: float,
    generator: torch.Generator,
    statistic: Statistic = "projection",
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Play the membership game ``trials`` times in each world and score every output.

    Each trial calls ``mechanism`` twice, as a black box, with fresh noise
    from ``generator``: once on the batch plus the canary ("in"), once on
    the batch alone ("out"). ``statistic`` scores an output:

    - ``"projection"``: <output, c / ||c||>, the optimal test for a shift along c;
    - ``"norm"``: ||output||_2, a weak attack that ignores where the canary points
      (notebook 10 uses it to show how a weak attack makes the bound loose).

    Args:
        mechanism: ``(per_sample_grads, *, max_grad_norm, noise_multiplier, generator) -> dict``.
        per_sample_grads: the batch, ``{name: tensor (B, *shape)}``, B >= 1.
        canary: ``{name: tensor (1, *shape)}``, nonzero (``dirac_canary``).
        trials: trials per world, >= 1.
        max_grad_norm: C > 0, passed to the mechanism.
        noise_multiplier: sigma >= 0, passed to the mechanism.
        generator: the only source of randomness.
        statistic: ``"projection"`` or ``"norm"``.
        progress: show a ``tqdm`` progress bar.

    Returns:
        ``(scores_in, scores_out)``, float64 arrays of length ``trials``.

    Raises:
        ValueError: an example's gradient or the canary has a NaN or inf entry.
    """
    if not callable(mechanism):
        fail("mechanism", "a function like noisy_clipped_sum", mechanism, TypeError)
    _check_gradients(per_sample_grads)
    norms = torch.stack([g.double().flatten(1).norm(dim=1) for g in per_sample_grads.values()])
    check_finite_norms(
        "per_sample_grads[...][{0}] (example {0})",
        norms.norm(dim=0),
        "a NaN or inf gradient cannot be clipped; refused, not dropped",
    )
    direction = _canary_direction(per_sample_grads, canary)
    trials = check_int("trials", trials, minimum=1)
    check_real("max_grad_norm", max_grad_norm, low=0.0, low_open=True)
    check_real("noise_multiplier", noise_multiplier, low=0.0)
    check_generator("generator", generator)
    check_choice("statistic", statistic, ("projection", "norm"))
    check_bool("progress", progress)
    with_canary = {
        name: torch.cat([grad, canary[name].to(grad.dtype)])
        for name, grad in per_sample_grads.items()
    }
    privacy = {
        "max_grad_norm": max_grad_norm,
        "noise_multiplier": noise_multiplier,
        "generator": generator,
    }
    scores = np.empty((2, trials))
    for t in tqdm(range(trials), desc="canary trials", disable=not progress):
        for world, batch in enumerate((with_canary, per_sample_grads)):
            output = mechanism(batch, **privacy)
            scores[world, t] = _score(output, direction, statistic)
    return scores[0], scores[1]


def audit_gradient_sum(
    mechanism: Mechanism,
    per_sample_grads: Gradients,
    canary: Gradients,
    *,
    trials: int,
    max_grad_norm: float,
    noise_multiplier: float,
    delta: float,
    generator: torch.Generator,
    confidence: float = 0.95,
    statistic: Statistic = "projection",
    progress: bool = False,
) -> AuditResult:
    """Audit a privatised gradient sum: canary trials, then ``fl_dp_lab.auditing.audit_scores``.

    Half of each world's trials choose the attack's threshold, the other
    half are counted, and the Clopper-Pearson bound turns the counts into an
    epsilon that the mechanism's true epsilon exceeds with probability >=
    ``confidence``. Compare it with the accountant's epsilon for one step,
    ``accounting.epsilon(noise_multiplier=sigma, sample_rate=1.0, steps=1,
    delta=delta)``: a bound above it is proof of a bug.

    Args:
        mechanism, per_sample_grads, canary, trials, max_grad_norm, noise_multiplier,
            generator, statistic, progress: as in ``canary_scores`` (``trials`` >= 2).
        delta: in (0, 1).
        confidence: in (0, 1).

    Returns:
        The ``AuditResult``.

    >>> grads = {"w": torch.zeros(4, 3)}
    >>> result = audit_gradient_sum(noisy_clipped_sum, grads, dirac_canary(grads, norm=4.0),
    ...     trials=400, max_grad_norm=1.0, noise_multiplier=1.0, delta=1e-5,
    ...     generator=torch.Generator().manual_seed(0))
    >>> 0.0 <= result.epsilon < 4.38  # one step at sigma = 1 is (4.38, 1e-5)-DP
    True
    """
    check_int("trials", trials, minimum=2)
    _check_canary_fits(per_sample_grads, canary)
    scores_in, scores_out = canary_scores(
        mechanism,
        per_sample_grads,
        canary,
        trials=trials,
        max_grad_norm=max_grad_norm,
        noise_multiplier=noise_multiplier,
        generator=generator,
        statistic=statistic,
        progress=progress,
    )
    return audit_scores(scores_in, scores_out, delta=delta, confidence=confidence)


def _score(output: Gradients, direction: Gradients, statistic: Statistic) -> float:
    if statistic == "norm":
        squares = (value.double().pow(2).sum() for value in output.values())
        return float(torch.sqrt(sum(squares, torch.zeros((), dtype=torch.float64))))
    return float(sum(torch.dot(output[name].reshape(-1), d) for name, d in direction.items()))


def _canary_direction(per_sample_grads: Gradients, canary: Gradients) -> dict[str, torch.Tensor]:
    """c / ||c||, flattened, keeping only the parameters the canary touches."""
    if not isinstance(canary, Mapping) or set(canary) != set(per_sample_grads):
        fail("canary", "a dict with the same names as per_sample_grads", canary, ValueError)
    for name, grad in per_sample_grads.items():
        check_float_tensor(f"canary[{name!r}]", canary[name])
        if tuple(canary[name].shape) != (1, *grad.shape[1:]):
            fail(f"canary[{name!r}]'s shape", f"(1, *{tuple(grad.shape[1:])})", canary[name].shape)
    squares = (c.double().pow(2).sum() for c in canary.values())
    norm = torch.sqrt(sum(squares, torch.zeros((), dtype=torch.float64)))
    if not torch.isfinite(norm):
        fail("canary", "finite (a NaN or inf canary cannot be clipped)", float(norm))
    if not norm > 0:
        fail("canary", "a nonzero gradient", float(norm))
    return {
        name: (c[0] / norm).reshape(-1).to(per_sample_grads[name].dtype)
        for name, c in canary.items()
        if bool(c.any())
    }


def _check_gradients(per_sample_grads: Gradients) -> None:
    if not isinstance(per_sample_grads, Mapping) or not per_sample_grads:
        fail(
            "per_sample_grads",
            "a non-empty dict {name: tensor (B, ...)}",
            per_sample_grads,
            TypeError,
        )
    sizes = set()
    for name, grad in per_sample_grads.items():
        check_float_tensor(f"per_sample_grads[{name!r}]", grad)
        if grad.ndim < 1:
            fail(f"per_sample_grads[{name!r}]", "a tensor with a batch dimension", grad, TypeError)
        sizes.add(grad.shape[0])
    if len(sizes) != 1 or 0 in sizes:
        fail("per_sample_grads", "tensors with one common batch size >= 1", sorted(sizes))


def _check_canary_fits(per_sample_grads: Gradients, canary: Gradients) -> None:
    """Refuse a canary whose squared norm overflows the gradients' dtype.

    Clipping computes a norm from squares: a canary of norm 1e20 in float32
    (squares to inf) was clipped to zero and the audit reported epsilon = 0, a
    clean bill of health for a canary that never took part. A canary above C
    is clipped to C anyway, so nothing is lost by keeping it representable.
    Malformed inputs are left to ``canary_scores``'s own checks.
    """
    if not isinstance(canary, Mapping) or not isinstance(per_sample_grads, Mapping):
        return
    total = 0.0
    largest = math.inf
    for name, c in canary.items():
        grad = per_sample_grads.get(name)
        if not isinstance(c, torch.Tensor) or not isinstance(grad, torch.Tensor):
            return
        if grad.is_floating_point():
            largest = min(largest, float(torch.finfo(grad.dtype).max))
        norm = float(torch.linalg.vector_norm(c.double()))
        total += norm * norm  # inf, not OverflowError, past 1.8e308
    if not total < largest:  # also NaN or inf entries
        fail(
            "canary",
            f"of norm below {math.sqrt(largest):.3g}, whose square the gradients' dtype can "
            "hold (a larger one overflows in clipping and is clipped to nothing)",
            f"norm {math.sqrt(total):.3g}",
        )
