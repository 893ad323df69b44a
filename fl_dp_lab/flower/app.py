"""DP-FedAvg on Flower: the ClientApp, and the pieces both sides share.

Flower (Beutel et al., 2020) runs the same two programs in a simulation and
on real machines: a ``ServerApp`` (``fl_dp_lab.flower.server``) that sends
``Message`` objects through a ``Grid`` to SuperNodes, and this ``ClientApp``
that answers them. The client is ``fl_dp_lab.federated.local_update`` and
nothing more: it receives the global weights and a seed, trains a copy with
plain SGD, and sends the new weights back. Clipping, noise and Poisson
client sampling stay on the server, exactly as in notebook 09.

Every node learns which slice of the data it holds from its node config
(``partition-id`` and ``num-partitions``, set by the simulation or by
``flower-supernode --node-config``); ``digits_clients`` builds the same
slices in-process, so a Flower run can be compared number for number with
``fl_dp_lab.federated.run_dp_fedavg``.

Message protocol (message type -> content):

- ``query``: reply ``MetricRecord {"partition-id", "num-partitions",
  "num-examples"}``, so the server can wait for every partition and order
  the nodes by partition (node ids are random).
- ``train``: ``ArrayRecord "arrays"`` (global weights) and ``ConfigRecord
  "config"`` (``seed``, ``local-epochs``, ``batch-size``, ``lr``); reply the
  locally trained weights and ``MetricRecord {"num-examples"}``, the
  convention Flower's own ``FedAvg`` and DP wrappers expect.
- ``evaluate``: weights in, ``MetricRecord {"loss", "accuracy",
  "num-examples"}`` on the node's data out.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from torch import nn

from fl_dp_lab._validate import check_int, check_real, fail
from fl_dp_lab.accounting import MAX_STEPS
from fl_dp_lab.data import iid_partition, load_digits
from fl_dp_lab.federated import (
    LocalSGD,
    UserLevelDP,
    assign_flat_parameters,
    flatten_parameters,
    local_update,
)
from fl_dp_lab.flower.simulation import captured_flower_log
from fl_dp_lab.models import LogisticRegression
from fl_dp_lab.training import evaluate

__all__ = [
    "DEFAULT_RUN_CONFIG",
    "arrays_to_flat",
    "check_run_config",
    "client_app",
    "deliver",
    "digits_clients",
    "flat_to_arrays",
    "local_config",
    "make_client_app",
    "make_model",
    "privacy_config",
]

#: Run config of the app (the same keys as ``flower/pyproject.toml``'s
#: ``[tool.flwr.app.config]``); the ServerApp reads these, overridable by
#: ``flwr run --run-config`` or by ``make_server_app(**overrides)``, and builds
#: from them the same ``UserLevelDP`` and ``LocalSGD`` that ``run_dp_fedavg`` takes
#: (``privacy_config``, ``local_config``).
DEFAULT_RUN_CONFIG: dict[str, Any] = {
    "num-rounds": 5,
    "sample-rate": 0.5,
    "noise-multiplier": 0.5,
    "clip-norm": 2.0,
    "delta": 1e-3,
    "local-epochs": 1,
    "batch-size": 16,
    "lr": 0.5,
    "server-lr": 1.0,
    "seed": 0,
    "data-seed": 0,
    "timeout": 600.0,
    "history-path": "",
}


#: The largest learning rate, clip norm or noise multiplier a run config may hold. The
#: weights travel as float32 (largest 3.4e38): at 1e300 they overflow to inf while epsilon
#: is still reported; anything above 1e6 is a typo here (the course's values are below 10).
MAX_HYPERPARAMETER = 1e6
#: The most local epochs a client may be asked for (each is a full pass over its data).
MAX_LOCAL_EPOCHS = 10_000


def check_run_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The run config with every value checked, as ``run_dp_fedavg`` checks its arguments.

    Checked once, when an app is built and again when its run starts (with the
    context's values), so a bad value fails before any round: ``num-rounds`` 0
    ran nothing, a ``sample-rate`` above 1 made Flower's DP server wait forever
    for more clients than exist, NaN or 1e300 learning rates gave non-finite
    weights with epsilon still reported, and a float ``local-epochs`` or
    ``num-rounds`` of 1e300 looped for ever.

    Ranges: ``num-rounds`` an integer in [1, ``accounting.MAX_STEPS``]
    (epsilon is accounted after every round); ``sample-rate`` in (0, 1];
    ``noise-multiplier`` in [0, 1e6]; ``clip-norm``, ``lr``, ``server-lr`` in
    (0, 1e6] (``MAX_HYPERPARAMETER``); ``delta`` in (0, 1); ``local-epochs``
    an integer in [1, 10,000]; ``batch-size`` an integer >= 1; ``seed`` and
    ``data-seed`` integers in [0, 2^63); ``timeout`` in (0, 1e6] seconds;
    ``history-path`` a string. Every key of ``DEFAULT_RUN_CONFIG`` must be
    there and no other.

    Returns:
        A new dict of the checked values (ints as int, reals as float).

    Raises:
        ValueError, TypeError: naming the key, e.g. "num-rounds must be an integer >= 1, got 0".

    >>> check_run_config(DEFAULT_RUN_CONFIG)["sample-rate"]
    0.5
    """
    if not isinstance(config, Mapping):
        fail("the run config", "a mapping of keys to values", config, TypeError)
    unknown = sorted(set(config) - set(DEFAULT_RUN_CONFIG))
    if unknown:
        fail("a run config key", "one of " + ", ".join(DEFAULT_RUN_CONFIG), unknown[0])
    missing = sorted(set(DEFAULT_RUN_CONFIG) - set(config))
    if missing:
        fail("the run config", "holding every key of DEFAULT_RUN_CONFIG", f"no {missing[0]!r}")
    big = MAX_HYPERPARAMETER
    seed_max = 2**63 - 1
    checked: dict[str, Any] = {
        "num-rounds": check_int("num-rounds", config["num-rounds"], minimum=1, maximum=MAX_STEPS),
        "sample-rate": check_real(
            "sample-rate", config["sample-rate"], low=0.0, high=1.0, low_open=True
        ),
        "noise-multiplier": check_real(
            "noise-multiplier", config["noise-multiplier"], low=0.0, high=big
        ),
        "clip-norm": check_real("clip-norm", config["clip-norm"], low=0.0, high=big, low_open=True),
        "delta": check_real(
            "delta", config["delta"], low=0.0, high=1.0, low_open=True, high_open=True
        ),
        "local-epochs": check_int(
            "local-epochs", config["local-epochs"], minimum=1, maximum=MAX_LOCAL_EPOCHS
        ),
        "batch-size": check_int("batch-size", config["batch-size"], minimum=1),
        "lr": check_real("lr", config["lr"], low=0.0, high=big, low_open=True),
        "server-lr": check_real("server-lr", config["server-lr"], low=0.0, high=big, low_open=True),
        "seed": check_int("seed", config["seed"], minimum=0, maximum=seed_max),
        "data-seed": check_int("data-seed", config["data-seed"], minimum=0, maximum=seed_max),
        "timeout": check_real("timeout", config["timeout"], low=0.0, high=big, low_open=True),
    }
    if not isinstance(config["history-path"], str):
        fail("history-path", "a path (str; empty for none)", config["history-path"], TypeError)
    checked["history-path"] = config["history-path"]
    return checked


