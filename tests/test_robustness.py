"""Bad input never weakens privacy: the privacy-critical functions under hostile arguments.

Each property test replaces one argument of a valid call by a value from the
bad families (NaN, +-inf, 0, negative, 1e300, empty, wrong dtype, NumPy and
torch swapped, None, strings, bool) or by an arbitrary draw, and asserts one
of two outcomes: a ValueError or TypeError whose message names the argument,
or a valid result, checked against an honest reference: never a sampled rate
above q, never an epsilon below the exact one, never noise lost to rounding,
never masks that fail to hide an upload. The regression tests below them
pin the hangs and absurd values of the robustness issue: each call must refuse
before doing the work (none asserts a time; each would hang or run for
minutes without its check).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import optimize, special, stats

from fl_dp_lab import accounting
from fl_dp_lab.auditing import audit_scores, epsilon_lower_bound
from fl_dp_lab.dpsgd import MAX_EXAMPLES, MAX_STEPS, add_noise, poisson_batches, train_dp_sgd
from fl_dp_lab.federated import poisson_client_sample
from fl_dp_lab.federated.adaptive_clipping import MAX_CLIP_LR, adaptive_clip_norm
from fl_dp_lab.federated.secure_aggregation import (
    MODULUS,
    encode,
    mask_update,
    pairwise_seeds,
    secure_sum,
    unmask_sum,
)
from fl_dp_lab.flower.app import DEFAULT_RUN_CONFIG, check_run_config
from fl_dp_lab.mechanisms import gaussian_mechanism, laplace_mechanism
from fl_dp_lab.models import LogisticRegression
from fl_dp_lab.widgets.mechanisms import privacy_readout

# values at the edge of the Rényi grid are expected here (epsilon is still a bound)
pytestmark = pytest.mark.filterwarnings(
    "ignore:the best Rényi order .* is at the edge:RuntimeWarning"
)

#: One of each bad family (values that are valid for some parameters are kept: the
#: property then checks the result instead of the error)
BAD = [
    float("nan"),
    float("inf"),
    float("-inf"),
    0,
    0.0,
    -1,
    -1.0,
    1e300,
    -1e300,
    10**15,
    1e-300,
    None,
    "1",
    "",
    True,
    False,
    [],
    [1.0],
    np.float64("nan"),
    np.array([0.5]),
    np.int64(3),
    torch.tensor(0.5),
    torch.tensor([1.0, 2.0]),
]
bad_values = st.one_of(
    st.sampled_from(BAD),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(10**20), 10**20),
)
QUICK = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def outcome(call, *names):
    """Run ``call``: (True, result), or (False, None) after checking the error names an argument."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # edge-of-grid orders
            return True, call()
    except (ValueError, TypeError) as error:
        assert any(name in str(error) for name in names), f"{error!r} names none of {names}"
        return False, None


def exact_gaussian_epsilon(mu: float, delta: float) -> float:
    """Epsilon of the Gaussian mechanism with sensitivity / sigma = mu (Balle & Wang 2018).

    delta(eps) = Phi(mu/2 - eps/mu) - e^eps Phi(-mu/2 - eps/mu), solved in the log domain.
    T steps without subsampling are one Gaussian with mu = sqrt(T) / sigma: the honest
    epsilon every accountant must stay at or above.
    """

    def excess(eps: float) -> float:
        log_a = special.log_ndtr(mu / 2 - eps / mu)
        log_b = eps + special.log_ndtr(-mu / 2 - eps / mu)
        return log_a + math.log1p(-math.exp(min(log_b - log_a, 0.0))) - math.log(delta)

    if excess(0.0) <= 0:
        return 0.0
    return optimize.brentq(excess, 0.0, mu * mu / 2 + 50 * mu + 50, rtol=1e-12)


# ---------------------------------------------------------------- accountants


EPSILON_ARGS = dict(noise_multiplier=1.0, sample_rate=0.01, steps=1000, delta=1e-5)


