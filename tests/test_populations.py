"""Tests of fl_dp_lab.populations: Poisson client sampling at scale, generated populations."""

from __future__ import annotations

import itertools
import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from scipy import stats

from fl_dp_lab.data import load_mnist, make_synthetic_federated
from fl_dp_lab.populations import (
    MAX_CLIENTS,
    SyntheticPopulation,
    VirtualWriters,
    apply_style,
    sample_client_ids,
)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _chi_square_p(observed: np.ndarray, expected: np.ndarray) -> float:
    """p-value of Pearson's chi-square, bins merged from the tails until each expects >= 5."""
    obs, exp = list(observed.astype(float)), list(expected.astype(float))
    merged_obs, merged_exp, acc_o, acc_e = [], [], 0.0, 0.0
    for o, e in zip(obs, exp):
        acc_o, acc_e = acc_o + o, acc_e + e
        if acc_e >= 5.0:
            merged_obs.append(acc_o)
            merged_exp.append(acc_e)
            acc_o, acc_e = 0.0, 0.0
    merged_obs[-1] += acc_o
    merged_exp[-1] += acc_e
    statistic = sum((o - e) ** 2 / e for o, e in zip(merged_obs, merged_exp))
    return float(stats.chi2.sf(statistic, df=len(merged_obs) - 1))


def _round_size_p(sizes: np.ndarray, num_clients: int, q: float) -> float:
    support = np.arange(num_clients + 1)
    expected = stats.binom.pmf(support, num_clients, q) * len(sizes)
    return _chi_square_p(np.bincount(sizes, minlength=num_clients + 1), expected)


# --- sample_client_ids: the law -------------------------------------------------------


def test_round_sizes_follow_binomial_k_q():
    # Prepare: 3,000 rounds of K = 2,000 clients at q = 0.02 (mean 40, std 6.3), seed 0.
    num_clients, q, rounds = 2000, 0.02, 3000
    gen = _gen(0)
    # Execute
    sizes = np.array(
        [len(sample_client_ids(num_clients, sample_rate=q, generator=gen)) for _ in range(rounds)]
    )
    # Assert: Pearson's chi-square against Binomial(K, q), level 0.001.
    assert _round_size_p(sizes, num_clients, q) > 1e-3
    # Power, stated and shown: the same test on 3,000 draws of Binomial(K, 1.05 q) (a rate
    # 5 % off: the mean moves by 2 = 0.32 std, a non-centrality of about 3,000 * 0.32^2 = 300)
    # or on fixed-size rounds of qK clients (no spread at all) rejects at p < 1e-6.
    rng = np.random.default_rng(1)
    assert _round_size_p(rng.binomial(num_clients, 1.05 * q, rounds), num_clients, q) < 1e-6
    assert _round_size_p(np.full(rounds, 40), num_clients, q) < 1e-6


@pytest.mark.parametrize("q", [0.3, 0.8])  # M <= K/2 mostly, and mostly the complement branch
def test_every_subset_has_its_poisson_probability(q):
    # Prepare: K = 4, so all 16 subsets can be counted; 8,000 rounds, seed 2.
    num_clients, rounds = 4, 8000
    gen = _gen(2)
    subsets = [frozenset(s) for m in range(5) for s in itertools.combinations(range(4), m)]
    # Execute
    counts = dict.fromkeys(subsets, 0)
    for _ in range(rounds):
        ids = sample_client_ids(num_clients, sample_rate=q, generator=gen)
        counts[frozenset(ids.tolist())] += 1
    # Assert: each S against q^|S| (1-q)^(K-|S|), chi-square at level 0.001. A sampler that
    # got the round size right but favoured low ids (modulo bias, a sorted prefix) fails:
    # e.g. always {0} for M = 1 puts 4 times the expected count on one subset.
    expected = np.array([q ** len(s) * (1 - q) ** (4 - len(s)) * rounds for s in subsets])
    observed = np.array([counts[s] for s in subsets])
    assert _chi_square_p(observed, expected) > 1e-3