def privacy_config(config: Mapping[str, Any]) -> UserLevelDP:
    """The ``UserLevelDP`` of a run config, the object ``run_dp_fedavg`` takes.

    >>> privacy_config(DEFAULT_RUN_CONFIG)
    UserLevelDP(noise_multiplier=0.5, clip_norm=2.0, sample_rate=0.5, delta=0.001, \
accountant='pld', adaptive=None)
    """
    config = check_run_config(config)
    return UserLevelDP(
        noise_multiplier=config["noise-multiplier"],
        clip_norm=config["clip-norm"],
        sample_rate=config["sample-rate"],
        delta=config["delta"],
    )


def local_config(config: Mapping[str, Any]) -> LocalSGD:
    """The ``LocalSGD`` every sampled node runs, from a run config.

    >>> local_config(DEFAULT_RUN_CONFIG)
    LocalSGD(epochs=1, batch_size=16, lr=0.5)
    """
    config = check_run_config(config)
    return LocalSGD(epochs=config["local-epochs"], batch_size=config["batch-size"], lr=config["lr"])


def make_model() -> nn.Module:
    """The model every node trains: logistic regression on 8x8 digits, started at zero.

    Zeros need no random numbers, so the server, every client and the
    in-process run start from the same weights without sharing a seed.
    """
    return LogisticRegression(64, 10)