@QUICK
@given(name=st.sampled_from(sorted(EPSILON_ARGS)), value=bad_values)
def test_epsilon_refuses_by_name_or_returns_a_non_negative_epsilon(name, value):
    arguments = EPSILON_ARGS | {name: value}
    ok, eps = outcome(lambda: accounting.epsilon(**arguments, accountant="rdp"), name)
    if ok:
        assert isinstance(eps, float) and eps >= 0.0  # NaN fails here too
        # an accepted value is a valid one: the same call with it as a plain number agrees
        plain = EPSILON_ARGS | {name: float(value) if name != "steps" else int(value)}
        assert eps == accounting.epsilon(**plain, accountant="rdp")


@settings(max_examples=12, deadline=None)
@given(
    sigma=st.floats(0.5, 50.0),
    steps=st.integers(1, 10_000),
    delta=st.sampled_from([1e-3, 1e-5, 1e-7]),
    accountant=st.sampled_from(["rdp", "pld"]),
)
def test_epsilon_is_never_below_the_exact_gaussian_epsilon(sigma, steps, delta, accountant):
    # q = 1: T steps are one Gaussian mechanism with mu = sqrt(T) / sigma, in closed form
    exact = exact_gaussian_epsilon(math.sqrt(steps) / sigma, delta)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ours = accounting.epsilon(
            noise_multiplier=sigma, sample_rate=1.0, steps=steps, delta=delta, accountant=accountant
        )
    assert ours >= exact - 1e-9 * max(exact, 1.0)


@QUICK
@given(name=st.sampled_from(["target_epsilon", "sample_rate", "steps", "delta"]), value=bad_values)
def test_calibration_refuses_by_name_or_meets_its_target(name, value):
    arguments = dict(target_epsilon=2.0, sample_rate=0.01, steps=100, delta=1e-5) | {name: value}
    ok, sigma = outcome(
        lambda: accounting.noise_multiplier_for_epsilon(**arguments, accountant="rdp"), name
    )
    if ok:
        assert sigma > 0.0
        spent = accounting.epsilon(
            noise_multiplier=sigma,
            sample_rate=float(arguments["sample_rate"]),
            steps=int(arguments["steps"]),
            delta=float(arguments["delta"]),
            accountant="rdp",
        )
        assert spent <= float(arguments["target_epsilon"]) * (1 + 1e-9)


steps_entries = st.tuples(
    st.one_of(st.floats(0.3, 10.0), bad_values),
    st.one_of(st.floats(1e-4, 1.0), bad_values),
    st.one_of(st.integers(1, 1000), bad_values),
)


@settings(max_examples=25, deadline=None)
@given(entries=st.lists(steps_entries, min_size=1, max_size=5))
def test_the_accountant_refuses_by_name_and_its_epsilon_never_falls(entries):
    # whatever step() accepts, get_epsilon answers, and epsilon never goes down
    acc = accounting.PrivacyAccountant(accountant="rdp")
    previous = 0.0
    for sigma, q, steps in entries:
        history = acc.history
        ok, _ = outcome(
            lambda s=sigma, r=q, t=steps: acc.step(noise_multiplier=s, sample_rate=r, steps=t),
            "noise_multiplier",
            "sample_rate",
            "steps",
        )
        if not ok:
            assert acc.history == history  # a refused step records nothing
            continue
        now = outcome(lambda: acc.get_epsilon(1e-5), "delta")[1]
        assert now is not None and now >= previous - 1e-12
        previous = now
    assert all(t >= 1 and isinstance(t, int) for _, _, t in acc.history)


# ---------------------------------------------------------------- samplers


def _expected_at_most(draws: int, q: float) -> float:
    """A count a Binomial(draws, q) exceeds with probability below 1e-9."""
    return float(stats.binom.ppf(1.0 - 1e-9, draws, q))


@settings(max_examples=20, deadline=None)
@given(
    q=st.one_of(st.floats(1e-12, 1.0), st.sampled_from([1e-9, 2.0**-24 / 3, 0.5 + 2.0**-30])),
    seed=st.integers(0, 2**32),
)
def test_a_sampled_rate_never_exceeds_q(q, seed):
    # 10^5 coin flips per sampler; the count must stay below Binomial(10^5, q)'s
    # 1 - 1e-9 quantile (the float32 draw rounded q up to 2^-24, 60x at q = 1e-9)
    generator = torch.Generator().manual_seed(seed)
    batches = poisson_batches(10_000, sample_rate=q, steps=10, generator=generator)
    clients = poisson_client_sample(100_000, sample_rate=q, generator=generator)
    assert sum(len(b) for b in batches) <= _expected_at_most(100_000, q)
    assert len(clients) <= _expected_at_most(100_000, q)
    assert all(b.dtype == torch.long and len(set(b.tolist())) == len(b) for b in batches)


