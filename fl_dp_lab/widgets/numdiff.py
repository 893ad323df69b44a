"""The step-size widget of notebook 01: drag h and watch the secant and the error.

A log-scale slider sets h; the left panel draws the secant line whose slope
is the finite difference, the right panel moves a marker along the
error-against-h curve, and a readout prints the numbers. The method
(forward or central) and the precision (float64 or float32) can be switched:
the error curve then shows its own round-off floor.
"""

from __future__ import annotations

from collections.abc import Callable

import ipywidgets as widgets
import numpy as np

from fl_dp_lab._validate import check_choice, check_real
from fl_dp_lab.numdiff import central_difference, forward_difference
from fl_dp_lab.plots.numdiff import secant_explorer, update_error_curve, update_secant_explorer
from fl_dp_lab.widgets._output import dashboard_box, figure_view, freeze_layout, show_figure

__all__ = ["step_size_explorer"]

_METHODS = {"forward": forward_difference, "central": central_difference}
_DTYPES: dict[str, type[np.floating]] = {"float64": np.float64, "float32": np.float32}


def step_size_explorer(
    f: Callable[[np.ndarray], np.ndarray] = np.sin,
    df: Callable[[np.ndarray], np.ndarray] = np.cos,
    x: float = 1.0,
    *,
    h: float = 0.1,
    method: str = "central",
    dtype: str = "float64",
) -> widgets.VBox:
    """A log-scale h slider over the secant line and the error-vs-h curve.

    Args:
        f: the function (NumPy, elementwise), evaluated in the chosen dtype.
        df: its exact derivative, the reference for the error.
        x: the point where f' is estimated.
        h: the starting step, in [1e-15, 1].
        method: ``"forward"`` or ``"central"``.
        dtype: ``"float64"`` or ``"float32"``.

    Returns:
        The dashboard: controls, figure, readout. Its ``figure`` attribute is
        the matplotlib figure, for tests.
    """
    x = check_real("x", x)
    h = check_real("h", h, low=1e-15, high=1.0)
    check_choice("method", method, tuple(_METHODS))
    check_choice("dtype", dtype, tuple(_DTYPES))
    steps = np.logspace(-15, 0, 181)
    exact = float(df(np.float64(x)))

    h_slider = widgets.FloatLogSlider(
        value=h, base=10, min=-15, max=0, step=0.05, description="h", readout_format=".1e"
    )
    method_buttons = widgets.ToggleButtons(options=list(_METHODS), value=method)
    dtype_buttons = widgets.ToggleButtons(options=list(_DTYPES), value=dtype)
    readout = widgets.HTML()
    output = figure_view()
    state: dict = {}

    def estimate(step: float, method: str | None = None, dtype: str | None = None) -> float:
        point = _DTYPES[dtype or dtype_buttons.value](x)
        try:
            return float(_METHODS[method or method_buttons.value](f, point, step))
        except ValueError:  # x + h rounds to x: no estimate at all
            return float("nan")

    # every method and dtype's error curve, computed once: a toggle only swaps the line
    curves = {
        (m, d): [abs(estimate(s, m, d) - exact) for s in steps] for m in _METHODS for d in _DTYPES
    }

    def label() -> str:
        return f"{method_buttons.value} difference in {dtype_buttons.value}"

    def recompute(_: object = None) -> None:
        errors = curves[(method_buttons.value, dtype_buttons.value)]
        update_error_curve(state["artists"], errors, label())
        redraw()

    def redraw(_: object = None) -> None:
        step = h_slider.value
        slope = estimate(step)
        error = abs(slope - exact)
        nodes = (x, x + step) if method_buttons.value == "forward" else (x - step, x + step)
        update_secant_explorer(state["artists"], nodes, slope, step, error)
        readout.value = _readout(method_buttons.value, dtype_buttons.value, step, slope, exact)
        show_figure(output, state["fig"])

    box = dashboard_box([widgets.HBox([method_buttons, dtype_buttons]), h_slider, output, readout])
    state["fig"], state["artists"] = secant_explorer(
        f, x, steps, curves[(method_buttons.value, dtype_buttons.value)], error_label=label()
    )
    for errors in curves.values():  # the error axis fits all four curves from the start
        update_error_curve(state["artists"], errors, label())
    update_error_curve(
        state["artists"], curves[(method_buttons.value, dtype_buttons.value)], label()
    )
    box.figure = state["fig"]
    h_slider.observe(redraw, names="value")
    method_buttons.observe(recompute, names="value")
    dtype_buttons.observe(recompute, names="value")
    freeze_layout(state["fig"])
    redraw()
    return box


def _readout(method: str, dtype: str, h: float, slope: float, exact: float) -> str:
    if np.isnan(slope):
        return (
            f"<b>{method} difference, {dtype}</b>: h = {h:.1e} is at most half the spacing of "
            f"{dtype} numbers near x, so x + h rounds to x and the difference is 0/0: "
            "no estimate. Grow h."
        )
    error = abs(slope - exact)
    eps = float(np.finfo(_DTYPES[dtype]).eps)
    # minimise h/2 + eps/h (forward) or h^2/6 + eps/h (central), derivatives of order 1
    best = (2 * eps) ** (1 / 2) if method == "forward" else (3 * eps) ** (1 / 3)
    if best / 3 <= h <= 3 * best:
        regime = "near the best step: the two errors balance"
    elif h > best:
        regime = "truncation dominates: shrink h"
    else:
        regime = "round-off dominates: grow h"
    if error == 0:
        regime = "exact by luck of rounding"
    return (
        f"<b>{method} difference, {dtype}</b>: h = {h:.1e}, estimate {slope:.10f}, "
        f"exact {exact:.10f}, <b>error {error:.1e}</b> ({regime}; "
        f"best h ≈ {best:.0e})"
    )