def test_each_id_joins_at_rate_q():
    # Prepare: K = 50, q = 0.1, 4,000 rounds: each id's count ~ Binomial(4000, 0.1),
    # mean 400, std 19; a 5-std band (95) holds for all 50 ids with probability > 0.9999.
    num_clients, q, rounds = 50, 0.1, 4000
    gen = _gen(3)
    # Execute
    counts = np.zeros(num_clients, dtype=int)
    for _ in range(rounds):
        counts[sample_client_ids(num_clients, sample_rate=q, generator=gen).numpy()] += 1
    # Assert: a sampler skewed by 25 % towards some ids (500 vs 400) would leave the band.
    std = math.sqrt(rounds * q * (1 - q))
    assert np.all(np.abs(counts - rounds * q) < 5 * std)


def test_ids_are_sorted_distinct_int64_and_in_range():
    for num_clients, q, seed in [(10**6, 0.01, 0), (1000, 0.9, 1), (7, 0.5, 2), (1, 1.0, 3)]:
        ids = sample_client_ids(num_clients, sample_rate=q, generator=_gen(seed))
        assert ids.dtype == torch.int64
        assert bool((ids[1:] > ids[:-1]).all())  # strictly increasing: sorted and distinct
        assert len(ids) == 0 or (int(ids[0]) >= 0 and int(ids[-1]) < num_clients)


def test_q_one_takes_everyone_and_the_draw_repeats_with_the_seed():
    assert sample_client_ids(5, sample_rate=1.0, generator=_gen()).tolist() == [0, 1, 2, 3, 4]
    a = sample_client_ids(10**7, sample_rate=1e-4, generator=_gen(7))
    b = sample_client_ids(10**7, sample_rate=1e-4, generator=_gen(7))
    c = sample_client_ids(10**7, sample_rate=1e-4, generator=_gen(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_draws_only_from_the_generator_passed_in():
    # Prepare
    torch.manual_seed(123)
    torch_state, numpy_state = torch.get_rng_state(), np.random.get_state()
    # Execute
    sample_client_ids(10**6, sample_rate=1e-3, generator=_gen(0))
    sample_client_ids(10, sample_rate=0.9, generator=_gen(0))
    # Assert: the global generators did not move
    assert torch.equal(torch.get_rng_state(), torch_state)
    after = np.random.get_state()
    assert np.array_equal(after[1], numpy_state[1]) and after[2] == numpy_state[2]


# --- sample_client_ids: memory at K = 10^8 -------------------------------------------

_MEMORY_PROBE = """
import json, sys, tracemalloc
import torch
from fl_dp_lab.federated import poisson_client_sample
from fl_dp_lab.populations import sample_client_ids

def peak_kb():  # the process's peak resident memory since the last reset
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM"))

sample_client_ids(1000, sample_rate=0.1, generator=torch.Generator())  # warm up
which, num_clients = sys.argv[1], int(sys.argv[2])
sampler = sample_client_ids if which == "ours" else poisson_client_sample
with open("/proc/self/clear_refs", "w") as clear:
    clear.write("5")  # Linux: reset the peak to the current resident memory
before = peak_kb()
tracemalloc.start()
ids = sampler(num_clients, sample_rate=1e-5, generator=torch.Generator().manual_seed(0))
python_peak = tracemalloc.get_traced_memory()[1]
tracemalloc.stop()
print(json.dumps({"rss_kb": peak_kb() - before, "python_bytes": python_peak, "m": len(ids)}))
"""


def _memory_of(which: str, num_clients: int) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", _MEMORY_PROBE, which, str(num_clients)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_sampling_from_a_hundred_million_clients_allocates_nothing_of_size_k():
    # Execute: in a fresh process, with the peak resident memory reset just before the call.
    # tracemalloc sees Python's allocations (a set or list of K ids); torch's buffers bypass
    # it, so the peak resident memory is measured too.
    ours = _memory_of("ours", 10**8)
    # A length-K mask, even of bools, would be 100 MB here (a float32 draw per client 400 MB).
    assert 800 < ours["m"] < 1200
    assert ours["rss_kb"] < 20_000
    assert ours["python_bytes"] < 1_000_000
    # The probe can fail: the mask-based sampler at only K = 10^7 raises the peak by > 40 MB.
    assert _memory_of("mask", 10**7)["rss_kb"] > 40_000


# --- sample_client_ids: bad input ----------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"num_clients": 0}, ValueError, "num_clients must be an integer >= 1, got 0"),
        ({"num_clients": MAX_CLIENTS + 1}, ValueError, "num_clients must be an integer <= "),
        ({"num_clients": 10.0}, TypeError, "num_clients must be an integer, got 10.0"),
        ({"num_clients": True}, TypeError, "num_clients must be an integer, got True"),
        ({"sample_rate": 0.0}, ValueError, r"sample_rate must be in \(0, 1\], got 0.0"),
        ({"sample_rate": 1.5}, ValueError, r"sample_rate must be in \(0, 1\], got 1.5"),
        ({"sample_rate": float("nan")}, ValueError, "sample_rate must be a finite number"),
        ({"sample_rate": "0.1"}, TypeError, "sample_rate must be a real number"),
        ({"generator": None}, TypeError, "generator must be a torch.Generator"),
        ({"generator": np.random.default_rng(0)}, TypeError, "generator must be a torch.Generator"),
    ],
)
def test_bad_input_is_refused_by_name(kwargs, error, message):
    arguments = {"num_clients": 100, "sample_rate": 0.1, "generator": _gen()} | kwargs
    num_clients = arguments.pop("num_clients")
    with pytest.raises(error, match=message):
        sample_client_ids(num_clients, **arguments)


