"""Notebook 05b's accounting dashboard, driven without a browser."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pytest

from fl_dp_lab.accounting import epsilon, epsilon_curves
from fl_dp_lab.plots.accounting import epsilon_steps_figure, update_epsilon_steps_figure
from fl_dp_lab.widgets.accounting import accounting_dashboard


def test_dragging_the_sliders_redraws_epsilon_and_reaches_no_privacy():
    # Prepare
    box = accounting_dashboard(noise_multiplier=4.0, sample_rate=0.01, steps=1000, delta=1e-5)
    sigma, q, steps, readout, _ = box.children
    expected = epsilon(noise_multiplier=4.0, sample_rate=0.01, steps=1000, delta=1e-5)
    assert f"{expected:.3g} (PLD)" in readout.value
    # Execute / Assert: each slider changes the readout to the new accounting
    sigma.value = 2.0
    expected = epsilon(noise_multiplier=2.0, sample_rate=0.01, steps=1000, delta=1e-5)
    assert f"{expected:.3g} (PLD)" in readout.value
    q.value = 1.0  # edge: no subsampling
    steps.value = 10.0  # edge: the fewest steps
    expected = epsilon(noise_multiplier=2.0, sample_rate=1.0, steps=10, delta=1e-5)
    assert "T = 10," in readout.value and f"{expected:.3g} (PLD)" in readout.value
    sigma.value = 0.0  # edge: no noise at all
    assert "no privacy" in readout.value and "∞" in readout.value
    sigma.value = sigma.step  # edge: the weakest noise that is not zero, epsilon in the hundreds
    expected = epsilon(noise_multiplier=0.1, sample_rate=1.0, steps=10, delta=1e-5)
    assert 100 < expected < math.inf and f"{expected:.3g} (PLD)" in readout.value
    sigma.value = sigma.max
    q.value = 10.0**q.min  # log sliders keep their range as exponents
    steps.value = 10.0**steps.max
    expected = epsilon(noise_multiplier=10.0, sample_rate=1e-4, steps=100_000, delta=1e-5)
    assert f"{expected:.3g} (PLD)" in readout.value


def test_figure_lines_follow_the_curves_and_hide_when_epsilon_is_infinite():
    grid, curves = epsilon_curves(
        noise_multiplier=3.0, sample_rate=0.02, steps=500, delta=1e-5, points=4
    )
    fig, artists = epsilon_steps_figure(grid, curves, title="t", delta=1e-5)
    x, y = artists["lines"]["pld"].get_data()
    np.testing.assert_allclose(y, curves["pld"])
    assert np.all(curves["basic"] >= curves["pld"]) and np.all(curves["rdp"] >= curves["pld"])
    grid0, zero = epsilon_curves(
        noise_multiplier=0.0, sample_rate=0.02, steps=500, delta=1e-5, points=4
    )
    assert all(np.all(np.isinf(v)) for v in zero.values())
    update_epsilon_steps_figure(artists, grid0, zero, title="none")
    assert artists["no_privacy"].get_visible()
    assert not artists["lines"]["rdp"].get_visible()
    plt.close(fig)


def test_the_y_axis_stays_on_the_tight_accountants_when_composition_explodes():
    # sigma = 0.1, q = 1 over 1e5 steps: advanced composition reaches about 1e56
    grid, curves = epsilon_curves(
        noise_multiplier=0.1, sample_rate=1.0, steps=100_000, delta=1e-5, points=4
    )
    assert np.nanmax(curves["advanced"]) > 1e40
    fig, artists = epsilon_steps_figure(grid, curves, title="t", delta=1e-5)
    top = artists["ax"].get_ylim()[1]
    tight = max(np.max(curves["rdp"]), np.max(curves["pld"]))
    # 1e3 x the tight curves, times 1.5, rounded up to a whole decade
    assert tight < top <= 1.5e4 * tight
    # and the legend says that composition's curve is above the axis
    labels = [t.get_text() for t in artists["ax"].get_legend().texts]
    assert "advanced (DRV 2010) (ε above the axis)" in labels
    assert "RDP" in labels
    plt.close(fig)


def test_the_epsilon_axis_keeps_its_decades_while_the_curves_fit():
    # Arrange: a figure at sigma = 1; then a slightly larger sigma (lower curves, same decades)
    grid, curves = epsilon_curves(noise_multiplier=1.0, sample_rate=0.01, steps=1000,
                                  delta=1e-5, points=4)  # fmt: skip
    fig, artists = epsilon_steps_figure(grid, curves, title="t", delta=1e-5)
    before = artists["ax"].get_ylim()
    grid2, curves2 = epsilon_curves(noise_multiplier=1.05, sample_rate=0.01, steps=1000,
                                    delta=1e-5, points=4)  # fmt: skip
    # Act
    update_epsilon_steps_figure(artists, grid2, curves2, title="t2")
    # Assert: the axis did not move (only the lines did), and its limits are whole decades
    assert artists["ax"].get_ylim() == before
    assert np.allclose(np.log10(before), np.round(np.log10(before)))
    assert artists["lines"]["rdp"].get_ydata()[-1] == pytest.approx(curves2["rdp"][-1])
    plt.close(fig)


def test_dashboard_opens_at_sigma_zero_and_says_no_privacy():
    box = accounting_dashboard(noise_multiplier=0.0)
    readout = box.children[3]  # sigma, q, steps sliders, then the readout, then the figure
    assert "no privacy" in readout.value or "ε = ∞" in readout.value


def test_dashboard_validates_its_inputs():
    with pytest.raises(ValueError, match="noise_multiplier must be in"):
        accounting_dashboard(noise_multiplier=11.0)
    with pytest.raises(ValueError, match="steps must be an integer <= 100000"):
        accounting_dashboard(steps=10**6)
    assert math.isinf(epsilon(noise_multiplier=0.0, sample_rate=0.5, steps=1, delta=1e-5))


def test_dashboard_figure_keeps_the_constrained_layout_it_was_given(monkeypatch):
    # Prepare: catch the figure the dashboard shows
    shown = []
    monkeypatch.setattr(
        "fl_dp_lab.widgets.accounting.show_figure", lambda output, fig: shown.append(fig)
    )
    # Execute
    accounting_dashboard(noise_multiplier=4.0, sample_rate=0.01, steps=1000, delta=1e-5)
    # Assert: constrained layout ran before the layout was frozen (default margins otherwise)
    (ax,) = shown[-1].axes
    assert ax.get_position().x0 < plt.rcParams["figure.subplot.left"] - 0.01
    assert ax.get_position().x1 > plt.rcParams["figure.subplot.right"] + 0.01


def _shown_states(monkeypatch):
    """Record, for each image the dashboard sends, its PLD line, legend labels and title."""
    states = []

    def record(output, fig):
        (ax,) = fig.axes
        pld = next(line for line in ax.get_lines() if line.get_label() == "PLD")
        note = next(t for t in ax.texts if t.get_text().endswith("being computed…"))
        states.append({
            "note": note.get_text() if note.get_visible() else "",
            "pld_visible": pld.get_visible(),
            "pld": np.array(pld.get_ydata(), dtype=float),
            "labels": [t.get_text() for t in ax.get_legend().texts],
            "title": ax.title.get_text(),
        })  # fmt: skip

    monkeypatch.setattr("fl_dp_lab.widgets.accounting.show_figure", record)
    return states


def test_at_a_new_stop_rdp_comes_first_labelled_then_the_accountants_epsilon(monkeypatch):
    # Prepare: a dashboard, then a sigma stop never computed before (small sigma: slow PLD)
    states = _shown_states(monkeypatch)
    box = accounting_dashboard(noise_multiplier=2.0, sample_rate=0.1, steps=100, delta=1e-5)
    sigma, q, steps, readout, _ = box.children
    states.clear()
    # Execute
    sigma.value = 0.3
    # Assert: two images; the first hides PLD and says so, RDP's epsilon is the accountant's
    first, last = states
    rdp = epsilon(noise_multiplier=0.3, sample_rate=0.1, steps=100, delta=1e-5, accountant="rdp")
    pld = epsilon(noise_multiplier=0.3, sample_rate=0.1, steps=100, delta=1e-5, accountant="pld")
    assert not first["pld_visible"] and "PLD" in first["note"]
    assert f"RDP gives ε = {rdp:.3g}; PLD being computed" in first["title"]
    # the final image: PLD drawn, labelled plainly, its last point the accountant's epsilon
    assert last["pld_visible"] and "PLD" in last["labels"]
    assert last["note"] == ""
    assert last["pld"][-1] == pld
    assert f"{pld:.3g} (PLD)" in readout.value and f"{rdp:.3g} (RDP)" in readout.value
    assert "being computed" not in readout.value
    # Execute again: back to the same stop, now remembered: one image, already final
    sigma.value = 2.0
    states.clear()
    sigma.value = 0.3
    (again,) = states
    assert again["pld_visible"] and again["pld"][-1] == pld


@pytest.mark.filterwarnings("ignore:the best Rényi order:RuntimeWarning")  # epsilon(rdp) below
@pytest.mark.parametrize(
    ("sigma_value", "q_value", "steps_value"),
    [
        (0.1, 1.0, 10.0),
        (0.2, 10**-0.5, 10**1.5),
        (4.0, 0.01, 10**4.0),
        (10.0, 1e-4, 1e5),
        (0.1, 0.01, 10**4.0),  # weak noise: a coarsened grid, curves sharing its moments
        (0.2, 10**-0.75, 1e5),
    ],
)
def test_the_figure_and_readout_at_rest_equal_the_accountant(
    monkeypatch, sigma_value, q_value, steps_value
):
    # Prepare
    states = _shown_states(monkeypatch)
    box = accounting_dashboard(noise_multiplier=4.0, sample_rate=0.01, steps=100, delta=1e-5)
    sigma, q, steps, readout, _ = box.children
    # Execute: every slider moved (the log sliders take exponents' powers as values)
    sigma.value, q.value, steps.value = sigma_value, q_value, steps_value
    # Assert: the last image and the readout hold the accountant's epsilon, computed anew
    t = int(round(steps.value))
    args = dict(noise_multiplier=sigma.value, sample_rate=q.value, steps=t, delta=1e-5)
    pld, rdp = epsilon(**args, accountant="pld"), epsilon(**args, accountant="rdp")
    assert states[-1]["pld"][-1] == pld
    assert f"T = {t}," in readout.value
    assert f"ε = {rdp:.3g} (RDP), {pld:.3g} (PLD)" in readout.value
