"""Local, central and distributed DP at equal epsilon: accuracy, noise, and the round's cost.

Part 1 trains user-level DP-FedAvg for m = 10, 100 and 1,000 clients per round
(Poisson sampling at q = 0.1 from ``VirtualWriters`` populations of K = 10 m
writers of 14x14 digits; the model averages 3x3 blocks and is a logistic
regression on the 4x4 = 16 averages, P = 170 parameters, small so that the exact
discrete-Gaussian shares of 1,000 clients take seconds; C = 1, 5 rounds of 5
local epochs at batch 4) with one user-level (epsilon, delta) for the whole run
under each trust model
(``fl_dp_lab.federated.trust_models.run_trust_model``, noise from
``equal_epsilon_noise``):

- local: each client adds N(0, (sigma_local C)^2) to its own clipped update,
  sigma_local for one participation at q = 1 (no amplification: the server
  sees who sent what); a client refuses a second round;
- central: the course's DP-FedAvg (``dp_aggregate``), sigma of the
  subsampled Gaussian over the T rounds;
- distributed: the same sigma on the integer sum (sensitivity s C + sqrt(P) at
  scale s = 2^10), as exact discrete-Gaussian shares of variance
  (sigma D)^2 / m carried through the secure-aggregation toy
  (``distributed_dp_sum``); tau of the sum of shares is printed, and the
  epsilon of one participation against the server (which knows who took part,
  so no amplification).

The accuracy is the final model's on 1,000 held-out digits (50 writers of
the test split), mean over 3 seeds (1 at m = 1,000); chance is 10 %. Part 2 times one
aggregation (the clients' training excluded, the same for all): central
``dp_aggregate`` against ``distributed_dp_sum`` (every client clips, scales,
rounds, draws its discrete-Gaussian share and masks against the m - 1 others;
the server unmasks), and the masking alone (``secure_sum``); and the bytes each
client uploads: P float32 values for central, P values modulo 2^32 (4 bytes
each) for distributed, plus, in a real protocol, the key agreement the toy
leaves out (Bonawitz et al. 2017: O(m) keys per client; SecAgg+ O(log m)).

    OMP_NUM_THREADS=1 python benchmarks/trust_models.py
    OMP_NUM_THREADS=1 python benchmarks/trust_models.py --quick   # smoke run, m = 10 and 100
"""

from __future__ import annotations

import argparse
import functools
import math
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from fl_dp_lab.federated import LocalSGD, UserLevelDP, dp_aggregate
from fl_dp_lab.federated.distributed_dp import (
    distributed_discrete_gaussian_epsilon,
    rounded_sensitivity,
    sum_closeness_tau,
)
from fl_dp_lab.federated.secure_aggregation import MODULUS, distributed_dp_sum, secure_sum
from fl_dp_lab.federated.trust_models import TRUST_MODELS, equal_epsilon_noise, run_trust_model
from fl_dp_lab.models import LogisticRegression
from fl_dp_lab.populations import VirtualWriters

EPSILON, DELTA, C, Q, SCALE, POOL, FEATURES = 4.0, 1e-5, 1.0, 0.1, 2.0**10, 3, 16
P = (FEATURES + 1) * 10
LOCAL = LocalSGD(epochs=5, batch_size=4, lr=1.0)
TEST = VirtualWriters(10**4, seed=0, split="test", image_size=14).test_set(50)


def _model() -> nn.Module:
    return nn.Sequential(nn.AvgPool2d(POOL), LogisticRegression(FEATURES, 10))


def _accuracy(model: str, m: int, rounds: int, seed: int) -> tuple[float, float, float]:
    """(final accuracy, run's epsilon, seconds) of one run; model "none" trains without noise."""
    population = VirtualWriters(10 * m, seed=0, image_size=14)
    trust = "central" if model == "none" else model
    sigma = 0.0 if model == "none" else equal_epsilon_noise(
        trust_model=trust, epsilon=EPSILON, delta=DELTA, sample_rate=Q, rounds=rounds
    )  # fmt: skip
    privacy = UserLevelDP(noise_multiplier=sigma, clip_norm=C, sample_rate=Q, delta=DELTA,
                          accountant="rdp")  # fmt: skip
    start = time.perf_counter()
    history = run_trust_model(
        _model(), population, trust_model=trust, rounds=rounds,
        privacy=privacy, local=LOCAL, generator=torch.Generator().manual_seed(seed),
        scale=SCALE, participations=1, x_test=TEST[0], y_test=TEST[1],
    )  # fmt: skip
    return history.accuracy[-1], history.epsilon[-1], time.perf_counter() - start


