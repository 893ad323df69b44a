"""Tests of trust_models: the noise of local, central and distributed DP, and the snippet's flaws."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fl_dp_lab import accounting
from fl_dp_lab.federated import dp_aggregate
from fl_dp_lab.federated.secure_aggregation import distributed_dp_sum
from fl_dp_lab.federated.trust_models import (
    local_epsilon,
    noise_std_on_average,
    one_example_influence,
    shuffled_epsilon,
    snippet_client_upload,
)
from fl_dp_lab.mechanisms import gaussian_sigma
from fl_dp_lab.models import LogisticRegression


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _std(model: str, **kw) -> float:
    setting = dict(epsilon=2.0, delta=1e-5, clip_norm=0.5, num_clients=16)
    return noise_std_on_average(trust_model=model, **{**setting, **kw})


def test_measured_noise_of_the_three_trust_models_matches_the_formulas():
    # Prepare: m = 16 clients with zero updates, P = 20,000 coordinates, (2, 1e-5) for one round
    m, size, c = 16, 20_000, 0.5
    sigma = gaussian_sigma(epsilon=2.0, delta=1e-5)
    zeros = torch.zeros(m, size, dtype=torch.float64)
    # Execute: local -- every client adds N(0, (sigma C)^2) itself, the server averages
    local = (torch.randn(m, size, generator=_gen(1), dtype=torch.float64) * sigma * c).mean(0)
    central = dp_aggregate(zeros, clip_norm=c, noise_multiplier=sigma, expected_clients=m,
                           generator=_gen(2))  # fmt: skip
    distributed = distributed_dp_sum(zeros, clip_norm=c, noise_multiplier=sigma, scale=256.0,
                                     generator=_gen(3)) / m  # fmt: skip
    # Assert: each within 4 standard errors of a std (relative SE 1 / sqrt(2 P) = 0.5 %)
    band = 4 / math.sqrt(2 * size)
    assert abs(float(local.std()) / _std("local") - 1) < band
    assert abs(float(central.std()) / _std("central") - 1) < band
    expected = _std("distributed", scale=256.0, dim=size)
    assert abs(float(distributed.std()) / expected - 1) < band
    # local is sqrt(m) = 4 times central: measured, and a planted "no sqrt(m)" would be 16
    assert abs(float(local.std()) / float(central.std()) - 4.0) < 4 * 2 * band
    assert _std("local") / _std("central") == pytest.approx(math.sqrt(m))


def test_distributed_equals_central_in_exact_arithmetic_and_pays_for_rounding_and_dropout():
    assert _std("distributed") == pytest.approx(_std("central"))
    # scale 256, P = 20,000: sensitivity 0.5 + sqrt(20,000) / 256 = 1.052 -> 2.1 x central
    assert _std("distributed", scale=256.0, dim=20_000) / _std("central") == pytest.approx(
        (0.5 + math.sqrt(20_000) / 256) / 0.5
    )
    assert _std("distributed", dropout_rate=0.2) / _std("central") == pytest.approx(1 / 0.8)


def test_local_epsilon_is_the_gaussian_mechanisms_epsilon():
    # one release at q = 1: the PLD accountant (a different computation) agrees within 1 %
    for sigma in (0.8, 1.5, 4.0):
        reference = accounting.epsilon(noise_multiplier=sigma, sample_rate=1.0, steps=1,
                                       delta=1e-5, accountant="pld")  # fmt: skip
        assert local_epsilon(noise_multiplier=sigma, delta=1e-5) == pytest.approx(
            reference, rel=0.01
        )


@settings(max_examples=40, deadline=None)
@given(rows=st.integers(1, 8), cols=st.integers(1, 5), seed=st.integers(0, 10_000),
       spread=st.floats(0.01, 100.0))  # fmt: skip
def test_per_sample_clipping_bounds_one_example_by_c_over_b_per_batch_only_by_2c(
    rows, cols, seed, spread
):
    g = torch.randn(rows, cols, generator=_gen(seed), dtype=torch.float64) * spread
    for i in range(rows):
        per_batch, per_sample = one_example_influence(g, clip_norm=1.0, index=i)
        assert per_sample <= 1.0 / rows + 1e-12
        assert per_batch <= 2.0 + 1e-12
        # naive reference for the per-sample change: ||clip(g_i)|| / B
        naive = min(float(g[i].norm()), 1.0) / rows
        assert per_sample == pytest.approx(naive, abs=1e-12)


def test_one_outlier_owns_the_clipped_batch_gradient():
    # Prepare: 31 ordinary gradients and one large outlier at index 0
    g = torch.randn(32, 10, generator=_gen(4), dtype=torch.float64) * 0.1
    g[0] = torch.full((10,), 50.0, dtype=torch.float64)
    per_batch, per_sample = one_example_influence(g, clip_norm=1.0, index=0)
    # Assert: per-batch, the one example moves the clipped gradient by about C (0.9 < . <= 2);
    # per-sample by at most C / 32
    assert 0.9 < per_batch <= 2.0
    assert per_sample <= 1.0 / 32 + 1e-12
    assert per_batch / per_sample > 25


def _digits(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Digit-like data: ten fixed class prototypes (seed 0) plus noise, so batches agree."""
    prototypes = torch.randn(10, 8, 8, generator=_gen(0))
    gen = _gen(seed)
    y = torch.randint(0, 10, (n,), generator=gen)
    return prototypes[y] + 0.3 * torch.randn(n, 8, 8, generator=gen), y


