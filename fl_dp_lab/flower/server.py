"""DP-FedAvg on Flower: the ServerApp, and Flower's own DP wrapper beside it.

``make_server_app`` runs notebook 09's user-level DP-FedAvg (McMahan et
al., 2018, Algorithm 1) over a Flower ``Grid``. Each round is
``fl_dp_lab.federated.DPFedAvgServer.round``, the one ``run_dp_fedavg`` runs,
with the ``UserLevelDP`` and ``LocalSGD`` that ``privacy_config`` and
``local_config`` build from the run config. It draws, from one seeded
``torch.Generator`` and in this order:

1. the sampled clients, each independently with probability q
   (``poisson_client_sample``);
2. one seed per sampled client for its batch shuffling, sent in its
   ``train`` message;
3. the Gaussian noise of ``dp_aggregate``: (sum_k clip(Delta_k, C) +
   N(0, (sigma*C)^2 I)) / (q*K).

So a Flower run and the in-process run give the same model, round after
round, up to float rounding (the weights travel as float32 arrays). The
privacy guarantee is user-level (epsilon, delta)-DP under add/remove-one-
client neighbours with Poisson sampling, accounted by
``fl_dp_lab.accounting.epsilon`` after every round.

Every wait for replies (for the nodes to answer at the start, for each
round, for the final evaluation) is bounded by the run config's ``timeout``
in seconds: a lost node or a stuck worker fails the run, it never hangs it.

Why a sampled node that does not reply fails the round instead of being
left out: the accountant's amplification by sampling assumes that the sum
holds exactly the Poisson-sampled set, each client in with probability q by
a coin nobody else controls. The replies that come back are a different
set: whether a client replies can depend on its device, its data or whoever
delays its messages, and then its presence in the sum is no longer that
q-coin (dividing by the number of replies would also break the fixed
denominator q*K). If dropouts were independent of everything, a smaller sum
would only add privacy, but the server cannot check that. Production systems
either account without amplification by sampling (DP-FTRL, Kairouz et al.
2021, as deployed for Gboard, Xu et al. 2023) or over-sample clients and
analyse the selection they actually run.

``make_flower_dp_server_app`` runs Flower's
``DifferentialPrivacyServerSideFixedClipping`` around ``FedAvg`` on the same
clients. It differs in three ways the notebook shows: it samples a *fixed*
number of clients (``random.sample``), so the Poisson amplification the
accountant assumes does not apply; its noise is ``np.random.normal`` from
NumPy's global generator, so two runs differ unless the global seed is set;
and ``FedAvg`` weights clients by example count, so the noise scale
sigma*C/m matches the sensitivity only when all clients are equally large.
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import DifferentialPrivacyServerSideFixedClipping, FedAvg

from fl_dp_lab._validate import fail
from fl_dp_lab.federated import (
    DPFedAvgServer,
    FederatedHistory,
    LocalSGD,
    assign_flat_parameters,
    flatten_parameters,
)
from fl_dp_lab.flower.app import (
    DEFAULT_RUN_CONFIG,
    arrays_to_flat,
    check_run_config,
    digits_clients,
    flat_to_arrays,
    local_config,
    make_model,
    privacy_config,
)
from fl_dp_lab.flower.simulation import without_flower_log
from fl_dp_lab.training import evaluate

__all__ = [
    "FlowerResult",
    "make_flower_dp_server_app",
    "make_server_app",
    "run_config",
    "server_app",
]


@dataclass
class FlowerResult:
    """What a ServerApp run produced.

    Attributes:
        history: per round: central test loss/accuracy, clients, epsilon, clip norm.
        partitions: the partition id of each node, in the order of the node ids used.
        federated_accuracy: example-weighted accuracy the nodes reported on
            their own data for the final model (``evaluate`` messages).
        weights: the final flat weight vector.
    """

    history: FederatedHistory = field(default_factory=FederatedHistory)
    partitions: list[int] = field(default_factory=list)
    federated_accuracy: float = float("nan")
    weights: torch.Tensor | None = None


def run_config(context: Context | None = None, overrides: Mapping[str, Any] | None = None) -> dict:
    """``DEFAULT_RUN_CONFIG``, then the context's run config, then ``overrides``, checked.

    Every value is checked by ``fl_dp_lab.flower.app.check_run_config``
    (a ValueError or TypeError naming the key).

    >>> run_config(overrides={"num-rounds": 2})["num-rounds"]
    2
    """
    config = dict(DEFAULT_RUN_CONFIG)
    if context is not None:
        config.update(context.run_config)
    for key, value in (overrides or {}).items():
        if key not in DEFAULT_RUN_CONFIG:
            fail("a run config key", "one of " + ", ".join(DEFAULT_RUN_CONFIG), key)
        config[key] = value
    return check_run_config(config)


def make_server_app(
    result: FlowerResult | None = None, overrides: Mapping[str, Any] | None = None
) -> ServerApp:
    """The DP-FedAvg ``ServerApp`` (Poisson sampling, seeded noise, accounting).

    Args:
        result: filled in place when given (a simulation runs the ServerApp
            in the caller's process, so the caller can read it afterwards).
        overrides: run config values that win over ``DEFAULT_RUN_CONFIG`` and
            the context's run config (``run_simulation`` passes none).

    Returns:
        A ``flwr.serverapp.ServerApp``; with ``history-path`` set, it also
        writes its result as JSON there (how ``flwr run`` hands it back).
    """
    run_config(None, overrides)  # validate the config now, not inside Flower's thread
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        config = run_config(context, overrides)
        out = result if result is not None else FlowerResult()
        _dp_fedavg(grid, config, out)
        _save(out, config["history-path"])

    return app


def make_flower_dp_server_app(
    result: FlowerResult | None = None, overrides: Mapping[str, Any] | None = None
) -> ServerApp:
    """Flower's ``DifferentialPrivacyServerSideFixedClipping(FedAvg)`` on the same clients.

    m = round(q*K) clients a round, sampled without replacement; each
    update clipped to C on the server; noise N(0, (sigma*C/m)^2) added to
    the example-weighted FedAvg average with ``np.random.normal``.
    Every node trains with the same ``seed`` from the run config.
    """
    run_config(None, overrides)
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        config = run_config(context, overrides)
        out = result if result is not None else FlowerResult()
        nodes, partitions = _nodes_by_partition(grid, float(config["timeout"]))
        out.partitions = partitions
        m = max(1, round(config["sample-rate"] * len(nodes)))
        # No federated evaluation (the test set is evaluated centrally): FedAvg logs that
        # it skips it, a warning about the setting we chose, so that one line is dropped.
        with without_flower_log(r"^fraction_evaluate is set to 0\.0"):
            fedavg = FedAvg(
                fraction_train=m / len(nodes), fraction_evaluate=0.0, min_available_nodes=1
            )
        strategy = DifferentialPrivacyServerSideFixedClipping(
            fedavg,
            noise_multiplier=config["noise-multiplier"],
            clipping_norm=config["clip-norm"],
            num_sampled_clients=m,
        )
        _, x_test, y_test = digits_clients(len(nodes), data_seed=int(config["data-seed"]))

        def central(server_round: int, arrays: ArrayRecord) -> MetricRecord:
            loss, accuracy = _evaluate_flat(arrays_to_flat(arrays), x_test, y_test)
            return MetricRecord({"loss": loss, "accuracy": accuracy})

        final = strategy.start(
            grid,
            flat_to_arrays(flatten_parameters(make_model())),
            num_rounds=int(config["num-rounds"]),
            train_config=ConfigRecord(_train_config(local_config(config), int(config["seed"]))),
            evaluate_fn=central,
            timeout=float(config["timeout"]),
        )
        for r in range(1, int(config["num-rounds"]) + 1):
            metrics = final.evaluate_metrics_serverapp[r]
            out.history.round.append(r)
            out.history.loss.append(float(metrics["loss"]))
            out.history.accuracy.append(float(metrics["accuracy"]))
            out.history.clients.append(m)
        out.weights = arrays_to_flat(final.arrays)
        _save(out, config["history-path"])

    return app


def _dp_fedavg(grid: Grid, config: dict, out: FlowerResult) -> None:
    nodes, out.partitions = _nodes_by_partition(grid, float(config["timeout"]))
    privacy, local = privacy_config(config), local_config(config)
    _, x_test, y_test = digits_clients(len(nodes), data_seed=int(config["data-seed"]))
    generator = torch.Generator().manual_seed(int(config["seed"]))
    server = DPFedAvgServer(privacy, num_clients=len(nodes), generator=generator)
    flat = flatten_parameters(make_model())
    timeout = float(config["timeout"])
    for r in range(1, int(config["num-rounds"]) + 1):
        step = server.round(functools.partial(_train, grid, nodes, flat, local, timeout, r))
        flat = flat + float(config["server-lr"]) * step.average
        loss, accuracy = _evaluate_flat(flat, x_test, y_test)
        history = out.history
        history.round.append(r)
        history.loss.append(loss)
        history.accuracy.append(accuracy)
        history.clients.append(len(step.ids))
        history.clip_norm.append(step.clip_norm)
        history.epsilon.append(step.epsilon)
    out.weights = flat
    out.federated_accuracy = _federated_accuracy(grid, nodes, flat, float(config["timeout"]))


def _train(
    grid: Grid,
    nodes: list[int],
    flat: torch.Tensor,
    local: LocalSGD,
    timeout: float,
    round_number: int,
    ids: torch.Tensor,
    seeds: torch.Tensor,
) -> torch.Tensor:
    """The sampled nodes' updates, rows in the order of ``ids``: one ``train`` message each.

    Every sampled node must reply (see the module docstring).
    """
    messages = [
        Message(
            RecordDict(
                {
                    "arrays": flat_to_arrays(flat),
                    "config": ConfigRecord(_train_config(local, int(seed))),
                }
            ),
            dst_node_id=nodes[int(k)],
            message_type="train",
            group_id=str(round_number),
        )
        for k, seed in zip(ids, seeds, strict=True)
    ]
    sampled = [nodes[int(k)] for k in ids]
    replies = _by_node(grid.send_and_receive(messages, timeout=timeout), "train", sampled)
    rows = [arrays_to_flat(replies[node].content["arrays"]) - flat for node in sampled]
    return torch.stack(rows) if rows else flat.new_zeros(0, flat.numel())


def _nodes_by_partition(grid: Grid, timeout: float) -> tuple[list[int], list[int]]:
    """Node ids ordered by partition id, once every partition 0..K-1 has a node.

    Waits at most ``timeout`` seconds: in a simulation the first replies come
    only after Ray has started its worker, which takes a minute on a busy machine.
    """
    deadline = time.monotonic() + timeout
    while True:
        node_ids = sorted(grid.get_node_ids())
        if node_ids:
            query = [
                Message(RecordDict(), dst_node_id=n, message_type="query", group_id="0")
                for n in node_ids
            ]
            left = max(1.0, deadline - time.monotonic())
            replies = _by_node(grid.send_and_receive(query, timeout=left), "query")
            metrics = [r.content["metrics"] for r in replies.values()]
            partition = {n: int(r.content["metrics"]["partition-id"]) for n, r in replies.items()}
            expected = {int(m["num-partitions"]) for m in metrics}
            if expected == {len(partition)} and sorted(partition.values()) == list(
                range(len(partition))
            ):
                nodes = sorted(partition, key=partition.__getitem__)
                return nodes, [partition[n] for n in nodes]
        if time.monotonic() > deadline:
            fail("the connected nodes", "one per partition 0..K-1", sorted(grid.get_node_ids()))
        time.sleep(1.0)


def _federated_accuracy(grid: Grid, nodes: list[int], flat: torch.Tensor, timeout: float) -> float:
    messages = [
        Message(
            RecordDict({"arrays": flat_to_arrays(flat)}),
            dst_node_id=n,
            message_type="evaluate",
            group_id="final",
        )
        for n in nodes
    ]
    replies = _by_node(grid.send_and_receive(messages, timeout=timeout), "evaluate", nodes).values()
    metrics = [reply.content["metrics"] for reply in replies]
    total = sum(int(m["num-examples"]) for m in metrics)
    return sum(float(m["accuracy"]) * int(m["num-examples"]) for m in metrics) / total


def _by_node(replies: Any, kind: str, expected: list[int] | None = None) -> dict[int, Message]:
    """Replies keyed by node id; an error reply or a missing node fails the round."""
    out = {}
    for reply in replies:
        if reply.has_error():
            raise RuntimeError(
                f"node {reply.metadata.src_node_id} failed a {kind} message: {reply.error.reason}"
            )
        out[reply.metadata.src_node_id] = reply
    missing = sorted(set(expected or []) - set(out))
    if missing:
        # the accountant assumes the sum holds exactly the Poisson-sampled set; the set of
        # replies may depend on the clients or an adversary (module docstring)
        raise RuntimeError(f"no reply to the {kind} message from nodes {missing}")
    return out


def _train_config(local: LocalSGD, seed: int) -> dict[str, Any]:
    """A ``train`` message's config: the node's seed and its ``LocalSGD``, under Flower's keys."""
    return {
        "seed": seed,
        "local-epochs": local.epochs,
        "batch-size": local.batch_size,
        "lr": local.lr,
    }


def _evaluate_flat(flat: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    model = make_model()
    assign_flat_parameters(model, flat)
    return evaluate(model, x, y)


def _save(out: FlowerResult, path: str) -> None:
    if not path:
        return
    record = asdict(out.history) | {
        "partitions": out.partitions,
        "federated_accuracy": out.federated_accuracy,
        "weights": [] if out.weights is None else out.weights.tolist(),
    }
    partial = f"{path}.partial"
    with open(partial, "w", encoding="utf-8") as file:
        json.dump(record, file)
    os.replace(partial, path)  # readers never see a half-written file


#: The ServerApp that ``flwr run`` loads (``fl_dp_lab.flower.server:server_app``).
server_app = make_server_app()
