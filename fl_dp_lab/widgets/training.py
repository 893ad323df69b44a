"""The learning-rate / batch-size widget of notebook 02, over cached training runs.

The notebook trains one short run for every (learning rate, batch size) pair
on the grid (a few seconds in all, with a progress bar) and hands them here;
the sliders only pick a run, so the widget answers instantly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import ipywidgets as widgets

from fl_dp_lab._validate import fail
from fl_dp_lab.plots.training import sweep_panels, update_sweep_panels
from fl_dp_lab.training import History
from fl_dp_lab.widgets._output import dashboard_box, figure_view, freeze_layout, show_figure

__all__ = ["learning_rate_explorer"]


def learning_rate_explorer(
    runs: Mapping[tuple[float, int], History],
    *,
    lr: float | None = None,
    batch_size: int | None = None,
) -> widgets.VBox:
    """Sliders over learning rate and batch size, showing that run's curves.

    Args:
        runs: ``(lr, batch_size) -> History`` for every pair of the grid, each
            with test accuracy recorded.
        lr, batch_size: the run shown first; ``None`` picks the middle of the grid.

    Returns:
        The dashboard: two sliders, the figure, a readout. Its ``figure``
        attribute is the matplotlib figure, for tests.
    """
    if not isinstance(runs, Mapping) or not runs:
        fail("runs", "a non-empty mapping (lr, batch_size) -> History", runs, TypeError)
    rates = sorted({key[0] for key in runs})
    sizes = sorted({key[1] for key in runs})
    missing = [(r, s) for r in rates for s in sizes if (r, s) not in runs]
    if missing:
        fail("runs", "a full grid of (lr, batch_size) pairs", f"missing {missing}")
    lr = rates[len(rates) // 2] if lr is None else lr
    batch_size = sizes[len(sizes) // 2] if batch_size is None else batch_size
    if (lr, batch_size) not in runs:
        fail(
            "(lr, batch_size)",
            f"a pair of the grid, lr in {rates}, batch_size in {sizes}",
            (lr, batch_size),
        )

    lr_slider = widgets.SelectionSlider(
        options=[(f"{r:g}", r) for r in rates], value=lr, description="learning rate"
    )
    size_slider = widgets.SelectionSlider(
        options=[(str(s), s) for s in sizes], value=batch_size, description="batch size"
    )
    for slider in (lr_slider, size_slider):
        slider.style.description_width = "initial"
    fig, artists = sweep_panels(runs)
    output, readout = figure_view(), widgets.HTML()

    def update(_: object = None) -> None:
        history = runs[(lr_slider.value, size_slider.value)]
        text = _summary(lr_slider.value, size_slider.value, history)
        update_sweep_panels(artists, history, text)
        readout.value = text
        show_figure(output, fig)

    lr_slider.observe(update, names="value")
    size_slider.observe(update, names="value")
    box = dashboard_box([widgets.HBox([lr_slider, size_slider]), output, readout])
    box.figure = fig
    freeze_layout(fig)
    update()
    return box


def _summary(lr: float, batch_size: int, history: History) -> str:
    loss = history.train_loss[-1]
    if not math.isfinite(loss):
        return f"lr {lr:g}, batch {batch_size}: diverged (the loss overflowed); lower the rate"
    accuracy = 100 * history.test_accuracy[-1]
    return (
        f"lr {lr:g}, batch {batch_size}: after {history.epoch[-1]} epochs, "
        f"training loss {loss:.3f}, test accuracy {accuracy:.1f}%"
    )
