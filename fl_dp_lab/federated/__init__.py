"""Federated averaging (FedAvg) and user-level DP-FedAvg, built from small pieces.

A client update is a difference of model weights, ``theta_local - theta_global``,
flattened into one vector (``fl_dp_lab.federated.client_updates``). FedAvg averages
those vectors weighted by client size (McMahan et al., 2017); DP-FedAvg clips
each to L2 norm C, adds Gaussian noise N(0, (sigma*C)^2) to their sum and
divides by the *expected* number of clients (McMahan et al., 2018), which
makes the released average (epsilon, delta)-DP with respect to adding or
removing one whole client.

This package's façade re-exports every public name, so notebooks and the
Flower app import everything from ``fl_dp_lab.federated``. Inside, one
module per idea:

- ``config``: the run settings as frozen objects checked when built
  (``LocalSGD``, ``LocalDPSGD``, ``UserLevelDP``, ``AdaptiveClipping``);
- ``client_updates``: what a client computes (local SGD or DP-SGD, flat weights);
- ``aggregation``: clip, noisy aggregate, Poisson client sampling;
- ``adaptive_clipping``: quantile clipping (Andrew et al., 2021);
- ``server``: one DP-FedAvg server round, shared with the Flower app;
- ``runs``: the simulations ``run_fedavg`` and ``run_dp_fedavg``;
- ``secure_aggregation``: pairwise masks, a toy;
- ``_simulation``, ``_vectorised``: the round loop's state and the batched
  many-client local training (``batched_local_updates``).

The runs take the clients as a list of ``(x_k, y_k)`` tensors or as a
``fl_dp_lab.populations.ClientPopulation``, whose clients are made only when
sampled (populations of 10^6 users and more).

Non-finite updates are refused, never clipped or dropped: an update with a
NaN or inf entry has a NaN or inf norm, and min(1, C / norm) would either let
it through (the output is then NaN in that coordinate, so the client's
presence is certain) or zero it silently. ``clip_update`` and ``dp_aggregate``
raise a ``ValueError`` naming the row, ``run_dp_fedavg`` (``DPFedAvgServer``)
names the client id, before any noise is drawn, any weight moves or any
epsilon is reported.
Integer updates are refused too (their squared norms wrap around), and
bfloat16/float16 updates are clipped with float64 norms, to C / (1 + u) (u
the dtype's unit roundoff), so that the rounded result stays within C.
"""

from __future__ import annotations

from fl_dp_lab.federated._simulation import FederatedHistory
from fl_dp_lab.federated._vectorised import batched_local_updates
from fl_dp_lab.federated.adaptive_clipping import adaptive_clip_norm, update_noise_multiplier
from fl_dp_lab.federated.aggregation import (
    clip_update,
    dp_aggregate,
    poisson_client_sample,
    split_by_client,
    update_bias,
)
from fl_dp_lab.federated.client_updates import (
    assign_flat_parameters,
    dp_sgd_local_update,
    flatten_parameters,
    local_update,
)
from fl_dp_lab.federated.config import (
    Accountant,
    AdaptiveClipping,
    LocalDPSGD,
    LocalSGD,
    UserLevelDP,
)
from fl_dp_lab.federated.runs import run_dp_fedavg, run_fedavg
from fl_dp_lab.federated.secure_aggregation import (
    mask_update,
    pairwise_seeds,
    secure_sum,
    unmask_sum,
)
from fl_dp_lab.federated.server import DPFedAvgServer, ServerRound, client_seeds

__all__ = [
    "Accountant",
    "AdaptiveClipping",
    "DPFedAvgServer",
    "FederatedHistory",
    "LocalDPSGD",
    "LocalSGD",
    "ServerRound",
    "UserLevelDP",
    "adaptive_clip_norm",
    "assign_flat_parameters",
    "batched_local_updates",
    "client_seeds",
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
