"""Notebook 02's learning-rate / batch-size widget, driven without a browser."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fl_dp_lab.training import History
from fl_dp_lab.widgets.training import learning_rate_explorer


def _history(loss: float, accuracy: float) -> History:
    return History(
        epoch=[1, 2, 3],
        train_loss=[2 * loss, 1.5 * loss, loss],
        test_loss=[0.0, 0.0, 0.0],
        test_accuracy=[accuracy / 2, accuracy * 0.9, accuracy],
    )


def _runs():
    runs = {}
    for i, lr in enumerate([0.01, 0.1, 1.0]):
        for j, batch in enumerate([16, 64]):
            runs[(lr, batch)] = _history(1.0 / (1 + i + j), 0.5 + 0.1 * i + 0.05 * j)
    runs[(10.0, 16)] = History([1, 2, 3], [1.0, math.inf, math.nan], [0] * 3, [0.1, 0.1, 0.1])
    runs[(10.0, 64)] = _history(0.2, 0.9)
    return runs


def test_sliders_pick_the_cached_run():
    # Prepare
    runs = _runs()
    box = learning_rate_explorer(runs)
    (lr_slider, size_slider), _output, readout = box.children[0].children, *box.children[1:]
    loss_line = box.figure.axes[0].lines[-1]
    # Execute
    lr_slider.value, size_slider.value = 1.0, 64
    # Assert
    expected = runs[(1.0, 64)]
    np.testing.assert_allclose(loss_line.get_ydata(), expected.train_loss)
    assert "lr 1, batch 64" in readout.value
    assert f"{100 * expected.test_accuracy[-1]:.1f}%" in readout.value


def test_a_diverged_run_is_reported_not_crashed():
    box = learning_rate_explorer(_runs(), lr=10.0, batch_size=16)
    readout = box.children[2]
    assert "diverged" in readout.value
    lr_slider = box.children[0].children[0]
    lr_slider.value = lr_slider.options[0][1]  # the smallest rate, the other edge
    assert "lr 0.01, batch 16" in readout.value


def test_bad_grids_are_refused():
    runs = _runs()
    del runs[(0.1, 64)]
    with pytest.raises(ValueError, match="full grid"):
        learning_rate_explorer(runs)
    with pytest.raises(TypeError, match="runs must be a non-empty mapping"):
        learning_rate_explorer({})
    with pytest.raises(ValueError, match="must be a pair of the grid"):
        learning_rate_explorer(_runs(), lr=0.5)


def test_the_figures_behind_the_lesson_draw_what_they_claim():
    # Prepare
    from fl_dp_lab.plots.training import gradient_norm_histogram, training_curves

    norms = np.array([0.001, 0.01, 0.02, 0.5, 7.0])
    # Execute
    fig, ax = gradient_norm_histogram(norms, title="t")
    curves, axes = training_curves({"run": _history(0.5, 0.9)}, title="t")
    # Assert: median and max marked; accuracy drawn in percent; log axis for norms
    median_line, max_line = ax.lines
    assert median_line.get_xdata()[0] == pytest.approx(0.02)
    assert max_line.get_xdata()[0] == pytest.approx(7.0)
    assert ax.get_xscale() == "log"
    assert sum(p.get_height() for p in ax.patches) == len(norms)
    np.testing.assert_allclose(axes[1].lines[0].get_ydata(), [45.0, 81.0, 90.0])


def test_every_slider_position_draws_its_own_run():
    # Prepare
    runs = _runs()
    box = learning_rate_explorer(runs)
    lr_slider, size_slider = box.children[0].children
    readout = box.children[2]
    loss_line, accuracy_line = box.figure.axes[0].lines[-1], box.figure.axes[1].lines[-1]
    for _, lr in lr_slider.options:
        for _, size in size_slider.options:
            # Execute
            lr_slider.value, size_slider.value = lr, size
            # Assert: the highlighted curves are that run's, in percent; never a crash
            expected = runs[(lr, size)]
            np.testing.assert_allclose(
                accuracy_line.get_ydata(), 100 * np.asarray(expected.test_accuracy)
            )
            finite = np.isfinite(expected.train_loss)
            np.testing.assert_allclose(
                loss_line.get_ydata()[finite], np.asarray(expected.train_loss)[finite]
            )
            assert f"lr {lr:g}, batch {size}" in readout.value
    # epochs are whole numbers on both panels
    assert all(float(t).is_integer() for t in box.figure.axes[0].get_xticks())
