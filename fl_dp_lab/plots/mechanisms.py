"""Figures of notebook 04: mechanism outputs on neighbours and the Gaussian privacy curve.

``gaussian_privacy_figure`` draws the three panels of the sigma dashboard
and returns the artists; ``update_gaussian_privacy_figure`` moves them to a
new sigma in place. Every number drawn comes from ``fl_dp_lab.mechanisms``.
"""

from __future__ import annotations

import math
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from scipy import stats

from fl_dp_lab.mechanisms import gaussian_delta, gaussian_epsilon, gaussian_privacy_loss
from fl_dp_lab.plots import PALETTE, animate, new_figure, set_limits, snap_up

__all__ = [
    "gaussian_privacy_figure",
    "gaussian_view",
    "plot_neighbour_densities",
    "plot_privacy_loss_and_delta",
    "plot_rr_estimates",
    "plot_sigma_bounds",
    "update_gaussian_privacy_figure",
]

_EPSILONS = np.linspace(0.0, 8.0, 161)
#: sigma bands of ``gaussian_view``: (top / sqrt(2), top] for top = _BAND_TOP / sqrt(2) ** k
_BAND_TOP = 5.0
_ABOVE = {"loc": "lower center", "bbox_to_anchor": (0.5, 1.08), "fontsize": 10, "frameon": False,
          "borderaxespad": 0.0}  # fmt: skip


def plot_neighbour_densities(
    x: np.ndarray,
    density_d: np.ndarray,
    density_d_prime: np.ndarray,
    *,
    epsilon: float,
    title: str,
    xlabel: str = "released value",
) -> plt.Figure:
    """Two output densities (on D and on D') and their log-ratio, bounded by +-epsilon.

    Left: the densities; right: log(p_D / p_D') with the band [-eps, eps]
    that epsilon-DP allows.
    """
    fig, (left, right) = new_figure(1, 2, width=5.6, height=3.8)
    left.plot(x, density_d, color=PALETTE["blue"], label="output on D")
    left.plot(x, density_d_prime, color=PALETTE["orange"], ls="--", label="output on D'")
    left.set(xlabel=xlabel, ylabel="density", title="The two output laws overlap")
    left.legend()
    ratio = np.log(density_d) - np.log(density_d_prime)
    right.plot(x, ratio, color=PALETTE["green"], label="log p_D / p_D'")
    right.axhspan(-epsilon, epsilon, color=PALETTE["sky"], alpha=0.2, label=f"±ε = ±{epsilon:g}")
    right.set(xlabel=xlabel, ylabel="privacy loss (nats)", title=title)
    right.set_ylim(-1.8 * epsilon, 1.8 * epsilon)
    right.legend(loc="upper left")
    return fig


def plot_sigma_bounds(
    epsilons: np.ndarray, classic: np.ndarray, analytic: np.ndarray, *, delta: float
) -> plt.Figure:
    """Noise sigma needed per epsilon: classic bound vs the analytic Gaussian mechanism."""
    fig, ax = new_figure(width=6.8, height=4.2)
    ax.plot(epsilons, classic, color=PALETTE["vermillion"], ls="--", label="classic bound")
    ax.plot(epsilons, analytic, color=PALETTE["blue"], label="analytic (Balle & Wang)")
    ax.set(
        xlabel="ε",
        ylabel="noise σ (units of sensitivity)",
        yscale="log",
        title=f"The analytic Gaussian needs less noise (δ = {delta:g})",
    )
    ax.legend()
    return fig


