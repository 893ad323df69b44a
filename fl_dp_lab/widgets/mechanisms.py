"""Notebook 04's dashboard: a sigma slider over the Gaussian mechanism's privacy picture."""

from __future__ import annotations

import math

import ipywidgets as widgets

from fl_dp_lab._validate import check_real
from fl_dp_lab.plots import remember_views
from fl_dp_lab.plots.mechanisms import (
    gaussian_privacy_figure,
    gaussian_view,
    update_gaussian_privacy_figure,
)
from fl_dp_lab.widgets._output import dashboard_box, figure_view, freeze_layout, show_figure

__all__ = ["gaussian_dashboard", "privacy_readout"]


def privacy_readout(sigma: float, epsilon: float, delta: float) -> str:
    """The sentence under the dashboard's figure.

    >>> privacy_readout(0.0, math.inf, 1e-5)
    'σ = 0.00: no privacy: epsilon = inf (the exact answer is released)'
    >>> privacy_readout(1.0, 4.38, 1e-5)
    'σ = 1.00: the Gaussian mechanism is (4.38, 1e-05)-DP'
    """
    check_real("epsilon", epsilon, low=0.0, allow_inf=True)  # never print a negative epsilon
    if math.isinf(epsilon):
        return f"σ = {sigma:.2f}: no privacy: epsilon = inf (the exact answer is released)"
    return f"σ = {sigma:.2f}: the Gaussian mechanism is ({epsilon:.2f}, {delta:g})-DP"


def gaussian_dashboard(
    sigma: float = 1.0, *, sensitivity: float = 1.0, delta: float = 1e-5
) -> widgets.VBox:
    """A sigma slider redrawing output densities, privacy-loss law and epsilon at ``delta``.

    Args:
        sigma: the slider's start value, in [0, 5].
        sensitivity: |q(D) - q(D')| of the query (the two neighbours' answers differ by it).
        delta: the fixed delta at which epsilon is read, in (0, 1).

    Returns:
        ``VBox([slider, readout, figure output])``.
    """
    sigma = check_real("sigma", sigma, low=0.0, high=5.0)
    sensitivity = check_real("sensitivity", sensitivity, low=0.0, low_open=True)
    delta = check_real("delta", delta, low=0.0, high=1.0, low_open=True, high_open=True)
    slider = widgets.FloatSlider(
        value=sigma, min=0.0, max=5.0, step=0.05, description="σ", continuous_update=False
    )
    readout = widgets.HTML()
    readout.add_class("fl-dp-lab-readout")
    output = figure_view()
    fig, artists = gaussian_privacy_figure(sigma, sensitivity=sensitivity, delta=delta)
    freeze_layout(fig)
    # the axes change only between sigma bands (gaussian_view): draw each band's axes
    # once now, so that no slider step redraws all three panels
    stops = [round(k * slider.step, 10) for k in range(1, round(slider.max / slider.step) + 1)]
    bands = {tuple(gaussian_view(s, sensitivity=sensitivity, delta=delta).items()): s
             for s in stops}  # fmt: skip
    remember_views(
        fig, lambda value: update_gaussian_privacy_figure(artists, value), [0.0, *bands.values()]
    )

    def show(value: float) -> None:
        epsilon = update_gaussian_privacy_figure(artists, value)
        readout.value = privacy_readout(value, epsilon, delta)
        show_figure(output, fig)

    slider.observe(lambda change: show(change["new"]), names="value")
    show(sigma)
    return dashboard_box([slider, readout, output])
