"""fl_dp_lab.accounting against dp_accounting, Opacus, closed forms and quadrature.

The grid tests sample the range the accountant is checked over (q in [1e-4, 1],
sigma in [0.5, 20], steps in [1, 1e5], delta in [1e-7, 1e-3], epsilon in
[0.1, 50]) at fixed points drawn once from a seeded shuffle of q in {1e-4, 1e-3, 0.01, 0.05, 0.2,
1}, sigma in {0.5, 0.8, 1, 2, 4, 10, 20}, steps in {1, 10, ..., 1e5}, delta in
{1e-7, 1e-5, 1e-3}, keeping those whose epsilon lies in [0.1, 50]. The PLD
list keeps the points where dp_accounting's own PLDAccountant answers in
under about 2 s on one core (small sigma with tiny q makes its grid, and
ours, long), so the file stays near half a minute.
"""

from __future__ import annotations

import logging
import math
import warnings

import dp_accounting as dpa
import numpy as np
import pytest
from dp_accounting.pld import pld_privacy_accountant
from dp_accounting.rdp import rdp_privacy_accountant
from hypothesis import given, settings
from hypothesis import strategies as st
from opacus.accountants.analysis import rdp as opacus_rdp
from scipy import integrate, optimize, special, stats

from fl_dp_lab.accounting import (
    DEFAULT_ORDERS,
    MAX_STEPS,
    PrivacyAccountant,
    epsilon,
    epsilon_curves,
    noise_multiplier_for_epsilon,
    privacy_loss_distribution,
    rdp_subsampled_gaussian,
    rdp_to_epsilon,
)

logging.getLogger("absl").setLevel(logging.ERROR)  # dp_accounting's series warnings

# (sample_rate, noise_multiplier, steps, delta)
RDP_GRID = [
    (1.0, 10.0, 100, 1e-3),
    (0.001, 0.8, 1000, 1e-7),
    (0.01, 2.0, 10, 1e-7),
    (0.0001, 1.0, 10000, 1e-7),
    (0.001, 2.0, 10000, 1e-7),
    (0.01, 2.0, 10000, 1e-3),
    (0.01, 4.0, 100, 1e-7),
    (1.0, 2.0, 1, 1e-7),
    (0.01, 20.0, 100000, 1e-7),
    (0.05, 10.0, 1000, 1e-3),
    (0.05, 0.8, 10, 1e-3),
    (1.0, 1.0, 10, 1e-3),
    (0.001, 0.5, 10000, 1e-7),
    (0.0001, 0.8, 10000, 1e-5),
    (0.01, 10.0, 10000, 1e-5),
    (0.2, 1.0, 100, 1e-5),
    (0.2, 0.8, 10, 1e-5),
    (0.2, 2.0, 1000, 1e-3),
    (0.2, 0.8, 1, 1e-7),
    (0.2, 20.0, 1000, 1e-3),
    (0.05, 20.0, 100000, 1e-7),
    (0.001, 10.0, 100000, 1e-7),
    (1.0, 20.0, 10, 1e-3),
    (0.2, 4.0, 100, 1e-5),
    (0.0001, 0.5, 1000, 1e-5),
    (0.05, 10.0, 100000, 1e-3),
    (0.2, 20.0, 100000, 1e-3),
    (0.001, 2.0, 100000, 1e-5),
    (1.0, 20.0, 1, 1e-5),
    (0.001, 2.0, 1, 1e-5),
    (0.01, 4.0, 10000, 1e-5),
]

PLD_GRID = [
    (1.0, 10.0, 100, 1e-3),
    (0.01, 2.0, 10, 1e-7),
    (0.001, 2.0, 10000, 1e-7),
    (0.01, 2.0, 10000, 1e-3),
    (0.01, 4.0, 100, 1e-7),
    (1.0, 2.0, 1, 1e-7),
    (0.01, 20.0, 100000, 1e-7),
    (0.05, 10.0, 1000, 1e-3),
    (0.01, 10.0, 10000, 1e-5),
    (0.2, 20.0, 1000, 1e-3),
    (0.05, 20.0, 100000, 1e-7),
    (0.001, 10.0, 100000, 1e-7),
    (1.0, 20.0, 10, 1e-3),
    (0.2, 4.0, 100, 1e-5),
    (0.2, 20.0, 100, 1e-3),
    (0.05, 10.0, 100000, 1e-3),
    (0.001, 2.0, 100000, 1e-5),
    (1.0, 20.0, 1, 1e-5),
    (0.001, 0.8, 1000, 1e-7),
    (1.0, 1.0, 10, 1e-3),
    (0.01, 4.0, 10000, 1e-5),
]


def tolerance(reference: float) -> float:
    """How close our epsilon must come to a reference: 1 % of it or 0.005, whichever is larger."""
    return max(0.01 * reference, 0.005)


def dp_accounting_epsilon(q, sigma, steps, delta, accountant):
    if accountant == "pld":
        acc = pld_privacy_accountant.PLDAccountant(value_discretization_interval=1e-4)
    else:
        acc = rdp_privacy_accountant.RdpAccountant()
    acc.compose(dpa.PoissonSampledDpEvent(q, dpa.GaussianDpEvent(sigma)), steps)
    return acc.get_epsilon(delta)


