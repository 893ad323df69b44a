"""Exercises of notebooks 06-07 (DP-SGD from scratch, DP-SGD with Opacus)."""

from __future__ import annotations

import math
from typing import Any, Literal, TypedDict

import torch

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
    "check_dp_sgd_step",
    "check_make_private_with_epsilon",
    "check_opacus_compatible",
    "check_opacus_sample_rate",
]


# --- Notebook 06 (DP-SGD from scratch) --------------------------------------


hints(
    "Exercise 06.1",
    idea="clipping shrinks a gradient that is too long onto the ball of radius C and leaves a "
    "short one alone; it never stretches.",
    step="what factor brings a norm n down to exactly C? And what should a gradient already "
    "inside the ball get?",
    solution="[min(1, C / n) for n in (0.5, 2, 4)] with C = 1.",
)
hints(
    "Exercise 06.2",
    idea="scale the whole vector by one factor, so that its direction stays and its L2 norm "
    "is at most max_grad_norm.",
    step="one scalar factor for the whole vector, from its norm and max_grad_norm, never "
    "above 1; guard the division for g = 0.",
    solution="def clip(g, max_grad_norm): return g * min(1.0, max_grad_norm / "
    "(float(g.norm()) + 1e-6))",
)
hints(
    "Exercise 06.3",
    idea="one DP-SGD step is the four pieces of sections 1-2 in a row: per-example gradients, "
    "clip each, sum and add Gaussian noise, divide by a size that does not depend on the data.",
    step="dpsgd.per_sample_gradients, then dpsgd.clip_per_sample, then the sum over examples, "
    "then dpsgd.add_noise (it draws in the order of the parameters); divide by the expected "
    "batch size and take a step of lr. An empty batch has a zero sum.",
    solution="grads = per_sample_gradients(model, F.cross_entropy, x, y) if len(x) else None; "
    "summed = {k: g.sum(0) for k, g in clip_per_sample(grads, max_grad_norm=C).items()} (zeros "
    "shaped like each parameter when x is empty); noisy = add_noise(summed, max_grad_norm=C, "
    "noise_multiplier=sigma, generator=generator); p -= lr * noisy[name] / expected_batch_size "
    "for each named parameter, under torch.no_grad().",
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
    if not callable(clip):
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


#: Exercise 06.3's hidden cases: (model, examples, lr, C, sigma, expected batch size, seed);
#: a case without noise isolates clipping and scaling, and an empty Poisson batch must still step
class _StepSetting(TypedDict):
    """The keyword settings of one hidden DP-SGD step, as ``dp_sgd_step`` takes them."""

    lr: float
    max_grad_norm: float
    noise_multiplier: float
    expected_batch_size: float


class _Slip(TypedDict, total=False):
    """One usual slip of a DP-SGD step, as the keywords ``_variant_step`` takes."""

    clip: bool
    divisor: Literal["expected", "actual"]
    noise_c: bool
    noise_after: bool
    sign: float


_STEP_CASES = (
    ("logistic", 7, 0.5, 0.7, 1.3, 6.5, 1),
    ("mlp", 12, 0.2, 2.0, 0.0, 10.0, 2),
    ("mlp", 9, 1.0, 0.3, 0.8, 9.0, 3),
    ("logistic", 0, 0.5, 1.0, 1.0, 4.0, 4),
)


@graded("Exercise 06.3")
def check_dp_sgd_step(my_dp_sgd_step: Any) -> bool:
    """Exercise 06.3: ``my_dp_sgd_step(model, x, y, *, lr, max_grad_norm, noise_multiplier, ...)``.

    One DP-SGD step in place (keywords ``lr``, ``max_grad_norm``,
    ``noise_multiplier``, ``expected_batch_size``, ``generator``; the mean
    cross-entropy loss). Run on hidden models, batches and settings (one
    without noise, one on an empty Poisson batch) from a copy of the same
    model and the same generator state as the library's ``dp_sgd_step``; the
    parameters must agree to 1e-6, noise included. No clipping, the wrong
    divisor, noise of the wrong scale or drawn differently, an update that
    never reaches the model and a failure on an empty batch are each named.
    """
    import copy

    from fl_dp_lab.dpsgd import dp_sgd_step

    name = "Exercise 06.3"
    if is_unanswered(my_dp_sgd_step):
        return report_unanswered(name)
    if not callable(my_dp_sgd_step):
        raise TypeError(f"my_dp_sgd_step must be a function, got {my_dp_sgd_step!r}")
    loss_fn = torch.nn.functional.cross_entropy
    for kind, n, lr, c, sigma, size, seed in _STEP_CASES:
        model, x, y = _step_case(kind, n, seed)
        setting: _StepSetting = {
            "lr": lr,
            "max_grad_norm": c,
            "noise_multiplier": sigma,
            "expected_batch_size": size,
        }
        library = copy.deepcopy(model)
        dp_sgd_step(
            library, loss_fn, x, y, generator=torch.Generator().manual_seed(seed), **setting
        )
        mine = copy.deepcopy(model)
        at = f"on a batch of {n} at C = {c:g}, sigma = {sigma:g}:"
        try:
            my_dp_sgd_step(mine, x, y, generator=torch.Generator().manual_seed(seed), **setting)
        except Exception as error:  # noqa: BLE001 - a learner's step failing is a wrong answer here
            if n == 0:
                hint = f"{at} your step raised {type(error).__name__}. A Poisson batch can be "
                hint += "empty, and the step must still add noise (the sum of no gradients is 0)."
                return feedback(name, False, success="", hint=hint)
            raise
        got, want = _flat(mine), _flat(library)
        if torch.allclose(got, want, rtol=0.0, atol=1e-6):
            continue
        if torch.equal(got, _flat(model)):
            hint = f"{at} the model did not change: the step updates its parameters in place."
        else:
            hint = f"{at} the parameters are off."
            for variant, words in _STEP_SLIPS:
                other = copy.deepcopy(model)
                _variant_step(
                    other, x, y, generator=torch.Generator().manual_seed(seed), **setting, **variant
                )
                if torch.allclose(got, _flat(other), rtol=0.0, atol=1e-6):
                    hint = f"{at} {words}"
                    break
            else:
                if sigma > 0:
                    hint += " Without noise your step matched: draw the noise from the generator "
                    hint += (
                        "you are given, in the order of model.named_parameters() (add_noise does)."
                    )
        return feedback(name, False, success="", hint=hint)
    return feedback(
        name,
        True,
        success="your step is the library's, draw for draw: per-example gradients, each clipped "
        "to C, summed, Gaussian noise of std sigma C, divided by the expected batch size, even "
        "when the Poisson batch is empty.",
    )


_STEP_SLIPS: tuple[tuple[_Slip, str], ...] = (
    ({"clip": False}, "the gradients were not clipped: one example moves the step without bound."),
    ({"divisor": "actual"}, "that divides by the batch's actual size, which depends on the data; "
     "the step divides by the expected batch size."),
    ({"noise_c": False}, "the noise's std forgot the clipping norm: the sum's sensitivity is C."),
    ({"noise_after": True}, "the noise was added after the division, so it is expected batch size "
     "times too large."),
    ({"sign": -1.0}, "the step climbs the loss: parameters move against the gradient."),
)  # fmt: skip


def _library_clip(rows: torch.Tensor, c: float) -> torch.Tensor:
    """Each row clipped to norm ``c`` by the library's per-example clipping."""
    from fl_dp_lab.dpsgd import clip_per_sample

    return clip_per_sample({"g": rows}, max_grad_norm=c)["g"]


def _step_case(kind: str, n: int, seed: int) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    from fl_dp_lab.models import MLP, LogisticRegression

    generator = torch.Generator().manual_seed(100 + seed)
    if kind == "mlp":
        model: torch.nn.Module = MLP(6, 5, 3, generator=generator)
    else:
        model = LogisticRegression(6, 3, generator=generator)
    x = torch.randn(n, 6, generator=generator)
    return model, x, torch.randint(0, 3, (n,), generator=generator)


def _flat(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def _variant_step(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    lr: float,
    max_grad_norm: float,
    noise_multiplier: float,
    expected_batch_size: float,
    generator: torch.Generator,
    clip: bool = True,
    divisor: Literal["expected", "actual"] = "expected",
    noise_c: bool = True,
    noise_after: bool = False,
    sign: float = 1.0,
) -> None:
    """A DP-SGD step with one of the usual slips, built from the library's pieces."""
    from fl_dp_lab.dpsgd import add_noise, clip_per_sample, per_sample_gradients

    params = dict(model.named_parameters())
    if len(x):
        grads = per_sample_gradients(model, torch.nn.functional.cross_entropy, x, y)
        if clip:
            grads = clip_per_sample(grads, max_grad_norm=max_grad_norm)
        summed = {key: g.sum(0) for key, g in grads.items()}
    else:
        summed = {key: torch.zeros_like(p.detach()) for key, p in params.items()}
    scale = max_grad_norm if noise_c else 1.0
    denominator = expected_batch_size if divisor == "expected" else max(len(x), 1)
    if noise_after:
        zeros = {key: torch.zeros_like(g) for key, g in summed.items()}
        noise = add_noise(
            zeros, max_grad_norm=scale, noise_multiplier=noise_multiplier, generator=generator
        )
        step = {key: summed[key] / denominator + noise[key] for key in summed}
    else:
        noisy = add_noise(
            summed, max_grad_norm=scale, noise_multiplier=noise_multiplier, generator=generator
        )
        step = {key: g / denominator for key, g in noisy.items()}
    with torch.no_grad():
        for key, p in params.items():
            p.sub_(sign * lr * step[key])


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
    idea="start from the budget: Opacus's PrivacyEngine can search the noise multiplier that "
    "spends a target epsilon in a planned number of epochs, while it makes the three objects "
    "private.",
    step="make a PrivacyEngine() and call its make_private_with_epsilon with the module, the "
    "optimizer, the data loader, the target epsilon and delta, the epochs and max_grad_norm.",
    solution="return PrivacyEngine().make_private_with_epsilon(module=model, optimizer=optimizer, "
    "data_loader=loader, target_epsilon=target_epsilon, target_delta=delta, epochs=epochs, "
    "max_grad_norm=max_grad_norm)",
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
    from torch.utils.data import DataLoader, TensorDataset

    n, batch = 4000, 256
    loader = DataLoader(TensorDataset(torch.arange(n)), batch_size=batch)
    rate = 1 / len(loader)  # what make_private reads off the loader
    expected = int(n * rate)  # the DPOptimizer's expected batch size
    if abs(q - batch / n) < 1e-9:
        return feedback(
            name,
            False,
            success="",
            hint="that is batch size / N, what you would expect, but Opacus computes the rate "
            "from the loader itself.",
        )
    if abs(q - rate) < 1e-9 and abs(b - batch) < 1e-9:
        return feedback(
            name,
            False,
            success="",
            hint="the rate is right; the expected batch size is not the loader's nominal one.",
        )
    return feedback(
        name,
        abs(q - rate) < 1e-9 and abs(b - expected) < 1e-9,
        success="use the same two numbers in your own accountant and step, or the two will "
        "not match.",
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


@graded("Exercise 07.2")
def check_make_private_with_epsilon(make_private_for: Any) -> bool:
    """Exercise 07.2: ``make_private_for(model, optimizer, loader, *, target_epsilon, ...)``.

    Called (keywords ``target_epsilon``, ``delta``, ``epochs``,
    ``max_grad_norm``) on a model, an optimizer and a loader the learner has
    not seen, at a hidden target; it must return what Opacus's
    ``make_private_with_epsilon`` returns. The returned ``DPOptimizer``'s
    noise multiplier must be the one Opacus's own calibration finds for that
    loader, target and number of epochs (its default accountant, or RDP with
    a note), and its clipping norm the one asked for. A noise multiplier
    chosen by hand, an optimizer that is not private and the wrong clipping
    norm are each named.
    """
    from opacus.accountants.utils import get_noise_multiplier
    from opacus.optimizers import DPOptimizer
    from torch.utils.data import DataLoader, TensorDataset

    from fl_dp_lab.models import MLP

    name = "Exercise 07.2"
    if is_unanswered(make_private_for):
        return report_unanswered(name)
    if not callable(make_private_for):
        raise TypeError(f"make_private_for must be a function, got {make_private_for!r}")
    generator = torch.Generator().manual_seed(72)
    model = MLP(6, 8, 3, generator=generator)
    x, y = (
        torch.randn(480, 6, generator=generator),
        torch.randint(0, 3, (480,), generator=generator),
    )
    loader = DataLoader(TensorDataset(x, y), batch_size=40)
    setting = {"target_epsilon": 1.5, "delta": 1e-5, "epochs": 4, "max_grad_norm": 0.8}
    out = make_private_for(model, torch.optim.SGD(model.parameters(), lr=0.1), loader, **setting)
    items = out if isinstance(out, tuple | list) else (out,)
    optimizers = [item for item in items if isinstance(item, torch.optim.Optimizer)]
    if not optimizers:
        raise TypeError(
            "make_private_for(...) must return what make_private_with_epsilon returns "
            f"(model, optimizer, loader), got {out!r}"
        )
    optimizer = optimizers[0]
    if not isinstance(optimizer, DPOptimizer):
        return feedback(name, False, success="", hint="the optimizer you returned is not Opacus's "
                        "DPOptimizer: it neither clips nor adds noise.")  # fmt: skip
    if not math.isclose(optimizer.max_grad_norm, setting["max_grad_norm"], rel_tol=1e-9):
        hint = f"the optimizer clips at {optimizer.max_grad_norm:g}, not at max_grad_norm."
        return feedback(name, False, success="", hint=hint)
    sigma = float(optimizer.noise_multiplier)
    calibration = {
        "target_epsilon": setting["target_epsilon"],
        "target_delta": setting["delta"],
        "sample_rate": 1 / len(loader),
        "epochs": setting["epochs"],
    }
    if math.isclose(sigma, get_noise_multiplier(**calibration, accountant="prv"), rel_tol=1e-6):
        return feedback(
            name,
            True,
            success=f"the engine searched σ = {sigma:.3f} for this loader and target: you start "
            "from a budget, and Opacus finds the noise that spends it.",
        )
    if math.isclose(sigma, get_noise_multiplier(**calibration, accountant="rdp"), rel_tol=1e-6):
        return feedback(
            name,
            True,
            success=f"σ = {sigma:.3f}, calibrated with the RDP accountant: a little more noise "
            "than the default PRV accountant needs for the same target.",
        )
    return feedback(
        name,
        False,
        success="",
        hint=f"σ = {sigma:.3g} is not what Opacus calibrates for this loader, target and number "
        "of epochs: did the engine search for it, with the target, delta and epochs you were "
        "given?",
    )
