"""Figures of notebooks 05a and 05b: epsilon against steps for each composition method, and more."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import matplotlib as mpl
import numpy as np

from fl_dp_lab.plots import PALETTE, STYLE, animate, new_figure

__all__ = [
    "METHOD_COLOURS",
    "METHOD_LABELS",
    "amplification_figure",
    "best_bound_figure",
    "calibration_figure",
    "epsilon_steps_figure",
    "opacus_orders_figure",
    "privacy_loss_density_figure",
    "rdp_conversion_figure",
    "update_epsilon_steps_figure",
]

METHOD_COLOURS = {
    "basic": PALETTE["vermillion"],
    "advanced": PALETTE["orange"],
    "rdp": PALETTE["blue"],
    "pld": PALETTE["green"],
    "opacus rdp": PALETTE["sky"],
    "opacus prv": PALETTE["purple"],
}
METHOD_LABELS = {
    "basic": "basic composition",
    "advanced": "advanced (DRV 2010)",
    "rdp": "RDP",
    "pld": "PLD",
    "opacus rdp": "Opacus RDP (orders ≤ 63)",
    "opacus prv": "Opacus PRV",
}


def epsilon_steps_figure(
    steps: np.ndarray,
    curves: Mapping[str, np.ndarray],
    *,
    title: str,
    delta: float,
    max_steps: int = 100_000,
) -> tuple[Any, dict[str, Any]]:
    """Log-log epsilon against steps, one line per method; returns (fig, artists).

    The step axis is fixed from 1 to ``max_steps`` (a larger T draws a longer line);
    the epsilon axis spans whole decades and moves only when the curves leave it or
    shrink well inside it. ``artists`` holds the axes, one line per method and a
    centred "no privacy" text, so ``update_epsilon_steps_figure`` can redraw in place.
    """
    fig, ax = new_figure(width=7.0, height=4.2)
    with mpl.rc_context(STYLE):
        lines = {
            name: ax.plot(
                steps,
                _finite(values),
                marker="o",
                ms=4,
                color=METHOD_COLOURS[name],
                label=METHOD_LABELS[name],
            )[0]
            for name, values in curves.items()
        }
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.minorticks_off()  # log-axis minor ticks would dominate the redraw time
        ax.set_xlabel("steps T")
        ax.set_ylabel(f"ε at δ = {delta:g}")
        ax.legend(loc="upper left", frameon=False)
        text = ax.text(
            0.5,
            0.5,
            "σ = 0: no privacy, ε = ∞",
            transform=ax.transAxes,
            ha="center",
            va="center",
            fontsize=14,
            visible=False,
        )
        ax.set_xlim(0.8, 1.25 * max_steps)
        ax.set_ylim(1e-2, 1e2)  # whole decades from the start; the update widens them
        ax.set_title(" ")
        pending = ax.text(
            0.98,
            0.04,
            "",
            transform=ax.transAxes,
            ha="right",
            va="bottom",
            fontsize=11,
            style="italic",
            visible=False,
        )
    artists = {"fig": fig, "ax": ax, "lines": lines, "no_privacy": text, "pending": pending}
    animate(fig, [*lines.values(), text, ax.title, pending])
    update_epsilon_steps_figure(artists, steps, curves, title=title)
    return fig, artists


def update_epsilon_steps_figure(
    artists: dict[str, Any],
    steps: np.ndarray,
    curves: Mapping[str, np.ndarray],
    *,
    title: str,
    pending: Collection[str] = (),
) -> None:
    """Move each line to new data, rescale the axes, set the title (in place).

    Methods in ``pending`` are still being computed: their lines are hidden, a note in
    the lower right corner names them ("PLD: being computed…"), and the epsilon axis is
    left where it is (the final figure, with every curve, sets it). ``curves`` still
    names every method of the figure; the values of a pending one are ignored.
    """
    ax = artists["ax"]
    curves = {
        name: np.full(len(steps), np.nan) if name in pending else np.asarray(values)
        for name, values in curves.items()
    }
    finite = [v[np.isfinite(v) & (v > 0)] for v in curves.values()]
    none = all(len(v) == 0 for v in finite) and not pending
    for name, values in curves.items():
        artists["lines"][name].set_data(steps, _finite(values))
        artists["lines"][name].set_visible(not none and name not in pending)
    artists["no_privacy"].set_visible(none)
    if not none and not pending:
        low = min(v.min() for v in finite if len(v))
        high = max(v.max() for v in finite if len(v))
        # keep the tight accountants readable: basic / advanced composition can reach 1e50
        tight = [v.max() for name, v in zip(curves, finite) if name in ("rdp", "pld") and len(v)]
        if tight:
            high = min(high, 1e3 * max(tight))
        bottom, top = ax.get_ylim()
        if not (bottom <= low and high <= top and top / bottom <= 1e3 * high / low):
            ax.set_ylim(10.0 ** np.floor(np.log10(max(low / 1.5, 1e-4))),
                        10.0 ** np.ceil(np.log10(high * 1.5)))  # fmt: skip
    # a method whose whole curve lies above the axis says so in the legend
    bottom, top = ax.get_ylim()
    for text, (name, values) in zip(ax.get_legend().texts, curves.items(), strict=True):
        seen = none or bool(np.any(np.isfinite(values) & (values <= top)))
        if name not in pending:  # a pending method keeps its label: the note names it
            text.set_text(METHOD_LABELS[name] + ("" if seen else " (ε above the axis)"))
    names = [METHOD_LABELS[name].split(" (")[0] for name in curves if name in pending]
    artists["pending"].set_text(", ".join(names) + ": being computed…")
    artists["pending"].set_visible(bool(pending))
    ax.title.set_text(title or " ")  # never empty: the frozen layout keeps room for one line


def amplification_figure(
    sample_rates: np.ndarray,
    exact: np.ndarray,
    bound: np.ndarray,
    without: float,
    *,
    title: str,
) -> tuple[Any, Any]:
    """Epsilon of one step against the sample rate q: exact (PLD), the classic bound, q = 1."""
    fig, ax = new_figure(width=6.4, height=4.0)
    with mpl.rc_context(STYLE):
        ax.plot(sample_rates, exact, color=PALETTE["green"], label="Poisson sampling, exact (PLD)")
        ax.plot(
            sample_rates,
            bound,
            color=PALETTE["black"],
            ls=":",
            label="bound log(1 + q(e^ε − 1))",
        )
        ax.axhline(without, color=PALETTE["vermillion"], ls="--", label="no sampling (q = 1)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("sample rate q")
        ax.set_ylabel("ε of one step")
        ax.set_title(title)
        ax.legend(frameon=False, loc="lower right")
    return fig, ax


def _finite(values: np.ndarray) -> np.ndarray:
    """Non-positive or infinite epsilons are not drawn on a log axis."""
    values = np.asarray(values, dtype=np.float64)
    return np.where(np.isfinite(values) & (values > 0), values, np.nan)


def rdp_conversion_figure(
    orders: np.ndarray,
    classic: np.ndarray,
    tight: np.ndarray,
    best: tuple[float, float],
    *,
    title: str,
) -> tuple[Any, Any]:
    """Epsilon against the Rényi order for two RDP-to-(ε, δ) conversions of one RDP curve.

    Args:
        orders: the Rényi orders α (x axis, log scale).
        classic: ε at each order by Mironov's (2017) conversion.
        tight: ε at each order by the conversion of Balle et al. (2020).
        best: (order, ε) of the best point of ``tight``, drawn as a dot.
        title: the figure's title.

    Returns:
        The figure and its axes.
    """
    best_order, best_epsilon = best
    fig, ax = new_figure()
    with mpl.rc_context(STYLE):
        ax.plot(orders, classic, color=PALETTE["orange"], label="Mironov 2017 conversion")
        ax.plot(orders, tight, color=PALETTE["blue"], label="Balle et al. 2020 conversion")
        ax.plot(
            [best_order],
            [best_epsilon],
            "o",
            color=PALETTE["vermillion"],
            label=f"best: ε = {best_epsilon:.3f} at α = {best_order:g}",
        )
        ax.set(xscale="log", ylim=(0.8, 4), xlabel="Rényi order α", ylabel="ε at δ = 1e-5")
        ax.set_title(title)
        ax.legend(frameon=False)
    return fig, ax


def opacus_orders_figure(
    sigmas: np.ndarray,
    opacus: np.ndarray,
    ours: np.ndarray,
    *,
    ylabel: str,
    title: str,
) -> tuple[Any, Any]:
    """Epsilon against σ from Opacus's RDP accountant (orders ≤ 63) and ours (orders ≤ 1024).

    Args:
        sigmas: the noise multipliers σ (x axis).
        opacus: ε that Opacus's RDP accountant reports at each σ.
        ours: ε of the course's RDP accountant at each σ.
        ylabel: the y-axis label, naming the setting (δ, T, q).
        title: the figure's title.

    Returns:
        The figure and its axes (ε on a log scale).
    """
    fig, ax = new_figure()
    with mpl.rc_context(STYLE):
        ax.plot(
            sigmas,
            opacus,
            "o-",
            color=METHOD_COLOURS["opacus rdp"],
            label="Opacus RDP (orders ≤ 63)",
        )
        ax.plot(
            sigmas,
            ours,
            "o-",
            color=METHOD_COLOURS["rdp"],
            label="ours / dp_accounting (orders ≤ 1024)",
        )
        ax.set(yscale="log", xlabel="noise multiplier σ", ylabel=ylabel)
        ax.set_title(title)
        ax.legend(frameon=False)
    return fig, ax


def calibration_figure(
    targets: np.ndarray,
    sigmas: Mapping[str, np.ndarray],
    *,
    xlabel: str,
    title: str,
) -> tuple[Any, Any]:
    """The noise multiplier each accountant needs to reach each target ε.

    Args:
        targets: the target epsilons (x axis, log scale, ticked at each target).
        sigmas: for each method key of ``METHOD_COLOURS`` (e.g. ``"rdp"``, ``"pld"``), the σ it
            needs at each target.
        xlabel: the x-axis label, naming the setting (δ, q, T).
        title: the figure's title.

    Returns:
        The figure and its axes.
    """
    fig, ax = new_figure()
    with mpl.rc_context(STYLE):
        for method, values in sigmas.items():
            ax.plot(
                targets,
                values,
                "o-",
                color=METHOD_COLOURS.get(method, PALETTE["black"]),
                label=method.upper(),
            )
        ax.set_xscale("log")
        ax.set_xticks(targets, [f"{t:g}" for t in targets])
        ax.minorticks_off()
        ax.set(xlabel=xlabel, ylabel="noise multiplier σ")
        ax.set_title(title)
        ax.legend(frameon=False)
    return fig, ax


def privacy_loss_density_figure(
    losses: np.ndarray,
    pmf: np.ndarray,
    epsilon: float,
    *,
    title: str,
) -> tuple[Any, Any]:
    """The density of a run's privacy loss on its uniform grid, with the run's ε marked.

    Args:
        losses: the uniform grid of privacy-loss values (nats).
        pmf: the probability of each grid value; divided by the grid spacing to draw a density.
        epsilon: the run's ε, drawn as a dashed vertical line.
        title: the figure's title.

    Returns:
        The figure and its axes (x from −0.5 to 1.5 nats).
    """
    fig, ax = new_figure()
    with mpl.rc_context(STYLE):
        ax.plot(losses, pmf / (losses[1] - losses[0]), color=METHOD_COLOURS["pld"])
        ax.axvline(epsilon, color=PALETTE["vermillion"], ls="--", label=f"ε = {epsilon:.3f}")
        ax.set(xlim=(-0.5, 1.5), xlabel="privacy loss of the whole run (nats)", ylabel="density")
        ax.set_title(title)
        ax.legend(frameon=False)
    return fig, ax


def best_bound_figure(
    steps: np.ndarray,
    epsilons: Mapping[str, np.ndarray],
    *,
    xlabel: str,
    title: str,
) -> tuple[Any, Any]:
    """Epsilon against steps from the PLD and RDP accountants and the smaller of the two.

    Args:
        steps: the step counts T (x axis, log scale).
        epsilons: ε at each step count under the keys ``"pld"``, ``"rdp"`` and ``"best"``.
        xlabel: the x-axis label, naming the setting (q, σ).
        title: the figure's title.

    Returns:
        The figure and its axes (both on log scales).
    """
    fig, ax = new_figure()
    with mpl.rc_context(STYLE):
        ax.loglog(
            steps, epsilons["pld"], "o-", color=METHOD_COLOURS["pld"], label="PLD (grid 1e-4)"
        )
        ax.loglog(steps, epsilons["rdp"], "s-", color=METHOD_COLOURS["rdp"], label="RDP")
        ax.loglog(
            steps,
            epsilons["best"],
            ":",
            color=PALETTE["black"],
            lw=3,
            label="best = min of the two",
        )
        ax.set(xlabel=xlabel, ylabel="ε at δ = 1e-5")
        ax.set_title(title)
        ax.legend(frameon=False)
    return fig, ax
