"""DP-FedAvg on populations of 10^3 to 10^6 virtual writers: memory, round time, accuracy.

Part 1 (always): for K = 10^3, 10^4, 10^5, 10^6 virtual writers
(``fl_dp_lab.populations.VirtualWriters``, 14x14 images, 20 digits a writer)
and about 1,000 clients a round (q = 1,000 / K), one DP-FedAvg round is:
Poisson-sample the ids (``sample_client_ids``), make those writers, train
them side by side (``batched_local_updates``, MLP 196-32-10, two local
epochs) and release ``dp_aggregate``. Each K runs in a fresh process, which
prints its median wall and CPU seconds a round (after one warm-up round)
and its peak resident memory (Linux ``VmHWM``) with the difference from
K = 10^3. Time a round and memory should not depend on K: no part of the
run holds anything of size K (the peak moves by tens of MB from run to run
with the allocator, whatever K is).

Part 2 (``--sweep``): the accuracy table README quotes. Test accuracy on
500 held-out test writers (10,000 digits) after ``--rounds`` rounds of
non-private FedAvg (same clients, plain average of unclipped updates) and of
DP-FedAvg at epsilon = 2 (user-level, delta = K^-1.1, PLD accountant,
sigma from ``noise_multiplier_for_epsilon``) for each K. Long: about 1 to
3 s a round on 2 busy cores, so the default 100 rounds take about 5 minutes
a run (eight runs).

    OMP_NUM_THREADS=1 python benchmarks/population_scale.py            # part 1
    OMP_NUM_THREADS=1 python benchmarks/population_scale.py --sweep    # and part 2
    OMP_NUM_THREADS=1 python benchmarks/population_scale.py --no-timing --populations 1000000
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

import torch

from fl_dp_lab import accounting
from fl_dp_lab.federated import batched_local_updates, dp_aggregate
from fl_dp_lab.models import MLP
from fl_dp_lab.populations import VirtualWriters, sample_client_ids

POPULATIONS = (10**3, 10**4, 10**5, 10**6)
CLIENTS_PER_ROUND = 1000
#: The configuration chosen by the search (see README's federated results).
SETTINGS = {
    "hidden": 32,
    "samples_per_client": 20,
    "local_epochs": 2,
    "batch_size": 10,
    "lr": 0.5,
    "server_lr": 3.0,
    "clip_norm": 1.0,
    "target_epsilon": 2.0,
}


def make_run(num_clients: int, seed: int = 0) -> dict:
    """The population, model and privacy settings of one run at K = ``num_clients``."""
    q = min(1.0, CLIENTS_PER_ROUND / num_clients)
    return {
        "writers": VirtualWriters(
            num_clients,
            seed=seed,
            samples_per_client=SETTINGS["samples_per_client"],
            image_size=14,
        ),
        "model": MLP(196, SETTINGS["hidden"], 10, generator=torch.Generator().manual_seed(seed)),
        "sample_rate": q,
        "generator": torch.Generator().manual_seed(seed),
    }


def one_round(run: dict, noise_multiplier: float | None) -> None:
    """One round; ``noise_multiplier`` None is non-private FedAvg (plain average, no clip)."""
    writers, model, gen = run["writers"], run["model"], run["generator"]
    ids = sample_client_ids(writers.num_clients, sample_rate=run["sample_rate"], generator=gen)
    data = writers.clients(ids.tolist())
    seeds = torch.randint(0, 2**62, (len(data),), generator=gen).tolist()
    updates = batched_local_updates(
        model,
        [x for x, _ in data],
        [y for _, y in data],
        epochs=SETTINGS["local_epochs"],
        batch_size=SETTINGS["batch_size"],
        lr=SETTINGS["lr"],
        generators=[torch.Generator().manual_seed(s) for s in seeds],
    )
    if noise_multiplier is None:
        average = updates.mean(0) if len(updates) else updates.new_zeros(updates.shape[1])
    else:
        average = dp_aggregate(
            updates,
            clip_norm=SETTINGS["clip_norm"],
            noise_multiplier=noise_multiplier,
            expected_clients=run["sample_rate"] * writers.num_clients,
            generator=gen,
        )
    params = list(model.parameters())
    with torch.no_grad():
        flat = torch.nn.utils.parameters_to_vector(params) + SETTINGS["server_lr"] * average
        torch.nn.utils.vector_to_parameters(flat, params)


def sigma_for(num_clients: int, rounds: int) -> float:
    """sigma at which ``rounds`` rounds spend epsilon = 2 at delta = K^-1.1."""
    return accounting.noise_multiplier_for_epsilon(
        target_epsilon=SETTINGS["target_epsilon"],
        sample_rate=min(1.0, CLIENTS_PER_ROUND / num_clients),
        steps=rounds,
        delta=num_clients**-1.1,
    )


def _peak_kb() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM"))


def measure_rounds(num_clients: int, rounds: int) -> dict:
    """Median wall and CPU seconds a round and peak resident memory (in a fresh process)."""
    run = make_run(num_clients)
    one_round(run, noise_multiplier=1.0)  # warm up: images loaded, torch.func set up
    wall, cpu = [], []
    for _ in range(rounds):
        start, start_cpu = time.perf_counter(), time.process_time()
        one_round(run, noise_multiplier=1.0)
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return {
        "K": num_clients,
        "wall_s": statistics.median(wall),
        "cpu_s": statistics.median(cpu),
        "peak_mb": _peak_kb() / 1024,
    }


def accuracy(run: dict, x_test: torch.Tensor, y_test: torch.Tensor) -> float:
    with torch.no_grad():
        return float((run["model"](x_test).argmax(1) == y_test).float().mean())


def sweep(rounds: int, populations: tuple[int, ...] = POPULATIONS) -> None:
    x_test, y_test = VirtualWriters(10**4, seed=0, split="test", image_size=14).test_set(500)
    print(f"\nAccuracy after {rounds} rounds, about {CLIENTS_PER_ROUND} clients a round:")
    print("| K | q | sigma (eps = 2) | delta | DP-FedAvg | FedAvg (no noise) | seconds |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for num_clients in populations:
        sigma = sigma_for(num_clients, rounds)
        results = []
        start = time.perf_counter()
        for noise in (sigma, None):
            run = make_run(num_clients)
            for _ in range(rounds):
                one_round(run, noise)
            results.append(accuracy(run, x_test, y_test))
        q = min(1.0, CLIENTS_PER_ROUND / num_clients)
        print(
            f"| {num_clients:,} | {q:g} | {sigma:.3f} | {num_clients**-1.1:.1e} | "
            f"{100 * results[0]:.1f} % | {100 * results[1]:.1f} % | "
            f"{time.perf_counter() - start:.0f} |",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sweep", action="store_true", help="also run the accuracy table")
    parser.add_argument("--rounds", type=int, default=100, help="rounds of each sweep run")
    parser.add_argument(
        "--populations", type=int, nargs="+", default=POPULATIONS, help="the sweep's K values"
    )
    parser.add_argument("--no-timing", action="store_true", help="skip part 1")
    parser.add_argument("--timed-rounds", type=int, default=5, help="rounds timed for each K")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.child:
        print(json.dumps(measure_rounds(args.child, args.timed_rounds)))
        return
    if args.no_timing:
        sweep(args.rounds, tuple(args.populations))
        return
    print(f"One DP-FedAvg round, about {CLIENTS_PER_ROUND} virtual writers a round, 1 thread:")
    print("| K | wall s / round | CPU s / round | peak RSS, MB | peak above K = 10^3, MB |")
    print("|---:|---:|---:|---:|---:|")
    first_peak = None
    for num_clients in POPULATIONS:
        command = [sys.executable, __file__, "--child", str(num_clients)]
        command += ["--timed-rounds", str(args.timed_rounds)]
        out = subprocess.run(command, capture_output=True, text=True, check=True)
        row = json.loads(out.stdout)
        first_peak = row["peak_mb"] if first_peak is None else first_peak
        print(
            f"| {num_clients:,} | {row['wall_s']:.2f} | {row['cpu_s']:.2f} | "
            f"{row['peak_mb']:.0f} | {row['peak_mb'] - first_peak:+.0f} |",
            flush=True,
        )
    if args.sweep:
        sweep(args.rounds, tuple(args.populations))


if __name__ == "__main__":
    main()
