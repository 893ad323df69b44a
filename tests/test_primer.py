"""The primers' math (likelihood ratios, KL and Rényi divergences) and their exercise checks.

The closed forms in ``fl_dp_lab.mechanisms`` are checked against scipy's densities,
numerical integration (``scipy.integrate.quad``), Monte Carlo with stated bands, and
the RDP that ``fl_dp_lab.accounting`` computes for the Gaussian mechanism.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from fl_dp_lab.accounting import rdp_subsampled_gaussian
from fl_dp_lab.exercises import (
    check_laplace_sampler,
    check_pairwise_sq_distances,
    check_renyi_monte_carlo,
    check_train_step,
)
from fl_dp_lab.mechanisms import (
    gaussian_kl_divergence,
    gaussian_log_density_ratio,
    gaussian_privacy_loss,
    gaussian_renyi_divergence,
    laplace_log_density_ratio,
)

#: (mean_p, std_p, mean_q, std_q): equal and unequal variances, both shift signs.
PAIRS = [(0.0, 1.0, 1.0, 1.0), (0.3, 0.7, -1.2, 1.5), (2.0, 2.0, 0.5, 1.0), (-1.0, 1.0, 0.0, 3.0)]


def _quad_renyi(order, mean_p, std_p, mean_q, std_q):
    """(1 / (a - 1)) log of the integral of p^a q^(1 - a), by quadrature in log space."""
    p, q = stats.norm(mean_p, std_p), stats.norm(mean_q, std_q)
    integrand = lambda x: math.exp(order * p.logpdf(x) + (1 - order) * q.logpdf(x))  # noqa: E731
    value, _ = integrate.quad(integrand, -60, 60, points=[mean_p, mean_q], limit=200)
    return math.log(value) / (order - 1)


# --- likelihood ratios ------------------------------------------------------------------------


def test_gaussian_log_ratio_is_the_difference_of_scipy_log_densities():
    x = np.linspace(-8, 8, 101)
    got = gaussian_log_density_ratio(x, mean_p=0.4, mean_q=-1.1, sigma=0.8)
    expected = stats.norm(0.4, 0.8).logpdf(x) - stats.norm(-1.1, 0.8).logpdf(x)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_laplace_log_ratio_matches_scipy_and_never_leaves_plus_minus_shift_over_scale():
    x = np.linspace(-30, 30, 601)
    got = laplace_log_density_ratio(x, mean_p=0.0, mean_q=1.5, scale=0.5)
    expected = stats.laplace(0.0, 0.5).logpdf(x) - stats.laplace(1.5, 0.5).logpdf(x)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    assert np.max(np.abs(got)) == pytest.approx(1.5 / 0.5)  # attained, in both tails


def test_gaussian_log_ratio_under_p_is_the_privacy_loss_n_mu_2mu():
    # Prepare: n = 200,000 draws; the mean's standard error is sqrt(2 mu / n) = 3.2e-3 at
    # mu = 2, the std's about std / sqrt(2n) = 3.2e-3; bands of 5 standard errors. A loss
    # written with sigma instead of sigma^2 (mu = 1 at sigma = 0.5) or with the sign flipped
    # would be off by >= 1.
    generator = torch.Generator().manual_seed(0)
    sigma, shift = 0.5, 1.0
    x = sigma * torch.randn(200_000, generator=generator, dtype=torch.float64)
    # Execute
    losses = gaussian_log_density_ratio(x, mean_p=0.0, mean_q=shift, sigma=sigma)
    mean, std = gaussian_privacy_loss(sigma=sigma, sensitivity=shift)
    # Assert
    assert abs(losses.mean() - mean) < 5 * math.sqrt(2 * mean / len(losses))
    assert abs(losses.std() - std) < 5 * std / math.sqrt(2 * len(losses))


# --- divergences ------------------------------------------------------------------------------


@pytest.mark.parametrize("pair", PAIRS)
def test_kl_matches_quadrature_of_p_log_p_over_q(pair):
    mean_p, std_p, mean_q, std_q = pair
    p, q = stats.norm(mean_p, std_p), stats.norm(mean_q, std_q)
    integrand = lambda x: p.pdf(x) * (p.logpdf(x) - q.logpdf(x))  # noqa: E731
    expected, _ = integrate.quad(integrand, -60, 60, points=[mean_p, mean_q], limit=200)
    got = gaussian_kl_divergence(mean_p=mean_p, std_p=std_p, mean_q=mean_q, std_q=std_q)
    assert got == pytest.approx(expected, rel=1e-7, abs=1e-10)


def test_kl_matches_monte_carlo_within_five_standard_errors():
    generator = torch.Generator().manual_seed(1)
    mean_p, std_p, mean_q, std_q = PAIRS[1]
    x = (mean_p + std_p * torch.randn(100_000, generator=generator, dtype=torch.float64)).numpy()
    log_ratio = stats.norm(mean_p, std_p).logpdf(x) - stats.norm(mean_q, std_q).logpdf(x)
    standard_error = log_ratio.std() / math.sqrt(len(x))
    got = gaussian_kl_divergence(mean_p=mean_p, std_p=std_p, mean_q=mean_q, std_q=std_q)
    assert abs(log_ratio.mean() - got) < 5 * standard_error


@pytest.mark.parametrize("order", [0.3, 0.5, 1.5, 2.0, 4.0])
@pytest.mark.parametrize("pair", PAIRS)
def test_renyi_matches_quadrature_where_finite(order, pair):
    mean_p, std_p, mean_q, std_q = pair
    got = gaussian_renyi_divergence(
        order=order, mean_p=mean_p, std_p=std_p, mean_q=mean_q, std_q=std_q
    )
    if order * std_q**2 + (1 - order) * std_p**2 <= 0:
        assert got == math.inf
        return
    assert got == pytest.approx(_quad_renyi(order, *pair), rel=1e-6, abs=1e-10)


def test_renyi_is_infinite_where_the_integral_diverges_and_tends_to_kl_at_order_one():
    pair = dict(mean_p=0.0, std_p=2.0, mean_q=0.0, std_q=1.0)  # v_a = 2 - 4 < 0 at order 2
    assert gaussian_renyi_divergence(order=2.0, **pair) == math.inf
    kl = gaussian_kl_divergence(**pair)
    assert gaussian_renyi_divergence(order=1.0, **pair) == kl
    for order in (1 - 1e-6, 1 + 1e-6):
        assert gaussian_renyi_divergence(order=order, **pair) == pytest.approx(kl, rel=1e-5)


def test_renyi_grows_with_the_order():
    orders = np.linspace(0.1, 20, 200)
    for mean_p, std_p, mean_q, std_q in PAIRS:
        values = [
            gaussian_renyi_divergence(
                order=a, mean_p=mean_p, std_p=std_p, mean_q=mean_q, std_q=std_q
            )
            for a in orders
        ]
        assert all(b >= a - 1e-12 for a, b in zip(values, values[1:], strict=False))


def test_equal_variance_renyi_is_the_accountants_rdp_of_the_gaussian_mechanism():
    orders = np.array([1.5, 2.0, 8.0, 32.0])
    sigma, shift = 1.7, 0.6
    expected = rdp_subsampled_gaussian(
        sample_rate=1.0, noise_multiplier=sigma / shift, orders=orders
    )
    got = [
        gaussian_renyi_divergence(order=a, mean_p=shift, std_p=sigma, mean_q=0.0, std_q=sigma)
        for a in orders
    ]
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_renyi_matches_a_monte_carlo_estimate_under_p():
    # D_a = 1/(a-1) log E_p[(p/q)^(a-1)]; with a = 2, mu = 0.18 the ratio's second moment is
    # finite and 200,000 draws give a relative error well under 2 % (seed 2; the spread of
    # exp(L) is about 0.65, so the standard error of the mean is 1.5e-3).
    generator = torch.Generator().manual_seed(2)
    sigma, shift, order = 1.0, 0.6, 2.0
    x = sigma * torch.randn(200_000, generator=generator, dtype=torch.float64)
    losses = gaussian_log_density_ratio(x, mean_p=0.0, mean_q=shift, sigma=sigma)
    estimate = math.log(np.mean(np.exp((order - 1) * losses))) / (order - 1)
    expected = gaussian_renyi_divergence(
        order=order, mean_p=0.0, std_p=sigma, mean_q=shift, std_q=sigma
    )
    assert estimate == pytest.approx(expected, rel=0.02)


def test_bad_arguments_are_refused_with_the_course_message():
    with pytest.raises(ValueError, match="sigma must be > 0, got 0.0"):
        gaussian_log_density_ratio(1.0, mean_p=0.0, mean_q=1.0, sigma=0.0)
    with pytest.raises(ValueError, match="scale must be > 0"):
        laplace_log_density_ratio(1.0, mean_p=0.0, mean_q=1.0, scale=-1.0)
    with pytest.raises(ValueError, match="std_q must be > 0"):
        gaussian_kl_divergence(mean_p=0.0, std_p=1.0, mean_q=0.0, std_q=0.0)
    with pytest.raises(ValueError, match="order must be > 0"):
        gaussian_renyi_divergence(order=0.0, mean_p=0.0, std_p=1.0, mean_q=0.0, std_q=1.0)
    with pytest.raises(TypeError, match="mean_p must be a real number"):
        gaussian_kl_divergence(mean_p="0", std_p=1.0, mean_q=0.0, std_q=1.0)


# --- exercise checks --------------------------------------------------------------------------


def _pairwise(a, b):
    return ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)


def _train_step(model, optimizer, x, y):
    optimizer.zero_grad()
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()
    return loss


def _laplace(n, scale, generator):
    e = torch.empty(2, n, dtype=torch.float64).exponential_(generator=generator)
    return scale * (e[0] - e[1])


def _renyi(log_ratios, order):
    n = len(log_ratios)
    return ((torch.logsumexp((order - 1) * log_ratios, 0) - math.log(n)) / (order - 1)).item()


def _no_zero_grad(model, optimizer, x, y):
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()
    return loss


def _no_step(model, optimizer, x, y):
    optimizer.zero_grad()
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    return loss


def _loss_after_step(model, optimizer, x, y):
    _train_step(model, optimizer, x, y)
    return torch.nn.functional.cross_entropy(model(x), y)


def test_right_answers_pass(capsys):
    assert check_pairwise_sq_distances(_pairwise) is True
    assert check_pairwise_sq_distances(lambda a, b: torch.cdist(a, b) ** 2) is True
    assert check_train_step(_train_step) is True
    assert check_laplace_sampler(_laplace) is True
    assert check_renyi_monte_carlo(_renyi) is True
    assert capsys.readouterr().out.count("✓") == 5


@pytest.mark.parametrize(
    ("check", "wrong", "words"),
    [
        (check_pairwise_sq_distances, lambda a, b: _pairwise(a, b).sqrt(), "their squares"),
        (check_pairwise_sq_distances, lambda a, b: _pairwise(a, b).T, "transposed"),
        (check_pairwise_sq_distances, lambda a, b: ((a - a) ** 2).sum(-1), "shape"),
        (check_pairwise_sq_distances, lambda a, b: _pairwise(a, b) + 1e-3, "broadcasts"),
        (check_train_step, _no_zero_grad, "adds to .grad"),
        (check_train_step, _no_step, "did not move"),
        (check_train_step, _loss_after_step, "returned loss"),
        (check_train_step, lambda m, o, x, y: _train_step(m, o, x, y) and None, "returned nothing"),
        (check_laplace_sampler, lambda n, s, g: math.sqrt(2) * s * torch.randn(n, generator=g),
         "Gaussian"),
        (check_laplace_sampler, lambda n, s, g: _laplace(n, s, g).abs(), ">= 0"),
        (check_laplace_sampler, lambda n, s, g: _laplace(n, s / math.sqrt(2), g), "sqrt(2)"),
        (check_laplace_sampler, lambda n, s, g: _laplace(n, 1 / s, g), "rate"),
        (check_laplace_sampler, lambda n, s, g: _laplace(n, s, torch.Generator()), "generator"),
        (check_laplace_sampler, lambda n, s, g: _laplace(n - 1, s, g), "numbers"),
        (check_renyi_monte_carlo, lambda v, a: v.mean(), "KL divergence"),
        (check_renyi_monte_carlo, lambda v, a: _renyi(v, a) * (a - 1), "prefactor"),
        (check_renyi_monte_carlo, lambda v, a: _renyi(v * a / (a - 1), a), "samples from Q"),
        (check_renyi_monte_carlo,
         lambda v, a: (torch.log(torch.exp((a - 1) * v).mean()) / (a - 1)).item(), "overflows"),
        (check_renyi_monte_carlo, lambda v, a: _renyi(v, a) + 0.01, "which power"),
    ],  # fmt: skip
)
def test_plausible_wrong_answers_fail_with_their_hint(check, wrong, words, capsys):
    assert check(wrong) is False
    out = capsys.readouterr().out
    assert "✗" in out and words in out, out


@pytest.mark.parametrize(
    "check",
    [check_pairwise_sq_distances, check_train_step, check_laplace_sampler, check_renyi_monte_carlo],
)
def test_unanswered_is_reported_and_a_non_function_raises(check, capsys):
    assert check(...) is False
    assert "not answered yet" in capsys.readouterr().out
    with pytest.raises(TypeError, match="must be a function"):
        check(3.0)


@pytest.mark.parametrize(
    ("check", "solution_words"),
    [
        (check_pairwise_sq_distances, ("None", "[:, None", "unsqueeze")),
        (check_train_step, ("zero_grad", "backward()", ".step()")),
        (check_laplace_sampler, ("exponential_", "log1p", "log(")),
        (check_renyi_monte_carlo, ("logsumexp", "order - 1", "a - 1")),
    ],
)
def test_docstrings_say_what_is_checked_not_the_solution(check, solution_words):
    for words in solution_words:
        assert words not in check.__doc__, (check.__name__, words)
