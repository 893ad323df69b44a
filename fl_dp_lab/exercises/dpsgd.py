"""Exercises of notebooks 06-07 (DP-SGD from scratch, DP-SGD with Opacus)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from fl_dp_lab._validate import check_int, check_real
from fl_dp_lab.exercises._core import (
    WrongShape,
    as_array,
    as_number,
    feedback,
    graded,
    hints,
    is_unanswered,
    report_unanswered,
)

__all__ = [
    "check_clip_factors",
    "check_clip_function",
    "check_empty_batch_probability",
    "check_opacus_compatible",
    "check_opacus_noise_std",
    "check_opacus_sample_rate",
]


# --- Notebook 06 (DP-SGD from scratch) --------------------------------------


hints(
    "Exercise 06.1",
    idea="clipping shrinks a gradient that is too long onto the ball of radius C and leaves a "
    "short one alone; it never stretches.",
    step="the factor that brings a norm n down to C is C / n; a gradient already inside the "
    "ball keeps factor 1.",
    solution="[min(1, C / n) for n in (0.5, 2, 4)] with C = 1.",
)
hints(
    "Exercise 06.2",
    idea="scale the whole vector by one factor, so that its direction stays and its L2 norm "
    "is at most max_grad_norm.",
    step="compute the norm of g; the factor is C / norm when that is below 1, and 1 otherwise; "
    "guard the division for g = 0.",
    solution="def clip(g, max_grad_norm): return g * min(1.0, max_grad_norm / "
    "(float(g.norm()) + 1e-6))",
)
hints(
    "Exercise 06.3",
    idea="a Poisson batch is empty when every example's coin comes up 'out'.",
    step="each example stays out with probability 1 - q, independently of the others.",
    solution="(1 - q) ** N with q = 0.05 and N = 20.",
)


@graded("Exercise 06.1")
def check_clip_factors(answer: Any) -> bool:
    """Exercise 06.1: the clip factors of gradients with norms 0.5, 2 and 4 at C = 1.

    Three factors, compared with the library's clipping to 1e-5 (Opacus's
    1e-6 guard passes). A factor that stretches, factors upside down and one
    factor for the whole batch are each named.
    """
    name = "Exercise 06.1"
    if is_unanswered(answer):
        return report_unanswered(name)
    value = as_array("answer", answer, shape=(3,), why="one factor per gradient")
    norms = torch.tensor([0.5, 2.0, 4.0], dtype=torch.float64)
    clipped = _library_clip(torch.diag(norms), 1.0)  # row i: norm norms[i], clipped at C = 1
    expected = (clipped.norm(dim=1) / norms).tolist()

    def near(target: list[float]) -> bool:
        return all(abs(v - t) <= 1e-5 for v, t in zip(value, target))

    if near([2.0, 0.5, 0.25]):
        return feedback(
            name,
            False,
            success="",
            hint="the first factor would scale that gradient *up*; clipping only ever shrinks.",
        )
    if near([0.5, 2.0, 4.0]) or near([1.0, 2.0, 4.0]):
        return feedback(
            name,
            False,
            success="",
            hint="upside down: these factors make long gradients longer.",
        )
    batch_factor = 1.0 / math.sqrt(0.5**2 + 2.0**2 + 4.0**2)  # C / norm of the whole batch
    if near([batch_factor] * 3):
        return feedback(
            name,
            False,
            success="",
            hint="one factor for all three is C divided by the norm of the whole batch: that "
            "clips the batch (what torch.nn.utils.clip_grad_norm_ does), not each example.",
        )
    return feedback(
        name,
        near(expected),
        success="every clipped gradient now has norm at most C = 1, so one example can move "
        "the sum by at most C.",
    )


@graded("Exercise 06.2")
def check_clip_function(clip: Any) -> bool:
    """Exercise 06.2: a function ``clip(g, max_grad_norm)`` that clips one flat gradient.

    Tested at several clipping norms C (0.5, 1 and 3), so that a function that
    clips to a hard-coded 1 fails: at each C a long gradient (norm 5C: must
    come back with norm C, same direction), a short one (norm 0.3C: must come
    back unchanged) and the zero vector (must not give NaN); then a batch of
    eight gradients of 10 coordinates, norms from 0.1C to 10C, each clipped on
    its own (per sample, as DP-SGD needs) and compared with
    ``fl_dp_lab.dpsgd.clip_per_sample``.
    """
    from fl_dp_lab.dpsgd import clip_per_sample

    name = "Exercise 06.2"
    if is_unanswered(clip):
        return report_unanswered(name)
    if not isinstance(clip, Callable):
        raise TypeError(f"clip must be a function clip(g, max_grad_norm), got {clip!r}")
    direction = torch.tensor([0.6, 0.8])

    def run(g: torch.Tensor, c: float) -> torch.Tensor:
        out = clip(g.clone(), c)
        if out is None:
            raise WrongShape("clip(g, C) returned None: does the function end with `return`?")
        out = torch.as_tensor(out, dtype=torch.float32)
        if out.shape != g.shape:
            raise WrongShape(
                f"clip(g, C) returned shape {tuple(out.shape)}, but it must be shaped like g, "
                f"{tuple(g.shape)}: clipping rescales g, it keeps every coordinate."
            )
        return out

    for c in _CLIP_NORMS:
        long, short = 5 * c * direction, 0.3 * c * direction
        out_long, out_short = run(long, c), run(short, c)
        try:
            out_zero = run(torch.zeros(2), c)
        except ZeroDivisionError:
            return _clip_hint(
                name,
                "the zero gradient raised ZeroDivisionError: C / 0. "
                "Guard the division, e.g. C / (norm + 1e-6), as Opacus does.",
            )
        if torch.isnan(out_zero).any():
            return _clip_hint(
                name,
                "the zero gradient gave NaN: 0 / 0. "
                "Guard the division, e.g. C / (norm + 1e-6), as Opacus does.",
            )
        if torch.allclose(out_short, direction * c, atol=1e-4):
            return _clip_hint(
                name,
                "a short gradient was stretched to norm C; "
                "clipping leaves gradients inside the ball alone.",
            )
        if torch.allclose(out_long, torch.full((2,), c), atol=1e-4):
            return _clip_hint(
                name,
                "that clips every coordinate to [-C, C], which turns the "
                "direction of (3, 4); DP-SGD scales the whole vector by one factor, "
                "so that its L2 norm is at most C.",
            )
        if c != 1.0 and abs(float(out_long.norm()) - 1.0) < 1e-3:
            return _clip_hint(
                name,
                f"at max_grad_norm = {c:g} a gradient of norm {5 * c:g} came "
                f"back with norm {float(out_long.norm()):.4f}, not {c:g}: the "
                "function clips to 1 whatever C is. Use the max_grad_norm argument.",
            )
        ok = (
            torch.allclose(out_long, c * direction, atol=1e-4 * max(c, 1.0))
            and torch.allclose(out_short, short, atol=1e-4 * max(c, 1.0))
            and torch.allclose(out_zero, torch.zeros(2))
        )
        if not ok:
            return _clip_hint(
                name,
                f"at max_grad_norm = {c:g}: a gradient of norm {5 * c:g} gave "
                f"norm {float(out_long.norm()):.4g} (want {c:g}), one of norm "
                f"{0.3 * c:g} gave norm {float(out_short.norm()):.4g} (want it "
                "unchanged).",
            )
    batch = _clip_batch()
    for c in _CLIP_NORMS:
        want = clip_per_sample({"g": c * batch}, max_grad_norm=c)["g"]
        got = torch.stack([run(row, c) for row in c * batch])
        if not torch.allclose(got, want, atol=1e-4 * max(c, 1.0)):
            worst = int((got - want).norm(dim=1).argmax())
            return _clip_hint(
                name,
                f"in a batch of 8 gradients at max_grad_norm = {c:g}, row "
                f"{worst} (norm {float((c * batch)[worst].norm()):.3g}) came back "
                f"with norm {float(got[worst].norm()):.4g}, not "
                f"{float(want[worst].norm()):.4g}. Each example is clipped on its "
                "own, by its own norm.",
            )
    return feedback(
        name,
        True,
        success="at every C, long gradients shrink onto the sphere of radius C, short ones pass "
        "untouched, zero stays zero, and each example of a batch is clipped by its own norm.",
    )


_CLIP_NORMS = (0.5, 1.0, 3.0)


def _clip_batch() -> torch.Tensor:
    """Eight directions of 10 coordinates with norms from 0.1 to 10 (times C in the check)."""
    rows = torch.randn(8, 10, generator=torch.Generator().manual_seed(6))
    norms = torch.logspace(-1, 1, 8)
    return rows / rows.norm(dim=1, keepdim=True) * norms[:, None]


def _clip_hint(name: str, hint: str) -> bool:
    return feedback(name, False, success="", hint=hint)


def check_empty_batch_probability(answer: Any) -> bool:
    """Exercise 06.3: the chance that a Poisson batch is empty, N = 20 examples, q = 0.05.

    Accepted to 1e-4. The chance that every example joins, the complement,
    zero and the Poisson approximation are each named.
    """
    name = "Exercise 06.3"
    if is_unanswered(answer):
        return report_unanswered(name)
    value = as_number("answer", answer)
    q, n = 0.05, 20
    expected = math.prod([1 - q] * n)
    wrongs = {
        q**n: "that is the chance that *every* example joins.",
        1 - expected: "that is the chance that the batch is *not* empty.",
        0.0: "a Poisson batch has no minimum size: each of the 20 coins can come up 'out'.",
        math.exp(-q * n): "close, but that is the Poisson approximation; the exact chance is "
        "asked for.",
    }
    for target, hint in wrongs.items():
        if math.isclose(value, target, rel_tol=1e-6, abs_tol=0.0):
            return feedback(name, False, success="", hint=hint)
    return feedback(
        name,
        abs(value - expected) < 1e-4,
        success="more than a third of the steps see no data, yet each still adds noise, and "
        "the accountant counts it.",
    )


def _library_clip(rows: torch.Tensor, c: float) -> torch.Tensor:
    """Each row clipped to norm ``c`` by the library's per-example clipping."""
    from fl_dp_lab.dpsgd import clip_per_sample

    return clip_per_sample({"g": rows}, max_grad_norm=c)["g"]


