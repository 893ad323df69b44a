"""Figures of notebook 10: the membership game, its bound, and the canary audit of DP-SGD.

Each function draws numbers computed elsewhere (``fl_dp_lab.auditing``,
``fl_dp_lab.auditing.canaries``, ``fl_dp_lab.accounting``) and returns the figure.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Rectangle

from fl_dp_lab.plots import PALETTE, new_figure

__all__ = [
    "plot_attack_strength",
    "plot_audit_sweep",
    "plot_bound_vs_trials",
    "plot_canary_scores",
    "plot_tradeoff",
]

#: One colour per implementation, the same in every figure of notebook 10.
_COLOURS = {
    "correct": PALETTE["blue"],
    "bug: no clipping": PALETTE["vermillion"],
    "bug: noise not scaled by C": PALETTE["orange"],
}
_MARKERS = ("o", "s", "D", "^", "v")


def plot_tradeoff(
    *,
    epsilon: float,
    delta: float,
    fpr: float,
    fnr: float,
    fpr_high: float,
    fnr_high: float,
    certified_epsilon: float,
) -> plt.Figure:
    """The (FPR, FNR) plane: the corner (epsilon, delta)-DP forbids, and one attack's rates.

    (epsilon, delta)-DP keeps every attack above the curve FNR = max(0,
    1 - delta - e^eps FPR, e^-eps (1 - delta - FPR)). The attack's measured
    rates are a point, its Clopper-Pearson upper bounds a box; the dashed
    curve is the boundary for the epsilon the box's far corner certifies.
    """
    fig, ax = new_figure(width=5.6, height=5.0)
    grid = np.linspace(0.0, 1.0, 401)
    for eps, style, colour, label in (
        (epsilon, "-", PALETTE["blue"], f"boundary of ({epsilon:.2f}, δ)-DP"),
        (certified_epsilon, "--", PALETTE["green"], f"certified ε ≥ {certified_epsilon:.2f}"),
    ):
        curve = np.maximum.reduce(
            [
                np.zeros_like(grid),
                1 - delta - math.exp(eps) * grid,
                (1 - delta - grid) / math.exp(eps),
            ]
        )
        ax.plot(grid, curve, ls=style, color=colour, label=label)
        if style == "-":
            ax.fill_between(
                grid, 0, curve, color=PALETTE["sky"], alpha=0.25, label="no DP attack lands here"
            )
    ax.add_patch(
        Rectangle(
            (0, 0),
            fpr_high,
            fnr_high,
            fill=False,
            ec=PALETTE["vermillion"],
            ls=":",
            lw=2,
            label="95 % upper bounds (box)",
        )
    )
    ax.plot([fpr], [fnr], "o", color=PALETTE["vermillion"], ms=9, label="measured rates")
    ax.set(
        xlim=(0, 1),
        ylim=(0, 1),
        aspect="equal",
        xlabel="false positive rate (canary out, guessed in)",
        ylabel="false negative rate",
        title="An attack's error rates bound ε from below",
    )
    ax.legend(loc="upper right", fontsize=10)
    return fig


def plot_bound_vs_trials(
    trials: Sequence[int],
    point_estimates: Sequence[float],
    lower_bounds: Sequence[float],
    ceilings: Sequence[float],
    *,
    true_epsilon: float,
) -> plt.Figure:
    """Left: plug-in and certified epsilon against the trials per world; right: the ceiling."""
    fig, (left, right) = new_figure(1, 2, width=5.4, height=4.0)
    left.axhline(true_epsilon, color=PALETTE["black"], lw=1.5, label=f"true ε = {true_epsilon:g}")
    left.plot(trials, point_estimates, "o:", color=PALETTE["orange"], label="plug-in rates")
    left.plot(trials, lower_bounds, "s-", color=PALETTE["blue"], label="Clopper-Pearson bound")
    left.set(
        xscale="log",
        ylim=(0, 1.6 * true_epsilon),
        xlabel="trials per world",
        ylabel="ε (nats)",
        title="The bound stays below the truth",
    )
    left.legend(loc="lower right", fontsize=10)
    right.plot(trials, ceilings, "D--", color=PALETTE["purple"], label="attack with no errors")
    right.axhline(true_epsilon, color=PALETTE["black"], lw=1.5, label=f"true ε = {true_epsilon:g}")
    right.set(
        xscale="log",
        ylim=(0, None),
        xlabel="trials per world",
        ylabel="largest certifiable ε (nats)",
        title="The ceiling grows only like log n",
    )
    right.legend(loc="upper left", fontsize=10)
    return fig


def plot_canary_scores(
    scores: Mapping[str, tuple[np.ndarray, np.ndarray]],
    thresholds: Mapping[str, float],
    epsilons: Mapping[str, float],
    *,
    accountant_epsilon: float,
    xlabel: str = "projection on the canary (gradient units)",
) -> plt.Figure:
    """One panel per implementation: histograms of the scores with and without the canary."""
    fig, axes = new_figure(1, len(scores), width=4.4, height=3.8)
    axes = np.atleast_1d(axes)
    for ax, (label, (scores_in, scores_out)) in zip(axes, scores.items()):
        bins = np.linspace(
            min(scores_in.min(), scores_out.min()), max(scores_in.max(), scores_out.max()), 40
        )
        ax.hist(scores_out, bins=bins, color=PALETTE["sky"], alpha=0.7, label="canary out")
        ax.hist(scores_in, bins=bins, color=PALETTE["vermillion"], alpha=0.5, label="canary in")
        ax.axvline(thresholds[label], color=PALETTE["black"], ls="--", lw=1.5, label="threshold")
        verdict = "caught" if epsilons[label] > accountant_epsilon else "passes"
        ax.set(xlabel=xlabel, title=f"{label}\nε ≥ {epsilons[label]:.2f}: {verdict}")
    axes[0].set_ylabel("trials")
    axes[0].legend(loc="upper left", fontsize=10)
    fig.suptitle(f"Canary in vs out; the accountant claims ε = {accountant_epsilon:.2f}")
    return fig


def plot_audit_sweep(
    noise_multipliers: Sequence[float],
    bounds: Mapping[str, Sequence[float]],
    *,
    accountant_sigmas: Sequence[float],
    accountant_epsilons: Sequence[float],
    ceiling: float,
    delta: float,
) -> plt.Figure:
    """Empirical lower bounds (markers) against the accountant's epsilon (line), across sigma."""
    fig, ax = new_figure(width=9.6, height=4.6)
    ax.plot(
        accountant_sigmas,
        accountant_epsilons,
        color=PALETTE["black"],
        label="accountant's ε (one step)",
    )
    ax.axhline(
        ceiling, color=PALETTE["purple"], ls="--", lw=1.5, label="ceiling of this many trials"
    )
    for marker, (label, values) in zip(_MARKERS, bounds.items()):
        colour = _COLOURS.get(label, PALETTE["green"])
        ax.plot(
            noise_multipliers,
            values,
            marker=marker,
            ls=":",
            ms=8,
            color=colour,
            label=f"audit: {label}",
        )
    ax.set(
        xscale="log",
        xlabel="noise multiplier σ",
        ylabel=f"ε at δ = {delta:g} (nats)",
        title="Correct code stays under the accountant; bugs break through",
    )
    ax.set_xticks(list(noise_multipliers), [f"{s:g}" for s in noise_multipliers])
    ax.minorticks_off()  # a log axis would also label minor ticks ("3 x 10^0")
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=10)
    return fig