# --- generated populations: purity ---------------------------------------------------

POPULATIONS = {
    "synthetic": lambda k, seed=0: SyntheticPopulation(k, seed=seed),
    "writers": lambda k, seed=0: VirtualWriters(k, seed=seed),
    "writers14": lambda k, seed=0: VirtualWriters(k, seed=seed, image_size=14),
}


@pytest.mark.parametrize("kind", sorted(POPULATIONS))
def test_client_k_is_the_same_on_every_call_in_any_order(kind):
    # Prepare
    make = POPULATIONS[kind]
    ids = [0, 5, 10**8 - 1, 77, 5]
    # Execute: two populations, clients asked for in opposite orders
    first = {k: make(10**8).client(k) for k in ids}
    second = {k: make(10**8).client(k) for k in reversed(ids)}
    # Assert
    for k in ids:
        assert torch.equal(first[k][0], second[k][0]) and torch.equal(first[k][1], second[k][1])


@pytest.mark.parametrize("kind", sorted(POPULATIONS))
def test_different_clients_and_different_seeds_differ(kind):
    make = POPULATIONS[kind]
    x0, _ = make(1000).client(0)
    x1, _ = make(1000).client(1)
    x0_other_seed, _ = make(1000, seed=1).client(0)
    assert not torch.equal(x0, x1) and not torch.equal(x0, x0_other_seed)


def test_a_batch_of_writers_equals_the_writers_one_by_one():
    writers = VirtualWriters(10**6, seed=3)
    ids = [9, 2, 10**6 - 1, 2]
    batch = writers.clients(ids)
    for k, (x, y) in zip(ids, batch):
        xk, yk = writers.client(k)
        assert torch.equal(x, xk) and torch.equal(y, yk)
    assert writers.clients([]) == []