# --- Notebook 07 (DP-SGD with Opacus) ---------------------------------------


hints(
    "Exercise 07.1",
    idea="Opacus does not read the loader's batch size: it derives the sampling rate from how "
    "many batches the loader has.",
    step="count the loader's batches (the last one may be short); the rate is one over that "
    "count, and the expected batch size is the rate times N, rounded down.",
    solution="q = 1 / math.ceil(4000 / 256); expected_batch_size = int(4000 * q).",
)
hints(
    "Exercise 07.2",
    idea="follow the DPOptimizer: noise is added to the clipped sum, then everything is divided.",
    step="the noise on the sum has std noise_multiplier * max_grad_norm; what does the optimizer "
    "divide the sum by?",
    solution="answer = noise_multiplier * max_grad_norm / expected_batch_size (or measure the "
    "std of p.grad after a step on zero gradients).",
)
hints(
    "Exercise 07.3",
    idea="Opacus refuses layers that mix examples in a batch; its validator lists them and can "
    "replace them.",
    step="ModuleValidator.validate(model, strict=False) lists what Opacus refuses; the "
    "validator has a second method that returns a repaired copy.",
    solution="model = ModuleValidator.fix(model)",
)


def check_opacus_sample_rate(sample_rate: Any, expected_batch_size: Any) -> bool:
    """Exercise 07.1: what Opacus derives from a loader of 4,000 examples in batches of 256.

    The sampling rate and the expected batch size ``make_private`` uses,
    compared to 1e-9 with what a loader of that size gives. The rate the
    batch size suggests and the loader's nominal batch size are each named.
    """
    name = "Exercise 07.1"
    if is_unanswered(sample_rate) or is_unanswered(expected_batch_size):
        return report_unanswered(name)
    q = as_number("sample_rate", sample_rate)
    b = as_number("expected_batch_size", expected_batch_size)
    if abs(q - 256 / 4000) < 1e-9:
        return feedback(
            name,
            False,
            success="",
            hint="that is batch size / N, what you would expect, but Opacus computes the rate "
            "from the loader itself.",
        )
    if abs(q - 1 / 16) < 1e-9 and abs(b - 256) < 1e-9:
        return feedback(
            name,
            False,
            success="",
            hint="the rate is right; the expected batch size is not the loader's nominal one.",
        )
    return feedback(
        name,
        abs(q - 1 / 16) < 1e-9 and abs(b - 250) < 1e-9,
        success="use the same two numbers in your own accountant and step, or the two will "
        "not match.",
    )


