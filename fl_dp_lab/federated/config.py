"""The settings of a federated run, as small frozen objects checked when they are built.

A run reads as what it is: ``run_dp_fedavg(model, clients, rounds=T,
privacy=UserLevelDP(...), local=LocalSGD(...), generator=g)``. Each object
groups the numbers of one idea, so the local learning rate cannot be
swapped with the server's or the batch size with the epoch count by
position (every field is keyword-only), and a bad value fails where the
object is built, before any round trains. Override one field with
``dataclasses.replace(config, lr=0.1)``, which checks again.

- ``LocalSGD``: what a client runs, plain mini-batch SGD (McMahan et al., 2017).
- ``LocalDPSGD``: what a client runs with record-level DP-SGD inside it
  (Abadi et al., 2016): Poisson batches, per-example clipping, noise.
- ``UserLevelDP``: the server's user-level DP-FedAvg (McMahan et al., 2018):
  client sampling rate q, clip norm C, noise multiplier sigma, delta and the
  accountant; optionally ``AdaptiveClipping`` (Andrew et al., 2021).

The Flower app builds the same objects from its run config
(``fl_dp_lab.flower.app.privacy_config`` and ``local_config``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from fl_dp_lab._validate import check_choice, check_int, check_real, fail
from fl_dp_lab.federated.adaptive_clipping import MAX_CLIP_LR

__all__ = ["Accountant", "AdaptiveClipping", "LocalDPSGD", "LocalSGD", "UserLevelDP"]

#: The privacy accountants ``fl_dp_lab.accounting.epsilon`` offers.
Accountant = Literal["pld", "rdp"]


@dataclass(frozen=True, kw_only=True)
class LocalSGD:
    """A client's local training: E epochs of mini-batch SGD (``local_update``).

    Attributes:
        epochs: local epochs E, >= 1.
        batch_size: local batch size B, >= 1.
        lr: local learning rate, > 0.

    >>> LocalSGD(epochs=1, batch_size=16, lr=0.5)
    LocalSGD(epochs=1, batch_size=16, lr=0.5)
    """

    epochs: int
    batch_size: int
    lr: float

    def __post_init__(self) -> None:
        _set(self, "epochs", check_int("epochs", self.epochs, minimum=1))
        _set(self, "batch_size", check_int("batch_size", self.batch_size, minimum=1))
        _set(self, "lr", check_real("lr", self.lr, low=0.0, low_open=True))


@dataclass(frozen=True, kw_only=True)
class LocalDPSGD:
    """A client's local training with record-level DP-SGD (``dp_sgd_local_update``).

    round(epochs / sample_rate) steps on Poisson batches, each example's
    gradient clipped to ``max_grad_norm``, Gaussian noise of std
    noise_multiplier * max_grad_norm on the sum. Protects each example of
    the client, on top of (not instead of) the user-level guarantee.

    Attributes:
        epochs: expected passes over the client's data, >= 1.
        lr: local learning rate, > 0.
        noise_multiplier: sigma >= 0 of the per-example noise.
        max_grad_norm: per-example clip norm C > 0.
        sample_rate: q in (0, 1], the per-example sampling rate.

    >>> LocalDPSGD(epochs=1, lr=0.5, noise_multiplier=1.0).sample_rate
    0.5
    """

    epochs: int
    lr: float
    noise_multiplier: float
    max_grad_norm: float = 1.0
    sample_rate: float = 0.5

    def __post_init__(self) -> None:
        _set(self, "epochs", check_int("epochs", self.epochs, minimum=1))
        _set(self, "lr", check_real("lr", self.lr, low=0.0, low_open=True))
        _set(
            self,
            "noise_multiplier",
            check_real("noise_multiplier", self.noise_multiplier, low=0.0),
        )
        _set(
            self,
            "max_grad_norm",
            check_real("max_grad_norm", self.max_grad_norm, low=0.0, low_open=True),
        )
        _set(
            self,
            "sample_rate",
            check_real("sample_rate", self.sample_rate, low=0.0, high=1.0, low_open=True),
        )


@dataclass(frozen=True, kw_only=True)
class AdaptiveClipping:
    """Quantile-tracking clip norm (Andrew et al., 2021, Algorithm 1, geometric update).

    Each round C <- C * exp(-clip_lr * (b~ - target_quantile)), b~ the noisy
    fraction of update norms <= C (``adaptive_clip_norm``). The noisy count
    costs privacy too: the update noise is raised to
    ``update_noise_multiplier(noise_multiplier=sigma, clip_count_stddev=sigma_b)``
    so that the accounted sigma stays right.

    Attributes:
        target_quantile: gamma in [0, 1] (0.5 follows the median norm).
        clip_lr: eta in (0, 10], the step size of log C (Andrew et al. use 0.2).
        count_stddev: sigma_b > 0 of the noise on the count; None for the
            paper's default q*K/20, fixed when the run starts (it needs K).

    >>> AdaptiveClipping(clip_lr=0.2).target_quantile
    0.5
    """

    target_quantile: float = 0.5
    clip_lr: float = 0.2
    count_stddev: float | None = None

    def __post_init__(self) -> None:
        _set(
            self,
            "target_quantile",
            check_real("target_quantile", self.target_quantile, low=0.0, high=1.0),
        )
        _set(
            self,
            "clip_lr",
            check_real("clip_lr", self.clip_lr, low=0.0, high=MAX_CLIP_LR, low_open=True),
        )
        if self.count_stddev is not None:
            _set(
                self,
                "count_stddev",
                check_real("count_stddev", self.count_stddev, low=0.0, low_open=True),
            )


@dataclass(frozen=True, kw_only=True)
class UserLevelDP:
    """User-level DP-FedAvg on the server (McMahan et al., 2018, Algorithm 1).

    Every client joins a round with probability ``sample_rate``; the server
    releases (sum_k clip(Delta_k, C) + N(0, (sigma*C)^2 I)) / (q*K) and
    accounts epsilon at ``delta`` after every round (add/remove one whole
    client, Poisson sampling).

    Attributes:
        noise_multiplier: sigma >= 0 (0: no privacy, epsilon is inf).
        clip_norm: C > 0 (the initial C with adaptive clipping).
        sample_rate: q in (0, 1], the client sampling rate.
        delta: target delta in (0, 1).
        accountant: ``"pld"`` or ``"rdp"`` (``fl_dp_lab.accounting.epsilon``).
        adaptive: quantile clipping, or None for a fixed C.

    >>> UserLevelDP(noise_multiplier=1.0, clip_norm=1.0, sample_rate=0.1, delta=1e-5).accountant
    'pld'
    """

    noise_multiplier: float
    clip_norm: float
    sample_rate: float
    delta: float
    accountant: Accountant = "pld"
    adaptive: AdaptiveClipping | None = None

    def __post_init__(self) -> None:
        _set(
            self,
            "noise_multiplier",
            check_real("noise_multiplier", self.noise_multiplier, low=0.0),
        )
        _set(self, "clip_norm", check_real("clip_norm", self.clip_norm, low=0.0, low_open=True))
        _set(
            self,
            "sample_rate",
            check_real("sample_rate", self.sample_rate, low=0.0, high=1.0, low_open=True),
        )
        _set(
            self,
            "delta",
            check_real("delta", self.delta, low=0.0, high=1.0, low_open=True, high_open=True),
        )
        check_choice("accountant", self.accountant, ("pld", "rdp"))
        if self.adaptive is not None and not isinstance(self.adaptive, AdaptiveClipping):
            fail("adaptive", "an AdaptiveClipping (or None)", self.adaptive, TypeError)


def _set(config: object, name: str, value: object) -> None:
    """Store a checked (normalised) value on a frozen dataclass, in ``__post_init__`` only."""
    object.__setattr__(config, name, value)