def test_the_test_writers_are_other_writers_copying_the_test_images():
    # With every style range at 0 a writer copies base images unchanged: each training
    # writer's digit is a training image of its label, each test writer's a test image.
    x_train, y_train, x_test, y_test = load_mnist()
    plain = {"max_rotation": 0.0, "max_shear": 0.0, "max_scale_change": 0.0, "max_thickness": 0.0}
    for split, (images, labels) in (("train", (x_train, y_train)), ("test", (x_test, y_test))):
        x, y = VirtualWriters(100, seed=0, split=split, **plain).client(7)
        flat = torch.from_numpy(images).flatten(1)
        for image, label in zip(x.flatten(1), y):
            match = torch.nonzero((flat - image).abs().amax(1) < 1e-5).flatten()
            assert len(match) >= 1 and int(labels[int(match[0])]) == int(label)
    train_x, _ = VirtualWriters(100, seed=0).client(7)
    test_x, _ = VirtualWriters(100, seed=0, split="test").client(7)
    assert not torch.equal(train_x, test_x)


@pytest.mark.parametrize("alpha", [0.1, 100.0])
def test_label_alpha_sets_how_many_digits_a_writer_writes(alpha):
    # Prepare: the reference, drawn independently with NumPy: p ~ Dir(alpha 1_10), 20 labels
    # from p, count the distinct ones (about 3.1 at alpha = 0.1, 8.8 at alpha = 100, std
    # 1.15 and 0.9 a writer: over 300 writers the standard error is at most 0.07).
    rng = np.random.default_rng(1)
    reference = np.mean(
        [len(set(rng.choice(10, 20, p=rng.dirichlet(np.full(10, alpha))))) for _ in range(5000)]
    )
    # Execute
    writers = VirtualWriters(10**5, seed=0, label_alpha=alpha, image_size=14)
    found = np.mean([len(set(y.tolist())) for _, y in writers.clients(range(300))])
    # Assert: within 5 standard errors; alpha = 0.1 read as 1 (8.8 distinct) would fail
    assert abs(found - reference) < 0.35


def test_styles_match_independent_references():
    # Prepare: a few real digits
    x = torch.from_numpy(load_mnist()[0][:5])
    zero = torch.zeros(5, 4)
    # Execute / Assert: no style is the identity; a quarter turn is torch.rot90;
    # thickness +1 / -1 is the 3x3 max-pool dilation / min-pool erosion.
    assert torch.allclose(apply_style(x, zero), x, atol=1e-5)
    quarter = zero.clone()
    quarter[:, 0] = math.pi / 2
    turned = apply_style(x, quarter)
    assert torch.allclose(turned, torch.rot90(x, -1, dims=(1, 2)), atol=1e-4)
    thick, thin = zero.clone(), zero.clone()
    thick[:, 3], thin[:, 3] = 1.0, -1.0
    pool = torch.nn.functional.max_pool2d
    assert torch.allclose(
        apply_style(x, thick), pool(x.unsqueeze(1), 3, 1, 1).squeeze(1), atol=1e-5
    )
    eroded = -pool(-x.unsqueeze(1), 3, 1, 1).squeeze(1)
    assert torch.allclose(apply_style(x, thin), eroded, atol=1e-5)


def test_synthetic_clients_have_the_sizes_and_split_of_make_synthetic_federated():
    # Log-normal sizes, median 24 / 1.5 and sigma 0.9, floored at 4: mean about 24.4
    # (about 0.4 above 24 from the floor); over 2,000 clients the standard error is 0.5.
    population = SyntheticPopulation(10**6, seed=0)
    sizes, held = [], []
    for k in range(2000):
        x, y = population.client(k)
        xt, yt = population.held_out(k)
        sizes.append(len(y) + len(yt))
        held.append(len(yt))
        assert x.shape[1] == 60 and len(x) == len(y) and int(y.max()) < 10
    sizes, held = np.array(sizes), np.array(held)
    assert sizes.min() >= 4 and 22.5 < sizes.mean() < 26.5
    assert np.array_equal(held, np.floor(0.2 * sizes).astype(int))
    reference = make_synthetic_federated(num_clients=2000, seed=0)
    assert abs(sizes.mean() - (len(reference.y) + len(reference.y_test)) / 2000) < 2.0


