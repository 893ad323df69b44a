"""Local, central and distributed DP at equal epsilon: noise on the average, and the round's cost.

Part 1 prints, for m = 10, 100 and 1,000 clients in a round, the noise std per
coordinate on the average of m clipped updates (C = 1) when one round is
(epsilon, delta)-DP under each trust model
(``fl_dp_lab.federated.trust_models.noise_std_on_average``; distributed at
scale 2^10, whose rounding adds sqrt(P) / 2^10 to the sensitivity), and the
same std measured on P zero coordinates: local noise written out, central through
``dp_aggregate``, distributed through the secure-aggregation toy
(``distributed_dp_sum``; it takes at most ``MAX_CLIENTS`` = 200 clients, so
m = 1,000 is measured for local and central only).

Part 2 times a distributed-DP round (``distributed_dp_sum``: every client
clips, scales, rounds, adds a discrete-Gaussian share and masks; the server
unmasks) against a central one (``dp_aggregate``), median over repeats, and
the bytes each client uploads for P = 610 (the model of notebook 12):
central, P float32 values; distributed, P values modulo 2^32 (4 bytes each on
the wire; the toy holds them in int64), plus, in a real protocol, the key
agreement the toy leaves out.
The toy's masks are pairwise seeds expanded on the spot, so the time includes
every client's mask generation but no key agreement or network.

    OMP_NUM_THREADS=1 python benchmarks/trust_models.py
    OMP_NUM_THREADS=1 python benchmarks/trust_models.py --quick   # smoke run
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time
from collections.abc import Callable

import torch

from fl_dp_lab.federated import dp_aggregate
from fl_dp_lab.federated.secure_aggregation import MAX_CLIENTS, MODULUS, distributed_dp_sum
from fl_dp_lab.federated.trust_models import TRUST_MODELS, noise_std_on_average
from fl_dp_lab.mechanisms import gaussian_sigma

EPSILON, DELTA, C, P, SCALE = 2.0, 1e-5, 1.0, 610, 2.0**10


def _measured_std(model: str, m: int, dim: int, generator: torch.Generator) -> float | None:
    sigma = gaussian_sigma(epsilon=EPSILON, delta=DELTA)
    zeros = torch.zeros(m, dim, dtype=torch.float64)
    if model == "local":
        noisy = zeros + sigma * C * torch.randn(m, dim, generator=generator, dtype=torch.float64)
        return float(noisy.mean(0).std())
    if model == "central":
        return float(
            dp_aggregate(
                zeros, clip_norm=C, noise_multiplier=sigma, expected_clients=m, generator=generator
            ).std()
        )
    if m > MAX_CLIENTS:
        return None
    total = distributed_dp_sum(
        zeros, clip_norm=C, noise_multiplier=sigma, scale=SCALE, generator=generator
    )
    return float((total / m).std())


def _median_seconds(run: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer coordinates and repeats")
    args = parser.parse_args()
    dim, repeats = (2000, 1) if args.quick else (20_000, 5)
    generator = torch.Generator().manual_seed(0)
    print(f"Part 1: noise std on the average, one round at eps = {EPSILON}, delta = {DELTA}")
    print(f"(P = {dim} zero coordinates: formula and measured std per coordinate)")
    print(f"{'m':>6} {'model':>12} {'formula':>10} {'measured':>10} {'/ central':>10}")
    for m in (10, 100, 1000):
        central = noise_std_on_average(
            trust_model="central", epsilon=EPSILON, delta=DELTA, clip_norm=C, num_clients=m
        )
        for model in TRUST_MODELS:
            formula = noise_std_on_average(
                trust_model=model, epsilon=EPSILON, delta=DELTA, clip_norm=C, num_clients=m,
                scale=SCALE, dim=dim,
            )  # fmt: skip
            measured = _measured_std(model, m, dim, generator)
            shown = "  (toy cap)" if measured is None else f"{measured:10.5f}"
            print(f"{m:>6} {model:>12} {formula:10.5f} {shown:>10} {formula / central:10.3f}")
    print()
    print(f"Part 2: one round's cost, P = {P} parameters, median of {repeats}")
    print(f"{'m':>6} {'central ms':>11} {'distributed ms':>15} {'ratio':>7} "
          f"{'central B/client':>17} {'distributed B/client':>21}")  # fmt: skip
    sigma = gaussian_sigma(epsilon=EPSILON, delta=DELTA)
    for m in (10, 100):
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
        bytes_central = P * 4  # float32
        bytes_dist = P * (MODULUS.bit_length() - 1) // 8  # one value mod 2^32 per coordinate
        print(
            f"{m:>6} {1e3 * t_central:11.2f} {1e3 * t_dist:15.2f} {t_dist / t_central:7.0f} "
            f"{bytes_central:>17,} {bytes_dist:>21,}"
        )
    print(f"(m = 1,000: the secure-aggregation toy takes at most {MAX_CLIENTS} clients)")


if __name__ == "__main__":
    main()
