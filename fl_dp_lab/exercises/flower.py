"""Exercises of notebook 11 (scaling out with Flower)."""

from __future__ import annotations

import math
from typing import Any

from fl_dp_lab.exercises._core import as_number, feedback, hints, is_unanswered, report_unanswered

__all__ = ["check_empty_round_probability", "check_flower_noise_std", "check_train_mods"]

hints(
    "Exercise 11.1",
    idea="the wrapper adds noise to the average of m clipped updates; the noise has to cover "
    "one client's largest influence on that average.",
    step="the sum of m clipped updates has L2 sensitivity C, so the noise on the sum has std "
    "sigma * C; what happens to it when the sum becomes an average?",
    solution="0.8 * 1.5 / 4 (noise_multiplier * clipping_norm / num_sampled_clients).",
)
hints(
    "Exercise 11.2",
    idea="a round is empty when every client's coin comes up 'out'.",
    step="each client stays out with probability 1 - q, independently of the others.",
    solution="(1 - q) ** K with q = 0.3 and K = 10.",
)
hints(
    "Exercise 11.3",
    idea="the clipping mod must wrap the replies to train messages, and leave evaluate "
    "messages alone (they carry no clipping norm).",
    step="make_client_app takes mods for the whole app and mods for the train handler only.",
    solution="app = make_client_app(train_mods=[fixedclipping_mod])",
)


def check_flower_noise_std(answer: Any) -> bool:
    """Exercise 11.1: the noise std Flower's server-side DP wrapper adds to the average.

    ``DifferentialPrivacyServerSideFixedClipping`` with noise_multiplier 0.8,
    clipping_norm 1.5 and num_sampled_clients 4, to a relative 1e-4. The std
    on the sum, the sensitivity left out and the bare multiplier are each
    named.
    """
    name = "Exercise 11.1"
    if is_unanswered(answer):
        return report_unanswered(name)
    value = as_number("answer", answer)
    sigma, clip, m = 0.8, 1.5, 4
    wrong = {
        sigma * clip: "that is the std on the *sum*; Flower adds noise to the average.",
        sigma / m: "the noise has to cover the sensitivity C of the clipped sum.",
        sigma: "sigma is a multiplier, not a standard deviation.",
    }
    # relative 1e-4: a float32 0.3 passes; the slips are at least 30 % away
    for bad, hint in wrong.items():
        if math.isclose(value, bad, rel_tol=1e-4):
            return feedback(name, False, success="", hint=hint)
    return feedback(
        name,
        math.isclose(value, sigma * clip / m, rel_tol=1e-4),
        success="Flower divides by the fixed m, our dp_aggregate by q*K.",
    )


def check_empty_round_probability(answer: Any) -> bool:
    """Exercise 11.2: how often a Poisson-sampled round has no client at all.

    K = 10 clients, each joining with probability q = 0.3; accepted to a
    relative 5e-3, and a simulated frequency within 25 % gets a hint to find
    the exact probability. Zero and the chance that every client joins are
    each named.
    """
    name = "Exercise 11.2"
    if is_unanswered(answer):
        return report_unanswered(name)
    value = as_number("answer", answer)
    q, k = 0.3, 10
    expected = math.prod([1 - q] * k)
    if abs(value) < 1e-12:
        return feedback(
            name,
            False,
            success="",
            hint="with fixed-size sampling it would be 0, but here every client flips its own "
            "coin: all ten can say no.",
        )
    if abs(value - q**k) < 1e-12:
        return feedback(
            name,
            False,
            success="",
            hint="that is the chance that *every* client joins.",
        )
    if not math.isclose(value, expected, rel_tol=5e-3) and abs(value / expected - 1) < 0.25:
        return feedback(
            name,
            False,
            success="",
            hint=f"{value:.4g} is close, as a simulated frequency would be; the exact probability "
            "is asked for.",
        )
    return feedback(
        name,
        math.isclose(value, expected, rel_tol=5e-3),
        success="about one round in 35 trains nobody and releases only noise.",
    )


def check_train_mods(app: Any) -> bool:
    """Exercise 11.3: a ClientApp whose ``fixedclipping_mod`` wraps training only.

    Sends the app an evaluate message (which must still work) and a train
    message (whose reply must be clipped to the clipping norm the server
    sends). A mod on every message and no mod at all are each named.
    """
    import torch
    from flwr.app import ConfigRecord, RecordDict
    from flwr.clientapp import ClientApp

    from fl_dp_lab.flower.app import arrays_to_flat, deliver, flat_to_arrays

    name = "Exercise 11.3"
    if is_unanswered(app):
        return report_unanswered(name)
    if not isinstance(app, ClientApp):
        raise TypeError(f"app must be a flwr.clientapp.ClientApp, got {app!r}")
    weights = flat_to_arrays(torch.zeros(650))
    evaluate = deliver(app, "evaluate", RecordDict({"arrays": weights}), partition_id=0,
                       num_partitions=2)  # fmt: skip
    if evaluate.has_error():
        return feedback(
            name,
            False,
            success="",
            hint="evaluate messages fail: the mod wraps every message.",
        )
    config = ConfigRecord(
        {"seed": 0, "local-epochs": 1, "batch-size": 8, "lr": 5.0, "clipping_norm": 0.1}
    )
    train = deliver(
        app,
        "train",
        RecordDict({"arrays": weights, "config": config}),
        partition_id=0,
        num_partitions=2,
    )
    norm = (
        float("inf")
        if train.has_error()
        else torch.linalg.vector_norm(arrays_to_flat(train.content.array_records["arrays"])).item()
    )
    return feedback(
        name,
        norm <= 0.1 * (1 + 1e-5),
        success="train replies are clipped to C and evaluate still works: the mod sits on "
        "the train handler only.",
        hint="the train reply is not clipped.",
    )
