"""Showing a dashboard's figure, and the box that marks a dashboard on the page."""

from __future__ import annotations

from collections.abc import Sequence

import ipywidgets as widgets
import matplotlib.pyplot as plt

from fl_dp_lab.plots import figure_jpeg

__all__ = ["dashboard_box", "figure_view", "freeze_layout", "show_figure"]


def figure_view() -> widgets.Image:
    """The widget a dashboard's figure is shown in (CSS class ``fl-dp-lab-figure``).

    An ``Image`` whose JPEG bytes are swapped on each redraw: the browser replaces one
    picture in place, with no output area cleared and rebuilt (no flicker, no jump).
    It shrinks to the notebook's width and keeps its aspect ratio.
    """
    view = widgets.Image(format="jpeg", layout=widgets.Layout(max_width="100%", height="auto"))
    view.add_class("fl-dp-lab-figure")
    return view


def dashboard_box(children: Sequence[widgets.Widget]) -> widgets.VBox:
    """A dashboard's top-level box (CSS class ``fl-dp-lab-dashboard``, for the browser tour)."""
    box = widgets.VBox(list(children))
    box.add_class("fl-dp-lab-dashboard")
    return box


def show_figure(output: widgets.Image, fig: plt.Figure) -> None:
    """Show ``fig`` in ``output`` (a ``figure_view``), rendered once (``figure_jpeg``)."""
    output.value = figure_jpeg(fig)


def freeze_layout(fig: plt.Figure) -> None:
    """Close ``fig`` in pyplot (it shows only in a ``figure_view``), lay it out once, keep that.

    Redraws then skip the layout solve, and each axes' titles stay where this layout put
    them (matplotlib would otherwise measure the tick labels again on each draw to place
    them; axis labels still follow their tick labels). ``plt.close`` leaves the figure a
    canvas that cannot draw, so the layout is run with ``draw_without_rendering``.
    """
    plt.close(fig)
    fig.draw_without_rendering()
    fig.set_layout_engine("none")
    for ax in fig.axes:
        # An explicit y is matplotlib's public way to stop placing an axes' titles on each
        # draw; the title's own font, colour and alignment are passed back, as set_title
        # would otherwise reset them to the current rcParams.
        title = ax.title
        ax.set_title(
            title.get_text(),
            y=title.get_position()[1],
            fontsize=title.get_fontsize(),
            fontweight=title.get_fontweight(),
            color=title.get_color(),
            verticalalignment=title.get_verticalalignment(),
            horizontalalignment=title.get_horizontalalignment(),
        )
