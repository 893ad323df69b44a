"""Figures of notebook 09b: DP-FedAvg accuracy as the population grows.

``scale_figure`` returns ``(fig, artists)``; ``update_scale_figure`` moves
those artists in place, so the dashboard of ``fl_dp_lab.widgets.populations``
redraws without rebuilding the figure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from matplotlib.ticker import MaxNLocator

from fl_dp_lab.federated import FederatedHistory
from fl_dp_lab.plots import PALETTE, animate, new_figure

__all__ = ["scale_figure", "update_scale_figure"]

Runs = Mapping[tuple[float, int], FederatedHistory]


def scale_figure(
    runs: Runs, baseline: FederatedHistory, *, epsilon: float, num_clients: int
) -> tuple[Any, dict[str, Any]]:
    """Left: accuracy per round of one (epsilon, K) run and of the noise-free run.

    Right: final accuracy against K at that epsilon, with the noise-free line.
    ``runs`` maps (epsilon target, K) to a finished DP-FedAvg history.
    """
    fig, (left, right) = new_figure(1, 2, width=5.4, height=3.8)
    rounds = np.asarray(baseline.round)
    left.plot(
        rounds,
        100 * np.asarray(baseline.accuracy),
        color=PALETTE["black"],
        ls="--",
        label="no noise",
    )
    (curve,) = left.plot([], [], color=PALETTE["blue"], marker="o", ms=3, label="DP-FedAvg")
    left.set_xlabel("round")
    left.set_ylabel("test accuracy (%)")
    left.xaxis.set_major_locator(MaxNLocator(integer=True))
    left.set_ylim(0, 100)
    left.legend(loc="lower right")
    sizes = sorted({k for _, k in runs})
    right.axhline(100 * baseline.accuracy[-1], color=PALETTE["black"], ls="--", label="no noise")
    (by_k,) = right.plot([], [], color=PALETTE["vermillion"], marker="o", label="DP-FedAvg")
    (chosen,) = right.plot([], [], color=PALETTE["vermillion"], marker="o", ms=12, mfc="none")
    right.set_xscale("log")
    right.set_xlim(sizes[0] / 2, sizes[-1] * 2)
    right.set_ylim(0, 100)
    right.set_xlabel("users K (log scale)")
    right.set_ylabel(f"accuracy after {rounds[-1]} rounds (%)")
    right.legend(loc="lower right")
    left.set_title(" ")
    right.set_title(" ")
    artists = {"curve": curve, "by_k": by_k, "chosen": chosen, "left": left, "right": right}
    animate(fig, [curve, by_k, chosen, left.title, right.title])
    update_scale_figure(artists, runs, epsilon=epsilon, num_clients=num_clients)
    return fig, artists


def update_scale_figure(
    artists: dict[str, Any], runs: Runs, *, epsilon: float, num_clients: int
) -> None:
    """Show the run (``epsilon``, ``num_clients``) in a figure built by ``scale_figure``."""
    history = runs[(epsilon, num_clients)]
    artists["curve"].set_data(history.round, 100 * np.asarray(history.accuracy))
    sizes = sorted(k for e, k in runs if e == epsilon)
    artists["by_k"].set_data(sizes, [100 * runs[(epsilon, k)].accuracy[-1] for k in sizes])
    artists["chosen"].set_data([num_clients], [100 * history.accuracy[-1]])
    artists["left"].title.set_text(f"K = {num_clients:,}, ε = {history.epsilon[-1]:.2f}")
    artists["right"].title.set_text(f"target ε = {epsilon:g}: accuracy against K")
