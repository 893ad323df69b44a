"""Tests of the exercise checks of notebook 11."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from flwr.app import Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.clientapp.mod import fixedclipping_mod

from fl_dp_lab.exercises import (
    check_client_app,
    check_empty_round_probability,
    check_flower_noise_std,
    check_train_mods,
)
from fl_dp_lab.federated import local_update
from fl_dp_lab.flower.app import (
    arrays_to_flat,
    digits_clients,
    flat_to_arrays,
    make_client_app,
    make_model,
)


def test_flower_noise_std(capsys):
    assert check_flower_noise_std(0.8 * 1.5 / 4)
    assert "✓" in capsys.readouterr().out
    assert not check_flower_noise_std(0.8 * 1.5)  # std of the sum, not the average
    assert "Flower adds noise to the average" in capsys.readouterr().out
    assert not check_flower_noise_std(0.2)  # forgot C
    assert "sensitivity C" in capsys.readouterr().out
    assert check_flower_noise_std(np.float32(0.3))  # float32 rounding is not a wrong answer
    assert not check_flower_noise_std(...)
    assert "not answered yet" in capsys.readouterr().out
    with pytest.raises(TypeError):
        check_flower_noise_std("0.3")


def test_empty_round_probability(capsys):
    assert check_empty_round_probability(0.7**10)
    assert not check_empty_round_probability(0)  # thinks sampling is fixed-size
    assert "every client flips its own coin" in capsys.readouterr().out
    assert not check_empty_round_probability(0.3**10)
    assert "*every* client joins" in capsys.readouterr().out
    assert check_empty_round_probability(0.0282)  # the printed value, 3 digits
    assert not check_empty_round_probability(0.02975)  # a simulated frequency
    assert "simulated frequency" in capsys.readouterr().out
    assert not check_empty_round_probability(...)
    with pytest.raises(TypeError):
        check_empty_round_probability([0.1, 0.2])


def test_train_mods(capsys):
    assert check_train_mods(make_client_app(train_mods=[fixedclipping_mod]))
    assert "✓" in capsys.readouterr().out
    assert not check_train_mods(make_client_app(app_mods=[fixedclipping_mod]))
    assert "evaluate messages fail" in capsys.readouterr().out
    assert not check_train_mods(make_client_app())  # no clipping at all
    assert "not clipped" in capsys.readouterr().out
    assert not check_train_mods(...)
    with pytest.raises(TypeError):
        check_train_mods(fixedclipping_mod)


def _client_app(
    *,
    reply="update",
    count=True,
    partition=None,
    from_zero=False,
    seed=None,
    fail=False,
    wrong_count=False,
):
    """A train-only ClientApp, right by default; each keyword plants one plausible slip."""
    app = ClientApp()

    @app.train()
    def train(message, context):
        if fail:
            raise KeyError("partition_id")
        node = context.node_config
        clients, _, _ = digits_clients(node["num-partitions"])
        x, y = clients[node["partition-id"] if partition is None else partition]
        config = message.content["config"]
        model = make_model()
        start = arrays_to_flat(message.content["arrays"], None if from_zero else model)
        update = local_update(
            model,
            x,
            y,
            epochs=config["local-epochs"],
            batch_size=config["batch-size"],
            lr=config["lr"],
            generator=torch.Generator().manual_seed(config["seed"] if seed is None else seed),
        )
        arrays = flat_to_arrays(update if reply == "update" else start + update)
        records = {"update": arrays}
        if count:
            records["metrics"] = MetricRecord({"num-examples": 1437 if wrong_count else len(y)})
        return Message(RecordDict(records), reply_to=message)

    return app


def test_client_app_right_answer_passes(capsys):
    assert check_client_app(_client_app())
    assert "✓ Exercise 11.4" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("slip", "named"),
    [
        (dict(reply="weights"), "that is the node's new model"),
        (dict(count=False), "no 'num-examples'"),
        (dict(wrong_count=True), "reports 1437 examples"),
        (dict(partition=0), "another node's data"),
        (dict(from_zero=True), "initial weights, not from the message's"),
        (dict(seed=0), "the message's settings and seed"),
        (dict(fail=True), "raised KeyError"),
    ],
)
def test_client_app_names_each_plausible_slip(slip, named, capsys):
    assert not check_client_app(_client_app(**slip))
    out = capsys.readouterr().out
    assert "✗ Exercise 11.4" in out and named in out, out


def test_client_app_unanswered_or_malformed(capsys):
    assert not check_client_app(...)
    assert "not answered yet" in capsys.readouterr().out
    assert not check_client_app(ClientApp())  # no train handler registered
    assert "raised ValueError" in capsys.readouterr().out
    with pytest.raises(TypeError):
        check_client_app(lambda message, context: message)
