"""Bad input never weakens privacy: clipping, noise and aggregation under bad values.

Each property test calls a privacy-critical function with a valid baseline and
one argument replaced by a value from the bad-value families (NaN, +-inf, 0,
negative, 1e300, empty, wrong dtype, NumPy instead of torch, None, strings,
mismatched shapes). Every call must either refuse with a ``ValueError`` or
``TypeError`` whose message names the argument, or return a result whose
clipped norms, measured in float64, never exceed C (1 + 1e-5).

Why 1e-5: clipping multiplies by min(1, C / (||v|| + 1e-6)); in float32 the norm
and the product are each rounded by a few units of 6e-8, so a clipped norm may
sit a few times 1e-7 above C. 1e-5 leaves a wide margin for that and is still
600 times below the half-precision overshoot this guards against (bfloat16
gradients clipped in bfloat16 reached 1.0062 C, float16 1.0006 C).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fl_dp_lab.auditing.canaries import noisy_clipped_sum
from fl_dp_lab.dpsgd import add_noise, clip_per_sample, dp_sgd_step
from fl_dp_lab.federated import clip_update, dp_aggregate
from fl_dp_lab.models import MLP
from fl_dp_lab.opacus_bridge import opacus_dp_step

TOLERANCE = 1e-5
FAST = settings(max_examples=40, deadline=None)

#: Scalars a privacy parameter (C, sigma, q K) must refuse or survive.
BAD_SCALARS = st.sampled_from(
    [math.nan, math.inf, -math.inf, 0.0, -1.0, 1e300, -1e300, None, "1.0", True, [1.0]]
)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _norm64(tensors) -> torch.Tensor:
    """Per-row L2 norms in float64 of tensors sharing their first axis."""
    return torch.stack([t.double().flatten(1).norm(dim=1) for t in tensors]).norm(dim=0)


@st.composite
def bad_tensors(draw, shape: tuple[int, ...]) -> object:
    """A tensor-shaped bad value: non-finite entries, extremes, wrong dtype or type, bad shapes."""
    rows, cols = shape
    kind = draw(
        st.sampled_from(
            [
                "non_finite",
                "huge",
                "zero",
                "negative",
                "empty",
                "int",
                "bool",
                "numpy",
                "none",
                "string",
                "list",
                "scalar",
                "wrong_rank",
                "half",
            ]
        )  # fmt: skip
    )
    base = torch.randn(rows, cols, generator=_gen(draw(st.integers(0, 2**16))))
    if kind == "non_finite":
        base.view(-1)[draw(st.integers(0, rows * cols - 1))] = draw(
            st.sampled_from([math.nan, math.inf, -math.inf])
        )
        return base
    return {
        "huge": base * 1e30,
        "zero": torch.zeros(rows, cols),
        "negative": -base.abs(),
        "empty": torch.zeros(0, cols),
        "int": (base * 1e9).long(),
        "bool": base > 0,
        "numpy": base.numpy(),
        "none": None,
        "string": "gradient",
        "list": base.tolist(),
        "scalar": torch.tensor(1.0),
        "wrong_rank": torch.randn(rows, cols, 2, 2),
        "half": base.to(draw(st.sampled_from([torch.bfloat16, torch.float16]))) * 30,
    }[kind]


def _refused_by_name(error: Exception, *names: str) -> bool:
    return isinstance(error, (ValueError, TypeError)) and any(n in str(error) for n in names)


def _call(function, names: tuple[str, ...]):
    """Run ``function``; return its result, or None after checking the refusal names the argument."""
    try:
        return function()
    except (ValueError, TypeError) as error:
        assert _refused_by_name(error, *names), (
            f"{type(error).__name__} names none of {names}: {error}"
        )
        return None


# --- clip_per_sample --------------------------------------------------------------------------


@FAST
@given(grad=bad_tensors((5, 4)), max_grad_norm=st.floats(1e-3, 1e3))
def test_clip_per_sample_refuses_bad_gradients_by_name_or_stays_within_c(grad, max_grad_norm):
    names = ("grads", "the gradient of example")
    clipped = _call(lambda: clip_per_sample({"w": grad}, max_grad_norm=max_grad_norm), names)
    if clipped is not None:
        assert clipped["w"].dtype == grad.dtype
        assert bool((_norm64(clipped.values()) <= max_grad_norm * (1 + TOLERANCE)).all())


@FAST
@given(max_grad_norm=BAD_SCALARS)
def test_clip_per_sample_refuses_a_bad_max_grad_norm_by_name_or_stays_within_it(max_grad_norm):
    grads = {"w": torch.randn(5, 4, generator=_gen(1)) * 10}
    clipped = _call(lambda: clip_per_sample(grads, max_grad_norm=max_grad_norm), ("max_grad_norm",))
    if clipped is not None:
        assert bool((_norm64(clipped.values()) <= max_grad_norm * (1 + TOLERANCE)).all())


@FAST
@given(
    rows=st.integers(1, 3), cols=st.integers(1, 3), extra=st.integers(1, 3),
    bad=st.sampled_from(["mismatched_batch", "empty_dict", "not_a_dict", "mixed_dtype"]),
)  # fmt: skip
def test_clip_per_sample_refuses_malformed_dicts_by_name(rows, cols, extra, bad):
    grads = {
        "mismatched_batch": {"w": torch.ones(rows, cols), "b": torch.ones(rows + extra)},
        "empty_dict": {},
        "not_a_dict": [torch.ones(rows, cols)],
        "mixed_dtype": {"w": torch.ones(rows, cols), "b": torch.ones(rows, dtype=torch.float64)},
    }[bad]
    with pytest.raises((ValueError, TypeError), match="grads"):
        clip_per_sample(grads, max_grad_norm=1.0)


@FAST
@given(
    dtype=st.sampled_from([torch.bfloat16, torch.float16, torch.float32, torch.float64]),
    max_grad_norm=st.floats(1e-2, 1e2),
    log_scale=st.floats(-3, 3.5),
    seed=st.integers(0, 2**16),
)
def test_low_precision_clipped_norms_never_exceed_c(dtype, max_grad_norm, log_scale, seed):
    # Prepare: two parameters, some rows far above C, some below
    generator = _gen(seed)
    grads = {
        "w": (torch.randn(32, 6, 5, generator=generator) * 10**log_scale).to(dtype),
        "b": (torch.randn(32, 6, generator=generator) * 10**log_scale).to(dtype),
    }
    # Execute
    clipped = clip_per_sample(grads, max_grad_norm=max_grad_norm)
    # Assert: measured in float64, after the cast back to the low dtype
    assert all(g.dtype == dtype for g in clipped.values())
    assert float(_norm64(clipped.values()).max()) <= max_grad_norm * (1 + TOLERANCE)


# --- add_noise and noisy_clipped_sum ---------------------------------------------------------


@FAST
@given(
    which=st.sampled_from(["grad_sum", "max_grad_norm", "noise_multiplier", "generator"]),
    grad=bad_tensors((3, 4)),
    scalar=BAD_SCALARS,
    generator=st.sampled_from([None, 0, np.random.default_rng(0), "seed"]),
)
def test_add_noise_refuses_each_bad_argument_by_name_or_returns_finite_noise(
    which, grad, scalar, generator
):
    args = {"grad_sum": {"w": torch.zeros(3, 4)}, "max_grad_norm": 1.0, "noise_multiplier": 1.0,
            "generator": _gen()}  # fmt: skip
    args[which] = {"grad_sum": {"w": grad}, "generator": generator}.get(which, scalar)
    noisy = _call(lambda: add_noise(**args), (which, "grad_sum", "noise_multiplier"))
    if noisy is not None:
        assert all(bool(torch.isfinite(v).all()) for v in noisy.values())


@FAST
@given(grad=bad_tensors((4, 3)), max_grad_norm=st.floats(1e-2, 1e2))
def test_noisy_clipped_sum_refuses_by_name_or_has_a_clipped_sum_within_batch_times_c(
    grad, max_grad_norm
):
    names = ("per_sample_grads", "grads", "the gradient of example")
    summed = _call(
        lambda: noisy_clipped_sum(
            {"w": grad}, max_grad_norm=max_grad_norm, noise_multiplier=0.0, generator=_gen()
        ),  # fmt: skip
        names,
    )
    if summed is not None:  # no noise: the sum of len(grad) rows, each of norm <= C
        bound = len(grad) * max_grad_norm * (1 + 1e-2 if grad.dtype.itemsize == 2 else 1 + 1e-5)
        assert float(summed["w"].double().norm()) <= bound


# --- clip_update and dp_aggregate ------------------------------------------------------------


@FAST
@given(update=bad_tensors((4, 6)), clip_norm=st.floats(1e-3, 1e3))
def test_clip_update_refuses_by_name_or_stays_within_c(update, clip_norm):
    clipped = _call(lambda: clip_update(update, clip_norm=clip_norm), ("update",))
    if clipped is not None:
        norms = clipped.double().reshape(-1, clipped.shape[-1]).norm(dim=1)
        assert bool((norms <= clip_norm * (1 + TOLERANCE)).all())


@FAST
@given(
    which=st.sampled_from(
        ["updates", "clip_norm", "noise_multiplier", "expected_clients", "generator"]
    ),
    updates=bad_tensors((5, 6)),
    scalar=BAD_SCALARS,
)
def test_dp_aggregate_refuses_each_bad_argument_by_name_or_stays_bounded(which, updates, scalar):
    args = {"updates": torch.randn(5, 6, generator=_gen(3)) * 10, "clip_norm": 1.0,
            "noise_multiplier": 0.0, "expected_clients": 1.0, "generator": _gen()}  # fmt: skip
    args[which] = {"updates": updates, "generator": scalar}.get(which, scalar)
    average = _call(lambda: dp_aggregate(**args), (which,))
    if average is not None:
        assert bool(torch.isfinite(average).all())
        if args["noise_multiplier"] == 0.0 and which != "expected_clients":
            # no noise, denominator 1: the sum of at most 5 rows, each within C
            bound = 5 * args["clip_norm"] * (1.01 if average.dtype.itemsize == 2 else 1 + 1e-5)
            assert float(average.double().norm()) <= bound


# --- whole DP-SGD steps ----------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(
    which=st.sampled_from(["lr", "max_grad_norm", "noise_multiplier", "expected_batch_size"]),
    value=BAD_SCALARS,
)
def test_dp_sgd_step_refuses_bad_hyperparameters_by_name_or_keeps_the_model_finite(which, value):
    model = MLP(4, 3, 2, generator=_gen(0))
    args = {"lr": 0.1, "max_grad_norm": 1.0, "noise_multiplier": 1.0, "expected_batch_size": 3}
    args[which] = value
    x, y = torch.randn(3, 4, generator=_gen(1)), torch.tensor([0, 1, 0])
    result = _call(
        lambda: dp_sgd_step(
            model, torch.nn.functional.cross_entropy, x, y, generator=_gen(), **args
        ),  # fmt: skip
        (which,),
    )
    if result is not None:
        assert all(bool(torch.isfinite(p).all()) for p in model.parameters())


@settings(max_examples=25, deadline=None)
@given(
    method=st.sampled_from(["ghost", "hooks", "vmap", "loop"]),
    row=st.integers(0, 4),
    column=st.integers(0, 3),
    bad=st.sampled_from([math.nan, math.inf, -math.inf]),
)
def test_a_non_finite_row_of_x_is_refused_by_index_before_the_weights_move(
    method, row, column, bad
):
    # Prepare
    model = MLP(4, 3, 2, generator=_gen(0))
    before = [p.detach().clone() for p in model.parameters()]
    x, y = torch.randn(5, 4, generator=_gen(1)), torch.tensor([0, 1, 0, 1, 1])
    x[row, column] = bad
    # Execute / Assert: the loss or the gradient of that row is named
    with pytest.raises(ValueError, match=rf"x\[{row}\]"):
        dp_sgd_step(model, torch.nn.functional.cross_entropy, x, y, lr=0.1, max_grad_norm=1.0,
                    noise_multiplier=1.0, expected_batch_size=5, generator=_gen(), method=method)  # fmt: skip
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


@pytest.mark.parametrize("mode", ["hooks", "functorch", "ghost"])
@pytest.mark.parametrize("bad", [math.inf, math.nan])
def test_opacus_dp_step_refuses_a_non_finite_example_before_the_weights_move(mode, bad):
    # Prepare
    model = MLP(4, 3, 2, generator=_gen(0))
    before = [p.detach().clone() for p in model.parameters()]
    x = torch.randn(3, 4, generator=_gen(1))
    x[2, 1] = bad
    # Execute / Assert
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Opacus's own notices about secure RNG and hooks
        with pytest.raises(ValueError, match="the gradient of example 2 .* must be finite"):
            opacus_dp_step(model, x, torch.tensor([0, 1, 0]), lr=0.1, max_grad_norm=1.0,
                           noise_multiplier=1.0, expected_batch_size=3, generator=_gen(),
                           grad_sample_mode=mode)  # fmt: skip
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_opacus_dp_step_refuses_numpy_data_by_name():
    model = MLP(4, 3, 2, generator=_gen(0))
    with pytest.raises(TypeError, match="x and y must be torch.Tensors"):
        opacus_dp_step(model, np.zeros((3, 4)), torch.tensor([0, 1, 0]), lr=0.1,
                       max_grad_norm=1.0, noise_multiplier=1.0, expected_batch_size=3,
                       generator=_gen())  # fmt: skip