def gaussian_privacy_figure(
    sigma: float, *, sensitivity: float = 1.0, delta: float = 1e-5
) -> tuple[plt.Figure, dict[str, Any]]:
    """The sigma dashboard's figure: output densities, privacy-loss law, delta(epsilon).

    Args:
        sigma: noise standard deviation, >= 0 (0 draws the "no privacy" state).
        sensitivity: distance between q(D) = 0 and q(D') = sensitivity.
        delta: the fixed delta at which epsilon is read.

    Returns:
        ``(fig, artists)``; pass ``artists`` to ``update_gaussian_privacy_figure``.
    """
    fig, axes = new_figure(1, 3, width=4.6, height=4.1)
    dens, loss, curve = axes
    (line_d,) = dens.plot([], [], color=PALETTE["blue"], label="M(D), q(D) = 0")
    (line_dp,) = dens.plot(
        [], [], color=PALETTE["orange"], ls="--", label=f"M(D'), q(D') = {sensitivity:g}"
    )
    dens.set(xlabel="released value", ylabel="density", title="Outputs on neighbours")
    # Legends sit above the panels: curves and markers move over the whole of each panel.
    dens.legend(**_ABOVE)
    (loss_line,) = loss.plot([], [], color=PALETTE["green"])
    eps_marker = loss.axvline(0.0, color=PALETTE["vermillion"], ls=":", label="ε at fixed δ")
    tail = loss.fill_between(
        [0.0, 1.0], [0.0, 0.0], color=PALETTE["vermillion"], alpha=0.3, label="L > ε: paid by δ"
    )
    loss.set(xlabel="privacy loss L (nats)", ylabel="density", title="Privacy-loss distribution")
    no_loss_text = loss.text(
        0.5, 0.5, "no noise: L = +∞ for sure\n(each output names its dataset)",
        transform=loss.transAxes, ha="center", va="center", fontsize=12,
    )  # fmt: skip
    tail_text = loss.text(
        0.03, 0.7, "", transform=loss.transAxes, ha="left", va="center", fontsize=11,
        color=PALETTE["vermillion"],
    )  # fmt: skip
    loss.legend(**_ABOVE)
    (curve_line,) = curve.plot([], [], color=PALETTE["purple"], label="exact δ(ε)")
    curve.axhline(delta, color=PALETTE["black"], lw=1, ls="--", label=f"δ = {delta:g}")
    curve_marker = curve.axvline(0.0, color=PALETTE["vermillion"], ls=":")
    curve.set(xlabel="ε", ylabel="δ(ε)", yscale="log", xlim=(0, _EPSILONS[-1]), ylim=(1e-12, 1.5))
    curve.set_title("δ(ε) of the Gaussian mechanism")
    curve.legend(**_ABOVE)
    title = fig.suptitle(" ", fontsize=13)
    artists = {
        "fig": fig, "axes": axes, "line_d": line_d, "line_dp": line_dp, "loss_line": loss_line,
        "eps_marker": eps_marker, "curve_line": curve_line, "curve_marker": curve_marker,
        "no_loss_text": no_loss_text, "tail": tail, "tail_text": tail_text, "title": title,
        "sensitivity": sensitivity, "delta": delta,
    }  # fmt: skip
    animate(fig, [line_d, line_dp, loss_line, eps_marker, tail, curve_line, curve_marker,
                  no_loss_text, tail_text, title])  # fmt: skip
    update_gaussian_privacy_figure(artists, sigma)
    return fig, artists


