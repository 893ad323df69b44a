"""Seeded federated runs replayed against numbers recorded before a refactoring.

The expected values below were measured on the pre-refactor code (the
25-parameter ``run_dp_fedavg`` and a DP-FedAvg server round written
separately in ``fl_dp_lab.flower.server``), with the same seeds, data and settings.
They must not change: a refactoring of the federated package keeps every
seeded run identical, random draw for random draw. If one of them moves,
the order of the random draws or the arithmetic changed; find out why
before touching a number here.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from test_flower_app import SMALL, run_direct

from fl_dp_lab.federated import (
    AdaptiveClipping,
    LocalDPSGD,
    LocalSGD,
    UserLevelDP,
    flatten_parameters,
    run_dp_fedavg,
    run_fedavg,
)
from fl_dp_lab.flower.app import digits_clients, make_model
from fl_dp_lab.flower.server import make_server_app

LOCAL = LocalSGD(epochs=1, batch_size=16, lr=0.5)
PRIVACY = UserLevelDP(noise_multiplier=0.5, clip_norm=2.0, sample_rate=0.5, delta=1e-3)


def fingerprint(weights: torch.Tensor) -> list[float]:
    """Sum, L1 norm and two entries of the final flat weights (650 of them)."""
    w = weights.double()
    return [float(w.sum()), float(w.abs().sum()), float(w[7]), float(w[-1])]


def check(got: list[float], expected: list[float]) -> None:
    # float32 weights, summed in float64: identical runs agree to the last bits
    assert got == pytest.approx(expected, rel=1e-6, abs=1e-9)


def check_weights(weights: torch.Tensor, expected: list[float]) -> None:
    """``fingerprint(weights)`` against ``expected``: the sum to 1e-7 of the L1 norm.

    Softmax regression's weights sum to about zero over the classes, so their sum is
    float32 rounding (a few 1e-7 here) whose sign follows the CPU's BLAS kernels: it is
    compared on the scale of the weights (their L1 norm), the rest with ``check``.
    """
    got = fingerprint(weights)
    assert got[0] == pytest.approx(expected[0], abs=1e-7 * abs(expected[1]))
    check(got[1:], expected[1:])


# (accuracy per round, clients per round, weight fingerprint), measured pre-refactor
FEDAVG = (
    [0.6222222447395325, 0.75, 0.8805555701255798],
    [3, 3, 3],
    [-3.518216544762254e-07, 89.17584973169869, -0.0076279593631625175, -0.0018407031893730164],
)
EPSILON_PLD = [6.450503742742613, 9.4502866005293, 11.755944675256885]
# (accuracy, clients, epsilon, clip norm, weight fingerprint), measured pre-refactor
DP_FEDAVG = {
    "fixed clip": (
        [0.27222222089767456, 0.4277777671813965, 0.75],
        [4, 6, 4],
        EPSILON_PLD,
        [2.0, 2.0, 2.0],
        [-5.6802878389135, 255.12517978157848, -0.03755080699920654, -0.4693930745124817],
    ),
    "adaptive clip": (
        [0.26944443583488464, 0.36666667461395264, 0.4972222149372101],
        [4, 6, 1],
        EPSILON_PLD,
        [2.0, 2.1735334874421035, 2.057642697228737],
        [5.305362693965435, 262.7797821983695, 0.2634179890155792, 0.451716810464859],
    ),
    "record-level DP-SGD": (
        [0.12777778506278992, 0.12777778506278992, 0.18888889253139496],
        [4, 6, 4],
        EPSILON_PLD,
        [2.0, 2.0, 2.0],
        [-6.195985806174576, 230.95426249038428, -0.011842191219329834, -0.5782787799835205],
    ),
    "rdp, server lr 0.7": (
        [0.27222222089767456, 0.43888887763023376, 0.7361111044883728],
        [4, 6, 4],
        [7.311264595517626, 10.777447835590989, 13.486818872737336],
        [2.0, 2.0, 2.0],
        [-3.9762027715332806, 182.28261201409623, -0.026983782649040222, -0.3510712683200836],
    ),
}
SETTINGS = {
    "fixed clip": ({}, {}),
    "adaptive clip": (
        {"adaptive": AdaptiveClipping(target_quantile=0.5, clip_lr=0.2, count_stddev=1.0)},
        {},
    ),
    "record-level DP-SGD": (
        {},
        {"local": LocalDPSGD(epochs=1, lr=0.5, noise_multiplier=0.8, sample_rate=0.25)},
    ),
    "rdp, server lr 0.7": ({"accountant": "rdp"}, {"server_lr": 0.7}),
}


@pytest.mark.parametrize("vectorised", [True, False])
def test_fedavg_replays_the_recorded_run(vectorised):
    clients, x_test, y_test = digits_clients(8)
    model = make_model()
    history = run_fedavg(
        model,
        clients,
        rounds=3,
        clients_per_round=3,
        local=LOCAL,
        generator=torch.Generator().manual_seed(0),
        x_test=x_test,
        y_test=y_test,
        vectorised=vectorised,
        progress=False,
    )
    accuracy, clients_per_round, weights = FEDAVG
    check(history.accuracy, accuracy)
    assert history.clients == clients_per_round
    check_weights(flatten_parameters(model), weights)


@pytest.mark.parametrize("vectorised", [True, False])
@pytest.mark.parametrize("name", list(DP_FEDAVG))
def test_dp_fedavg_replays_the_recorded_run(name, vectorised):
    privacy_changes, run_changes = SETTINGS[name]
    clients, x_test, y_test = digits_clients(8)
    model = make_model()
    history = run_dp_fedavg(
        model,
        clients,
        **{
            "rounds": 3,
            "privacy": dataclasses.replace(PRIVACY, **privacy_changes),
            "local": LOCAL,
            "generator": torch.Generator().manual_seed(1),
            "x_test": x_test,
            "y_test": y_test,
            "vectorised": vectorised,
            "progress": False,
            **run_changes,
        },
    )
    accuracy, clients_per_round, epsilon, clip_norm, weights = DP_FEDAVG[name]
    check(history.accuracy, accuracy)
    assert history.clients == clients_per_round
    check(history.epsilon, epsilon)
    check(history.clip_norm, clip_norm)
    check_weights(flatten_parameters(model), weights)


def test_flower_server_app_replays_the_recorded_run():
    # 6 nodes in this process (no Ray), SMALL's q = 0.5, sigma = 0.7, C = 1, 3 rounds
    result, _ = run_direct(make_server_app, 6, SMALL | {"num-rounds": 3})
    check(result.history.accuracy, [0.1805555522441864, 0.4000000059604645, 0.32499998807907104])
    assert result.history.clients == [4, 3, 1]
    check(result.history.epsilon, [3.907286899907903, 5.525965713327633, 6.78863134665104])
    assert result.partitions == list(range(6))
    assert result.federated_accuracy == pytest.approx(0.35699373612241275, rel=1e-6)
    check_weights(
        result.weights,
        [6.7620885104406625, 220.80666914652102, 0.01029660552740097, 0.7438189387321472],
    )
