"""Run a Flower ServerApp and ClientApp in one process, inside Binder's limits.

``flwr.simulation.run_simulation`` starts Ray, runs one virtual SuperNode
per client and the ServerApp in a thread of the calling process, so a
ServerApp built with ``make_server_app(result)`` hands its result straight
back. ``simulate`` wraps it with the settings a 1-CPU, 2 GB Binder session
needs: one Ray CPU (so one ClientApp runs at a time), a small object store,
no dashboard, no telemetry, quiet logs, and ``ray.shutdown()`` afterwards so
no Ray process outlives the call. Ray's start-up (5-10 s) dominates a small
run; on a busy machine Ray can time out while starting, so ``simulate``
retries that one failure.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from flwr.clientapp import ClientApp
from flwr.serverapp import ServerApp

from fl_dp_lab._validate import check_bool, check_int, fail

__all__ = ["BINDER_BACKEND_CONFIG", "simulate"]

#: One CPU for all ClientApps, a 80 MB object store, no dashboard.
BINDER_BACKEND_CONFIG: dict[str, Any] = {
    "client_resources": {"num_cpus": 1, "num_gpus": 0.0},
    "init_args": {
        "num_cpus": 1,
        "num_gpus": 0,
        "include_dashboard": False,
        "object_store_memory": 80 * 1024**2,
        "log_to_driver": False,
    },
}


def simulate(
    server_app: ServerApp,
    client_app: ClientApp,
    *,
    num_supernodes: int,
    attempts: int = 3,
    verbose: bool = False,
) -> None:
    """``run_simulation`` with ``num_supernodes`` virtual SuperNodes, on one Ray CPU.

    Node k gets the node config ``partition-id = k, num-partitions =
    num_supernodes``. Exceptions of the ServerApp are raised here.

    Args:
        server_app, client_app: the Flower apps to run.
        num_supernodes: K >= 1.
        attempts: how often to try when Ray times out while starting, >= 1.
        verbose: keep Flower's INFO log (round by round) instead of warnings only.
    """
    if not isinstance(server_app, ServerApp):
        fail("server_app", "a flwr.serverapp.ServerApp", server_app, TypeError)
    if not isinstance(client_app, ClientApp):
        fail("client_app", "a flwr.clientapp.ClientApp", client_app, TypeError)
    num_supernodes = check_int("num_supernodes", num_supernodes, minimum=1)
    attempts = check_int("attempts", attempts, minimum=1)
    check_bool("verbose", verbose)
    import ray
    from flwr.simulation import run_simulation

    os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    logger = logging.getLogger("flwr")
    level = logger.level
    logger.setLevel(logging.INFO if verbose else logging.WARNING)
    try:
        for attempt in range(1, attempts + 1):
            before = _child_pids()
            try:
                run_simulation(
                    server_app=server_app,
                    client_app=client_app,
                    num_supernodes=num_supernodes,
                    backend_config=BINDER_BACKEND_CONFIG,
                )
                return
            except RuntimeError as error:
                if attempt == attempts or not _ray_failed_to_start(error):
                    raise
            finally:
                if ray.is_initialized():
                    ray.shutdown()
                _stop_new_children(before)
    finally:
        logger.setLevel(level)


def _child_pids() -> set[int]:
    try:
        import psutil
    except ImportError:  # without psutil, a failed Ray start may leave processes behind
        return set()
    return {p.pid for p in psutil.Process().children(recursive=True)}


def _stop_new_children(before: set[int]) -> None:
    """Stop what a failed Ray start left behind (its GCS server, raylet, agents)."""
    try:
        import psutil
    except ImportError:
        return

    new = [p for p in psutil.Process().children(recursive=True) if p.pid not in before]
    for process in new:
        try:
            process.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(new, timeout=5)
    for process in alive:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass


def _ray_failed_to_start(error: BaseException | None) -> bool:
    while error is not None:
        if "timed out during startup" in str(error):
            return True
        error = error.__cause__ or error.__context__
    return False
