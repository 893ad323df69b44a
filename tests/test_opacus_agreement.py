"""Our DP-SGD (fl_dp_lab.dpsgd, fl_dp_lab.accounting) against Opacus 1.6, and the Opacus bridge."""

from __future__ import annotations

import copy
import math
import warnings

import pytest
import torch
from torch import nn

from fl_dp_lab.accounting import epsilon
from fl_dp_lab.dpsgd import clipped_gradient_sum, dp_sgd_step, per_sample_gradients
from fl_dp_lab.models import MLP, SmallCNN
from fl_dp_lab.opacus_bridge import (
    make_private,
    make_private_with_epsilon,
    opacus_dp_step,
    opacus_per_sample_gradients,
    private_sweep,
    train_private,
)
from fl_dp_lab.training import evaluate

MODELS = {
    "mlp": lambda: MLP(784, 16, 10, generator=torch.Generator().manual_seed(0)),
    "cnn": lambda: SmallCNN(10, generator=torch.Generator().manual_seed(0)),
}
loss_fn = nn.functional.cross_entropy


def _batch(n: int, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(n, 28, 28, generator=generator), torch.randint(
        0, 10, (n,), generator=generator
    )


def _max_abs_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).detach().abs().max()) for k in a)


@pytest.mark.parametrize("method", ["loop", "vmap", "hooks"])
@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_per_sample_gradients_match_opacus_grad_sample_module(name, method):
    # Prepare
    model = MODELS[name]()
    x, y = _batch(6)
    # Execute
    ours = per_sample_gradients(model, loss_fn, x, y, method=method)
    theirs = opacus_per_sample_gradients(model, x, y)
    # Assert: same keys, shapes (B, *param.shape) and values (float32)
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in theirs.items()}
    assert _max_abs_diff(ours, theirs) < 1e-5


def test_opacus_per_sample_gradients_leaves_the_model_clean():
    model = MODELS["mlp"]()
    opacus_per_sample_gradients(model, *_batch(4))
    for p in model.parameters():
        assert p.grad is None and not hasattr(p, "grad_sample")
    assert type(model) is MLP and not model._forward_hooks


@pytest.mark.parametrize("mode", ["hooks", "functorch", "ghost"])
def test_bridge_backward_passes_raise_no_warning(mode):
    # torch warns "Full backward hook is firing ..." on the first layer (its input, the
    # data, needs no gradient); the bridge ignores exactly that, so nothing reaches a learner
    x, y = _batch(8)
    step = dict(lr=0.1, max_grad_norm=1.0, noise_multiplier=1.0, expected_batch_size=8)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        opacus_per_sample_gradients(MODELS["mlp"](), x, y)
        opacus_dp_step(
            MODELS["mlp"](), x, y, generator=torch.Generator(), grad_sample_mode=mode, **step
        )
        private = make_private(
            MODELS["mlp"](), x, y, batch_size=4, lr=0.1, max_grad_norm=1.0,
            noise_multiplier=1.0, generator=torch.Generator(), grad_sample_mode=mode,
        )  # fmt: skip
        train_private(private, epochs=1, delta=None)


@pytest.mark.parametrize("our_method", ["ghost", "vmap"])
@pytest.mark.parametrize("mode", ["hooks", "ghost"])
@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_noise_free_step_equals_one_opacus_dpoptimizer_step(name, mode, our_method):
    # Prepare: 13 examples but an expected batch size of 16, as under Poisson sampling,
    # and a clipping norm small enough that every example is clipped.
    ours_model = MODELS[name]()
    opacus_model = copy.deepcopy(ours_model)
    x, y = _batch(13)
    kwargs = dict(lr=0.5, max_grad_norm=0.05, noise_multiplier=0.0, expected_batch_size=16)
    # Execute
    ours = dp_sgd_step(
        ours_model,
        loss_fn,
        x,
        y,
        generator=torch.Generator().manual_seed(0),
        method=our_method,
        **kwargs,
    )
    theirs = opacus_dp_step(
        opacus_model,
        x,
        y,
        generator=torch.Generator().manual_seed(0),
        grad_sample_mode=mode,
        **kwargs,
    )
    # Assert: the same gradient, and the same weights after the step, to 1e-6
    assert _max_abs_diff(ours, theirs) < 1e-6
    after_ours = dict(ours_model.named_parameters())
    after_theirs = dict(opacus_model.named_parameters())
    assert _max_abs_diff(after_ours, after_theirs) < 1e-6
    # ... and the step really moved the weights (the check is not vacuous)
    assert _max_abs_diff(after_ours, dict(MODELS[name]().named_parameters())) > 1e-4


