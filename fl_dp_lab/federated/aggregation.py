"""The server's arithmetic of (DP-)FedAvg: clip, noisy aggregate, client sampling, bias.

Pure functions of their arguments (randomness passed in as a generator);
``fl_dp_lab.federated.server`` composes them into one DP-FedAvg round and
``fl_dp_lab.federated`` re-exports them. Non-finite updates are refused,
never clipped or dropped (see ``fl_dp_lab.federated``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from fl_dp_lab._per_sample import clip_limit, norm_dtype
from fl_dp_lab._validate import (
    check_finite_norms,
    check_float_tensor,
    check_generator,
    check_int,
    check_real,
    fail,
)
from fl_dp_lab.dpsgd import MAX_EXAMPLES, poisson_batches

__all__ = [
    "clip_update",
    "dp_aggregate",
    "poisson_client_sample",
    "split_by_client",
    "update_bias",
]


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
    check_generator("generator", generator)
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
    check_generator("generator", generator)
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
