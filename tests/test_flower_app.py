"""Tests of the Flower apps (fl_dp_lab.flower.app, flower_server, flower_simulation).

Most tests run the ServerApp against the ClientApp in this process through
``DirectGrid`` (a Flower ``Grid`` that hands each message straight to the
ClientApp of its node), so the algorithm is checked against
``fl_dp_lab.federated.run_dp_fedavg`` without Ray. The test marked
``flower`` runs the real Simulation Engine (Ray) in a child process with a
time limit, and kills that process's whole group afterwards, so a hung Ray
can neither stall the test run nor leave processes behind.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import psutil
import pytest
import torch
from flwr.app import ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp.mod import fixedclipping_mod
from flwr.serverapp import Grid
from flwr.serverapp.strategy import DifferentialPrivacyServerSideFixedClipping, FedAvg
from flwr.supercore.task_identity import TaskIdentity

from fl_dp_lab.federated import flatten_parameters, local_update, run_dp_fedavg
from fl_dp_lab.flower.app import (
    DEFAULT_RUN_CONFIG,
    arrays_to_flat,
    check_run_config,
    client_app,
    deliver,
    digits_clients,
    flat_to_arrays,
    local_config,
    make_client_app,
    make_model,
    privacy_config,
)
from fl_dp_lab.flower.server import (
    FlowerResult,
    make_flower_dp_server_app,
    make_server_app,
    run_config,
)
from fl_dp_lab.flower.simulation import captured_flower_log, simulate, without_flower_log

SMALL = {"num-rounds": 3, "sample-rate": 0.5, "noise-multiplier": 0.7, "clip-norm": 1.0}


class DirectGrid(Grid):
    """A Grid whose nodes are ClientApps in this process (random node ids, as in Flower)."""

    def __init__(self, app, num_nodes: int, seed: int = 0) -> None:
        TaskIdentity.run_id, TaskIdentity.task_id, TaskIdentity.node_id = 0, 0, 0
        ids = np.random.default_rng(seed).choice(10**9, size=num_nodes, replace=False) + 1
        self.app, self.node_ids = app, [int(i) for i in ids]
        self.contexts = {
            node: Context(
                run_id=0,
                node_id=node,
                node_config={"partition-id": k, "num-partitions": num_nodes},
                state=RecordDict(),
                run_config={},
            )
            for k, node in enumerate(self.node_ids)
        }
        self.sent: list[Message] = []

    def set_run(self, run_id):  # pragma: no cover - not used by the apps
        pass

    @property
    def run(self):  # pragma: no cover
        raise NotImplementedError

    def create_message(self, content, message_type, dst_node_id, group_id, ttl=None):
        return Message(
            content, dst_node_id=dst_node_id, message_type=message_type, group_id=group_id
        )

    def get_node_ids(self):
        return list(self.node_ids)

    def push_messages(self, messages):  # pragma: no cover
        raise NotImplementedError

    def pull_messages(self, message_ids):  # pragma: no cover
        raise NotImplementedError

    def send_and_receive(self, messages, *, timeout=None):
        messages = list(messages)
        self.sent.extend(messages)
        return [self.app(m, self.contexts[m.metadata.dst_node_id]) for m in messages]


def run_direct(server_factory, num_nodes: int, overrides: dict) -> tuple[FlowerResult, DirectGrid]:
    result = FlowerResult()
    grid = DirectGrid(make_client_app(), num_nodes)
    context = Context(run_id=0, node_id=0, node_config={}, state=RecordDict(), run_config={})
    server_factory(result, overrides)(grid, context)
    return result, grid


def in_process(num_nodes: int, overrides: dict, seed: int = 0):
    config = run_config(overrides=overrides)
    clients, x_test, y_test = digits_clients(num_nodes)
    model = make_model()
    history = run_dp_fedavg(
        model,
        clients,
        rounds=config["num-rounds"],
        privacy=privacy_config(config),
        local=local_config(config),
        generator=torch.Generator().manual_seed(seed),
        x_test=x_test,
        y_test=y_test,
        vectorised=False,
        progress=False,
    )
    return history, flatten_parameters(model)


def test_flower_server_app_matches_run_dp_fedavg():
    # Prepare: 6 nodes with random ids, Poisson sampling at q = 0.5, noise on
    num_nodes = 6
    # Execute
    result, grid = run_direct(make_server_app, num_nodes, SMALL)
    history, weights = in_process(num_nodes, SMALL)
    # Assert: same clients per round, same epsilon, same weights up to float32 transport
    assert result.partitions == list(range(num_nodes))
    assert result.history.clients == history.clients
    assert result.history.epsilon == pytest.approx(history.epsilon, rel=1e-12)
    torch.testing.assert_close(result.weights, weights, atol=2e-5, rtol=0)
    assert result.history.accuracy == pytest.approx(history.accuracy, abs=1e-2)
    assert 0.0 < result.federated_accuracy <= 1.0
    kinds = [m.metadata.message_type for m in grid.sent]
    assert kinds.count("train") == sum(history.clients)
    assert kinds.count("evaluate") == num_nodes


def test_a_different_seed_gives_a_different_run():
    result, _ = run_direct(make_server_app, 6, SMALL)
    other, _ = run_direct(make_server_app, 6, SMALL | {"seed": 1})
    assert (result.weights - other.weights).abs().max() > 1e-3


def test_poisson_sampling_varies_the_number_of_clients():
    result, _ = run_direct(make_server_app, 8, {"num-rounds": 6, "noise-multiplier": 0.0})
    assert len(set(result.history.clients)) > 1  # Binomial(8, 0.5) per round, seed 0


def test_client_train_reply_is_the_local_update():
    # Prepare
    start = torch.linspace(-0.1, 0.1, 650)
    content = RecordDict(
        {
            "arrays": flat_to_arrays(start),
            "config": ConfigRecord({"seed": 5, "local-epochs": 2, "batch-size": 8, "lr": 0.3}),
        }
    )
    # Execute
    reply = deliver(client_app, "train", content, partition_id=1, num_partitions=4)
    # Assert: the reply holds start + local_update computed directly
    clients, _, _ = digits_clients(4)
    x, y = clients[1]
    model = make_model()
    model.load_state_dict(flat_to_arrays(start).to_torch_state_dict())
    expected = start + local_update(
        model, x, y, epochs=2, batch_size=8, lr=0.3, generator=torch.Generator().manual_seed(5)
    )
    torch.testing.assert_close(arrays_to_flat(reply.content["arrays"]), expected)
    assert reply.content["metrics"]["num-examples"] == len(y)


def test_query_reports_the_partition():
    reply = deliver(client_app, "query", RecordDict(), partition_id=2, num_partitions=3)
    metrics = reply.content["metrics"]
    assert (metrics["partition-id"], metrics["num-partitions"]) == (2, 3)
    assert metrics["num-examples"] == len(digits_clients(3)[0][2][1])


def test_dp_mods_belong_on_train_not_on_the_whole_client_app():
    evaluate = RecordDict({"arrays": flat_to_arrays(torch.zeros(650))})
    whole = make_client_app(app_mods=[fixedclipping_mod])
    scoped = make_client_app(train_mods=[fixedclipping_mod])
    broken = deliver(whole, "evaluate", evaluate, partition_id=0, num_partitions=2)
    fine = deliver(scoped, "evaluate", evaluate, partition_id=0, num_partitions=2)
    assert broken.has_error() and "fixedclipping_mod" in broken.error.reason
    assert not fine.has_error() and 0.0 <= fine.content["metrics"]["accuracy"] <= 1.0


def test_deliver_keeps_flowers_log_off_stderr_and_hands_it_back(caplog):
    evaluate = RecordDict({"arrays": flat_to_arrays(torch.zeros(650))})
    log: list[str] = []
    whole = make_client_app(app_mods=[fixedclipping_mod])
    broken = deliver(whole, "evaluate", evaluate, partition_id=0, num_partitions=2, log=log)
    assert log == [f"ERROR: {broken.error.reason}"]
    assert caplog.records == []  # no record reached Flower's (stderr) handler or the root
    with pytest.raises(TypeError, match="log must be a list"):
        deliver(whole, "evaluate", evaluate, partition_id=0, num_partitions=2, log="")


def test_flower_log_helpers_capture_or_drop_only_what_they_name(caplog):
    # Flower's console handler holds the real stderr, so the records are checked where
    # they propagate to: pytest's log capture
    from flwr.common.logger import log

    with captured_flower_log() as lines:
        log(logging.INFO, "round %d", 1)
        log(logging.DEBUG, "not collected")
    with without_flower_log(r"^harmless"):
        log(logging.WARNING, "harmless note")
        log(logging.WARNING, "a real warning")
    log(logging.WARNING, "harmless again, outside the block")
    logged = caplog.messages
    assert lines == ["INFO: round 1"] and "round 1" not in logged
    assert "harmless note" not in logged and "a real warning" in logged
    assert "harmless again, outside the block" in logged  # the filters end with their blocks
    with pytest.raises(TypeError, match="pattern must be a regular expression"):
        with without_flower_log(None):
            pass


def test_flower_dp_server_app_drops_only_fedavgs_skipped_evaluation_note(caplog):
    run_direct(make_flower_dp_server_app, 4, SMALL | {"num-rounds": 1})
    assert not any("fraction_evaluate" in message for message in caplog.messages)


def test_a_mod_without_its_list_is_refused_by_name():
    with pytest.raises(TypeError, match=r"train_mods must be a list of Flower mods"):
        make_client_app(train_mods=fixedclipping_mod)
    with pytest.raises(TypeError, match=r"app_mods must be a list of Flower mods"):
        make_client_app(app_mods=["fixedclipping_mod"])


def test_fixedclipping_mod_clips_the_train_reply():
    # Prepare: a learning rate so large that the update norm exceeds C = 0.1
    content = RecordDict(
        {
            "arrays": flat_to_arrays(torch.zeros(650)),
            "config": ConfigRecord(
                {"seed": 0, "local-epochs": 1, "batch-size": 8, "lr": 5.0, "clipping_norm": 0.1}
            ),
        }
    )
    app = make_client_app(train_mods=[fixedclipping_mod])
    # Execute
    reply = deliver(app, "train", content, partition_id=0, num_partitions=2)
    # Assert
    assert torch.linalg.vector_norm(arrays_to_flat(reply.content["arrays"])).item() == (
        pytest.approx(0.1, rel=1e-5)
    )


def test_flower_dp_wrapper_samples_a_fixed_number_of_clients():
    result, grid = run_direct(make_flower_dp_server_app, 6, SMALL)
    assert result.history.clients == [3, 3, 3]  # round(q*K) every round
    assert sum(m.metadata.message_type == "train" for m in grid.sent) == 9
    assert result.history.accuracy[-1] > 0.1


def test_flower_dp_wrapper_noise_comes_from_numpys_global_generator():
    # Prepare
    strategy = DifferentialPrivacyServerSideFixedClipping(
        FedAvg(), noise_multiplier=1.0, clipping_norm=1.0, num_sampled_clients=2
    )
    record = flat_to_arrays(torch.zeros(650))

    def noisy():
        return arrays_to_flat(strategy._add_noise_to_aggregated_arrays(record))

    # Execute
    np.random.seed(0)
    first = noisy()
    second = noisy()
    np.random.seed(0)
    replay = noisy()
    # Assert: consecutive calls differ, reseeding the *global* generator replays them
    assert (first - second).abs().max() > 0.1
    torch.testing.assert_close(first, replay)
    assert first.std().item() == pytest.approx(0.5, rel=0.1)  # sigma*C/m = 1/2


def test_flat_and_array_records_round_trip():
    flat = torch.randn(650, generator=torch.Generator().manual_seed(0))
    assert torch.equal(arrays_to_flat(flat_to_arrays(flat)), flat)


def test_digits_clients_cover_the_training_set_once():
    clients, x_test, y_test = digits_clients(7, data_seed=3)
    assert sum(len(y) for _, y in clients) == 1437 and len(y_test) == 360
    assert max(len(y) for _, y in clients) - min(len(y) for _, y in clients) <= 1


def test_run_config_layers_and_bad_keys():
    assert run_config()["num-rounds"] == DEFAULT_RUN_CONFIG["num-rounds"]
    assert run_config(overrides={"seed": 4})["seed"] == 4
    with pytest.raises(ValueError, match="run config key must be one of"):
        run_config(overrides={"rounds": 3})
    with pytest.raises(ValueError, match="run config key"):
        make_server_app(overrides={"sigma": 1.0})


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="num_clients must be"):
        digits_clients(0)
    with pytest.raises(TypeError, match="record must be a flwr.app.ArrayRecord"):
        arrays_to_flat(MetricRecord({"a": 1}))
    with pytest.raises(ValueError, match="partition_id must be"):
        deliver(client_app, "query", RecordDict(), partition_id=3, num_partitions=3)
    with pytest.raises(ValueError, match="num_supernodes must be"):
        simulate(make_server_app(), client_app, num_supernodes=0)
    with pytest.raises(TypeError, match="server_app must be"):
        simulate(client_app, client_app, num_supernodes=2)


#: One bad value at a time, each with the error it must raise; run_dp_fedavg refuses the same
BAD_RUN_CONFIG = [
    ("num-rounds", 0, ValueError),  # ran nothing
    ("num-rounds", -1, ValueError),
    ("num-rounds", 1e300, TypeError),  # looped for ever
    ("num-rounds", 3.0, TypeError),
    ("num-rounds", True, TypeError),
    ("num-rounds", 10**300, ValueError),
    ("local-epochs", 1.5, TypeError),
    ("local-epochs", 0, ValueError),
    ("sample-rate", 1.5, ValueError),  # Flower's DP server waited for ever for 2K clients
    ("sample-rate", 0.0, ValueError),  # ran one client
    ("sample-rate", -0.5, ValueError),
    ("noise-multiplier", float("nan"), ValueError),
    ("noise-multiplier", -1.0, ValueError),
    ("noise-multiplier", 1e300, ValueError),  # inf weights, epsilon still reported
    ("clip-norm", float("inf"), ValueError),
    ("clip-norm", 0.0, ValueError),
    ("lr", 1e300, ValueError),
    ("lr", "0.5", TypeError),
    ("server-lr", float("-inf"), ValueError),
    ("server-lr", None, TypeError),
    ("delta", 1.0, ValueError),
    ("batch-size", 0, ValueError),
    ("seed", -1, ValueError),
    ("timeout", float("nan"), ValueError),
    ("history-path", None, TypeError),
]


@pytest.mark.parametrize(("key", "value", "error"), BAD_RUN_CONFIG)
def test_a_bad_run_config_value_is_refused_by_key_when_the_app_is_built(key, value, error):
    match = f"^{key} must be"
    with pytest.raises(error, match=match):
        check_run_config(DEFAULT_RUN_CONFIG | {key: value})
    with pytest.raises(error, match=match):
        run_config(overrides={key: value})
    with pytest.raises(error, match=match):
        make_server_app(overrides={key: value})
    with pytest.raises(error, match=match):
        make_flower_dp_server_app(overrides={key: value})


def test_a_bad_value_in_the_contexts_run_config_fails_before_any_message():
    # flwr run --run-config "sample-rate=2.0" reaches the ServerApp through its context
    for factory in (make_server_app, make_flower_dp_server_app):
        grid = DirectGrid(make_client_app(), 3)
        context = Context(
            run_id=0,
            node_id=0,
            node_config={},
            state=RecordDict(),
            run_config={"sample-rate": 2.0},
        )
        with pytest.raises(ValueError, match=r"sample-rate must be in \(0, 1\]"):
            factory()(grid, context)
        assert grid.sent == []


def test_the_default_and_typical_run_configs_pass_unchanged():
    assert check_run_config(DEFAULT_RUN_CONFIG) == DEFAULT_RUN_CONFIG
    assert check_run_config(DEFAULT_RUN_CONFIG | SMALL) == DEFAULT_RUN_CONFIG | SMALL
    assert check_run_config(DEFAULT_RUN_CONFIG | {"sample-rate": 1, "noise-multiplier": 0})
    with pytest.raises(ValueError, match="a run config key must be one of"):
        check_run_config(DEFAULT_RUN_CONFIG | {"rounds": 3})
    with pytest.raises(ValueError, match="the run config must be holding every key"):
        check_run_config({"num-rounds": 3})


def test_the_client_refuses_a_train_message_with_absurd_epochs():
    # a ServerApp other than ours could send local-epochs = 1e300 (it looped for ever)
    content = RecordDict(
        {
            "arrays": flat_to_arrays(torch.zeros(650)),
            "config": ConfigRecord({"seed": 0, "local-epochs": 10**9, "batch-size": 16, "lr": 0.5}),
        }
    )
    with pytest.raises(ValueError, match="local-epochs must be an integer <= 10000"):
        deliver(client_app, "train", content, partition_id=0, num_partitions=3)


#: Runs the simulation in a child process, so a hung Ray can be killed with its whole
#: process group (Ray's daemons stay in the group of the process that started them).
SIMULATION_SCRIPT = """
import json, sys
import psutil
from fl_dp_lab.flower.app import make_client_app
from fl_dp_lab.flower.server import FlowerResult, make_server_app
from fl_dp_lab.flower.simulation import simulate

