"""Speed of a DP-FedAvg round, vectorised vs per-client loop, and of a small job vs Flower.

Part 1 times ``fl_dp_lab.federated.run_dp_fedavg`` rounds on the synthetic
federated data set (Li et al. 2020, 2,000 clients, logistic regression
60 -> 10, one local epoch at batch size 10), with the client sampling rate
set so that about 10, 100 and 1,000 clients take part in a round: the
batched ``torch.func`` simulation against the readable per-client loop.
Each cell is the median over rounds after one warm-up round; the two
simulations alternate so machine load hits both alike.

Part 2 runs the same small job, plain FedAvg with logistic regression on the
8x8 digits split IID over 10 clients, 3 rounds, every client every round,
with ``fl_dp_lab.federated.run_fedavg`` and with Flower's simulation engine
(``flwr.simulation.run_simulation``: a ServerApp with Flower's FedAvg and a
ClientApp of NumPyClients on the Ray backend), and reports the wall-time ratio.
Ours is timed cold (the first call in the process pays torch.func's one-off
set-up, as Flower's run pays Ray's start-up; the ratio is against this) and
warm (a second identical call).
Flower is skipped when ``flwr`` is not installed.

    OMP_NUM_THREADS=1 python benchmarks/fedavg_round.py
    OMP_NUM_THREADS=1 python benchmarks/fedavg_round.py --quick   # smoke run
    OMP_NUM_THREADS=1 python benchmarks/fedavg_round.py --no-rounds   # Flower comparison only
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import statistics
import time
import warnings

import numpy as np
import torch

from fl_dp_lab.data import iid_partition, load_digits, make_synthetic_federated
from fl_dp_lab.federated import (
    LocalSGD,
    UserLevelDP,
    assign_flat_parameters,
    flatten_parameters,
    local_update,
    run_dp_fedavg,
    run_fedavg,
    split_by_client,
)
from fl_dp_lab.models import LogisticRegression

NUM_CLIENTS = 2000
LOCAL = LocalSGD(epochs=1, batch_size=10, lr=0.1)


def dp_round_ms(
    clients: list, sample_rate: float, vectorised: bool, rounds: int
) -> tuple[float, float]:
    """Median milliseconds per round (after a warm-up round) and mean clients a round."""
    times, counts = [], []
    model = LogisticRegression(60, 10)
    generator = torch.Generator().manual_seed(0)
    for r in range(rounds + 1):
        start = time.perf_counter()
        history = run_dp_fedavg(
            model,
            clients,
            rounds=1,
            privacy=UserLevelDP(
                noise_multiplier=1.0,
                clip_norm=1.0,
                sample_rate=sample_rate,
                delta=1e-5,
                accountant="rdp",
            ),
            local=LOCAL,
            generator=generator,
            vectorised=vectorised,
            progress=False,
        )
        if r > 0:
            times.append(1000 * (time.perf_counter() - start))
            counts.append(history.clients[0])
    return statistics.median(times), float(np.mean(counts))


def part_one(quick: bool) -> None:
    fed = make_synthetic_federated(num_clients=NUM_CLIENTS, seed=0)
    clients = split_by_client(fed.x, fed.y, fed.client_indices())
    rounds = 1 if quick else 3
    print(f"DP-FedAvg round, synthetic data ({NUM_CLIENTS} clients), logistic regression 60->10,")
    print("1 local epoch, batch 10; median ms per round (includes the RDP epsilon)\n")
    header = ("sampled clients", "vectorised (ms)", "loop (ms)", "loop / vectorised")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("-" * (len(h) + 2) for h in header) + "|")
    for target in (10, 100) if quick else (10, 100, 1000):
        q = target / NUM_CLIENTS
        vec, count = dp_round_ms(clients, q, True, rounds)
        loop, _ = dp_round_ms(clients, q, False, rounds)
        cells = (f"{count:.0f}", f"{vec:.1f}", f"{loop:.1f}", f"{loop / vec:.1f}x")
        print("| " + " | ".join(c.rjust(len(h)) for c, h in zip(cells, header, strict=True)) + " |")


def digits_job() -> tuple[list, torch.Tensor, torch.Tensor]:
    x, y, x_test, y_test = load_digits()
    clients = split_by_client(x.reshape(len(x), -1), y, iid_partition(len(y), 10, seed=0))
    return (
        clients,
        torch.as_tensor(x_test).reshape(len(x_test), -1).float(),
        torch.as_tensor(y_test),
    )


def ours_small_job() -> tuple[float, float]:
    clients, x_test, y_test = digits_job()
    start = time.perf_counter()
    model = LogisticRegression(64, 10)
    history = run_fedavg(
        model,
        clients,
        rounds=3,
        clients_per_round=10,
        generator=torch.Generator().manual_seed(0),
        x_test=x_test,
        y_test=y_test,
        progress=False,
        local=LOCAL,
    )
    return time.perf_counter() - start, history.accuracy[-1]


def flower_small_job() -> tuple[float, float] | str | None:
    try:
        from flwr.client import NumPyClient
        from flwr.clientapp import ClientApp
        from flwr.common import Context, ndarrays_to_parameters
        from flwr.server import ServerAppComponents, ServerConfig
        from flwr.server.strategy import FedAvg
        from flwr.serverapp import ServerApp
        from flwr.simulation import run_simulation
    except ImportError:
        return None
    logging.getLogger("flwr").setLevel(logging.ERROR)
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    clients, x_test, y_test = digits_job()
    accuracy: list[float] = []

    def to_numpy(model: LogisticRegression) -> list[np.ndarray]:
        return [p.detach().numpy().copy() for p in model.parameters()]

    def from_numpy(arrays: list[np.ndarray]) -> LogisticRegression:
        model = LogisticRegression(64, 10)
        assign_flat_parameters(model, torch.cat([torch.as_tensor(a).reshape(-1) for a in arrays]))
        return model

    class DigitsClient(NumPyClient):
        def __init__(self, cid: int) -> None:
            self.cid = cid

        def fit(self, parameters, config):  # noqa: ANN001, ANN201
            x, y = clients[self.cid]
            model = from_numpy(parameters)
            update = local_update(
                model,
                x,
                y,
                epochs=1,
                batch_size=10,
                lr=0.1,
                generator=torch.Generator().manual_seed(self.cid),
            )
            assign_flat_parameters(model, flatten_parameters(model) + update)
            return to_numpy(model), len(y), {}

    def client_fn(context: Context):  # noqa: ANN202
        return DigitsClient(int(context.node_config["partition-id"])).to_client()

    def evaluate(server_round, parameters, config):  # noqa: ANN001, ANN202
        model = from_numpy(parameters)
        acc = float((model(x_test).argmax(1) == y_test).float().mean())
        accuracy.append(acc)
        return 0.0, {"accuracy": acc}

    def server_fn(context: Context) -> ServerAppComponents:
        strategy = FedAvg(
            fraction_fit=1.0,
            fraction_evaluate=0.0,
            min_fit_clients=10,
            min_available_clients=10,
            initial_parameters=ndarrays_to_parameters(to_numpy(LogisticRegression(64, 10))),
            evaluate_fn=evaluate,
        )
        return ServerAppComponents(strategy=strategy, config=ServerConfig(num_rounds=3))

    start = time.perf_counter()
    try:
        run_simulation(
            server_app=ServerApp(server_fn=server_fn),
            client_app=ClientApp(client_fn=client_fn),
            num_supernodes=10,
            backend_config={"client_resources": {"num_cpus": 1, "num_gpus": 0.0}},
        )
    except Exception as error:  # Ray may fail to start on a loaded machine
        return f"{type(error).__name__}: {error}"
    finally:
        _shutdown_ray()
    if not accuracy:
        return "the simulation finished without evaluating a round"
    return time.perf_counter() - start, accuracy[-1]


def _shutdown_ray() -> None:
    """Stop Ray if the simulation left it running, so no worker outlives the benchmark."""
    try:
        import ray
    except ImportError:
        return
    if ray.is_initialized():
        ray.shutdown()


def part_two() -> None:
    ours_s, ours_acc = ours_small_job()  # cold: the first torch.func call in the process
    warm_s, _ = ours_small_job()
    flower = flower_small_job()
    print("\nSmall FedAvg job: 8x8 digits, 10 IID clients, 3 rounds, logistic regression\n")
    header = ("engine".ljust(28), "wall time (s)", "test accuracy", "ratio to ours")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("-" * (len(h) + 2) for h in header) + "|")
    for name, seconds, ratio in (
        ("fl_dp_lab.run_fedavg (cold)", ours_s, f"{1.0:>12.1f}x"),
        ("fl_dp_lab.run_fedavg (warm)", warm_s, " " * 13),
    ):
        print(f"| {name:<28} | {seconds:>13.2f} | {ours_acc:>13.3f} | {ratio} |")
    if flower is None:
        print("| flwr not installed: skipped |")
    elif isinstance(flower, str):
        print(f"| Flower run_simulation failed: {flower} |")
    else:
        fl_s, fl_acc = flower
        name = "Flower run_simulation (Ray)"
        print(f"| {name:<28} | {fl_s:>13.2f} | {fl_acc:>13.3f} | {fl_s / ours_s:>12.0f}x |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and sizes (smoke run)")
    parser.add_argument("--no-flower", action="store_true", help="skip the Flower comparison")
    parser.add_argument(
        "--no-rounds", action="store_true", help="skip the round timings (Flower comparison only)"
    )
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    logging.getLogger("flwr").setLevel(logging.ERROR)
    print(
        f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} torch thread(s), "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}\n"
    )
    if not args.no_rounds:
        part_one(args.quick)
    if not args.no_flower:
        part_two()


if __name__ == "__main__":
    main()
