"""Notebook 06's dashboard: sigma and C sliders over the 2-D picture of one DP-SGD step."""

from __future__ import annotations

import math
import warnings

import ipywidgets as widgets
import torch

from fl_dp_lab._validate import check_int, check_real
from fl_dp_lab.accounting import epsilon
from fl_dp_lab.plots.dpsgd import (
    ClippingPicture,
    clipping_figure,
    clipping_picture,
    gradient_plane,
    project_batch,
    update_clipping_figure,
)
from fl_dp_lab.widgets._output import dashboard_box, figure_view, freeze_layout, show_figure

__all__ = ["clipping_dashboard", "step_readout"]


def step_readout(picture: ClippingPicture, epsilon_spent: float, steps: int, delta: float) -> str:
    """The sentences under the dashboard's figure.

    >>> import numpy as np
    >>> p = ClippingPicture(np.zeros((2, 2)), np.zeros((2, 2)), np.zeros(2), np.zeros(2),
    ...                     np.zeros(2), np.zeros((1, 2)), 0.0, 1.0, 0.0, 0.0)
    >>> step_readout(p, math.inf, 100, 1e-5)[:39]
    'σ = 0.00, C = 1.00: no privacy: epsilon'
    """
    check_real("epsilon_spent", epsilon_spent, low=0.0, allow_inf=True)  # never negative
    miss = float(((picture.step - picture.true_mean) ** 2).sum() ** 0.5)
    head = f"σ = {picture.noise_multiplier:.2f}, C = {picture.max_grad_norm:.2f}: "
    if math.isinf(epsilon_spent):
        head += "no privacy: epsilon = inf (no noise hides any example). "
    else:
        head += f"after {steps} such steps, ({epsilon_spent:.2f}, {delta:g})-DP (RDP). "
    return (
        head + f"{picture.clipped_share:.0%} of the examples were clipped; "
        f"the privatised step is {miss:.3g} away from the true mean gradient (in this plane)."
    )


def clipping_dashboard(
    per_sample: torch.Tensor,
    *,
    noise_multiplier: float = 1.0,
    max_grad_norm: float = 1.0,
    sample_rate: float,
    steps: int,
    delta: float = 1e-5,
    seed: int = 0,
) -> widgets.VBox:
    """Sliders for sigma and C redrawing the clipping ball, the noise cloud and the step.

    Args:
        per_sample: flat per-sample gradients of one real batch, shape (B, P).
        noise_multiplier, max_grad_norm: the sliders' start values (sigma in
            [0, 5], C in [0.05, 5]).
        sample_rate, steps, delta: the training run the readout's epsilon is for.
        seed: seeds the noise, the same draw for every slider position.

    Returns:
        ``VBox([sigma slider, C slider, readout, figure output])``.
    """
    noise_multiplier = check_real("noise_multiplier", noise_multiplier, low=0.0, high=5.0)
    max_grad_norm = check_real("max_grad_norm", max_grad_norm, low=0.05, high=5.0)
    sample_rate = check_real("sample_rate", sample_rate, low=0.0, high=1.0, low_open=True)
    steps = check_int("steps", steps, minimum=1)
    delta = check_real("delta", delta, low=0.0, high=1.0, low_open=True, high_open=True)
    seed = check_int("seed", seed, minimum=0)
    if not isinstance(per_sample, torch.Tensor) or per_sample.dim() != 2 or len(per_sample) < 2:
        shape = getattr(per_sample, "shape", per_sample)
        raise ValueError(f"per_sample must be a tensor of shape (B >= 2, P), got {shape!r}")
    batch = project_batch(per_sample, gradient_plane(per_sample))
    sigma = widgets.FloatSlider(value=noise_multiplier, min=0.0, max=5.0, step=0.05,
                                description="σ", continuous_update=False)  # fmt: skip
    clip = widgets.FloatSlider(value=max_grad_norm, min=0.05, max=5.0, step=0.05,
                               description="C", continuous_update=False)  # fmt: skip
    readout = widgets.HTML()
    readout.add_class("fl-dp-lab-readout")
    output = figure_view()

    def picture() -> ClippingPicture:
        return clipping_picture(
            batch, max_grad_norm=clip.value, noise_multiplier=sigma.value,
            generator=torch.Generator().manual_seed(seed),
        )  # fmt: skip

    fig, artists = clipping_figure(picture())
    freeze_layout(fig)  # shown only through the figure view below, never twice
    spent: dict[float, float] = {}  # sigma -> epsilon: C does not change it

    def show(_: object = None) -> None:
        current = picture()
        update_clipping_figure(artists, current)
        if current.noise_multiplier not in spent:
            # RDP: an upper bound, fast enough to follow a slider (PLD is usually lower at
            # these step counts, notebook 05b); a tiny sigma puts the best order at the grid's
            # edge, which only loosens it
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                spent[current.noise_multiplier] = epsilon(
                    noise_multiplier=current.noise_multiplier, sample_rate=sample_rate,
                    steps=steps, delta=delta, accountant="rdp",
                )  # fmt: skip
        readout.value = step_readout(current, spent[current.noise_multiplier], steps, delta)
        show_figure(output, fig)

    sigma.observe(show, names="value")
    clip.observe(show, names="value")
    show()
    return dashboard_box([sigma, clip, readout, output])
