"""Exercises of notebooks 08-09 (FedAvg and DP-FedAvg)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from fl_dp_lab.exercises._core import (
    as_array,
    as_number,
    feedback,
    graded,
    hints,
    is_unanswered,
    report_unanswered,
)

__all__ = [
    "check_dp_aggregate",
    "check_fedavg_average",
    "check_local_steps",
    "check_user_level_epsilon",
]

_PLAIN_MEAN = (
    "that is the plain mean: a client with 7 examples should count 7 times as much as one with 1."
)

hints(
    "Exercise 08.1",
    idea="each client should count in proportion to how much data it trained on.",
    step="weight row k by its client's size n_k, add the weighted rows, and divide so that the "
    "weights add up to 1.",
    solution="return (sizes[:, None] * updates).sum(0) / sizes.sum()",
)
hints(
    "Exercise 08.2",
    idea="a local epoch is one pass over the client's data in batches; every batch is a step.",
    step="count the batches of one epoch (a short last batch is still a step), then the epochs.",
    solution="steps = E * ceil(n / B) = 3 * math.ceil(45 / 10).",
)
hints(
    "Exercise 09.1",
    idea="bound each client's influence first, then hide it: clip every update, sum, add "
    "Gaussian noise scaled to one update's largest size, and divide by a count that does not "
    "depend on who came.",
    step="clip row k by min(1, C / ||row_k||) (guard the division), add the rows, add "
    "N(0, (sigma * C)^2) to every coordinate of the sum, divide by expected_clients.",
    solution="norms = updates.norm(dim=1, keepdim=True); clipped = updates * "
    "torch.clamp(clip_norm / (norms + 1e-12), max=1.0); noisy = clipped.sum(0) + "
    "noise_multiplier * clip_norm * torch.randn(updates.shape[1], generator=generator, "
    "dtype=updates.dtype); return noisy / expected_clients",
)
hints(
    "Exercise 09.2",
    idea="every round is one subsampled Gaussian step at the level of users; the rounds compose.",
    step="the course's accountant takes the noise multiplier, the chance that a user takes "
    "part in a round, the number of rounds and delta.",
    solution="accounting.epsilon(noise_multiplier=1.0, sample_rate=0.05, steps=50, delta=1e-5)",
)


@graded("Exercise 08.1")
def check_fedavg_average(average: Any) -> bool:
    """Exercise 08.1: ``average(updates, sizes)``, the FedAvg average of client updates.

    Tested on four cases: three clients of sizes 1, 2 and 7 (small enough to
    check by hand), then random updates and random sizes (seeded, float32
    tensors as in the notebook) with 5, 4 and 8 clients and 2, 6 and 3
    parameters. A function that ignores its input (a vector copied from one
    case), the plain mean, a missing or wrong division and weights off by one
    each get their own hint.
    """
    name = "Exercise 08.1"
    if is_unanswered(average):
        return report_unanswered(name)
    if not callable(average):
        raise TypeError(f"average must be a function average(updates, sizes), got {average!r}")
    why = "one averaged update, shaped like a single client's update (average over axis 0)"
    cases = [(torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 2.0]]), torch.tensor([1.0, 2.0, 7.0]))]
    generator = torch.Generator().manual_seed(8)
    for clients, params in ((5, 2), (4, 6), (8, 3)):
        updates = torch.randn(clients, params, generator=generator)
        sizes = torch.randint(1, 40, (clients,), generator=generator).float()
        sizes[0] = 1.0  # a tiny client, so weights off by one change the result
        cases.append((updates, sizes))
    answers = []
    for updates, sizes in cases:
        got = average(updates.clone(), sizes.clone())
        answers.append(as_array("average(updates, sizes)", got, shape=(updates.shape[1],), why=why))
        if len(answers) == 2 and np.allclose(answers[0], answers[1]):  # two cases of one shape
            return feedback(
                name,
                False,
                success="",
                hint="your function returns the same vector for different updates and sizes: "
                "compute the result from its arguments, not from numbers copied from one case.",
            )
    for (updates, sizes), got in zip(cases, answers, strict=True):
        u, n = updates.double(), sizes.double()
        if _close(got, (n[:, None] * u).sum(0) / n.sum()):
            continue
        hint = "the result is not the size-weighted average."
        for weights, divisor, words in (
            (torch.ones_like(n), len(n), _PLAIN_MEAN),
            (n, 1.0, "that is the weighted sum, not yet an average."),
            (n, len(n), "the weights of an average add up to 1; dividing by the number of "
             "clients does not make them."),
            (n + 1, (n + 1).sum(), "the weights are off by one (one more than each size)."),
            (n - 1, (n - 1).sum(), "the weights are off by one (one less than each size)."),
        ):  # fmt: skip
            if _close(got, (weights[:, None] * u).sum(0) / divisor):
                hint = words
                break
        shape = tuple(updates.shape)
        return feedback(name, False, success="", hint=f"on updates of shape {shape}, {hint}")
    return feedback(
        name,
        True,
        success="each client counts in proportion to its data, so FedAvg with full "
        "participation and one full-batch step is exactly gradient descent on the pooled data.",
    )


def check_local_steps(answer: Any) -> bool:
    """Exercise 08.2: local SGD steps of a client with 45 examples, E = 3 epochs, B = 10.

    Compared with the number of batches a loader of that client yields over
    the epochs. Rounding the batches down (or not at all) and one epoch only
    are each named.
    """
    name = "Exercise 08.2"
    if is_unanswered(answer):
        return report_unanswered(name)
    value = as_number("answer", answer)
    n, epochs, batch = 45, 3, 10
    per_epoch = len(range(0, n, batch))  # the batches a loader cuts, the last one short
    if abs(value - epochs * n / batch) < 1e-9 or abs(value - epochs * (n // batch)) < 1e-9:
        return feedback(
            name,
            False,
            success="",
            hint="the last batch of an epoch is short but still a step.",
        )
    if abs(value - per_epoch) < 1e-9:
        return feedback(name, False, success="", hint="that is one epoch; the client runs E = 3.")
    return feedback(
        name,
        value == epochs * per_epoch,
        success="a big client moves further from the global model than a small one in the "
        "same round, one source of client drift on non-IID data.",
    )


@graded("Exercise 09.1")
def check_dp_aggregate(dp_average: Any) -> bool:
    """Exercise 09.1: the clip-then-noise average, written by the learner.

    ``dp_average(updates, clip_norm, noise_multiplier, expected_clients, generator)``
    is checked without noise on rows that need clipping (a missing clip, a
    clip to 1 instead of C, or a division by the actual number of clients is
    caught), then with noise on zero updates, where the output's standard
    deviation must match the library's ``dp_aggregate`` to 3 %. Noise of the
    wrong scale, the variance for the std, noise added after the division and
    an output that is not finite (0/0 on a zero update) are each named.
    """
    name = "Exercise 09.1"
    if is_unanswered(dp_average):
        return report_unanswered(name)
    if not callable(dp_average):
        raise TypeError(f"dp_average must be a function, got {dp_average!r}")
    updates = torch.tensor([[3.0, 4.0], [0.3, 0.4], [0.0, 2.0]], dtype=torch.float64)
    generator = torch.Generator().manual_seed(0)
    why = "one aggregated update, shaped like a single client's update (sum over axis 0)"
    got = as_array(
        "dp_average(...)", dp_average(updates, 2.0, 0.0, 5.0, generator), shape=(2,), why=why
    )
    # row norms 5, 0.5 and 2: at C = 2 only the first is scaled, by 2/5
    expected = torch.tensor([1.2 + 0.3 + 0.0, 1.6 + 0.4 + 2.0]) / 5.0
    clipped_to_one = torch.tensor([0.6 + 0.3 + 0.0, 0.8 + 0.4 + 1.0]) / 5.0
    if not torch.allclose(torch.as_tensor(got).float(), expected, atol=1e-5):
        unclipped = updates.sum(0) / 5.0
        if not torch.isfinite(torch.as_tensor(got)).all():
            hint = "the result is not finite: look for a division by zero."
        elif torch.allclose(torch.as_tensor(got).float(), unclipped.float(), atol=1e-5):
            hint = "without noise the rows came out unclipped: clip every row to norm <= C first."
        elif torch.allclose(torch.as_tensor(got).float(), clipped_to_one, atol=1e-5):
            hint = "the rows were clipped to norm 1, whatever clip_norm is."
        elif torch.allclose(torch.as_tensor(got).float(), expected * 5.0 / 3.0, atol=1e-5):
            hint = (
                "that divides by how many clients came; the count itself would leak who took part."
            )
        else:
            hint = "without noise, the result is not the average of the clipped rows."
        return feedback(name, False, success="", hint=hint)
    zeros = torch.zeros(4, 50_000, dtype=torch.float64)
    sigma, clip, expected_clients = 1.5, 0.4, 10.0
    noisy = as_array(
        "dp_average(...)",
        dp_average(zeros, clip, sigma, expected_clients, generator),
        shape=(50_000,),
        why=why,
    )
    if not np.isfinite(noisy).all():
        return feedback(
            name,
            False,
            success="",
            hint="on all-zero updates the result is not finite: a zero row has norm 0, and "
            "0/0 is nan.",
        )
    reference = _library_noise_std(zeros, clip, sigma, expected_clients)
    ratio = float(noisy.std()) / reference
    hint = f"the noise std came out {ratio:.2f} times what it should be."
    for wrong, words in (
        (1 / clip, "that is noise of std sigma: it must scale with C as well."),
        (1 / sigma, "that is noise of std C: it must scale with the noise multiplier too."),
        (sigma * clip, "that looks like the variance used as the std."),
        (expected_clients, "the noise was added after the division."),
    ):
        if abs(ratio / wrong - 1.0) < 0.03:
            hint = f"the noise std came out {ratio:.2f} times what it should be: {words}"
    return feedback(
        name,
        abs(ratio - 1.0) < 0.03,
        success="the noise scales with the sensitivity C (one user's clipped update) and with "
        "sigma, and is shared by the expected number of users.",
        hint=hint,
    )


def check_user_level_epsilon(answer: Any) -> bool:
    """Exercise 09.2: user-level epsilon of 50 rounds with q = 0.05, sigma = 1.0, delta = 1e-5.

    Compared, to 2 %, with the library's default accountant; the RDP
    accountant's looser bound is accepted with a note. One round only and no
    subsampling are each named.
    """
    from fl_dp_lab.accounting import epsilon

    name = "Exercise 09.2"
    if is_unanswered(answer):
        return report_unanswered(name)
    value = as_number("answer", answer)
    expected = epsilon(noise_multiplier=1.0, sample_rate=0.05, steps=50, delta=1e-5)
    per_round = epsilon(noise_multiplier=1.0, sample_rate=0.05, steps=1, delta=1e-5)
    no_sampling = epsilon(noise_multiplier=1.0, sample_rate=1.0, steps=50, delta=1e-5)
    rdp = epsilon(noise_multiplier=1.0, sample_rate=0.05, steps=50, delta=1e-5, accountant="rdp")
    if math.isclose(value, per_round, rel_tol=0.02):
        return feedback(
            name,
            False,
            success="",
            hint="that is one round's epsilon; the budget composes over all 50 rounds.",
        )
    if math.isclose(value, no_sampling, rel_tol=0.02):
        return feedback(
            name,
            False,
            success="",
            hint="without subsampling you lose the amplification: each user takes part "
            "in a round only with probability q = 0.05.",
        )
    if math.isclose(value, rdp, rel_tol=0.02):
        return feedback(
            name,
            True,
            success=f"ε ≈ {rdp:.2f} from the RDP accountant: a valid bound for the whole run, "
            f"looser than the PLD accountant's {expected:.2f} (the default).",
        )
    return feedback(
        name,
        math.isclose(value, expected, rel_tol=0.02),
        success=f"ε ≈ {expected:.2f} for every user, whatever their data: rounds compose, "
        "and sampling each user with probability q amplifies privacy.",
    )


def _close(got: np.ndarray, expected: torch.Tensor) -> bool:
    return bool(np.allclose(got, expected.numpy(), rtol=1e-5, atol=1e-6))


def _library_noise_std(
    zeros: torch.Tensor, clip: float, sigma: float, expected_clients: float
) -> float:
    """The std of the library's ``dp_aggregate`` on all-zero updates (measured, seeded)."""
    from fl_dp_lab.federated import dp_aggregate

    noisy = dp_aggregate(
        zeros,
        clip_norm=clip,
        noise_multiplier=sigma,
        expected_clients=expected_clients,
        generator=torch.Generator().manual_seed(9),
    )
    return float(noisy.std())