def digits_clients(
    num_clients: int, *, data_seed: int = 0
) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], torch.Tensor, torch.Tensor]:
    """The digits training set split IID among ``num_clients``, and the test set.

    Client k holds the examples of ``iid_partition(1437, num_clients,
    seed=data_seed)[k]``; a SuperNode with ``partition-id = k`` loads exactly
    these, so simulation, deployment and ``run_dp_fedavg`` see the same data.

    Args:
        num_clients: K, in [1, 1437].
        data_seed: seed of the partition.

    Returns:
        ``(clients, x_test, y_test)`` with ``clients[k] = (x_k, y_k)``.

    >>> clients, x_test, y_test = digits_clients(10)
    >>> len(clients), sum(len(y) for _, y in clients), len(y_test)
    (10, 1437, 360)
    """
    num_clients = check_int("num_clients", num_clients, minimum=1, maximum=1437)
    data_seed = check_int("data_seed", data_seed, minimum=0)
    return _digits_clients(num_clients, data_seed)


def flat_to_arrays(flat: torch.Tensor, model: nn.Module | None = None) -> ArrayRecord:
    """Wrap a flat weight vector as an ``ArrayRecord`` keyed like ``model.state_dict()``.

    >>> record = flat_to_arrays(torch.zeros(650))
    >>> list(record.keys())
    ['linear.weight', 'linear.bias']
    """
    model = make_model() if model is None else model
    assign_flat_parameters(model, flat)
    return ArrayRecord(model.state_dict())


def arrays_to_flat(record: ArrayRecord, model: nn.Module | None = None) -> torch.Tensor:
    """The flat weight vector held in ``record`` (the inverse of ``flat_to_arrays``).

    >>> arrays_to_flat(flat_to_arrays(torch.arange(650.0)))[-1].item()
    649.0
    """
    if not isinstance(record, ArrayRecord):
        fail("record", "a flwr.app.ArrayRecord", record, TypeError)
    model = make_model() if model is None else model
    model.load_state_dict(record.to_torch_state_dict())
    return flatten_parameters(model)


def make_client_app(train_mods: Sequence[Any] = (), app_mods: Sequence[Any] = ()) -> ClientApp:
    """The DP-FedAvg ``ClientApp``: ``query``, ``train`` and ``evaluate`` handlers.

    Args:
        train_mods: Flower mods applied to ``train`` messages only
            (``@app.train(mods=...)``), e.g. ``[fixedclipping_mod]`` for
            Flower's client-side clipping. This is where DP mods belong.
        app_mods: mods applied to *every* message (``ClientApp(mods=...)``).
            Kept to show the pitfall: ``fixedclipping_mod`` there answers
            ``query`` and ``evaluate`` messages, which carry no clipping
            norm, with an error.

    Returns:
        A new ``flwr.clientapp.ClientApp``.

    Raises:
        TypeError: ``train_mods`` or ``app_mods`` is not a list (or tuple) of mods,
            for example a single mod passed without its brackets.
    """
    for label, mods in (("train_mods", train_mods), ("app_mods", app_mods)):
        if not isinstance(mods, list | tuple) or not all(callable(mod) for mod in mods):
            fail(label, "a list of Flower mods, e.g. [fixedclipping_mod]", mods, TypeError)
    app = ClientApp(mods=list(app_mods))

    @app.query()
    def query(message: Message, context: Context) -> Message:
        x, y = _node_data(context)
        partition_id, num_partitions = _partition(context)
        metrics = MetricRecord(
            {"partition-id": partition_id, "num-partitions": num_partitions, "num-examples": len(y)}
        )
        return Message(RecordDict({"metrics": metrics}), reply_to=message)

    @app.train(mods=list(train_mods))
    def train(message: Message, context: Context) -> Message:
        x, y = _node_data(context)
        config = message.content["config"]
        model = make_model()
        start = arrays_to_flat(message.content["arrays"], model)
        # the server checked its run config; a client checks what reaches it too
        local = LocalSGD(
            epochs=check_int(
                "local-epochs", config["local-epochs"], minimum=1, maximum=MAX_LOCAL_EPOCHS
            ),
            batch_size=check_int("batch-size", config["batch-size"], minimum=1),
            lr=check_real("lr", config["lr"], low=0.0, high=MAX_HYPERPARAMETER, low_open=True),
        )
        seed = check_int("seed", config["seed"], minimum=0, maximum=2**63 - 1)
        update = local_update(
            model,
            x,
            y,
            epochs=local.epochs,
            batch_size=local.batch_size,
            lr=local.lr,
            generator=torch.Generator().manual_seed(seed),
        )
        content = RecordDict(
            {
                "arrays": flat_to_arrays(start + update, model),
                "metrics": MetricRecord({"num-examples": len(y)}),
            }
        )
        return Message(content, reply_to=message)

    @app.evaluate()
    def evaluate_(message: Message, context: Context) -> Message:
        x, y = _node_data(context)
        model = make_model()
        model.load_state_dict(message.content["arrays"].to_torch_state_dict())
        loss, accuracy = evaluate(model, x, y)
        metrics = MetricRecord({"loss": loss, "accuracy": accuracy, "num-examples": len(y)})
        return Message(RecordDict({"metrics": metrics}), reply_to=message)

    return app


