"""The round loop shared by ``run_fedavg`` and ``run_dp_fedavg``: state, client updates, history."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm.auto import tqdm

from fl_dp_lab._types import LossFn
from fl_dp_lab._validate import check_bool, check_generator, check_int, check_real, fail
from fl_dp_lab.federated._vectorised import batched_local_updates
from fl_dp_lab.federated.client_updates import (
    assign_flat_parameters,
    dp_sgd_local_update,
    flatten_parameters,
    local_update,
)
from fl_dp_lab.federated.config import LocalDPSGD, LocalSGD
from fl_dp_lab.populations import ClientPopulation
from fl_dp_lab.training import check_data, evaluate

__all__ = ["FederatedHistory"]


@dataclass
class FederatedHistory:
    """What a federated run recorded, one entry per round.

    Attributes:
        round: 1, 2, ...
        loss, accuracy: the global model's mean loss and accuracy (in [0, 1])
            on the evaluation data after the round.
        clients: number of clients that took part in the round.
        epsilon: user-level epsilon after the round (DP-FedAvg only).
        clip_norm: the clip norm C used in the round (DP-FedAvg only).
    """

    round: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    clients: list[int] = field(default_factory=list)
    epsilon: list[float] = field(default_factory=list)
    clip_norm: list[float] = field(default_factory=list)


class _Run:
    """The state a simulated run shares between rounds: model, clients, history."""

    def __init__(
        self,
        model: nn.Module,
        clients: Sequence[tuple[torch.Tensor, torch.Tensor]] | ClientPopulation,
        *,
        rounds: int,
        local: LocalSGD | LocalDPSGD,
        server_lr: float,
        generator: torch.Generator,
        x_test: torch.Tensor | None,
        y_test: torch.Tensor | None,
        loss_fn: LossFn,
        vectorised: bool,
        progress: bool,
    ) -> None:
        if not isinstance(model, nn.Module):
            fail("model", "a torch.nn.Module", model, TypeError)
        if (x_test is None) != (y_test is None):
            fail("x_test and y_test", "both given or both None", (type(x_test), type(y_test)))
        self.population: ClientPopulation | None = None
        self.clients: Sequence[tuple[torch.Tensor, torch.Tensor]] = ()
        if isinstance(clients, Sequence) or not isinstance(clients, ClientPopulation):
            self.num_clients = _check_client_list(clients)
            self.clients = clients
        else:
            # made on demand: nothing of size K is read or copied; each sampled client
            # is checked when it is made (``_client``)
            self.population = clients
            self.num_clients = check_int("clients.num_clients", clients.num_clients, minimum=1)
            if x_test is None:
                fail("x_test and y_test", "given when clients is a population", None)
        check_generator("generator", generator)
        if not isinstance(local, LocalSGD | LocalDPSGD):
            fail("local", "a LocalSGD or LocalDPSGD", local, TypeError)
        self.local = local
        self.rounds_total = check_int("rounds", rounds, minimum=1)
        self.server_lr = check_real("server_lr", server_lr, low=0.0, low_open=True)
        self.vectorised = check_bool("vectorised", vectorised)
        self.progress = check_bool("progress", progress)
        if x_test is None or y_test is None:  # neither given (checked above): all clients' data
            x_test = torch.cat([x for x, _ in self.clients])
            y_test = torch.cat([y for _, y in self.clients])
        self.model, self.generator, self.loss_fn = model, generator, loss_fn
        self.x_test, self.y_test = x_test, y_test
        self.flat = flatten_parameters(model)
        self.history = FederatedHistory()
        self.round_sizes = torch.zeros(0, dtype=torch.float64)

    def rounds(self) -> Iterator[int]:
        return iter(
            tqdm(
                range(1, self.rounds_total + 1),
                desc="rounds",
                disable=not self.progress,
                leave=False,
            )
        )

    def client_updates(self, ids: torch.Tensor, seeds: torch.Tensor) -> torch.Tensor:
        """Updates of the clients ``ids`` (rows in the order of ``ids``), shape ``(m, P)``.

        Client ``ids[i]`` shuffles its batches (or draws its DP-SGD batches
        and noise) with a generator seeded by ``seeds[i]``.
        """
        gens = [torch.Generator().manual_seed(int(s)) for s in seeds]
        data = self._clients([int(k) for k in ids])
        self.round_sizes = torch.tensor([len(y) for _, y in data], dtype=torch.float64)
        local = self.local
        if self.vectorised and isinstance(local, LocalSGD):
            return batched_local_updates(
                self.model,
                [x for x, _ in data],
                [y for _, y in data],
                epochs=local.epochs,
                batch_size=local.batch_size,
                lr=local.lr,
                generators=gens,
                loss_fn=self.loss_fn,
            )
        rows = []
        for (x, y), gen in zip(data, gens, strict=True):
            if len(y) == 0:
                rows.append(torch.zeros_like(self.flat))
            elif isinstance(local, LocalSGD):
                rows.append(
                    local_update(
                        self.model,
                        x,
                        y,
                        epochs=local.epochs,
                        batch_size=local.batch_size,
                        lr=local.lr,
                        generator=gen,
                        loss_fn=self.loss_fn,
                    )
                )
            else:
                rows.append(
                    dp_sgd_local_update(
                        self.model,
                        x,
                        y,
                        epochs=local.epochs,
                        lr=local.lr,
                        sample_rate=local.sample_rate,
                        noise_multiplier=local.noise_multiplier,
                        max_grad_norm=local.max_grad_norm,
                        generator=gen,
                        loss_fn=self.loss_fn,
                    )
                )
        return torch.stack(rows) if rows else self.flat.new_zeros(0, self.flat.numel())

    def _clients(self, ids: list[int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The data of clients ``ids``: from the list, or made by the population and checked.

        A population with a ``clients(ids)`` method (``VirtualWriters`` has one) makes
        the round's clients in one batch; any other makes them one ``client(k)`` at a time.
        """
        if self.population is None:
            return [self.clients[k] for k in ids]
        batch = getattr(self.population, "clients", None)
        if callable(batch):
            made = list(batch(ids))
            if len(made) != len(ids):
                fail("population.clients(ids)", f"{len(ids)} (x, y) pairs", len(made), TypeError)
        else:
            made = [self.population.client(k) for k in ids]
        return [_checked_client(k, data) for k, data in zip(ids, made, strict=True)]

    def apply(self, average: torch.Tensor) -> None:
        self.flat = self.flat + self.server_lr * average.to(self.flat.dtype)
        assign_flat_parameters(self.model, self.flat)

    def record(self, round_number: int, num_clients: int) -> None:
        loss, accuracy = evaluate(self.model, self.x_test, self.y_test, self.loss_fn)
        self.history.round.append(round_number)
        self.history.loss.append(loss)
        self.history.accuracy.append(accuracy)
        self.history.clients.append(num_clients)