@pytest.mark.parametrize(("q", "sigma", "steps", "delta"), RDP_GRID)
def test_rdp_epsilon_matches_dp_accounting(q, sigma, steps, delta):
    # Prepare
    reference = dp_accounting_epsilon(q, sigma, steps, delta, "rdp")
    assert 0.1 <= reference <= 50
    # Execute
    ours = epsilon(
        noise_multiplier=sigma, sample_rate=q, steps=steps, delta=delta, accountant="rdp"
    )
    # Assert
    assert ours == pytest.approx(reference, abs=tolerance(reference))


@pytest.mark.parametrize(("q", "sigma", "steps", "delta"), PLD_GRID)
def test_pld_epsilon_matches_dp_accounting_and_never_under_reports(q, sigma, steps, delta):
    # Prepare
    reference = dp_accounting_epsilon(q, sigma, steps, delta, "pld")
    # Execute
    ours = epsilon(noise_multiplier=sigma, sample_rate=q, steps=steps, delta=delta)
    # Assert
    assert abs(ours - reference) <= tolerance(reference)
    assert ours >= reference - 1e-6 * max(reference, 1.0)  # pessimistic up to round-off
    rdp = epsilon(noise_multiplier=sigma, sample_rate=q, steps=steps, delta=delta, accountant="rdp")
    assert ours <= rdp  # on this grid PLD is the smaller bound (not everywhere: see below)


@pytest.mark.parametrize(
    ("q", "sigma", "steps"), [(0.128, 0.1, 64), (0.128, 0.2, 64), (0.5, 0.1, 10)]
)
def test_weak_noise_gives_the_huge_epsilon_dp_accounting_gives(q, sigma, steps):
    # Prepare: a sigma slider near zero. Composed losses run into the thousands, past
    # where exp() overflows; epsilon must come out in the thousands too, never capped.
    delta = 1e-5
    acc = pld_privacy_accountant.PLDAccountant(value_discretization_interval=1e-3)
    acc.compose(dpa.PoissonSampledDpEvent(q, dpa.GaussianDpEvent(sigma)), steps)
    # Execute
    ours = epsilon(noise_multiplier=sigma, sample_rate=q, steps=steps, delta=delta)
    # Assert: dp_accounting's delta at our epsilon is the target (its own get_epsilon
    # rounds up to a coarser grid, up to about 1 above ours), and RDP stays above both
    assert 100 < ours < math.inf
    assert acc.get_delta(ours) == pytest.approx(delta, rel=0.02)
    assert ours <= acc.get_epsilon(delta) * 1.001
    # so little noise that RDP's best order is the grid's smallest, 1.1: it says so
    with pytest.warns(RuntimeWarning, match="best Rényi order 1.1 is at the edge"):
        rdp = epsilon(
            noise_multiplier=sigma, sample_rate=q, steps=steps, delta=delta, accountant="rdp"
        )
    assert ours <= rdp


@pytest.mark.parametrize("steps", [1, 10, 100])
@pytest.mark.parametrize("sigma", [2.0, 5.0, 12.0])
def test_pld_without_subsampling_is_the_exact_gaussian_from_above(sigma, steps):
    # q = 1: T Gaussian steps are one Gaussian with noise sigma / sqrt(T), whose
    # delta(eps) = Phi(-eps s + 1/(2s)) - e^eps Phi(-eps s - 1/(2s)) (Balle & Wang 2018)
    s = sigma / math.sqrt(steps)
    delta = 1e-5

    def excess(eps):
        return (
            stats.norm.cdf(-eps * s + 0.5 / s)
            - math.exp(eps) * stats.norm.cdf(-eps * s - 0.5 / s)
            - delta
        )

    exact = optimize.brentq(excess, 0.0, 200.0, xtol=1e-12)
    ours = epsilon(noise_multiplier=sigma, sample_rate=1.0, steps=steps, delta=delta)
    assert exact - 1e-9 <= ours <= exact * 1.002


@pytest.mark.parametrize(("q", "sigma"), [(0.01, 1.0), (0.2, 0.8), (1e-3, 5.0), (1.0, 2.0)])
def test_integer_orders_match_opacus_compute_rdp(q, sigma):
    orders = np.arange(2, 64)
    ours = rdp_subsampled_gaussian(sample_rate=q, noise_multiplier=sigma, orders=orders)
    theirs = opacus_rdp.compute_rdp(q=q, noise_multiplier=sigma, steps=1, orders=orders)
    np.testing.assert_allclose(ours, theirs, rtol=1e-8)


@pytest.mark.parametrize(
    ("q", "sigma", "order"), [(0.5, 1.0, 1.5), (0.01, 0.6, 1.9), (0.2, 2, 3.3)]
)
def test_fractional_orders_match_numerical_integration(q, sigma, order):
    # A_a = integral of N(0, s^2)(x) (1 - q + q exp((2x - 1) / (2 s^2)))^a dx, by adaptive quadrature
    def integrand(x):
        ratio = 1 - q + q * math.exp((2 * x - 1) / (2 * sigma**2))
        return stats.norm.pdf(x, scale=sigma) * ratio**order

    split = sigma**2 * math.log(1 / q - 1) + 0.5
    a, _ = integrate.quad(integrand, -40 * sigma, 40 * sigma + order, points=[0, split], limit=400)
    expected = math.log(a) / (order - 1)
    ours = rdp_subsampled_gaussian(sample_rate=q, noise_multiplier=sigma, orders=[order])[0]
    assert ours == pytest.approx(expected, rel=1e-7)


