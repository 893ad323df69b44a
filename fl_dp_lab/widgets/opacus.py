"""Notebook 07's dashboard: sigma and C sliders over a sweep of Opacus training runs.

The sweep (``fl_dp_lab.opacus_bridge.private_sweep``) is computed once in the
notebook; the sliders only pick a cell of it, so dragging is instant.
"""

from __future__ import annotations

import math
from typing import Any

import ipywidgets as widgets

from fl_dp_lab._validate import fail
from fl_dp_lab.plots.opacus import plot_sweep, update_sweep
from fl_dp_lab.widgets._output import dashboard_box, figure_view, freeze_layout, show_figure

__all__ = ["sweep_dashboard", "sweep_readout"]


def sweep_readout(
    noise_multiplier: float, max_grad_norm: float, accuracy: float, epsilon: float, delta: float
) -> str:
    """The sentence under the dashboard's figure.

    >>> sweep_readout(0.0, 1.0, 0.9, math.inf, 1e-5)
    'σ = 0, C = 1: test accuracy 90.0 %, no privacy (ε = ∞): clipping alone protects nobody'
    >>> sweep_readout(1.0, 1.0, 0.85, 2.5, 1e-5)
    'σ = 1, C = 1: test accuracy 85.0 % at (ε = 2.50, δ = 1e-05)'
    """
    head = f"σ = {noise_multiplier:g}, C = {max_grad_norm:g}: test accuracy {100 * accuracy:.1f} %"
    if math.isinf(epsilon):
        return head + ", no privacy (ε = ∞): clipping alone protects nobody"
    return head + f" at (ε = {epsilon:.2f}, δ = {delta:g})"


def sweep_dashboard(
    result: Any, *, noise_multiplier: float | None = None, max_grad_norm: float | None = None
) -> widgets.VBox:
    """Sliders over the sweep's sigma and C values, redrawing accuracy and epsilon.

    Args:
        result: an ``fl_dp_lab.opacus_bridge.SweepResult``.
        noise_multiplier, max_grad_norm: the start cell (default: the middle of each axis).

    Returns:
        ``VBox([sigma slider, C slider, readout, figure output])``.

    Raises:
        TypeError: ``result`` is not a sweep result.
        ValueError: a start value is not one of the sweep's grid values.
    """
    fields = ("noise_multipliers", "max_grad_norms", "accuracy", "epsilon", "delta")
    if not all(hasattr(result, name) for name in fields):
        fail("result", "an fl_dp_lab.opacus_bridge.SweepResult", result, TypeError)
    sigmas = [float(s) for s in result.noise_multipliers]
    norms = [float(c) for c in result.max_grad_norms]
    sigma = sigmas[len(sigmas) // 2] if noise_multiplier is None else float(noise_multiplier)
    norm = norms[len(norms) // 2] if max_grad_norm is None else float(max_grad_norm)
    fig, artists = plot_sweep(result, sigma, norm)  # validates the start cell
    freeze_layout(fig)  # shown only through the figure view below, never twice
    sigma_slider = widgets.SelectionSlider(
        options=[(f"{s:g}", s) for s in sigmas], value=sigma, description="σ"
    )
    norm_slider = widgets.SelectionSlider(
        options=[(f"{c:g}", c) for c in norms], value=norm, description="C"
    )
    readout = widgets.HTML()
    readout.add_class("fl-dp-lab-readout")
    output = figure_view()

    def show(_: Any = None) -> None:
        accuracy, epsilon = update_sweep(artists, result, sigma_slider.value, norm_slider.value)
        readout.value = sweep_readout(
            sigma_slider.value, norm_slider.value, accuracy, epsilon, result.delta
        )
        show_figure(output, fig)

    sigma_slider.observe(show, names="value")
    norm_slider.observe(show, names="value")
    show()
    return dashboard_box([sigma_slider, norm_slider, readout, output])
