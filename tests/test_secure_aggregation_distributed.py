"""Distributed DP through the secure-aggregation toy: integer noise shares carried end to end."""

from __future__ import annotations

import math

import pytest
import torch

from fl_dp_lab.federated.distributed_dp import noise_share_std, unwrap
from fl_dp_lab.federated.secure_aggregation import (
    MODULUS,
    distributed_dp_encode,
    distributed_dp_sum,
    mask_update,
    mask_updates,
    pairwise_seeds,
    unmask_sum,
)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_the_server_gets_exactly_the_noisy_sum_mod_m():
    # Prepare: 6 clients encode (clip, scale, round, + discrete Gaussian share) with own generators
    clients, size, scale = 6, 500, 256.0
    updates = torch.randn(clients, size, generator=_gen(1), dtype=torch.float64)
    uploads = [
        distributed_dp_encode(u, clip_norm=5.0, scale=scale, share_variance=400.0,
                              num_clients=clients, generator=_gen(10 + i))
        for i, u in enumerate(updates)
    ]  # fmt: skip
    seeds = pairwise_seeds(clients, generator=_gen(2))
    masked = torch.stack([mask_update(y, i, seeds) for i, y in enumerate(uploads)])
    # Execute: the server unmasks the survivors 0, 2, 3, 5 (1 and 4 dropped)
    alive = [0, 2, 3, 5]
    total = unmask_sum(masked, alive, seeds)
    # Assert: bit for bit the sum of the survivors' integer uploads modulo M
    expected = torch.stack([uploads[i] for i in alive]).sum(0) % MODULUS
    assert torch.equal(total, expected)
    # and, read centred, the plain integer sum (no wrap-around happened)
    centred = torch.stack([unwrap(uploads[i], bits=32) for i in alive]).sum(0)
    assert torch.equal(unwrap(total, bits=32), centred)
    # a masked upload alone is nothing like the client's integers
    assert not torch.equal(masked[0], uploads[0])


def test_a_thousand_clients_get_exactly_the_noisy_sum_mod_m_with_dropouts():
    # Prepare: m = 1,000 clients (the toy's old cap was 200), P = 6; each clips, scales,
    # rounds and adds an integer noise share (Skellam: the discrete Gaussian's exact sampler
    # is slower per call, and the masks do not care which integers they hide)
    clients, size = 1000, 6
    updates = torch.randn(clients, size, generator=_gen(11), dtype=torch.float64)
    uploads = torch.stack([
        distributed_dp_encode(u, clip_norm=1.0, scale=64.0, share_variance=2500.0,
                              num_clients=clients, generator=_gen(10_000 + i), noise="skellam")
        for i, u in enumerate(updates)
    ])  # fmt: skip
    seeds = pairwise_seeds(clients, generator=_gen(12))
    masked = mask_updates(uploads, seeds)  # mask_update for every client, seeds checked once
    assert torch.equal(masked[17], mask_update(uploads[17], 17, seeds))
    # Execute: 30 clients drop after masking; the server unmasks the 970 survivors
    dropped = set(torch.randperm(clients, generator=_gen(13))[:30].tolist())
    alive = [i for i in range(clients) if i not in dropped]
    total = unmask_sum(masked, alive, seeds)
    # Assert: bit for bit the survivors' noisy integer sum modulo M, and read centred, the
    # plain integer sum (no wrap-around)
    assert torch.equal(total, uploads[alive].sum(0) % MODULUS)
    assert torch.equal(unwrap(total, bits=32), unwrap(uploads[alive], bits=32).sum(0))
    # the noise is there: the decoded sum is not the sum of the rounded clipped updates
    assert float((unwrap(total, bits=32).double() / 64.0 - updates[alive].sum(0)).abs().max()) > 1
    # the planted bug -- the dropped clients' masks left in -- decodes to garbage
    naive = masked[alive].sum(0) % MODULUS
    assert not torch.equal(naive, total)


