"""Figures of notebooks 08, 09 and 11: label histograms, FedAvg curves, drift, DP-FedAvg runs.

The dashboard builders return ``(fig, artists)``; the ``update_*`` functions
change those artists in place, so the dashboards of ``fl_dp_lab.widgets.federated``
redraw without rebuilding the figure. The other figures (``*_figure``) are drawn
once and returned.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.collections import PolyCollection
from matplotlib.ticker import MaxNLocator
from scipy.stats import binom

from fl_dp_lab.federated import FederatedHistory
from fl_dp_lab.plots import PALETTE, animate, new_figure, set_limits, sticky_limit

__all__ = [
    "adaptive_clipping_figure",
    "client_drift_figure",
    "client_label_counts",
    "clients_per_round_figure",
    "dirichlet_figure",
    "dp_fedavg_figure",
    "dp_fedavg_runs_figure",
    "fedavg_curves",
    "flower_agreement_figure",
    "flower_runs_figure",
    "label_counts_figure",
    "update_dirichlet_figure",
    "update_dp_fedavg_figure",
    "wall_time_figure",
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
                PolyCollection([], facecolors=_CLASS_COLOURS[c % len(_CLASS_COLOURS)], label=str(c))
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
        collection.set_verts(corners)
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


def adaptive_clipping_figure(
    fixed: FederatedHistory,
    adaptive: FederatedHistory,
    reference: FederatedHistory,
    *,
    fixed_clip: float,
    median_norm: float,
    chance: float,
    reference_label: str = "fixed C = 2",
) -> Any:
    """Adaptive clipping against a badly chosen fixed clip norm, at the same epsilon.

    Args:
        fixed: the run with the fixed (badly chosen) clip norm ``fixed_clip``.
        adaptive: the run whose clip norm follows the quantile estimate; its
            ``clip_norm`` holds C after each round.
        reference: a run with a well chosen fixed clip norm, drawn dashed.
        fixed_clip: the fixed clip norm of ``fixed``.
        median_norm: median L2 norm of fresh client updates at the end, drawn dotted.
        chance: accuracy of guessing, in [0, 1], drawn dotted on the right.
        reference_label: the legend entry of ``reference``.

    Returns:
        The figure: left, C against the round (log scale); right, test accuracy (%)
        against the round for the three runs.
    """
    fig, (left, right) = new_figure(1, 2, width=5.2, height=3.8)
    left.plot(adaptive.round, adaptive.clip_norm, color=PALETTE["green"], label="adaptive")
    left.axhline(fixed_clip, color=PALETTE["orange"], label="fixed")
    left.axhline(median_norm, color=PALETTE["black"], ls=":", lw=1.2, label="median norm (end)")
    left.set_yscale("log")
    ticks = [4, 6, 10, 20, 30]
    left.set_yticks(ticks, [str(t) for t in ticks])
    left.minorticks_off()
    left.set_xlabel("round")
    left.set_ylabel("clip norm C")
    left.set_title("C falls to the median norm")
    left.legend()
    runs = (
        (fixed, {"color": PALETTE["orange"], "label": f"fixed C = {fixed_clip:g}"}),
        (adaptive, {"color": PALETTE["green"], "label": "adaptive"}),
        (reference, {"color": PALETTE["black"], "ls": "--", "lw": 1.2, "label": reference_label}),
    )
    for history, style in runs:
        right.plot(history.round, 100 * np.asarray(history.accuracy), **style)
    right.axhline(100 * chance, color=PALETTE["black"], ls=":", lw=1.2, label="chance")
    right.set_xlabel("round")
    right.set_ylabel("test accuracy (%)")
    right.set_title("Same ε: adaptive C limits a bad guess's damage")
    right.set_ylim(top=right.get_ylim()[1] + 2.5)  # room for the legend
    right.legend(loc="upper left")
    return fig


def flower_agreement_figure(in_process: FederatedHistory, flower: FederatedHistory) -> Any:
    """Test accuracy per round of an in-process run and of the same run through Flower.

    Args:
        in_process: the history of ``run_dp_fedavg``, drawn as a wide pale line.
        flower: the history of the Flower simulation, drawn dashed with markers on top,
            so two runs that agree lie on top of each other.

    Returns:
        The figure, accuracy in [0, 1] against the rounds of ``flower``.
    """
    rounds = flower.round
    fig, ax = new_figure(width=6.4, height=3.8)
    ax.plot(
        in_process.round,
        in_process.accuracy,
        color=PALETTE["blue"],
        lw=6,
        alpha=0.4,
        label="in-process run_dp_fedavg",
    )
    ax.plot(rounds, flower.accuracy, "o--", color=PALETTE["vermillion"], label="Flower simulation")
    ax.set(
        xlabel="round",
        ylabel="test accuracy",
        xticks=rounds,
        ylim=(0, 1),
        title="Flower simulation and the in-process run agree round by round",
    )
    ax.legend(loc="lower right")
    return fig


def flower_runs_figure(
    ours: FederatedHistory, flower_a: FederatedHistory, flower_b: FederatedHistory
) -> Any:
    """The course's ServerApp against two runs of Flower's DP wrapper with the same seed.

    Args:
        ours: the course ServerApp's history (Poisson sampling).
        flower_a, flower_b: two runs of Flower's server-side DP wrapper (fixed m a round).

    Returns:
        The figure: left, test accuracy per round of the three runs; right, clients per
        round of ``ours`` and ``flower_a`` side by side.
    """
    rounds = np.asarray(ours.round)
    fig, (ax_acc, ax_clients) = new_figure(1, 2, width=5.2, height=3.8)
    for history, style, colour, label in (
        (ours, "o-", PALETTE["blue"], "course ServerApp"),
        (flower_a, "s--", PALETTE["orange"], "Flower wrapper, run A"),
        (flower_b, "^:", PALETTE["green"], "Flower wrapper, run B"),
    ):
        ax_acc.plot(history.round, history.accuracy, style, color=colour, label=label)
    ax_acc.set(xlabel="round", ylabel="test accuracy", ylim=(0, 1), xticks=rounds)
    ax_acc.set_title("Same seed, two Flower runs differ")
    ax_acc.legend(loc="lower right", fontsize=11)
    for history, shift, colour, label in (
        (ours, -0.2, PALETTE["blue"], "Poisson (ours)"),
        (flower_a, 0.2, PALETTE["orange"], "fixed m (Flower)"),
    ):
        x = np.asarray(history.round) + shift
        ax_clients.bar(x, history.clients, 0.4, color=colour, label=label)
    ax_clients.set(xlabel="round", ylabel="clients in the round", xticks=rounds)
    ax_clients.set_title("Poisson sampling varies, Flower's is fixed")
    ax_clients.set_ylim(0, 1.4 * max(ours.clients + flower_a.clients))
    ax_clients.legend(loc="upper center", ncol=2, fontsize=11)
    return fig


def clients_per_round_figure(
    counts: Sequence[int], *, num_clients: int, sample_rate: float, bins: Sequence[int]
) -> Any:
    """Histogram of the clients in a Poisson-sampled round against the Binomial(K, q) pmf.

    Args:
        counts: number of clients sampled in each simulated round.
        num_clients: the population K.
        sample_rate: the sampling rate q of every client.
        bins: histogram bin edges; the pmf is drawn at every integer between the first
            and the last edge.

    Returns:
        The figure: the share of rounds with each count, and the Binomial(K, q) pmf.
    """
    fig, ax = new_figure(width=6.4, height=3.6)
    ax.hist(
        counts, bins=list(bins), color=PALETTE["sky"], density=True, label=f"{len(counts)} rounds"
    )
    grid = np.arange(bins[0], bins[-1] + 1)
    ax.plot(
        grid,
        binom.pmf(grid, num_clients, sample_rate),
        color=PALETTE["blue"],
        label=f"Binomial({num_clients}, {sample_rate:g})",
    )
    ax.set_xlabel("clients in a round")
    ax.set_ylabel("share of rounds")
    expected = num_clients * sample_rate
    ax.set_title(f"Poisson sampling: about qK = {expected:g} clients, never exactly")
    ax.legend()
    return fig


def _short_float(value: float) -> str:
    """``1e-05`` written ``1e-5``, other values as ``:g`` writes them."""
    text = f"{value:g}"
    if "e" not in text:
        return text
    mantissa, exponent = text.split("e")
    return f"{mantissa}e{int(exponent)}"


def dp_fedavg_runs_figure(
    no_noise: FederatedHistory,
    private: FederatedHistory,
    *,
    sigma: float,
    delta: float,
    ceiling: float,
    chance: float,
) -> Any:
    """User-level epsilon of a DP-FedAvg run, and its accuracy next to the same run without noise.

    Args:
        no_noise: the run with noise multiplier 0 (no guarantee).
        private: the run with noise multiplier ``sigma``; its ``epsilon`` is drawn on the left.
        sigma: the noise multiplier of ``private``, for the legend.
        delta: the delta the epsilons are quoted at, for the axis label.
        ceiling: accuracy of centralised training, in [0, 1], drawn dashed.
        chance: accuracy of guessing, in [0, 1], drawn dotted.

    Returns:
        The figure: left, epsilon after each round; right, test accuracy (%) per round.
    """
    fig, (left, right) = new_figure(1, 2, width=5.2, height=3.8)
    left.plot(private.round, private.epsilon, marker="o", ms=3, color=PALETTE["vermillion"])
    left.set_xlabel("round")
    left.set_ylabel(f"user-level ε (δ = {_short_float(delta)})")
    left.set_title("ε grows with every round")
    for history, colour, label in (
        (no_noise, PALETTE["blue"], "no noise (ε = ∞)"),
        (private, PALETTE["vermillion"], f"σ = {sigma:g} (ε = {private.epsilon[-1]:.1f})"),
    ):
        right.plot(history.round, 100 * np.asarray(history.accuracy), color=colour, label=label)
    right.axhline(100 * ceiling, color=PALETTE["black"], ls="--", lw=1.2, label="centralised")
    right.axhline(100 * chance, color=PALETTE["black"], ls=":", lw=1.2, label="chance")
    right.set_xlabel("round")
    right.set_ylabel("test accuracy (%)")
    right.set_title("Noise for every user costs accuracy")
    right.set_ylim(0, 100 * ceiling + 18)  # room above the centralised line for the legend
    right.legend(loc="upper left", ncols=2, fontsize=9)
    return fig


def wall_time_figure(
    parts: Mapping[str, float], *, in_process_s: float, simulation_s: float, share: float
) -> Any:
    """Where a Flower simulation's wall time goes, next to the same run in process.

    Args:
        parts: name -> seconds of each part of the simulation, stacked left to right
            (at most four parts).
        in_process_s: seconds of the in-process run.
        simulation_s: seconds of the whole simulation, written at the end of its bar.
        share: fraction of the simulation spent on start-up and tear-down, for the title.

    Returns:
        The figure: two horizontal bars, the simulation's split into ``parts``.
    """
    colours = [PALETTE["vermillion"], PALETTE["blue"], PALETTE["orange"], PALETTE["sky"]]
    if len(parts) > len(colours):
        raise ValueError(f"parts must hold at most {len(colours)} entries, got {len(parts)}")
    fig, ax = new_figure(width=8.0, height=2.8)
    left = 0.0
    for (name, seconds), colour in zip(parts.items(), colours, strict=False):
        ax.barh("Flower simulation", seconds, left=left, color=colour, label=name)
        left += seconds
    ax.barh("in-process", in_process_s, color=PALETTE["green"], label="in-process run_dp_fedavg")
    for seconds, row, text in (
        (in_process_s, 1, f"{in_process_s:.1f} s"),
        (simulation_s, 0, f"{simulation_s:.0f} s"),
    ):
        ax.annotate(text, (seconds, row), xytext=(6, -5), textcoords="offset points")
    ax.set(xlabel="wall time (s)", title=f"Start-up + tear-down: {share:.0%} of the simulation")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.32), ncol=2, fontsize=11, frameon=False)
    return fig