def test_dividing_by_the_realised_batch_size_would_be_caught():
    # The same comparison with expected_batch_size = len(x) for Opacus only: a clear mismatch.
    model, twin = MODELS["mlp"](), MODELS["mlp"]()
    x, y = _batch(13)
    kwargs = dict(lr=0.5, max_grad_norm=0.05, noise_multiplier=0.0)
    ours = dp_sgd_step(
        model,
        loss_fn,
        x,
        y,
        expected_batch_size=16,
        generator=torch.Generator().manual_seed(0),
        **kwargs,
    )
    theirs = opacus_dp_step(
        twin, x, y, expected_batch_size=13, generator=torch.Generator().manual_seed(0), **kwargs
    )
    assert _max_abs_diff(ours, theirs) > 1e-4


def test_clipped_sums_agree_with_opacus_at_every_clip_norm():
    model = MODELS["cnn"]()
    x, y = _batch(9)
    for max_grad_norm in (1e-3, 0.3, 1e3):  # all clipped, some clipped, none clipped
        ours = clipped_gradient_sum(model, loss_fn, x, y, max_grad_norm=max_grad_norm)
        theirs = opacus_dp_step(
            copy.deepcopy(model),
            x,
            y,
            lr=1.0,
            max_grad_norm=max_grad_norm,
            noise_multiplier=0.0,
            expected_batch_size=1,
            generator=torch.Generator(),
        )
        assert _max_abs_diff(ours, theirs) < 1e-6 * max(1.0, max_grad_norm)


def test_noisy_steps_have_the_same_noise_statistics():
    # Seed 0/1; 101,770 coordinates per step, so the std is estimated to ~0.2 %.
    # Tolerance 2 %: noise std sigma instead of sigma*C (C = 0.7) is 43 % off,
    # and dividing by len(x) = 32 instead of the expected 40 is 25 % off.
    model = MLP(784, 128, 10, generator=torch.Generator().manual_seed(0))
    x, y = _batch(32)
    sigma, c, expected = 1.3, 0.7, 40
    kwargs = dict(lr=1.0, max_grad_norm=c, expected_batch_size=expected)
    noise_free = dp_sgd_step(
        copy.deepcopy(model),
        loss_fn,
        x,
        y,
        noise_multiplier=0.0,
        generator=torch.Generator(),
        **kwargs,
    )
    ours = dp_sgd_step(
        copy.deepcopy(model),
        loss_fn,
        x,
        y,
        noise_multiplier=sigma,
        generator=torch.Generator().manual_seed(0),
        **kwargs,
    )
    theirs = opacus_dp_step(
        copy.deepcopy(model),
        x,
        y,
        noise_multiplier=sigma,
        generator=torch.Generator().manual_seed(1),
        **kwargs,
    )
    target = sigma * c / expected
    for noisy in (ours, theirs):
        noise = torch.cat([(noisy[k] - noise_free[k]).flatten() for k in noisy])
        assert abs(float(noise.std()) / target - 1) < 0.02
        assert abs(float(noise.mean())) < 5 * target / math.sqrt(noise.numel())


def test_make_private_derives_sample_rate_from_the_loader_and_accounts_like_ours():
    # Prepare: 100 examples in loader batches of 16 -> 7 batches, q = 1/7, expected batch 14
    x, y = _batch(100)
    private = make_private(
        MODELS["mlp"](),
        x,
        y,
        batch_size=16,
        lr=0.1,
        max_grad_norm=1.0,
        noise_multiplier=1.1,
        generator=torch.Generator().manual_seed(0),
        accountant="rdp",
    )
    # Execute
    history = train_private(private, epochs=2)
    # Assert
    assert private.sample_rate == pytest.approx(1 / 7)
    assert private.optimizer.expected_batch_size == 14
    assert private.engine.accountant.history == [(1.1, 1 / 7, 14)]
    ours = epsilon(noise_multiplier=1.1, sample_rate=1 / 7, steps=14, delta=1e-5, accountant="rdp")
    assert history.epsilon == pytest.approx(ours, rel=0.02)
    assert len(history.train_loss) == 2 and all(math.isfinite(v) for v in history.train_loss)


def test_train_private_refuses_half_an_evaluation_set_and_records_both_halves():
    x, y = _batch(40)
    private = make_private(
        MODELS["mlp"](), x, y, batch_size=8, lr=0.1, max_grad_norm=1.0, noise_multiplier=1.0,
        generator=torch.Generator().manual_seed(0),
    )  # fmt: skip
    with pytest.raises(ValueError, match="x_test and y_test must be both given or both None"):
        train_private(private, epochs=1, delta=None, x_test=x)
    with pytest.raises(ValueError, match="x_test and y_test must be both given or both None"):
        train_private(private, epochs=1, delta=None, y_test=y)
    history = train_private(private, epochs=2, delta=None, x_test=x, y_test=y)
    # the last entry is what evaluate reports for the trained model (History's fields)
    loss, accuracy = evaluate(private.module, x, y)
    assert len(history.test_loss) == len(history.test_accuracy) == 2
    assert history.test_loss[-1] == pytest.approx(loss) and history.test_accuracy[-1] == accuracy


