"""Exercises of notebook 09b (DP-FedAvg on populations of 10^3 to 10^6 users)."""

from __future__ import annotations

import math
import signal
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from fl_dp_lab.exercises._core import (
    WrongShape,
    as_number,
    feedback,
    graded,
    hints,
    is_unanswered,
    report_unanswered,
)

__all__ = ["check_noise_on_the_mean", "check_round_sampler"]

hints(
    "Exercise 09b.1",
    idea="follow the noise from where it is added to what is released: dp_aggregate adds it "
    "to the sum of the clipped updates, and the server then divides that sum.",
    step="on the sum, the noise std is the noise multiplier times the sensitivity, sigma C; "
    "the server divides the sum by the expected number of clients in a round, q times K.",
    solution="noise_std = sigma * C / (q * K) = 0.6 * 2.0 / (1e-3 * 10**6)",
)
hints(
    "Exercise 09b.2",
    idea="flipping one coin per client needs K random numbers; split the draw in two: first "
    "how many clients the round holds, then which ones.",
    step="a Poisson round's size is the number of heads among K independent coins of "
    "probability q, a law torch can draw in one call (in float64 for large K); then draw that "
    "many distinct ids uniformly, for example with torch.randint, redrawing until enough "
    "distinct ones are left. Pass the generator to every draw.",
    solution="size = int(torch.binomial(torch.tensor(float(num_clients), dtype=torch.float64), "
    "torch.tensor(sample_rate, dtype=torch.float64), generator=generator)); ids = "
    "torch.empty(0, dtype=torch.int64); while len(ids) < size: ids = torch.unique(torch.cat("
    "[ids, torch.randint(0, num_clients, (size - len(ids),), generator=generator)])); "
    "return ids",
)


@graded("Exercise 09b.1")
def check_noise_on_the_mean(
    answer: Any, *, noise_multiplier: float, clip_norm: float, sample_rate: float, num_clients: int
) -> bool:
    """Exercise 09b.1: the noise std per coordinate of DP-FedAvg's released average.

    The setting (noise multiplier, clip norm, sampling rate, population)
    comes as keywords; the answer is compared, to 1 % relative, with the std
    of ``dp_aggregate``'s noise after the server's division. The noise on
    the sum, a forgotten clip norm, a division by the population instead of
    the round, and the variance get their own hints.
    """
    name = "Exercise 09b.1"
    if is_unanswered(answer):
        return report_unanswered(name)
    value = as_number("answer", answer)
    sigma, c, q, k = noise_multiplier, clip_norm, sample_rate, num_clients
    expected = sigma * c / (q * k)
    wrong = (
        (sigma * c, "that is the noise on the sum; the server divides the sum before release."),
        (
            sigma / (q * k),
            "the noise std on the sum is sigma times C (the sensitivity), not sigma.",
        ),
        (sigma * c / k, "divide by the expected number of clients in a round, not by K."),
        (expected**2, "that is a variance; the question asks for the standard deviation."),
    )
    if not math.isclose(value, expected, rel_tol=0.01):
        for guess, hint in wrong:
            if math.isclose(value, guess, rel_tol=0.01):
                return feedback(name, False, success="", hint=hint)
    return feedback(
        name,
        math.isclose(value, expected, rel_tol=0.01),
        success=f"σC/(qK) = {expected:.2e}: for the same σ, the noise on the average falls "
        "as the round grows, and qK can grow with the population at the same q.",
    )


class _TooSlow(Exception):
    """Raised by the timer of ``_within`` when a call runs past its limit."""


def _within(seconds: float, call: Callable[..., Any], *args: Any) -> Any:
    """``call(*args)``, stopped with ``_TooSlow`` after ``seconds`` where a timer can stop it.

    The timer (``SIGALRM``) exists only on Unix and in the main thread, where Jupyter
    runs a cell; elsewhere the call simply runs to its end.
    """
    if (
        not hasattr(signal, "setitimer")
        or threading.current_thread() is not threading.main_thread()
    ):
        return call()

    def stop(signum: int, frame: Any) -> None:
        raise _TooSlow

    previous = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return call(*args)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _round_ids(sampler: Any, num_clients: int, rate: float, generator: Any) -> torch.Tensor:
    """One round from the learner's sampler, as int64 ids; a malformed round raises WrongShape."""
    out = sampler(num_clients, rate, generator)
    if out is None:
        raise WrongShape("the function returned None: does it end with `return`?")
    ids = torch.as_tensor(np.asarray(out.detach() if hasattr(out, "detach") else out))
    if ids.dim() != 1:
        raise WrongShape(f"a round must be a 1-D list of client ids, got shape {tuple(ids.shape)}.")
    if ids.is_floating_point():
        if not bool(torch.equal(ids, ids.round())):
            raise WrongShape("client ids are whole numbers; the round holds fractions.")
        ids = ids.to(torch.int64)
    ids = ids.to(torch.int64)
    if len(ids) and (int(ids.min()) < 0 or int(ids.max()) >= num_clients):
        raise WrongShape(f"client ids run from 0 to K - 1 = {num_clients - 1}; the round holds "
                         f"{int(ids.min())} to {int(ids.max())}.")  # fmt: skip
    if len(torch.unique(ids)) != len(ids):
        raise WrongShape("a client appears twice in one round: the ids of a round are distinct.")
    return ids