def _checked_client(k: int, data: object) -> tuple[torch.Tensor, torch.Tensor]:
    """Client k's ``(x, y)`` as a population made it, refused unless two tensors of one length."""
    if not isinstance(data, tuple) or len(data) != 2:
        fail(f"population.client({k})", "an (x, y) pair of tensors", type(data), TypeError)
    x, y = data
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor) or len(x) != len(y):
        fail(f"population.client({k})", "(x, y) tensors of one length", (x, y), TypeError)
    if len(y) > 0:
        check_data(x, y, name=f"client {k}'s x and y")
    return x, y


def _check_client_list(clients: object) -> int:
    """Check a list of ``(x, y)`` client pairs once, so no round trains on a NaN row."""
    if not isinstance(clients, Sequence):
        fail(
            "clients",
            "a list of (x, y) pairs or a ClientPopulation",
            type(clients).__name__,
            TypeError,
        )
    if len(clients) == 0:
        fail("clients", "a non-empty list of (x, y) pairs", clients)
    for k, (x, y) in enumerate(clients):
        if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor) or len(x) != len(y):
            fail("clients", "(x, y) pairs of tensors with the same length", (x, y), TypeError)
        if len(y) > 0:
            check_data(x, y, name=f"client {k}'s x and y")
    if sum(len(y) for _, y in clients) == 0:
        fail("clients", "holding at least one example in all", 0)
    return len(clients)