@pytest.mark.parametrize("sampler", ["poisson_batches", "poisson_client_sample"])
def test_at_q_1e9_the_selection_count_matches_the_binomial_not_2_to_the_minus_24(sampler):
    # Prepare: 2e8 coin flips at q = 1e-9 (seed 0). The Binomial expects 0.2 selections:
    # P(count >= 5) = 2.5e-6. The float32 draw kept each with probability 2^-24 = 6e-8,
    # 11.9 expected, and would pass this test with probability 0.006. Here q 2^24 = 0.0168:
    # every selection comes from the tie-break at k = 0, so this tests that path too
    generator = torch.Generator().manual_seed(0)
    # Execute
    if sampler == "poisson_batches":
        count = sum(
            len(b) for b in poisson_batches(10**6, sample_rate=1e-9, steps=200, generator=generator)
        )
    else:
        count = sum(
            len(poisson_client_sample(10**6, sample_rate=1e-9, generator=generator))
            for _ in range(200)
        )
    # Assert
    assert count <= 4


def test_rates_on_the_float32_grid_draw_exactly_what_they_drew_before():
    # q a multiple of 2^-24 (0.5, 1) never needs the tie-break: seeded runs are unchanged
    for q in (0.5, 0.25, 1.0):
        ours = poisson_batches(1000, sample_rate=q, steps=3, generator=torch.Generator())
        reference = torch.Generator()
        before = [(torch.rand(1000, generator=reference) < q).nonzero().flatten() for _ in range(3)]
        assert all(torch.equal(a, b) for a, b in zip(ours, before, strict=True))


#: bad values that a sampler can take without drawing for minutes: counts either small
#: or above every limit (10^8 examples, 10^6 steps)
sampler_values = st.one_of(
    st.sampled_from(BAD),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(10**20), 1000),
    st.integers(MAX_EXAMPLES + 1, 10**20),
)


@QUICK
@given(
    name=st.sampled_from(["num_examples", "sample_rate", "steps", "generator"]),
    value=sampler_values,
)
def test_samplers_refuse_bad_arguments_by_name(name, value):
    arguments = dict(num_examples=50, sample_rate=0.1, steps=3, generator=torch.Generator())
    arguments[name] = value
    ok, batches = outcome(lambda: poisson_batches(**arguments), name)
    if ok:
        assert len(batches) == int(arguments["steps"])
    clients = dict(num_clients=arguments.pop("num_examples")) | arguments
    clients.pop("steps")
    ok, ids = outcome(lambda: poisson_client_sample(**clients), name.replace("examples", "clients"))
    if ok:
        assert len(ids) <= int(clients["num_clients"])


def test_more_steps_than_max_steps_are_refused_before_the_batch_list_is_built():
    # sample_rate = 1e-9 asked train_dp_sgd for 10^9 batches an epoch, built as one list
    x, y = torch.zeros(4, 2), torch.tensor([0, 1, 0, 1])
    with pytest.raises(ValueError, match=r"1,000,000,000 steps \(sample_rate=1e-09, epochs=1\)"):
        train_dp_sgd(
            LogisticRegression(2, 2),
            x,
            y,
            sample_rate=1e-9,
            noise_multiplier=1.0,
            max_grad_norm=1.0,
            lr=0.1,
            epochs=1,
            delta=1e-5,
            generator=torch.Generator(),
            progress=False,
        )
    with pytest.raises(ValueError, match=f"steps must be an integer <= {MAX_STEPS}"):
        poisson_batches(10, sample_rate=0.5, steps=MAX_STEPS + 1, generator=torch.Generator())


# ---------------------------------------------------------------- mechanisms and noise


