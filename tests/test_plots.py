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