#: The ClientApp that ``flwr run`` loads (``fl_dp_lab.flower.app:client_app``).
client_app = make_client_app()


def deliver(
    app: ClientApp,
    message_type: str,
    content: RecordDict,
    *,
    partition_id: int,
    num_partitions: int,
    node_id: int = 1,
    log: list[str] | None = None,
) -> Message:
    """Hand one message to ``app`` in this process, as a SuperNode would, and return the reply.

    For looking at a ClientApp's answers without starting Ray or a
    SuperLink. Outside a running Flower app a ``Message`` needs a run id,
    so this sets Flower's task identity (run 0, node ``node_id``) when none
    is set. What Flower logs while the app handles the message (a mod's
    error, say) is not printed: an error the app reports is in the reply
    (``reply.error.reason``), and the log lines go to ``log`` when given.
    Exceptions the app raises propagate.

    Args:
        app: the ClientApp.
        message_type: ``"query"``, ``"train"`` or ``"evaluate"``.
        content: the records the server would send.
        partition_id, num_partitions: the node config of the receiving node.
        node_id: the receiving node's id.
        log: a list that Flower's log lines (``"LEVEL: message"``) are appended to.

    Returns:
        The reply ``Message`` (check ``reply.has_error()``).
    """
    from flwr.supercore.task_identity import TaskIdentity

    if not isinstance(app, ClientApp):
        fail("app", "a flwr.clientapp.ClientApp", app, TypeError)
    if log is not None and not isinstance(log, list):
        fail("log", "a list (or None)", log, TypeError)
    num_partitions = check_int("num_partitions", num_partitions, minimum=1)
    partition_id = check_int("partition_id", partition_id, minimum=0, maximum=num_partitions - 1)
    if TaskIdentity._run_id is None:
        TaskIdentity.run_id, TaskIdentity.task_id, TaskIdentity.node_id = 0, 0, node_id
    context = Context(
        run_id=0,
        node_id=node_id,
        node_config={"partition-id": partition_id, "num-partitions": num_partitions},
        state=RecordDict(),
        run_config={},
    )
    message = Message(content, dst_node_id=node_id, message_type=message_type, group_id="0")
    with captured_flower_log() as lines:
        reply = app(message, context)
    if log is not None:
        log.extend(lines)
    return reply


def _partition(context: Context) -> tuple[int, int]:
    config = context.node_config
    if "partition-id" not in config or "num-partitions" not in config:
        fail("the node config", "holding partition-id and num-partitions", dict(config))
    return int(config["partition-id"]), int(config["num-partitions"])


def _node_data(context: Context) -> tuple[torch.Tensor, torch.Tensor]:
    partition_id, num_partitions = _partition(context)
    data_seed = check_int(
        "data-seed", context.run_config.get("data-seed", DEFAULT_RUN_CONFIG["data-seed"]), minimum=0
    )
    clients, _, _ = _digits_clients(num_partitions, data_seed)
    return clients[partition_id]


@functools.lru_cache(maxsize=4)
def _digits_clients(
    num_clients: int, data_seed: int
) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], torch.Tensor, torch.Tensor]:
    x_train, y_train, x_test, y_test = load_digits()
    parts = iid_partition(len(y_train), num_clients, seed=data_seed)
    x = torch.as_tensor(x_train)
    y = torch.as_tensor(y_train)
    clients = [(x[torch.as_tensor(p)], y[torch.as_tensor(p)]) for p in parts]
    return clients, torch.as_tensor(x_test), torch.as_tensor(np.asarray(y_test))
