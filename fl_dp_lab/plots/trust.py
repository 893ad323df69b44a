"""Figures of notebook 12: accuracy against epsilon under three trust models, and more.

``trust_figure`` returns ``(fig, artists)``; ``update_trust_figure`` moves
those artists in place for another (epsilon, m), so the dashboard of
``fl_dp_lab.widgets.trust`` redraws without rebuilding the figure. Nothing is
trained here: both take the final accuracies of runs already finished. The
other figures of the notebook (noise on the average, the server's view of one
update as images, accuracy at equal epsilon) are drawn once and returned.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from fl_dp_lab.plots import PALETTE, animate, new_figure

__all__ = [
    "TRUST_MODELS",
    "accuracy_at_equal_epsilon_figure",
    "image_panels_figure",
    "noise_std_figure",
    "trust_figure",
    "update_trust_figure",
]

#: The trust models the figure draws, in legend order, with their colour and line style.
TRUST_MODELS: dict[str, tuple[str, str]] = {
    "local": (PALETTE["vermillion"], "-"),
    "central": (PALETTE["blue"], "-"),
    "distributed": (PALETTE["green"], "--"),
}

#: (trust model, epsilon target, clients per round m) -> final test accuracy in [0, 1].
Accuracies = Mapping[tuple[str, float, int], float]


def trust_figure(
    accuracy: Accuracies,
    no_noise: Mapping[int, float],
    *,
    chance: float,
    epsilon: float,
    num_clients: int,
) -> tuple[Any, dict[str, Any]]:
    """Accuracy against the epsilon target for local, central and distributed DP at one m.

    Args:
        accuracy: (model, epsilon, m) -> final accuracy, for every model of
            ``TRUST_MODELS``, every epsilon and every m.
        no_noise: m -> final accuracy of the same run without noise.
        chance: accuracy of always predicting the most common class.
        epsilon, num_clients: the (epsilon, m) to mark first.

    Returns:
        ``(fig, artists)``; ``artists`` holds one curve and one marker per model
        (``"curve:local"``, ``"marker:local"``, ...), the ``"no_noise"`` line and the axes.
    """
    epsilons = sorted({e for _, e, _ in accuracy})
    fig, ax = new_figure(width=6.4, height=3.8)
    artists: dict[str, Any] = {"ax": ax}
    for model, (colour, style) in TRUST_MODELS.items():
        (artists[f"curve:{model}"],) = ax.plot(
            [], [], color=colour, ls=style, marker="o", label=model
        )
        (artists[f"marker:{model}"],) = ax.plot(
            [], [], color=colour, marker="o", ms=14, mfc="none", ls="none"
        )
    (artists["no_noise"],) = ax.plot(
        [epsilons[0] / 1.5, epsilons[-1] * 1.5],
        [0.0, 0.0],
        color=PALETTE["black"],
        lw=1.2,
        label="no noise",
    )
    ax.axhline(100 * chance, color=PALETTE["black"], ls=":", lw=1.2, label="chance")
    ax.set_xscale("log")
    ax.set_xlim(epsilons[0] / 1.5, epsilons[-1] * 1.5)
    ax.set_xticks(epsilons, [f"{e:g}" for e in epsilons])
    ax.set_ylim(0, 100)
    ax.set_xlabel("user-level ε of the run")
    ax.set_ylabel("test accuracy (%)")
    ax.legend(fontsize=10, loc="center right")
    ax.set_title(" ")
    moving = [artists[f"{kind}:{model}"] for model in TRUST_MODELS for kind in ("curve", "marker")]
    animate(fig, [*moving, artists["no_noise"], ax.title])
    update_trust_figure(artists, accuracy, no_noise, epsilon=epsilon, num_clients=num_clients)
    return fig, artists


def update_trust_figure(
    artists: dict[str, Any],
    accuracy: Accuracies,
    no_noise: Mapping[int, float],
    *,
    epsilon: float,
    num_clients: int,
) -> None:
    """Show the runs with m = ``num_clients`` and mark ``epsilon``, in a ``trust_figure``."""
    epsilons = sorted({e for _, e, m in accuracy if m == num_clients})
    for model in TRUST_MODELS:
        values = 100 * np.array([accuracy[(model, e, num_clients)] for e in epsilons])
        artists[f"curve:{model}"].set_data(epsilons, values)
        artists[f"marker:{model}"].set_data(
            [epsilon], [100 * accuracy[(model, epsilon, num_clients)]]
        )
    artists["no_noise"].set_ydata([100 * no_noise[num_clients]] * 2)
    artists["ax"].title.set_text(f"m ≈ {num_clients:,} clients per round, ε = {epsilon:g}")


def noise_std_figure(num_clients: Sequence[int] | np.ndarray, std: Mapping[str, Any]) -> Any:
    """Noise std on the averaged update against the clients per round, one line per trust model.

    Args:
        num_clients: the clients per round m, one per point (drawn on a log axis).
        std: trust model (a key of ``TRUST_MODELS``) -> noise std on the average at
            each m, same length as ``num_clients``. Models missing from ``std`` are skipped.

    Returns:
        The figure, both axes logarithmic, one line per model in ``TRUST_MODELS`` order.
    """
    fig, ax = new_figure(width=6.4, height=3.8)
    for model, (colour, style) in TRUST_MODELS.items():
        if model in std:
            ax.plot(num_clients, std[model], marker="o", color=colour, ls=style, label=model)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("clients per round m")
    ax.set_ylabel("noise std on the average (C = 1)")
    ax.set_title("Same ε: local DP needs √m times central's noise")
    ax.legend()
    return fig


def image_panels_figure(panels: Sequence[tuple[str, Any]], *, title: str, side: int = 8) -> Any:
    """A row of grey-scale images in [0, 1], e.g. a digit and what an attacker rebuilds of it.

    Args:
        panels: (panel title, image) pairs, left to right; each image holds
            ``side * side`` values (any shape, array or tensor), clamped to [0, 1] for display.
        title: the figure's title.
        side: the images are ``side`` x ``side`` pixels.

    Returns:
        The figure, one axes per panel, axis lines hidden.
    """
    if not panels:
        raise ValueError("panels must hold at least one (title, image) pair, got none")
    fig, axes = new_figure(1, len(panels), width=2.6, height=2.9, squeeze=False)
    for ax, (name, image) in zip(axes[0], panels, strict=True):
        pixels = np.clip(np.asarray(image, dtype=float).reshape(side, side), 0.0, 1.0)
        ax.imshow(pixels, cmap="gray_r", vmin=0, vmax=1)
        ax.set_title(name, fontsize=11)
        ax.axis("off")
    fig.suptitle(title)
    return fig


def accuracy_at_equal_epsilon_figure(
    accuracy: Mapping[tuple[str, float], float],
    *,
    epsilons: Sequence[float],
    delta: float,
    chance: float,
) -> Any:
    """Final accuracy against the user-level epsilon of the run, one line per trust model.

    Args:
        accuracy: (trust model, epsilon) -> final accuracy in [0, 1] for every model of
            ``TRUST_MODELS`` and every epsilon, plus ``("no noise", math.inf)``.
        epsilons: the epsilons of the runs, drawn on a log axis.
        delta: the delta of every run, for the axis label.
        chance: accuracy of always predicting the most common class, drawn dotted.

    Returns:
        The figure, accuracy in %.
    """
    fig, ax = new_figure(width=6.4, height=3.8)
    for model, (colour, style) in TRUST_MODELS.items():
        values = [100 * accuracy[(model, e)] for e in epsilons]
        ax.plot(epsilons, values, marker="o", color=colour, ls=style, label=model)
    no_noise = 100 * accuracy[("no noise", math.inf)]
    ax.axhline(no_noise, color=PALETTE["black"], lw=1.2, label="no noise")
    ax.axhline(100 * chance, color=PALETTE["black"], ls=":", lw=1.2, label="chance")
    ax.set_xscale("log")
    ax.set_xticks(list(epsilons), [f"{e:g}" for e in epsilons])
    ax.set_xlabel(f"user-level ε of the run (δ = {delta:g})")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Distributed DP matches central; local DP stays at chance")
    ax.legend(fontsize=10)
    return fig
