"""The dashboard of notebook 09b: epsilon target and population size over cached runs.

Training is too slow for a slider, so the dashboard takes the runs the
notebook finished (one per epsilon target and K) and only selects and draws.
"""

from __future__ import annotations

from collections.abc import Mapping

import ipywidgets as widgets

from fl_dp_lab._validate import fail
from fl_dp_lab.federated import FederatedHistory
from fl_dp_lab.plots.populations import scale_figure, update_scale_figure
from fl_dp_lab.widgets._output import dashboard_box, figure_view, freeze_layout, show_figure

__all__ = ["scale_dashboard"]


def scale_dashboard(
    runs: Mapping[tuple[float, int], FederatedHistory],
    baseline: FederatedHistory,
    *,
    epsilon: float | None = None,
    num_clients: int | None = None,
) -> widgets.VBox:
    """epsilon-target and K sliders over cached DP-FedAvg runs, with the noise-free run.

    Args:
        runs: (epsilon target, K) -> ``run_dp_fedavg`` history; every combination present.
        baseline: the same training without noise, for comparison.
        epsilon, num_clients: the sliders' start values (default: middle epsilon, largest K).

    Returns:
        ``VBox([epsilon slider, K slider, readout, figure output])``.
    """
    epsilons = sorted({e for e, _ in runs})
    sizes = sorted({k for _, k in runs})
    missing = [(e, k) for e in epsilons for k in sizes if (e, k) not in runs]
    if not runs or missing:
        fail("runs", "a non-empty mapping with every (epsilon, K) combination", missing[:3])
    epsilon = epsilons[len(epsilons) // 2] if epsilon is None else epsilon
    num_clients = sizes[-1] if num_clients is None else num_clients
    if (epsilon, num_clients) not in runs:
        fail("epsilon and num_clients", "values present in runs", (epsilon, num_clients))
    eps_slider = widgets.SelectionSlider(
        options=epsilons, value=epsilon, description="target ε", continuous_update=True
    )
    k_slider = widgets.SelectionSlider(
        options=[(f"{k:,}", k) for k in sizes],
        value=num_clients,
        description="users K",
        continuous_update=True,
    )
    readout = widgets.HTML()
    readout.add_class("fl-dp-lab-readout")
    output = figure_view()
    fig, artists = scale_figure(runs, baseline, epsilon=epsilon, num_clients=num_clients)
    freeze_layout(fig)

    def show(_: object = None) -> None:
        key = (eps_slider.value, k_slider.value)
        update_scale_figure(artists, runs, epsilon=key[0], num_clients=key[1])
        gap = 100 * (baseline.accuracy[-1] - runs[key].accuracy[-1])
        side = "below" if gap >= 0 else "above"
        readout.value = (
            f"K = {key[1]:,}, target ε = {key[0]:g}: accuracy "
            f"{100 * runs[key].accuracy[-1]:.1f} %, {abs(gap):.1f} points {side} the noise-free run"
        )
        show_figure(output, fig)

    eps_slider.observe(show, names="value")
    k_slider.observe(show, names="value")
    show()
    return dashboard_box([eps_slider, k_slider, readout, output])
