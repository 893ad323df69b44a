"""Tests of the secure-aggregation toy: masks cancel, single uploads reveal nothing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from fl_dp_lab.federated.secure_aggregation import (
    MAX_CLIENTS,
    MODULUS,
    decode,
    encode,
    mask_update,
    pairwise_seeds,
    secure_sum,
    unmask_sum,
)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@settings(max_examples=25, deadline=None)
@given(clients=st.integers(2, 6), size=st.integers(1, 20), seed=st.integers(0, 2**31 - 1))
def test_masks_cancel_exactly_in_the_sum(clients, size, seed):
    # fixed-point values (multiples of 2^-16) so the encoded sum is exact
    updates = torch.randint(-(2**20), 2**20, (clients, size), generator=_gen(seed)).double() / 2**16
    seeds = pairwise_seeds(clients, generator=_gen(seed + 1))
    masked = torch.stack([mask_update(encode(u), i, seeds) for i, u in enumerate(updates)])
    total = unmask_sum(masked, range(clients), seeds)
    assert torch.equal(total, encode(updates.sum(0)))
    assert torch.equal(decode(total), updates.sum(0))


def test_secure_sum_with_a_dropped_client_returns_the_survivors_sum():
    updates = torch.randn(5, 30, generator=_gen(2), dtype=torch.float64)
    result = secure_sum(updates, generator=_gen(3), dropped=[1, 3])
    torch.testing.assert_close(result, updates[[0, 2, 4]].sum(0), atol=5 * 2**-16, rtol=0)


def test_without_revealed_seeds_a_dropout_leaves_garbage():
    # the failure the dropout recovery exists for: summing survivors alone does not cancel
    updates = torch.zeros(3, 50, dtype=torch.float64)
    seeds = pairwise_seeds(3, generator=_gen(4))
    masked = torch.stack([mask_update(encode(u), i, seeds) for i, u in enumerate(updates)])
    naive = masked[[0, 2]].sum(0) % MODULUS
    assert (decode(naive).abs() > 1.0).float().mean() > 0.9
    assert torch.equal(unmask_sum(masked, [0, 2], seeds), torch.zeros(50, dtype=torch.long))


def test_a_single_masked_update_is_statistically_unrelated_to_the_real_one():
    # Prepare: two very different updates for client 0 of 4; same masks (seed 5)
    seeds = pairwise_seeds(4, generator=_gen(5))
    size = 20_000
    real = torch.linspace(-3.0, 3.0, size, dtype=torch.float64)
    masked_real = mask_update(encode(real), 0, seeds).double() / MODULUS
    masked_zero = mask_update(encode(torch.zeros(size, dtype=torch.float64)), 0, seeds)
    # Assert: the upload is uniform on [0, M) (KS test at 1 %) and uncorrelated with the update
    assert stats.kstest(masked_real.numpy(), "uniform").pvalue > 0.01
    corr = np.corrcoef(real.numpy(), masked_real.numpy())[0, 1]
    assert abs(corr) < 4 / np.sqrt(size)  # 4 standard errors under independence
    # the unmasked encoding would be perfectly correlated: the test can fail
    assert abs(np.corrcoef(real.numpy(), encode(real).double().numpy())[0, 1]) > 0.5
    assert not torch.equal(masked_zero, encode(torch.zeros(size, dtype=torch.float64)))


def test_bad_input_is_refused():
    seeds = pairwise_seeds(3, generator=_gen())
    with pytest.raises(TypeError, match="update must be a floating-point"):
        encode(torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="client must be an integer <= 2"):
        mask_update(encode(torch.zeros(2)), 3, seeds)
    with pytest.raises(ValueError, match="survivors must be at least one"):
        unmask_sum(torch.zeros(3, 2, dtype=torch.long), [], seeds)
    with pytest.raises(ValueError, match="num_clients must be an integer >= 2"):
        pairwise_seeds(1, generator=_gen())


def test_values_the_fixed_point_cannot_hold_are_refused_not_wrapped():
    gen = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="update must be finite"):
        encode(torch.tensor([float("nan"), 1.0]))
    with pytest.raises(ValueError, match="update must be within ±32768"):
        encode(torch.tensor([1e6]))
    with pytest.raises(ValueError, match="the sum of updates must be within ±32768"):
        secure_sum(torch.tensor([[40_000.0], [40_000.0]]) / 2, generator=gen)  # sum 40,000
    with pytest.raises(ValueError, match="scale must be an integer >= 1"):
        encode(torch.tensor([1.0]), scale=0)
    with pytest.raises(TypeError, match="encoded must be an integer torch.Tensor"):
        decode(torch.tensor([1.0]))


# --- Distributed DP: noise shares added before masking (noisy_encode) -------------------------


def test_noise_shares_make_the_decoded_sum_noisy_with_the_central_std():
    # Prepare: 5 clients, sigma = 1.5, C = 2: each adds N(0, (sigma C)^2 / 5) before masking
    from fl_dp_lab.federated.secure_aggregation import noisy_encode

    clients, size, sigma, c = 5, 40_000, 1.5, 2.0
    updates = torch.randn(clients, size, generator=_gen(7), dtype=torch.float64) * 0.1
    seeds = pairwise_seeds(clients, generator=_gen(8))
    shares = [
        noisy_encode(u, noise_multiplier=sigma, clip_norm=c, num_clients=clients, generator=_gen(20 + i))
        for i, u in enumerate(updates)
    ]  # fmt: skip
    # Execute: what the server decodes after unmasking
    decoded = decode(unmask_sum(torch.stack([mask_update(s, i, seeds) for i, s in enumerate(shares)]),
                                range(clients), seeds))  # fmt: skip
    noise = decoded - updates.sum(0)
    # Assert: the noise on the sum has std sigma C = 3 (SE of a std from 40,000 draws: 0.35 %;
    # the band of 2 % would miss a per-client std of sigma C, off by sqrt(5), or sigma C / 5)
    assert abs(float(noise.std()) / (sigma * c) - 1) < 0.02
    assert abs(float(noise.mean())) < 4 * sigma * c / size**0.5
    # and without shares the server would decode the exact sum (to the fixed-point step)
    exact = decode(unmask_sum(torch.stack([mask_update(encode(u), i, seeds)
                                           for i, u in enumerate(updates)]), range(clients), seeds))  # fmt: skip
    assert float((exact - updates.sum(0)).abs().max()) <= clients * 2**-16


def test_noise_share_is_the_clients_own_draw_and_validated():
    from fl_dp_lab.federated.secure_aggregation import noisy_encode

    x = torch.zeros(1000, dtype=torch.float64)
    setting = dict(noise_multiplier=1.0, clip_norm=1.0, num_clients=4)
    a = noisy_encode(x, generator=_gen(1), **setting)
    assert torch.equal(
        a, noisy_encode(x, generator=_gen(1), **setting)
    )  # same generator, same share
    assert not torch.equal(a, noisy_encode(x, generator=_gen(2), **setting))
    assert abs(float(decode(a).std()) - 0.5) < 0.05  # sigma C / sqrt(4), 1,000 draws
    with pytest.raises(ValueError, match="noise_multiplier must be"):
        noisy_encode(x, generator=_gen(), **{**setting, "noise_multiplier": -1.0})
    with pytest.raises(ValueError, match="clip_norm must be"):
        noisy_encode(x, generator=_gen(), **{**setting, "clip_norm": 0.0})
    with pytest.raises(ValueError, match="num_clients must be"):
        noisy_encode(x, generator=_gen(), **{**setting, "num_clients": 0})
    with pytest.raises(TypeError, match="generator must be"):
        noisy_encode(x, generator=None, **setting)


def _uploads(updates: torch.Tensor, seeds: torch.Tensor) -> torch.Tensor:
    return torch.stack([mask_update(encode(u), i, seeds) for i, u in enumerate(updates)])


def test_seed_matrices_that_would_leave_an_upload_unmasked_are_refused_by_name():
    # Prepare: with every pair sharing one seed, client 1 of 3 adds m(s_12) and subtracts
    # m(s_01) = m(s_12): its upload was its update in the clear (the case)
    x = encode(torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64))
    same = torch.ones(3, 3, dtype=torch.long) - torch.eye(3, dtype=torch.long)
    good = pairwise_seeds(3, generator=_gen(7))
    asymmetric = good.clone()
    asymmetric[0, 1] += 1
    diagonal = good + torch.eye(3, dtype=torch.long)
    bad = [
        (same, ValueError, "seeds must be distinct for every pair"),
        (torch.ones(3, 3, dtype=torch.bool), TypeError, "seeds must be an integer tensor"),
        (good.double(), TypeError, "seeds must be an integer tensor"),
        (asymmetric, ValueError, "seeds must be symmetric"),
        (diagonal, ValueError, "seeds must be zero on the diagonal"),
        (good[:2], ValueError, "seeds must be a square matrix"),
        (good[:1, :1], ValueError, "seeds must be a square matrix"),
        (good.numpy(), TypeError, "seeds must be a square integer torch.Tensor"),
        (None, TypeError, "seeds must be"),
    ]
    masked = _uploads(torch.zeros(3, 3, dtype=torch.float64), good)
    # Execute / Assert: every entry point that takes seeds refuses each of them
    for seeds, error, match in bad:
        with pytest.raises(error, match=match):
            mask_update(x, 1, seeds)
        with pytest.raises(error, match=match):
            unmask_sum(masked, range(3), seeds)


def test_unmask_sum_needs_one_seed_row_per_masked_row_and_integer_uploads():
    seeds = pairwise_seeds(3, generator=_gen(8))
    masked = _uploads(torch.zeros(3, 2, dtype=torch.float64), seeds)
    with pytest.raises(ValueError, match=r"masked must be one row per client \(4\)"):
        unmask_sum(masked, range(3), pairwise_seeds(4, generator=_gen(8)))
    for wrong in (masked.double(), masked.bool(), masked.numpy(), masked[0]):
        with pytest.raises(TypeError, match="masked must be a 2-D int64 tensor"):
            unmask_sum(wrong, range(3), seeds)
    with pytest.raises(ValueError, match="survivors must be an integer <= 2"):
        unmask_sum(masked, [0, 3], seeds)
    with pytest.raises(TypeError, match="survivors must be an integer"):
        unmask_sum(masked, [0, 1.0], seeds)
    # a tensor of ids (as poisson_client_sample returns) is fine
    assert torch.equal(unmask_sum(masked, torch.tensor([0, 2]), seeds), torch.zeros(2).long())


def test_fixed_point_range_is_checked_after_rounding():
    # 32767.999995 * 2^16 rounds to 2^31: it wrapped to -32768 (range checked before rounding)
    with pytest.raises(ValueError, match="update must be within ±32768 once rounded"):
        encode(torch.tensor([32767.999995], dtype=torch.float64))
    below = 32767.999992  # rounds to 2^31 - 1: representable, and decodes to itself
    assert decode(encode(torch.tensor([below], dtype=torch.float64))).item() == pytest.approx(
        below, abs=2**-17
    )
    # the sum's bound uses the rounded values too: 2 x 16383.9999962 round to 2 x (2^30 - 0)
    # ... whose sum is 2^31 = M/2, out of range though the float sum is below 32768
    pair = torch.full((2, 1), 16383.9999962, dtype=torch.float64)
    assert float(pair.sum()) < 32768
    with pytest.raises(ValueError, match="the sum of updates must be within ±32768"):
        secure_sum(pair, generator=_gen())
    with pytest.raises(ValueError, match="scale must be an integer <= 2147483648"):
        encode(torch.tensor([1.0]), scale=10**300)


def test_secure_sum_refuses_dropped_ids_that_name_no_client_and_dropping_everyone():
    updates = torch.zeros(3, 2, dtype=torch.float64)
    for dropped in ([3], [-1], [0, 7]):
        with pytest.raises(ValueError, match="dropped must be an integer"):
            secure_sum(updates, generator=_gen(), dropped=dropped)
    with pytest.raises(TypeError, match="dropped must be"):
        secure_sum(updates, generator=_gen(), dropped=[1.0])
    with pytest.raises(TypeError, match="dropped must be a list of client ids"):
        secure_sum(updates, generator=_gen(), dropped=1)
    with pytest.raises(ValueError, match=r"dropped must be a list leaving at least one client"):
        secure_sum(updates, generator=_gen(), dropped=[0, 1, 2])
    with pytest.raises(TypeError, match="updates must be a floating-point torch.Tensor"):
        secure_sum(updates.long(), generator=_gen())
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        secure_sum(updates, generator=None)


def test_huge_or_absurd_sizes_are_refused_before_any_work():
    # 1e300 in an update, or 10^300 clients, are named errors, not raw torch errors or a hang
    with pytest.raises(ValueError, match="updates must be within ±32768"):
        secure_sum(torch.tensor([[1e300], [0.0]], dtype=torch.float64), generator=_gen())
    with pytest.raises(ValueError, match="updates must be finite"):
        secure_sum(torch.tensor([[float("inf")], [0.0]]), generator=_gen())
    with pytest.raises(ValueError, match="num_clients must be an integer <= 2000"):
        pairwise_seeds(10**300, generator=_gen())
    with pytest.raises(ValueError, match="updates must be of shape"):
        secure_sum(torch.zeros(MAX_CLIENTS + 1, 1), generator=_gen())


def test_equal_pair_seeds_are_refused_and_never_drawn():
    # client 1 of 3 with s_01 = s_12 adds and subtracts the same mask: its upload is in the clear
    upper = torch.tensor([[0, 5, 7], [0, 0, 5], [0, 0, 0]])
    with pytest.raises(ValueError, match="seeds must be distinct for every pair of clients"):
        mask_update(encode(torch.zeros(2)), 1, upper + upper.T)
    # seeds equal in their low 32 bits are different seeds: the masks read all 64 bits
    upper = torch.tensor([[0, 1, 7], [0, 0, 2**40 + 1], [0, 0, 0]])
    x = encode(torch.ones(50))
    assert not torch.equal(mask_update(x, 1, upper + upper.T), x)
    # the largest matrix pairwise_seeds draws has distinct seeds (redrawn if not)
    seeds = pairwise_seeds(MAX_CLIENTS, generator=_gen(9))
    rows, cols = torch.triu_indices(MAX_CLIENTS, MAX_CLIENTS, offset=1)
    assert len(torch.unique(seeds[rows, cols])) == MAX_CLIENTS * (MAX_CLIENTS - 1) // 2
