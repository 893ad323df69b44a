"""Tests of fl_dp_lab.dpsgd against a naive loop, central differences and closed forms.

The comparisons with Opacus (per-sample gradients, one DPOptimizer step, noise
statistics) live in ``test_opacus_agreement.py``.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from fl_dp_lab import accounting
from fl_dp_lab.dpsgd import (
    DPSGD,
    DPHistory,
    add_noise,
    clip_per_sample,
    clipped_gradient_sum,
    dp_sgd_step,
    ghost_norms,
    per_sample_gradients,
    per_sample_norms,
    poisson_batches,
    train_dp_sgd,
)
from fl_dp_lab.models import MLP, LogisticRegression, SmallCNN

LOSS = nn.functional.cross_entropy


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class _Sequence(nn.Module):
    """Linear layers on (B, T, 16) inputs: the Gram-matrix (T=3) and materialised (T=40) paths."""

    def __init__(self, steps: int) -> None:
        super().__init__()
        self.mix = nn.Linear(16, 12)
        self.head = nn.Linear(12 * steps, 3)
        self.steps = steps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.tanh(self.mix(x.view(len(x), self.steps, 16))).flatten(1))


class _WithNorm(nn.Module):
    """A GroupNorm layer ghost clipping does not cover: exercises the vmap fallback."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 6)
        self.norm = nn.GroupNorm(2, 6)
        self.out = nn.Linear(6, 3, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.norm(self.fc(x)))


def _case(name: str, batch: int = 6):
    """(model, x, y) for each architecture the tests cover."""
    g = _gen(1)
    if name == "mlp":
        model, x, classes = MLP(784, 32, 10, generator=_gen(0)), torch.rand(batch, 28, 28), 10
    elif name == "cnn":
        model, x, classes = SmallCNN(10, generator=_gen(0)), torch.rand(batch, 1, 28, 28), 10
    elif name in ("seq3", "seq40"):
        steps = int(name[3:])
        model, x, classes = _Sequence(steps), torch.randn(batch, steps * 16, generator=g), 3
    else:
        model, x, classes = _WithNorm(), torch.randn(batch, 8, generator=g), 3
    torch.manual_seed(0)  # only _Sequence/_WithNorm use torch's default init
    return model, x, torch.randint(0, classes, (batch,), generator=g)


CASES = ("mlp", "cnn", "seq3", "seq40", "norm")


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("method", ["vmap", "hooks"])
def test_per_sample_gradients_equal_the_naive_loop(case, method):
    model, x, y = _case(case)
    loop = per_sample_gradients(model, LOSS, x, y, method="loop")
    fast = per_sample_gradients(model, LOSS, x, y, method=method)
    assert fast.keys() == dict(model.named_parameters()).keys()
    for name, grad in loop.items():
        assert fast[name].shape == (len(x), *dict(model.named_parameters())[name].shape)
        torch.testing.assert_close(fast[name], grad, atol=1e-5, rtol=1e-5)


