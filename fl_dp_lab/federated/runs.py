"""The two simulations of notebooks 08 and 09: ``run_fedavg`` and ``run_dp_fedavg``.

Both train every sampled client in this process (vectorised with
``torch.func`` or one by one) and record a ``FederatedHistory``. The
DP-FedAvg server round itself is ``fl_dp_lab.federated.server``'s, the one
the Flower app runs too.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from fl_dp_lab._types import LossFn
from fl_dp_lab._validate import check_int, fail
from fl_dp_lab.federated._simulation import FederatedHistory, _Run
from fl_dp_lab.federated.config import LocalDPSGD, LocalSGD, UserLevelDP
from fl_dp_lab.federated.server import DPFedAvgServer, client_seeds
from fl_dp_lab.populations import ClientPopulation, distinct_client_ids

__all__ = ["run_dp_fedavg", "run_fedavg"]


def run_fedavg(
    model: nn.Module,
    clients: Sequence[tuple[torch.Tensor, torch.Tensor]] | ClientPopulation,
    *,
    rounds: int,
    clients_per_round: int,
    local: LocalSGD,
    generator: torch.Generator,
    server_lr: float = 1.0,
    x_test: torch.Tensor | None = None,
    y_test: torch.Tensor | None = None,
    loss_fn: LossFn = nn.functional.cross_entropy,
    vectorised: bool = True,
    progress: bool = True,
) -> FederatedHistory:
    """Federated averaging (McMahan et al., 2017, Algorithm 1), training ``model`` in place.

    Each round: pick m = ``clients_per_round`` clients uniformly without
    replacement (``randperm`` for a list, distinct uniform ids for a
    population); each runs ``local_update`` (``local``: E local epochs of
    SGD with batch size B and learning rate lr) from the global weights
    theta; the server moves theta <- theta + server_lr * sum_k n_k Delta_k /
    sum_k n_k, the client-size-weighted average of the updates (server_lr =
    1 is the paper's FedAvg). Every random choice comes from ``generator``
    (client ids, then one seed per sampled client for its batch shuffling),
    so the vectorised and the per-client loop simulations give the same history.

    Args:
        model: the global model, trained in place.
        clients: one ``(x_k, y_k)`` pair per client (see ``split_by_client``), or a
            ``ClientPopulation`` (``fl_dp_lab.populations``): only the sampled
            clients are made, each round (then ``x_test``, ``y_test`` are needed).
        rounds: communication rounds, >= 1.
        clients_per_round: m in [1, len(clients)].
        local: the clients' local SGD (epochs, batch_size, lr).
        generator: all randomness of the run.
        server_lr: step size of the server on the averaged update, > 0.
        x_test, y_test: evaluation data (default: all clients' data pooled).
        loss_fn: mean loss over a batch.
        vectorised: train the sampled clients together (``torch.func``) or one by one.
        progress: show a ``tqdm.auto`` bar over rounds.

    Returns:
        A ``FederatedHistory`` (round, loss, accuracy, clients).
    """
    if not isinstance(local, LocalSGD):
        fail("local", "a LocalSGD (FedAvg trains clients with plain SGD)", local, TypeError)
    run = _Run(
        model,
        clients,
        rounds=rounds,
        local=local,
        server_lr=server_lr,
        generator=generator,
        x_test=x_test,
        y_test=y_test,
        loss_fn=loss_fn,
        vectorised=vectorised,
        progress=progress,
    )
    m = check_int("clients_per_round", clients_per_round, minimum=1, maximum=run.num_clients)
    for r in run.rounds():
        if run.population is None:
            ids = torch.randperm(run.num_clients, generator=generator)[:m].sort().values
        else:
            ids = distinct_client_ids(run.num_clients, m, generator)
        updates = run.client_updates(ids, client_seeds(len(ids), generator))
        sizes = run.round_sizes  # n_k of the clients just trained
        weights = sizes / sizes.sum().clamp(min=1.0)
        run.apply(weights.to(updates.dtype) @ updates)
        run.record(r, len(ids))
    return run.history


def run_dp_fedavg(
    model: nn.Module,
    clients: Sequence[tuple[torch.Tensor, torch.Tensor]] | ClientPopulation,
    *,
    rounds: int,
    privacy: UserLevelDP,
    local: LocalSGD | LocalDPSGD,
    generator: torch.Generator,
    server_lr: float = 1.0,
    x_test: torch.Tensor | None = None,
    y_test: torch.Tensor | None = None,
    loss_fn: LossFn = nn.functional.cross_entropy,
    vectorised: bool = True,
    progress: bool = True,
) -> FederatedHistory:
    """User-level DP-FedAvg (McMahan et al., 2018, Algorithm 1), training ``model`` in place.

    Each round (``DPFedAvgServer.round``): every client joins independently
    with probability q (``poisson_client_sample``); each sampled client
    computes its update Delta_k; the server releases ``dp_aggregate``:
    (sum_k clip(Delta_k, C) + N(0, (sigma*C)^2 I)) / (q*K), and moves theta
    <- theta + server_lr * that. Neighbouring data sets differ in *all* the
    data of one client, so the guarantee covers a whole user. The epsilon
    recorded after round r is ``accounting.epsilon(noise_multiplier=sigma,
    sample_rate=q, steps=r, delta=delta)``: r compositions of the
    Poisson-subsampled Gaussian mechanism.

    With ``privacy.adaptive`` the clip norm follows a quantile of the
    update norms (``adaptive_clip_norm``, Andrew et al., 2021); the noisy
    count it uses costs privacy too, paid for by raising the update noise to
    ``update_noise_multiplier(noise_multiplier=sigma, clip_count_stddev=sigma_b)``
    so the accounted sigma stays right.

    With ``local=LocalDPSGD(...)`` each client also trains with record-level
    DP-SGD (``fl_dp_lab.dpsgd``: Poisson batches, per-example clipping,
    noise) for ``epochs / sample_rate`` steps; clients are then trained one
    by one.

    Args:
        model: the global model, trained in place.
        clients: one ``(x_k, y_k)`` pair per client (see ``split_by_client``), or a
            ``ClientPopulation``: only the sampled clients are made, each round,
            and the round is drawn by ``sample_client_ids`` (Binomial round size,
            then distinct ids: the same Poisson sampling, without K coin flips;
            the accountant is unchanged, q = ``privacy.sample_rate``).
        rounds: communication rounds T, >= 1.
        privacy: the user-level DP settings (q, C, sigma, delta, accountant,
            adaptive clipping).
        local: the clients' training, ``LocalSGD`` or ``LocalDPSGD``.
        generator: all randomness of the run.
        server_lr: server step size, > 0.
        x_test, y_test: evaluation data (default: all clients' data pooled).
        loss_fn: mean loss over a batch.
        vectorised: train the sampled clients together or one by one.
        progress: show a ``tqdm.auto`` bar over rounds.

    Returns:
        A ``FederatedHistory`` with epsilon and clip_norm filled in.
    """
    if not isinstance(privacy, UserLevelDP):
        fail("privacy", "a UserLevelDP", privacy, TypeError)
    run = _Run(
        model,
        clients,
        rounds=rounds,
        local=local,
        server_lr=server_lr,
        generator=generator,
        x_test=x_test,
        y_test=y_test,
        loss_fn=loss_fn,
        vectorised=vectorised,
        progress=progress,
    )
    server = DPFedAvgServer(
        privacy,
        num_clients=run.num_clients,
        generator=generator,
        sampling="per_client" if run.population is None else "round_size",
    )
    for r in run.rounds():
        step = server.round(run.client_updates)
        run.history.clip_norm.append(step.clip_norm)
        run.apply(step.average)
        run.record(r, len(step.ids))
        run.history.epsilon.append(step.epsilon)
    return run.history
