"""Figures moved out of notebooks 01, 02 and 08 into fl_dp_lab.plots draw the numbers they are given."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest

from fl_dp_lab.plots.federated import label_counts_figure
from fl_dp_lab.plots.numdiff import error_vs_step_panels, jacobian_agreement
from fl_dp_lab.plots.training import relative_error_strips


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_label_counts_figure_draws_one_panel_per_split_on_one_scale():
    # Prepare: six examples of three labels, two splits over two clients
    labels = np.array([0, 0, 1, 2, 2, 2])
    partitions = {
        "even": [np.array([0, 2, 4]), np.array([1, 3, 5])],
        "sorted": [np.array([0, 1, 2]), np.array([3, 4, 5])],
    }
    # Execute
    fig, axes = label_counts_figure(labels, partitions, 3, title="who holds what")
    # Assert: a panel per split with the client-by-label counts, one colour scale for all
    assert [ax.get_title() for ax in axes] == ["even", "sorted"]
    images = [ax.get_images()[0] for ax in axes]
    np.testing.assert_array_equal(images[0].get_array(), [[1, 1, 1], [1, 0, 2]])
    np.testing.assert_array_equal(images[1].get_array(), [[2, 1, 0], [0, 0, 3]])
    assert all(image.get_clim() == (0, 3) for image in images)
    assert axes[0].get_ylabel() == "client" and axes[1].get_xlabel() == "digit"
    assert fig._suptitle.get_text() == "who holds what"
    assert len(fig.axes) == 3  # two panels and the colour bar


def test_label_counts_figure_rejects_an_empty_mapping_and_no_labels():
    with pytest.raises(ValueError, match="partitions"):
        label_counts_figure(np.array([0]), {}, 1, title="t")
    with pytest.raises(ValueError, match="num_classes"):
        label_counts_figure(np.array([0]), {"a": [np.array([0])]}, 0, title="t")


def test_error_vs_step_panels_draws_each_panel_with_its_errors_and_guides():
    # Prepare: three step sizes, two panels; the right one has no guide
    steps = np.array([1e-3, 1e-2, 1e-1])
    panels = {
        "float64": {"central": np.array([1e-9, 1e-7, 1e-3])},
        "float32": {"central": np.array([0.0, 1e-5, 1e-3])},
    }
    guides = {"float64": {"central model": np.array([2e-9, 2e-7, 2e-3])}}
    # Execute
    fig = error_vs_step_panels(steps, panels, guides=guides, ylim=(1e-12, 1.0), title="two")
    # Assert: a panel per entry, log axes, its own lines, the shared y limits
    left, right = fig.axes
    assert (left.get_title(), right.get_title()) == ("float64", "float32")
    assert left.get_xscale() == "log" and right.get_yscale() == "log"
    np.testing.assert_allclose(left.lines[0].get_ydata(), [1e-9, 1e-7, 1e-3])
    np.testing.assert_allclose(left.lines[1].get_ydata(), [2e-9, 2e-7, 2e-3])
    assert left.lines[1].get_linestyle() == "--" and len(right.lines) == 1
    assert np.isnan(right.lines[0].get_ydata()[0])  # a zero error has no place on a log axis
    assert right.get_ylim() == pytest.approx((1e-12, 1.0))
    assert fig._suptitle.get_text() == "two"


def test_error_vs_step_panels_rejects_guides_for_a_missing_panel():
    with pytest.raises(ValueError, match="panels"):
        error_vs_step_panels([1.0], {}, title="t")
    with pytest.raises(ValueError, match="float16"):
        error_vs_step_panels(
            [1.0], {"float64": {"a": [1.0]}}, guides={"float16": {"b": [1.0]}}, title="t"
        )


def test_jacobian_agreement_draws_the_matrix_and_the_log_gap():
    # Prepare: a 2 x 2 Jacobian and a reference off by 1e-12 in one entry
    numeric = np.array([[0.25, -0.25], [-0.25, 0.5]])
    reference = numeric.copy()
    reference[0, 1] += 1e-12
    # Execute
    fig, axes = jacobian_agreement(numeric, reference)
    # Assert: the matrix on a scale symmetric about 0, the gap in log10 (-18 for none)
    left, right = axes[0].get_images()[0], axes[1].get_images()[0]
    np.testing.assert_allclose(left.get_array(), numeric)
    assert left.get_clim() == (-0.5, 0.5)
    np.testing.assert_allclose(right.get_array(), [[-18, -12], [-18, -18]], atol=1e-3)
    assert right.get_clim() == (-16, -9)
    assert len(fig.axes) == 4  # two panels and their colour bars


def test_jacobian_agreement_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="shape"):
        jacobian_agreement(np.eye(2), np.eye(3))


def test_relative_error_strips_puts_each_check_on_its_own_row_without_zeros():
    # Prepare: two checks, one with an exact coordinate (error 0)
    rows = {"right": np.array([1e-10, 0.0, 1e-9]), "bug": np.array([[0.5, 2.0]])}
    tolerances = {"tol 1e-5": 1e-5, "tol 5e-2": 5e-2}
    # Execute
    fig, ax = relative_error_strips(rows, tolerances=tolerances, title="strips")
    # Assert: dots at (error, row) with the zero left out; the tolerances as vertical lines
    right, bug = (c.get_offsets() for c in ax.collections)
    np.testing.assert_allclose(right, [[1e-10, 0], [1e-9, 0]])
    np.testing.assert_allclose(bug, [[0.5, 1], [2.0, 1]])
    assert [t.get_text() for t in ax.get_yticklabels()] == ["right", "bug"]
    assert [line.get_xdata()[0] for line in ax.lines] == [1e-5, 5e-2]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == list(tolerances)
    assert ax.get_xscale() == "log" and ax.get_title() == "strips"


def test_relative_error_strips_needs_a_row():
    with pytest.raises(ValueError, match="rows"):
        relative_error_strips({}, title="t")
