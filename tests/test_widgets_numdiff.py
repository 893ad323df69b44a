"""Notebook 01's step-size widget, driven without a browser."""

from __future__ import annotations

import numpy as np
import pytest

from fl_dp_lab.widgets.numdiff import step_size_explorer


def _parts(box):
    buttons, slider, _output, readout = box.children
    method, dtype = buttons.children
    return method, dtype, slider, readout


def test_dragging_h_moves_the_marker_and_updates_the_error():
    # Prepare
    box = step_size_explorer(np.sin, np.cos, 1.0, h=0.1)
    method, dtype, slider, readout = _parts(box)
    marker = box.figure.axes[1].lines[-1]
    secant = box.figure.axes[0].lines[1]
    # Execute
    slider.value = 1e-5
    # Assert: the marker sits at (h, |central difference - cos(1)|)
    h, error = marker.get_xdata()[0], marker.get_ydata()[0]
    expected = abs((np.sin(1 + h) - np.sin(1 - h)) / (2 * h) - np.cos(1.0))
    assert h == pytest.approx(1e-5)
    assert error == pytest.approx(expected, rel=0.2)  # the step is made representable
    assert f"error {error:.1e}" in readout.value
    xs, ys = secant.get_data()
    slope = (ys[1] - ys[0]) / (xs[1] - xs[0])
    assert slope == pytest.approx(np.cos(1.0), rel=1e-6)
    assert "near the best step" in readout.value  # (3 eps)^(1/3) = 8.7e-6 in float64
    slider.value = 1e-3
    assert "truncation dominates" in readout.value


def test_switching_method_and_precision_rebuilds_the_error_curve():
    box = step_size_explorer(h=1e-3)
    method, dtype, slider, readout = _parts(box)
    curve64 = box.figure.axes[1].lines[0].get_ydata().copy()
    dtype.value = "float32"
    curve32 = box.figure.axes[1].lines[0].get_ydata()
    # float32's round-off floor is far above float64's
    assert np.nanmin(curve32) > 100 * np.nanmin(curve64)
    method.value = "forward"
    assert "forward difference, float32" in readout.value
    assert "best h ≈ 5e-04" in readout.value  # (2 eps32)^(1/2)


def test_slider_edges_never_crash():
    box = step_size_explorer()
    method, dtype, slider, readout = _parts(box)
    slider.value = 10**slider.max  # h = 1 (the log slider's min and max are exponents)
    assert "truncation dominates" in readout.value
    slider.value = 10**slider.min  # h = 1e-15: round-off dominates in float64
    assert "round-off dominates" in readout.value
    dtype.value = "float32"  # 1 + 1e-15 == 1 in float32: no estimate at all
    assert "rounds to x" in readout.value
    method.value = "forward"
    assert "rounds to x" in readout.value


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="method must be one of"):
        step_size_explorer(method="backward")
    with pytest.raises(ValueError, match="h must be in"):
        step_size_explorer(h=0.0)


def test_error_plot_leaves_exact_zeros_off_the_log_axis():
    from fl_dp_lab.plots.numdiff import error_vs_step

    fig, ax = error_vs_step([1e-3, 1e-2, 1e-1], {"m": [0.0, 1e-4, 1e-2]}, title="t")
    ys = ax.lines[0].get_ydata()
    assert np.isnan(ys[0]) and ys[2] == pytest.approx(1e-2)
    assert ax.get_xscale() == ax.get_yscale() == "log"