def test_rdp_to_epsilon_matches_dp_accounting_on_random_curves():
    rng = np.random.default_rng(0)
    orders = np.array(DEFAULT_ORDERS)
    for _ in range(20):
        # a convex-ish RDP curve: c * a with a random scale, plus noise-free offsets
        rdp = rng.uniform(1e-4, 0.5) * orders + rng.uniform(0, 1e-3)
        delta = 10 ** rng.uniform(-9, -2)
        ours = rdp_to_epsilon(rdp=rdp, orders=orders, delta=delta)
        theirs = rdp_privacy_accountant.compute_epsilon(orders, rdp, delta)
        assert ours[0] == pytest.approx(theirs[0], rel=1e-12)
        assert ours[1] == theirs[1]


def test_rdp_conversion_is_tighter_than_mironovs_classic_bound():
    orders = np.array(DEFAULT_ORDERS)
    rdp = 1e4 * rdp_subsampled_gaussian(sample_rate=0.01, noise_multiplier=4.0, orders=orders)
    classic = np.min(rdp + math.log(1 / 1e-5) / (orders - 1))
    assert rdp_to_epsilon(rdp=rdp, orders=orders, delta=1e-5)[0] < classic - 0.05


def test_warns_when_the_best_order_is_at_the_edge_of_the_grid():
    orders = np.arange(2, 8)
    rdp = rdp_subsampled_gaussian(sample_rate=0.01, noise_multiplier=20.0, orders=orders)
    with pytest.warns(RuntimeWarning, match="edge of the orders grid"):
        rdp_to_epsilon(rdp=rdp, orders=orders, delta=1e-5)


def test_epsilon_curves_draw_the_edge_of_grid_rdp_bound_without_warning():
    # Prepare: sigma = 0.1 without subsampling: RDP's best order is 1.1, the grid's edge
    kwargs = dict(noise_multiplier=0.1, sample_rate=1.0, delta=1e-5)
    with pytest.warns(RuntimeWarning, match="edge of the orders grid"):
        expected = epsilon(steps=100, accountant="rdp", **kwargs)
    # Execute: a figure's sweep, whose caller cannot pass other orders, stays quiet
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        grid, curves = epsilon_curves(steps=100, points=3, methods=["rdp"], **kwargs)
    # Assert
    assert grid.tolist() == [1, 10, 100]
    assert curves["rdp"][-1] == expected


def test_abadi_et_al_2016_numbers():
    kwargs = dict(noise_multiplier=4.0, sample_rate=0.01, steps=10_000, delta=1e-5)
    assert epsilon(**kwargs, accountant="rdp") == pytest.approx(1.04, abs=0.01)
    assert epsilon(**kwargs, accountant="pld") == pytest.approx(0.95, abs=0.015)


def test_neither_bound_always_wins_and_dp_accounting_agrees():
    # q = 1e-4, sigma = 10, 1e5 steps: every step's loss is tiny and the PLD grid's pessimistic
    # rounding, paid once per composition, adds up; dp_accounting's PLD (same 1e-4 grid) and
    # RDP give the same two numbers. Abadi et al.'s setting is the other way round.
    tiny = dict(noise_multiplier=10.0, sample_rate=1e-4, steps=100_000, delta=1e-5)
    with warnings.catch_warnings():  # the best order is the grid's largest: still a bound
        warnings.filterwarnings("ignore", "the best Rényi order", RuntimeWarning)
        rdp = epsilon(**tiny, accountant="rdp")
    pld = epsilon(**tiny, accountant="pld")
    assert 0.008 < rdp < 0.0095 and 0.022 < pld < 0.026 and rdp < pld
    for ours, kind in ((rdp, "rdp"), (pld, "pld")):
        assert ours == pytest.approx(
            dp_accounting_epsilon(1e-4, 10.0, 100_000, 1e-5, kind), rel=0.01
        )
    abadi = dict(noise_multiplier=4.0, sample_rate=0.01, steps=10_000, delta=1e-5)
    assert epsilon(**abadi, accountant="pld") < epsilon(**abadi, accountant="rdp")


@pytest.mark.parametrize(
    ("q", "sigma", "steps"),
    [
        (1e-4, 10.0, 100_000),
        (1e-4, 10.0, 10_000),
        (0.01, 4.0, 10_000),
        (1e-4, 10.0, 100),
        (1.0, 2.0, 1),
    ],
)
def test_best_is_the_smaller_of_the_two_bounds(q, sigma, steps):
    kwargs = dict(noise_multiplier=sigma, sample_rate=q, steps=steps, delta=1e-5)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "the best Rényi order", RuntimeWarning)
        bounds = [epsilon(**kwargs, accountant=kind) for kind in ("pld", "rdp")]
        best = epsilon(**kwargs, accountant="best")
    assert best <= min(bounds) and best in bounds


@pytest.mark.parametrize(
    ("q", "sigma", "steps"),
    [(0.01, 4.0, 10_000), (0.128, 1.73, 64), (0.128, 0.95, 64), (0.1, 2.25, 100), (0.1, 0.6, 200)],
)
def test_pld_is_the_smaller_bound_in_the_settings_the_course_trains_with(q, sigma, steps):
    # why "pld" can stay the default: notebooks 05b (Abadi et al.), 06 (epsilon = 3 and 8)
    # and 09 (user-level DP-FedAvg) report the same number as "best" would
    kwargs = dict(noise_multiplier=sigma, sample_rate=q, steps=steps, delta=1e-5)
    assert (
        epsilon(**kwargs)
        == epsilon(**kwargs, accountant="best")
        < epsilon(**kwargs, accountant="rdp")
    )


