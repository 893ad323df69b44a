"""Notebook 05b's dashboard: sigma, sample-rate and steps sliders over epsilon-vs-steps."""

from __future__ import annotations

import math
import warnings

import ipywidgets as widgets
import numpy as np

from fl_dp_lab._validate import check_int, check_real
from fl_dp_lab.accounting import COMPOSITIONS, Composition, remembered_epsilon_curves
from fl_dp_lab.plots.accounting import epsilon_steps_figure, update_epsilon_steps_figure
from fl_dp_lab.widgets._output import dashboard_box, figure_view, freeze_layout, show_figure

__all__ = ["accounting_dashboard", "accounting_readout"]

_POINTS = 6  # step counts per curve: enough for a smooth log-log line, fast enough to drag
_SLOW = ("basic", "advanced", "pld")  # built on PLDs: drawn after the RDP curve


def accounting_readout(
    sigma: float, sample_rate: float, steps: int, delta: float, finals: dict[str, float]
) -> str:
    """The sentence under the dashboard: epsilon after ``steps`` steps, per method.

    >>> accounting_readout(0.0, 0.01, 100, 1e-5, {"pld": math.inf})
    'σ = 0.00: no noise, no privacy: ε = ∞ whatever q and T'
    >>> accounting_readout(4.0, 0.01, 10000, 1e-5, {"rdp": 1.035, "pld": 0.948})
    'σ = 4.00, q = 0.01, T = 10000, δ = 1e-05: ε = 1.03 (RDP), 0.948 (PLD)'
    """
    if sigma == 0.0 or all(math.isinf(v) for v in finals.values()):
        return f"σ = {sigma:.2f}: no noise, no privacy: ε = ∞ whatever q and T"
    parts = ", ".join(
        f"{v:.3g} ({name.upper() if len(name) == 3 else name})" for name, v in finals.items()
    )
    return f"σ = {sigma:.2f}, q = {sample_rate:g}, T = {steps}, δ = {delta:g}: ε = {parts}"


def accounting_dashboard(
    noise_multiplier: float = 4.0,
    sample_rate: float = 0.01,
    steps: int = 10_000,
    *,
    delta: float = 1e-5,
) -> widgets.VBox:
    """Three sliders (σ, q on a log scale, T on a log scale) redrawing ε against steps.

    Each redraw asks ``fl_dp_lab.accounting.remembered_epsilon_curves`` (the
    numbers of ``epsilon_curves``, remembered per slider stop) for every method
    at a few log-spaced step counts up to T and moves the figure's lines in
    place; the readout gives the RDP and PLD epsilons after T steps. At a stop
    not seen before, the RDP curve is shown first, the title, readout and a note on
    the figure saying the other curves are being computed; the full figure follows
    once the PLD-based curves are computed (a few milliseconds at σ >= 1 and moderate
    T; up to about a quarter of a second of CPU at the smallest σ, or many steps at a
    large q, where the PLD composes millions of grid points).

    Args:
        noise_multiplier: start value of σ, in [0, 10] (0 shows "no privacy").
        sample_rate: start value of q, in [1e-4, 1].
        steps: start value of T, in [10, 1e5].
        delta: the δ at which epsilon is read, in (0, 1).

    Returns:
        ``VBox([sigma slider, q slider, steps slider, readout, figure output])``.
    """
    sigma = check_real("noise_multiplier", noise_multiplier, low=0.0, high=10.0)
    q = check_real("sample_rate", sample_rate, low=1e-4, high=1.0)
    steps = check_int("steps", steps, minimum=10, maximum=100_000)
    delta = check_real("delta", delta, low=0.0, high=1.0, low_open=True, high_open=True)
    common = dict(
        continuous_update=False,
        style={"description_width": "110px"},
        layout=widgets.Layout(width="480px"),
    )
    sigma_slider = widgets.FloatSlider(
        value=sigma, min=0.0, max=10.0, step=0.1, description="σ (noise)", **common
    )
    q_slider = widgets.FloatLogSlider(
        value=q,
        base=10,
        min=-4,
        max=0,
        step=0.25,
        description="q (sample rate)",
        readout_format=".2g",
        **common,
    )
    steps_slider = widgets.FloatLogSlider(
        value=steps,
        base=10,
        min=1,
        max=5,
        step=0.25,
        description="T (steps)",
        readout_format=".0f",
        **common,
    )
    readout = widgets.HTML()
    readout.add_class("fl-dp-lab-readout")
    output = figure_view()

    def curves(
        s: float, rate: float, t: int, methods: tuple[Composition, ...], compute: bool = True
    ):
        with warnings.catch_warnings():  # "best Rényi order at the grid's edge": API advice
            warnings.simplefilter("ignore", RuntimeWarning)
            return _curves(s, rate, t, methods, compute)

    def _curves(s: float, rate: float, t: int, methods: tuple[Composition, ...], compute: bool):
        return remembered_epsilon_curves(
            noise_multiplier=s,
            sample_rate=rate,
            steps=t,
            delta=delta,
            points=_POINTS,
            methods=methods,
            compute=compute,
        )

    grid, values = curves(sigma, q, steps, COMPOSITIONS)
    fig, artists = epsilon_steps_figure(grid, values, title="", delta=delta)
    freeze_layout(fig)

    def draw(s: float, rate: float, t: int, grid, values, pending: tuple[str, ...]) -> None:
        finals = {m: float(v[-1]) for m, v in values.items() if m in ("rdp", "pld")}
        if s == 0.0:
            title = "No noise: every accountant says ε = ∞"
        elif pending:
            title = f"After {t} steps RDP gives ε = {finals['rdp']:.3g}; PLD being computed"
        else:
            title = f"After {t} steps PLD gives ε = {finals['pld']:.3g}, RDP {finals['rdp']:.3g}"
        update_epsilon_steps_figure(artists, grid, values, title=title, pending=pending)
        finals = {m: v for m, v in finals.items() if m not in pending}
        readout.value = accounting_readout(s, rate, t, delta, finals) + (
            " · PLD being computed…" if pending else ""
        )
        show_figure(output, fig)

    def show(*_: object) -> None:
        s, rate, t = sigma_slider.value, q_slider.value, int(round(steps_slider.value))
        remembered = curves(s, rate, t, COMPOSITIONS, compute=False)
        if remembered is None:
            # RDP first (cheap), labelled as such; then the PLD-based curves, which take
            # up to about 0.25 s at the smallest sigmas, replace it with the full figure
            grid, values = curves(s, rate, t, ("rdp",))
            draw(s, rate, t, grid, {m: values.get(m, grid * np.nan) for m in COMPOSITIONS},
                 pending=_SLOW)  # fmt: skip
            remembered = curves(s, rate, t, COMPOSITIONS)
        grid, values = remembered
        draw(s, rate, t, grid, values, pending=())

    for slider in (sigma_slider, q_slider, steps_slider):
        slider.observe(show, names="value")
    show()
    return dashboard_box([sigma_slider, q_slider, steps_slider, readout, output])
