"""Thin ipywidgets dashboards, one submodule per topic.

A dashboard only wires sliders to pure functions of ``fl_dp_lab`` and to
figures of ``fl_dp_lab.plots``; it computes nothing itself. Figures update in
place (``line.set_data`` and friends on the artists a figure function returned),
and the dashboard's figure view (an ``Image`` widget) then swaps in the figure
as one image drawn at its fixed size (``fl_dp_lab.plots.figure_jpeg``; Jupyter's
own display would draw it twice), so dragging feels live. When a slider reaches an edge (sigma = 0,
epsilon = inf) the dashboard shows what that means instead of failing.

Every dashboard function returns the top-level widget and accepts keyword
values for its sliders, so a test can build it and call its update with the
slider's edge values without a browser.
"""

from __future__ import annotations

__all__ = ["hello_slider"]

from fl_dp_lab.widgets.start import hello_slider
