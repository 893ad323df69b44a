"""One DP-FedAvg server round, written once for the simulation and for the Flower app.

``DPFedAvgServer.round`` is the server side of McMahan et al. (2018,
Algorithm 1): sample clients, collect their updates, clip and noise the
sum, move the adaptive clip norm, account. ``run_dp_fedavg`` trains the
sampled clients in this process; ``fl_dp_lab.flower.server`` sends them
``train`` messages. Both hand the round a ``train(ids, seeds)`` callback, so
both draw from the run's one generator in the same order:

1. the sampled client ids (``poisson_client_sample``, or
   ``fl_dp_lab.populations.sample_client_ids`` for a population too large
   for K coin flips);
2. one seed per sampled client, for its batch shuffling;
3. the Gaussian noise of ``dp_aggregate``;
4. with adaptive clipping, the noise on the count of unclipped clients.

The object keeps only what passes from round to round: the clip norm and
the number of rounds accounted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch

from fl_dp_lab._validate import check_choice, check_generator, check_int, fail
from fl_dp_lab.dpsgd import MAX_EXAMPLES
from fl_dp_lab.federated.adaptive_clipping import adaptive_clip_norm, update_noise_multiplier
from fl_dp_lab.federated.aggregation import dp_aggregate, poisson_client_sample
from fl_dp_lab.federated.config import UserLevelDP
from fl_dp_lab.populations import MAX_CLIENTS, sample_client_ids

__all__ = ["DPFedAvgServer", "ServerRound", "client_seeds"]

#: Sampled ids -> one seed per id: the clients' updates, shape (len(ids), P).
TrainFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
#: How a round's clients are drawn (both are Poisson sampling at rate q, with different
#: random draws): "per_client" flips K coins (``poisson_client_sample``, for a list of
#: clients); "round_size" draws M ~ Binomial(K, q), then M distinct ids
#: (``fl_dp_lab.populations.sample_client_ids``, for populations too large for K coins).
Sampling = Literal["per_client", "round_size"]


@dataclass(frozen=True)
class ServerRound:
    """What one server round released.

    Attributes:
        ids: the sampled client ids, shape ``(m,)``.
        average: the noisy average update, shape ``(P,)``.
        clip_norm: the clip norm C this round used.
        epsilon: user-level epsilon after this round.
    """

    ids: torch.Tensor
    average: torch.Tensor
    clip_norm: float
    epsilon: float


def client_seeds(num_sampled: int, generator: torch.Generator) -> torch.Tensor:
    """One seed per sampled client for its batch shuffling, drawn right after the ids.

    >>> client_seeds(2, torch.Generator().manual_seed(0)).shape
    torch.Size([2])
    """
    return torch.randint(0, 2**62, (num_sampled,), generator=generator)


class DPFedAvgServer:
    """The server of user-level DP-FedAvg, one round at a time.

    Args:
        privacy: sampling rate q, clip norm C, noise multiplier sigma,
            delta, accountant and adaptive clipping.
        num_clients: K >= 1, the population size (q*K is the fixed denominator).
        generator: all of the server's randomness (see the module docstring).
        sampling: ``"per_client"`` (K coin flips, ``poisson_client_sample``)
            or ``"round_size"`` (Binomial round size, then distinct ids,
            ``sample_client_ids``; memory independent of K). Both are exactly
            Poisson sampling, which the accountant assumes.

    Raises:
        ValueError: with adaptive clipping and no ``count_stddev``, when its
            default q*K/20 is not above sigma / 2 (the split of the noise
            between count and sum needs it); before any round.
    """

    def __init__(
        self,
        privacy: UserLevelDP,
        *,
        num_clients: int,
        generator: torch.Generator,
        sampling: Sampling = "per_client",
    ) -> None:
        if not isinstance(privacy, UserLevelDP):
            fail("privacy", "a UserLevelDP", privacy, TypeError)
        self.num_clients = check_int("num_clients", num_clients, minimum=1)
        self.generator = check_generator("generator", generator)
        self.privacy = privacy
        self.expected_clients = privacy.sample_rate * self.num_clients
        self.clip_norm = privacy.clip_norm
        self.rounds_done = 0
        self.update_sigma = privacy.noise_multiplier
        self.count_stddev = 0.0
        adaptive = privacy.adaptive
        if adaptive is not None:
            count_stddev = adaptive.count_stddev
            if count_stddev is None:
                count_stddev = self.expected_clients / 20
                if privacy.noise_multiplier >= 2 * count_stddev:
                    fail(
                        "count_stddev",
                        f"given: its default q*K/20 = {count_stddev:g} is not above "
                        f"noise_multiplier / 2 = {privacy.noise_multiplier / 2:g} with "
                        f"{self.expected_clients:g} expected clients a round (pass a larger "
                        "count_stddev, sample more clients, or lower noise_multiplier)",
                        None,
                    )
            self.count_stddev = count_stddev
            self.update_sigma = update_noise_multiplier(
                noise_multiplier=privacy.noise_multiplier, clip_count_stddev=count_stddev
            )
        self.sampling = check_choice("sampling", sampling, ("per_client", "round_size"))
        most = MAX_EXAMPLES if sampling == "per_client" else MAX_CLIENTS
        if self.num_clients > most:
            fail("num_clients", f"at most {most} for {sampling!r} sampling", num_clients)

    def sample(self) -> tuple[torch.Tensor, torch.Tensor]:
        """This round's client ids, Poisson-sampled at rate q, and one seed per id.

        The round's first two draws from the server's generator (``round`` starts
        with them); a run that aggregates in its own way samples with this.
        """
        q = self.privacy.sample_rate
        if self.sampling == "per_client":
            ids = poisson_client_sample(self.num_clients, sample_rate=q, generator=self.generator)
        else:
            ids = sample_client_ids(self.num_clients, sample_rate=q, generator=self.generator)
        return ids, client_seeds(len(ids), self.generator)

    def round(self, train: TrainFn) -> ServerRound:
        """Sample, train (``train(ids, seeds)``), clip and noise, move C, account.

        Raises:
            ValueError: a sampled client's update is NaN or inf (its id is
                named), before any noise is drawn or any epsilon is reported.
        """
        from fl_dp_lab import accounting

        privacy = self.privacy
        ids, seeds = self.sample()
        updates = train(ids, seeds)
        norms = torch.linalg.vector_norm(updates, dim=1)
        _check_finite_updates(norms, ids)
        average = dp_aggregate(
            updates,
            clip_norm=self.clip_norm,
            noise_multiplier=self.update_sigma,
            expected_clients=self.expected_clients,
            generator=self.generator,
        )
        used = self.clip_norm
        if privacy.adaptive is not None:
            self.clip_norm = adaptive_clip_norm(
                norms,
                clip_norm=self.clip_norm,
                target_quantile=privacy.adaptive.target_quantile,
                clip_lr=privacy.adaptive.clip_lr,
                clip_count_stddev=self.count_stddev,
                expected_clients=self.expected_clients,
                generator=self.generator,
            )
        self.rounds_done += 1
        epsilon = accounting.epsilon(
            noise_multiplier=privacy.noise_multiplier,
            sample_rate=privacy.sample_rate,
            steps=self.rounds_done,
            delta=privacy.delta,
            accountant=privacy.accountant,
        )
        return ServerRound(ids=ids, average=average, clip_norm=used, epsilon=epsilon)


def _check_finite_updates(norms: torch.Tensor, ids: torch.Tensor) -> None:
    """Refuse a round whose client update is NaN or inf, naming the client's id."""
    bad = ~torch.isfinite(norms)
    if bool(bad.any()):
        row = int(bad.nonzero()[0, 0])
        fail(
            f"the update of client {int(ids[row])}",
            "finite (look for NaN or inf in that client's x or y, or lower lr: its local "
            "training diverged); the round is refused so that no epsilon is reported "
            "for a NaN model",
            f"norm {float(norms[row])}",
        )
