"""Exercises of notebook 11 (scaling out with Flower)."""

from __future__ import annotations

import math
from typing import Any

import torch

from fl_dp_lab.exercises._core import as_number, feedback, hints, is_unanswered, report_unanswered

__all__ = [
    "check_client_app",
    "check_empty_round_probability",
    "check_flower_noise_std",
    "check_train_mods",
]

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
hints(
    "Exercise 11.4",
    idea="a train handler reads three things: the global weights and the training settings "
    "from the message, and which slice of the data this node holds from its context; it "
    "replies with what the server aggregates, and how many examples stand behind it.",
    step="load the message's weights into a fresh make_model() (arrays_to_flat takes the model "
    "as its second argument), take this node's (x, y) from digits_clients at the node config's "
    "partition, run local_update with the message config's settings and a generator seeded "
    "with its seed, and reply a RecordDict holding the update as an ArrayRecord and the "
    "example count in a MetricRecord.",
    solution="node = context.node_config; x, y = digits_clients(node['num-partitions'])[0]"
    "[node['partition-id']]; config = message.content['config']; model = make_model(); "
    "arrays_to_flat(message.content['arrays'], model); update = local_update(model, x, y, "
    "epochs=config['local-epochs'], batch_size=config['batch-size'], lr=config['lr'], "
    "generator=torch.Generator().manual_seed(config['seed'])); return Message(RecordDict("
    "{'update': flat_to_arrays(update), 'metrics': MetricRecord({'num-examples': len(y)})}), "
    "reply_to=message)",
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


#: The hidden nodes of Exercise 11.4: (num-partitions, partition-id, local-epochs, batch-size, lr).
_CLIENT_CASES = ((7, 4, 1, 16, 0.3), (13, 11, 2, 8, 0.8), (4, 0, 1, 32, 0.5))


def check_client_app(app: Any) -> bool:
    """Exercise 11.4: a minimal ClientApp whose ``train`` handler replies the client's update.

    The app receives ``train`` messages for nodes it has not seen (other
    numbers of partitions, other partition ids), each with fresh random
    global weights, a fresh seed and its own local settings. Its reply must
    hold one ``ArrayRecord``, the update the course's client step
    (``fl_dp_lab.federated.local_update``) computes for that node, weights and
    config, to 1e-5, and a ``MetricRecord`` with the node's example count.
    The new weights sent instead of the update, training from the model's
    initial weights instead of the message's, another node's data, settings
    or batches that are not the message's, and a missing or wrong example
    count are each named.
    """
    from flwr.clientapp import ClientApp

    name = "Exercise 11.4"
    if is_unanswered(app):
        return report_unanswered(name)
    if not isinstance(app, ClientApp):
        raise TypeError(f"app must be a flwr.clientapp.ClientApp, got {app!r}")
    generator = torch.Generator().manual_seed(114)
    for num_partitions, partition_id, epochs, batch_size, lr in _CLIENT_CASES:
        start = 0.05 * torch.randn(650, generator=generator)
        seed = int(torch.randint(1, 2**31 - 1, (1,), generator=generator))
        config = {"seed": seed, "local-epochs": epochs, "batch-size": batch_size, "lr": lr}
        node = _ClientCase(num_partitions, partition_id, start, config)
        verdict = node.grade(app)
        if verdict:
            return feedback(name, False, success="", hint=verdict)
    return feedback(
        name,
        True,
        success="your ClientApp answers train messages for any node, model and seed with the "
        "update the course's client step computes: Flower only carries the messages.",
    )


class _ClientCase:
    """One hidden ``train`` message of Exercise 11.4 and the replies it tells apart."""

    def __init__(
        self, num_partitions: int, partition_id: int, start: torch.Tensor, config: dict[str, Any]
    ) -> None:
        self.num_partitions, self.partition_id = num_partitions, partition_id
        self.start, self.config = start, config

    def update(
        self,
        *,
        data: tuple[torch.Tensor, torch.Tensor],
        start: torch.Tensor | None = None,
        seed: int | None = None,
        settings: tuple[int, int, float] | None = None,
    ) -> torch.Tensor:
        """The course's client step with this case's inputs, or with one of them changed."""
        from fl_dp_lab.federated import assign_flat_parameters, local_update
        from fl_dp_lab.flower.app import make_model

        model = make_model()
        assign_flat_parameters(model, self.start if start is None else start)
        epochs, batch_size, lr = settings or (
            self.config["local-epochs"],
            self.config["batch-size"],
            self.config["lr"],
        )
        x, y = data
        return local_update(
            model,
            x,
            y,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            generator=torch.Generator().manual_seed(self.config["seed"] if seed is None else seed),
        )

    def grade(self, app: Any) -> str:
        """An empty string when ``app`` answers this message right, else what is wrong."""
        from flwr.app import ArrayRecord, ConfigRecord, RecordDict

        from fl_dp_lab.flower.app import arrays_to_flat, deliver, digits_clients, flat_to_arrays

        content = RecordDict(
            {"arrays": flat_to_arrays(self.start), "config": ConfigRecord(self.config)}
        )
        where = f"node {self.partition_id} of {self.num_partitions}"
        try:
            reply = deliver(
                app,
                "train",
                content,
                partition_id=self.partition_id,
                num_partitions=self.num_partitions,
            )
        except Exception as error:  # the learner's handler failed: say how, do not crash the cell
            return f"for {where}, the app raised {type(error).__name__}: {error}"
        if reply.has_error():
            return f"for {where}, the reply is an error: {reply.error.reason}"
        records = [r for r in reply.content.values() if isinstance(r, ArrayRecord)]
        if len(records) != 1:
            return f"the reply holds {len(records)} ArrayRecords; it must hold one, the update."
        try:
            sent = arrays_to_flat(records[0])
        except (KeyError, RuntimeError, TypeError, ValueError) as error:
            return f"the reply's ArrayRecord is not the model's arrays ({error})."
        clients, _, _ = digits_clients(self.num_partitions)
        data = clients[self.partition_id]
        expected = self.update(data=data)
        if not _close(sent, expected):
            return self._diagnose(sent, expected, clients)
        counts = [
            r["num-examples"] for r in reply.content.metric_records.values() if "num-examples" in r
        ]
        if not counts:
            return (
                "the update is right, but the reply has no 'num-examples' in a MetricRecord: "
                "the server and Flower's own strategies need the example count."
            )
        if counts[0] != len(data[1]):
            return (
                f"the update is right, but {where} reports {counts[0]} examples: count "
                "the examples it trained on."
            )
        return ""

    def _diagnose(
        self,
        sent: torch.Tensor,
        expected: torch.Tensor,
        clients: list[tuple[torch.Tensor, torch.Tensor]],
    ) -> str:
        from fl_dp_lab.flower.app import digits_clients

        if _close(sent, self.start + expected):
            return (
                "that is the node's new model; this server expects the update, the new weights "
                "minus the global ones it sent."
            )
        own = clients[self.partition_id]
        if _close(sent, self.update(data=own, start=torch.zeros_like(self.start))):
            return "the update starts from the model's initial weights, not from the message's."
        others = [clients[k] for k in range(self.num_partitions) if k != self.partition_id]
        tens, _, _ = digits_clients(10)
        others += [tens[self.partition_id % 10]]
        if any(_close(sent, self.update(data=d)) for d in others):
            return (
                "the update was trained on another node's data: this node's slice comes from "
                "its context's node config."
            )
        if _close(sent, self.update(data=own, seed=0)) or _close(
            sent, self.update(data=own, settings=(1, 16, 0.5))
        ):
            return (
                "the local training does not use the message's settings and seed; the server "
                "sends them in the train message's config."
            )
        return (
            "the reply is not the update the course's client step computes for this node, "
            "these weights and this config."
        )


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and bool(torch.allclose(a, b, rtol=1e-4, atol=1e-5))
