"""Figures of notebook 07: ours vs Opacus, Poisson batch sizes, accountants, the sigma x C sweep."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from scipy import stats

from fl_dp_lab._validate import fail
from fl_dp_lab.plots import PALETTE, animate, new_figure

__all__ = [
    "plot_accuracy_by_epsilon",
    "plot_agreement",
    "plot_batch_sizes",
    "plot_epsilon_curves",
    "plot_noise",
    "plot_sweep",
    "update_sweep",
]

_LINE_COLOURS = ["blue", "orange", "green", "purple", "sky", "vermillion"]


def plot_agreement(
    ours: np.ndarray, theirs: np.ndarray, *, xlabel: str, ylabel: str, title: str
) -> plt.Figure:
    """Scatter of paired values (ours on x, Opacus on y) with the line y = x."""
    ours, theirs = np.asarray(ours, dtype=float).ravel(), np.asarray(theirs, dtype=float).ravel()
    if ours.shape != theirs.shape or ours.size == 0:
        fail("ours and theirs", "non-empty with the same size", (ours.size, theirs.size))
    fig, ax = new_figure(width=5.6, height=4.6)
    low, high = min(ours.min(), theirs.min()), max(ours.max(), theirs.max())
    ax.plot([low, high], [low, high], "--", color=PALETTE["black"], lw=1.2, label="y = x")
    ax.plot(ours, theirs, "o", color=PALETTE["blue"], alpha=0.7, label="one example")
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.legend()
    return fig


def plot_batch_sizes(sizes: Sequence[int], *, num_examples: int, sample_rate: float) -> plt.Figure:
    """Histogram of Poisson batch sizes with the Binomial(num_examples, sample_rate) law."""
    counts = np.asarray(sizes, dtype=int)
    fig, ax = new_figure(width=6.4, height=4.0)
    edges = np.arange(counts.min() - 0.5, counts.max() + 1.5, max(1, (np.ptp(counts) + 1) // 12))
    heights, _, _ = ax.hist(
        counts, bins=edges, density=True, color=PALETTE["sky"], label="observed batches"
    )
    k = np.arange(counts.min(), counts.max() + 1)
    law = stats.binom.pmf(k, num_examples, sample_rate)
    ax.plot(
        k,
        law,
        color=PALETTE["vermillion"],
        label=f"Binomial({num_examples}, {sample_rate:.4g})",
    )
    ax.axvline(
        num_examples * sample_rate,
        color=PALETTE["black"],
        ls="--",
        lw=1.2,
        label=f"expected size {num_examples * sample_rate:g}",
    )
    ax.set(
        xlabel="examples in the batch",
        ylabel="probability",
        title="Poisson sampling: every batch has a different size",
    )
    ax.set_ylim(0, 1.5 * max(heights.max(), law.max()))  # headroom: the legend sits above
    ax.legend(fontsize=11, loc="upper left")
    return fig


def plot_noise(ours: np.ndarray, theirs: np.ndarray, *, std: float, title: str) -> plt.Figure:
    """Histograms of two samples of gradient noise with the N(0, std^2) density on top."""
    ours, theirs = np.asarray(ours, dtype=float).ravel(), np.asarray(theirs, dtype=float).ravel()
    fig, ax = new_figure(width=6.4, height=4.0)
    bins = np.linspace(-4 * std, 4 * std, 61)
    ax.hist(
        ours, bins=bins, density=True, histtype="step", lw=2, color=PALETTE["blue"], label="ours"
    )
    ax.hist(
        theirs,
        bins=bins,
        density=True,
        histtype="step",
        lw=2,
        ls="--",
        color=PALETTE["orange"],
        label="Opacus",
    )
    t = np.linspace(-4 * std, 4 * std, 200)
    ax.plot(
        t, stats.norm.pdf(t, scale=std), color=PALETTE["black"], lw=1.2, label=f"N(0, {std:.2g}²)"
    )
    ax.set(xlabel="noise in one gradient coordinate", ylabel="density", title=title)
    ax.legend()
    return fig


def plot_epsilon_curves(
    steps: np.ndarray, curves: Mapping[str, np.ndarray], *, delta: float, title: str
) -> plt.Figure:
    """Epsilon (at ``delta``) against training steps, one curve per accountant.

    The first half of ``curves`` are drawn as lines, the second half as open
    markers in the same colours: pass ``{"A": .., "B": .., "A'": .., "B'": ..}``
    to show A' on top of A and B' on top of B.
    """
    fig, ax = new_figure(width=6.8, height=4.2)
    # Lines for the first half of the curves, open markers for the second half, so two
    # accountants that agree show as markers sitting on a line.
    half = (len(curves) + 1) // 2
    for k, (label, eps) in enumerate(curves.items()):
        colour = PALETTE[_LINE_COLOURS[k % half]]
        if k < half:
            ax.plot(steps, eps, "-", color=colour, label=label)
        else:
            ax.plot(steps, eps, "o", ms=10, mfc="none", mew=2, color=colour, label=label)
    ax.set(xlabel="training steps", ylabel=f"ε at δ = {delta:g}", title=title)
    ax.legend()
    return fig


def plot_accuracy_by_epsilon(
    epsilons: Sequence[float],
    accuracies: np.ndarray,
    *,
    baseline: Sequence[float],
    title: str,
) -> plt.Figure:
    """Test accuracy (one dot per seed, a line at the mean) at each epsilon, and non-private.

    A dot plot, not bars (a bar would have to start at 0): the axis starts 10 points below the
    lowest run, so the few points between the columns stay visible.

    Args:
        epsilons: the target epsilons, one bar each.
        accuracies: array ``(len(epsilons), seeds)`` in [0, 1].
        baseline: non-private accuracy, one per seed.
    """
    accuracies = np.asarray(accuracies, dtype=float)
    if accuracies.ndim != 2 or accuracies.shape[0] != len(epsilons):
        fail("accuracies", f"an array of shape ({len(epsilons)}, seeds)", accuracies.shape)
    labels = [f"ε = {e:g}" for e in epsilons] + ["non-private"]
    values = list(accuracies) + [np.asarray(baseline, dtype=float)]
    fig, ax = new_figure(width=6.4, height=4.2)
    for k, v in enumerate(values):
        colour = PALETTE["black" if k == len(epsilons) else _LINE_COLOURS[k % 6]]
        ax.hlines(100 * v.mean(), k - 0.3, k + 0.3, color=colour, lw=3)
        ax.plot(np.full(v.size, k), 100 * v, "o", color=colour)
        ax.annotate(
            f"{100 * v.mean():.1f} %",
            (k, 100 * v.mean()),
            ha="center",
            va="bottom",
            xytext=(0, 4),
            textcoords="offset points",
            fontsize=11,
        )
    low = 100 * min(v.min() for v in values)
    ax.set(
        xticks=range(len(labels)),
        xticklabels=labels,
        ylim=(max(0.0, low - 10), 100),
        ylabel="test accuracy (%)",
        title=title,
    )
    return fig


def plot_sweep(
    result: Any, noise_multiplier: float, max_grad_norm: float
) -> tuple[plt.Figure, dict]:
    """Accuracy and epsilon over a sigma x C sweep, with the chosen cell marked.

    ``result`` is an ``fl_dp_lab.opacus_bridge.SweepResult``. Left: test
    accuracy against sigma, one line per C, and the non-private baseline.
    Right: epsilon against sigma (sigma = 0 has epsilon = inf: no privacy).

    Returns:
        ``(fig, artists)``; pass ``artists`` to ``update_sweep`` to move the marks.
    """
    fig, (left, right) = new_figure(1, 2, width=5.6, height=4.2)
    sigmas = result.noise_multipliers
    for j, c in enumerate(result.max_grad_norms):
        left.plot(
            sigmas,
            100 * result.accuracy[:, j],
            "o-",
            color=PALETTE[_LINE_COLOURS[j % 6]],
            label=f"C = {c:g}",
        )
    left.axhline(
        100 * result.baseline_accuracy, color=PALETTE["black"], ls="--", lw=1.2, label="plain SGD"
    )
    left.set(xlabel="noise multiplier σ", ylabel="test accuracy (%)")
    # above the panel: the curves of small C run along the bottom, large sigma to the right
    left.legend(fontsize=11, loc="lower center", bbox_to_anchor=(0.5, 1.1), ncol=3,
                frameon=False, borderaxespad=0.0)  # fmt: skip
    left.set_title(" ")
    finite = np.isfinite(result.epsilon)
    right.plot(sigmas[finite], result.epsilon[finite], "o-", color=PALETTE["vermillion"])
    right.set(
        xlabel="noise multiplier σ",
        ylabel=f"ε at δ = {result.delta:g}",
        yscale="log",
        title=f"ε depends on σ only ({result.steps} steps, q = {result.sample_rate:.4g})",
    )
    artists = {
        "point": left.plot([], [], "s", ms=14, mfc="none", mec=PALETTE["black"], mew=2.5)[0],
        "eps_point": right.plot([], [], "s", ms=14, mfc="none", mec=PALETTE["black"], mew=2.5)[0],
        "left": left,
        "right": right,
        "no_privacy": right.text(
            0.5,
            0.5,
            "",
            transform=right.transAxes,
            ha="center",
            fontsize=13,
            color=PALETTE["vermillion"],
        ),
    }
    animate(fig, [artists["point"], artists["eps_point"], artists["no_privacy"], left.title])
    update_sweep(artists, result, noise_multiplier, max_grad_norm)
    return fig, artists


def update_sweep(
    artists: dict, result: Any, noise_multiplier: float, max_grad_norm: float
) -> tuple[float, float]:
    """Move the marks of ``plot_sweep`` to the cell (sigma, C); return (accuracy, epsilon)."""
    i = _index("noise_multiplier", result.noise_multipliers, noise_multiplier)
    j = _index("max_grad_norm", result.max_grad_norms, max_grad_norm)
    accuracy, epsilon = float(result.accuracy[i, j]), float(result.epsilon[i])
    artists["point"].set_data([result.noise_multipliers[i]], [100 * accuracy])
    if math.isinf(epsilon):
        artists["eps_point"].set_data([], [])
        artists["no_privacy"].set_text("σ = 0: no privacy (ε = ∞)")
    else:
        artists["eps_point"].set_data([result.noise_multipliers[i]], [epsilon])
        artists["no_privacy"].set_text("")
    artists["left"].title.set_text(
        f"σ = {noise_multiplier:g}, C = {max_grad_norm:g}: {100 * accuracy:.1f} % "
        f"(plain SGD {100 * result.baseline_accuracy:.1f} %)"
    )
    return accuracy, epsilon


def _index(name: str, grid: np.ndarray, value: float) -> int:
    matches = np.flatnonzero(np.isclose(grid, value))
    if matches.size == 0:
        fail(name, "one of the sweep's values " + ", ".join(f"{v:g}" for v in grid), value)
    return int(matches[0])
