"""Dashboards of notebooks 08-09, over runs the notebook computed beforehand.

Training is too slow to redo on every slider move, so each dashboard takes
a dictionary of finished runs (a cached sweep) and only selects and draws.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import ipywidgets as widgets
import numpy as np

from fl_dp_lab._validate import check_real, fail
from fl_dp_lab.federated import FederatedHistory
from fl_dp_lab.plots.federated import (
    dirichlet_figure,
    dp_fedavg_figure,
    update_dirichlet_figure,
    update_dp_fedavg_figure,
)
from fl_dp_lab.widgets._output import dashboard_box, figure_view, freeze_layout, show_figure

__all__ = ["dirichlet_dashboard", "dp_fedavg_dashboard", "dp_fedavg_readout"]


def dirichlet_dashboard(
    labels: np.ndarray,
    partitions: Mapping[float, Sequence[np.ndarray]],
    histories: Mapping[float, FederatedHistory],
    *,
    alpha: float | None = None,
    num_classes: int = 10,
) -> widgets.VBox:
    """An alpha slider over cached Dirichlet partitions and their FedAvg runs.

    Args:
        labels: the label of every training example.
        partitions: alpha -> ``dirichlet_partition(labels, K, alpha, seed)``.
        histories: alpha -> ``run_fedavg`` history on that partition (same keys).
        alpha: the slider's start value (default: the smallest).
        num_classes: number of labels.

    Returns:
        ``VBox([slider, readout, figure output])``.
    """
    alphas = sorted(partitions)
    if not alphas or sorted(histories) != alphas:
        fail(
            "partitions and histories",
            "non-empty with the same alphas",
            (sorted(partitions), sorted(histories)),
        )
    alpha = alphas[0] if alpha is None else alpha
    if alpha not in partitions:
        fail("alpha", f"one of {alphas}", alpha)
    slider = widgets.SelectionSlider(
        options=alphas, value=alpha, description="α", continuous_update=False
    )
    readout = widgets.HTML()
    readout.add_class("fl-dp-lab-readout")
    output = figure_view()
    largest = max(len(client) for partition in partitions.values() for client in partition)
    fig, artists = dirichlet_figure(
        labels, partitions[alpha], histories, alpha, num_classes=num_classes,
        max_examples=largest,
    )  # fmt: skip
    freeze_layout(fig)  # shown only through the figure view

    def show(value: float) -> None:
        final = update_dirichlet_figure(artists, partitions[value], value)
        classes = np.mean([len(np.unique(np.asarray(labels)[p])) for p in partitions[value]])
        readout.value = (
            f"α = {value:g}: a client holds {classes:.1f} of {num_classes} digits "
            f"on average; final test accuracy {100 * final:.1f} %"
        )
        show_figure(output, fig)

    slider.observe(lambda change: show(change["new"]), names="value")
    show(alpha)
    return dashboard_box([slider, readout, output])


def dp_fedavg_readout(
    noise_multiplier: float,
    clip_norm: float,
    clients: int,
    history: FederatedHistory,
    delta: float,
) -> str:
    """The sentence under the DP-FedAvg dashboard.

    >>> h = FederatedHistory(round=[1], accuracy=[0.25], epsilon=[math.inf])
    >>> dp_fedavg_readout(0.0, 1.0, 100, h, 1e-5)
    'σ = 0, C = 1, 100 clients a round: no privacy (ε = ∞); accuracy 25.0 %'
    >>> dp_fedavg_readout(0.0, 1.0, 1, h, 1e-5).split(":")[0]
    'σ = 0, C = 1, 1 client a round'
    """
    if not history.epsilon or not history.accuracy:
        fail("history", "a run with at least one round", history)
    noun = "client" if clients == 1 else "clients"
    prefix = f"σ = {noise_multiplier:g}, C = {clip_norm:g}, {clients} {noun} a round: "
    eps = check_real("history.epsilon[-1]", history.epsilon[-1], low=0.0, allow_inf=True)
    accuracy = f"accuracy {100 * history.accuracy[-1]:.1f} %"
    if not math.isfinite(eps):
        return prefix + f"no privacy (ε = ∞); {accuracy}"
    return (
        prefix
        + f"({eps:.2f}, {delta:g})-DP for every user after {history.round[-1]} rounds; {accuracy}"
    )


def dp_fedavg_dashboard(
    sweep: Mapping[tuple[float, float, int], FederatedHistory],
    *,
    delta: float,
    max_epsilon: float = 20.0,
) -> widgets.VBox:
    """sigma, C and clients-per-round sliders over a cached DP-FedAvg sweep.

    Args:
        sweep: (noise_multiplier, clip_norm, expected clients a round) -> history
            of ``run_dp_fedavg``; every combination of the three values present.
        delta: the delta the epsilons were computed at (for the readout).
        max_epsilon: top of the epsilon axis.

    Returns:
        ``VBox([sigma slider, C slider, clients slider, readout, figure output])``.
    """
    if not sweep:
        fail("sweep", "a non-empty mapping (sigma, C, clients) -> history", sweep)
    axes = [sorted({key[i] for key in sweep}) for i in range(3)]
    missing = [
        (s, c, m) for s in axes[0] for c in axes[1] for m in axes[2] if (s, c, m) not in sweep
    ]
    if missing:
        fail("sweep", "every combination of its sigma, C and clients values", missing[:3])
    start = (float(axes[0][len(axes[0]) // 2]), float(axes[1][0]), int(axes[2][-1]))
    sliders = [
        widgets.SelectionSlider(
            options=values, value=value, description=name, continuous_update=False
        )
        for values, value, name in zip(axes, start, ("σ", "C", "clients"), strict=True)
    ]
    readout = widgets.HTML()
    readout.add_class("fl-dp-lab-readout")
    output = figure_view()
    fig, artists = dp_fedavg_figure(sweep[start], max_epsilon=max_epsilon)
    freeze_layout(fig)  # shown only through the figure view

    def show(_: object = None) -> None:
        sigma, clip, clients = (s.value for s in sliders)
        history = sweep[(float(sigma), float(clip), int(clients))]
        update_dp_fedavg_figure(artists, history)
        readout.value = dp_fedavg_readout(sigma, clip, clients, history, delta)
        show_figure(output, fig)

    for slider in sliders:
        slider.observe(show, names="value")
    show()
    return dashboard_box([*sliders, readout, output])
