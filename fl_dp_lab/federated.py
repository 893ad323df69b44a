"""Federated averaging (FedAvg) and user-level DP-FedAvg, built from small pieces.

A client update is a difference of model weights, ``theta_local - theta_global``,
flattened into one vector (``fl_dp_lab.client_updates``). FedAvg averages
those vectors weighted by client size (McMahan et al., 2017); DP-FedAvg clips
each to L2 norm C, adds Gaussian noise N(0, (sigma*C)^2) to their sum and
divides by the *expected* number of clients (McMahan et al., 2018), which
makes the released average (epsilon, delta)-DP with respect to adding or
removing one whole client.

This module holds the server side (clip, noisy aggregate, Poisson client
sampling) and the two simulations ``run_fedavg`` and ``run_dp_fedavg``, and
re-exports the client side, adaptive clipping (``fl_dp_lab.adaptive_clipping``),
the batched many-client local training (``fl_dp_lab._vectorised``) and the
secure-aggregation toy (``fl_dp_lab.secure_aggregation``), so notebooks and
the Flower app import everything from here.

Non-finite updates are refused, never clipped or dropped: an update with a
NaN or inf entry has a NaN or inf norm, and min(1, C / norm) would either let
it through (the output is then NaN in that coordinate, so the client's
presence is certain) or zero it silently. ``clip_update`` and ``dp_aggregate``
raise a ``ValueError`` naming the row, ``run_dp_fedavg`` names the client id,
before any noise is drawn, any weight moves or any epsilon is reported.
Integer updates are refused too (their squared norms wrap around), and
bfloat16/float16 updates are clipped with float64 norms, to C / (1 + u) (u
the dtype's unit roundoff), so that the rounded result stays within C.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from fl_dp_lab._simulation import FederatedHistory, _Run
from fl_dp_lab._validate import (
    check_bool,
    check_choice,
    check_finite_norms,
    check_float_tensor,
    check_int,
    check_real,
    fail,
)
from fl_dp_lab._vectorised import batched_local_updates
from fl_dp_lab.adaptive_clipping import adaptive_clip_norm, update_noise_multiplier
from fl_dp_lab.client_updates import (
    assign_flat_parameters,
    dp_sgd_local_update,
    flatten_parameters,
    local_update,
)
from fl_dp_lab.dpsgd import MAX_EXAMPLES, clip_limit, norm_dtype, poisson_batches
from fl_dp_lab.secure_aggregation import mask_update, pairwise_seeds, secure_sum, unmask_sum

__all__ = [
    "FederatedHistory",
    "adaptive_clip_norm",
    "assign_flat_parameters",
    "batched_local_updates",
    "clip_update",
    "dp_aggregate",
    "dp_sgd_local_update",
    "flatten_parameters",
    "local_update",
    "mask_update",
    "pairwise_seeds",
    "poisson_client_sample",
    "run_dp_fedavg",
    "run_fedavg",
    "secure_sum",
    "split_by_client",
    "unmask_sum",
    "update_bias",
    "update_noise_multiplier",
]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def clip_update(update: torch.Tensor, *, clip_norm: float) -> torch.Tensor:
    """Scale ``update`` so its L2 norm is at most ``clip_norm``: Delta * min(1, C / ||Delta||).

    A zero update stays zero (no division by a zero norm). Works on one
    vector ``(P,)`` or row by row on a matrix ``(num_clients, P)``.

    Raises:
        TypeError: ``update`` is not a floating-point torch tensor.
        ValueError: an update has a NaN or inf entry (the row is named).

    >>> clip_update(torch.tensor([3.0, 4.0]), clip_norm=1.0).tolist()
    [0.6000000238418579, 0.800000011920929]
    """
    clip_norm = check_real("clip_norm", clip_norm, low=0.0, low_open=True)
    check_float_tensor("update", update)
    if update.dim() not in (1, 2):
        fail("update", "a vector (P,) or a matrix (num_clients, P)", tuple(update.shape))
    return _clip_rows(update, clip_norm, "update" if update.dim() == 1 else "update[{0}]")


def dp_aggregate(
    updates: torch.Tensor,
    *,
    clip_norm: float,
    noise_multiplier: float,
    expected_clients: float,
    generator: torch.Generator,
) -> torch.Tensor:
    """The user-level DP average: (sum_k clip(Delta_k) + N(0, (sigma*C)^2 I)) / (q*K).

    Each row of ``updates`` is one client's flattened update. After clipping,
    adding or removing one client changes the sum by at most C in L2 norm
    (its sensitivity), so Gaussian noise of standard deviation sigma*C per
    coordinate makes the sum a Gaussian mechanism with noise multiplier
    sigma. Dividing by the *expected* number of clients q*K rather than the
    number actually sampled keeps the denominator data-independent, so the
    division is post-processing (McMahan et al., 2018, "Learning
    differentially private recurrent language models", Algorithm 1 with
    the fixed-denominator estimator f~_f). Zero sampled clients is allowed:
    the result is then pure noise.

    Args:
        updates: shape ``(num_clients, P)``, or a list of ``(P,)`` vectors;
            ``num_clients`` may be 0 (a Poisson round with no clients) but P >= 1.
        clip_norm: C > 0.
        noise_multiplier: sigma >= 0 (0 gives the clipped average without noise).
        expected_clients: q*K > 0, the fixed denominator.
        generator: draws the noise.

    Returns:
        The noisy average update, shape ``(P,)``.

    Raises:
        TypeError: ``updates`` is not a floating-point tensor (or list of them).
        ValueError: a client's update has a NaN or inf entry (``updates[k]`` is
            named), or sigma*C overflows the updates' dtype.

    >>> updates = torch.tensor([[3.0, 4.0], [0.0, 0.5]])
    >>> dp_aggregate(updates, clip_norm=1.0, noise_multiplier=0.0, expected_clients=2,
    ...              generator=torch.Generator().manual_seed(0)).tolist()
    [0.30000001192092896, 0.6499999761581421]
    """
    clip_norm = check_real("clip_norm", clip_norm, low=0.0, low_open=True)
    noise_multiplier = check_real("noise_multiplier", noise_multiplier, low=0.0)
    expected_clients = check_real("expected_clients", expected_clients, low=0.0, low_open=True)
    if isinstance(updates, (list, tuple)):
        if len(updates) == 0:
            fail("updates", "non-empty (pass shape (0, P) for a round with no clients)", updates)
        updates = _stack_updates(updates)
    check_float_tensor("updates", updates)
    if updates.dim() != 2 or updates.shape[1] == 0:
        fail("updates", "a matrix of shape (num_clients, num_params >= 1)", tuple(updates.shape))
    if not isinstance(generator, torch.Generator):
        fail("generator", "a torch.Generator", generator, TypeError)
    limit = torch.finfo(updates.dtype).max
    if not noise_multiplier * clip_norm <= limit:
        fail(
            "noise_multiplier * clip_norm (the noise std)",
            f"at most {limit:.3g} (the largest {updates.dtype} number)",
            noise_multiplier * clip_norm,
        )
    # L2 sensitivity of the sum is C: every row was clipped to norm <= C.
    total = _clip_rows(updates, clip_norm, "updates[{0}]").sum(0)
    noise = torch.randn(total.shape, generator=generator, dtype=total.dtype)
    return (total + noise_multiplier * clip_norm * noise) / expected_clients


def poisson_client_sample(
    num_clients: int, *, sample_rate: float, generator: torch.Generator
) -> torch.Tensor:
    """Client ids of one round: each client joins independently with probability q.

    Poisson sampling is what the subsampled-Gaussian accountant assumes; the
    number of clients per round is Binomial(K, q), not fixed. The draw is
    ``fl_dp_lab.dpsgd.poisson_batches``'s: probability exactly q, however small.

    >>> poisson_client_sample(10, sample_rate=1.0, generator=torch.Generator()).tolist()
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
    """
    num_clients = check_int("num_clients", num_clients, minimum=1, maximum=MAX_EXAMPLES)
    sample_rate = check_real("sample_rate", sample_rate, low=0.0, high=1.0, low_open=True)
    if not isinstance(generator, torch.Generator):
        fail("generator", "a torch.Generator", generator, TypeError)
    return poisson_batches(num_clients, sample_rate=sample_rate, steps=1, generator=generator)[0]


def split_by_client(
    x: torch.Tensor | np.ndarray, y: torch.Tensor | np.ndarray, partition: Sequence[np.ndarray]
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Turn a partition (one index array per client) into a list of client data ``(x_k, y_k)``.

    >>> clients = split_by_client(np.zeros((5, 2)), np.arange(5), [np.array([0, 3]), np.array([1])])
    >>> [tuple(c[1].tolist()) for c in clients]
    [(0, 3), (1,)]
    """
    x = torch.as_tensor(x, dtype=torch.float32)
    labels = torch.as_tensor(y)
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        fail("y", "integer class labels", labels.dtype, TypeError)
    y = labels.long()
    if len(x) != len(y):
        fail("x and y", "the same length", (len(x), len(y)))
    clients = []
    for k, rows in enumerate(partition):
        index = torch.as_tensor(rows)
        if index.is_floating_point() or index.dtype == torch.bool:
            fail(f"partition[{k}]", "an array of integer row indices", index.dtype, TypeError)
        index = index.long()
        if index.numel() and (int(index.min()) < 0 or int(index.max()) >= len(y)):
            fail(f"partition[{k}]", f"row indices in [0, {len(y)})", index.tolist()[:5])
        clients.append((x[index], y[index]))
    return clients


