"""Exercises of notebooks 06-07."""

from __future__ import annotations

__all__: list[str] = [
    "check_opacus_compatible",
    "check_opacus_noise_std",
    "check_opacus_sample_rate",
]


# --- Notebook 07 (DP-SGD with Opacus) ---------------------------------------

from typing import Any  # noqa: E402

from fl_dp_lab._validate import check_int, check_real  # noqa: E402
from fl_dp_lab.exercises._core import (  # noqa: E402
    as_number,
    feedback,
    is_unanswered,
    report_unanswered,
)


def check_opacus_sample_rate(sample_rate: Any, expected_batch_size: Any) -> bool:
    """Exercise 07.1: what Opacus derives from a loader of 4,000 examples in batches of 256.

    ``make_private`` sets q = 1 / len(data_loader) = 1 / ceil(4000 / 256) = 1/16
    = 0.0625 (not 256 / 4000 = 0.064) and divides every noisy gradient sum by
    the expected batch size int(4000 * q) = 250 (not 256).
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
            hint="256 / 4000 is what you would expect, but "
            "Opacus computes the rate from the loader: q = 1 / len(data_loader), and "
            "len(data_loader) = ceil(4000 / 256).",
        )
    if abs(q - 1 / 16) < 1e-9 and abs(b - 256) < 1e-9:
        return feedback(
            name,
            False,
            success="",
            hint="the rate is right. The expected batch "
            "size is q * N = 4000 / 16, rounded down by int(), not the loader's 256.",
        )
    return feedback(
        name,
        abs(q - 1 / 16) < 1e-9 and abs(b - 250) < 1e-9,
        success="q = 1/16 and the DPOptimizer divides by 250. Use the same two numbers in your "
        "own accountant and step, or the two will not match.",
        hint="q = 1 / len(data_loader) with len(data_loader) = ceil(N / batch_size); "
        "the expected batch size is int(N * q).",
    )


def check_opacus_noise_std(
    answer: Any, *, noise_multiplier: float, max_grad_norm: float, expected_batch_size: int
) -> bool:
    """Exercise 07.2: the std of the noise in ``p.grad`` after one Opacus ``DPOptimizer`` step.

    Opacus adds N(0, (sigma C)^2) to the clipped sum, then divides by the
    expected batch size: the noise left in every coordinate of ``p.grad`` has
    std sigma * C / expected_batch_size. A measured value within 5 % counts.
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
        return abs(value - target) <= 0.05 * target

    wrong = {
        sigma * c: "that is the std of the noise on the *sum*; the optimizer then divides "
        "the noisy sum by the expected batch size.",
        sigma / b: "the noise is scaled by the sensitivity C too: std = noise_multiplier * "
        "max_grad_norm before the division.",
        (sigma * c / b) ** 2: "that is the variance; the question asks for the standard deviation.",
    }
    for target, hint in wrong.items():
        if not near(expected) and near(target):
            return feedback(name, False, success="", hint=hint)
    return feedback(
        name,
        near(expected),
        success=f"σC / B = {expected:.3g}: the sensitivity of the clipped sum is C, and the "
        "mean divides everything, noise included, by the expected batch size.",
        hint="follow the DPOptimizer: noise std on the clipped sum, then the division.",
    )


def check_opacus_compatible(model: Any) -> bool:
    """Exercise 07.3: make a model with BatchNorm acceptable to Opacus.

    The answer is ``ModuleValidator.fix(model)``: it returns a *new* model in
    which every BatchNorm is replaced by a GroupNorm, which normalises each
    example on its own, so per-example gradients exist again.
    """
    from opacus.validators import ModuleValidator
    from torch import nn

    name = "Exercise 07.3"
    if is_unanswered(model):
        return report_unanswered(name)
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {model!r}")
    batch_norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if batch_norms:
        return feedback(
            name,
            False,
            success="",
            hint="the model still has "
            f"{len(batch_norms)} BatchNorm layer(s). ModuleValidator.fix(model) "
            "returns a new model: assign its result.",
        )
    return feedback(
        name,
        ModuleValidator.is_valid(model),
        success="no BatchNorm left: each example is normalised on its own, so its gradient "
        "does not depend on the other examples in the batch.",
        hint="run ModuleValidator.validate(model, strict=False) to list what Opacus refuses.",
    )
