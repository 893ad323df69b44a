"""Figures of notebook 01: error against step size, and the secant-line explorer.

Each function builds a figure in the course style and returns it with the
artists a widget updates in place.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import matplotlib.pyplot as plt
import numpy as np

from fl_dp_lab.plots import PALETTE, animate, new_figure

__all__ = [
    "error_vs_step",
    "error_vs_step_panels",
    "jacobian_agreement",
    "secant_explorer",
    "update_error_curve",
    "update_secant_explorer",
]

_COLOURS = [PALETTE[c] for c in ("blue", "orange", "green", "vermillion", "purple", "sky")]


def error_vs_step(
    steps: Any,
    errors: Mapping[str, Any],
    *,
    title: str,
    ax: plt.Axes | None = None,
    guides: Mapping[str, Any] | None = None,
) -> tuple[plt.Figure, plt.Axes]:
    """Log-log plot of absolute error against step size h, one line per method.

    Args:
        steps: the step sizes h.
        errors: label -> absolute errors at ``steps`` (zeros are drawn at the
            bottom of the axis, since log(0) has no place on it).
        title: the figure's title (state the finding).
        ax: draw into this axes instead of a new figure.
        guides: label -> values at ``steps`` drawn dashed (an error model).
    """
    if ax is None:
        fig, ax = new_figure(width=7.0, height=4.5)
    else:
        fig = cast(plt.Figure, ax.figure)
    steps = np.asarray(steps, dtype=float)
    for colour, (label, values) in zip(_COLOURS, errors.items(), strict=False):
        values = np.asarray(values, dtype=float)
        ax.loglog(steps, np.where(values > 0, values, np.nan), color=colour, label=label)
    for colour, (label, values) in zip(_COLOURS, (guides or {}).items(), strict=False):
        ax.loglog(steps, values, "--", color=colour, alpha=0.7, linewidth=1.5, label=label)
    ax.set_xlabel("step size h")
    ax.set_ylabel("absolute error |estimate − f′(x)|")
    ax.set_title(title)
    ax.legend(loc="best")
    return fig, ax


def secant_explorer(
    f: Callable[[np.ndarray], np.ndarray],
    x: float,
    steps: Any,
    errors: Any,
    *,
    window: float = 1.5,
    error_label: str = "central difference",
) -> tuple[plt.Figure, dict[str, Any]]:
    """The two panels of the step-size widget: the secant on the curve, the error curve.

    Left: f near x, the tangent-to-be-estimated point and the secant through
    x - h and x + h. Right: error against h (log-log) with a marker at the
    current h. Returns ``(fig, artists)``; pass ``artists`` to
    ``update_secant_explorer``. The figure is closed in pyplot so that only
    the widget shows it.
    """
    fig, (left, right) = new_figure(1, 2, width=5.6, height=4.2)
    t = np.linspace(x - window, x + window, 300)
    left.plot(t, f(t), color=PALETTE["black"], label="f(x)")
    (secant,) = left.plot([], [], color=PALETTE["orange"], label="secant through x ± h")
    (points,) = left.plot([], [], "o", color=PALETTE["orange"], markersize=8)
    left.plot([x], [f(np.asarray(x))], "o", color=PALETTE["blue"], markersize=6, label="x")
    left.set(xlabel="x", ylabel="f(x)", xlim=(t[0], t[-1]))
    left.set_ylim(left.get_ylim())  # freeze: the secant must not rescale the view
    left.legend(loc="lower right")  # sin near x = 1 leaves that corner empty, away from x
    steps, errors = np.asarray(steps, dtype=float), np.asarray(errors, dtype=float)
    (curve,) = right.loglog(steps, np.where(errors > 0, errors, np.nan), color=PALETTE["blue"])
    (marker,) = right.loglog([], [], "o", color=PALETTE["vermillion"], markersize=10)
    right.set(xlabel="step size h", ylabel="absolute error", title=f"error of the {error_label}")
    right.set_xlim(steps[0], steps[-1])
    plt.close(fig)
    left.set_title(" ")
    animate(fig, [secant, points, marker, curve, left.title, right.title])
    return fig, {
        "secant": secant, "points": points, "marker": marker, "curve": curve, "left": left,
        "right": right, "f": f,
    }  # fmt: skip


def update_error_curve(artists: dict[str, Any], errors: Any, error_label: str) -> None:
    """Show another method's or dtype's error curve (same steps) in the right panel.

    The y-axis grows to the new curve's range (whole decades) if it does not fit.
    """
    right = artists["right"]
    errors = np.asarray(errors, dtype=float)
    positive = errors[np.isfinite(errors) & (errors > 0)]
    artists["curve"].set_ydata(np.where(errors > 0, errors, np.nan))
    right.title.set_text(f"error of the {error_label}")
    if positive.size:
        low, high = right.get_ylim()
        new = (min(low, 10.0 ** np.floor(np.log10(positive.min()))),
               max(high, 10.0 ** np.ceil(np.log10(positive.max()))))  # fmt: skip
        if new != (low, high):
            right.set_ylim(new)


def update_secant_explorer(
    artists: dict[str, Any], nodes: Sequence[float], slope: float, h: float, error: float
) -> None:
    """Draw the secant through the points at ``nodes`` with ``slope``; move the marker to h."""
    f, left = artists["f"], artists["left"]
    points = np.asarray(nodes, dtype=float)
    values = f(points)
    ends = np.array(left.get_xlim())
    artists["secant"].set_data(ends, values[0] + slope * (ends - points[0]))
    artists["points"].set_data(points, values)
    artists["marker"].set_data([h], [error if error > 0 else np.nan])
    left.title.set_text(f"h = {h:.1e}: secant slope {slope:.8f}")


def error_vs_step_panels(
    steps: Any,
    panels: Mapping[str, Mapping[str, Any]],
    *,
    title: str,
    guides: Mapping[str, Mapping[str, Any]] | None = None,
    ylim: tuple[float, float] | None = None,
) -> plt.Figure:
    """Side-by-side ``error_vs_step`` panels that share the y axis, e.g. one per precision.

    Args:
        steps: the step sizes h, the same for every panel.
        panels: panel title -> (label -> absolute errors at ``steps``), one panel each,
            left to right.
        title: the figure's title (state the finding).
        guides: panel title -> (label -> values at ``steps`` drawn dashed, an error model).
        ylim: the shared y limits; matplotlib's choice if None.

    Returns:
        The figure, with one axes per entry of ``panels``.
    """
    if not panels:
        raise ValueError("panels must name at least one panel, got an empty mapping")
    unknown = set(guides or {}) - set(panels)
    if unknown:
        raise ValueError(f"guides names panels {sorted(unknown)} that are not in panels")
    fig, axes = new_figure(1, len(panels), width=6.0, height=4.5, sharey=True, squeeze=False)
    for ax, (panel, errors) in zip(axes[0], panels.items(), strict=True):
        error_vs_step(steps, errors, guides=(guides or {}).get(panel), title=panel, ax=ax)
        if ylim is not None:
            ax.set_ylim(*ylim)
    fig.suptitle(title)
    return fig


def jacobian_agreement(
    numeric: Any,
    reference: Any,
    *,
    value_label: str = "∂ softmaxᵢ / ∂ zⱼ",
    titles: tuple[str, str] = (
        "softmax Jacobian by central differences",
        "agreement with autograd",
    ),
) -> tuple[plt.Figure, np.ndarray]:
    """A Jacobian as a heat map, next to the log10 gap between it and a reference.

    Args:
        numeric: the Jacobian estimated by finite differences, shape (outputs, inputs).
        reference: the same Jacobian computed another way (e.g. autograd), same shape.
        value_label: the colour bar label of the left panel.
        titles: the two panels' titles.

    Returns:
        ``(fig, axes)``. Left: ``numeric`` on a diverging scale symmetric about 0.
        Right: log10 |numeric - reference| on a fixed scale from -16 to -9 (a gap of
        exactly 0 is drawn at -18).
    """
    numeric = np.asarray(numeric, dtype=float)
    reference = np.asarray(reference, dtype=float)
    if numeric.ndim != 2 or numeric.shape != reference.shape:
        raise ValueError(
            f"numeric and reference must be matrices of one shape, got {numeric.shape} "
            f"and {reference.shape}"
        )
    fig, axes = new_figure(1, 2, width=5.0, height=4.2)
    limit = float(np.abs(numeric).max())
    image = axes[0].imshow(numeric, cmap="RdBu_r", vmin=-limit, vmax=limit)
    fig.colorbar(image, ax=axes[0], label=value_label)
    gap = np.log10(np.abs(numeric - reference) + 1e-18)
    fig.colorbar(
        axes[1].imshow(gap, cmap="viridis", vmin=-16, vmax=-9),
        ax=axes[1],
        label="log₁₀ |numeric − autograd|",
    )
    for ax, title in zip(axes, titles, strict=True):
        ax.set(xlabel="input j (logit)", ylabel="output i (probability)", title=title)
        ax.grid(False)
    return fig, axes
