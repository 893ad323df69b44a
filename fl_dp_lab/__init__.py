"""fl_dp_lab: the helper package of the fl-dp-lab course.

One module or subpackage per idea, named after it and mirroring the notebooks.
A subpackage's ``__init__`` is its façade: its private submodules (``_rdp``,
``_pld``, ...) hold the parts, and the public names are imported from the
façade (``from fl_dp_lab.accounting import epsilon``). ``_validate`` (the one
error format) and ``_types`` (``LossFn``, the History family) are shared by all.

- ``numdiff``: finite differences, Richardson, complex step, gradient checks (01-02)
- ``data``: shipped digits, federated partitions, synthetic clients (all)
- ``models``, ``training``: the tiny models and the plain SGD loop (02 onwards)
- ``attacks``: gradient inversion, membership inference (03)
- ``mechanisms``: randomized response, Laplace, Gaussian (04)
- ``accounting``: RDP and PLD accountants, calibration (05), and the privacy
  cost of a hyperparameter sweep, private selection (07, 09)
- ``dpsgd``: per-sample gradients, clipping, noise, Poisson sampling (06)
- ``opacus_bridge``: the same step through Opacus, side by side with ours (07)
- ``federated``: FedAvg and DP-FedAvg (08-09), built from ``client_updates``
  (local training, clipping), ``adaptive_clipping`` (quantile clipping of
  Andrew et al.) and ``secure_aggregation`` (pairwise masks, a toy)
- ``distributed_dp``: integer noise shares for secure aggregation (exact
  discrete Gaussian, Skellam, rounding, modular wrap, the sum's accountant) (12)
- ``trust_models``: local vs central vs distributed DP noise, and the per-batch
  client-side "DP" snippet taken apart (12)
- ``auditing``: empirical epsilon lower bounds, and in ``auditing.canaries``
  the canary games that feed them (10)
- ``flower_app``, ``flower_server``, ``flower_simulation``: the Flower
  ClientApp/ServerApp, its DP-FedAvg strategy and the simulation runner (11)
- ``plots``, ``widgets``: figures and thin ipywidgets dashboards
- ``exercises``: ``check_*`` feedback for the notebooks' exercises

Submodules are imported on use (``from fl_dp_lab import accounting``), so
``import fl_dp_lab`` stays fast and pulls in neither torch nor Flower.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = [
    "accounting",
    "adaptive_clipping",
    "attacks",
    "auditing",
    "client_updates",
    "data",
    "distributed_dp",
    "dpsgd",
    "exercises",
    "federated",
    "flower_app",
    "flower_server",
    "flower_simulation",
    "mechanisms",
    "models",
    "numdiff",
    "opacus_bridge",
    "plots",
    "secure_aggregation",
    "training",
    "trust_models",
    "widgets",
]