def test_without_noise_the_decoded_sum_is_the_clipped_sum_up_to_unbiased_rounding():
    updates = torch.randn(5, 4000, generator=_gen(3), dtype=torch.float64)
    norms = torch.linalg.vector_norm(updates, dim=1, keepdim=True)
    clipped = updates * torch.clamp(40.0 / norms, max=1.0)  # C = 40 clips every row (norm ~63)
    got = distributed_dp_sum(updates, clip_norm=40.0, noise_multiplier=0.0, scale=16.0,
                             generator=_gen(4))  # fmt: skip
    error = (got - clipped.sum(0)) * 16.0  # in integer units: 5 roundings, each moves < 1
    assert float(error.abs().max()) < 5
    assert abs(float(error.mean())) < 4 * math.sqrt(5 * 0.25 / 4000)  # unbiased (var <= 5/4)


@pytest.mark.parametrize("noise", ["discrete_gaussian", "skellam"])
def test_dropped_clients_take_their_noise_shares_with_them(noise):
    # Prepare: 8 clients with zero updates (rounding exact), sigma = 1, C = 1, scale 1024;
    # 3 drop, so the decoded sum carries 5 shares of variance D^2 / 8 each
    clients, size, scale = 8, 20_000, 1024.0
    zeros = torch.zeros(clients, size, dtype=torch.float64)
    got = distributed_dp_sum(zeros, clip_norm=1.0, noise_multiplier=1.0, scale=scale,
                             generator=_gen(5), dropped=[1, 4, 6], noise=noise)  # fmt: skip
    # the integer sum's sensitivity is s C + sqrt(P): the rounding can add up to 1 per entry
    sensitivity = scale + math.sqrt(size)
    share_var = noise_share_std(noise_multiplier=1.0, clip_norm=sensitivity, num_clients=clients)
    share_var = share_var**2
    measured = float((got * scale).var())
    band = 4 * math.sqrt(2 / size)  # relative SE of a sample variance, 4 times
    # Assert: (m - dropped) shares' variance, 5/8 of the sigma C the accountant planned for
    assert abs(measured / (5 * share_var) - 1) < band
    # the planted bug -- accounting as if all 8 shares arrived -- is far outside the band
    assert abs(measured / (clients * share_var) - 1) > 5 * band


def test_over_provisioned_shares_restore_the_planned_noise_when_the_expected_clients_drop():
    clients, size, scale = 8, 20_000, 1024.0
    zeros = torch.zeros(clients, size, dtype=torch.float64)
    got = distributed_dp_sum(zeros, clip_norm=1.0, noise_multiplier=1.0, scale=scale,
                             generator=_gen(6), dropped=[0, 7], dropout_rate=0.25)  # fmt: skip
    # 6 survivors x D^2 / (8 x 0.75) = D^2, D = s + sqrt(P): std sigma D / s in update units
    planned = (scale + math.sqrt(size)) / scale
    assert abs(float(got.std()) / planned - 1.0) < 4 * math.sqrt(1 / (2 * size))


def test_uploads_that_could_wrap_the_modulus_are_refused():
    x = torch.ones(3, dtype=torch.float64)
    with pytest.raises(ValueError, match="scale must be below"):
        distributed_dp_encode(x, clip_norm=1.0, scale=2.0**31, share_variance=0.0,
                              num_clients=2, generator=_gen())  # fmt: skip
    with pytest.raises(ValueError, match=r"the noisy share must be within \+-"):
        distributed_dp_encode(x, clip_norm=1.0, scale=1.0, share_variance=1e16,
                              num_clients=100, generator=_gen())  # fmt: skip
    with pytest.raises(ValueError, match="noise must be one of"):
        distributed_dp_encode(x, clip_norm=1.0, scale=1.0, share_variance=1.0,
                              num_clients=2, generator=_gen(), noise="gaussian")  # fmt: skip
    with pytest.raises(ValueError, match="share_variance must be in"):
        distributed_dp_encode(x, clip_norm=1.0, scale=1.0, share_variance=-1.0,
                              num_clients=2, generator=_gen())  # fmt: skip
    with pytest.raises(ValueError, match="dropped must be a list leaving at least one client"):
        distributed_dp_sum(torch.zeros(2, 3), clip_norm=1.0, noise_multiplier=1.0, scale=4.0,
                           generator=_gen(), dropped=[0, 1])  # fmt: skip