def _median_seconds(run: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="m = 10 and 100 only, fewer rounds")
    args = parser.parse_args()
    sizes, rounds = ((10, 100), 2) if args.quick else ((10, 100, 1000), 5)
    sigma = equal_epsilon_noise(trust_model="central", epsilon=EPSILON, delta=DELTA,
                                sample_rate=Q, rounds=rounds)  # fmt: skip
    sigma_local = equal_epsilon_noise(trust_model="local", epsilon=EPSILON, delta=DELTA,
                                      sample_rate=Q, rounds=rounds)  # fmt: skip
    d2, d1 = rounded_sensitivity(scaled_clip_norm=SCALE * C, dim=P)
    print(
        f"Part 1: final test accuracy at user-level eps = {EPSILON:g}, delta = {DELTA:g} "
        f"for the whole run ({rounds} rounds, q = {Q:g}, K = 10 m writers, C = {C:g}, P = {P}; "
        "mean of 3 seeds, 1 at m = 1,000; chance 10 %)"
    )
    print(
        f"sigma: central {sigma:.3f} (subsampled, {rounds} rounds); distributed the same on "
        f"the integer sum, D = sC + sqrt(P) = {d2:.0f} (x{d2 / (SCALE * C):.4f}); "
        f"local {sigma_local:.3f} per client (one participation, q = 1)"
    )
    print(f"{'m':>6} {'no noise':>9} {'local':>7} {'central':>8} {'distrib.':>9} "
          f"{'eps loc/cen/dis':>17} {'tau':>8} {'dis. eps vs server':>19} "
          f"{'run s (l/c/d)':>16}")  # fmt: skip
    for m in sizes:
        acc: dict[str, float] = {}
        eps: dict[str, float] = {}
        secs: dict[str, float] = {}
        for model in ("none", *TRUST_MODELS):
            seeds = range(1 if m >= 1000 or args.quick else 3)
            runs = [_accuracy(model, m, rounds, seed) for seed in seeds]
            acc[model] = statistics.mean(a for a, _, _ in runs)
            eps[model] = max(e for _, e, _ in runs)
            secs[model] = statistics.mean(t for _, _, t in runs)
        share_var = (sigma * d2) ** 2 / m
        tau = sum_closeness_tau(sigma_squared=share_var, num_clients=m)
        vs_server, _ = distributed_discrete_gaussian_epsilon(
            sigma_squared=share_var, num_clients=m, l2_sensitivity=d2, l1_sensitivity=d1,
            dim=P, delta=DELTA,
        )  # fmt: skip
        eps_text = "/".join(f"{eps[k]:.2f}" for k in TRUST_MODELS)
        time_text = "/".join(f"{secs[k]:.1f}" for k in TRUST_MODELS)
        print(
            f"{m:>6} {100 * acc['none']:8.1f}% {100 * acc['local']:6.1f}% "
            f"{100 * acc['central']:7.1f}% {100 * acc['distributed']:8.1f}% {eps_text:>17} "
            f"{tau:8.1e} {vs_server:19.2f} {time_text:>16}"
        )
    print()
    print(f"Part 2: one aggregation's cost, P = {P}, median of 3 (1 at m = 1,000)")
    print(f"{'m':>6} {'central ms':>11} {'distributed ms':>15} {'of which masks':>15} "
          f"{'ratio':>7} {'central B/client':>17} {'distrib. B/client':>18}")  # fmt: skip
    generator = torch.Generator().manual_seed(0)
    for m in sizes:
        repeats = 1 if m >= 1000 else 3
        updates = 0.01 * torch.randn(m, P, generator=generator, dtype=torch.float64)
        t_central = _median_seconds(
            functools.partial(
                dp_aggregate, updates.float(), clip_norm=C, noise_multiplier=sigma,
                expected_clients=m, generator=generator,
            ),
            repeats,
        )  # fmt: skip
        t_dist = _median_seconds(
            functools.partial(
                distributed_dp_sum, updates, clip_norm=C, noise_multiplier=sigma, scale=SCALE,
                generator=generator,
            ),
            repeats,
        )  # fmt: skip
        t_masks = _median_seconds(functools.partial(secure_sum, updates, generator=generator),
                                  repeats)  # fmt: skip
        bytes_central = P * 4  # float32
        bytes_dist = P * (MODULUS.bit_length() - 1) // 8  # one value mod 2^32 per coordinate
        print(
            f"{m:>6} {1e3 * t_central:11.2f} {1e3 * t_dist:15.1f} {1e3 * t_masks:15.1f} "
            f"{t_dist / t_central:7.0f} {bytes_central:>17,} {bytes_dist:>18,}"
        )
    print(
        "masks: every client expands m - 1 pair masks, so a round's masking grows as m^2 P "
        f"(here {math.comb(sizes[-1], 2):,} pairs at m = {sizes[-1]:,}); the bytes leave out "
        "a real protocol's key agreement and secret shares (Bonawitz et al. 2017: O(m) per "
        "client; SecAgg+: O(log m))"
    )


if __name__ == "__main__":
    main()
