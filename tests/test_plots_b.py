"""Figures moved out of notebooks 01, 07, 08 and 10: they draw the numbers they are given."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest

from fl_dp_lab.plots.federated import label_counts_figure


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
