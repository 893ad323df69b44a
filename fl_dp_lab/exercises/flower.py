"""Exercises of notebook 11 (scaling out with Flower)."""

from __future__ import annotations

import math
from typing import Any

from fl_dp_lab.exercises._core import as_number, feedback, is_unanswered, report_unanswered

__all__ = ["check_empty_round_probability", "check_flower_noise_std", "check_train_mods"]


def check_flower_noise_std(answer: Any) -> bool:
    """Exercise 11.1: the noise std Flower's server-side DP wrapper adds to the average.

    ``DifferentialPrivacyServerSideFixedClipping`` with noise_multiplier
    sigma = 0.8, clipping_norm C = 1.5 and num_sampled_clients m = 4 adds
    N(0, (sigma*C/m)^2) to every coordinate of the averaged model: the sum
    has sensitivity C, and the average is the sum divided by m.
    Right answer: 0.8 * 1.5 / 4 = 0.3.
    """
    name = "Exercise 11.1"
    if is_unanswered(answer):
        return report_unanswered(name)
    value = as_number("answer", answer)
    sigma, clip, m = 0.8, 1.5, 4
    wrong = {
        sigma * clip: "that is the std on the *sum*; Flower adds noise to the average, "
        "so divide by the number of sampled clients.",
        sigma / m: "the noise has to cover the sensitivity C of the clipped sum, "
        "so it is sigma times C before dividing by m.",
        sigma: "sigma is a multiplier: the std is sigma * C on the sum, then divided by m.",
    }
    # relative 1e-4: a float32 0.3 passes; the slips are at least 30 % away
    for bad, hint in wrong.items():
        if math.isclose(value, bad, rel_tol=1e-4):
            return feedback(name, False, success="", hint=hint)
    return feedback(
        name,
        math.isclose(value, sigma * clip / m, rel_tol=1e-4),
        success="sigma*C/m = 0.3: Flower divides by the fixed m, our dp_aggregate by q*K.",
        hint="the sum of m clipped updates has L2 sensitivity C; the noise std on the sum is "
        "sigma*C, and the average divides everything by m.",
    )


def check_empty_round_probability(answer: Any) -> bool:
    """Exercise 11.2: how often a Poisson-sampled round has no client at all.

    With K = 10 clients each joining with probability q = 0.3, a round is
    empty with probability (1 - q)^K = 0.7^10 ~ 0.0282 (accepted to 3 digits;
    a simulated frequency within 25 % gets a hint to use the formula). Flower's fixed-size
    sampling never has an empty round; the course's ServerApp then releases
    pure noise, as the accountant assumes.
    """
    name = "Exercise 11.2"
    if is_unanswered(answer):
        return report_unanswered(name)
    value = as_number("answer", answer)
    expected = 0.7**10
    if abs(value) < 1e-12:
        return feedback(
            name,
            False,
            success="",
            hint="with fixed-size sampling it would be 0, but here every client flips its own "
            "coin: all ten can say no.",
        )
    if abs(value - 0.3**10) < 1e-12:
        return feedback(
            name,
            False,
            success="",
            hint="0.3**10 is the chance that *every* client joins; an empty round needs every "
            "client to stay out, each with probability 1 - q.",
        )
    if not math.isclose(value, expected, rel_tol=5e-3) and abs(value / expected - 1) < 0.25:
        return feedback(
            name,
            False,
            success="",
            hint=f"{value:.4g} is close, as a simulated frequency would be; the exact probability "
            "is a formula: each client stays out with probability 1 - q, independently.",
        )
    return feedback(
        name,
        math.isclose(value, expected, rel_tol=5e-3),
        success=f"(1 - q)**K = {expected:.4f}: about one round in 35 trains nobody and "
        "releases only noise.",
        hint="each client stays out independently with probability 1 - q; multiply over K clients.",
    )


def check_train_mods(app: Any) -> bool:
    """Exercise 11.3: a ClientApp whose ``fixedclipping_mod`` wraps training only.

    The right answer is ``make_client_app(train_mods=[fixedclipping_mod])``:
    ``train`` replies are clipped to the clipping norm the server sends, and
    ``evaluate`` messages (which carry no clipping norm) still work. Putting
    the mod on the whole app (``app_mods``) makes every evaluate fail; no
    mod at all leaves the update unclipped.
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
            hint="evaluate messages fail: the mod wraps every message. Pass it to the train "
            "handler only (train_mods=...), as @app.train(mods=[...]) does.",
        )
    config = {"seed": 0, "local-epochs": 1, "batch-size": 8, "lr": 5.0, "clipping_norm": 0.1}
    train = deliver(
        app,
        "train",
        RecordDict({"arrays": weights, "config": ConfigRecord(config)}),
        partition_id=0,
        num_partitions=2,
    )
    norm = (
        float("inf")
        if train.has_error()
        else torch.linalg.vector_norm(arrays_to_flat(train.content["arrays"])).item()
    )
    return feedback(
        name,
        norm <= 0.1 * (1 + 1e-5),
        success="train replies are clipped to C and evaluate still works: the mod sits on "
        "@app.train(mods=[...]).",
        hint="the train reply is not clipped: add fixedclipping_mod to train_mods.",
    )