result = FlowerResult()
simulate(make_server_app(result, json.loads(sys.argv[1])), make_client_app(), num_supernodes=4)
import time

def still_running():
    found = []
    for p in psutil.Process().children(recursive=True):
        try:
            if p.status() != psutil.STATUS_ZOMBIE:
                found.append(p.cmdline()[:2])
        except psutil.NoSuchProcess:  # exited while we looked: not left behind
            pass
    return found

# a short-lived helper caught mid-run (platform.architecture's `file -b`, seen once in CI)
# is not left behind: only what still runs after the same 15 s grace as the group check
deadline = time.monotonic() + 15.0
while (left := still_running()) and time.monotonic() < deadline:
    time.sleep(0.2)
print(json.dumps({"clients": result.history.clients, "weights": result.weights.tolist(),
                  "left": left}))
"""
SIMULATION_TIMEOUT_S = 300


def _group_members(pgid: int) -> list[psutil.Process]:
    members = []
    for process in psutil.process_iter():
        try:
            if os.getpgid(process.pid) == pgid and process.status() != psutil.STATUS_ZOMBIE:
                members.append(process)
        except (psutil.NoSuchProcess, ProcessLookupError):
            continue
    return members


def _group_left_after(pgid: int, grace_s: float = 15.0) -> list[psutil.Process]:
    """Members of the group still alive ``grace_s`` after its leader exited.

    Ray's workers notice that their driver is gone and exit on their own, a moment later;
    a process caught mid-exit is not "left behind", one still running after the grace is.
    """
    deadline = time.monotonic() + grace_s
    while (left := _group_members(pgid)) and time.monotonic() < deadline:
        time.sleep(0.25)
    return left


@pytest.mark.flower
def test_simulation_engine_matches_run_dp_fedavg_and_cleans_up():
    # Prepare: 2 rounds on 4 virtual SuperNodes; every wait inside the ServerApp bounded
    overrides = SMALL | {"num-rounds": 2, "timeout": 200.0}
    command = [sys.executable, "-c", SIMULATION_SCRIPT, json.dumps(overrides)]
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    # Execute: Ray with one CPU, in its own process group, killed after the time limit
    child = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=env, start_new_session=True,
    )  # fmt: skip
    try:
        stdout, stderr = child.communicate(timeout=SIMULATION_TIMEOUT_S)
        left_in_group = _group_left_after(child.pid)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        child.communicate()
        pytest.fail(f"the simulation did not finish in {SIMULATION_TIMEOUT_S} s")
    finally:  # whatever happened, nothing of this run survives the test
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)
    history, weights = in_process(4, overrides)
    # Assert: same clients and weights as run_dp_fedavg; no Ray process outlives simulate
    assert child.returncode == 0, stderr[-3000:]
    run = json.loads(stdout.strip().splitlines()[-1])
    assert run["clients"] == history.clients
    torch.testing.assert_close(torch.tensor(run["weights"]), weights, atol=2e-5, rtol=0)
    assert run["left"] == [], f"processes left behind by simulate: {run['left']}"
    assert left_in_group == [], f"processes left behind: {[p.pid for p in left_in_group]}"


class LossyGrid(DirectGrid):
    """A DirectGrid whose first node never answers train messages (it went offline)."""

    def send_and_receive(self, messages, *, timeout=None):
        replies = super().send_and_receive(messages, timeout=timeout)
        return [
            r
            for r in replies
            if not (
                r.metadata.message_type == "train" and r.metadata.src_node_id == self.node_ids[0]
            )
        ]


def test_a_missing_train_reply_fails_the_round():
    grid = LossyGrid(make_client_app(), 4)
    context = Context(run_id=0, node_id=0, node_config={}, state=RecordDict(), run_config={})
    with pytest.raises(RuntimeError, match="no reply to the train message"):
        make_server_app(FlowerResult(), SMALL | {"sample-rate": 1.0})(grid, context)


def test_node_discovery_gives_up_after_the_run_config_timeout():
    # Prepare: the nodes say there are 3 partitions, but only 2 nodes ever connect
    grid = DirectGrid(make_client_app(), 2)
    for k, node in enumerate(grid.node_ids):
        grid.contexts[node].node_config = {"partition-id": k, "num-partitions": 3}
    context = Context(run_id=0, node_id=0, node_config={}, state=RecordDict(), run_config={})
    # Execute / Assert: a clear error once the 1 s timeout is spent, not a wait forever
    with pytest.raises(ValueError, match="one per partition"):
        make_server_app(FlowerResult(), SMALL | {"timeout": 1.0})(grid, context)
    queries = [m for m in grid.sent if m.metadata.message_type == "query"]
    assert 2 <= len(queries) <= 6  # one query per node per second waited, not a minute's worth


class SilentGrid(DirectGrid):
    """A Grid whose nodes never answer (a simulation whose Ray did not start)."""

    def push_messages(self, messages):
        return [f"id-{k}" for k, _ in enumerate(messages)]

    def pull_messages(self, message_ids):
        return []


def test_a_stopped_simulation_stops_its_server_app_waiting():
    # Prepare: a ServerApp thread waiting for replies that never come, without a timeout
    from fl_dp_lab.flower.simulation import _StoppableGrid

    stopped = threading.Event()
    grid = _StoppableGrid(SilentGrid(make_client_app(), 2), stopped)
    message = Message(RecordDict(), dst_node_id=grid.get_node_ids()[0], message_type="query")
    errors = []

    def wait_forever():
        try:
            grid.send_and_receive([message], timeout=None)
        except RuntimeError as error:
            errors.append(error)

    thread = threading.Thread(target=wait_forever, daemon=True)
    thread.start()
    # Execute: the simulation around it ends
    stopped.set()
    thread.join(timeout=10)
    # Assert: the wait ended with a clear error; with a timeout and no stop it just returns
    assert not thread.is_alive() and "simulation has stopped" in str(errors[0])
    assert (
        _StoppableGrid(SilentGrid(make_client_app(), 2), threading.Event()).send_and_receive(
            [message], timeout=0.3
        )
        == []
    )
