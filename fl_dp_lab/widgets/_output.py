"""Showing a dashboard's figure in its ``Output`` widget."""

from __future__ import annotations

import ipywidgets as widgets
import matplotlib.pyplot as plt
from IPython.display import Image, display

from fl_dp_lab.plots import figure_png

__all__ = ["freeze_layout", "show_figure"]


def show_figure(output: widgets.Output, fig: plt.Figure) -> None:
    """Replace what ``output`` shows with ``fig``, rendered once to PNG (see ``figure_png``)."""
    png = figure_png(fig)
    with output:
        output.clear_output(wait=True)
        display(Image(data=png, format="png"))


def freeze_layout(fig: plt.Figure) -> None:
    """Close ``fig`` in pyplot (it shows only through an ``Output``), lay it out once, keep that.

    Redraws then skip the layout solve. ``plt.close`` leaves the figure a canvas that
    cannot draw, so the layout is run with ``draw_without_rendering``.
    """
    plt.close(fig)
    fig.draw_without_rendering()
    fig.set_layout_engine("none")