def test_the_snippet_as_written_fails_on_a_shape_mismatch_and_as_meant_runs():
    x, y = _digits(64, 5)
    make = lambda: LogisticRegression(64, 10)  # noqa: E731  (fresh, zero-initialised)
    with pytest.raises(RuntimeError, match="size of tensor"):
        snippet_client_upload(make, x, y, batch_size=16, sigma=1.0, rng=np.random.default_rng(0))
    upload = snippet_client_upload(make, x, y, batch_size=16, sigma=1.0,
                                   rng=np.random.default_rng(0), as_written=False)  # fmt: skip
    assert [tuple(u.shape) for u in upload] == [(10, 64), (10,)]


def test_the_snippets_upload_grows_with_the_data_clipping_bounds_no_user():
    # sigma = 0 to see the clipped part alone: each layer's batch gradient is clipped to 0.5,
    # and the upload sums them, so a client with k batches uploads norms up to 0.5 k per layer
    make = lambda: LogisticRegression(64, 10)  # noqa: E731
    norms = []
    for batches in (1, 4, 16):
        x, y = _digits(16 * batches, 6)
        upload = snippet_client_upload(make, x, y, batch_size=16, sigma=0.0,
                                       rng=np.random.default_rng(1), as_written=False)  # fmt: skip
        norms.append(float(upload[0].norm()))
        assert norms[-1] <= 0.5 * batches + 1e-9
    assert norms[2] > 8 * norms[0]  # grows with the data, unbounded per user
    # and it ignores the server's model: a fresh model per batch gives the same upload
    x, y = _digits(32, 7)
    a = snippet_client_upload(make, x, y, batch_size=16, sigma=0.0,
                              rng=np.random.default_rng(2), as_written=False)  # fmt: skip
    reference = LogisticRegression(64, 10)
    loss = torch.nn.functional.cross_entropy(reference(x[:16]), y[:16])
    g = torch.autograd.grad(loss, [reference.linear.weight])[0].double()
    first = g * min(1.0, 0.5 / float(g.norm()))
    loss = torch.nn.functional.cross_entropy(reference(x[16:]), y[16:])
    g = torch.autograd.grad(loss, [reference.linear.weight])[0].double()
    torch.testing.assert_close(a[0], first + g * min(1.0, 0.5 / float(g.norm())))


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="trust_model must be one of"):
        _std("federated")
    with pytest.raises(ValueError, match="num_clients must be an integer >= 1"):
        _std("local", num_clients=0)
    with pytest.raises(ValueError, match="scale must be > 0"):
        _std("distributed", scale=-1.0)
    with pytest.raises(ValueError, match="index must be an integer <= 1"):
        one_example_influence(torch.zeros(2, 3), clip_norm=1.0, index=2)
    with pytest.raises(TypeError, match="rng must be a numpy.random.Generator"):
        snippet_client_upload(lambda: LogisticRegression(64, 10), *_digits(4, 0), batch_size=2,
                              sigma=1.0, rng=None)  # fmt: skip