def run_fedavg(
    model: nn.Module,
    clients: Sequence[tuple[torch.Tensor, torch.Tensor]],
    *,
    rounds: int,
    clients_per_round: int,
    local_epochs: int,
    batch_size: int,
    lr: float,
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
    replacement; each runs ``local_update`` (E local epochs of SGD with
    batch size B and learning rate lr) from the global weights theta; the
    server moves theta <- theta + server_lr * sum_k n_k Delta_k / sum_k n_k,
    the client-size-weighted average of the updates (server_lr = 1 is the
    paper's FedAvg). Every random choice comes from ``generator`` (client
    ids, then one seed per sampled client for its batch shuffling), so the
    vectorised and the per-client loop simulations give the same history.

    Args:
        model: the global model, trained in place.
        clients: one ``(x_k, y_k)`` pair per client (see ``split_by_client``).
        rounds: communication rounds, >= 1.
        clients_per_round: m in [1, len(clients)].
        local_epochs, batch_size, lr: E, B and the local learning rate.
        generator: all randomness of the run.
        server_lr: step size of the server on the averaged update, > 0.
        x_test, y_test: evaluation data (default: all clients' data pooled).
        loss_fn: mean loss over a batch.
        vectorised: train the sampled clients together (``torch.func``) or one by one.
        progress: show a ``tqdm.auto`` bar over rounds.

    Returns:
        A ``FederatedHistory`` (round, loss, accuracy, clients).
    """
    run = _Run(
        model,
        clients,
        rounds,
        local_epochs,
        batch_size,
        lr,
        server_lr,
        generator,
        x_test,
        y_test,
        loss_fn,
        vectorised,
        progress,
    )
    check_int("clients_per_round", clients_per_round, minimum=1, maximum=len(clients))
    sizes = torch.tensor([len(c[1]) for c in clients], dtype=torch.float64)
    for r in run.rounds():
        ids = torch.randperm(len(clients), generator=generator)[:clients_per_round].sort().values
        updates = run.client_updates(ids)
        weights = sizes[ids] / sizes[ids].sum().clamp(min=1.0)
        run.apply(weights.to(updates.dtype) @ updates)
        run.record(r, len(ids))
    return run.history


def run_dp_fedavg(
    model: nn.Module,
    clients: Sequence[tuple[torch.Tensor, torch.Tensor]],
    *,
    rounds: int,
    sample_rate: float,
    noise_multiplier: float,
    clip_norm: float,
    delta: float,
    local_epochs: int,
    batch_size: int,
    lr: float,
    generator: torch.Generator,
    server_lr: float = 1.0,
    adaptive_clipping: bool = False,
    target_quantile: float = 0.5,
    clip_lr: float = 0.2,
    clip_count_stddev: float | None = None,
    record_noise_multiplier: float | None = None,
    record_max_grad_norm: float = 1.0,
    record_sample_rate: float = 0.5,
    accountant: str = "pld",
    x_test: torch.Tensor | None = None,
    y_test: torch.Tensor | None = None,
    loss_fn: LossFn = nn.functional.cross_entropy,
    vectorised: bool = True,
    progress: bool = True,
) -> FederatedHistory:
    """User-level DP-FedAvg (McMahan et al., 2018, Algorithm 1), training ``model`` in place.

    Each round: every client joins independently with probability q
    (``poisson_client_sample``); each sampled client computes its update
    Delta_k; the server releases ``dp_aggregate``: (sum_k clip(Delta_k, C)
    + N(0, (sigma*C)^2 I)) / (q*K), and moves theta <- theta + server_lr *
    that. Neighbouring data sets differ in *all* the data of one client, so
    the guarantee covers a whole user. The epsilon recorded after round r
    is ``accounting.epsilon(noise_multiplier=sigma, sample_rate=q, steps=r,
    delta=delta)``: r compositions of the Poisson-subsampled Gaussian
    mechanism.

    With ``adaptive_clipping`` the clip norm follows the ``target_quantile``
    of the update norms (``adaptive_clip_norm``, Andrew et al., 2021); the
    noisy count it uses costs privacy too, paid for by raising the update
    noise to ``update_noise_multiplier(noise_multiplier=sigma,
    clip_count_stddev=sigma_b)`` so the accounted sigma stays right.

    With ``record_noise_multiplier`` set, each client also trains with
    record-level DP-SGD (``fl_dp_lab.dpsgd``: Poisson batches at
    ``record_sample_rate``, per-example clipping to ``record_max_grad_norm``,
    noise) for ``local_epochs / record_sample_rate`` steps; ``batch_size``
    is then unused and clients are trained one by one.

    Args:
        model: the global model, trained in place.
        clients: one ``(x_k, y_k)`` pair per client (see ``split_by_client``).
        rounds: communication rounds T, >= 1.
        sample_rate: q in (0, 1], the client sampling rate.
        noise_multiplier: sigma >= 0 (0: no privacy, epsilon is inf).
        clip_norm: C > 0 (the initial C with adaptive clipping).
        delta: target delta in (0, 1).
        local_epochs, batch_size, lr: the clients' local SGD.
        generator: all randomness of the run.
        server_lr: server step size, > 0.
        adaptive_clipping: follow a quantile of the update norms.
        target_quantile, clip_lr: gamma and eta of adaptive clipping.
        clip_count_stddev: sigma_b (default q*K/20, as Andrew et al. suggest).
        record_noise_multiplier, record_max_grad_norm, record_sample_rate:
            record-level DP-SGD inside each client (off when None).
        accountant: "pld" or "rdp", passed to ``accounting.epsilon``.
        x_test, y_test: evaluation data (default: all clients' data pooled).
        loss_fn: mean loss over a batch.
        vectorised: train the sampled clients together or one by one.
        progress: show a ``tqdm.auto`` bar over rounds.

    Returns:
        A ``FederatedHistory`` with epsilon and clip_norm filled in.
    """
    from fl_dp_lab import accounting

    sample_rate = check_real("sample_rate", sample_rate, low=0.0, high=1.0, low_open=True)
    noise_multiplier = check_real("noise_multiplier", noise_multiplier, low=0.0)
    clip_norm = check_real("clip_norm", clip_norm, low=0.0, low_open=True)
    delta = check_real("delta", delta, low=0.0, high=1.0, low_open=True, high_open=True)
    check_bool("adaptive_clipping", adaptive_clipping)
    check_choice("accountant", accountant, ("pld", "rdp"))
    record = None
    if record_noise_multiplier is not None:
        record = {
            "noise_multiplier": check_real(
                "record_noise_multiplier", record_noise_multiplier, low=0.0
            ),
            "max_grad_norm": check_real(
                "record_max_grad_norm", record_max_grad_norm, low=0.0, low_open=True
            ),
            "sample_rate": check_real(
                "record_sample_rate", record_sample_rate, low=0.0, high=1.0, low_open=True
            ),
        }
    run = _Run(
        model,
        clients,
        rounds,
        local_epochs,
        batch_size,
        lr,
        server_lr,
        generator,
        x_test,
        y_test,
        loss_fn,
        vectorised,
        progress,
    )
    expected_clients = sample_rate * len(clients)
    update_sigma = noise_multiplier
    if adaptive_clipping:
        if clip_count_stddev is None:
            clip_count_stddev = expected_clients / 20
            if noise_multiplier >= 2 * clip_count_stddev:
                fail(
                    "clip_count_stddev",
                    f"given: its default q*K/20 = {clip_count_stddev:g} is not above "
                    f"noise_multiplier / 2 = {noise_multiplier / 2:g} with {expected_clients:g} "
                    "expected clients a round (pass a larger clip_count_stddev, sample more "
                    "clients, or lower noise_multiplier)",
                    None,
                )
        update_sigma = update_noise_multiplier(
            noise_multiplier=noise_multiplier, clip_count_stddev=clip_count_stddev
        )
        target_quantile = check_real("target_quantile", target_quantile, low=0.0, high=1.0)
    for r in run.rounds():
        ids = poisson_client_sample(len(clients), sample_rate=sample_rate, generator=generator)
        updates = run.client_updates(ids, record)
        norms = torch.linalg.vector_norm(updates, dim=1)
        _check_finite_updates(norms, ids)
        average = dp_aggregate(
            updates,
            clip_norm=clip_norm,
            noise_multiplier=update_sigma,
            expected_clients=expected_clients,
            generator=generator,
        )
        run.history.clip_norm.append(clip_norm)
        if adaptive_clipping:
            clip_norm = adaptive_clip_norm(
                norms,
                clip_norm=clip_norm,
                target_quantile=target_quantile,
                clip_lr=clip_lr,
                clip_count_stddev=clip_count_stddev,
                expected_clients=expected_clients,
                generator=generator,
            )
        run.apply(average)
        run.record(r, len(ids))
        run.history.epsilon.append(
            accounting.epsilon(
                noise_multiplier=noise_multiplier,
                sample_rate=sample_rate,
                steps=r,
                delta=delta,
                accountant=accountant,
            )
        )
    return run.history


def update_bias(
    updates: torch.Tensor,
    sizes: torch.Tensor | Sequence[float],
    reference_updates: torch.Tensor,
    reference_sizes: torch.Tensor | Sequence[float],
) -> float:
    """How far one FedAvg step lands from a reference step: ||avg - avg_ref|| / ||avg_ref||.

    avg = sum_k n_k Delta_k / sum_k n_k is the size-weighted average FedAvg
    applies (McMahan et al., 2017, Algorithm 1), computed for ``updates``
    and for ``reference_updates`` (taken from the same global weights). With
    non-IID clients as ``updates`` and IID clients on the same data as the
    reference, this is the bias client drift puts into the server's step
    (Karimireddy et al., 2020, Sec. 3): 0 when the two averages agree, about
    1 when the non-IID average is as far from the IID one as the IID step is
    long. Unlike the spread mean_k ||Delta_k - avg|| / ||avg|| it does not
    shrink when every update grows together (on linearly separable client
    data the updates grow with every local epoch).

    Args:
        updates: shape ``(num_clients, P)``, one flattened update per row.
        sizes: n_k >= 0 for each row, not all zero.
        reference_updates: shape ``(num_reference_clients, P)``.
        reference_sizes: n_k >= 0 for each reference row, not all zero.

    Returns:
        The relative distance, a float >= 0.

    >>> bias = update_bias(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), [1, 3],
    ...                    torch.tensor([[1.0, 1.0]]), [5])
    >>> round(bias, 4)  # ||(0.25, 0.75) - (1, 1)|| / ||(1, 1)|| = sqrt(0.625 / 2)
    0.559
    """
    average = _weighted_average("updates", updates, "sizes", sizes)
    reference = _weighted_average(
        "reference_updates", reference_updates, "reference_sizes", reference_sizes
    )
    if average.shape != reference.shape:
        fail(
            "updates and reference_updates",
            "rows of the same length",
            (average.numel(), reference.numel()),
        )
    length = torch.linalg.vector_norm(reference)
    if float(length) == 0.0:
        fail("reference_updates", "an average with a non-zero norm", reference.tolist()[:5])
    return float(torch.linalg.vector_norm(average - reference) / length)


def _clip_rows(update: torch.Tensor, clip_norm: float, what: str) -> torch.Tensor:
    """Clip the last axis of a checked float tensor to norm C; refuse non-finite rows by name.

    ``what`` names a row, with ``{0}`` for its index (or none for a single vector).
    """
    dtype = update.dtype
    norms = torch.linalg.vector_norm(update, dim=-1, keepdim=True, dtype=norm_dtype(dtype))
    if not bool(torch.isfinite(norms).all()):  # finite entries above ~1e19 overflow float32
        norms = torch.linalg.vector_norm(update, dim=-1, keepdim=True, dtype=torch.float64)
    check_finite_norms(what, norms.flatten(), "NaN or inf cannot be clipped; refused, not dropped")
    limit = clip_limit(clip_norm, dtype)  # C, or slightly less for half types
    scale = torch.clamp(limit / torch.clamp(norms, min=1e-12), max=1.0)
    return (update * scale).to(dtype)


def _check_finite_updates(norms: torch.Tensor, ids: torch.Tensor) -> None:
    """Refuse a round whose client update is NaN or inf, naming the client's id."""
    bad = ~torch.isfinite(norms)
    if bool(bad.any()):
        row = int(bad.nonzero()[0, 0])
        fail(
            f"the update of client {int(ids[row])}",
            "finite (look for NaN or inf in that client's x or y, or lower lr: its local "
            "training diverged); the round is refused so that no epsilon is reported "
            "for a NaN model",
            f"norm {float(norms[row])}",
        )


def _stack_updates(updates: list[torch.Tensor] | tuple[torch.Tensor, ...]) -> torch.Tensor:
    shapes = {tuple(u.shape) if isinstance(u, torch.Tensor) else None for u in updates}
    if None in shapes:
        fail("updates", "a list of torch.Tensors", updates, TypeError)
    if len(shapes) != 1 or len(next(iter(shapes))) != 1:
        fail("updates", "vectors of one shape (P,)", sorted(shapes, key=str))
    return torch.stack(list(updates))


def _weighted_average(
    name: str, updates: torch.Tensor, sizes_name: str, sizes: torch.Tensor | Sequence[float]
) -> torch.Tensor:
    if not isinstance(updates, torch.Tensor):
        fail(name, "a torch.Tensor of shape (num_clients, num_params)", updates, TypeError)
    if updates.dim() != 2 or updates.shape[0] == 0 or updates.shape[1] == 0:
        fail(name, "a matrix of shape (num_clients >= 1, num_params >= 1)", tuple(updates.shape))
    weights = torch.as_tensor(sizes, dtype=torch.float64)
    if weights.shape != (updates.shape[0],):
        fail(sizes_name, f"one size per row of {name} ({updates.shape[0]})", tuple(weights.shape))
    if not bool(torch.isfinite(weights).all()) or bool((weights < 0).any()) or weights.sum() <= 0:
        fail(sizes_name, "finite sizes >= 0, not all zero", weights.tolist()[:5])
    return (weights / weights.sum()) @ updates.to(torch.float64)
