"""Tests of distributed_dp: exact integer noise, rounding, modular wrap, the sum's accountant."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from fl_dp_lab import accounting
from fl_dp_lab.federated.distributed_dp import (
    discrete_gaussian,
    discrete_gaussian_pmf,
    distributed_discrete_gaussian_epsilon,
    distributed_discrete_gaussian_rdp,
    noise_share_std,
    rounded_sensitivity,
    skellam,
    stochastic_round,
    sum_closeness_tau,
    sum_divergence,
    unwrap,
    wrap,
)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _reference_pmf(sigma_squared: float, radius: int) -> tuple[np.ndarray, np.ndarray]:
    """N_Z(0, sigma^2) on [-radius, radius], normalised by a plain sum (written out here)."""
    support = np.arange(-radius, radius + 1)
    weights = np.array([math.exp(-(k * k) / (2 * sigma_squared)) for k in support])
    return support, weights / weights.sum()


def _chi_square_pvalue(samples: np.ndarray, support: np.ndarray, pmf: np.ndarray) -> float:
    """Chi-square goodness of fit, merging the tails into two cells of expected count >= 5."""
    n = len(samples)
    expected = pmf * n
    keep = expected >= 5
    low, high = support[keep].min(), support[keep].max()
    observed = np.array([(samples < low).sum()] + [(samples == k).sum() for k in support[keep]]
                        + [(samples > high).sum()])  # fmt: skip
    exp = np.concatenate([[pmf[support < low].sum()], pmf[keep], [pmf[support > high].sum()]]) * n
    cells = exp > 0
    return float(stats.chisquare(observed[cells], exp[cells] * observed[cells].sum()
                                 / exp[cells].sum()).pvalue)  # fmt: skip


# --- the discrete Gaussian sampler ---------------------------------------------------------


@pytest.mark.parametrize("sigma_squared", [0.3, 2.25, 50.0])
def test_discrete_gaussian_samples_follow_the_pmf(sigma_squared):
    # Prepare: 40,000 exact draws at seed 1, and the pmf summed out in the test
    samples = discrete_gaussian(40_000, sigma_squared=sigma_squared, generator=_gen(1)).numpy()
    support, pmf = _reference_pmf(sigma_squared, int(12 * math.sqrt(sigma_squared)) + 12)
    variance = float((support**2 * pmf).sum())
    # Assert: goodness of fit at 0.1 %, mean and variance within 4 standard errors
    assert _chi_square_pvalue(samples, support, pmf) > 1e-3
    se_mean = math.sqrt(variance / len(samples))
    assert abs(samples.mean()) < 4 * se_mean
    fourth = float((support**4 * pmf).sum())
    se_var = math.sqrt((fourth - variance**2) / len(samples))
    assert abs(samples.var() - variance) < 4 * se_var
    # tails: P(|X| >= 2 sigma) matches the pmf within 4 binomial standard errors
    tail = float(pmf[np.abs(support) >= 2 * math.sqrt(sigma_squared)].sum())
    observed = float((np.abs(samples) >= 2 * math.sqrt(sigma_squared)).mean())
    assert abs(observed - tail) < 4 * math.sqrt(tail * (1 - tail) / len(samples))


def test_the_fit_test_rejects_a_rounded_continuous_gaussian():
    # the shortcut the issue forbids: round(N(0, sigma^2)) is not N_Z(0, sigma^2); at
    # sigma^2 = 0.3 its P[0] is 0.64 against 0.72, and the same test must see it
    rounded = torch.round(torch.randn(40_000, generator=_gen(2), dtype=torch.float64)
                          * math.sqrt(0.3)).numpy().astype(np.int64)  # fmt: skip
    support, pmf = _reference_pmf(0.3, 12)
    assert _chi_square_pvalue(rounded, support, pmf) < 1e-6


def test_pmf_matches_the_plain_sum_and_its_variance_is_sigma_squared_above_one():
    support, reference = _reference_pmf(3.7, 100)
    ours = discrete_gaussian_pmf(support, sigma_squared=3.7)
    np.testing.assert_allclose(ours, reference, rtol=1e-12, atol=1e-300)
    # the scale is the variance but for terms in exp(-2 pi^2 sigma^2): 2.1e-7 at sigma = 1
    for s2, band in ((1.0, 3e-7), (4.0, 1e-12)):
        support, p = _reference_pmf(s2, 200)
        assert abs(float((support**2 * p).sum()) / s2 - 1) < band
    support, p = _reference_pmf(0.25, 50)
    assert float((support**2 * p).sum()) < 0.22  # at sigma = 1/2 it is 0.215, not 0.25


def test_sampler_is_reproducible_takes_fractions_and_zero():
    a = discrete_gaussian((3, 7), sigma_squared=Fraction(10, 3), generator=_gen(5))
    b = discrete_gaussian((3, 7), sigma_squared=Fraction(10, 3), generator=_gen(5))
    assert torch.equal(a, b) and a.shape == (3, 7) and a.dtype == torch.int64
    assert not torch.equal(a, discrete_gaussian((3, 7), sigma_squared=10 / 3, generator=_gen(6)))
    assert torch.equal(
        discrete_gaussian(4, sigma_squared=0, generator=_gen()), torch.zeros(4).long()
    )


def test_large_scales_keep_their_variance():
    # sigma^2 = 250,000 (std 500, the size of a share in integer units)
    x = discrete_gaussian(20_000, sigma_squared=2.5e5, generator=_gen(3)).double()
    se = 2.5e5 * math.sqrt(2 / 20_000)  # SE of a sample variance of a near-normal
    assert abs(float(x.var()) - 2.5e5) < 4 * se


# --- Skellam, rounding, wrap-around --------------------------------------------------------


def test_skellam_matches_scipy_and_sums_to_the_planned_variance():
    # Prepare: 40,000 draws of variance 6 against scipy's Skellam(3, 3)
    x = skellam(40_000, variance=6.0, generator=_gen(4)).numpy()
    support = np.arange(-40, 41)
    assert _chi_square_pvalue(x, support, stats.skellam.pmf(support, 3.0, 3.0)) > 1e-3
    # 10 shares of variance 0.6 sum to variance 6 (SE of the variance ~0.046)
    shares = skellam((10, 40_000), variance=0.6, generator=_gen(5)).sum(0).double()
    assert abs(float(shares.var()) - 6.0) < 4 * 6.0 * math.sqrt(2 / 40_000 + 1 / (6 * 40_000))


def test_stochastic_rounding_is_unbiased_and_moves_less_than_one():
    x = torch.full((100_000,), 2.3, dtype=torch.float64)
    r = stochastic_round(x, generator=_gen(6))
    assert set(r.unique().tolist()) == {2, 3}
    assert abs(float(r.double().mean()) - 2.3) < 4 * math.sqrt(0.21 / 100_000)
    # nearest rounding would be biased by -0.3: the band above would catch it
    assert abs(float(torch.round(x).mean()) - 2.3) > 4 * math.sqrt(0.21 / 100_000)
    y = torch.randn(1000, generator=_gen(7), dtype=torch.float64) * 50
    assert float((stochastic_round(y, generator=_gen(8)).double() - y).abs().max()) < 1
    assert float(torch.linalg.vector_norm(stochastic_round(y, generator=_gen(9)).double())) <= \
        float(torch.linalg.vector_norm(y)) + math.sqrt(1000)  # fmt: skip


@settings(max_examples=50, deadline=None)
@given(values=st.lists(st.integers(-(2**40), 2**40), min_size=1, max_size=20),
       bits=st.integers(2, 40))  # fmt: skip
def test_unwrap_inverts_wrap_in_range_and_is_off_by_multiples_of_the_modulus_outside(values, bits):
    x = torch.tensor(values)
    back = unwrap(wrap(x, bits=bits), bits=bits)
    half = 2 ** (bits - 1)
    inside = (x >= -half) & (x < half)
    assert torch.equal(back[inside], x[inside])
    assert bool(((back - x) % 2**bits == 0).all())
    assert bool(((back >= -half) & (back < half)).all())


# --- shares, dropout, the accountant -------------------------------------------------------


def test_m_shares_sum_to_the_variance_the_accountant_assumes_and_a_planted_bug_is_caught():
    # Prepare: m = 10 clients, sigma C = 30 integer units; shares of std 30 / sqrt(10)
    m, n, total_std = 10, 10_000, 30.0
    std = noise_share_std(noise_multiplier=1.5, clip_norm=20.0, num_clients=m)
    assert std == pytest.approx(total_std / math.sqrt(m))
    shares = discrete_gaussian((m, n), sigma_squared=std**2, generator=_gen(10)).double()
    band = 4 * total_std**2 * math.sqrt(2 / n)  # 4 SE of a sample variance
    # Assert: the sum has variance (sigma C)^2
    assert abs(float(shares.sum(0).var()) - total_std**2) < band
    # a share not divided by sqrt(m) gives m times the variance: far outside the band
    buggy = discrete_gaussian((m, n), sigma_squared=total_std**2, generator=_gen(11)).double()
    assert abs(float(buggy.sum(0).var()) - total_std**2) > 100 * band


def test_dropout_over_provisioning_restores_the_noise_of_the_expected_survivors():
    factor = noise_share_std(noise_multiplier=1.0, clip_norm=1.0, num_clients=100,
                             dropout_rate=0.1) / noise_share_std(
        noise_multiplier=1.0, clip_norm=1.0, num_clients=100)  # fmt: skip
    assert factor == pytest.approx(1 / math.sqrt(0.9)) and round(factor, 4) == 1.0541
    std = noise_share_std(noise_multiplier=1.0, clip_norm=10.0, num_clients=20, dropout_rate=0.25)
    survivors = discrete_gaussian((15, 10_000), sigma_squared=std**2, generator=_gen(12)).double()
    assert abs(float(survivors.sum(0).var()) / 100.0 - 1) < 4 * math.sqrt(2 / 10_000)


@pytest.mark.parametrize(
    ("sigma_squared", "clients"), [(0.25, 2), (0.25, 10), (0.5, 10), (1.0, 30)]
)
def test_measured_gap_of_the_sum_stays_below_the_published_tau(sigma_squared, clients):
    gap, tv = sum_divergence(sigma_squared=sigma_squared, num_clients=clients)
    tau = sum_closeness_tau(sigma_squared=sigma_squared, num_clients=clients)
    assert 0 < gap <= tau
    assert tv <= 1 - math.exp(-tau) + 1e-12  # pointwise ratios within e^{+-tau} bound the TV too


def test_sum_of_two_shares_matches_a_direct_double_sum():
    # an independent reference for the convolution behind sum_divergence (m = 2, sigma^2 = 0.3)
    support, p = _reference_pmf(0.3, 15)
    direct = {}
    for i, a in enumerate(support):
        for j, b in enumerate(support):
            direct[a + b] = direct.get(a + b, 0.0) + p[i] * p[j]
    values = np.arange(-10, 11)
    summed = np.array([direct[v] for v in values])
    target = discrete_gaussian_pmf(values, sigma_squared=0.6)
    tv_direct = 0.5 * np.abs(summed - target).sum()
    _, tv = sum_divergence(sigma_squared=0.3, num_clients=2)
    assert tv == pytest.approx(tv_direct, rel=1e-6)
    assert tv > 1e-3  # at sigma^2 = 0.3 the sum is visibly not a discrete Gaussian


def test_accountant_reduces_to_the_gaussian_rdp_when_tau_vanishes_and_pays_for_it_otherwise():
    # Prepare: share scale 9 (sigma = 3: tau < 1e-30), 50 clients, D2 = 15 integer units
    dg, continuous = distributed_discrete_gaussian_epsilon(
        sigma_squared=9.0, num_clients=50, l2_sensitivity=15.0, l1_sensitivity=15.0 * 10,
        dim=100, delta=1e-5, steps=10,
    )  # fmt: skip
    assert dg == pytest.approx(continuous, rel=1e-9)
    # the continuous part is the course's RDP accountant at q = 1, sigma = s / D2
    reference = accounting.epsilon(noise_multiplier=math.sqrt(50 * 9.0) / 15.0, sample_rate=1.0,
                                   steps=10, delta=1e-5, accountant="rdp")  # fmt: skip
    assert continuous == pytest.approx(reference, rel=0.02)
    # small shares (sigma^2 = 0.3): tau = 0.6 per coordinate and the epsilon grows
    dg, continuous = distributed_discrete_gaussian_epsilon(
        sigma_squared=0.3, num_clients=50, l2_sensitivity=2.0, l1_sensitivity=2.0, dim=1,
        delta=1e-5,
    )  # fmt: skip
    assert dg > continuous + 0.1
    rdp = distributed_discrete_gaussian_rdp(orders=[2.0, 8.0], sigma_squared=0.3, num_clients=50,
                                            l2_sensitivity=2.0, l1_sensitivity=2.0, dim=1)  # fmt: skip
    tau = sum_closeness_tau(sigma_squared=0.3, num_clients=50)
    gaussian = np.array([2.0, 8.0]) * 4.0 / (2 * 50 * 0.3)
    assert np.all(rdp > gaussian) and np.all(rdp <= gaussian + tau)


def test_rounded_sensitivity_bounds_every_rounding():
    # worst case: every coordinate of a vector of norm c rounded away from zero
    c, d = 10.0, 25
    x = torch.full((d,), c / math.sqrt(d), dtype=torch.float64) + 0.999
    x = x * c / float(torch.linalg.vector_norm(x))
    l2, l1 = rounded_sensitivity(scaled_clip_norm=c, dim=d)
    for seed in range(20):
        r = stochastic_round(x, generator=_gen(seed)).double()
        assert float(torch.linalg.vector_norm(r)) <= l2 and float(r.abs().sum()) <= l1


def test_bad_input_is_refused_by_name():
    with pytest.raises(ValueError, match=r"sigma_squared must be in \[0, "):
        discrete_gaussian(3, sigma_squared=-1.0, generator=_gen())
    with pytest.raises(TypeError, match="sigma_squared must be a real number"):
        discrete_gaussian(3, sigma_squared="1", generator=_gen())
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        discrete_gaussian(3, sigma_squared=1.0, generator=None)
    with pytest.raises(ValueError, match=r"variance must be in \[0, "):
        skellam(3, variance=-2.0, generator=_gen())
    with pytest.raises(TypeError, match="values must be an integer torch.Tensor"):
        wrap(torch.tensor([1.5]), bits=8)
    with pytest.raises(ValueError, match="bits must be an integer <= 62"):
        unwrap(torch.tensor([1]), bits=64)
    with pytest.raises(ValueError, match="num_clients must be an integer >= 1"):
        noise_share_std(noise_multiplier=1.0, clip_norm=1.0, num_clients=0)
    with pytest.raises(ValueError, match=r"dropout_rate must be in \[0, 1\)"):
        noise_share_std(noise_multiplier=1.0, clip_norm=1.0, num_clients=3, dropout_rate=1.0)
    with pytest.raises(ValueError, match=r"sigma_squared must be in \[0.25, "):
        sum_closeness_tau(sigma_squared=0.1, num_clients=3)
    with pytest.raises(ValueError, match="values must be finite"):
        stochastic_round(torch.tensor([float("nan")]), generator=_gen())