def update_gaussian_privacy_figure(artists: dict[str, Any], sigma: float) -> float:
    """Move the dashboard's artists to noise ``sigma``; return the epsilon at the fixed delta.

    sigma = 0 draws the two outputs as spikes, empties the privacy-loss panel
    and returns ``math.inf``: the exact value is released, no epsilon holds.
    The middle panel states P[L > epsilon], the tail that delta pays for (too
    thin to see shaded at a small delta).
    """
    s, delta = artists["sensitivity"], artists["delta"]
    dens, loss, curve = artists["axes"]
    epsilon = gaussian_epsilon(sigma=sigma, delta=delta, sensitivity=s)
    no_privacy = math.isinf(epsilon)  # sigma = 0, or so small that no epsilon holds
    artists["no_loss_text"].set_visible(no_privacy)
    artists["tail_text"].set_visible(not no_privacy)
    for artist in (artists["eps_marker"], artists["curve_marker"], artists["tail"]):
        artist.set_visible(not no_privacy)
    loss.get_legend().set_visible(not no_privacy)
    # The axes' limits depend only on which sigma band sigma falls in (``gaussian_view``):
    # a slider step inside a band moves only the curves, and the dashboard keeps one
    # background per band (fl_dp_lab.plots.remember_views).
    if no_privacy:
        artists["line_d"].set_data([0.0, 0.0], [0.0, 1.0])
        artists["line_dp"].set_data([s, s], [0.0, 1.0])
        set_limits(dens, (-1.0 * s, 2.0 * s), (0.0, 1.1))
        artists["loss_line"].set_data([], [])
        artists["curve_line"].set_data(_EPSILONS, np.ones_like(_EPSILONS))
        set_limits(loss, (0.0, 1.0), (0.0, 1.0))
        set_limits(curve, (0.0, _EPSILONS[-1]))
        fig_title = f"σ = {sigma:g}: the exact answer is released, no privacy: ε = ∞"
    else:
        view = gaussian_view(sigma, sensitivity=s, delta=delta)
        half = view["half_width"]
        x = np.linspace(-half, s + half, 400)
        artists["line_d"].set_data(x, stats.norm.pdf(x, 0.0, sigma))
        artists["line_dp"].set_data(x, stats.norm.pdf(x, s, sigma))
        set_limits(dens, (x[0], x[-1]), (0.0, view["density_top"]))
        mean, std = gaussian_privacy_loss(sigma=sigma, sensitivity=s)
        left, right = view["loss_range"]
        grid = np.linspace(left, right, 400)
        pdf = stats.norm.pdf(grid, mean, std)
        artists["loss_line"].set_data(grid, pdf)
        artists["tail"].set_data(grid, pdf, 0.0, where=grid > epsilon)
        set_limits(loss, view["loss_range"], (0.0, view["loss_top"]))
        epsilons = np.linspace(0.0, view["epsilon_top"], _EPSILONS.size)
        deltas = [gaussian_delta(sigma=sigma, epsilon=e, sensitivity=s) for e in epsilons]
        artists["curve_line"].set_data(epsilons, np.maximum(deltas, 1e-300))
        set_limits(curve, (0.0, epsilons[-1]))
        for marker in (artists["eps_marker"], artists["curve_marker"]):
            marker.set_xdata([epsilon, epsilon])
        tail = stats.norm.sf(epsilon, mean, std)
        artists["tail_text"].set_text(f"P[L > ε]\n= {tail:.1e}")
        fig_title = f"σ = {sigma:.2f}: (ε, δ) = ({epsilon:.2f}, {delta:g})"
    artists["title"].set_text(fig_title)
    return epsilon


def gaussian_view(sigma: float, *, sensitivity: float = 1.0, delta: float = 1e-5) -> dict[str, Any]:
    """The axis limits of the sigma dashboard's figure at noise ``sigma`` > 0.

    They are the same for every sigma of a band (top / sqrt(2), top], top = 5 / sqrt(2)^k,
    and fit every sigma of it: the densities' x-range holds 4 sigma either side, the
    privacy-loss range holds the mean +- 4 std and 1.1 epsilon, the delta(epsilon)
    panel reaches at least 8 and 1.25 epsilon; the tops are snapped up (``snap_up``).
    Within a band a curve fills at least about half of each range, and a slider step
    inside it changes no axis. Returns ``half_width``, ``density_top``, ``loss_range``,
    ``loss_top`` and ``epsilon_top``.

    >>> view = gaussian_view(1.0)
    >>> view["half_width"], view["density_top"], view["epsilon_top"]
    (5.0, 0.5, 8.0)
    >>> gaussian_view(0.9) == view and gaussian_view(0.85) != view
    True
    """
    if not math.isfinite(sigma) or sigma <= 0:
        raise ValueError(f"sigma must be finite and > 0, got {sigma!r}")
    band = math.floor(2 * math.log2(_BAND_TOP / sigma) + 1e-9)
    high = _BAND_TOP * 2.0 ** (-band / 2)
    low = high / math.sqrt(2.0)
    s = sensitivity
    # the loss law at sigma: mean u^2 / 2, std u with u = s / sigma, over u in the band
    u_low, u_high = s / high, s / low
    left = min(u * u / 2 - 4 * u for u in (u_low, u_high, min(max(4.0, u_low), u_high)))
    epsilon = gaussian_epsilon(sigma=low, delta=delta, sensitivity=s)  # the band's largest
    if not math.isfinite(epsilon):  # so little noise that no epsilon holds at the band's edge
        epsilon = gaussian_epsilon(sigma=sigma, delta=delta, sensitivity=s)
    right = max(u_high * u_high / 2 + 4 * u_high, 1.1 * epsilon)
    return {
        "half_width": snap_up(4 * high),
        "density_top": snap_up(1.1 / (low * math.sqrt(2 * math.pi))),
        "loss_range": (-snap_up(-left) if left < 0 else 0.0, snap_up(right)),
        "loss_top": snap_up(1.1 / (u_low * math.sqrt(2 * math.pi))),
        "epsilon_top": snap_up(max(_EPSILONS[-1], 1.25 * epsilon)),
    }