def plot_attack_strength(
    labels: Sequence[str], epsilons: Sequence[float], *, accountant_epsilon: float, ceiling: float
) -> plt.Figure:
    """Horizontal bars: the epsilon each attack certifies against the same code."""
    fig, ax = new_figure(width=7.2, height=0.6 * len(labels) + 1.8)
    positions = np.arange(len(labels))[::-1]
    colours = [
        PALETTE["vermillion"] if e > accountant_epsilon else PALETTE["sky"] for e in epsilons
    ]
    ax.barh(positions, epsilons, color=colours)
    for position, value in zip(positions, epsilons):
        ax.annotate(
            f"{value:.2f}",
            (value, position),
            xytext=(4, 0),
            textcoords="offset points",
            va="center",
            fontsize=11,
        )
    ax.axvline(
        accountant_epsilon,
        color=PALETTE["black"],
        label=f"accountant's ε = {accountant_epsilon:.2f}",
    )
    ax.axvline(ceiling, color=PALETTE["purple"], ls="--", label=f"ceiling = {ceiling:.2f}")
    ax.set_yticks(positions, list(labels))
    ax.set_xlim(0, 1.15 * max(ceiling, accountant_epsilon, *epsilons))  # room for the labels
    ax.set(xlabel="certified ε (nats)", title="Only the strong attack exposes the bug")
    ax.legend(loc="lower right", fontsize=10)
    return fig