@pytest.mark.parametrize(("q", "sigma_hint"), [(1e-4, "rdp"), (0.01, "pld")])
def test_calibrating_for_best_takes_the_smaller_sigma(q, sigma_hint):
    # Prepare: target 0.01 over 1e5 steps at q = 1e-4 (RDP needs less noise), 1.0 over 3,000
    # steps at q = 0.01 (PLD needs less)
    setting = dict(sample_rate=q, steps=100_000 if q < 1e-3 else 3_000, delta=1e-5)
    target = 0.01 if q < 1e-3 else 1.0
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "the best Rényi order", RuntimeWarning)
        sigmas = {
            kind: noise_multiplier_for_epsilon(target_epsilon=target, accountant=kind, **setting)
            for kind in ("pld", "rdp", "best")
        }
        spent = epsilon(noise_multiplier=sigmas["best"], accountant="best", **setting)
    # Assert: the smaller of the two, and within budget by the smaller bound
    assert sigmas["best"] == min(sigmas["pld"], sigmas["rdp"]) == sigmas[sigma_hint]
    assert 0.999 * target <= spent <= target


def test_best_warns_about_the_rdp_grid_only_when_it_returns_rdp():
    with pytest.warns(RuntimeWarning, match="the best Rényi order"):
        epsilon(
            noise_multiplier=10.0, sample_rate=1e-4, steps=100_000, delta=1e-5, accountant="best"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # PLD wins here: RDP's edge-of-grid warning is moot
        epsilon(noise_multiplier=10.0, sample_rate=1e-4, steps=100, delta=1e-5, accountant="best")


@pytest.mark.parametrize("accountant", ["rdp", "pld"])
def test_zero_noise_is_infinite_epsilon_and_zero_steps_spend_nothing(accountant):
    kwargs = dict(sample_rate=0.1, delta=1e-5, accountant=accountant)
    assert epsilon(noise_multiplier=0.0, steps=10, **kwargs) == math.inf
    assert epsilon(noise_multiplier=1.0, steps=0, **kwargs) == 0.0
    assert np.all(
        np.isinf(rdp_subsampled_gaussian(sample_rate=0.1, noise_multiplier=0.0, orders=[2, 3]))
    )


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(noise_multiplier=-1.0), ValueError, "noise_multiplier"),
        (dict(sample_rate=0.0), ValueError, "sample_rate"),
        (dict(sample_rate=1.5), ValueError, "sample_rate"),
        (dict(delta=0.0), ValueError, "delta"),
        (dict(delta=1.0), ValueError, "delta"),
        (dict(steps=-1), ValueError, "steps"),
        (dict(steps=10.5), TypeError, "steps"),
        (dict(steps=True), TypeError, "steps"),
        (dict(steps=10**9 + 1), ValueError, r"steps must be an integer <= 1000000000"),
        (dict(noise_multiplier=float("nan")), ValueError, "noise_multiplier"),
        (dict(accountant="moments"), ValueError, "accountant"),
    ],
)
def test_bad_input_is_refused_with_the_argument_named(kwargs, error, match):
    arguments = dict(noise_multiplier=1.0, sample_rate=0.01, steps=100, delta=1e-5) | kwargs
    with pytest.raises(error, match=match):
        epsilon(**arguments)


def test_bad_input_to_calibration_and_conversion():
    with pytest.raises(ValueError, match="target_epsilon"):
        noise_multiplier_for_epsilon(target_epsilon=0.0, sample_rate=0.01, steps=10, delta=1e-5)
    with pytest.raises(ValueError, match="orders"):
        rdp_subsampled_gaussian(sample_rate=0.1, noise_multiplier=1.0, orders=[1.0, 2.0])
    with pytest.raises(ValueError, match="rdp"):
        rdp_to_epsilon(rdp=[1.0], orders=[2.0, 3.0], delta=1e-5)
    with pytest.raises(ValueError, match="delta"):
        PrivacyAccountant().get_epsilon(0.0)


@pytest.mark.parametrize(
    ("target", "q", "steps", "accountant"),
    [
        (1.0, 0.01, 1000, "pld"),
        (3.0, 0.004, 10_000, "pld"),
        (0.5, 0.01, 1000, "rdp"),
        (8.0, 1.0, 1, "rdp"),
    ],
)
def test_calibrated_sigma_achieves_the_target_within_one_percent(target, q, steps, accountant):
    kwargs = dict(sample_rate=q, steps=steps, delta=1e-5, accountant=accountant)
    sigma = noise_multiplier_for_epsilon(target_epsilon=target, **kwargs)
    achieved = epsilon(noise_multiplier=sigma, **kwargs)
    assert 0.99 * target <= achieved <= target


@pytest.mark.filterwarnings("ignore:Optimal order is the largest alpha:UserWarning")
def test_calibration_agrees_with_opacus_get_noise_multiplier():
    from opacus.accountants.utils import get_noise_multiplier

    ours = noise_multiplier_for_epsilon(
        target_epsilon=2.0, sample_rate=0.01, steps=2000, delta=1e-5, accountant="rdp"
    )
    theirs = get_noise_multiplier(
        target_epsilon=2.0, target_delta=1e-5, sample_rate=0.01, steps=2000, accountant="rdp"
    )
    # Opacus stops at orders <= 63 (it warns "Optimal order is the largest alpha") and a
    # 0.01 sigma tolerance: its sigma is a little larger
    assert ours == pytest.approx(theirs, rel=0.03)
    assert ours <= theirs + 1e-9