@QUICK
@given(
    name=st.sampled_from(["value", "sensitivity", "sigma", "epsilon"]),
    bad=bad_values,
    mechanism=st.sampled_from(["gaussian", "laplace"]),
)
def test_mechanisms_refuse_by_name_or_add_noise_of_the_promised_scale(name, bad, mechanism):
    # a valid result keeps its noise: over 2,000 copies of the value the sample std of
    # output - value is within 20 % of the promised std (its standard error: 1.6 %
    # Gaussian, 3.5 % Laplace); a value the noise vanished into had std 0
    rng = np.random.default_rng(0)
    arguments = {"value": 3.0, "sensitivity": 1.0, "sigma": 2.0, "epsilon": 0.5} | {name: bad}
    if mechanism == "gaussian":
        arguments.pop("epsilon")
        call = gaussian_mechanism
    else:
        arguments.pop("sigma")
        call = laplace_mechanism
    if name not in arguments:
        return
    value = arguments.pop("value")
    ok, out = outcome(
        lambda: call(np.full(2000, value) if np.ndim(value) == 0 else value, **arguments, rng=rng),
        name,
        "sensitivity / epsilon",
    )
    if not ok:
        return
    out = np.asarray(out, dtype=np.float64)
    assert np.all(np.isfinite(out))
    if mechanism == "gaussian":
        std = float(arguments["sigma"])
    else:
        std = math.sqrt(2.0) * float(arguments["sensitivity"]) / float(arguments["epsilon"])
    if std > 0 and out.size == 2000:  # in units of std: 1e300-sized noise squares to inf
        assert np.std((out - np.float64(value)) / std) == pytest.approx(1.0, rel=0.2)


def test_add_noise_refuses_entries_the_noise_would_vanish_into():
    # 3e38 in float32: floats there are 3.6e31 apart, noise of std 1 rounded away entirely
    generator = torch.Generator().manual_seed(0)
    huge = torch.full((3,), 3e38)
    assert torch.equal(huge + torch.randn(3, generator=generator), huge)  # the bug
    with pytest.raises(ValueError, match=r"grad_sum\['w'\] must be at most 1.31e\+05"):
        add_noise({"w": huge}, max_grad_norm=1.0, noise_multiplier=1.0, generator=generator)
    with pytest.raises(ValueError, match=r"noise_multiplier \* max_grad_norm must be <="):
        add_noise({"w": torch.zeros(3)}, max_grad_norm=1.0, noise_multiplier=1e300,
                  generator=generator)  # fmt: skip
    # noise of std 1e-204 underflows to exactly 0 in float32 (found by the property below)
    with pytest.raises(ValueError, match=r"noise_multiplier \* max_grad_norm must be 0 or >="):
        add_noise({"w": torch.zeros(3)}, max_grad_norm=1.0, noise_multiplier=1e-204,
                  generator=generator)  # fmt: skip
    # float64 sums hold far larger entries: the limit is the dtype's
    noisy = add_noise({"w": torch.full((2000,), 1e12, dtype=torch.float64)}, max_grad_norm=1.0,
                      noise_multiplier=1.0, generator=generator)["w"]  # fmt: skip
    assert float((noisy - 1e12).std()) == pytest.approx(1.0, rel=0.1)


@settings(max_examples=25, deadline=None)
@given(
    dtype=st.sampled_from([torch.float32, torch.float64, torch.bfloat16]),
    magnitude=st.one_of(st.floats(0.0, 1e6), st.sampled_from([3e38, 1e300, 1e20])),
    sigma=st.one_of(st.floats(0.0, 10.0), st.sampled_from([1e-6, 1e300])),
    clip=st.floats(1e-3, 10.0),
)
def test_add_noise_refuses_by_name_or_adds_noise_of_std_sigma_c(dtype, magnitude, sigma, clip):
    # 4,000 entries of one magnitude: an accepted call's noise has sample std within 15 %
    # of sigma C (standard error 1.1 %); noise rounded away would show std 0
    value = torch.full((4000,), magnitude, dtype=torch.float64).to(dtype)
    if not torch.isfinite(value).all():
        return  # not representable in this dtype: non-finite input is another check's job
    ok, noisy = outcome(
        lambda: add_noise(
            {"w": value},
            max_grad_norm=clip,
            noise_multiplier=sigma,
            generator=torch.Generator().manual_seed(0),
        ),  # fmt: skip
        "grad_sum['w']",
        "noise_multiplier",
    )
    if ok and sigma * clip > 0:
        spread = float(((noisy["w"].double() - value.double()) / (sigma * clip)).std())
        assert spread == pytest.approx(1.0, rel=0.15)  # in units of sigma C: no overflow


