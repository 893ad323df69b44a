"""run_fedavg and run_dp_fedavg on a ClientPopulation: clients made only when sampled."""

from __future__ import annotations

import math

import pytest
import torch

from fl_dp_lab import accounting
from fl_dp_lab.federated import (
    LocalSGD,
    UserLevelDP,
    flatten_parameters,
    run_dp_fedavg,
    run_fedavg,
)
from fl_dp_lab.flower.app import digits_clients
from fl_dp_lab.models import LogisticRegression


class TinyPopulation:
    """K clients of 3 rows each, client k a pure function of k; it counts what is made.

    No ``__len__`` and no ``__getitem__``: a run that treated it as a list, or
    touched all K clients, would fail or show in ``made``.
    """

    def __init__(self, num_clients: int) -> None:
        self.num_clients = num_clients
        self.made: list[int] = []

    def client(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        self.made.append(k)
        gen = torch.Generator().manual_seed(k)
        y = torch.randint(0, 2, (3,), generator=gen)
        x = torch.randn(3, 4, generator=gen) + 2.0 * y[:, None]  # two separable classes
        return x, y


class ListPopulation:
    """A population that hands out the clients of a list (the same tensors)."""

    def __init__(self, clients: list) -> None:
        self.clients = clients
        self.num_clients = len(clients)

    def client(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.clients[k]


def _test_set() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(-1 % 2**63)
    y = torch.randint(0, 2, (200,), generator=gen)
    return torch.randn(200, 4, generator=gen) + 2.0 * y[:, None], y


LOCAL = LocalSGD(epochs=1, batch_size=3, lr=0.5)


def test_dp_fedavg_on_a_million_clients_makes_only_the_sampled_ones():
    # Prepare: K = 10^6 clients, about 50 a round
    population = TinyPopulation(10**6)
    privacy = UserLevelDP(noise_multiplier=0.5, clip_norm=1.0, sample_rate=5e-5, delta=1e-7)
    x_test, y_test = _test_set()
    # Execute
    history = run_dp_fedavg(
        LogisticRegression(4, 2),
        population,
        rounds=2,
        privacy=privacy,
        local=LOCAL,
        generator=torch.Generator().manual_seed(0),
        x_test=x_test,
        y_test=y_test,
        progress=False,
    )
    # Assert: one client made per sampled id (distinct within a round), about qK a round,
    # epsilon accounted at q = sample_rate as for a list
    assert len(population.made) == sum(history.clients)
    assert all(15 < m < 100 for m in history.clients)  # Binomial(10^6, 5e-5): 50 +- 7
    first = population.made[: history.clients[0]]
    assert len(set(first)) == len(first) and max(population.made) < 10**6
    assert history.epsilon == [
        accounting.epsilon(noise_multiplier=0.5, sample_rate=5e-5, steps=r, delta=1e-7)
        for r in (1, 2)
    ]
    assert all(math.isfinite(loss) for loss in history.loss)


def test_fedavg_on_a_million_clients_makes_m_distinct_clients_a_round():
    population = TinyPopulation(10**6)
    x_test, y_test = _test_set()
    history = run_fedavg(
        LogisticRegression(4, 2),
        population,
        rounds=2,
        clients_per_round=40,
        local=LOCAL,
        generator=torch.Generator().manual_seed(0),
        x_test=x_test,
        y_test=y_test,
        progress=False,
    )
    assert history.clients == [40, 40] and len(population.made) == 80
    assert len(set(population.made[:40])) == 40 and len(set(population.made[40:])) == 40
    assert history.accuracy[-1] > 0.6  # two classes 4 std apart, chance 0.5: it trains


@pytest.mark.parametrize("vectorised", [True, False])
def test_a_population_wrapping_a_list_gives_the_lists_model(vectorised):
    # Prepare: every client in every round (q = 1, m = K), no noise, one full-batch step
    # per client: the model does not depend on which random draws picked the clients,
    # so the list path (K coin flips, randperm) and the population path (Binomial size
    # and distinct ids) must agree exactly on the same data
    clients, x_test, y_test = digits_clients(6)
    local = LocalSGD(epochs=1, batch_size=1000, lr=0.5)
    privacy = UserLevelDP(noise_multiplier=0.0, clip_norm=5.0, sample_rate=1.0, delta=1e-3)
    results = {}
    for name, data in (("list", clients), ("population", ListPopulation(clients))):
        for kind in ("fedavg", "dp"):
            model = LogisticRegression(64, 10)
            common = dict(
                rounds=3,
                local=local,
                generator=torch.Generator().manual_seed(0),
                x_test=x_test,
                y_test=y_test,
                vectorised=vectorised,
                progress=False,
            )
            if kind == "fedavg":
                history = run_fedavg(model, data, clients_per_round=6, **common)
            else:
                history = run_dp_fedavg(model, data, privacy=privacy, **common)
            results[name, kind] = (history, flatten_parameters(model))
    # Assert: same clients, accuracy and weights; and the runs trained
    for kind in ("fedavg", "dp"):
        (a, wa), (b, wb) = results["list", kind], results["population", kind]
        assert a.clients == b.clients == [6, 6, 6]
        torch.testing.assert_close(wa, wb, atol=1e-6, rtol=1e-5)
        assert a.accuracy == pytest.approx(b.accuracy, abs=1e-6)
        assert a.accuracy[-1] > 0.5  # ten classes, chance 0.1


def test_a_population_needs_a_test_set_and_its_bad_clients_are_named():
    x_test, y_test = _test_set()
    args = dict(
        rounds=1,
        privacy=UserLevelDP(noise_multiplier=0.0, clip_norm=1.0, sample_rate=1.0, delta=1e-3),
        local=LOCAL,
        generator=torch.Generator().manual_seed(0),
        progress=False,
    )
    with pytest.raises(ValueError, match="x_test and y_test must be given"):
        run_dp_fedavg(LogisticRegression(4, 2), TinyPopulation(5), **args)

    class Broken(TinyPopulation):
        def client(self, k):
            x, y = super().client(k)
            return (torch.full_like(x, math.nan) if k == 3 else x), y

    with pytest.raises(ValueError, match="client 3"):
        run_dp_fedavg(LogisticRegression(4, 2), Broken(5), x_test=x_test, y_test=y_test, **args)
    with pytest.raises(ValueError, match="clients.num_clients must be"):
        run_dp_fedavg(
            LogisticRegression(4, 2),
            TinyPopulation(0),
            x_test=x_test,
            y_test=y_test,
            **args,
        )


class OneAtATime:
    """A population that forwards ``client(k)`` only: no batched ``clients(ids)``."""

    def __init__(self, population) -> None:
        self.population = population
        self.num_clients = population.num_clients
        self.made: list[int] = []

    def client(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        self.made.append(k)
        return self.population.client(k)


def test_a_population_with_batched_clients_trains_as_one_client_at_a_time():
    """VirtualWriters makes a round's writers in one batch: the run is the same, bit for bit."""
    from fl_dp_lab.populations import VirtualWriters

    writers = VirtualWriters(10_000, seed=4, samples_per_client=8, image_size=14)
    x_test, y_test = writers.test_set(20, first=9_000)
    privacy = UserLevelDP(noise_multiplier=0.8, clip_norm=1.0, sample_rate=2e-3, delta=1e-5)
    histories, weights = [], []
    single = OneAtATime(writers)
    for population in (writers, single):
        model = LogisticRegression(14 * 14, 10)
        histories.append(
            run_dp_fedavg(
                model,
                population,
                rounds=2,
                privacy=privacy,
                local=LocalSGD(epochs=1, batch_size=4, lr=0.1),
                generator=torch.Generator().manual_seed(11),
                x_test=x_test.flatten(1),
                y_test=y_test,
                progress=False,
            )
        )
        weights.append(flatten_parameters(model))
    assert len(single.made) == sum(histories[1].clients) > 0
    assert histories[0].clients == histories[1].clients
    assert histories[0].accuracy == histories[1].accuracy
    assert torch.equal(weights[0], weights[1])


def test_a_batched_population_that_returns_too_few_clients_is_named():
    class Short(TinyPopulation):
        def clients(self, ids):
            return [self.client(k) for k in ids][:-1]

    x_test, y_test = _test_set()
    with pytest.raises(TypeError, match=r"population.clients\(ids\)"):
        run_dp_fedavg(
            LogisticRegression(4, 2),
            Short(50),
            rounds=1,
            privacy=UserLevelDP(noise_multiplier=1.0, clip_norm=1.0, sample_rate=0.5, delta=1e-3),
            local=LOCAL,
            generator=torch.Generator().manual_seed(0),
            x_test=x_test,
            y_test=y_test,
            progress=False,
        )
