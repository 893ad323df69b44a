"""fl_dp_lab: the helper package of the fl-dp-lab course.

One module per idea, named after it and mirroring the notebooks:

- ``numdiff``: finite differences, Richardson, complex step, gradient checks (01-02)
- ``data``: shipped digits, federated partitions, synthetic clients (all)
- ``models``, ``training``: the tiny models and the plain SGD loop (02 onwards)
- ``attacks``: gradient inversion, membership inference (03)
- ``mechanisms``: randomized response, Laplace, Gaussian (04)
- ``accounting``: RDP and PLD accountants, calibration (05)
- ``tuning``: the privacy cost of a hyperparameter sweep, private selection (07, 09)
- ``dpsgd``: per-sample gradients, clipping, noise, Poisson sampling (06)
- ``opacus_bridge``: the same step through Opacus, side by side with ours (07)
- ``federated``: FedAvg and DP-FedAvg (08-09), a package: run settings
  (``federated.config``), local training (``federated.client_updates``),
  adaptive clipping, one DP-FedAvg server round shared with Flower
  (``federated.server``), secure aggregation (a toy)
- ``populations``: clients made on demand from (seed, k), Poisson sampling
  of 10^8 clients without a length-K mask (09b)
- ``auditing``, ``canaries``: empirical epsilon lower bounds and the canary
  games that feed them (10)
- ``flower``: the Flower ClientApp (``flower.app``), the DP-FedAvg ServerApp
  (``flower.server``) and the simulation runner (``flower.simulation``) (11)
- ``plots``, ``widgets``: figures and thin ipywidgets dashboards
- ``exercises``: ``check_*`` feedback for the notebooks' exercises

Submodules are imported on use (``from fl_dp_lab import accounting``), so
``import fl_dp_lab`` stays fast and pulls in neither torch nor Flower.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = [
    "accounting",
    "attacks",
    "auditing",
    "canaries",
    "data",
    "dpsgd",
    "exercises",
    "federated",
    "flower",
    "mechanisms",
    "models",
    "numdiff",
    "opacus_bridge",
    "plots",
    "populations",
    "training",
    "tuning",
    "widgets",
]
