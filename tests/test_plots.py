"""The shared figure style: projector-sized text, and figures that show in Jupyter."""

from __future__ import annotations

import matplotlib as mpl
import nbclient
import nbformat
import pytest

from fl_dp_lab.plots import figure_png, new_figure


def test_new_figure_applies_the_style_only_to_its_own_figure():
    # Prepare: the default font size outside any course figure
    before = mpl.rcParams["font.size"]
    # Execute
    fig, ax = new_figure(2, 1, width=3.0, height=2.0)
    # Assert: two panels of the asked size; the global settings untouched
    assert len(ax) == 2
    assert tuple(fig.get_size_inches()) == pytest.approx((3.0, 4.0))
    assert mpl.rcParams["font.size"] == before


def test_figures_after_a_course_figure_still_show_in_a_kernel():
    # Prepare: the first figure of a session comes from new_figure, the next from pyplot alone
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell("from fl_dp_lab.plots import new_figure\nfig, ax = new_figure()"),
        nbformat.v4.new_code_cell("import matplotlib.pyplot as plt\nfig2, ax2 = plt.subplots()"),
    ]
    # Execute: in a fresh kernel, as a learner's JupyterLab would
    nbclient.NotebookClient(notebook, kernel_name="python3", timeout=120).execute()
    # Assert: both cells display their figure without an explicit plt.show()
    for cell in notebook.cells:
        images = [o for o in cell.outputs if "image/png" in o.get("data", {})]
        assert len(images) == 1, cell.source


def test_figure_png_is_the_whole_figure_at_its_own_size_and_dpi():
    # Prepare: a 3 x 2 inch figure at 100 dpi
    fig, _ = new_figure(width=3.0, height=2.0)
    fig.set_dpi(100)
    # Execute
    png = figure_png(fig)
    # Assert: a PNG of 300 x 200 pixels (IHDR), not cropped to a tight bounding box
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert (width, height) == (300, 200)


def test_figure_png_refuses_what_is_not_a_figure():
    with pytest.raises(TypeError, match="fig must be a matplotlib Figure, got str"):
        figure_png("figure")


def test_figure_jpeg_sends_every_dashboard_frame_at_the_one_course_quality():
    from io import BytesIO

    from PIL import Image

    from fl_dp_lab.plots import JPEG_QUALITY, figure_jpeg

    # Prepare: a figure with text and a coloured line (a fixed layout: each frame the same)
    fig, ax = new_figure(width=3.0, height=2.0, layout="none")
    ax.plot([0, 1], [0, 1])
    ax.set_title("a title")
    # Execute
    default, explicit = figure_jpeg(fig), figure_jpeg(fig, quality=JPEG_QUALITY)
    best = figure_jpeg(fig, quality=95)
    # Assert: the default is the course's setting, smaller than a near-lossless frame
    assert default == explicit and len(default) < len(best)
    assert Image.open(BytesIO(default)).size == (300, 200)
    for bad in (0, 101, 80.0, True):
        with pytest.raises(ValueError, match="quality must be an integer in"):
            figure_jpeg(fig, quality=bad)


def _frame(fig, *, fresh: bool = False):
    """The pixels a dashboard would send; ``fresh``: the figure drawn from scratch."""
    import numpy as np

    from fl_dp_lab.plots import _BLITS, _render

    blit = _BLITS[fig]
    views = blit.views
    if fresh:
        blit.background, blit.views = None, None
    try:
        return np.asarray(_render(fig))
    finally:
        blit.views = views


def test_remembered_views_are_pasted_and_equal_fresh_drawings():
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from fl_dp_lab.plots import _BLITS, animate, remember_views

    # Arrange: a panel whose y-axis follows its line in two views, a legend shown or not
    fig, ax = new_figure(width=3.0, height=2.0, layout="none")
    (line,) = ax.plot([0, 1], [0, 1], label="line")
    ax.plot([0, 1], [0.5, 0.5], label="static")
    legend = ax.legend()
    animate(fig, [line])

    def show(top: float) -> None:
        ax.set_ylim(0, 10.0 if top > 5 else 5.0)
        line.set_ydata([0, top])
        legend.set_visible(top != 4)

    remember_views(fig, show, [1, 4, 8])
    assert len(_BLITS[fig].views) == 3
    draws = []
    original = FigureCanvasAgg.draw
    FigureCanvasAgg.draw = lambda canvas: draws.append(1) or original(canvas)
    try:
        # Act: move between the views, as a slider would
        frames = {}
        for top in (2, 9, 4, 3, 7):
            show(top)
            frames[top] = _frame(fig)
    finally:
        FigureCanvasAgg.draw = original
    # Assert: no drawing of the whole figure; every frame the figure drawn from scratch
    assert draws == []
    for top, frame in frames.items():
        show(top)
        assert np.array_equal(frame, _frame(fig, fresh=True)), top
    # a view not remembered is drawn (and kept) like any other
    show(20.0)
    ax.set_ylim(0, 30)
    assert np.array_equal(_frame(fig), _frame(fig, fresh=True))


