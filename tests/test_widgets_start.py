"""Notebook 00's widget round trip, driven without a browser."""

from __future__ import annotations

import pytest

from fl_dp_lab.widgets import hello_slider
from fl_dp_lab.widgets.start import central_difference_readout


def test_moving_the_slider_updates_the_readout():
    box = hello_slider(value=1.0)
    slider, readout = box.children
    before = readout.value
    slider.value = 2.0
    assert readout.value != before
    assert "12.010" in readout.value  # (2.1^3 - 1.9^3) / 0.2
    slider.value = slider.min  # the edge of the slider still reads out
    assert "x = -3.00" in readout.value


def test_readout_validates_its_inputs():
    with pytest.raises(ValueError, match="h must be > 0, got 0.0"):
        central_difference_readout(1.0, h=0.0)


def test_hello_slider_refuses_a_value_off_its_range():
    with pytest.raises(ValueError, match=r"value must be in \[-3, 3\]"):
        hello_slider(5.0)