# ---------------------------------------------------------------- secure aggregation


@QUICK
@given(
    name=st.sampled_from(["updates", "dropped"]),
    bad=st.one_of(
        bad_values,
        st.sampled_from(
            [
                torch.full((3, 2), float("nan")),
                torch.full((3, 2), 1e300, dtype=torch.float64),
                torch.full((3, 2), 32767.999995, dtype=torch.float64),
                torch.ones(3, 2, dtype=torch.long),
                torch.ones(3, 2, dtype=torch.bool),
                np.ones((3, 2)),
                torch.ones(2),
                torch.ones(1, 2),
                [3],
                [-1],
                [0, 1, 2],
                [0.5],
                "0",
                torch.tensor([1]),
                torch.tensor([[1]]),
                np.array([1]),
            ]
        ),
    ),
)
def test_secure_sum_refuses_by_name_or_returns_the_survivors_sum(name, bad):
    arguments = {"updates": torch.tensor([[0.5, -1.0], [0.25, 2.0], [1.0, 1.0]]), "dropped": [1]}
    arguments[name] = bad
    ok, total = outcome(
        lambda: secure_sum(
            arguments["updates"], generator=torch.Generator(), dropped=arguments["dropped"]
        ),  # fmt: skip
        name,
        "the sum of updates",
    )
    if ok:
        updates = arguments["updates"]
        dropped = arguments["dropped"]
        gone = set(dropped.tolist() if isinstance(dropped, torch.Tensor) else dropped)
        survivors = [i for i in range(len(updates)) if i not in gone]
        expected = updates[survivors].double().sum(0)
        assert torch.allclose(total.double(), expected, atol=len(updates) * 2.0**-16, rtol=0)


small_seed_matrices = st.lists(
    st.sampled_from([0, 1, 2, 3, -1, 2**40]), min_size=9, max_size=9
).map(lambda entries: torch.tensor(entries, dtype=torch.long).reshape(3, 3))


@settings(max_examples=40, deadline=None)
@given(seeds=small_seed_matrices, symmetrise=st.booleans())
def test_an_accepted_seed_matrix_masks_every_upload_and_its_masks_cancel(seeds, symmetrise):
    # Prepare: symmetrised half of the time, so both refusals and acceptances are drawn
    if symmetrise:
        seeds = seeds.triu(1) + seeds.triu(1).T
    updates = torch.tensor([[0.5, -1.0, 2.0], [0.25, 2.0, 0.0], [1.0, 1.0, -3.0]])
    encoded = [encode(u) for u in updates]
    # Execute
    ok, uploads = outcome(
        lambda: torch.stack([mask_update(e, i, seeds) for i, e in enumerate(encoded)]), "seeds"
    )
    # Assert: accepted seeds hide every client (no upload is its clear encoding) and cancel
    if ok:
        assert not any(torch.equal(u, e) for u, e in zip(uploads, encoded, strict=True))
        total = unmask_sum(uploads, range(3), seeds)
        assert torch.equal(total, encode(updates.sum(0)))


def test_pairwise_seeds_are_always_accepted():
    for k in (2, 3, 7):
        seeds = pairwise_seeds(k, generator=torch.Generator().manual_seed(k))
        assert int(mask_update(encode(torch.zeros(4)), 0, seeds).max()) < MODULUS


# ---------------------------------------------------------------- auditing


COUNTS = dict(true_positives=80, false_positives=5, true_negatives=95, false_negatives=20)


