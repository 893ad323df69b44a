"""Run a Flower ServerApp and ClientApp in one process, inside Binder's limits.

``flwr.simulation.run_simulation`` starts Ray, runs one virtual SuperNode
per client and the ServerApp in a thread of the calling process, so a
ServerApp built with ``make_server_app(result)`` hands its result straight
back. ``simulate`` wraps it with the settings a 1-CPU, 2 GB Binder session
needs: one Ray CPU (so one ClientApp actor, one worker process), a small
object store, no dashboard, no usage statistics, no telemetry, quiet logs,
and ``ray.shutdown()`` afterwards, then it stops any process the call
started that is still alive, also when the run failed.

What a small run costs. Ray starts seven processes of its own (GCS server,
raylet, autoscaler monitor, log monitor, API server, dashboard agent,
runtime-env agent: together about 0.45 GB) and one worker for the
ClientApp actor, which imports torch and this package (about 0.3 GB).
Time goes the same way: on a shared 2-core machine, Ray's start-up took
about 30 s and the worker's first reply another 14 s of a 56 s run, while
the two federated rounds of logistic regression on the digits took 0.3 s
(Ray's start-up is faster on an idle machine, and still dominates). On a busy
machine Ray can time out while starting, so ``simulate`` retries that one
failure. Waits inside the course's ServerApps are bounded by the run
config's ``timeout``, so a stuck run ends with an error, not a hang; and
when a run ends early (Ray failed to start), the ServerApp's thread, which
Flower leaves running, stops waiting for replies at once instead of keeping
the process alive until its timeout.

Flower logs through the ``"flwr"`` logger to stderr, which Jupyter shows
as red error output. ``simulate`` shows warnings and errors only, and drops
the one notice every run prints, that ``run_simulation`` itself is
deprecated, with ``without_flower_log``; every other warning and error is
shown as usual. ``captured_flower_log`` collects Flower's log lines in a
list, for a cell that prints them as plain output.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from flwr.app import Context, Message
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp

from fl_dp_lab._validate import check_bool, check_int, fail

__all__ = ["BINDER_BACKEND_CONFIG", "captured_flower_log", "simulate", "without_flower_log"]

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
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # Ray's future default (and no FutureWarning from ray.init): with num_gpus=0 it leaves
    # CUDA_VISIBLE_DEVICES alone instead of setting it empty; the ClientApps use no GPU.
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
    logger = logging.getLogger("flwr")
    level = logger.level
    logger.setLevel(logging.INFO if verbose else logging.WARNING)
    try:
        for attempt in range(1, attempts + 1):
            before = _child_pids()
            stopped = threading.Event()
            try:
                # Flower 1.42 deprecates run_simulation in favour of the `flwr run` CLI, which
                # runs the ServerApp in another process and so cannot hand its result back;
                # it has no other in-process API, so only this one notice is dropped.
                with without_flower_log(r"The `run_simulation` function is deprecated"):
                    run_simulation(
                        server_app=_stoppable(server_app, stopped),
                        client_app=client_app,
                        num_supernodes=num_supernodes,
                        backend_config=BINDER_BACKEND_CONFIG,
                    )
                return
            except RuntimeError as error:
                if attempt == attempts or not _ray_failed_to_start(error):
                    raise
                warnings.warn(
                    f"Ray did not start in time (a busy machine?); attempt {attempt + 1} of "
                    f"{attempts}",
                    RuntimeWarning,
                    stacklevel=2,
                )
            finally:
                stopped.set()
                if ray.is_initialized():
                    ray.shutdown()
                _stop_new_children(before)
    finally:
        logger.setLevel(level)


@contextmanager
def captured_flower_log() -> Iterator[list[str]]:
    """Collect Flower's log lines in a list instead of printing them on stderr.

    While the block runs, every record of level INFO or above that Flower
    logs (from any thread) is appended to the list as ``"LEVEL: message"``
    and not handed to Flower's console handler; DEBUG records are left to
    the handlers (which show them only when ``FLWR_LOG_LEVEL=DEBUG``).
    Exceptions are not log records: they still propagate.

    >>> from flwr.common.logger import log
    >>> with captured_flower_log() as lines:
    ...     log(logging.INFO, "round %d done", 1)
    >>> lines
    ['INFO: round 1 done']
    """
    lines: list[str] = []

    def keep(record: logging.LogRecord) -> bool:
        if record.levelno < logging.INFO:
            return True
        lines.append(f"{record.levelname}: {record.getMessage()}")
        return False

    with _flower_log_filter(keep):
        yield lines


@contextmanager
def without_flower_log(pattern: str) -> Iterator[None]:
    """Drop the Flower log records whose message matches ``pattern`` while the block runs.

    For one known, harmless line; every other record is logged as usual.

    Args:
        pattern: a regular expression, searched for (``re.search``) in the message.
    """
    if not isinstance(pattern, str):
        fail("pattern", "a regular expression (str)", pattern, TypeError)
    regex = re.compile(pattern)
    with _flower_log_filter(lambda record: regex.search(record.getMessage()) is None):
        yield


@contextmanager
def _flower_log_filter(keep: Callable[[logging.LogRecord], bool]) -> Iterator[None]:
    """Apply ``keep`` to every record Flower logs (Flower logs through one ``flwr`` logger)."""
    logger = logging.getLogger("flwr")
    logger.addFilter(keep)
    try:
        yield
    finally:
        logger.removeFilter(keep)


def _stoppable(server_app: ServerApp, stopped: threading.Event) -> ServerApp:
    """``server_app`` on a Grid that gives up waiting for replies once ``stopped`` is set."""
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        server_app(_StoppableGrid(grid, stopped), context)

    return app


class _StoppableGrid(Grid):
    """A Grid that raises instead of waiting once the simulation around it has stopped.

    ``send_and_receive`` polls for replies as Flower's ``InMemoryGrid`` does, but
    checks ``stopped`` between polls.
    """

    def __init__(self, grid: Grid, stopped: threading.Event) -> None:
        self._grid, self._stopped = grid, stopped

    def set_run(self, run_id: int) -> None:
        self._grid.set_run(run_id)

    @property
    def run(self) -> Any:
        return self._grid.run

    def create_message(self, *args: Any, **kwargs: Any) -> Message:
        return self._grid.create_message(*args, **kwargs)

    def get_node_ids(self) -> Iterable[int]:
        self._check()
        return self._grid.get_node_ids()

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        self._check()
        return self._grid.push_messages(messages)

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        self._check()
        return self._grid.pull_messages(message_ids)

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        waiting = set(self.push_messages(messages))
        deadline = None if timeout is None else time.monotonic() + timeout
        replies: list[Message] = []
        while waiting and (deadline is None or time.monotonic() < deadline):
            new = list(self.pull_messages(waiting))
            replies.extend(new)
            waiting -= {reply.metadata.reply_to_message_id for reply in new}
            if waiting:
                self._stopped.wait(0.1)
        return replies

    def _check(self) -> None:
        if self._stopped.is_set():
            raise RuntimeError("the simulation has stopped; no more replies will come")


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
