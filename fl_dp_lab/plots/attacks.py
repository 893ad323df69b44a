"""Figures of notebook 03: reconstructed images, inversion quality, ROC curves."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from fl_dp_lab.plots import PALETTE, new_figure

__all__ = [
    "plot_image_rows",
    "plot_inversion",
    "plot_loss_histograms",
    "plot_psnr_by_batch",
    "plot_roc",
]


def plot_image_rows(
    rows: Mapping[str, torch.Tensor | np.ndarray],
    *,
    title: str,
    captions: Sequence[str] | None = None,
    size: float = 1.4,
) -> plt.Figure:
    """A grid of grey images: one row per entry of ``rows`` (name -> batch of images).

    Images are reshaped to squares when flat; ``captions`` label the columns
    of the last row (e.g. PSNR values).
    """
    names = list(rows)
    batches = [_as_images(rows[n]) for n in names]
    columns = max(len(b) for b in batches)
    fig, axes = new_figure(len(names), columns, width=size, height=size + 0.25, squeeze=False)
    for r, (name, batch) in enumerate(zip(names, batches, strict=True)):
        for c in range(columns):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
            if c < len(batch):
                ax.imshow(batch[c], cmap="gray_r", vmin=0.0, vmax=1.0)
            else:
                ax.set_axis_off()
        axes[r, 0].set_ylabel(name, fontsize=11)
    if captions is not None:
        for c, caption in enumerate(captions):
            axes[-1, c].set_xlabel(caption, fontsize=11)
    fig.suptitle(title, fontsize=13)
    return fig


def plot_psnr_by_batch(psnr_by_batch: Mapping[int, np.ndarray], *, title: str) -> plt.Figure:
    """PSNR (dB) of every reconstructed image against the batch size of the leaked gradient."""
    fig, ax = new_figure(width=6.4, height=4.0)
    sizes = sorted(psnr_by_batch)
    for k, size in enumerate(sizes):
        values = np.asarray(psnr_by_batch[size], dtype=float)
        jitter = np.linspace(-0.12, 0.12, values.size) if values.size > 1 else np.zeros(1)
        ax.scatter(k + jitter, values, color=PALETTE["blue"], alpha=0.6, s=28)
        ax.plot([k - 0.25, k + 0.25], [np.median(values)] * 2, color=PALETTE["vermillion"], lw=3)
    ax.plot([], [], color=PALETTE["vermillion"], lw=3, label="median")
    ax.axhline(20.0, color=PALETTE["black"], ls=":", lw=1.5, label="20 dB: clearly recognisable")
    ax.set_xticks(range(len(sizes)), [str(s) for s in sizes])
    ax.set(xlabel="examples averaged in the leaked gradient", ylabel="PSNR per image (dB)")
    ax.set_title(title)
    ax.legend(loc="upper right")
    return fig


def plot_inversion(
    loss: Sequence[float],
    original: torch.Tensor | np.ndarray,
    reconstruction: torch.Tensor | np.ndarray,
    *,
    title: str,
) -> plt.Figure:
    """DLG at a glance: the gradient-matching loss per step, the image and its reconstruction."""
    fig = plt.figure(figsize=(12.0, 3.8))
    ax_loss, ax_true, ax_hat = fig.subplots(1, 3, gridspec_kw={"width_ratios": [2, 1, 1]})
    ax_loss.semilogy(np.arange(1, len(loss) + 1), loss, color=PALETTE["blue"])
    ax_loss.set(xlabel="Adam step", ylabel="gradient-matching loss (log scale)")
    ax_loss.set_title("The dummy's gradient converges to the leaked one")
    images = [_as_images(image[None])[0] for image in (original, reconstruction)]
    for ax, image, name in zip((ax_true, ax_hat), images, ("training image", "DLG"), strict=True):
        ax.imshow(image, cmap="gray_r", vmin=0.0, vmax=1.0)
        ax.set_title(name)
        ax.set_axis_off()
    fig.suptitle(title, fontsize=13)
    return fig


def plot_roc(
    curves: Mapping[str, tuple[np.ndarray, np.ndarray, float]], *, title: str
) -> plt.Figure:
    """ROC curves (label -> (fpr, tpr, auc)) on linear and log-log axes, with the chance line."""
    fig, (lin, log) = new_figure(1, 2, width=4.8, height=4.2)
    colours = [PALETTE["vermillion"], PALETTE["blue"], PALETTE["green"], PALETTE["purple"]]
    for (label, (fpr, tpr, area)), colour in zip(curves.items(), colours, strict=False):
        for ax in (lin, log):
            ax.plot(
                fpr, tpr, color=colour, label=f"{label} (AUC {area:.2f})", drawstyle="steps-post"
            )
    grid = np.logspace(-3, 0, 50)
    for ax in (lin, log):
        ax.plot(grid, grid, color=PALETTE["black"], ls=":", lw=1.5, label="guessing")
        ax.set(xlabel="false positive rate", ylabel="true positive rate")
    lin.set(xlim=(0, 1), ylim=(0, 1), title="ROC")
    log.set(
        xscale="log",
        yscale="log",
        xlim=(1e-3, 1),
        ylim=(1e-3, 1),
        title="log scale: low-FPR corner",
    )
    lin.legend(loc="lower right", fontsize=10)
    fig.suptitle(title, fontsize=13)
    return fig


def plot_loss_histograms(
    member_losses: np.ndarray, nonmember_losses: np.ndarray, *, title: str
) -> plt.Figure:
    """Histograms of per-example loss for members and non-members (log-scaled loss axis)."""
    fig, ax = new_figure(width=6.4, height=4.0)
    low = max(1e-6, min(member_losses.min(), nonmember_losses.min()))
    bins = np.logspace(
        np.log10(low), np.log10(max(member_losses.max(), nonmember_losses.max())), 40
    )
    ax.hist(
        member_losses, bins=bins, alpha=0.6, color=PALETTE["blue"], label="members (trained on)"
    )
    ax.hist(nonmember_losses, bins=bins, alpha=0.6, color=PALETTE["orange"], label="non-members")
    ax.set(
        xscale="log", xlabel="cross-entropy loss (nats, log scale)", ylabel="examples", title=title
    )
    ax.legend()
    return fig


def _as_images(batch: torch.Tensor | np.ndarray) -> np.ndarray:
    array = batch.detach().cpu().numpy() if isinstance(batch, torch.Tensor) else np.asarray(batch)
    array = array.reshape(len(array), -1)
    side = int(round(np.sqrt(array.shape[1])))
    return np.clip(array.reshape(len(array), side, side), 0.0, 1.0)