def plot_privacy_loss_and_delta(
    losses: np.ndarray,
    loss_law: tuple[float, float],
    epsilons: np.ndarray,
    deltas: dict[str, np.ndarray],
    *,
    epsilon: float = 1.0,
) -> plt.Figure:
    """Draws of the Gaussian privacy loss, and the privacy curve δ(ε) computed three ways.

    Args:
        losses: sampled privacy losses L (nats) of the Gaussian mechanism at σ = 1.
        loss_law: (mean, std) of the Gaussian law of L, drawn over the histogram.
        epsilons: the ε grid of the right panel.
        deltas: δ at each ε, under the keys ``"exact"`` (a line), ``"library"`` (circles)
            and ``"monte_carlo"`` (crosses).
        epsilon: the ε marked on the histogram.

    Returns:
        The figure: histogram of L on the left, δ(ε) on a log scale on the right.
    """
    mean, std = loss_law
    fig, (left, right) = new_figure(1, 2, width=5.6, height=4.0)
    bins = np.linspace(-5, 6, 80)
    left.hist(
        losses, bins=bins, density=True, color=PALETTE["sky"], label=f"{len(losses):,} draws of L"
    )
    left.plot(bins, stats.norm.pdf(bins, mean, std), color=PALETTE["blue"], label="N(μ, 2μ)")
    left.axvline(
        epsilon, color=PALETTE["vermillion"], ls=":", label=f"ε = {epsilon:g}: L above it costs δ"
    )
    left.set(
        xlabel="privacy loss L (nats)", ylabel="density", title="σ = 1: L is Gaussian, unbounded"
    )
    left.legend(fontsize=10)
    right.semilogy(epsilons, deltas["exact"], color=PALETTE["blue"], label="exact formula")
    right.semilogy(
        epsilons,
        deltas["library"],
        "o",
        color=PALETTE["orange"],
        mfc="none",
        label="dp_accounting PLD",
    )
    right.semilogy(
        epsilons, deltas["monte_carlo"], "x", color=PALETTE["vermillion"], label="Monte Carlo"
    )
    right.set(xlabel="ε", ylabel="δ(ε)", title="Three ways, one privacy curve")
    right.legend(fontsize=10)
    return fig


def plot_rr_estimates(
    estimates: dict[float, np.ndarray],
    naive: dict[float, float],
    *,
    truth: float,
    bins: np.ndarray,
) -> plt.Figure:
    """Histograms of randomized-response estimates of a share, one per ε, around the true share.

    Args:
        estimates: for each ε, the unbiased estimate of the share from each simulated survey.
        naive: for each ε, the mean share of "yes" in the raw (randomized) reports.
        truth: the true share, drawn as a dashed line.
        bins: the histogram bin edges.

    Returns:
        The figure.
    """
    colours = (PALETTE["vermillion"], PALETTE["blue"], PALETTE["green"], PALETTE["orange"])
    fig, ax = new_figure(width=7.0, height=4.0)
    for k, (eps, values) in enumerate(estimates.items()):
        label = f"ε = {eps}: naive share {naive[eps]:.2f}"
        ax.hist(values, bins=bins, alpha=0.55, color=colours[k % len(colours)], label=label)
    ax.axvline(truth, color=PALETTE["black"], ls="--", label=f"true share {truth:.2f}")
    ax.set(
        xlabel="estimated share of 'yes'",
        ylabel=f"surveys (of {max(len(v) for v in estimates.values())})",
        title="Unbiased estimates centre on the truth; smaller ε spreads them",
    )
    ax.legend(fontsize=10)
    return fig
