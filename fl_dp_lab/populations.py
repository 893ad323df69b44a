"""Populations of clients that are never stored, and Poisson sampling at their scale.

User-level DP-FedAvg adds noise of std sigma C to a sum over about qK clients,
so the noise on the average is sigma C / (qK): it shrinks as the population K
grows. Showing that takes K = 10^5 to 10^6 users, more than fit in memory as
a list of tensors. A ``ClientPopulation`` holds none of them: it knows how
many clients there are and makes client k's data when asked.

``sample_client_ids`` draws a round's clients by Poisson sampling (each of the
K clients joins independently with probability q, as the subsampled-Gaussian
accountant assumes) in time and memory proportional to the number it returns,
not to K.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch

from fl_dp_lab._validate import check_generator, check_int, check_real

__all__ = ["MAX_CLIENTS", "ClientPopulation", "sample_client_ids"]

#: The largest population ``sample_client_ids`` accepts: 2^53, the largest
#: size below which every count is exact in float64 (the Binomial draw's type).
MAX_CLIENTS = 2**53


@runtime_checkable
class ClientPopulation(Protocol):
    """K clients whose data is made on demand: client k is ``client(k)``.

    Anything with these two members is a population (a structural type, as
    ``typing.Protocol`` defines it): no base class to inherit.

    Attributes:
        num_clients: K, the number of clients; ids run over 0..K-1.
    """

    @property
    def num_clients(self) -> int:
        """K, the number of clients."""
        ...

    def client(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Client k's training data ``(x, y)``: the same tensors on every call."""
        ...


def sample_client_ids(
    num_clients: int, *, sample_rate: float, generator: torch.Generator
) -> torch.Tensor:
    """One round of Poisson client sampling, without a length-K mask.

    Draw the round size M ~ Binomial(K, q), then M distinct ids uniformly
    among the K. This is exactly Poisson sampling, where each client joins
    independently with probability q.

    Proof. Poisson sampling gives a subset S of {0, ..., K-1} the probability
    q^|S| (1-q)^(K-|S|). Here, for |S| = m,
    P(S) = P(M = m) P(S | M = m) = C(K, m) q^m (1-q)^(K-m) / C(K, m)
    = q^m (1-q)^(K-m), since the second step picks each of the C(K, m) subsets
    of size m with the same probability. The two laws agree on every S.

    How the M ids are drawn. For M <= K/2, keep a set S (empty at first) and,
    while |S| < M, draw M - |S| ids uniformly with replacement and add them
    to S. Each pass adds at most M - |S| new ids, so S ends with exactly M,
    and at least half of the K ids are always outside S, so each pass adds on
    average at least half of what is missing: about log2(M) passes. S is
    uniform among the M-subsets: relabelling the ids by any permutation pi
    leaves the law of the draws unchanged and maps the result S to pi(S), so
    P(S = A) = P(S = pi(A)) for every A, and any two M-subsets are related by
    some pi. For M > K/2 the same method picks the K - M ids left out, and
    the result (at least K/2 ids) is that set's complement. A uniform id
    below K is a uniform integer below the next power of two 2^b >= K
    (``torch.randint`` reduces 32- or 64-bit words modulo 2^b, which is
    exact, where modulo K would favour small ids), redrawn when >= K.

    Memory and time are proportional to M (and to K only when M > K/2, when
    the output itself is that long): K may be 10^8 or more at small q.

    Args:
        num_clients: K, the population size, an integer in [1, 2^53].
        sample_rate: q in (0, 1], each client's probability of joining.
        generator: the ``torch.Generator`` every draw comes from.

    Returns:
        The sampled ids: a sorted, duplicate-free int64 tensor of length M
        (possibly 0).

    Raises:
        TypeError: K is not an integer, q not a real, generator not a torch.Generator.
        ValueError: K < 1 or K > 2^53, q outside (0, 1].

    >>> sample_client_ids(10, sample_rate=1.0, generator=torch.Generator()).tolist()
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
    >>> ids = sample_client_ids(10**8, sample_rate=1e-5, generator=torch.Generator().manual_seed(0))
    >>> 900 < len(ids) < 1100, bool((ids[1:] > ids[:-1]).all())
    (True, True)
    """
    num_clients = check_int("num_clients", num_clients, minimum=1, maximum=MAX_CLIENTS)
    sample_rate = check_real("sample_rate", sample_rate, low=0.0, high=1.0, low_open=True)
    generator = check_generator("generator", generator)
    size = _binomial(num_clients, sample_rate, generator)
    if 2 * size <= num_clients:
        return _distinct_uniform(num_clients, size, generator)
    keep = torch.ones(num_clients, dtype=torch.bool)
    keep[_distinct_uniform(num_clients, num_clients - size, generator)] = False
    return torch.nonzero(keep).flatten()


def _binomial(count: int, prob: float, generator: torch.Generator) -> int:
    """One draw of Binomial(count, prob), in float64 so that count and prob are exact."""
    if prob == 1.0:
        return count
    draw = torch.binomial(
        torch.tensor(float(count), dtype=torch.float64),
        torch.tensor(prob, dtype=torch.float64),
        generator=generator,
    )
    return int(draw)


def _distinct_uniform(population: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """``size`` distinct ids, uniform over range(population), sorted (size <= population / 2)."""
    chosen = torch.empty(0, dtype=torch.int64)
    span = 1 << max(0, (population - 1).bit_length())  # 2^b >= population
    while len(chosen) < size:
        draws = torch.randint(0, span, (size - len(chosen),), generator=generator)
        draws = draws[draws < population]
        chosen = torch.unique(torch.cat([chosen, draws]))  # sorted, without duplicates
    return chosen