@pytest.mark.parametrize("kind", ["rdp", "pld"])
def test_accountant_history_composes_heterogeneous_steps_like_dp_accounting(kind):
    # Prepare
    acc = PrivacyAccountant(accountant=kind)
    if kind == "pld":
        reference = pld_privacy_accountant.PLDAccountant(value_discretization_interval=1e-4)
    else:
        reference = rdp_privacy_accountant.RdpAccountant()
    schedule = [(2.0, 0.01, 500), (2.0, 0.01, 500), (1.2, 0.02, 300), (4.0, 0.05, 100)]
    # Execute
    for sigma, q, steps in schedule:
        acc.step(noise_multiplier=sigma, sample_rate=q, steps=steps)
        reference.compose(dpa.PoissonSampledDpEvent(q, dpa.GaussianDpEvent(sigma)), steps)
    ours, theirs = acc.get_epsilon(1e-5), reference.get_epsilon(1e-5)
    # Assert
    assert acc.history == ((2.0, 0.01, 1000), (1.2, 0.02, 300), (4.0, 0.05, 100))
    assert ours == pytest.approx(theirs, abs=tolerance(theirs))
    assert ours >= theirs - 1e-6


def test_accountant_of_one_kind_of_step_equals_epsilon_and_handles_zero_noise():
    acc = PrivacyAccountant()
    assert acc.get_epsilon(1e-5) == 0.0
    for _ in range(3):
        acc.step(noise_multiplier=1.5, sample_rate=0.02, steps=100)
    expected = epsilon(noise_multiplier=1.5, sample_rate=0.02, steps=300, delta=1e-5)
    assert acc.get_epsilon(1e-5) == expected
    acc.step(noise_multiplier=0.0, sample_rate=0.02)
    assert acc.get_epsilon(1e-5) == math.inf


# the box holds corners whose best order is 1.1 or 1024; monotonicity holds there too
@pytest.mark.filterwarnings("ignore:the best Rényi order .* is at the edge:RuntimeWarning")
@settings(max_examples=25, deadline=None)
@given(
    q=st.floats(1e-3, 1.0),
    sigma=st.floats(0.6, 20.0),
    steps=st.integers(1, 5000),
    more=st.integers(1, 5000),
)
def test_rdp_epsilon_grows_with_steps_and_falls_with_noise(q, sigma, steps, more):
    def eps(s, t):
        return epsilon(noise_multiplier=s, sample_rate=q, steps=t, delta=1e-5, accountant="rdp")

    assert eps(sigma, steps + more) >= eps(sigma, steps)
    assert eps(sigma * 1.5, steps) <= eps(sigma, steps)


@settings(max_examples=10, deadline=None)
@given(q=st.floats(0.005, 1.0), sigma=st.floats(1.0, 10.0), steps=st.integers(1, 2000))
def test_pld_epsilon_grows_with_steps_and_stays_below_rdp(q, sigma, steps):
    # in this box (q >= 0.005, at most 2,000 steps); with tiny q over 1e5 steps RDP wins
    kwargs = dict(noise_multiplier=sigma, sample_rate=q, delta=1e-5)
    pld = epsilon(steps=steps, **kwargs)
    assert epsilon(steps=2 * steps, **kwargs) >= pld
    with warnings.catch_warnings():  # a drawn case may put the best order at the grid's edge:
        warnings.filterwarnings("ignore", "the best Rényi order", RuntimeWarning)  # still a bound
        rdp = epsilon(steps=steps, accountant="rdp", **kwargs)
    assert pld <= rdp + 1e-9


def _exact_gaussian_epsilon(mu: float, delta: float) -> float:
    """Epsilon of a Gaussian mechanism with sensitivity / sigma = mu, solved in the log domain.

    delta(eps) = Phi(mu/2 - eps/mu) - e^eps Phi(-mu/2 - eps/mu) (Balle & Wang 2018), with
    log-Phi so that epsilons in the millions do not overflow.
    """

    def log_excess(eps):
        log_a = special.log_ndtr(mu / 2 - eps / mu)
        log_b = eps + special.log_ndtr(-mu / 2 - eps / mu)
        return log_a + math.log1p(-math.exp(min(log_b - log_a, 0.0))) - math.log(delta)

    return optimize.brentq(log_excess, 0.0, mu * mu / 2 + 50 * mu + 50, rtol=1e-14)


@pytest.mark.parametrize(("q", "sigma"), [(0.5, 0.02), (0.01, 0.015)])
def test_noise_so_weak_that_one_step_loses_past_709_nats_is_not_under_reported(q, sigma):
    # Prepare: with sigma = 0.02 one step's loss reaches 1 / (2 sigma^2) = 1250 nats, where
    # exp() overflows; the grid must still place that mass at its true loss (it was
    # clipped to about 709, reporting epsilon = 709 where the truth is about 1450)
    delta = 1e-5
    acc = pld_privacy_accountant.PLDAccountant(value_discretization_interval=0.05)
    acc.compose(dpa.PoissonSampledDpEvent(q, dpa.GaussianDpEvent(sigma)), 1)
    # Execute
    ours = epsilon(noise_multiplier=sigma, sample_rate=q, steps=1, delta=delta)
    # Assert: dp_accounting's (pessimistic) delta at our epsilon is the target, not above it
    assert ours > 1000
    assert acc.get_delta(ours) <= delta * 1.001
    assert ours <= acc.get_epsilon(delta) <= ours + 1.5  # theirs rounds up (exp(-loss) = 0)