def test_per_sample_gradients_are_the_gradients_of_each_examples_loss():
    # Prepare: the loop is checked once against the definition, one backward per example
    model, x, y = _case("mlp", batch=3)
    grads = per_sample_gradients(model, LOSS, x, y, method="loop")
    for i in range(3):
        model.zero_grad()
        LOSS(model(x[i : i + 1]), y[i : i + 1]).backward()
        for name, p in model.named_parameters():
            torch.testing.assert_close(grads[name][i], p.grad)
    # Assert: the per-sample gradients average to the batch gradient
    model.zero_grad()
    LOSS(model(x), y).backward()
    for name, p in model.named_parameters():
        torch.testing.assert_close(grads[name].mean(0), p.grad, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("method", ["loop", "vmap", "hooks"])
def test_per_sample_gradients_match_central_differences_in_float64(method):
    # Prepare: a tiny float64 model, so central differences are accurate to ~1e-9
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    x = torch.randn(4, 3, dtype=torch.float64, generator=_gen(2))
    y = torch.tensor([0, 1, 1, 0])
    h = 1e-6
    # Execute
    grads = per_sample_gradients(model, LOSS, x, y, method=method)
    # Assert: (f(theta + h e_k) - f(theta - h e_k)) / (2 h) for every coordinate k
    with torch.no_grad():
        for name, p in model.named_parameters():
            flat = p.view(-1)
            for k in range(flat.numel()):
                flat[k] += h
                up = torch.stack([LOSS(model(x[i : i + 1]), y[i : i + 1]) for i in range(4)])
                flat[k] -= 2 * h
                down = torch.stack([LOSS(model(x[i : i + 1]), y[i : i + 1]) for i in range(4)])
                flat[k] += h
                expected = (up - down) / (2 * h)
                torch.testing.assert_close(
                    grads[name].reshape(4, -1)[:, k], expected, atol=1e-8, rtol=1e-6
                )


@pytest.mark.parametrize("case", CASES)
def test_ghost_norms_equal_the_norms_of_the_naive_loop(case):
    model, x, y = _case(case)
    expected = per_sample_norms(per_sample_gradients(model, LOSS, x, y, method="loop"))
    torch.testing.assert_close(ghost_norms(model, LOSS, x, y), expected, atol=1e-5, rtol=1e-5)


def test_per_sample_norms_is_the_norm_over_all_parameters_together():
    grads = {"w": torch.tensor([[3.0, 0.0], [1.0, 1.0]]), "b": torch.tensor([[4.0], [1.0]])}
    torch.testing.assert_close(per_sample_norms(grads), torch.tensor([5.0, math.sqrt(3.0)]))


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("max_grad_norm", [0.05, 100.0])
def test_clipped_gradient_sum_agrees_across_methods(case, max_grad_norm):
    # Prepare: the reference clips the naive loop's gradients by hand
    model, x, y = _case(case)
    grads = per_sample_gradients(model, LOSS, x, y, method="loop")
    norms = per_sample_norms(grads)
    factors = torch.clamp(max_grad_norm / (norms + 1e-6), max=1.0)
    expected = {n: (g * factors.view(-1, *[1] * (g.dim() - 1))).sum(0) for n, g in grads.items()}
    for method in ("ghost", "vmap", "loop", "hooks"):
        # Execute
        got = clipped_gradient_sum(model, LOSS, x, y, max_grad_norm=max_grad_norm, method=method)
        # Assert
        assert got.keys() == expected.keys()
        for name in expected:
            torch.testing.assert_close(got[name], expected[name], atol=1e-5, rtol=1e-5)


def test_clipped_gradient_sum_skips_frozen_parameters_and_empty_batches():
    model, x, y = _case("mlp")
    model.fc1.weight.requires_grad_(False)
    ghost = clipped_gradient_sum(model, LOSS, x, y, max_grad_norm=0.1, method="ghost")
    loop = clipped_gradient_sum(model, LOSS, x, y, max_grad_norm=0.1, method="loop")
    assert set(ghost) == {"fc1.bias", "fc2.weight", "fc2.bias"} == set(loop)
    for name in ghost:
        torch.testing.assert_close(ghost[name], loop[name], atol=1e-6, rtol=1e-5)
    empty = clipped_gradient_sum(model, LOSS, x[:0], y[:0], max_grad_norm=0.1)
    assert all(torch.count_nonzero(g) == 0 for g in empty.values())


class _TiedEmbedding(nn.Module):
    """An embedding and an output layer sharing one weight (weight tying, as in language models).

    The shared weight gets gradient through the embedding, which ghost clipping does not
    cover, so every method must fall back rather than count only the linear layer's part.
    """

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(5, 4)
        self.out = nn.Linear(4, 5)
        self.out.weight = self.embed.weight

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.out(torch.tanh(self.embed(tokens)))


def test_a_weight_shared_with_an_unsupported_layer_gets_its_whole_gradient():
    # Prepare
    torch.manual_seed(0)
    model = _TiedEmbedding()
    x = torch.randint(0, 5, (6,), generator=_gen(1))
    y = torch.randint(0, 5, (6,), generator=_gen(2))
    loop = per_sample_gradients(model, LOSS, x, y, method="loop")
    # Execute
    hooks = per_sample_gradients(model, LOSS, x, y, method="hooks")
    ghost = clipped_gradient_sum(model, LOSS, x, y, max_grad_norm=0.1, method="ghost")
    reference = clipped_gradient_sum(model, LOSS, x, y, max_grad_norm=0.1, method="loop")
    # Assert
    for name in loop:
        torch.testing.assert_close(hooks[name], loop[name], atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(ghost[name], reference[name], atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(
        ghost_norms(model, LOSS, x, y), per_sample_norms(loop), atol=1e-6, rtol=1e-5
    )


class _TokensFlattened(nn.Module):
    """A head applied to every token as one (B * T, D) batch of rows, then averaged."""

    def __init__(self):
        super().__init__()
        self.head = nn.Linear(6, 3, dtype=torch.float64)

    def forward(self, x):
        batch, tokens, width = x.shape
        return self.head(x.reshape(batch * tokens, width)).reshape(batch, tokens, 3).mean(1)


class _TimeMajor(nn.Module):
    """A layer that sees (T, B, D): its first axis is time, not the example."""

    def __init__(self):
        super().__init__()
        self.mix = nn.Linear(6, 3, dtype=torch.float64)

    def forward(self, x):
        return self.mix(x.transpose(0, 1)).mean(0)


@pytest.mark.parametrize("model_class", [_TokensFlattened, _TimeMajor])
def test_a_layer_whose_first_axis_is_not_the_batch_is_clipped_per_example(model_class):
    # Prepare: B = 4 examples of T = 5 tokens; large inputs, so every example is clipped
    torch.manual_seed(0)
    model = model_class()
    x = 10 * torch.randn(4, 5, 6, dtype=torch.float64, generator=_gen(1))
    y = torch.randint(0, 3, (4,), generator=_gen(2))
    loop = per_sample_gradients(model, LOSS, x, y, method="loop")
    reference = clipped_gradient_sum(model, LOSS, x, y, max_grad_norm=0.1, method="loop")
    # Execute
    hooks = per_sample_gradients(model, LOSS, x, y, method="hooks")
    ghost = clipped_gradient_sum(model, LOSS, x, y, max_grad_norm=0.1, method="ghost")
    norms = ghost_norms(model, LOSS, x, y)
    # Assert: one norm per example, and the per-example clipped sum (not per token / step)
    assert norms.shape == (4,)
    torch.testing.assert_close(norms, per_sample_norms(loop))
    for name in loop:
        torch.testing.assert_close(hooks[name], loop[name])
        torch.testing.assert_close(ghost[name], reference[name])


@settings(max_examples=60, deadline=None)
@given(
    scales=st.lists(st.floats(0.0, 1e4), min_size=1, max_size=8),
    max_grad_norm=st.floats(1e-3, 1e3),
    seed=st.integers(0, 2**16),
    double=st.booleans(),
)
def test_clipped_norms_never_exceed_max_grad_norm(scales, max_grad_norm, seed, double):
    # float64: within C + 1e-6; float32 rounds a norm of C to within a few ulps of C,
    # so there the band is relative, C * (1 + 1e-6)
    dtype = torch.float64 if double else torch.float32
    g = _gen(seed)
    scale = torch.tensor(scales, dtype=dtype).view(-1, 1)
    grads = {
        "w": torch.randn(len(scales), 7, generator=g, dtype=dtype) * scale,
        "b": torch.randn(len(scales), 1, generator=g, dtype=dtype),
    }
    clipped = clip_per_sample(grads, max_grad_norm=max_grad_norm)
    norms, after = per_sample_norms(grads), per_sample_norms(clipped)
    bound = max_grad_norm + 1e-6 if double else max_grad_norm * (1 + 1e-6)
    assert torch.all(after <= bound)
    # a gradient already inside the ball is untouched (up to the 1e-6 guard)
    inside = norms <= max_grad_norm
    torch.testing.assert_close(after[inside], norms[inside], atol=1e-5, rtol=1e-5)


def test_add_noise_has_std_noise_multiplier_times_max_grad_norm():
    # Prepare: 400,000 coordinates; the std's standard error is std / sqrt(2 n) ~ 0.11 %,
    # so a 1 % band passes reliably and fails for sigma alone (x 1/0.7) or a sqrt(2) slip
    zero = {"w": torch.zeros(1000, 200), "b": torch.zeros(200_000)}
    # Execute
    noisy = add_noise(zero, max_grad_norm=0.7, noise_multiplier=1.5, generator=_gen(0))
    # Assert
    values = torch.cat([v.flatten() for v in noisy.values()]).double()
    assert values.std().item() == pytest.approx(1.5 * 0.7, rel=0.01)
    assert abs(values.mean().item()) < 5 * 1.05 / math.sqrt(len(values))
    assert torch.count_nonzero(zero["w"]) == 0  # the input is not modified


def test_add_noise_is_reproducible_and_zero_noise_is_the_identity():
    grads = {"w": torch.arange(4.0)}
    a = add_noise(grads, max_grad_norm=1.0, noise_multiplier=2.0, generator=_gen(3))
    b = add_noise(grads, max_grad_norm=1.0, noise_multiplier=2.0, generator=_gen(3))
    torch.testing.assert_close(a["w"], b["w"])
    assert not torch.equal(a["w"], grads["w"])
    same = add_noise(grads, max_grad_norm=1.0, noise_multiplier=0.0, generator=_gen(3))
    torch.testing.assert_close(same["w"], grads["w"])


def test_poisson_batches_have_mean_size_q_n_and_include_each_example_with_rate_q():
    # Prepare: 2,000 steps, N = 500, q = 0.04: the mean batch size has standard error
    # sqrt(N q (1 - q) / steps) ~ 0.098, so a band of 0.5 is ~5 standard errors
    batches = poisson_batches(500, sample_rate=0.04, steps=2000, generator=_gen(0))
    sizes = torch.tensor([len(b) for b in batches], dtype=torch.float64)
    # Assert
    assert len(batches) == 2000
    assert sizes.mean().item() == pytest.approx(0.04 * 500, abs=0.5)
    assert sizes.var().item() == pytest.approx(500 * 0.04 * 0.96, rel=0.1)  # Binomial, not fixed
    counts = torch.bincount(torch.cat(batches), minlength=500).double() / 2000
    assert counts.mean().item() == pytest.approx(0.04, abs=0.001)
    assert all(torch.equal(b, b.unique()) for b in batches[:50])  # sorted, no repeats


def test_poisson_batches_can_be_empty_and_an_empty_batch_is_a_noise_only_step():
    batches = poisson_batches(5, sample_rate=0.05, steps=40, generator=_gen(0))
    empty = [b for b in batches if len(b) == 0]
    assert len(empty) > 10  # P(empty) = 0.95**5 = 0.77
    # Execute: a step on an empty batch moves the model by the noise alone
    model = LogisticRegression(4, 2)
    x, y = torch.ones(5, 4), torch.tensor([0, 1, 0, 1, 1])
    noisy = dp_sgd_step(
        model, LOSS, x[empty[0]], y[empty[0]], lr=0.5, max_grad_norm=2.0,
        noise_multiplier=3.0, expected_batch_size=0.25, generator=_gen(7),
    )  # fmt: skip
    # Assert: the same draws as add_noise on zeros, divided by q N
    expected = add_noise(
        {n: torch.zeros_like(p) for n, p in model.named_parameters()},
        max_grad_norm=2.0, noise_multiplier=3.0, generator=_gen(7),
    )  # fmt: skip
    for name, p in model.named_parameters():
        torch.testing.assert_close(noisy[name], expected[name] / 0.25)
        torch.testing.assert_close(p.detach(), -0.5 * noisy[name])


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("method", ["ghost", "vmap", "loop", "hooks"])
def test_dp_sgd_step_is_the_clipped_sum_plus_add_noise_over_q_n(case, method):
    # The step draws its noise first and adds the clipped sum into it; it must equal
    # the composition of the public parts, with the same draws from the same generator
    model, x, y = _case(case)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    expected = add_noise(
        clipped_gradient_sum(model, LOSS, x, y, max_grad_norm=0.5, method=method),
        max_grad_norm=0.5, noise_multiplier=1.3, generator=_gen(4),
    )  # fmt: skip
    # Execute
    noisy = dp_sgd_step(
        model, LOSS, x, y, lr=0.2, max_grad_norm=0.5, noise_multiplier=1.3,
        expected_batch_size=4.0, generator=_gen(4), method=method,
    )  # fmt: skip
    # Assert: same keys, same values, and the parameters moved by -lr times it
    assert list(noisy) == list(expected)
    for name, p in model.named_parameters():
        torch.testing.assert_close(noisy[name], expected[name] / 4.0, atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(p.detach(), before[name] - 0.2 * noisy[name])
        assert not noisy[name].requires_grad


def test_train_dp_sgd_learns_and_records_epsilon_from_the_accountant():
    # Prepare: two well-separated blobs, 200 examples
    g = _gen(0)
    y = torch.arange(200) % 2
    x = torch.randn(200, 2, generator=g) + 3.0 * (2 * y[:, None] - 1)
    model = LogisticRegression(2, 2)
    # Execute
    history = train_dp_sgd(
        model, x, y,
        settings=DPSGD(sample_rate=0.1, noise_multiplier=1.0, max_grad_norm=1.0, lr=0.5, epochs=3),
        delta=1e-5, generator=g, x_test=x, y_test=y, progress=False,
    )  # fmt: skip
    # Assert
    assert isinstance(history, DPHistory)
    assert history.epoch == [1, 2, 3] and history.steps == [10, 20, 30]
    expected = [
        accounting.epsilon(noise_multiplier=1.0, sample_rate=0.1, steps=s, delta=1e-5)
        for s in (10, 20, 30)
    ]
    assert history.epsilon == pytest.approx(expected)
    assert history.epsilon[0] < history.epsilon[1] < history.epsilon[2]
    assert history.test_accuracy[-1] > 0.95
    assert len(history.train_loss) == len(history.test_loss) == 3


def test_train_dp_sgd_without_noise_reports_infinite_epsilon():
    x, y = torch.randn(20, 3, generator=_gen(0)), torch.arange(20) % 2
    history = train_dp_sgd(
        LogisticRegression(3, 2), x, y,
        settings=DPSGD(sample_rate=0.5, noise_multiplier=0.0, max_grad_norm=1.0, lr=0.1, epochs=1),
        delta=1e-5, generator=_gen(1), progress=False,
    )  # fmt: skip
    assert history.epsilon == [math.inf]
    assert history.test_accuracy == []


def _step(**overrides):
    model, x, y = _case("mlp", batch=2)
    kwargs = dict(
        lr=0.1, max_grad_norm=1.0, noise_multiplier=1.0, expected_batch_size=2.0,
        generator=_gen(0), method="ghost",
    )  # fmt: skip
    kwargs.update(overrides)
    return dp_sgd_step(model, LOSS, x, y, **kwargs)


def _call_args():
    model, x, y = _case("mlp", batch=2)
    return model, LOSS, x, y


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: _step(max_grad_norm=0.0), ValueError, "max_grad_norm must be > 0"),
        (lambda: _step(max_grad_norm=-1.0), ValueError, "max_grad_norm must be > 0"),
        (lambda: _step(noise_multiplier=-0.1), ValueError, "noise_multiplier must be >= 0"),
        (lambda: _step(method="ghosts"), ValueError, "method must be one of"),
        (lambda: _step(lr=0.0), ValueError, "lr must be > 0"),
        (lambda: _step(expected_batch_size=0), ValueError, "expected_batch_size must be > 0"),
        (lambda: _step(generator=0), TypeError, "generator must be a torch.Generator"),
        (
            lambda: poisson_batches(10, sample_rate=0.0, steps=1, generator=_gen()),
            ValueError,
            r"sample_rate must be in \(0, 1\]",
        ),
        (
            lambda: poisson_batches(10, sample_rate=1.5, steps=1, generator=_gen()),
            ValueError,
            r"sample_rate must be in \(0, 1\]",
        ),
        (
            lambda: poisson_batches(10, sample_rate=0.5, steps=-1, generator=_gen()),
            ValueError,
            "steps must be an integer >= 0",
        ),
        (
            lambda: per_sample_gradients(
                *_case("mlp")[:1], LOSS, torch.ones(3, 784), torch.ones(2)
            ),
            ValueError,
            "x and y must be batches of the same size",
        ),
        (
            lambda: per_sample_gradients(*_call_args(), method="ghost"),
            ValueError,
            "method must be one of",
        ),
        (
            lambda: clipped_gradient_sum(*_call_args(), max_grad_norm=1.0, method="naive"),
            ValueError,
            "method must be one of",
        ),
        (
            lambda: clip_per_sample({"w": torch.ones(2, 3)}, max_grad_norm=0.0),
            ValueError,
            "max_grad_norm must be > 0",
        ),
        (
            lambda: clip_per_sample({"w": torch.ones(2, 3), "b": torch.ones(3)}, max_grad_norm=1.0),
            ValueError,
            "grads must be tensors with the same batch size",
        ),
        (
            lambda: add_noise(
                {"w": torch.ones(2)}, max_grad_norm=1.0, noise_multiplier=-1.0, generator=_gen()
            ),
            ValueError,
            "noise_multiplier must be >= 0",
        ),
        (
            lambda: train_dp_sgd(
                LogisticRegression(2, 2),
                torch.ones(4, 2),
                torch.ones(4, dtype=torch.long),
                settings=DPSGD(
                    sample_rate=1.2, noise_multiplier=1.0, max_grad_norm=1.0, lr=0.1, epochs=1
                ),
                delta=1e-5,
                generator=_gen(),
                progress=False,
            ),  # fmt: skip
            ValueError,
            r"sample_rate must be in \(0, 1\]",
        ),
        (
            lambda: train_dp_sgd(
                LogisticRegression(2, 2),
                torch.ones(4, 2),
                torch.ones(4, dtype=torch.long),
                settings=DPSGD(
                    sample_rate=0.5, noise_multiplier=1.0, max_grad_norm=1.0, lr=0.1, epochs=1
                ),
                delta=0.0,
                generator=_gen(),
                progress=False,
            ),  # fmt: skip
            ValueError,
            r"delta must be in \(0, 1\)",
        ),
    ],
)
def test_bad_input_gives_a_clear_error(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_a_nan_in_the_batch_is_refused_before_it_reaches_the_weights():
    model = MLP(4, 3, 2, generator=_gen(0))
    before = [p.detach().clone() for p in model.parameters()]
    x = torch.zeros(3, 4)
    x[1, 2] = float("nan")
    with pytest.raises(ValueError, match=r"x\[1\] must be finite"):
        dp_sgd_step(model, LOSS, x, torch.tensor([0, 1, 0]), lr=0.1, max_grad_norm=1.0,
                    noise_multiplier=1.0, expected_batch_size=3, generator=_gen(1))  # fmt: skip
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


# --- Bad input never weakens privacy -------------------------------------------------------


def _batch_norm_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.Tanh(), nn.Linear(6, 3))


def _mixing_call(kind: str, method: str, model: nn.Module, x, y):
    if kind == "sum":
        return clipped_gradient_sum(model, LOSS, x, y, max_grad_norm=1.0, method=method)
    if kind == "step":
        return dp_sgd_step(model, LOSS, x, y, lr=0.1, max_grad_norm=1.0, noise_multiplier=1.0,
                           expected_batch_size=4, generator=_gen(), method=method)  # fmt: skip
    dp = DPSGD(sample_rate=0.5, noise_multiplier=1.0, max_grad_norm=1.0, lr=0.1, epochs=1)
    return train_dp_sgd(model, x, y, settings=dp, delta=1e-5, generator=_gen(),
                        method=method, progress=False)  # fmt: skip


@pytest.mark.parametrize("kind", ["sum", "step", "train"])
@pytest.mark.parametrize("method", ["ghost", "hooks", "vmap", "loop"])
def test_batch_norm_in_train_mode_is_refused_by_every_method_with_the_fix(kind, method):
    # Prepare
    model = _batch_norm_model()
    before = [p.detach().clone() for p in model.parameters()]
    x, y = torch.randn(8, 4, generator=_gen(1)), torch.randint(0, 3, (8,), generator=_gen(2))
    # Execute / Assert: the layer is named, and so are both fixes
    with pytest.raises(ValueError, match=r"model\.1 \(BatchNorm1d\)") as error:
        _mixing_call(kind, method, model, x, y)
    assert "GroupNorm" in str(error.value) and "ModuleValidator.fix" in str(error.value)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_per_sample_gradients_and_ghost_norms_refuse_batch_norm_too():
    model = _batch_norm_model()
    x, y = torch.randn(8, 4, generator=_gen(1)), torch.randint(0, 3, (8,), generator=_gen(2))
    for method in ("loop", "vmap", "hooks"):
        with pytest.raises(ValueError, match="BatchNorm1d"):
            per_sample_gradients(model, LOSS, x, y, method=method)
    with pytest.raises(ValueError, match="BatchNorm1d"):
        ghost_norms(model, LOSS, x, y)


def test_batch_norm_without_affine_and_instance_norm_with_running_stats_are_refused():
    for layer in (nn.BatchNorm1d(6, affine=False), nn.InstanceNorm1d(6, track_running_stats=True)):
        model = nn.Sequential(nn.Linear(4, 6), nn.Unflatten(1, (6, 1)), layer, nn.Flatten(),
                              nn.Linear(6, 3))  # fmt: skip
        with pytest.raises(ValueError, match=type(layer).__name__):
            clipped_gradient_sum(model, LOSS, torch.randn(4, 4), torch.zeros(4, dtype=torch.long),
                                 max_grad_norm=1.0)  # fmt: skip


class _OwnParameter(nn.Module):
    """A module holding a trainable parameter of its own: not on the supported list."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


def test_a_trainable_layer_off_the_supported_list_is_refused_and_frozen_it_is_accepted():
    model = nn.Sequential(nn.Linear(4, 3), _OwnParameter())
    x, y = torch.randn(5, 4, generator=_gen(1)), torch.randint(0, 3, (5,), generator=_gen(2))
    with pytest.raises(ValueError, match=r"model\.1 \(_OwnParameter\).*supported layers"):
        clipped_gradient_sum(model, LOSS, x, y, max_grad_norm=1.0, method="loop")
    model[1].scale.requires_grad_(False)
    assert set(clipped_gradient_sum(model, LOSS, x, y, max_grad_norm=1.0)) == {"0.weight", "0.bias"}


def test_batch_norm_in_eval_mode_uses_fixed_statistics_and_is_clipped_per_example():
    # Prepare: eval mode applies running statistics, the same for every example
    model = _batch_norm_model().eval()
    x, y = torch.randn(8, 4, generator=_gen(1)), torch.randint(0, 3, (8,), generator=_gen(2))
    # Execute
    sums = {m: clipped_gradient_sum(model, LOSS, x, y, max_grad_norm=0.1, method=m)
            for m in ("ghost", "vmap", "loop")}  # fmt: skip
    # Assert
    for method in ("ghost", "vmap"):
        for name, value in sums["loop"].items():
            torch.testing.assert_close(sums[method][name], value, atol=1e-6, rtol=1e-5)


@settings(max_examples=25, deadline=None)
@given(
    case=st.sampled_from(CASES),
    method=st.sampled_from(["ghost", "vmap", "loop", "hooks"]),
    batch=st.integers(1, 6),
    max_grad_norm=st.floats(1e-3, 10.0),
    seed=st.integers(0, 2**16),
)
def test_adding_one_example_moves_the_clipped_sum_by_at_most_max_grad_norm(
    case, method, batch, max_grad_norm, seed
):
    """The sensitivity that the noise is calibrated to, measured: ||S(B + z) - S(B)|| <= C.

    Float32 sums of up to 7 terms of norm <= C carry a rounding error far below
    1e-5 C; a batch-mixing layer breaks the bound by a factor (2.4 C with BatchNorm).
    """
    # Prepare
    model, x, y = _case(case, batch=batch + 1)
    x = x + 0.1 * torch.randn(x.shape, generator=_gen(seed))  # a fresh batch per example
    # Execute: the batch with and without its last example
    with_z = clipped_gradient_sum(model, LOSS, x, y, max_grad_norm=max_grad_norm, method=method)
    without = clipped_gradient_sum(
        model, LOSS, x[:-1], y[:-1], max_grad_norm=max_grad_norm, method=method
    )
    # Assert
    moved = math.sqrt(sum(float((with_z[n].double() - without[n]).square().sum()) for n in with_z))
    assert moved <= max_grad_norm * (1 + 1e-5)


def test_integer_gradients_are_refused_not_wrapped_around():
    # the example: 2**32 squared wraps to 0 in int64, leaving a norm of 4.3e9
    grads = {"w": torch.tensor([[2**32, 0], [3, 4]])}
    with pytest.raises(TypeError, match=r"grads\['w'\] must be a floating-point tensor"):
        clip_per_sample(grads, max_grad_norm=1.0)
    with pytest.raises(TypeError, match=r"grads\['w'\] must be a floating-point tensor"):
        clip_per_sample({"w": grads["w"].int()}, max_grad_norm=1.0)
    with pytest.raises(TypeError, match=r"grad_sum\['w'\] must be a floating-point tensor"):
        add_noise({"w": torch.tensor([1, 2])}, max_grad_norm=1.0, noise_multiplier=1.0,
                  generator=_gen())  # fmt: skip


def test_numpy_gradients_are_refused_naming_the_parameter():
    with pytest.raises(TypeError, match=r"grads\['w'\] must be a torch.Tensor"):
        clip_per_sample({"w": torch.ones(2, 3).numpy()}, max_grad_norm=1.0)
    with pytest.raises(TypeError, match=r"grad_sum\['w'\] must be a torch.Tensor"):
        add_noise({"w": torch.ones(3).numpy()}, max_grad_norm=1.0, noise_multiplier=1.0,
                  generator=_gen())  # fmt: skip


@pytest.mark.parametrize("bad", [math.inf, -math.inf, math.nan])
def test_a_non_finite_per_sample_gradient_is_refused_naming_the_example(bad):
    grads = {"w": torch.ones(4, 3), "b": torch.ones(4, 1)}
    grads["b"][2, 0] = bad
    with pytest.raises(ValueError, match="the gradient of example 2 .* must be finite"):
        clip_per_sample(grads, max_grad_norm=1.0)
    with pytest.raises(ValueError, match=r"grad_sum\['b'\] must be finite"):
        add_noise({"b": grads["b"][2]}, max_grad_norm=1.0, noise_multiplier=1.0, generator=_gen())


def _loss_with_infinite_gradient(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """A finite loss (0) whose gradient is inf for the examples labelled 1: d sqrt(z) / dz at 0."""
    shift = (target != 1).to(output.dtype)  # sqrt(1) for the others: a finite slope
    z = output[:, 0] - output[:, 0].detach() + shift
    return (z.sqrt() - shift.sqrt()).mean()


@pytest.mark.parametrize("method", ["ghost", "hooks", "vmap", "loop"])
def test_a_finite_loss_with_an_infinite_gradient_never_reaches_the_weights(method):
    # Prepare
    model = MLP(4, 3, 2, generator=_gen(0))
    before = [p.detach().clone() for p in model.parameters()]
    x, y = torch.randn(3, 4, generator=_gen(1)), torch.tensor([0, 1, 0])
    # Execute / Assert: example 1 is named, the weights are untouched
    with pytest.raises(ValueError, match="the gradient of example 1 .* must be finite"):
        dp_sgd_step(model, _loss_with_infinite_gradient, x, y, lr=0.1, max_grad_norm=1.0,
                    noise_multiplier=1.0, expected_batch_size=3, generator=_gen(), method=method)  # fmt: skip
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_a_non_finite_loss_names_its_cause_weights_data_or_loss():
    step = {"lr": 0.1, "max_grad_norm": 1.0, "noise_multiplier": 1.0, "expected_batch_size": 3}
    x, y = torch.randn(3, 4, generator=_gen(1)), torch.tensor([0, 1, 0])
    broken = MLP(4, 3, 2, generator=_gen(0))
    with torch.no_grad():
        broken.fc2.bias[0] = math.nan
    with pytest.raises(ValueError, match=r"the model's weights must be finite.*fc2\.bias"):
        dp_sgd_step(broken, LOSS, x, y, generator=_gen(), **step)
    model = MLP(4, 3, 2, generator=_gen(0))
    with pytest.raises(ValueError, match="loss_fn.* must be finite on finite data and weights"):
        dp_sgd_step(model, lambda out, t: out.sum() * math.inf, x, y, generator=_gen(), **step)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"lr": 1e300}, r"lr \* \(noise_multiplier \+ 1\)"),
        ({"noise_multiplier": 1e300}, r"noise_multiplier \* max_grad_norm / expected_batch_size"),
        ({"max_grad_norm": 1e300}, r"noise_multiplier \* max_grad_norm / expected_batch_size"),
    ],
)
def test_hyperparameters_that_overflow_the_step_are_refused_by_name(changes, match):
    step = {"lr": 0.1, "max_grad_norm": 1.0, "noise_multiplier": 1.0, "expected_batch_size": 3}
    model = MLP(4, 3, 2, generator=_gen(0))
    x, y = torch.randn(3, 4, generator=_gen(1)), torch.tensor([0, 1, 0])
    with pytest.raises(ValueError, match=match + ".* must be at most 3.4e"):
        dp_sgd_step(model, LOSS, x, y, generator=_gen(), **{**step, **changes})
    train = {k: v for k, v in {**step, **changes}.items() if k != "expected_batch_size"}
    with pytest.raises(ValueError, match=match):  # train_dp_sgd checks once, before step 1
        train_dp_sgd(model, x, y, settings=DPSGD(sample_rate=1.0, epochs=1, **train),
                     delta=1e-5, generator=_gen(), progress=False)  # fmt: skip


@pytest.mark.parametrize("half", ["x_test", "y_test"])
def test_train_dp_sgd_refuses_half_an_evaluation_set_before_any_step(half):
    # Prepare: a test set with only one of its two halves given
    model = LogisticRegression(2, 2)
    before = [p.detach().clone() for p in model.parameters()]
    x, y = torch.randn(8, 2), torch.tensor([0, 1] * 4)
    dp = DPSGD(sample_rate=0.5, noise_multiplier=1.0, max_grad_norm=1.0, lr=0.5, epochs=1)
    # Execute / Assert: refused like train's, and no weight moved
    with pytest.raises(ValueError, match="x_test and y_test must be both given or both None"):
        train_dp_sgd(
            model, x, y, settings=dp, delta=1e-5, generator=torch.Generator().manual_seed(0),
            progress=False, **{half: x if half == "x_test" else y},
        )  # fmt: skip
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_train_dp_sgd_with_both_halves_records_the_evaluation_every_epoch():
    x, y = torch.randn(8, 2), torch.tensor([0, 1] * 4)
    history = train_dp_sgd(
        LogisticRegression(2, 2), x, y,
        settings=DPSGD(sample_rate=0.5, noise_multiplier=1.0, max_grad_norm=1.0, lr=0.5, epochs=2),
        delta=1e-5, generator=torch.Generator().manual_seed(0), progress=False,
        x_test=x, y_test=y,
    )  # fmt: skip
    assert len(history.test_loss) == len(history.test_accuracy) == 2