# --- generated populations: memory constant in K -------------------------------------

_POPULATION_PROBE = """
import json, sys, tracemalloc
import torch
from fl_dp_lab.populations import SyntheticPopulation, VirtualWriters, sample_client_ids

def peak_kb():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM"))

kind, num_clients = sys.argv[1], int(sys.argv[2])
make = SyntheticPopulation if kind == "synthetic" else VirtualWriters
make(10, seed=0).client(0)  # warm up: load the shared images once
with open("/proc/self/clear_refs", "w") as clear:
    clear.write("5")
before = peak_kb()
tracemalloc.start()
population = make(num_clients, seed=0)
gen = torch.Generator().manual_seed(0)
for _ in range(3):
    ids = sample_client_ids(num_clients, sample_rate=100 / num_clients, generator=gen)
    data = [population.client(k) for k in ids.tolist()]
python_peak = tracemalloc.get_traced_memory()[1]
tracemalloc.stop()
print(json.dumps({"rss_kb": peak_kb() - before, "python_bytes": python_peak}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
@pytest.mark.parametrize("kind", ["synthetic", "writers"])
def test_a_population_of_a_hundred_million_is_made_and_sampled_in_constant_memory(kind):
    # Three rounds of about 100 clients from K = 10^8: anything of size K (a mask, a list of
    # seeds or of sizes, 8 bytes a client) would be 800 MB; 100 writers' images are 6 MB.
    out = subprocess.run(
        [sys.executable, "-c", _POPULATION_PROBE, kind, str(10**8)],
        capture_output=True,
        text=True,
        check=True,
    )
    used = json.loads(out.stdout)
    assert used["rss_kb"] < 40_000
    assert used["python_bytes"] < 5_000_000


# --- generated populations: bad input ------------------------------------------------


@pytest.mark.parametrize("make", [SyntheticPopulation, VirtualWriters])
@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"num_clients": 0}, ValueError, "num_clients must be an integer >= 1, got 0"),
        ({"num_clients": 2.0}, TypeError, "num_clients must be an integer, got 2.0"),
        ({"seed": 1.5}, TypeError, "seed must be an integer, got 1.5"),
        ({"seed": "0"}, TypeError, "seed must be an integer, got '0'"),
        ({"seed": -1}, ValueError, "seed must be an integer >= 0, got -1"),
    ],
)
def test_bad_population_arguments_are_refused_by_name(make, kwargs, error, message):
    arguments = {"num_clients": 10, "seed": 0} | kwargs
    with pytest.raises(error, match=message):
        make(**arguments)


@pytest.mark.parametrize("make", [SyntheticPopulation, VirtualWriters])
@pytest.mark.parametrize(
    ("k", "error", "message"),
    [
        (10, ValueError, r"k must be a client id in \[0, 10\), got 10"),
        (-1, ValueError, r"k must be a client id in \[0, 10\), got -1"),
        (1.0, TypeError, "k must be an integer, got 1.0"),
        (torch.tensor(0.5), TypeError, "k must be an integer"),
    ],
)
def test_client_ids_out_of_range_are_refused(make, k, error, message):
    with pytest.raises(error, match=message):
        make(10, seed=0).client(k)


def test_a_torch_integer_id_is_accepted():
    writers = VirtualWriters(10, seed=0)
    assert torch.equal(writers.client(torch.tensor(3))[0], writers.client(3)[0])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"split": "valid"}, "split must be one of 'train', 'test', got 'valid'"),
        ({"label_alpha": 0.0}, "label_alpha must be > 0, got 0.0"),
        ({"samples_per_client": 0}, "samples_per_client must be an integer >= 1, got 0"),
        ({"max_rotation": 120.0}, r"max_rotation must be in \[0, 90\], got 120.0"),
        ({"image_size": 20}, "image_size must be 28"),
    ],
)
def test_bad_writer_styles_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        VirtualWriters(10, **kwargs)