@pytest.mark.parametrize(
    ("sigma", "steps"), [(0.1, 100_000), (0.01, 1000), (30.0, 10_000_000), (2.0, 100_000)]
)
def test_huge_compositions_stay_bounded_and_above_the_exact_gaussian(sigma, steps):
    # Prepare: q = 1, so T steps are one Gaussian with noise sigma / sqrt(T). Weak noise
    # over many steps spreads the composed loss over millions of nats: the grid must
    # coarsen (pessimistically) rather than ask for gigabytes
    exact = _exact_gaussian_epsilon(math.sqrt(steps) / sigma, 1e-5)
    # Execute
    ours = epsilon(noise_multiplier=sigma, sample_rate=1.0, steps=steps, delta=1e-5)
    losses, _, _ = privacy_loss_distribution(noise_multiplier=sigma, sample_rate=1.0, steps=steps)
    # Assert
    assert exact - 1e-9 * exact <= ours <= exact * 1.002
    assert len(losses) <= 2.2e6  # at most about 2^21 grid points, whatever sigma and T


def test_pld_refuses_a_delta_below_its_fft_floor_and_rdp_takes_it():
    # Below delta = 1e-10 the FFT's round-off swamps a composed PLD's tail (epsilon
    # drifts percents above the truth, then to inf): a clear error, not a silent number
    kwargs = dict(noise_multiplier=4.0, sample_rate=0.01, steps=10_000)
    with pytest.raises(ValueError, match=r"delta must be >= 1e-10 .*accountant='rdp'"):
        epsilon(delta=1e-12, **kwargs)
    acc = PrivacyAccountant()
    acc.step(**kwargs)
    with pytest.raises(ValueError, match="delta must be >= 1e-10"):
        acc.get_epsilon(1e-12)
    with pytest.raises(ValueError, match="delta must be >= 1e-10"):
        noise_multiplier_for_epsilon(target_epsilon=2.0, sample_rate=0.01, steps=1000, delta=1e-12)
    rdp = epsilon(delta=1e-12, accountant="rdp", **kwargs)
    assert rdp == pytest.approx(dp_accounting_epsilon(0.01, 4.0, 10_000, 1e-12, "rdp"), rel=1e-9)
    # one step needs no FFT: its tail is exact far below the floor (q = 1: a Gaussian)
    exact = _exact_gaussian_epsilon(0.25, 1e-14)
    one = epsilon(noise_multiplier=4.0, sample_rate=1.0, steps=1, delta=1e-14)
    assert exact - 1e-9 <= one <= exact * 1.001
    # ... down to the grid's tail cut (9.5 std a side, < 1.1e-21 each): below, an error, not inf
    with pytest.raises(ValueError, match=r"delta must be >= 1e-20 for the PLD accountant"):
        epsilon(noise_multiplier=1.0, sample_rate=0.5, steps=1, delta=1e-300)
    assert math.isfinite(epsilon(noise_multiplier=1.0, sample_rate=0.5, steps=1, delta=1e-20))


def test_pld_of_an_enormous_noise_multiplier_is_zero_not_infinite():
    # sigma = 1e20: one step's losses all round to 0; the grid still needs one interval
    for q in (0.01, 0.5, 1.0):
        assert epsilon(noise_multiplier=1e20, sample_rate=q, steps=2, delta=1e-5) == 0.0
        assert epsilon(noise_multiplier=1e20, sample_rate=q, steps=1, delta=1e-5) == 0.0


@pytest.mark.parametrize(
    ("q", "sigma", "order"), [(0.001, 0.3, 1.1), (0.1, 0.3, 2.5), (0.5, 0.3, 1.5)]
)
def test_fractional_orders_at_weak_noise_match_25_digit_quadrature(q, sigma, order):
    # Here dp_accounting's series is off (4 % too high at sigma = 0.3, q = 1e-3, order 1.1)
    # or drops the order; our quadrature must match a 25-digit integral of A_a
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 25
    s, p, a = mpmath.mpf(sigma), mpmath.mpf(q), mpmath.mpf(order)

    def integrand(x):
        return mpmath.npdf(x, 0, s) * (1 - p + p * mpmath.exp((2 * x - 1) / (2 * s**2))) ** a

    nodes = sorted({-30 * s, mpmath.mpf(0), mpmath.mpf(0.5), mpmath.mpf(1), a, a + 30 * s})
    expected = float(mpmath.log(mpmath.quad(integrand, nodes, maxdegree=10)) / (a - 1))
    ours = rdp_subsampled_gaussian(sample_rate=q, noise_multiplier=sigma, orders=[order])[0]
    assert ours == pytest.approx(expected, rel=1e-9)