def test_a_panel_whose_axis_moves_is_redrawn_alone_and_the_frame_equals_a_fresh_drawing():
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from fl_dp_lab.plots import animate

    # Arrange: two panels; the right one's limits follow its line
    fig, (left, right) = new_figure(1, 2, width=3.0, height=2.5)
    left.plot([0, 1], [0, 1])
    (line,) = right.plot([0, 1], [0, 1])
    animate(fig, [line])
    fig.draw_without_rendering()
    fig.set_layout_engine("none")
    _frame(fig)
    draws = []
    original = FigureCanvasAgg.draw
    FigureCanvasAgg.draw = lambda canvas: draws.append(1) or original(canvas)
    try:
        frames = []
        for top in (2.0, 4.0, 3.0, 6.0):  # tick labels no wider than the first ones
            # Act
            right.set_ylim(0, top)
            line.set_ydata([0, top])
            frames.append(_frame(fig))
            # Assert: the panel's new drawing is the figure drawn from scratch, pixel for pixel
            assert np.array_equal(frames[-1], _frame(fig, fresh=True)), top
        # only the right panel was drawn again, never the whole figure
        assert draws == [1, 1, 1, 1]  # the fresh drawings above
    finally:
        FigureCanvasAgg.draw = original
    # a change outside the axes (a text of the figure's own) draws the whole figure
    fig.text(0.5, 0.5, "over both panels")
    right.set_ylim(0, 5)
    assert np.array_equal(_frame(fig), _frame(fig, fresh=True))
    assert "over both" in fig.texts[0].get_text()


def test_remember_views_needs_moving_artists_and_a_fixed_layout():
    from fl_dp_lab.plots import animate, remember_views

    fig, ax = new_figure(width=2.0, height=1.0, layout="none")
    with pytest.raises(ValueError, match="call animate"):
        remember_views(fig, lambda value: None, [1])
    laid_out, ax = new_figure(width=2.0, height=1.0)  # constrained layout moves the axes
    (line,) = ax.plot([0, 1], [0, 1])
    animate(laid_out, [line])
    with pytest.raises(ValueError, match="fixed layout, got a ConstrainedLayoutEngine"):
        remember_views(laid_out, lambda value: None, [1])


def test_client_drift_figure_draws_each_measure_against_local_epochs():
    import matplotlib.pyplot as plt

    from fl_dp_lab.plots.federated import client_drift_figure

    # Prepare
    epochs = [1, 3, 10, 30]
    spread = {"IID": [0.5, 0.4, 0.4, 0.5], "2 shards each": [3.9, 3.2, 2.8, 2.6]}
    bias = [0.65, 0.77, 0.82, 0.84]
    # Execute
    fig, artists = client_drift_figure(epochs, spread, bias)
    # Assert: one line per split on the left, the bias on the right, both over E on a log axis
    for name, values in spread.items():
        assert list(artists["spread"][name].get_xdata()) == epochs
        assert list(artists["spread"][name].get_ydata()) == values
    assert list(artists["bias"].get_ydata()) == bias
    for ax in (artists["spread_ax"], artists["bias_ax"]):
        assert ax.get_xscale() == "log" and ax.get_xlabel() == "local epochs E"
        assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "3", "10", "30"]
    assert artists["bias_ax"].get_ylim() == (0.0, 1.0)
    assert "grows" in artists["bias_ax"].get_title() and "falls" in artists["spread_ax"].get_title()
    plt.close(fig)


def test_fedavg_curves_styles_replace_the_default_look_of_a_run():
    import matplotlib.pyplot as plt

    from fl_dp_lab.federated import FederatedHistory
    from fl_dp_lab.plots import PALETTE
    from fl_dp_lab.plots.federated import fedavg_curves

    # Prepare
    run = FederatedHistory(round=[1, 2], loss=[1.0, 0.5], accuracy=[0.5, 0.8], clients=[2, 2])
    # Execute
    fig, ax = fedavg_curves(
        {"IID, E = 1": run, "IID, E = 10": run},
        title="t",
        styles={"IID, E = 10": {"color": PALETTE["blue"], "ls": "--"}},
    )
    # Assert: the styled run takes its settings, the other keeps the default cycle
    default, styled = ax.lines
    assert styled.get_linestyle() == "--" and styled.get_color() == PALETTE["blue"]
    assert default.get_linestyle() == "-" and default.get_color() == PALETTE["blue"]
    assert list(styled.get_ydata()) == [50.0, 80.0]
    plt.close(fig)
