"""Adaptive clipping for DP-FedAvg: track a quantile of the update norms privately.

A fixed clip norm C is a guess: too small and every update is shrunk (bias),
too large and the noise sigma*C drowns the signal. Andrew, Thakkar, McMahan
& Ramaswamy (2021), "Differentially private learning with adaptive
clipping", let C follow the gamma-quantile of the clients' update norms.
Each round every sampled client also reports one bit b_k = 1[||Delta_k|| <= C];
the server estimates the fraction of unclipped clients with noise,

    b~ = (sum_k (b_k - 1/2) + N(0, sigma_b^2)) / (q*K) + 1/2,

and takes a geometric step C <- C * exp(-eta * (b~ - gamma)). Centring the
bits at 1/2 makes the count's sensitivity 1/2, so releasing it is a
Gaussian mechanism with noise multiplier 2*sigma_b. Releasing it *and* the
update sum with noise multiplier z_Delta costs as much as one Gaussian
mechanism with z = (z_Delta^-2 + (2*sigma_b)^-2)^(-1/2) (their Theorem 1),
so to keep the accounted z the update noise is raised to
z_Delta = (z^-2 - (2*sigma_b)^-2)^(-1/2).
"""

from __future__ import annotations

import math

import torch

from fl_dp_lab._validate import check_generator, check_real, fail

__all__ = ["MAX_CLIP_LR", "adaptive_clip_norm", "update_noise_multiplier"]

#: The largest step size of log C that ``adaptive_clip_norm`` takes.
MAX_CLIP_LR = 10.0
_LOG_CLIP_RANGE = math.log(1e300)


def update_noise_multiplier(*, noise_multiplier: float, clip_count_stddev: float) -> float:
    """Noise multiplier left for the update sum once the clipped count has had its share.

    z_Delta = (z^-2 - (2*sigma_b)^-2)^(-1/2) (Andrew et al., 2021, Sec. 3.1):
    the two releases together are accounted as one Gaussian mechanism with
    noise multiplier z. Needs z < 2*sigma_b; sigma_b = 0 is refused (an
    exact count would not be private).

    Args:
        noise_multiplier: z, the noise multiplier the accountant uses, >= 0.
        clip_count_stddev: sigma_b, the std of the noise on the count, > z / 2.

    Returns:
        z_Delta >= z (0 when z = 0: no privacy, nothing to split).

    >>> round(update_noise_multiplier(noise_multiplier=1.0, clip_count_stddev=5.0), 4)
    1.005
    """
    noise_multiplier = check_real("noise_multiplier", noise_multiplier, low=0.0)
    clip_count_stddev = check_real("clip_count_stddev", clip_count_stddev, low=0.0, low_open=True)
    if noise_multiplier == 0.0:
        return 0.0
    if noise_multiplier >= 2 * clip_count_stddev:
        fail(
            "clip_count_stddev",
            f"> noise_multiplier / 2 = {noise_multiplier / 2:g} (raise it, or lower "
            "noise_multiplier)",
            clip_count_stddev,
        )
    return (noise_multiplier**-2 - (2 * clip_count_stddev) ** -2) ** -0.5


def adaptive_clip_norm(
    update_norms: torch.Tensor,
    *,
    clip_norm: float,
    target_quantile: float,
    clip_lr: float,
    clip_count_stddev: float,
    expected_clients: float,
    generator: torch.Generator,
) -> float:
    """The next round's clip norm: one noisy geometric step towards the gamma-quantile.

    C_next = C * exp(-eta * (b~ - gamma)) with b~ the noisy fraction of
    norms <= C defined in the module docstring (Andrew et al., 2021,
    Algorithm 1, geometric update). If fewer than a gamma share of updates
    fit under C, C grows; if more do, it shrinks.

    Args:
        update_norms: L2 norms of this round's client updates, shape ``(m,)`` (m may be 0).
        clip_norm: the current C > 0.
        target_quantile: gamma in [0, 1], e.g. 0.5 for the median norm.
        clip_lr: eta in (0, 10], the step size of log C (Andrew et al. use 0.2; a
            step of e^10 per unit of miss no longer tracks anything, and eta = 1e300
            sent C to 0 though C_next > 0 is promised).
        clip_count_stddev: sigma_b >= 0, std of the noise on the count of unclipped clients.
        expected_clients: q*K > 0, the fixed denominator.
        generator: draws the count's noise.

    Returns:
        The new clip norm C_next > 0.

    Raises:
        ValueError: also when C_next would leave [1e-300, 1e300] (a noise std
            sigma_b far above the client count can push it there): it would
            round to 0 or inf.

    >>> norms = torch.tensor([0.5, 0.5, 2.0, 2.0])
    >>> adaptive_clip_norm(norms, clip_norm=1.0, target_quantile=0.5, clip_lr=0.2,
    ...                    clip_count_stddev=0.0, expected_clients=4.0,
    ...                    generator=torch.Generator().manual_seed(0))
    1.0
    """
    clip_norm = check_real("clip_norm", clip_norm, low=0.0, low_open=True)
    target_quantile = check_real("target_quantile", target_quantile, low=0.0, high=1.0)
    clip_lr = check_real("clip_lr", clip_lr, low=0.0, high=MAX_CLIP_LR, low_open=True)
    clip_count_stddev = check_real("clip_count_stddev", clip_count_stddev, low=0.0)
    expected_clients = check_real("expected_clients", expected_clients, low=0.0, low_open=True)
    if not isinstance(update_norms, torch.Tensor) or update_norms.dim() != 1:
        fail("update_norms", "a 1-D torch.Tensor of norms", update_norms, TypeError)
    centred_count = float(((update_norms <= clip_norm).double() - 0.5).sum())
    generator = check_generator("generator", generator)
    noise = float(torch.randn((), generator=generator, dtype=torch.float64))
    unclipped_fraction = (centred_count + clip_count_stddev * noise) / expected_clients + 0.5
    exponent = -clip_lr * (unclipped_fraction - target_quantile)
    log_next = math.log(clip_norm) + exponent
    if not abs(log_next) <= _LOG_CLIP_RANGE:  # also NaN; exp would give 0 or overflow
        fail(
            "the next clip norm",
            "within [1e-300, 1e300] (lower clip_lr or clip_count_stddev)",
            f"exp({log_next:.4g})",
        )
    return clip_norm * math.exp(exponent)
