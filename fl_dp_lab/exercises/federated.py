"""Exercises of notebooks 08-09 (FedAvg and DP-FedAvg)."""

from __future__ import annotations

import math
from typing import Any, TypedDict

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
    "check_budget_plan",
    "check_dp_aggregate",
    "check_fedavg_average",
    "check_fedprox_update",
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
    idea="FedProx adds (mu / 2) ||theta - theta_global||^2 to every client's loss: a spring that "
    "pulls the local model back towards the model the client received.",
    step="train a copy as local_update does, on the same shuffled batches; keep a copy of the "
    "starting weights, and add the proximal term's gradient to each parameter's gradient.",
    solution="p -= lr * (g + mu * (p - p0)) for every parameter p, its batch gradient g and its "
    "starting value p0; return flatten_parameters(local) - flatten_parameters(model).",
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
hints(
    "Exercise 09.3",
    idea="the accountant's epsilon depends on sigma, q and the rounds T only; the clip norm C "
    "sets the noise's size in the model's units, and q times K sets how many updates share it.",
    step="fix q from the clients you want a round (q K >= 10), make sigma / (q K) <= 0.1, then "
    "search the largest T whose epsilon stays within the budget (and T >= 20); C from the "
    "update norms you measured.",
    solution="q = 10 / K; sigma = 0.1 * q * K; rounds = the largest T with "
    "accounting.epsilon(noise_multiplier=sigma, sample_rate=q, steps=T, delta=delta) <= target "
    "(double T, then bisect); clip_norm = the median update norm you measured.",
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


#: Exercise 08.2's hidden cases: (features, classes, examples, epochs, batch size, lr, mu)
class _LocalSetting(TypedDict):
    """The local training keywords of one hidden FedProx case, as ``local_update`` takes them."""

    epochs: int
    batch_size: int
    lr: float


_PROX_CASES = ((5, 3, 23, 2, 4, 0.3, 0.5), (8, 4, 40, 3, 16, 0.5, 2.0), (4, 2, 9, 1, 4, 0.2, 0.0))


@graded("Exercise 08.2")
def check_fedprox_update(fedprox_update: Any) -> bool:
    """Exercise 08.2: ``fedprox_update(model, x, y, *, epochs, batch_size, lr, mu, generator)``.

    FedProx's local update, called on hidden models, data and settings
    (several mu, one of them 0). With mu = 0 it must equal the library's
    ``local_update``; with mu > 0 it must match, to 1e-6, SGD on the batch
    loss plus the proximal term, on the same batches. The caller's model
    must be left unchanged. The proximal term with the wrong sign or the
    wrong factor, a term that is ignored, and the new weights returned
    instead of the update are each named.
    """
    from fl_dp_lab.federated.client_updates import flatten_parameters, local_update
    from fl_dp_lab.models import LogisticRegression

    name = "Exercise 08.2"
    if is_unanswered(fedprox_update):
        return report_unanswered(name)
    if not callable(fedprox_update):
        raise TypeError(f"fedprox_update must be a function, got {fedprox_update!r}")
    data = torch.Generator().manual_seed(28)
    for features, classes, n, epochs, batch, lr, mu in _PROX_CASES:
        model = LogisticRegression(features, classes, generator=data)
        x, y = (
            torch.randn(n, features, generator=data),
            torch.randint(0, classes, (n,), generator=data),
        )
        before = flatten_parameters(model).clone()
        setting: _LocalSetting = {"epochs": epochs, "batch_size": batch, "lr": lr}
        got = as_array(
            "fedprox_update(...)",
            fedprox_update(
                model, x, y, mu=mu, generator=torch.Generator().manual_seed(n), **setting
            ),
            tuple(before.shape),
            why="one flat update, as local_update returns",
        )
        at = f"at mu = {mu:g}:"
        if not torch.equal(flatten_parameters(model), before):
            return feedback(name, False, success="", hint=f"{at} the caller's model changed: train "
                            "a copy (copy.deepcopy), as local_update does.")  # fmt: skip

        case = (model, x, y, n, setting)

        if mu == 0.0:
            want = local_update(
                model, x, y, generator=torch.Generator().manual_seed(n), **setting
            ).numpy()
        else:
            want = _prox(case, mu)
        if np.allclose(got, want, rtol=0.0, atol=1e-6):
            continue
        if np.allclose(got, want + before.numpy(), rtol=0.0, atol=1e-6):
            hint = f"{at} those are the new weights; the update is new minus old."
        elif mu > 0 and np.allclose(got, _prox(case, 0.0), atol=1e-6):
            hint = f"{at} that is plain local_update: the proximal term is missing."
        elif mu > 0 and np.allclose(got, _prox(case, -mu), atol=1e-6):
            hint = f"{at} the proximal term pushes away from the global model instead of pulling "
            hint += "back towards it."
        elif mu > 0 and (
            np.allclose(got, _prox(case, mu / 2), atol=1e-6)
            or np.allclose(got, _prox(case, 2 * mu), atol=1e-6)
        ):
            hint = f"{at} the proximal term has the wrong factor: what is the gradient of "
            hint += "(mu / 2) ||theta - theta_global||^2?"
        else:
            hint = f"{at} the update is off (are the batches those of shuffled_batches, one "
            hint += "permutation per epoch, from the generator you are given?)."
        return feedback(name, False, success="", hint=hint)
    return feedback(
        name,
        True,
        success="mu = 0 is FedAvg's local update, and mu > 0 pulls every step back towards the "
        "global model: clients still fit their own data, but cannot run as far from each other.",
    )


def _prox(case: tuple[Any, ...], mu: float) -> np.ndarray:
    model, x, y, seed, setting = case
    return _fedprox_reference(model, x, y, mu=mu, seed=seed, **setting).numpy()


def _fedprox_reference(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    mu: float,
    seed: int,
) -> torch.Tensor:
    """SGD on mean cross-entropy + (mu / 2) ||theta - theta_global||^2 (Li et al., 2020)."""
    import copy

    from fl_dp_lab.federated.client_updates import flatten_parameters
    from fl_dp_lab.training import shuffled_batches

    generator = torch.Generator().manual_seed(seed)
    local = copy.deepcopy(model)
    params = list(local.parameters())
    anchor = [p.detach().clone() for p in params]
    for _ in range(epochs):
        for batch in shuffled_batches(len(x), batch_size, generator):
            loss = torch.nn.functional.cross_entropy(local(x[batch]), y[batch])
            grads = torch.autograd.grad(loss, params)
            with torch.no_grad():
                for p, g, p0 in zip(params, grads, anchor, strict=True):
                    p.sub_(lr * (g + mu * (p - p0)))
    return flatten_parameters(local) - flatten_parameters(model)


#: Exercise 09.3's hidden budgets: (target epsilon, number of clients K), delta = 1e-5
_PLAN_CASES = ((2.0, 1000), (5.0, 200), (1.0, 5000))
#: the plan's requirements, stated in the task: enough clients a round, enough rounds, and
#: noise on the average update at most a tenth of one clipped update
_PLAN_MIN_CLIENTS, _PLAN_MIN_ROUNDS, _PLAN_MAX_NOISE = 10.0, 20, 0.1


@graded("Exercise 09.3")
def check_budget_plan(plan: Any) -> bool:
    """Exercise 09.3: ``plan(target_epsilon, *, num_clients, delta)``, a run within a budget.

    The plan is a dict with ``noise_multiplier``, ``sample_rate``, ``rounds``
    and ``clip_norm``. It is called on hidden budgets and client counts and
    must, by the library's accountant, spend at most the target and at least
    90 % of it, while keeping at least 10 expected clients a round, at least
    20 rounds, and noise on the average update of at most a tenth of one
    clipped update. A plan over the budget, one that wastes it, too few
    clients or rounds, too much noise and missing keys are each named.
    """
    from fl_dp_lab.accounting import epsilon

    name = "Exercise 09.3"
    if is_unanswered(plan):
        return report_unanswered(name)
    if not callable(plan):
        raise TypeError(
            f"plan must be a function plan(target_epsilon, *, num_clients, delta), got {plan!r}"
        )
    keys = ("noise_multiplier", "sample_rate", "rounds", "clip_norm")
    for target, clients in _PLAN_CASES:
        chosen = plan(target, num_clients=clients, delta=1e-5)
        if not isinstance(chosen, dict) or any(key not in chosen for key in keys):
            raise TypeError(f"plan(...) must return a dict with the keys {keys}, got {chosen!r}")
        sigma, q = (
            as_number("noise_multiplier", chosen["noise_multiplier"]),
            as_number("sample_rate", chosen["sample_rate"]),
        )
        rounds, clip = (
            as_number("rounds", chosen["rounds"]),
            as_number("clip_norm", chosen["clip_norm"]),
        )
        at = f"at a budget of {target:g} with {clients} clients:"
        if not (sigma > 0 and 0 < q <= 1 and clip > 0 and rounds >= 1 and rounds == int(rounds)):
            hint = f"{at} sigma and C must be > 0, q in (0, 1] and the rounds a whole number >= 1."
            return feedback(name, False, success="", hint=hint)
        spent = epsilon(noise_multiplier=sigma, sample_rate=q, steps=int(rounds), delta=1e-5)
        noise = sigma / (q * clients)  # std of the average's noise, in units of C
        if spent > target:
            hint = f"{at} the plan spends epsilon = {spent:.3g}, over the budget."
        elif q * clients < _PLAN_MIN_CLIENTS:
            hint = (
                f"{at} only {q * clients:.3g} clients a round are expected; at least 10 were asked."
            )
        elif rounds < _PLAN_MIN_ROUNDS:
            hint = f"{at} {int(rounds)} rounds are too few to train; at least 20 were asked."
        elif noise > _PLAN_MAX_NOISE * (1 + 1e-9):  # rounding in sigma = 0.1 q K is not a slip
            hint = f"{at} the noise on the average update is {noise:.3g} C, above a tenth of one "
            hint += "clipped update: more clients a round, or less noise."
        elif spent < 0.9 * target:
            hint = (
                f"{at} the plan spends only epsilon = {spent:.3g}: a tenth of the budget or more "
            )
            hint += "is left unused (more rounds, or less noise)."
        else:
            continue
        return feedback(name, False, success="", hint=hint)
    return feedback(
        name,
        True,
        success="every budget spent without going over, with enough clients a round and noise "
        "the average can carry. Now defend your choice in words: what did you trade for what?",
    )