# --- shuffling: Feldman, McMillan & Talwar (2021), Theorem 3.1 ---
# Reference values computed separately with `bc -l` from the theorem's formula,
# e.g. for (1, 10^4, 1e-6):
#   e=e(1); f=(e-1)/(e+1); l(1+f*(8*sqrt(e*l(4/0.000001))/sqrt(10000)+8*e/10000))


@pytest.mark.parametrize(
    ("eps0", "n", "delta", "expected"),
    [
        (1.0, 10_000, 1e-6, 0.21402565193083782672),
        (0.5, 100_000, 1e-5, 0.02820453815029587096),
    ],
)
def test_shuffled_epsilon_matches_the_closed_form_computed_independently(eps0, n, delta, expected):
    assert shuffled_epsilon(epsilon0=eps0, num_reports=n, delta=delta) == pytest.approx(
        expected, rel=1e-12
    )


def test_shuffled_epsilon_amplifies_and_follows_its_small_eps0_slope():
    # eps <= eps0 (shuffling never hurts here), and for small eps0 the bound is
    # eps0 / 2 * (8 sqrt(log(4/delta) / n) + 8 / n) to first order
    n, delta = 10**6, 1e-6
    for eps0 in (0.01, 0.1, 1.0, 3.0):
        assert shuffled_epsilon(epsilon0=eps0, num_reports=n, delta=delta) < eps0
    slope = 4 * math.sqrt(math.log(4 / delta) / n) + 4 / n
    assert shuffled_epsilon(epsilon0=1e-4, num_reports=n, delta=delta) / 1e-4 == pytest.approx(
        slope, rel=1e-3
    )


def test_shuffled_epsilon_is_below_the_simplified_sixteen_form_when_n_is_large():
    # when e^eps0 / n <= sqrt(e^eps0 log(4/delta) / n) the two terms are at most
    # 16 sqrt(e^eps0 log(4/delta) / n), the simplified form often quoted for the theorem
    for eps0, n, delta in ((0.5, 10**4, 1e-5), (2.0, 10**5, 1e-6), (4.0, 10**6, 1e-8)):
        e = math.exp(eps0)
        loose = math.log1p((e - 1) / (e + 1) * 16 * math.sqrt(e * math.log(4 / delta) / n))
        assert shuffled_epsilon(epsilon0=eps0, num_reports=n, delta=delta) <= loose


def test_shuffled_epsilon_grows_with_eps0_and_shrinks_with_n_and_delta():
    eps = [shuffled_epsilon(epsilon0=e0, num_reports=10**5, delta=1e-6) for e0 in (0.1, 1, 2, 4)]
    assert all(a < b for a, b in zip(eps, eps[1:]))
    by_n = [
        shuffled_epsilon(epsilon0=1.0, num_reports=n, delta=1e-6) for n in (10**4, 10**5, 10**6)
    ]
    assert all(a > b for a, b in zip(by_n, by_n[1:]))
    by_delta = [shuffled_epsilon(epsilon0=1.0, num_reports=10**5, delta=d) for d in (1e-4, 1e-8)]
    assert by_delta[0] < by_delta[1]