@QUICK
@given(name=st.sampled_from([*COUNTS, "delta", "confidence"]), value=bad_values)
def test_the_audit_bound_refuses_by_name_or_is_a_non_negative_number(name, value):
    arguments = COUNTS | {"delta": 1e-5, "confidence": 0.95} | {name: value}
    ok, eps = outcome(lambda: epsilon_lower_bound(**arguments), name)
    if ok:
        assert isinstance(eps, float) and 0.0 <= eps < math.inf


@QUICK
@given(
    name=st.sampled_from(["scores_in", "scores_out"]),
    bad=st.one_of(
        bad_values,
        st.sampled_from(
            [
                np.array([]),
                np.full(10, np.nan),
                np.array(["a"] * 10),
                np.ones((5, 2)),
                torch.ones(10),
                [1.0] * 3,
            ]
        ),  # fmt: skip
    ),
)
def test_audit_scores_refuse_by_name_or_certify_a_non_negative_epsilon(name, bad):
    rng = np.random.default_rng(0)
    arguments = {"scores_in": rng.normal(1.0, 1.0, 200), "scores_out": rng.normal(0.0, 1.0, 200)}
    arguments[name] = bad
    ok, result = outcome(lambda: audit_scores(**arguments, delta=1e-5), name)
    if ok:
        assert 0.0 <= result.epsilon < math.inf


# ---------------------------------------------------------------- Flower run config


@QUICK
@given(name=st.sampled_from(sorted(set(DEFAULT_RUN_CONFIG) - {"history-path"})), value=bad_values)
def test_the_run_config_refuses_by_key_or_holds_values_in_range(name, value):
    ok, config = outcome(lambda: check_run_config(DEFAULT_RUN_CONFIG | {name: value}), name)
    if ok:
        assert 1 <= config["num-rounds"] <= accounting.MAX_STEPS
        assert 0.0 < config["sample-rate"] <= 1.0
        assert 0.0 < config["delta"] < 1.0
        for key in ("noise-multiplier", "clip-norm", "lr", "server-lr", "timeout"):
            assert math.isfinite(config[key]) and config[key] >= 0.0
        assert config["local-epochs"] >= 1 and config["batch-size"] >= 1


# ---------------------------------------------------------------- hangs and absurd values


def test_make_private_refuses_an_absurd_target_before_opacus_searches():
    # Opacus's sigma search never returned for target_epsilon = 1e300
    from fl_dp_lab.opacus_bridge import make_private

    x, y = torch.zeros(8, 2), torch.tensor([0, 1] * 4)
    for target in (1e300, 101.0, math.inf):
        with pytest.raises(ValueError, match="target_epsilon must be"):
            make_private(LogisticRegression(2, 2), x, y, batch_size=4, lr=0.1, max_grad_norm=1.0,
                         generator=torch.Generator(), target_epsilon=target, epochs=1)  # fmt: skip


@settings(max_examples=30, deadline=None)
@given(
    clip_lr=st.one_of(st.floats(1e-6, MAX_CLIP_LR), st.sampled_from([1e300, 11.0, math.inf])),
    stddev=st.one_of(st.floats(0.0, 10.0), st.sampled_from([1e300, 1e10])),
    seed=st.integers(0, 1000),
)
def test_adaptive_clip_norm_refuses_or_returns_a_positive_finite_norm(clip_lr, stddev, seed):
    # clip_lr = 1e300 returned 0 although C_next > 0 is promised
    ok, norm = outcome(
        lambda: adaptive_clip_norm(
            torch.tensor([0.5, 2.0, 3.0]),
            clip_norm=1.0,
            target_quantile=0.5,
            clip_lr=clip_lr,
            clip_count_stddev=stddev,
            expected_clients=3.0,
            generator=torch.Generator().manual_seed(seed),
        ),
        "clip_lr",
        "the next clip norm",
    )
    if ok:
        assert 0.0 < norm < math.inf
    if clip_lr > MAX_CLIP_LR:
        assert not ok


def test_readouts_never_print_a_negative_epsilon():
    with pytest.raises(ValueError, match="epsilon must be >= 0"):
        privacy_readout(1.0, -1.0, 1e-5)
    assert "(4.38, 1e-05)-DP" in privacy_readout(1.0, 4.38, 1e-5)
