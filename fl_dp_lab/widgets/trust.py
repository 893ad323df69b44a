"""The dashboard of notebook 12: epsilon target and clients per round over cached runs.

Training is too slow for a slider, so the dashboard takes the final accuracies
of the runs the notebook finished (one per trust model, epsilon target and m)
and only selects and draws.
"""

from __future__ import annotations

from collections.abc import Mapping

import ipywidgets as widgets

from fl_dp_lab._validate import fail
from fl_dp_lab.plots.trust import TRUST_MODELS, trust_figure, update_trust_figure
from fl_dp_lab.widgets._output import dashboard_box, figure_view, freeze_layout, show_figure

__all__ = ["trust_dashboard"]


def trust_dashboard(
    accuracy: Mapping[tuple[str, float, int], float],
    no_noise: Mapping[int, float],
    *,
    chance: float,
    epsilon: float | None = None,
    num_clients: int | None = None,
) -> widgets.VBox:
    """epsilon-target and m sliders over cached runs of local, central and distributed DP.

    Args:
        accuracy: (trust model, epsilon target, m) -> final test accuracy; every
            combination of ``"local"``, ``"central"``, ``"distributed"``, epsilon and m present.
        no_noise: m -> final accuracy of the same run without noise, for every m.
        chance: accuracy of always predicting the most common class.
        epsilon, num_clients: the sliders' start values (default: middle epsilon, largest m).

    Returns:
        ``VBox([epsilon slider, m slider, readout, figure view])``.
    """
    epsilons = sorted({e for _, e, _ in accuracy})
    sizes = sorted({m for _, _, m in accuracy})
    missing = [
        (model, e, m)
        for model in TRUST_MODELS
        for e in epsilons
        for m in sizes
        if (model, e, m) not in accuracy
    ]
    if not accuracy or missing:
        fail("accuracy", "a non-empty mapping with every (model, epsilon, m)", missing[:3])
    absent = [m for m in sizes if m not in no_noise]
    if absent:
        fail("no_noise", "an accuracy for every m", absent)
    epsilon = epsilons[len(epsilons) // 2] if epsilon is None else epsilon
    num_clients = sizes[-1] if num_clients is None else num_clients
    if epsilon not in epsilons or num_clients not in sizes:
        fail("epsilon and num_clients", "values present in accuracy", (epsilon, num_clients))
    eps_slider = widgets.SelectionSlider(
        options=[(f"{e:g}", e) for e in epsilons],
        value=epsilon,
        description="target ε",
        continuous_update=True,
    )
    m_slider = widgets.SelectionSlider(
        options=[(f"{m:,}", m) for m in sizes],
        value=num_clients,
        description="clients m",
        continuous_update=True,
    )
    readout = widgets.HTML()
    readout.add_class("fl-dp-lab-readout")
    output = figure_view()
    fig, artists = trust_figure(
        accuracy, no_noise, chance=chance, epsilon=epsilon, num_clients=num_clients
    )
    freeze_layout(fig)

    def show(_: object = None) -> None:
        e, m = eps_slider.value, m_slider.value
        update_trust_figure(artists, accuracy, no_noise, epsilon=e, num_clients=m)
        parts = ", ".join(
            f"{model} {100 * accuracy[(model, e, m)]:.1f} %" for model in TRUST_MODELS
        )
        readout.value = (
            f"m ≈ {m:,}, target ε = {e:g}: {parts} (no noise {100 * no_noise[m]:.1f} %, "
            f"chance {100 * chance:.1f} %)"
        )
        show_figure(output, fig)

    eps_slider.observe(show, names="value")
    m_slider.observe(show, names="value")
    show()
    return dashboard_box([eps_slider, m_slider, readout, output])