#: The hidden populations of Exercise 09b.2: (K, q, rounds).
_ROUND_CASES = ((50, 0.3, 1500), (20, 0.9, 1000))
#: The population that no length-K array fits in (8 PB of int64), and its rate.
_HUGE_K, _HUGE_Q = 10**15, 1e-12


@graded("Exercise 09b.2")
def check_round_sampler(sample_round: Any) -> bool:
    """Exercise 09b.2: ``sample_round(num_clients, sample_rate, generator)``, one Poisson round.

    Called for thousands of rounds on small hidden populations and rates, with
    a seeded ``torch.Generator``: every round must hold distinct ids in
    [0, K), the same generator state must give the same round, the round sizes
    must have the mean and the spread of Poisson sampling (to within a few
    standard errors) and every client must join as often as every other. Then
    one round of a population far too large for any array of length K must
    come back within seconds. Fixed-size rounds, repeated ids, unequal
    chances, draws that ignore the generator, and an array or loop of length K
    are each named.
    """
    name = "Exercise 09b.2"
    if is_unanswered(sample_round):
        return report_unanswered(name)
    if not callable(sample_round):
        raise TypeError(f"sample_round must be a function, got {sample_round!r}")
    first = _round_ids(sample_round, 50, 0.3, torch.Generator().manual_seed(92))
    again = _round_ids(sample_round, 50, 0.3, torch.Generator().manual_seed(92))
    if not torch.equal(first.sort().values, again.sort().values):
        hint = "two calls with equally seeded generators gave different rounds: draw from the "
        hint += "generator passed in, never from a global random state."
        return feedback(name, False, success="", hint=hint)
    for num_clients, rate, rounds in _ROUND_CASES:
        try:  # a round larger than K never finds enough distinct ids: stop it
            verdict = _within(30.0, _round_law, sample_round, num_clients, rate, rounds)
        except _TooSlow:
            verdict = f"{rounds} rounds with K = {num_clients} and q = {rate} did not finish in "
            verdict += "30 s: does a loop wait for more distinct ids than the population has?"
        if verdict:
            return feedback(name, False, success="", hint=verdict)
    generator = torch.Generator().manual_seed(93)
    try:
        huge = _within(5.0, _round_ids, sample_round, _HUGE_K, _HUGE_Q, generator)
    except (_TooSlow, MemoryError, RuntimeError, OverflowError) as error:
        what = "did not finish in 5 s" if isinstance(error, _TooSlow) else type(error).__name__
        hint = f"with K = 10^15 clients your function failed ({what}): it builds or visits "
        hint += "something of length K. The round's size and ids need no per-client draw."
        return feedback(name, False, success="", hint=hint)
    if not 800 < len(huge) < 1200:
        hint = f"with K = 10^15 and q = 10^-12 the round held {len(huge)} clients, about "
        hint += "1,000 are expected: is K used exactly (a float32 K is not)?"
        return feedback(name, False, success="", hint=hint)
    return feedback(
        name,
        True,
        success="your rounds are Poisson rounds, and their cost grows with the round, not "
        "with the population: 10^15 users cost what 1,000 do.",
    )


def _round_law(sample_round: Any, num_clients: int, rate: float, rounds: int) -> str:
    """What is wrong with ``rounds`` rounds of the sampler at (K, q), or an empty string."""
    generator = torch.Generator().manual_seed(94)
    counts = torch.zeros(num_clients)
    sizes = []
    for _ in range(rounds):
        ids = _round_ids(sample_round, num_clients, rate, generator)
        counts[ids] += 1
        sizes.append(len(ids))
    size = torch.tensor(sizes, dtype=torch.float64)
    mean, variance = num_clients * rate, num_clients * rate * (1 - rate)
    where = f"with K = {num_clients} and q = {rate}"
    spread = size.var().item() / variance
    if spread < 0.6:
        return (
            f"{where}, the round size (almost) never changes: in a Poisson round every "
            "client joins on its own coin, so the number of clients varies from round to round."
        )
    if spread > 1.6:
        return (
            f"{where}, round sizes vary {spread:.1f} times as much as a Poisson round's: the "
            "size must count the heads of exactly K coins of probability q."
        )
    if abs(size.mean().item() - mean) > 5 * math.sqrt(variance / rounds):
        return f"{where}, rounds held {size.mean().item():.2f} clients on average; qK = {mean:g}."
    freq = counts / rounds
    worst = (freq - rate).abs().max().item()
    if worst > 5 * math.sqrt(rate * (1 - rate) / rounds):
        return (
            f"{where}, some clients join far more often than others: every client must have "
            "the same chance q."
        )
    return ""