def test_shuffled_epsilon_refuses_inputs_outside_the_theorem():
    # eps0 <= log(n / (16 log(2/delta))): at delta = 1e-5, eps0 = 2 needs n >= 1,444
    limit = math.log(1444 / (16 * math.log(2 / 1e-5)))
    assert limit > 2.0 > math.log(1443 / (16 * math.log(2 / 1e-5)))
    assert shuffled_epsilon(epsilon0=2.0, num_reports=1444, delta=1e-5) > 0
    with pytest.raises(ValueError, match=r"epsilon0 must be <= log\(n / \(16 log\(2 / delta\)\)\)"):
        shuffled_epsilon(epsilon0=2.0, num_reports=1443, delta=1e-5)
    with pytest.raises(ValueError, match="n is too small"):
        shuffled_epsilon(epsilon0=0.1, num_reports=100, delta=1e-5)
    with pytest.raises(ValueError, match="epsilon0 must be"):
        shuffled_epsilon(epsilon0=0.0, num_reports=10**5, delta=1e-5)
    with pytest.raises(ValueError, match="num_reports must be"):
        shuffled_epsilon(epsilon0=1.0, num_reports=0, delta=1e-5)
    with pytest.raises(ValueError, match="delta must be"):
        shuffled_epsilon(epsilon0=1.0, num_reports=10**5, delta=1.0)


def test_shuffled_epsilon_matches_a_value_worked_out_by_hand():
    # Theorem 3.1 of Feldman, McMillan & Talwar (2021) with numbers chosen so the arithmetic
    # is exact by hand: e^eps0 = 4, log(4 / delta) = 9, n = 3,600:
    #   (e^eps0 - 1) / (e^eps0 + 1) = 3/5
    #   8 sqrt(e^eps0 log(4/delta) / n) = 8 sqrt(36 / 3600) = 8 / 10 = 0.8
    #   8 e^eps0 / n = 32 / 3600 = 2 / 225
    #   eps = log(1 + 3/5 (4/5 + 2/225)) = log(1 + 12/25 + 2/375) = log(557 / 375)
    # valid: log(2/delta) = 9 - log 2 = 8.307, n / (16 x 8.307) = 27.09 > e^eps0 = 4
    got = shuffled_epsilon(epsilon0=math.log(4), num_reports=3600, delta=4 * math.exp(-9))
    assert got == pytest.approx(math.log(557 / 375), rel=1e-12)
    # planted slips move it by far more than rounding: the simplified 16 form
    # (log(1 + 3/5 x 16/10) = log(1.96)), and log(1/delta) = 9 - log 4 in place of log(4/delta)
    assert abs(got - math.log(1.96)) > 0.2
    slip = math.log1p(0.6 * (8 * math.sqrt(4 * (9 - math.log(4)) / 3600) + 32 / 3600))
    assert abs(got - slip) > 0.01


def test_shuffled_epsilon_validity_needs_log_2_over_delta_and_the_constant_16():
    # delta = 2 e^-8: log(2/delta) = 8, so eps0 = log 4 needs n >= 16 x 8 x 4 = 512 exactly.
    # With log(4/delta) = 8.69 in the condition the threshold would be 557; with 8 for 16, 256.
    delta = 2 * math.exp(-8)
    assert shuffled_epsilon(epsilon0=math.log(4), num_reports=513, delta=delta) > 0
    with pytest.raises(ValueError, match="epsilon0 must be <="):
        shuffled_epsilon(epsilon0=math.log(4), num_reports=511, delta=delta)
    with pytest.raises(ValueError, match="epsilon0 must be <="):
        shuffled_epsilon(epsilon0=math.log(4), num_reports=300, delta=delta)  # 8 for 16 would pass


# --- the three trust models in training: run_trust_model and equal_epsilon_noise ---


def _federation(num_clients: int = 60):
    from fl_dp_lab.data import make_synthetic_federated
    from fl_dp_lab.federated import split_by_client

    fed = make_synthetic_federated(num_clients=num_clients, seed=0, dim=10)
    clients = split_by_client(fed.x, fed.y, fed.client_indices())
    return clients, torch.as_tensor(fed.x_test), torch.as_tensor(fed.y_test)