def test_make_private_with_epsilon_spends_the_target_by_our_accountant():
    x, y = _batch(100)
    private = make_private_with_epsilon(
        MODELS["mlp"](),
        x,
        y,
        batch_size=10,
        lr=0.1,
        max_grad_norm=1.0,
        target_epsilon=3.0,
        epochs=4,
        delta=1e-5,
        generator=torch.Generator().manual_seed(0),
    )
    spent = epsilon(
        noise_multiplier=private.noise_multiplier,
        sample_rate=0.1,
        steps=40,
        delta=1e-5,
        accountant="rdp",
    )
    assert spent == pytest.approx(3.0, rel=0.02)


def test_training_is_reproducible_from_the_generator():
    x, y = _batch(60)

    def run() -> dict:
        private = make_private(
            MODELS["mlp"](),
            x,
            y,
            batch_size=10,
            lr=0.5,
            max_grad_norm=1.0,
            noise_multiplier=1.0,
            generator=torch.Generator().manual_seed(3),
        )
        train_private(private, epochs=1)
        return {k: v.detach().clone() for k, v in private.module.named_parameters()}

    assert _max_abs_diff(run(), run()) == 0.0


@pytest.mark.parametrize("delta", [1.5, 1.0, 0.0, -1.0, float("nan")])
def test_train_private_refuses_a_delta_outside_zero_one_before_training(delta):
    x = torch.randn(20, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    y = torch.randint(0, 10, (20,), generator=torch.Generator().manual_seed(1))
    private = make_private(
        MODELS["mlp"](), x, y, batch_size=10, lr=0.5, max_grad_norm=1.0, noise_multiplier=1.0,
        generator=torch.Generator().manual_seed(3),
    )  # fmt: skip
    before = {k: v.detach().clone() for k, v in private.module.named_parameters()}
    with pytest.raises(ValueError, match="delta must be"):
        train_private(private, epochs=1, delta=delta)
    after = dict(private.module.named_parameters())
    assert all(torch.equal(before[k], after[k]) for k in before)  # no step was taken


def test_private_sweep_grid_and_no_privacy_at_sigma_zero():
    x, y = _batch(60)
    result = private_sweep(
        [0.0, 2.0],
        [0.5],
        make_model=lambda g: MLP(784, 8, 10, generator=g),
        train=(x, y),
        test=(x[:20], y[:20]),
        batch_size=20,
        epochs=1,
        lr=0.5,
        seed=0,
        progress=False,
    )
    assert (
        result.accuracy.shape == (2, 1) and ((0 <= result.accuracy) & (result.accuracy <= 1)).all()
    )
    assert math.isinf(result.epsilon[0]) and math.isfinite(result.epsilon[1])
    assert result.steps == 3 and result.sample_rate == pytest.approx(1 / 3)
    assert 0.0 <= result.baseline_accuracy <= 1.0


def test_bridge_rejects_bad_input():
    x, y = _batch(20)
    model = MODELS["mlp"]()
    common = dict(batch_size=5, lr=0.1, max_grad_norm=1.0, generator=torch.Generator())
    with pytest.raises(ValueError, match="noise_multiplier must be >= 0"):
        make_private(model, x, y, noise_multiplier=-1.0, **common)
    with pytest.raises(ValueError, match="epochs must be an integer >= 1"):
        make_private_with_epsilon(model, x, y, target_epsilon=1.0, epochs=0, **common)
    with pytest.raises(ValueError, match="x and y must be the same length"):
        make_private(model, x, y[:-1], noise_multiplier=1.0, **common)
    sweep = dict(make_model=lambda g: MLP(784, 8, 10, generator=g), batch_size=5, epochs=1,
                 lr=0.1, seed=0, progress=False)  # fmt: skip
    with pytest.raises(TypeError, match=r"test must be a pair \(inputs, labels\) of tensors"):
        private_sweep([1.0], [1.0], train=(x, y), test=x, **sweep)
    with pytest.raises(ValueError, match="train inputs and labels must be the same length"):
        private_sweep([1.0], [1.0], train=(x, y[:-1]), test=(x, y), **sweep)
    with pytest.raises(ValueError, match="grad_sample_mode must be one of"):
        make_private(model, x, y, noise_multiplier=1.0, grad_sample_mode="ew", **common)
    with pytest.raises(ValueError, match="max_grad_norm must be > 0"):
        opacus_dp_step(
            model,
            x,
            y,
            lr=0.1,
            max_grad_norm=0.0,
            noise_multiplier=1.0,
            expected_batch_size=4,
            generator=torch.Generator(),
        )
    with pytest.raises(ValueError, match="x and y must be the same length"):
        opacus_dp_step(
            model,
            x,
            y[:3],
            lr=0.1,
            max_grad_norm=1.0,
            noise_multiplier=1.0,
            expected_batch_size=4,
            generator=torch.Generator(),
        )
    with pytest.raises(ValueError, match="noise_multiplier must be >= 0"):
        opacus_dp_step(
            model,
            x,
            y,
            lr=0.1,
            max_grad_norm=1.0,
            noise_multiplier=-1.0,
            expected_batch_size=4,
            generator=torch.Generator(),
        )
