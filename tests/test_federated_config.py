"""The federated run settings: frozen, keyword-only, checked when built (and when replaced)."""

from __future__ import annotations

import dataclasses
import typing

import pytest
import torch

from fl_dp_lab.federated import (
    AdaptiveClipping,
    DPFedAvgServer,
    LocalDPSGD,
    LocalSGD,
    UserLevelDP,
    run_dp_fedavg,
)
from fl_dp_lab.flower.app import DEFAULT_RUN_CONFIG, local_config, privacy_config
from fl_dp_lab.models import LogisticRegression

PRIVACY = UserLevelDP(noise_multiplier=1.0, clip_norm=1.0, sample_rate=0.1, delta=1e-5)


@pytest.mark.parametrize(
    ("build", "error", "match"),
    [
        (lambda: LocalSGD(epochs=0, batch_size=1, lr=0.1), ValueError, "epochs must be"),
        (lambda: LocalSGD(epochs=1, batch_size=0, lr=0.1), ValueError, "batch_size must be"),
        (lambda: LocalSGD(epochs=1, batch_size=1, lr=-1.0), ValueError, "lr must be > 0"),
        (lambda: LocalSGD(epochs=1.5, batch_size=1, lr=0.1), TypeError, "epochs must be"),
        (lambda: LocalDPSGD(epochs=1, lr=0.1, noise_multiplier=-1), ValueError, "noise_mult"),
        (
            lambda: LocalDPSGD(epochs=1, lr=0.1, noise_multiplier=1, sample_rate=0),
            ValueError,
            "sample_rate must be",
        ),
        (lambda: AdaptiveClipping(clip_lr=11.0), ValueError, "clip_lr must be"),
        (lambda: AdaptiveClipping(target_quantile=1.5), ValueError, "target_quantile must be"),
        (lambda: AdaptiveClipping(count_stddev=0.0), ValueError, "count_stddev must be > 0"),
        (lambda: dataclasses.replace(PRIVACY, clip_norm=0.0), ValueError, "clip_norm must be"),
        (lambda: dataclasses.replace(PRIVACY, delta=1.0), ValueError, "delta must be"),
        (
            lambda: dataclasses.replace(PRIVACY, accountant="moments"),
            ValueError,
            "accountant must be one of",
        ),
        (lambda: dataclasses.replace(PRIVACY, adaptive=0.2), TypeError, "adaptive must be"),
    ],
)
def test_a_bad_setting_fails_when_the_object_is_built(build, error, match):
    with pytest.raises(error, match=match):
        build()


def test_settings_are_frozen_keyword_only_and_replace_checks_again():
    local = LocalSGD(epochs=1, batch_size=16, lr=0.5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        local.lr = 1.0
    with pytest.raises(TypeError):
        LocalSGD(1, 16, 0.5)  # positional: lr and batch size could be swapped silently
    assert dataclasses.replace(local, epochs=3) == LocalSGD(epochs=3, batch_size=16, lr=0.5)
    assert typing.get_args(typing.get_type_hints(UserLevelDP)["accountant"]) == ("pld", "rdp")


def test_a_bad_clip_lr_fails_before_any_training():
    # clip_lr used to be checked inside round 1, after a round of local training
    calls = []

    def loss_fn(output, target):
        calls.append(1)
        return torch.nn.functional.cross_entropy(output, target)

    x, y = torch.randn(8, 3), torch.randint(0, 2, (8,))
    with pytest.raises(ValueError, match="clip_lr"):
        run_dp_fedavg(
            LogisticRegression(3, 2),
            [(x, y)],
            rounds=1,
            privacy=dataclasses.replace(PRIVACY, adaptive=AdaptiveClipping(clip_lr=1e300)),
            local=LocalSGD(epochs=1, batch_size=4, lr=0.1),
            generator=torch.Generator(),
            loss_fn=loss_fn,
            progress=False,
        )
    assert calls == []


def test_the_flower_run_config_builds_the_same_objects():
    assert privacy_config(DEFAULT_RUN_CONFIG) == UserLevelDP(
        noise_multiplier=DEFAULT_RUN_CONFIG["noise-multiplier"],
        clip_norm=DEFAULT_RUN_CONFIG["clip-norm"],
        sample_rate=DEFAULT_RUN_CONFIG["sample-rate"],
        delta=DEFAULT_RUN_CONFIG["delta"],
    )
    assert local_config(DEFAULT_RUN_CONFIG | {"lr": 0.1}) == LocalSGD(
        epochs=DEFAULT_RUN_CONFIG["local-epochs"],
        batch_size=DEFAULT_RUN_CONFIG["batch-size"],
        lr=0.1,
    )
    with pytest.raises(ValueError, match="clip-norm must be"):
        privacy_config(DEFAULT_RUN_CONFIG | {"clip-norm": -1.0})


def test_the_server_refuses_a_default_count_noise_too_small_before_any_round():
    few = dataclasses.replace(PRIVACY, adaptive=AdaptiveClipping())
    with pytest.raises(ValueError, match=r"count_stddev must be given: its default q\*K/20"):
        DPFedAvgServer(few, num_clients=10, generator=torch.Generator())
    with pytest.raises(ValueError, match="sampling must be one of"):
        DPFedAvgServer(PRIVACY, num_clients=10, generator=torch.Generator(), sampling="fixed")