def test_accountant_history_with_a_weak_noise_phase_is_not_under_reported():
    # Prepare: two steps of almost no noise (losses past 709 nats) then 100 ordinary steps;
    # the shared grid must hold both the tiny and the huge losses
    schedule = [(0.02, 0.3, 2), (1.0, 0.05, 100)]
    acc, rdp = PrivacyAccountant(), PrivacyAccountant(accountant="rdp")
    reference = pld_privacy_accountant.PLDAccountant(value_discretization_interval=0.01)
    for sigma, q, steps in schedule:
        for accountant in (acc, rdp):
            accountant.step(noise_multiplier=sigma, sample_rate=q, steps=steps)
        reference.compose(dpa.PoissonSampledDpEvent(q, dpa.GaussianDpEvent(sigma)), steps)
    # Execute
    ours = acc.get_epsilon(1e-5)
    # Assert: dp_accounting's pessimistic delta at our epsilon meets the target, and RDP,
    # whose best order for the weak phase is the grid's smallest (it warns), stays above
    with pytest.warns(RuntimeWarning, match="best Rényi order 1.1 is at the edge"):
        rdp_epsilon = rdp.get_epsilon(1e-5)
    assert 1000 < ours <= rdp_epsilon
    assert reference.get_delta(ours) <= 1e-5 * 1.001
    assert ours <= reference.get_epsilon(1e-5)


def test_a_vanishing_noise_multiplier_reads_as_no_privacy_never_nan():
    # below 1e-9 one step's loss passes 5e17 nats (and below 1e-20 overflows float64):
    # epsilon is inf (the honest bound); between them the PLD grid failed inside numpy
    for sigma in (1e-10, 1e-19, 1e-21, 1e-200, 1e-300):
        assert epsilon(noise_multiplier=sigma, sample_rate=0.5, steps=2, delta=1e-5) == math.inf
        assert math.isinf(
            epsilon(noise_multiplier=sigma, sample_rate=0.5, steps=2, delta=1e-5, accountant="rdp")
        )
        assert np.all(
            np.isinf(rdp_subsampled_gaussian(sample_rate=0.5, noise_multiplier=sigma, orders=[2.0]))
        )
    with pytest.raises(ValueError, match=r"noise_multiplier must be >= 1e-09"):
        privacy_loss_distribution(noise_multiplier=1e-200, sample_rate=0.5, steps=2)


def test_accountant_history_is_read_only_so_a_negative_entry_cannot_lower_epsilon():
    # Prepare: the history was a public list; appending (4.0, 0.01, -3000) lowered
    # epsilon from 10.46 to 7.42 without a word
    acc = PrivacyAccountant(accountant="rdp")
    acc.step(noise_multiplier=1.0, sample_rate=0.01, steps=10_000)
    honest = acc.get_epsilon(1e-5)
    # Execute / Assert: the history is a fresh tuple, so it cannot be appended to or replaced
    with pytest.raises(AttributeError):
        acc.history.append((1.0, 0.01, -3000))
    with pytest.raises(AttributeError):
        acc.history = [(1.0, 0.01, 1)]
    assert acc.history == ((1.0, 0.01, 10_000),)
    assert acc.get_epsilon(1e-5) == honest
    assert honest == epsilon(
        noise_multiplier=1.0, sample_rate=0.01, steps=10_000, delta=1e-5, accountant="rdp"
    )


@pytest.mark.parametrize(
    ("steps", "error"),
    [
        (-3000, ValueError),
        (0, ValueError),
        (2.5, TypeError),
        (True, TypeError),
        (float("nan"), TypeError),
        ("10", TypeError),
        (None, TypeError),
    ],
)
def test_accountant_step_takes_only_a_positive_integer_number_of_steps(steps, error):
    acc = PrivacyAccountant()
    acc.step(noise_multiplier=1.0, sample_rate=0.01, steps=100)
    before = acc.get_epsilon(1e-5)
    with pytest.raises(error, match="steps must be"):
        acc.step(noise_multiplier=1.0, sample_rate=0.01, steps=steps)
    assert acc.history == ((1.0, 0.01, 100),)  # nothing recorded
    assert acc.get_epsilon(1e-5) == before


@pytest.mark.filterwarnings("ignore:the best Rényi order .* is at the edge:RuntimeWarning")
def test_accountant_never_records_more_steps_than_get_epsilon_can_answer():
    # every entry step() accepts stays within MAX_STEPS, so get_epsilon answers (in seconds)
    acc = PrivacyAccountant(accountant="rdp")
    acc.step(noise_multiplier=1.0, sample_rate=0.01, steps=MAX_STEPS - 5)
    with pytest.raises(ValueError, match=r"steps must be at most 5 more"):
        acc.step(noise_multiplier=1.0, sample_rate=0.01, steps=6)
    acc.step(noise_multiplier=1.0, sample_rate=0.01, steps=5)
    assert math.isfinite(acc.get_epsilon(1e-5))


@pytest.mark.parametrize("accountant", ["rdp", "pld"])
@pytest.mark.parametrize("sigma", [1e100, 1e200, 1e300, 1.7e308])
def test_a_huge_noise_multiplier_gives_epsilon_zero_not_an_overflow_error(sigma, accountant):
    # sigma^2 overflowed float64 (OverflowError from _pld and _rdp); epsilon only falls as
    # sigma grows, and at sigma = 1e100 one step moves the output's distribution by a total
    # variation of at most q / (sigma sqrt(2 pi)) < 1e-100: epsilon is 0 at delta = 1e-5
    for q in (0.01, 1.0):
        kwargs = dict(noise_multiplier=sigma, sample_rate=q, delta=1e-5, accountant=accountant)
        assert epsilon(steps=1000, **kwargs) == 0.0
    acc = PrivacyAccountant(accountant=accountant)
    acc.step(noise_multiplier=sigma, sample_rate=0.5, steps=10)
    assert acc.get_epsilon(1e-5) == 0.0
    # composed with ordinary steps the huge-noise steps add nothing (PLD: up to the finer
    # shared grid, 1e-4 instead of the ordinary steps' own, both upper bounds)
    acc.step(noise_multiplier=2.0, sample_rate=0.5, steps=10)
    alone = epsilon(
        noise_multiplier=2.0, sample_rate=0.5, steps=10, delta=1e-5, accountant=accountant
    )
    assert acc.get_epsilon(1e-5) == pytest.approx(alone, rel=1e-3)


