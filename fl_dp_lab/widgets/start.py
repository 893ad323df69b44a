"""The environment-check widget of notebook 00: a slider round trip through the kernel."""

from __future__ import annotations

import ipywidgets as widgets

from fl_dp_lab._validate import check_real

__all__ = ["central_difference_readout", "hello_slider"]


def central_difference_readout(x: float, h: float = 0.1) -> str:
    """The text the notebook-00 widget shows: f(x) = x**3 and its central difference.

    >>> central_difference_readout(2.0)
    'x = 2.00: f(x) = x³ = 8.000, central difference with h = 0.1 gives 12.010 (exact 3x² = 12.000)'
    """
    x = check_real("x", x)
    h = check_real("h", h, low=0.0, low_open=True)
    slope = ((x + h) ** 3 - (x - h) ** 3) / (2 * h)
    return (
        f"x = {x:.2f}: f(x) = x³ = {x**3:.3f}, central difference with h = {h:g} "
        f"gives {slope:.3f} (exact 3x² = {3 * x * x:.3f})"
    )


def hello_slider(value: float = 1.0) -> widgets.VBox:
    """A slider whose value goes to the kernel and back as text.

    If moving the slider changes the text below it, ipywidgets works in this
    JupyterLab: the browser sent the value to Python and Python answered.
    ``value`` must lie on the slider, in [-3, 3].
    """
    value = check_real("value", value, low=-3.0, high=3.0)
    slider = widgets.FloatSlider(
        value=value, min=-3.0, max=3.0, step=0.25, description="x", continuous_update=True
    )
    readout = widgets.HTML(central_difference_readout(value))
    readout.add_class("fl-dp-lab-readout")

    def update(change: dict) -> None:
        readout.value = central_difference_readout(change["new"])

    slider.observe(update, names="value")
    return widgets.VBox([slider, readout])
