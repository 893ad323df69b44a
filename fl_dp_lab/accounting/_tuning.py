"""The privacy cost of tuning: every run that touches private data spends budget (07, 09).

A sweep that trains k configurations on the private data and publishes the best one
has looked at the data k times. Reporting only the winner's epsilon leaks: the choice
itself depends on the data (Liu & Talwar 2019). Two honest accounts:

- naive composition: the k runs compose like k times the steps of one run
  (``epsilon`` with ``steps = k * steps``), which grows with k;
- private selection: run a *random* number K of candidates and publish the best.
  With K geometric of mean E[K], Papernot & Steinke (2022, Theorem 2, eta = 1) bound
  the selection's RDP by that of one run plus a term that grows like log E[K]: a
  constant-factor overhead, whatever the number of candidates.

``best_of_random_runs_epsilon`` computes the second; the notebooks compare it with the
first on the course's own sweeps.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from fl_dp_lab._validate import check_real, fail
from fl_dp_lab.accounting._accounting_core import check_orders, rdp_to_epsilon_checked

__all__ = ["best_of_random_runs_epsilon"]


def best_of_random_runs_epsilon(
    *,
    run_rdp: Sequence[float] | np.ndarray,
    orders: Sequence[float] | np.ndarray,
    mean_runs: float,
    delta: float,
) -> float:
    """Epsilon of publishing the best of K ~ Geometric(1 / mean_runs) private runs.

    Each candidate run is (a, run_rdp[a])-RDP at every order a in ``orders``
    (the candidates may differ; pass the largest RDP among them, order by order).
    K has P(K = k) = g (1 - g)^(k - 1), g = 1 / mean_runs, so E[K] = mean_runs.
    Papernot & Steinke (2022, "Hyperparameter tuning with Renyi differential
    privacy", Theorem 2 with eta = 1) show the selection is (a, r'(a))-RDP with

        r'(a) = run_rdp[a] + min over b of [2 (1 - 1/b) run_rdp[b] + 2 log(1/g) / b]
                + log(E[K]) / (a - 1),

    the minimum taken over the same grid of orders b. The result is converted to
    (epsilon, delta) with ``accounting.rdp_to_epsilon``'s conversion. It is never
    below one run's epsilon: the selection costs at least one run.

    Args:
        run_rdp: RDP of one candidate run at each order (finite, >= 0).
        orders: the RDP orders, each > 1, same length as ``run_rdp``.
        mean_runs: E[K], the expected number of candidates tried (>= 1).
        delta: target delta in (0, 1).

    Returns:
        The epsilon of the published best run, at ``delta``.

    Raises:
        ValueError: on a shape mismatch, a negative or non-finite RDP value,
            ``mean_runs`` < 1 or ``delta`` outside (0, 1).

    >>> orders = np.array([2.0, 4.0, 8.0, 16.0, 32.0])
    >>> one_run = orders / (2 * 4.0**2)  # the Gaussian mechanism at sigma = 4
    >>> eps = best_of_random_runs_epsilon(run_rdp=one_run, orders=orders, mean_runs=10, delta=1e-5)
    >>> round(eps, 2)
    2.18
    """
    orders = check_orders(orders)
    run_rdp = np.asarray(run_rdp, dtype=np.float64)
    if run_rdp.shape != orders.shape:
        fail("run_rdp", f"an array of the same shape as orders {orders.shape}", run_rdp.shape)
    if not np.all(np.isfinite(run_rdp)) or np.any(run_rdp < 0):
        fail("run_rdp", "finite numbers >= 0", run_rdp)
    mean_runs = check_real("mean_runs", mean_runs, low=1.0)
    delta = check_real("delta", delta, low=0.0, high=1.0, low_open=True, high_open=True)
    log_inv_gamma = math.log(mean_runs)  # g = 1 / E[K]
    extra = float(np.min(2 * (1 - 1 / orders) * run_rdp + 2 * log_inv_gamma / orders))
    total = run_rdp + extra + math.log(mean_runs) / (orders - 1)
    return rdp_to_epsilon_checked(total, orders, delta)[0]
