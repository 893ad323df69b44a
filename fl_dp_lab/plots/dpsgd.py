"""Figures of notebook 06 (DP-SGD from scratch), and the 2-D clipping picture its widget redraws.

The picture projects per-sample gradients onto a plane: the first axis is
the direction of the true mean gradient, the second the main direction of
the gradients' spread orthogonal to it. The projection onto orthonormal
axes shrinks no norm's bound: a gradient clipped to norm C lands inside the
disc of radius C, and isotropic noise N(0, s^2 I) projects to exactly
N(0, s^2 I_2), so the 2-D noise cloud is drawn in 2-D.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.patches import Circle
from matplotlib.ticker import MaxNLocator, NullFormatter

from fl_dp_lab._validate import check_int, check_real
from fl_dp_lab.dpsgd import add_noise, clip_factors
from fl_dp_lab.plots import PALETTE, animate, new_figure, set_limits, snap_up

__all__ = [
    "ClippingPicture",
    "ProjectedBatch",
    "batch_size_figure",
    "clipping_figure",
    "clipping_picture",
    "gradient_plane",
    "norms_figure",
    "project_batch",
    "privacy_utility_figure",
    "reconstruction_figure",
    "timing_figure",
    "training_figure",
    "update_clipping_figure",
]


def gradient_plane(per_sample: torch.Tensor) -> torch.Tensor:
    """Orthonormal axes (P, 2): the mean gradient's direction, then the main spread across it.

    >>> axes = gradient_plane(torch.tensor([[1.0, 1.0, 0.0], [1.0, -1.0, 0.0]]))
    >>> axes.T @ axes
    tensor([[1., 0.],
            [0., 1.]])
    """
    first = per_sample.mean(0)
    first = first / first.norm().clamp_min(1e-12)
    rest = per_sample - torch.outer(per_sample @ first, first)
    second = torch.linalg.svd(rest, full_matrices=False).Vh[0]
    second = second - (second @ first) * first
    return torch.stack([first, second / second.norm().clamp_min(1e-12)], 1)


@dataclass
class ClippingPicture:
    """Everything the clipping figure shows, in plane coordinates (the C and sigma of one setting).

    Attributes:
        points, clipped: per-sample gradients before and after clipping, (B, 2).
        true_mean: the non-private mean gradient; clipped_mean: sum of clipped / B.
        step: one privatised step, (clipped sum + N(0, sigma^2 C^2 I)) / B, drawn in
            full dimension with ``fl_dp_lab.dpsgd.add_noise`` and projected.
        cloud: more privatised steps, drawn in 2-D (see the module docstring).
        noise_std: sigma C / B, the noise std per coordinate of the step.
        clipped_share: share of the examples whose gradient norm exceeds C.
    """

    points: np.ndarray
    clipped: np.ndarray
    true_mean: np.ndarray
    clipped_mean: np.ndarray
    step: np.ndarray
    cloud: np.ndarray
    noise_std: float
    max_grad_norm: float
    noise_multiplier: float
    clipped_share: float


@dataclass
class ProjectedBatch:
    """What the clipping picture needs of one batch, whatever C and sigma: computed once.

    Attributes:
        per_sample: the flat per-sample gradients (B, P); axes: the plane (P, 2).
        norms: each example's gradient norm (B,); points: the gradients in the plane (B, 2).
        true_mean: the non-private mean gradient in the plane (2,).
    """

    per_sample: torch.Tensor
    axes: torch.Tensor
    norms: torch.Tensor
    points: torch.Tensor
    true_mean: torch.Tensor


def project_batch(per_sample: torch.Tensor, axes: torch.Tensor) -> ProjectedBatch:
    """Norms and plane coordinates of a batch (B, P) on ``axes`` (P, 2), once per batch."""
    points = per_sample @ axes
    return ProjectedBatch(per_sample, axes, per_sample.norm(dim=1), points, points.mean(0))


def clipping_picture(
    per_sample: torch.Tensor | ProjectedBatch,
    axes: torch.Tensor | None = None,
    *,
    max_grad_norm: float,
    noise_multiplier: float,
    generator: torch.Generator,
    draws: int = 300,
) -> ClippingPicture:
    """Clip (in full dimension), noise and project a batch of flat per-sample gradients (B, P).

    ``per_sample`` is the batch with its plane ``axes``, or a ``project_batch`` of them (a
    dashboard projects once; each redraw then costs one pass over the batch). Clipping
    scales example i by w_i = min(1, C / (||g_i|| + 1e-6)) (``dpsgd.clip_per_sample``),
    so the clipped sum is w @ G and each clipped point is w_i times its projection.
    """
    max_grad_norm = check_real("max_grad_norm", max_grad_norm, low=0.0, low_open=True)
    noise_multiplier = check_real("noise_multiplier", noise_multiplier, low=0.0)
    draws = check_int("draws", draws, minimum=1)
    if not isinstance(per_sample, ProjectedBatch):
        if axes is None:
            raise TypeError("axes must be given with a per_sample tensor (or pass project_batch)")
        per_sample = project_batch(per_sample, axes)
    batch = per_sample
    size = len(batch.per_sample)
    factors = clip_factors(batch.norms, max_grad_norm=max_grad_norm)
    noisy = add_noise(
        {"g": factors @ batch.per_sample}, max_grad_norm=max_grad_norm,
        noise_multiplier=noise_multiplier, generator=generator,
    )["g"]  # fmt: skip
    std = noise_multiplier * max_grad_norm / size
    clipped = factors[:, None] * batch.points
    clipped_mean = clipped.mean(0)
    cloud = clipped_mean + std * torch.randn(draws, 2, generator=generator)
    return ClippingPicture(
        points=batch.points.numpy(),
        clipped=clipped.numpy(),
        true_mean=batch.true_mean.numpy(),
        clipped_mean=clipped_mean.numpy(),
        step=(noisy / size @ batch.axes).numpy(),
        cloud=cloud.numpy(),
        noise_std=std,
        max_grad_norm=max_grad_norm,
        noise_multiplier=noise_multiplier,
        clipped_share=float((batch.norms > max_grad_norm).double().mean()),
    )


def clipping_figure(picture: ClippingPicture) -> tuple[plt.Figure, dict[str, Any]]:
    """Left: per-sample gradients and the clipping ball. Right: true mean vs privatised steps."""
    fig, (left, right) = new_figure(1, 2, width=5.6, height=4.6)
    artists: dict[str, Any] = {"fig": fig, "left": left, "right": right}
    artists["raw"] = left.scatter(*picture.points.T, s=14, color="0.6", label="per-sample gradient")
    artists["clipped"] = left.scatter(
        *picture.clipped.T, s=14, color=PALETTE["blue"], label="clipped"
    )
    artists["ball"] = left.add_patch(
        Circle((0, 0), 1.0, fill=False, lw=2, color=PALETTE["vermillion"], label="ball of radius C")
    )
    left.set(xlabel="along the mean gradient", ylabel="across it (main spread)", aspect="equal")
    left.legend(loc="upper left", fontsize=11)
    artists["cloud"] = right.scatter(
        [], [], s=8, alpha=0.35, color=PALETTE["orange"], label="privatised steps (noise cloud)"
    )
    (artists["true"],) = right.plot(
        [], [], "*", ms=18, color=PALETTE["black"], label="true mean gradient"
    )
    (artists["step"],) = right.plot(
        [], [], "D", ms=10, color=PALETTE["vermillion"], label="one privatised step"
    )
    # a ring over the diamond: at a small sigma*C the step sits on the clipped mean
    (artists["clipped_mean"],) = right.plot(
        [], [], "o", ms=16, mfc="none", mew=2.5, color=PALETTE["blue"], label="clipped mean",
        zorder=3,
    )  # fmt: skip
    right.set(xlabel="along the mean gradient", ylabel="across it", aspect="equal")
    for axis in (right.xaxis, right.yaxis):  # at a small C the steps are ~1e-3: few, short ticks
        axis.set_major_locator(MaxNLocator(nbins=4))
    right.ticklabel_format(style="sci", scilimits=(-2, 3))
    right.legend(loc="upper left", fontsize=11)
    left.set_title(" ")
    right.set_title(" ")
    animate(fig, [artists[k] for k in ("raw", "clipped", "ball", "cloud", "true", "step",
                                       "clipped_mean")] + [left.title, right.title])  # fmt: skip
    update_clipping_figure(artists, picture)
    return fig, artists


def update_clipping_figure(artists: dict[str, Any], picture: ClippingPicture) -> None:
    """Redraw the clipping figure in place for a new picture (new C or sigma)."""
    c = picture.max_grad_norm
    artists["raw"].set_offsets(picture.points)
    artists["clipped"].set_offsets(picture.clipped)
    artists["ball"].set_radius(c)
    # snapped (1, 1.5, 2, 3, 4, 5, 6, 8 x 10^k): as C grows past the gradients, the panel
    # grows in a few steps, not on every stop of the slider
    reach = snap_up(1.15 * max(c, float(np.abs(picture.points).max())))
    set_limits(artists["left"], (-reach, reach), (-reach, reach))
    artists["left"].title.set_text(f"Clipping pulls every gradient inside radius C = {c:.2f}")
    artists["cloud"].set_offsets(picture.cloud)
    artists["true"].set_data([picture.true_mean[0]], [picture.true_mean[1]])
    artists["clipped_mean"].set_data([picture.clipped_mean[0]], [picture.clipped_mean[1]])
    artists["step"].set_data([picture.step[0]], [picture.step[1]])
    marks = np.vstack([picture.cloud, picture.true_mean, picture.clipped_mean, picture.step])
    low, high = marks.min(0), marks.max(0)
    half = 0.575 * max(
        float((high - low).max()), 0.5 * float(np.abs(picture.true_mean).max()), 2e-3
    )
    # the view moves only when a mark leaves it or the marks shrink to under 60 % of it
    (x0, x1), (y0, y1) = artists["right"].get_xlim(), artists["right"].get_ylim()
    inside = x0 <= low[0] and high[0] <= x1 and y0 <= low[1] and high[1] <= y1
    if not (inside and half >= 0.6 * (x1 - x0) / 2):
        centre, half = (low + high) / 2, snap_up(half)
        set_limits(artists["right"], (centre[0] - half, centre[0] + half),
                   (centre[1] - half, centre[1] + half))  # fmt: skip
    if picture.noise_multiplier == 0:
        title = "σ = 0: no noise, no privacy (the step is the clipped mean)"
    else:
        title = f"σ = {picture.noise_multiplier:.2f}: noise std σC/B = {picture.noise_std:.3g}"
    artists["right"].title.set_text(title)


def timing_figure(milliseconds: dict[str, float]) -> plt.Figure:
    """Horizontal bars of milliseconds per call, log scale, one bar per method."""
    fig, ax = new_figure(width=7.0, height=0.6 * len(milliseconds) + 1.2)
    names = list(milliseconds)
    ax.barh(names, [milliseconds[n] for n in names], color=PALETTE["blue"])
    ax.set(xscale="log", xlabel="time per batch (ms, log scale)")
    ax.invert_yaxis()
    fastest = min(names, key=lambda name: milliseconds[name])
    slowest = max(names, key=lambda name: milliseconds[name])
    ax.set_title(
        f"{slowest} is {milliseconds[slowest] / milliseconds[fastest]:.0f}x slower than {fastest}"
    )
    return fig


def norms_figure(before: np.ndarray, after: np.ndarray, *, max_grad_norm: float) -> plt.Figure:
    """Histograms of per-sample gradient norms before and after clipping, with C marked."""
    fig, ax = new_figure(width=7.0)
    bins = np.linspace(0, max(float(np.max(before)), max_grad_norm) * 1.05, 40)
    ax.hist(before, bins=bins, color="0.6", label="before clipping")
    ax.hist(after, bins=bins, color=PALETTE["blue"], alpha=0.8, label="after clipping")
    ax.axvline(max_grad_norm, color=PALETTE["vermillion"], ls="--", label=f"C = {max_grad_norm:g}")
    share = float(np.mean(np.asarray(before) > max_grad_norm))
    title = f"Clipping caps {share:.0%} of the examples at C"
    title += "; the rest pass as they are" if share < 1 else ", onto the sphere of radius C"
    ax.set(xlabel="per-sample gradient norm ||g_i||", ylabel="examples", title=title)
    ax.legend()
    return fig


def batch_size_figure(
    poisson_sizes: np.ndarray, fixed_size: int, poisson_counts: np.ndarray
) -> plt.Figure:
    """Left: Poisson vs fixed batch sizes. Right: how often one example is used in an epoch."""
    fig, (left, right) = new_figure(1, 2, width=5.0)
    heights, _, _ = left.hist(
        poisson_sizes, bins=30, color=PALETTE["orange"], label="Poisson batches"
    )
    left.axvline(fixed_size, color=PALETTE["blue"], lw=3, label=f"shuffled: always {fixed_size}")
    left.set(
        xlabel="batch size (examples)", ylabel="steps", title="Poisson batch sizes vary around qN"
    )
    left.set_ylim(0, 1.4 * max(heights.max(), 1.0))  # headroom: the legend sits above the bars
    left.legend(fontsize=11, loc="upper left")
    values, counts = np.unique(poisson_counts, return_counts=True)
    right.bar(
        values - 0.2, counts / counts.sum(), width=0.4, color=PALETTE["orange"], label="Poisson"
    )
    right.bar([1.2], [1.0], width=0.4, color=PALETTE["blue"], label="shuffled")
    right.set(xlabel="times an example is used in one epoch", ylabel="share of examples",
              title="Poisson: each step is an independent coin")  # fmt: skip
    right.legend(fontsize=11)
    return fig


def privacy_utility_figure(
    epsilons: list[float], accuracies: list[float], baseline: float, *, delta: float
) -> plt.Figure:
    """Test accuracy against epsilon spent, with the non-private accuracy as a line."""
    fig, ax = new_figure(width=7.0)
    ax.plot(epsilons, 100 * np.asarray(accuracies), "o-", color=PALETTE["blue"], label="DP-SGD")
    ax.axhline(100 * baseline, color=PALETTE["black"], ls="--", label="non-private")
    ax.set(xscale="log", xlabel=f"ε spent (δ = {delta:g}, log scale)", ylabel="test accuracy (%)",
           title="More privacy (smaller ε) costs accuracy")  # fmt: skip
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xticks(epsilons, [f"{e:.2g}" for e in epsilons])
    ax.legend()
    return fig


def training_figure(history: Any, baseline_accuracy: list[float], *, delta: float) -> plt.Figure:
    """Left: test accuracy per epoch, DP-SGD vs non-private. Right: epsilon spent per epoch."""
    fig, (left, right) = new_figure(1, 2, width=5.0)
    left.plot(history.epoch, 100 * np.asarray(history.test_accuracy), "o-", label="DP-SGD")
    left.plot(range(1, len(baseline_accuracy) + 1), 100 * np.asarray(baseline_accuracy), "s--",
              color=PALETTE["black"], label="non-private")  # fmt: skip
    gap = 100 * (baseline_accuracy[-1] - history.test_accuracy[-1])
    ends = f"{abs(gap):.1f} points {'behind' if gap >= 0 else 'ahead of'} plain SGD"
    left.set(xlabel="epoch", ylabel="test accuracy (%)", title=f"DP-SGD ends {ends}")
    left.legend()
    right.plot(history.epoch, history.epsilon, "o-", color=PALETTE["vermillion"])
    right.set(xlabel="epoch", ylabel=f"ε spent (δ = {delta:g})",
              title=f"The budget grows with every step: ε = {history.epsilon[-1]:.2f}")  # fmt: skip
    return fig


def reconstruction_figure(images: list[np.ndarray], titles: list[str]) -> plt.Figure:
    """A row of 28x28 images (the original and its reconstructions) with their titles."""
    fig, axes = new_figure(1, len(images), width=2.3, height=2.8)
    for ax, image, title in zip(np.atleast_1d(axes), images, titles, strict=True):
        ax.imshow(np.asarray(image).reshape(28, 28), cmap="gray_r", vmin=0, vmax=1)
        ax.set_title(title, fontsize=11)
        ax.set(xticks=[], yticks=[])
        ax.grid(False)
    return fig