def check_opacus_noise_std(
    answer: Any, *, noise_multiplier: float, max_grad_norm: float, expected_batch_size: int
) -> bool:
    """Exercise 07.2: the std of the noise in ``p.grad`` after one Opacus ``DPOptimizer`` step.

    For the given noise multiplier, clipping norm and expected batch size.
    A measured value within 1.5 % counts (101,770 draws measure it to about
    0.2 %); the std on the sum, the sensitivity left out, the variance and a
    nearby batch size (such as a loader's nominal one, 2.3 % off) are each
    named.
    """
    name = "Exercise 07.2"
    if is_unanswered(answer):
        return report_unanswered(name)
    value = as_number("answer", answer)
    sigma = check_real("noise_multiplier", noise_multiplier, low=0.0, low_open=True)
    c = check_real("max_grad_norm", max_grad_norm, low=0.0, low_open=True)
    b = check_int("expected_batch_size", expected_batch_size, minimum=1)
    expected = sigma * c / b

    def near(target: float) -> bool:
        return abs(value - target) <= 0.015 * target

    wrong = {
        sigma * c: "that is the std of the noise on the *sum*; the optimizer then divides "
        "the noisy sum by the expected batch size.",
        sigma / b: "the noise is scaled by the sensitivity C too.",
        (sigma * c / b) ** 2: "that is the variance; the question asks for the standard deviation.",
    }
    for target, hint in wrong.items():
        if not near(expected) and near(target):
            return feedback(name, False, success="", hint=hint)
    divisor = sigma * c / value if value > 0 else math.inf
    if not near(expected) and 0.8 * b <= divisor <= 1.25 * b:
        return feedback(
            name,
            False,
            success="",
            hint=f"that is about σC / {divisor:.0f}; the DPOptimizer divides by the *expected* "
            "batch size, not by a batch's actual size or the loader's nominal one.",
        )
    return feedback(
        name,
        near(expected),
        success=f"{expected:.3g}: the sensitivity of the clipped sum is C, and the "
        "mean divides everything, noise included, by the expected batch size.",
    )


def check_opacus_compatible(model: Any) -> bool:
    """Exercise 07.3: make a model with BatchNorm acceptable to Opacus.

    Right when the answer is a model with no BatchNorm left that Opacus's
    validator accepts. A list of problems instead of a model, and a model
    still holding BatchNorm layers, are each named.
    """
    from opacus.validators import ModuleValidator
    from torch import nn

    name = "Exercise 07.3"
    if is_unanswered(model):
        return report_unanswered(name)
    if isinstance(model, list):  # what ModuleValidator.validate returns
        return feedback(
            name,
            False,
            success="",
            hint=f"that is a list of {len(model)} problem(s), what the validator reports; the "
            "answer is a model.",
        )
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    batch_norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if batch_norms:
        return feedback(
            name,
            False,
            success="",
            hint=f"the model still has {len(batch_norms)} BatchNorm layer(s). The repair "
            "returns a new model: did you assign its result?",
        )
    return feedback(
        name,
        ModuleValidator.is_valid(model),
        success="no BatchNorm left: each example is normalised on its own, so its gradient "
        "does not depend on the other examples in the batch.",
    )