def _run(trust_model, sigma, *, seed=0, rounds=3, participations=None, sample_rate=0.2):
    from fl_dp_lab.federated import LocalSGD, UserLevelDP
    from fl_dp_lab.federated.trust_models import run_trust_model

    clients, x_test, y_test = _federation()
    privacy = UserLevelDP(noise_multiplier=sigma, clip_norm=1.0, sample_rate=sample_rate,
                          delta=1e-5, accountant="rdp")  # fmt: skip
    return run_trust_model(
        LogisticRegression(10, 10), clients, trust_model=trust_model, rounds=rounds,
        privacy=privacy, local=LocalSGD(epochs=1, batch_size=8, lr=0.5), generator=_gen(seed),
        participations=participations, x_test=x_test, y_test=y_test,
    )  # fmt: skip


def test_central_trust_model_is_the_courses_dp_fedavg_bit_for_bit():
    from fl_dp_lab.federated import LocalSGD, UserLevelDP, run_dp_fedavg

    clients, x_test, y_test = _federation()
    privacy = UserLevelDP(noise_multiplier=1.0, clip_norm=1.0, sample_rate=0.2, delta=1e-5,
                          accountant="rdp")  # fmt: skip
    model = LogisticRegression(10, 10)
    reference = run_dp_fedavg(model, clients, rounds=3, privacy=privacy,
                              local=LocalSGD(epochs=1, batch_size=8, lr=0.5), generator=_gen(0),
                              x_test=x_test, y_test=y_test, progress=False)  # fmt: skip
    ours = _run("central", 1.0)
    assert ours.accuracy == reference.accuracy and ours.epsilon == reference.epsilon


def test_local_trust_model_adds_each_clients_noise_and_caps_participations():
    # without noise the first round moves the model alike under the three (distributed up to
    # the rounding at scale 2^10): the trust models differ only in who adds the noise. (Later
    # rounds sample other clients: each model draws its noise from the run's generator.)
    plain = {tm: _run(tm, 0.0, rounds=1).loss[0] for tm in ("local", "central", "distributed")}
    assert plain["local"] == pytest.approx(plain["central"], rel=1e-6)
    assert plain["distributed"] == pytest.approx(plain["central"], rel=1e-3)
    assert plain["central"] != pytest.approx(_run("central", 1.0, rounds=1).loss[0], rel=1e-3)
    # with a cap of one participation, no client is counted twice over 6 rounds at q = 0.5
    capped = _run("local", 1.0, rounds=6, participations=1, sample_rate=0.5)
    assert sum(capped.clients) <= 60
    uncapped = _run("local", 1.0, rounds=6, sample_rate=0.5)
    assert sum(uncapped.clients) > 60  # about 180 participations: the cap did bite
    # the recorded epsilon is one client's: one release at sigma = 1 (no amplification)
    assert capped.epsilon[-1] == pytest.approx(
        accounting.epsilon(noise_multiplier=1.0, sample_rate=1.0, steps=1, delta=1e-5,
                           accountant="rdp")
    )  # fmt: skip


def test_equal_epsilon_noise_gives_each_trust_model_the_target_epsilon():
    from fl_dp_lab.federated.trust_models import equal_epsilon_noise

    for model, q, steps in (("central", 0.1, 10), ("distributed", 0.1, 10), ("local", 1.0, 2)):
        sigma = equal_epsilon_noise(trust_model=model, epsilon=4.0, delta=1e-5, sample_rate=0.1,
                                    rounds=10, participations=2)  # fmt: skip
        got = accounting.epsilon(noise_multiplier=sigma, sample_rate=q, steps=steps, delta=1e-5,
                                 accountant="rdp")  # fmt: skip
        assert got == pytest.approx(4.0, rel=0.01)
    with pytest.raises(ValueError, match="participations must be an integer >= 1"):
        equal_epsilon_noise(trust_model="local", epsilon=4.0, delta=1e-5, sample_rate=0.1,
                            rounds=10, participations=0)  # fmt: skip
