"""Tests of fl_dp_lab.federated: the pieces, FedAvg and DP-FedAvg."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fl_dp_lab.federated import (
    assign_flat_parameters,
    clip_update,
    dp_aggregate,
    flatten_parameters,
    local_update,
    poisson_client_sample,
)
from fl_dp_lab.models import MLP, LogisticRegression


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_flatten_then_assign_round_trips():
    model = MLP(5, 3, 2, generator=_gen(0))
    flat = flatten_parameters(model)
    other = MLP(5, 3, 2, generator=_gen(1))
    assign_flat_parameters(other, flat)
    for (_, a), (_, b) in zip(model.named_parameters(), other.named_parameters(), strict=True):
        assert torch.equal(a, b)
    assert flat.shape == (5 * 3 + 3 + 3 * 2 + 2,)


def test_assign_rejects_wrong_shape():
    with pytest.raises(ValueError, match="flat must be"):
        assign_flat_parameters(LogisticRegression(4, 2), torch.zeros(9))


def test_local_update_matches_hand_written_sgd_and_leaves_model_untouched():
    # Prepare
    torch.manual_seed(0)
    x, y = torch.randn(7, 4), torch.randint(0, 3, (7,))
    model = LogisticRegression(4, 3, generator=_gen(2))
    before = flatten_parameters(model)
    # Execute
    update = local_update(model, x, y, epochs=2, batch_size=3, lr=0.5, generator=_gen(5))
    # Assert: replay the same batches with torch.optim.SGD
    reference = LogisticRegression(4, 3, generator=_gen(2))
    opt = torch.optim.SGD(reference.parameters(), lr=0.5)
    shuffle = _gen(5)
    for _ in range(2):
        for batch in torch.randperm(7, generator=shuffle).split(3):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(reference(x[batch]), y[batch]).backward()
            opt.step()
    torch.testing.assert_close(update, flatten_parameters(reference) - before)
    assert torch.equal(flatten_parameters(model), before)


@settings(max_examples=40, deadline=None)
@given(
    rows=st.integers(1, 6),
    cols=st.integers(1, 8),
    scale=st.floats(1e-3, 1e3),
    clip_norm=st.floats(1e-2, 10.0),
    seed=st.integers(0, 2**31 - 1),
)
def test_clipped_norms_are_at_most_clip_norm_and_small_updates_unchanged(
    rows, cols, scale, clip_norm, seed
):
    updates = torch.randn(rows, cols, generator=_gen(seed), dtype=torch.float64) * scale
    clipped = clip_update(updates, clip_norm=clip_norm)
    norms = clipped.norm(dim=1)
    assert bool((norms <= clip_norm * (1 + 1e-12)).all())
    small = updates.norm(dim=1) <= clip_norm
    torch.testing.assert_close(clipped[small], updates[small])
    # a clipped row points the same way as the original
    cosine = torch.nn.functional.cosine_similarity(clipped, updates, dim=1)
    torch.testing.assert_close(cosine, torch.ones_like(cosine), atol=1e-9, rtol=0)


def test_clip_update_keeps_zero_update_zero():
    assert torch.equal(clip_update(torch.zeros(3), clip_norm=1.0), torch.zeros(3))


def test_dp_aggregate_without_noise_is_clipped_sum_over_expected_clients():
    updates = torch.tensor([[3.0, 4.0], [0.3, 0.4], [0.0, 0.0]])
    out = dp_aggregate(
        updates, clip_norm=1.0, noise_multiplier=0.0, expected_clients=4.0, generator=_gen()
    )
    torch.testing.assert_close(out, torch.tensor([0.6 + 0.3, 0.8 + 0.4]) / 4.0)


def test_dp_aggregate_noise_std_is_sigma_c_over_expected_clients():
    # Prepare: all-zero updates, so the output is pure noise; 200,000 coordinates.
    updates = torch.zeros(3, 200_000, dtype=torch.float64)
    sigma, clip_norm, expected = 1.3, 0.7, 5.0
    # Execute (seed 11)
    out = dp_aggregate(
        updates,
        clip_norm=clip_norm,
        noise_multiplier=sigma,
        expected_clients=expected,
        generator=_gen(11),
    )
    # Assert: the sample std has relative standard error 1/sqrt(2n) = 0.16 %; a 1 % band
    # would fail for noise not divided by expected_clients or not scaled by C.
    target = sigma * clip_norm / expected
    assert abs(float(out.std()) / target - 1.0) < 0.01
    assert abs(float(out.mean())) < 5 * target / math.sqrt(out.numel())


def test_dp_aggregate_of_no_clients_is_pure_noise():
    out = dp_aggregate(
        torch.zeros(0, 4),
        clip_norm=1.0,
        noise_multiplier=1.0,
        expected_clients=2.0,
        generator=_gen(),
    )
    assert out.shape == (4,) and bool((out != 0).all())


def test_dp_aggregate_accepts_a_list_of_vectors():
    rows = [torch.tensor([1.0, 0.0]), torch.tensor([0.0, 2.0])]
    out = dp_aggregate(
        rows, clip_norm=1.0, noise_multiplier=0.0, expected_clients=2.0, generator=_gen()
    )
    torch.testing.assert_close(out, torch.tensor([0.5, 0.5]))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"clip_norm": 0.0}, ValueError, "clip_norm must be > 0"),
        ({"clip_norm": -1.0}, ValueError, "clip_norm must be > 0"),
        ({"noise_multiplier": -0.1}, ValueError, "noise_multiplier must be >= 0"),
        ({"expected_clients": 0}, ValueError, "expected_clients must be > 0"),
        ({"updates": []}, ValueError, "updates must be non-empty"),
        ({"updates": torch.zeros(3)}, ValueError, "updates must be a matrix"),
        ({"updates": torch.zeros(3, 0)}, ValueError, "updates must be a matrix"),
        ({"updates": [torch.zeros(2), torch.zeros(3)]}, ValueError, "vectors of one shape"),
        ({"updates": np.zeros((2, 2))}, TypeError, "updates must be a torch.Tensor"),
        ({"generator": 0}, TypeError, "generator must be a torch.Generator"),
    ],
)
def test_dp_aggregate_rejects_bad_input(kwargs, error, match):
    args = {
        "updates": torch.ones(2, 3),
        "clip_norm": 1.0,
        "noise_multiplier": 1.0,
        "expected_clients": 2.0,
        "generator": _gen(),
    }
    args.update(kwargs)
    updates = args.pop("updates")
    with pytest.raises(error, match=match):
        dp_aggregate(updates, **args)


def test_poisson_client_sample_rate_and_independence():
    # seed 3; 200 rounds of 1,000 clients at q = 0.05: mean 50, std of the mean 0.34
    gen = _gen(3)
    counts = [len(poisson_client_sample(1000, sample_rate=0.05, generator=gen)) for _ in range(200)]
    assert abs(np.mean(counts) - 50) < 2.0
    assert 4.0 < np.std(counts) < 9.0  # Binomial(1000, 0.05) std is 6.9; a fixed size gives 0


@pytest.mark.parametrize("rate", [0.0, -0.1, 1.5])
def test_poisson_client_sample_rejects_bad_rate(rate):
    with pytest.raises(ValueError, match="sample_rate must be"):
        poisson_client_sample(10, sample_rate=rate, generator=_gen())