def test_a_tiny_sample_rate_is_calibrated_not_a_numpy_error():
    # q = 1e-300 failed inside numpy (the add direction's loss boundaries overflowed);
    # the rate is so small that the least noise searched for already meets the target
    for accountant in ("rdp", "pld"):
        sigma = noise_multiplier_for_epsilon(
            target_epsilon=1.0, sample_rate=1e-300, steps=10, delta=1e-5, accountant=accountant
        )
        assert sigma == 0.01
        assert (
            epsilon(
                noise_multiplier=sigma,
                sample_rate=1e-300,
                steps=10,
                delta=1e-5,
                accountant=accountant,
            )
            <= 1.0
        )


def test_more_steps_than_max_steps_are_refused_before_any_work():
    # 1e15 PLD steps took minutes; the check runs before any PLD is built
    for accountant in ("rdp", "pld"):
        with pytest.raises(ValueError, match=r"steps must be an integer <= 1000000000"):
            epsilon(
                noise_multiplier=1.0,
                sample_rate=0.01,
                steps=10**15,
                delta=1e-5,
                accountant=accountant,
            )
        with pytest.raises(ValueError, match="steps must be"):
            noise_multiplier_for_epsilon(
                target_epsilon=1.0,
                sample_rate=0.01,
                steps=10**15,
                delta=1e-5,
                accountant=accountant,
            )


@pytest.mark.parametrize("weak", [1e-10, 1e-19])
@pytest.mark.parametrize("q", [1e-300, 0.5, 1.0])
def test_a_negligible_noise_phase_composed_with_ordinary_steps_reads_as_infinite(weak, q):
    # sigma = 1e-19 steps composed with sigma = 1 steps failed inside numpy ("zero-size
    # array", "Target length must be positive"); no privacy is what they give
    for kind in ("pld", "rdp"):
        acc = PrivacyAccountant(accountant=kind)
        acc.step(noise_multiplier=weak, sample_rate=q, steps=7)
        acc.step(noise_multiplier=1.0, sample_rate=0.5, steps=100)
        assert acc.get_epsilon(1e-5) == math.inf
        assert epsilon(noise_multiplier=weak, sample_rate=q, steps=7, delta=1e-5,
                       accountant=kind) == math.inf  # fmt: skip


def _epsilon_read_in_one_pass(losses, pmf, infinity_mass, delta):
    """The textbook reading of a grid PLD: every suffix sum, then the first grid point meeting delta.

    delta(eps) = P(L = inf) + sum_{l > eps} pmf(l) (1 - exp(eps - l)); between grid points
    l_{j-1} < eps <= l_j it is S_j - exp(eps) R_j, solved for eps (log domain: losses run
    into the thousands at weak noise).
    """
    if infinity_mass > delta:
        return math.inf
    keep = (losses > 0) & (pmf > 0)
    losses, pmf = losses[keep], pmf[keep]
    s = np.append(np.cumsum(pmf[::-1])[::-1], 0.0) + infinity_mass
    log_r = np.append(np.logaddexp.accumulate((np.log(pmf) - losses)[::-1])[::-1], -np.inf)
    if len(losses) == 0 or s[0] - math.exp(log_r[0]) <= delta:
        return 0.0
    j = int(np.argmax(s[1:] - np.exp(losses + log_r[1:]) <= delta))
    eps = math.log(s[j] - delta) - float(log_r[j])
    return float(min(max(eps, losses[j - 1] if j > 0 else 0.0), losses[j]))


@pytest.mark.parametrize(
    ("sigma", "q", "steps", "delta"),
    [
        (4.0, 0.01, 10_000, 1e-5),  # Abadi et al.
        (0.1, 0.01, 10_000, 1e-5),  # weak noise: losses in the thousands, a coarsened grid
        (0.2, 0.1, 1000, 1e-8),
        (1.0, 1.0, 100, 1e-5),
        (0.7, 1e-4, 100_000, 1e-10),  # the FFT's floor
        (0.3, 0.5, 1, 1e-12),  # one step: no FFT
        (10.0, 1e-4, 10, 0.5),  # epsilon 0
    ],
)
def test_epsilon_is_read_off_its_pld_as_one_full_pass_would(sigma, q, steps, delta):
    # Prepare: the grid PLDs the accountant reads, in both directions
    mechanism = dict(noise_multiplier=sigma, sample_rate=q, steps=steps)
    expected = max(
        _epsilon_read_in_one_pass(
            *privacy_loss_distribution(**mechanism, direction=direction), delta
        )
        for direction in ("remove", "add")
    )
    # Execute: the accountant finds the block where delta crosses first, then the point
    ours = epsilon(**mechanism, delta=delta)
    # Assert: the same epsilon up to the order of summation (a running log-sum over 10^5
    # points drifts by about 1e-12 of its size)
    assert ours == pytest.approx(expected, rel=1e-10, abs=1e-15)
