"""Figures of notebook 02: training curves, per-example gradient norms, the SGD sweep."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator

from fl_dp_lab.plots import PALETTE, animate, new_figure
from fl_dp_lab.training import History

__all__ = [
    "gradient_norm_histogram",
    "relative_error_strips",
    "sweep_panels",
    "training_curves",
    "update_sweep_panels",
]

_COLOURS = [PALETTE[c] for c in ("blue", "orange", "green", "vermillion", "purple", "sky")]


def training_curves(
    histories: Mapping[str, History], *, title: str
) -> tuple[plt.Figure, np.ndarray]:
    """Training loss and test accuracy against epoch, one colour per run.

    Args:
        histories: label -> ``History`` (with test accuracy recorded).
        title: the figure's title (state the finding).
    """
    fig, axes = new_figure(1, 2, width=5.6, height=4.0)
    for colour, (label, history) in zip(_COLOURS, histories.items(), strict=False):
        axes[0].plot(history.epoch, history.train_loss, color=colour, label=label)
        accuracy = 100 * np.asarray(history.test_accuracy)
        axes[1].plot(history.epoch, accuracy, color=colour, label=label)
    axes[0].set(xlabel="epoch", ylabel="training loss (cross-entropy, nats)", yscale="log")
    axes[1].set(xlabel="epoch", ylabel="test accuracy (%)")
    axes[1].legend(loc="lower right")
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle(title)
    return fig, axes


def gradient_norm_histogram(
    norms: Any, *, title: str, bins: int = 40, log: bool = True
) -> tuple[plt.Figure, plt.Axes]:
    """Histogram of per-example gradient norms with the median and the maximum marked.

    ``log`` spaces the bins evenly in log(norm) and draws a log x-axis: the
    norms usually span several orders of magnitude.
    """
    norms = np.asarray(norms, dtype=float)
    fig, ax = new_figure(width=7.0, height=4.0)
    edges: np.ndarray | int
    if log:
        positive = norms[norms > 0]
        edges = np.logspace(np.log10(positive.min()), np.log10(positive.max()), bins + 1)
        ax.set_xscale("log")
    else:
        edges = bins
    ax.hist(norms, bins=edges, color=PALETTE["blue"], alpha=0.85)
    median, largest = float(np.median(norms)), float(norms.max())
    ax.axvline(median, color=PALETTE["orange"], linestyle="--", label=f"median {median:.2g}")
    ax.axvline(largest, color=PALETTE["vermillion"], linestyle=":", label=f"max {largest:.2g}")
    ax.set(xlabel="L2 norm of one example's gradient", ylabel="number of examples", title=title)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend()
    return fig, ax


def sweep_panels(runs: Mapping[Any, History]) -> tuple[plt.Figure, dict[str, Any]]:
    """Loss and accuracy curves of every run in grey, with one run highlighted.

    Returns ``(fig, artists)`` for ``update_sweep_panels``; the figure is closed
    in pyplot so that only the widget shows it.
    """
    fig, (loss_ax, acc_ax) = new_figure(1, 2, width=5.4, height=3.8)
    for history in runs.values():
        loss_ax.plot(history.epoch, _finite(history.train_loss), color="0.8", linewidth=1)
        acc_ax.plot(history.epoch, 100 * np.asarray(history.test_accuracy), color="0.8", lw=1)
    (loss_line,) = loss_ax.plot([], [], color=PALETTE["blue"], linewidth=3)
    (acc_line,) = acc_ax.plot([], [], color=PALETTE["blue"], linewidth=3)
    loss_ax.set(xlabel="epoch", ylabel="training loss (nats)", yscale="log")
    acc_ax.set(xlabel="epoch", ylabel="test accuracy (%)", ylim=(0, 100))
    for ax in (loss_ax, acc_ax):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    plt.close(fig)
    title = fig.suptitle(" ")
    animate(fig, [loss_line, acc_line, title])
    return fig, {"loss": loss_line, "accuracy": acc_line, "fig": fig, "title": title}


def update_sweep_panels(artists: dict[str, Any], history: History, title: str) -> None:
    """Highlight ``history`` in the sweep figure and set its title."""
    artists["loss"].set_data(history.epoch, _finite(history.train_loss))
    artists["accuracy"].set_data(history.epoch, 100 * np.asarray(history.test_accuracy))
    artists["title"].set_text(title)


def _finite(values: Any) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    return np.where(np.isfinite(values), values, np.nan)


def relative_error_strips(
    rows: Mapping[str, Any],
    *,
    title: str,
    tolerances: Mapping[str, float] | None = None,
) -> tuple[plt.Figure, plt.Axes]:
    """Each gradient check's per-coordinate relative errors as a row of dots on a log axis.

    Args:
        rows: label -> the relative error of every coordinate of one check (e.g.
            ``GradientCheck.relative_errors``); one row each, top to bottom in the
            figure's y order 0, 1, ... Errors of exactly 0 have no place on a log axis
            and are left out.
        title: the figure's title (state the finding).
        tolerances: label -> a tolerance drawn as a vertical line (black dashed, then
            vermillion dotted, then the same again).

    Returns:
        ``(fig, ax)``.
    """
    if not rows:
        raise ValueError("rows must name at least one check, got an empty mapping")
    fig, ax = new_figure(width=9.0, height=4.5)
    for row, values in enumerate(rows.values()):
        errors = np.asarray(values, dtype=float).ravel()
        errors = errors[errors > 0]
        ax.scatter(errors, np.full(len(errors), row), s=14, alpha=0.6)
    styles = [(PALETTE["black"], "--"), (PALETTE["vermillion"], ":")]
    for k, (label, tolerance) in enumerate((tolerances or {}).items()):
        colour, line = styles[k % len(styles)]
        ax.axvline(tolerance, color=colour, linestyle=line, label=label)
    ax.set(
        xscale="log",
        yticks=range(len(rows)),
        yticklabels=list(rows),
        xlabel="relative error per coordinate",
    )
    ax.set_title(title)
    if tolerances:
        ax.legend(loc="upper left")
    return fig, ax
