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

from fl_dp_lab.populations import MAX_CLIENTS, sample_client_ids


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
