"""fl_dp_lab: the helper package of the fl-dp-lab course.

One module per idea, named after it and mirroring the notebooks:

- ``numdiff``: finite differences, Richardson, complex step, gradient checks (01-02)
- ``data``: shipped digits, federated partitions, synthetic clients (all)
- ``models``, ``training``: the tiny models and the plain SGD loop (02 onwards)
- ``attacks``: gradient inversion, membership inference (03)
- ``mechanisms``: randomized response, Laplace, Gaussian (04)
- ``accounting``: RDP and PLD accountants, calibration (05)
- ``dpsgd``: per-sample gradients, clipping, noise, Poisson sampling (06-07)
- ``federated``: FedAvg, DP-FedAvg, secure aggregation toy (08-09)
- ``auditing``: empirical epsilon lower bounds (10)
- ``flower_app``: the Flower ClientApp/ServerApp (11)
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
    "data",
    "dpsgd",
    "exercises",
    "federated",
    "flower_app",
    "mechanisms",
    "models",
    "numdiff",
    "plots",
    "training",
    "widgets",
]
