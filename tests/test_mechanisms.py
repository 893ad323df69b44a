"""fl_dp_lab.mechanisms against closed forms, dp_accounting and Monte Carlo."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from dp_accounting.pld import privacy_loss_distribution
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, optimize, stats

from fl_dp_lab import mechanisms
from fl_dp_lab.mechanisms import (
    _gaussian_privacy,
    delta_from_privacy_loss,
    gaussian_delta,
    gaussian_epsilon,
    gaussian_mechanism,
    gaussian_privacy_loss,
    gaussian_sigma,
    laplace_mechanism,
    local_sensitivity_remove_one,
    randomized_response,
    randomized_response_estimate,
)


def test_laplace_noise_has_scale_sensitivity_over_epsilon():
    # Prepare: seed 0, 200,000 draws; the std of the sample std is ~0.2 % here
    rng = np.random.default_rng(0)
    sensitivity, epsilon = 2.0, 0.5
    # Execute
    noise = laplace_mechanism(np.zeros(200_000), sensitivity=sensitivity, epsilon=epsilon, rng=rng)
    # Assert: std = sqrt(2) b with b = 4 (a bug using b = eps/s or std = b fails by far)
    scale = sensitivity / epsilon
    assert abs(noise.std() / (math.sqrt(2) * scale) - 1) < 0.02
    assert abs(np.mean(np.abs(noise)) / scale - 1) < 0.02  # E|Laplace(b)| = b
    assert stats.kstest(noise, stats.laplace(scale=scale).cdf).pvalue > 1e-3


def test_gaussian_noise_has_std_sigma_and_keeps_shape():
    rng = np.random.default_rng(1)
    noise = gaussian_mechanism(np.zeros((400, 500)), sensitivity=3.0, sigma=1.5, rng=rng)
    assert noise.shape == (400, 500)
    assert abs(noise.std() / 1.5 - 1) < 0.01  # 200,000 draws: std error ~0.16 %
    assert abs(noise.mean()) < 0.01
    assert isinstance(gaussian_mechanism(4.0, sensitivity=1.0, sigma=1.0, rng=rng), float)
    assert gaussian_mechanism(4.0, sensitivity=1.0, sigma=0.0, rng=rng) == 4.0


def test_randomized_response_flips_with_the_right_probability():
    rng = np.random.default_rng(2)
    bits = np.ones(100_000, dtype=int)
    reports = randomized_response(bits, epsilon=math.log(3), rng=rng)  # keep prob 3/4
    assert set(np.unique(reports)) <= {0, 1}
    assert abs(reports.mean() - 0.75) < 0.01  # std error 0.0014


def test_randomized_response_estimate_is_unbiased():
    # Prepare: 400 surveys of 500 people, true fraction 0.3, epsilon = 1 (seed 3)
    rng = np.random.default_rng(3)
    truth = (np.arange(500) < 150).astype(int)
    # Execute
    estimates = [
        randomized_response_estimate(randomized_response(truth, epsilon=1.0, rng=rng), epsilon=1.0)
        for _ in range(400)
    ]
    # Assert: the mean is within 4 standard errors of 0.3; the naive mean of the
    # reports (0.3 * 0.46 + 0.27 = 0.408) would be far outside.
    p = 1 / (1 + math.exp(-1.0))
    report_rate = 0.3 * p + 0.7 * (1 - p)
    std = math.sqrt(report_rate * (1 - report_rate) / 500) / (2 * p - 1)
    assert abs(np.mean(estimates) - 0.3) < 4 * std / math.sqrt(400)
    assert abs(np.std(estimates) / std - 1) < 0.15  # the stated variance formula


def test_analytic_sigma_meets_delta_exactly_and_beats_the_classic_bound():
    for epsilon, delta in [(0.1, 1e-5), (0.5, 1e-6), (0.9, 1e-3)]:
        analytic = gaussian_sigma(epsilon=epsilon, delta=delta, sensitivity=2.0)
        classic = gaussian_sigma(epsilon=epsilon, delta=delta, sensitivity=2.0, analytic=False)
        assert classic == pytest.approx(2.0 * math.sqrt(2 * math.log(1.25 / delta)) / epsilon)
        assert analytic < classic
        assert gaussian_delta(sigma=analytic, epsilon=epsilon, sensitivity=2.0) == pytest.approx(
            delta, rel=1e-6
        )
        # the classic sigma is private too: its exact delta is below the target
        assert gaussian_delta(sigma=classic, epsilon=epsilon, sensitivity=2.0) < delta


def test_analytic_sigma_works_for_large_epsilon_and_classic_warns():
    sigma = gaussian_sigma(epsilon=8.0, delta=1e-5)
    assert gaussian_delta(sigma=sigma, epsilon=8.0) == pytest.approx(1e-5, rel=1e-6)
    with pytest.warns(UserWarning, match="epsilon < 1"):
        gaussian_sigma(epsilon=2.0, delta=1e-5, analytic=False)


def _delta_by_quadrature(sigma: float, epsilon: float) -> float:
    """delta(eps) = E[(1 - e^(eps - L))_+], L ~ N(mu, 2 mu), mu = 1 / (2 sigma^2), integrated."""
    mu = 1.0 / (2.0 * sigma**2)
    density = stats.norm(mu, math.sqrt(2.0 * mu)).pdf
    value, _ = integrate.quad(
        lambda loss: -math.expm1(epsilon - loss) * density(loss), epsilon, np.inf,
        epsabs=1e-14, epsrel=1e-10,
    )  # fmt: skip
    return value


def _classic_sigma(epsilon: float, delta: float) -> float:
    with warnings.catch_warnings():  # the "proven only for epsilon < 1" warning is the point
        warnings.simplefilter("ignore", UserWarning)
        return gaussian_sigma(epsilon=epsilon, delta=delta, analytic=False)


def test_classic_bound_under_noises_above_about_epsilon_8_point_4():
    # Prepare: where the classic sigma crosses the analytic one at delta = 1e-5
    ratio = lambda e: _classic_sigma(e, 1e-5) / gaussian_sigma(epsilon=e, delta=1e-5) - 1  # noqa: E731
    # Execute
    crossing = optimize.brentq(ratio, 1.0, 20.0)
    # Assert: the classic formula is safe below the crossing and under-noises above it; the
    # delta it really gives is checked by quadrature of the privacy loss, not by the closed form
    assert 8.3 < crossing < 8.5
    for epsilon in (0.5, 2.0, 8.0):
        assert _delta_by_quadrature(_classic_sigma(epsilon, 1e-5), epsilon) < 1e-5
    for epsilon in (9.0, 10.0, 12.0):
        assert _delta_by_quadrature(_classic_sigma(epsilon, 1e-5), epsilon) > 1e-5
    assert _delta_by_quadrature(_classic_sigma(10.0, 1e-5), 10.0) == pytest.approx(
        2.27e-5, rel=0.01
    )


def test_noise_scaled_to_local_sensitivity_gives_the_dataset_away():
    # Prepare: the oldest age on neighbours D and D' = D minus one 50-year-old
    oldest = lambda d: float(np.max(d))  # noqa: E731
    d, d_prime = np.array([50.0, 50.0, 30.0]), np.array([50.0, 30.0])
    # Execute: the (wrong) mechanism oldest + Laplace(local sensitivity / epsilon), epsilon = 1
    rng = np.random.default_rng(0)
    exact = {}
    for name, data in (("D", d), ("D'", d_prime)):
        scale = local_sensitivity_remove_one(oldest, data)
        exact[name] = np.mean(oldest(data) + rng.laplace(0.0, scale, 1000) == 50.0)
    # Assert: on D the local sensitivity is 0 and every release is exactly 50, on D' never:
    # the output names the dataset, which no finite epsilon allows (global sensitivity is unbounded)
    assert local_sensitivity_remove_one(oldest, d) == 0.0
    assert local_sensitivity_remove_one(oldest, d_prime) == 20.0
    assert exact == {"D": 1.0, "D'": 0.0}


@pytest.mark.parametrize("sigma", [0.5, 1.0, 3.0])
@pytest.mark.parametrize("epsilon", [0.0, 0.3, 1.0, 3.0])
def test_gaussian_delta_matches_dp_accounting_pld(sigma, epsilon):
    pld = privacy_loss_distribution.from_gaussian_mechanism(
        sigma, sensitivity=1.0, value_discretization_interval=1e-4
    )
    expected = pld.get_delta_for_epsilon(epsilon)
    assert gaussian_delta(sigma=sigma, epsilon=epsilon) == pytest.approx(
        expected, rel=1e-3, abs=1e-9
    )


def test_gaussian_delta_matches_monte_carlo_of_the_privacy_loss():
    # Prepare: sample the output on D = 0 and evaluate L = log p_D(o) / p_D'(o), D' = 1
    rng = np.random.default_rng(4)
    sigma = 1.2
    outputs = rng.normal(0.0, sigma, 400_000)
    losses = stats.norm.logpdf(outputs, 0.0, sigma) - stats.norm.logpdf(outputs, 1.0, sigma)
    # Execute / Assert: same law as stated, and the same delta within 2 %
    mean, std = gaussian_privacy_loss(sigma=sigma)
    assert losses.mean() == pytest.approx(mean, abs=0.01)
    assert losses.std() == pytest.approx(std, rel=0.01)
    for epsilon in (0.5, 1.0):
        exact = gaussian_delta(sigma=sigma, epsilon=epsilon)
        assert delta_from_privacy_loss(losses, epsilon=epsilon) == pytest.approx(exact, rel=0.02)


@settings(max_examples=40, deadline=None)
@given(
    sigma=st.floats(0.2, 20.0),
    delta=st.floats(1e-9, 0.1),
    sensitivity=st.floats(0.1, 5.0),
)
def test_gaussian_epsilon_inverts_gaussian_delta(sigma, delta, sensitivity):
    epsilon = gaussian_epsilon(sigma=sigma, delta=delta, sensitivity=sensitivity)
    if epsilon > 0:
        back = gaussian_delta(sigma=sigma, epsilon=epsilon, sensitivity=sensitivity)
        assert back == pytest.approx(delta, rel=1e-5)
    else:
        assert gaussian_delta(sigma=sigma, epsilon=0.0, sensitivity=sensitivity) <= delta
    # more noise never costs more privacy
    assert gaussian_epsilon(sigma=2 * sigma, delta=delta, sensitivity=sensitivity) <= epsilon


def test_sigma_zero_means_no_privacy():
    assert gaussian_epsilon(sigma=0.0, delta=1e-5) == math.inf
    assert gaussian_delta(sigma=0.0, epsilon=5.0) == 1.0
    assert gaussian_delta(sigma=1.0, epsilon=math.inf) == 0.0
    assert gaussian_epsilon(sigma=1e-4, delta=1e-5) > 1e6  # tiny noise, huge epsilon


def test_local_sensitivity_is_a_finite_difference_over_neighbours():
    ages = np.array([23, 35, 71, 44])
    count_over_40 = lambda d: float(np.sum(np.asarray(d) > 40))  # noqa: E731
    assert local_sensitivity_remove_one(count_over_40, ages) == 1.0
    assert local_sensitivity_remove_one(lambda d: float(np.sum(d)), ages) == 71.0
    assert local_sensitivity_remove_one(lambda d: float(np.mean(d)), [1.0, 1.0, 4.0]) == 1.0


def test_bad_inputs_raise_clear_errors():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="epsilon must be > 0, got 0.0"):
        laplace_mechanism(1.0, sensitivity=1.0, epsilon=0.0, rng=rng)
    with pytest.raises(ValueError, match="sensitivity must be > 0"):
        laplace_mechanism(1.0, sensitivity=-1.0, epsilon=1.0, rng=rng)
    with pytest.raises(ValueError, match="sigma must be >= 0, got -1.0"):
        gaussian_mechanism(1.0, sensitivity=1.0, sigma=-1.0, rng=rng)
    with pytest.raises(TypeError, match="rng must be a numpy.random.Generator"):
        gaussian_mechanism(1.0, sensitivity=1.0, sigma=1.0, rng=0)
    with pytest.raises(TypeError, match="value must be a number"):
        gaussian_mechanism("abc", sensitivity=1.0, sigma=1.0, rng=rng)
    with pytest.raises(ValueError, match="bits must be an array of 0/1 values"):
        randomized_response([0, 2], epsilon=1.0, rng=rng)
    with pytest.raises(ValueError, match="reports must be a non-empty"):
        randomized_response_estimate([], epsilon=1.0)
    with pytest.raises(ValueError, match=r"delta must be in \(0, 1\), got 1.0"):
        gaussian_sigma(epsilon=1.0, delta=1.0)
    with pytest.raises(ValueError, match="epsilon must be > 0"):
        gaussian_sigma(epsilon=-1.0, delta=1e-5)
    with pytest.raises(TypeError, match="analytic must be True or False"):
        gaussian_sigma(epsilon=1.0, delta=1e-5, analytic="yes")
    with pytest.raises(ValueError, match="epsilon must be >= 0"):
        gaussian_delta(sigma=1.0, epsilon=-0.1)
    with pytest.raises(ValueError, match=r"delta must be in \(0, 1\)"):
        gaussian_epsilon(sigma=1.0, delta=0.0)
    with pytest.raises(ValueError, match="losses must be a non-empty 1-D"):
        delta_from_privacy_loss([math.inf], epsilon=1.0)
    with pytest.raises(TypeError, match="query must be a function"):
        local_sensitivity_remove_one(3, [1, 2])
    with pytest.raises(ValueError, match="epsilon must be > 0, got 0.0"):
        randomized_response([0, 1], epsilon=0.0, rng=rng)
    with pytest.raises(ValueError, match="sigma must be"):
        gaussian_epsilon(sigma=-0.5, delta=1e-5)
    with pytest.raises(ValueError, match="sigma must be"):
        gaussian_delta(sigma=math.nan, epsilon=1.0)
    with pytest.raises(ValueError, match="sigma must be > 0, got 0.0"):
        gaussian_privacy_loss(sigma=0.0)
    with pytest.raises(ValueError, match="sensitivity must be > 0"):
        gaussian_sigma(epsilon=1.0, delta=1e-5, sensitivity=0.0)
    with pytest.raises(ValueError, match="value must be finite"):
        laplace_mechanism(math.inf, sensitivity=1.0, epsilon=1.0, rng=rng)


def test_public_api_is_unchanged_by_the_privacy_curve_split():
    # the privacy-curve math lives in a private module; fl_dp_lab.mechanisms stays its home
    for name in _gaussian_privacy.__all__:
        assert name in mechanisms.__all__
        assert getattr(mechanisms, name) is getattr(_gaussian_privacy, name)
    for name in mechanisms.__all__:
        assert getattr(mechanisms, name).__doc__, f"{name} has no docstring"


@pytest.mark.parametrize("value", [1e300, -1e300, [0.0, 1e300], 1e14])
def test_a_value_the_noise_would_vanish_into_is_refused(value):
    # Prepare: near 1e300 floats are 2e284 apart: value + N(0, 1) rounded back to the value
    rng = np.random.default_rng(0)
    assert 1e300 + rng.standard_normal() == 1e300  # the bug: the noise vanished
    # Execute / Assert: both mechanisms refuse, naming value and the limit (std / (64 eps))
    with pytest.raises(ValueError, match=r"value must be at most 7.04e\+13 in magnitude"):
        mechanisms.gaussian_mechanism(value, sensitivity=1.0, sigma=1.0, rng=rng)
    with pytest.raises(ValueError, match=r"value must be at most 9.95e\+13 in magnitude"):
        mechanisms.laplace_mechanism(value, sensitivity=1.0, epsilon=1.0, rng=rng)


def test_values_within_the_limit_keep_their_noise():
    # just below the limit the noise has its std (the refusal is not over-eager): 1e13 with
    # sigma = 1, 20,000 draws, sample std within 3 % (its standard error is 0.5 %)
    rng = np.random.default_rng(1)
    noisy = mechanisms.gaussian_mechanism(
        np.full(20_000, 1e13), sensitivity=1.0, sigma=1.0, rng=rng
    )
    assert np.std(noisy - 1e13) == pytest.approx(1.0, rel=0.03)
    # the limit scales with the noise: sigma = 1e6 takes values up to 7e19
    assert math.isfinite(mechanisms.gaussian_mechanism(1e19, sensitivity=1.0, sigma=1e6, rng=rng))
    # sigma = 0 adds no noise and has nothing to lose to rounding
    assert mechanisms.gaussian_mechanism(1e300, sensitivity=1.0, sigma=0.0, rng=rng) == 1e300


def test_noise_scales_that_overflow_float64_are_refused_by_name():
    rng = np.random.default_rng(2)
    with pytest.raises(ValueError, match="sensitivity / epsilon must be small enough"):
        mechanisms.laplace_mechanism(1.0, sensitivity=1e300, epsilon=1e-300, rng=rng)
    with pytest.raises(ValueError, match="sigma must be small enough"):
        mechanisms.gaussian_mechanism(1.0, sensitivity=1.0, sigma=1e308, rng=rng)
    # subnormal noise rounds to 0: 5e-324 * N(0, 1) is 0 for every |N| < 0.5
    with pytest.raises(ValueError, match="sigma must be large enough"):
        mechanisms.gaussian_mechanism(0.0, sensitivity=1.0, sigma=5e-324, rng=rng)
    with pytest.raises(ValueError, match="sensitivity must be a finite number"):
        mechanisms.gaussian_mechanism(1.0, sensitivity=math.inf, sigma=1.0, rng=rng)
