"""Figures of notebooks 08-09: label histograms, FedAvg curves, client drift, DP-FedAvg readouts.

Each builder returns ``(fig, artists)``; the ``update_*`` functions change
those artists in place, so the dashboards of ``fl_dp_lab.widgets.federated``
redraw without rebuilding the figure.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.collections import PolyCollection
from matplotlib.ticker import MaxNLocator

from fl_dp_lab.federated import FederatedHistory
from fl_dp_lab.plots import PALETTE, animate, new_figure, set_limits, sticky_limit

__all__ = [
    "client_drift_figure",
    "client_label_counts",
    "dirichlet_figure",
    "dp_fedavg_figure",
    "fedavg_curves",
    "label_counts_figure",
    "update_dirichlet_figure",
    "update_dp_fedavg_figure",
]

_CLASS_COLOURS = [
    PALETTE[c]
    for c in ("blue", "orange", "green", "vermillion", "sky", "purple", "yellow", "black")
] + ["#999999", "#7F3C8D"]


def client_label_counts(
    labels: np.ndarray, partition: Sequence[np.ndarray], num_classes: int
) -> np.ndarray:
    """Counts of each label on each client, shape ``(num_clients, num_classes)``.

    >>> client_label_counts(np.array([0, 1, 1, 2]), [np.array([0, 1]), np.array([2, 3])], 3)
    array([[1, 1, 0],
           [0, 1, 1]])
    """
    labels = np.asarray(labels)
    return np.stack([np.bincount(labels[p], minlength=num_classes) for p in partition])


def fedavg_curves(
    histories: Mapping[str, FederatedHistory],
    *,
    title: str,
    metric: str = "accuracy",
    reference: float | None = None,
    reference_label: str = "centralised",
    styles: Mapping[str, Mapping[str, Any]] | None = None,
) -> tuple[Any, Any]:
    """Test accuracy (or loss) against the round for several runs, one line each.

    ``styles`` maps a run's label to line settings (``color``, ``ls``, ``marker``, ...)
    that replace the default colour cycle for that run, e.g. one colour per data split
    and one line style per number of local epochs.
    """
    fig, ax = new_figure(width=7.0, height=4.0)
    styles = styles or {}
    for (label, history), colour in zip(histories.items(), _CLASS_COLOURS, strict=False):
        values = np.asarray(getattr(history, metric))
        ax.plot(
            history.round,
            100 * values if metric == "accuracy" else values,
            label=label,
            **{"color": colour, **styles.get(label, {})},
        )
    if reference is not None:
        ax.axhline(100 * reference, color=PALETTE["black"], ls="--", lw=1.2, label=reference_label)
    ax.set_xlabel("round")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("test accuracy (%)" if metric == "accuracy" else "test loss")
    ax.set_title(title)
    ax.legend(loc="best")
    return fig, ax


def client_drift_figure(
    local_epochs: Sequence[int],
    spread: Mapping[str, Sequence[float]],
    bias: Sequence[float],
    *,
    bias_label: str = "non-IID average vs IID average",
) -> tuple[Any, dict[str, Any]]:
    """Two measures of client drift against the number of local epochs E (log axis).

    Left: the spread of the client updates around their average,
    mean_k ||Delta_k - avg|| / ||avg||, one line per split in ``spread``. Right:
    the bias of the averaged update, ||avg - avg_IID|| / ||avg_IID||
    (``fl_dp_lab.federated.update_bias``), from ``bias``. Returns ``(fig, artists)``
    with the axes ``"spread_ax"``, ``"bias_ax"`` and the lines ``"spread"`` (by
    split name) and ``"bias"``.
    """
    epochs = list(local_epochs)
    fig, (left, right) = new_figure(1, 2, width=4.6, height=3.8)
    colours = [PALETTE["blue"], PALETTE["vermillion"], PALETTE["green"], PALETTE["purple"]]
    lines = {}
    for (name, values), colour in zip(spread.items(), colours, strict=False):
        (lines[name],) = left.plot(epochs, list(values), marker="o", color=colour, label=name)
    left.set_ylabel(r"spread  mean$_k\,\|\Delta_k - \bar{\Delta}\| \,/\, \|\bar{\Delta}\|$")
    left.set_title("Spread over the mean: falls with E")
    left.legend()
    (bias_line,) = right.plot(
        epochs, list(bias), marker="s", color=PALETTE["vermillion"], label=bias_label
    )
    right.set_ylabel(
        r"bias  $\|\bar{\Delta} - \bar{\Delta}_{\mathrm{IID}}\| \,/\, "
        r"\|\bar{\Delta}_{\mathrm{IID}}\|$"
    )
    right.set_title("Bias of the average: grows with E")
    right.set_ylim(0, max(1.0, 1.1 * max(bias)))
    right.legend(loc="lower right")
    for ax in (left, right):
        ax.set_xscale("log")
        ax.set_xticks(epochs, [str(e) for e in epochs])
        ax.minorticks_off()
        ax.set_xlabel("local epochs E")
    artists = {"fig": fig, "spread_ax": left, "bias_ax": right, "spread": lines, "bias": bias_line}
    return fig, artists


def dirichlet_figure(
    labels: np.ndarray,
    partition: Sequence[np.ndarray],
    histories: Mapping[float, FederatedHistory],
    alpha: float,
    *,
    num_classes: int = 10,
    max_examples: int | None = None,
) -> tuple[Any, dict[str, Any]]:
    """Left: labels held by each client (stacked bars); right: accuracy curve for each alpha.

    The curve of the selected ``alpha`` is drawn bold, the others faint. ``max_examples``
    (the most any client holds in any partition to be shown) fixes the bar axis, so a
    change of partition redraws only the bars; without it the axis follows the bars.
    """
    fig, (left, right) = new_figure(1, 2, width=6.0, height=4.2)
    num_clients = len(partition)
    # one collection of rectangles per digit (not one patch per bar): ten artists to redraw
    bars = []
    for c in range(num_classes):
        bars.append(
            left.add_collection(
                PolyCollection(
                    [], facecolors=_CLASS_COLOURS[c % len(_CLASS_COLOURS)], label=str(c)
                )  # fmt: skip
            )
        )
    left.set_ylim(num_clients - 0.5, -0.5)  # client 0 on top
    left.set_yticks(np.arange(num_clients))
    left.set_yticklabels([str(k) for k in range(num_clients)])
    left.set_xlabel("examples on the client")
    left.set_ylabel("client")
    left.legend(title="digit", ncols=2, fontsize=9, title_fontsize=10, loc="lower right")
    lines = {}
    others = ", ".join(f"{a:g}" for a in histories)
    for i, (a, history) in enumerate(histories.items()):
        (lines[a],) = right.plot(
            history.round,
            100 * np.asarray(history.accuracy),
            color=PALETTE["sky"],
            lw=1.2,
            alpha=0.6,
            label=f"every run: α = {others}" if i == 0 else None,
        )
    (bold,) = right.plot([], [], color=PALETTE["blue"], lw=3.0, label="the α chosen")
    right.legend(loc="lower right", fontsize=9)
    right.set_xlabel("round")
    right.xaxis.set_major_locator(MaxNLocator(integer=True))
    right.set_ylabel("test accuracy (%)")
    right.set_ylim(0, 100)
    artists = {
        "fig": fig,
        "left": left,
        "right": right,
        "bars": bars,
        "bold": bold,
        "lines": lines,
        "labels": np.asarray(labels),
        "num_classes": num_classes,
        "histories": histories,
        "max_examples": max_examples,
    }
    left.set_title(" ")
    right.set_title(" ")
    animate(fig, [*bars, bold, left.title, right.title])
    update_dirichlet_figure(artists, partition, alpha)
    return fig, artists


def update_dirichlet_figure(
    artists: dict[str, Any], partition: Sequence[np.ndarray], alpha: float
) -> float:
    """Redraw the label bars for ``partition``, highlight ``alpha``; return its final accuracy."""
    counts = client_label_counts(artists["labels"], partition, artists["num_classes"])
    rows = np.arange(len(partition))[:, None]
    lefts = np.zeros(len(partition))
    for c, collection in enumerate(artists["bars"]):
        x0, x1 = lefts[:, None], (lefts + counts[:, c])[:, None]
        corners = np.stack(
            [
                np.hstack([x0, x0, x1, x1]),
                np.hstack([rows - 0.4, rows + 0.4, rows + 0.4, rows - 0.4]),
            ],
            axis=-1,
        )
        collection.set_verts(corners)  # fmt: skip
        lefts = lefts + counts[:, c]
    # room on the right for the digit legend, so it never covers a client's bar; the axis
    # moves only when a bar would reach the legend or all bars shrink well inside it
    need = 1.5 * max(1.0, float(lefts.max()), artists.get("max_examples") or 0.0)
    if artists.get("max_examples"):
        set_limits(artists["left"], (0, need))
    else:
        set_limits(
            artists["left"], (0, sticky_limit(artists["left"].get_xlim()[1], need, fill=0.75))
        )
    history = artists["histories"][alpha]
    artists["bold"].set_data(history.round, 100 * np.asarray(history.accuracy))
    final = history.accuracy[-1]
    artists["left"].title.set_text(f"α = {alpha:g}: labels per client")
    artists["right"].title.set_text(
        f"α = {alpha:g}: FedAvg reaches {100 * final:.0f} % after {history.round[-1]} rounds"
    )
    return final


def dp_fedavg_figure(
    history: FederatedHistory, *, max_epsilon: float = 20.0
) -> tuple[Any, dict[str, Any]]:
    """Left: user-level epsilon after each round; right: test accuracy after each round."""
    fig, (left, right) = new_figure(1, 2, width=5.2, height=3.8)
    (eps_line,) = left.plot([], [], color=PALETTE["vermillion"], marker="o", ms=4)
    left.set_xlabel("round")
    left.xaxis.set_major_locator(MaxNLocator(integer=True))
    left.set_ylabel("user-level ε (δ fixed)")
    left.set_ylim(0, max_epsilon)
    no_privacy = left.text(
        0.5,
        0.5,
        "σ = 0: no privacy (ε = ∞)",
        transform=left.transAxes,
        ha="center",
        va="center",
        fontsize=13,
        color=PALETTE["vermillion"],
    )
    (acc_line,) = right.plot([], [], color=PALETTE["blue"], marker="o", ms=4)
    right.set_xlabel("round")
    right.xaxis.set_major_locator(MaxNLocator(integer=True))
    right.set_ylabel("test accuracy (%)")
    right.set_ylim(0, 50)
    artists = {
        "fig": fig,
        "left": left,
        "right": right,
        "eps": eps_line,
        "acc": acc_line,
        "no_privacy": no_privacy,
    }
    left.set_title(" ")
    right.set_title(" ")
    animate(fig, [eps_line, acc_line, no_privacy, left.title, right.title])
    update_dp_fedavg_figure(artists, history)
    return fig, artists


def update_dp_fedavg_figure(artists: dict[str, Any], history: FederatedHistory) -> None:
    """Show ``history`` in a figure built by ``dp_fedavg_figure``."""
    finite = all(math.isfinite(e) for e in history.epsilon)
    # sigma = 0: no epsilon curve at all (x and y must stay the same length)
    artists["eps"].set_data(history.round if finite else [], history.epsilon if finite else [])
    artists["no_privacy"].set_visible(not finite)
    set_limits(artists["left"], (0, history.round[-1] + 1))
    artists["acc"].set_data(history.round, 100 * np.asarray(history.accuracy))
    set_limits(artists["right"], (0, history.round[-1] + 1))
    eps_text = f"ε = {history.epsilon[-1]:.2f}" if finite else "ε = ∞"
    artists["left"].title.set_text(f"privacy spent: {eps_text}")
    artists["right"].title.set_text(
        f"accuracy after {history.round[-1]} rounds: {100 * history.accuracy[-1]:.1f} %"
    )


def label_counts_figure(
    labels: np.ndarray,
    partitions: Mapping[str, Sequence[np.ndarray]],
    num_classes: int,
    *,
    title: str,
    label_name: str = "digit",
) -> tuple[Any, Any]:
    """Heat maps of how many examples of each label every client holds, one panel per split.

    Args:
        labels: the label of every training example, shape ``(N,)``.
        partitions: a split's name to its partition (one index array per client), as
            ``fl_dp_lab.data`` builds them; every split gets one panel, in this order.
        num_classes: the number of labels, one column per label.
        title: the figure's title.
        label_name: what a label is, for the x axes.

    Returns:
        ``(fig, axes)``: one row per client and one column per label in each panel, all
        panels on one colour scale (darker = more examples) with a shared colour bar.
    """
    if not partitions:
        raise ValueError("partitions must name at least one split, got an empty mapping")
    if num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes}")
    counts = {
        name: client_label_counts(labels, part, num_classes) for name, part in partitions.items()
    }
    most = max(int(c.max()) for c in counts.values())
    fig, axes = new_figure(1, len(counts), width=4.2, height=3.6, sharey=True, squeeze=False)
    axes = axes[0]
    for ax, (name, count) in zip(axes, counts.items(), strict=True):
        image = ax.imshow(count, cmap="Blues", aspect="auto", vmin=0, vmax=most)
        ax.set_title(name)
        ax.set_xlabel(label_name)
        ax.set_xticks(range(num_classes))
    axes[0].set_ylabel("client")
    fig.colorbar(image, ax=list(axes), label="examples", shrink=0.9)
    fig.suptitle(title)
    return fig, axes
