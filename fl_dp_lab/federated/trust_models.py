"""Whom do you trust? Local, central and distributed DP, and a per-batch "DP" snippet taken apart.

Every deployment starts with "who must not see what?". Three answers for
user-level DP-FedAvg with m clients in a round, each client's update
clipped to L2 norm C, and the same (epsilon, delta) for one round:

- *central DP*: clients send raw clipped updates; the server adds
  N(0, (sigma C)^2) to their sum. It sees every raw update. Noise on the
  average: sigma C / m.
- *local DP*: each client's upload must be (epsilon, delta)-DP on its own,
  so each client adds N(0, (sigma C)^2) itself (the same sigma: one
  Gaussian mechanism of sensitivity C per client). The m noises add up:
  noise on the average sigma C sqrt(m) / m = sigma C / sqrt(m), sqrt(m) times
  central's (10 times at m = 100). Over several rounds no subsampling
  amplification helps: the server sees who sent what.
- *distributed DP*: each client adds a share of std sigma C / sqrt(m) and
  uploads through secure aggregation; the server decodes only the noisy sum,
  whose noise is central's. The price is the integers (the rounding raises the
  sensitivity to s C + sqrt(d) at scale s) and the discrete sum's small extra
  epsilon (``fl_dp_lab.federated.distributed_dp``).

``noise_std_on_average`` gives the three numbers; ``local_epsilon`` the
epsilon of one client's own release; ``equal_epsilon_noise`` the noise
multiplier each model needs for one user-level epsilon over a whole run, and
``run_trust_model`` trains DP-FedAvg under each (the local noise added client
by client, the distributed shares carried through the secure-aggregation toy).

The second half takes apart a pattern that circulates as "federated learning
with differential privacy": on each client, for every batch, build a fresh
model, take the batch gradient, clip each layer's *batch* gradient to 0.5,
add one row of a (layers x layers) multivariate-normal draw with some sigma,
and sum the noisy gradients over batches. ``snippet_client_upload`` is the
course's own rendering of it; ``one_example_influence`` measures why clipping
a batch gradient bounds no individual's influence.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from fl_dp_lab._validate import (
    check_bool,
    check_choice,
    check_generator,
    check_int,
    check_real,
    fail,
)
from fl_dp_lab.federated._simulation import FederatedHistory, _Run
from fl_dp_lab.federated.aggregation import clip_update
from fl_dp_lab.federated.config import LocalSGD, UserLevelDP
from fl_dp_lab.federated.secure_aggregation import distributed_dp_sum
from fl_dp_lab.federated.server import DPFedAvgServer
from fl_dp_lab.mechanisms import gaussian_epsilon, gaussian_sigma
from fl_dp_lab.populations import ClientPopulation

__all__ = [
    "TRUST_MODELS",
    "equal_epsilon_noise",
    "local_epsilon",
    "noise_std_on_average",
    "one_example_influence",
    "run_trust_model",
    "shuffled_epsilon",
    "snippet_client_upload",
]

TRUST_MODELS = ("local", "central", "distributed")


def noise_std_on_average(
    *,
    trust_model: str,
    epsilon: float,
    delta: float,
    clip_norm: float,
    num_clients: int,
    scale: float | None = None,
    dim: int = 1,
    dropout_rate: float = 0.0,
) -> float:
    """Noise std per coordinate on the average of m clipped updates, one round at (epsilon, delta).

    sigma is the analytic Gaussian mechanism's noise multiplier for (epsilon,
    delta) at sensitivity 1 (Balle & Wang 2018; ``mechanisms.gaussian_sigma``),
    so each release below is (epsilon, delta)-DP under add/remove of one
    client:

        central:      sigma C / m
        local:        sigma C / sqrt(m)       (each client releases x_i + N(0, (sigma C)^2))
        distributed:  sigma (C + sqrt(d) / s) / (m (1 - p))

    For distributed DP the integer sum's sensitivity is s C + sqrt(d) at scale
    s (``distributed_dp.rounded_sensitivity``; ``scale=None`` means exact
    arithmetic, s infinite), and with shares over-provisioned for a dropout
    rate p the average is over the m (1 - p) expected survivors. The discrete
    Gaussian's extra epsilon (``distributed_dp.sum_closeness_tau``) is not in
    this number: it is below 1e-30 once the shares' sigma is 3 or more.

    >>> central = noise_std_on_average(trust_model="central", epsilon=1.0, delta=1e-5,
    ...                                clip_norm=1.0, num_clients=100)
    >>> local = noise_std_on_average(trust_model="local", epsilon=1.0, delta=1e-5,
    ...                              clip_norm=1.0, num_clients=100)
    >>> round(local / central, 6)
    10.0
    """
    check_choice("trust_model", trust_model, TRUST_MODELS)
    c = check_real("clip_norm", clip_norm, low=0.0, low_open=True)
    m = check_int("num_clients", num_clients, minimum=1)
    d = check_int("dim", dim, minimum=1)
    p = check_real("dropout_rate", dropout_rate, low=0.0, high=1.0, high_open=True)
    sigma = gaussian_sigma(epsilon=epsilon, delta=delta)
    if trust_model == "local":
        return sigma * c / math.sqrt(m)
    if trust_model == "central":
        return sigma * c / m
    rounding = (
        0.0 if scale is None else math.sqrt(d) / check_real("scale", scale, low=0.0, low_open=True)
    )
    return sigma * (c + rounding) / (m * (1.0 - p))


def local_epsilon(*, noise_multiplier: float, delta: float) -> float:
    """Epsilon of one client's own release x_i + N(0, (sigma C)^2 I), ||x_i|| <= C, at delta.

    The Gaussian mechanism with sensitivity C and noise sigma C: epsilon
    depends on sigma only (Balle & Wang 2018, exact). Every round the client
    takes part in composes; no sampling amplification applies against a server
    that knows who uploaded.

    >>> round(local_epsilon(noise_multiplier=1.0, delta=1e-5), 3)
    4.377
    """
    sigma = check_real("noise_multiplier", noise_multiplier, low=0.0)
    return gaussian_epsilon(sigma=sigma, delta=delta)


def equal_epsilon_noise(
    *,
    trust_model: str,
    epsilon: float,
    delta: float,
    sample_rate: float,
    rounds: int,
    participations: int = 1,
) -> float:
    """The noise multiplier that makes a run of DP-FedAvg user-level (epsilon, delta)-DP.

    - central and distributed: sigma of the Poisson-subsampled Gaussian over
      ``rounds`` rounds at rate q (``accounting.noise_multiplier_for_epsilon``,
      RDP). Sampling amplifies against whoever sees only the model. For
      distributed DP sigma multiplies the integer sum's sensitivity s C +
      sqrt(P) (``run_trust_model``), and the sum of discrete-Gaussian shares
      adds tau (``distributed_dp.sum_closeness_tau``), 0 to float precision once
      a share's sigma is 3 or more integer units, as in the course's runs.
      Against the server, which knows who took part, there is no amplification
      (``distributed_dp.distributed_discrete_gaussian_epsilon`` with one step per
      participation).
    - local: each client's own releases, at most ``participations`` of them,
      must reach (epsilon, delta) alone, with no amplification (the server sees
      who sent what): sigma_local of ``participations`` Gaussian releases at
      q = 1. ``run_trust_model`` refuses a client's further participations.

    >>> local = equal_epsilon_noise(trust_model="local", epsilon=4.0, delta=1e-5,
    ...                             sample_rate=0.1, rounds=10)
    >>> central = equal_epsilon_noise(trust_model="central", epsilon=4.0, delta=1e-5,
    ...                               sample_rate=0.1, rounds=10)
    >>> local > central
    True
    """
    from fl_dp_lab.accounting import noise_multiplier_for_epsilon

    check_choice("trust_model", trust_model, TRUST_MODELS)
    q = check_real("sample_rate", sample_rate, low=0.0, high=1.0, low_open=True)
    steps = check_int("rounds", rounds, minimum=1)
    k = check_int("participations", participations, minimum=1)
    if trust_model == "local":
        return noise_multiplier_for_epsilon(
            target_epsilon=epsilon, sample_rate=1.0, steps=k, delta=delta, accountant="rdp"
        )
    return noise_multiplier_for_epsilon(
        target_epsilon=epsilon, sample_rate=q, steps=steps, delta=delta, accountant="rdp"
    )


def run_trust_model(
    model: nn.Module,
    clients: Sequence[tuple[torch.Tensor, torch.Tensor]] | ClientPopulation,
    *,
    trust_model: str,
    rounds: int,
    privacy: UserLevelDP,
    local: LocalSGD,
    generator: torch.Generator,
    scale: float = 2.0**10,
    participations: int | None = None,
    x_test: torch.Tensor | None = None,
    y_test: torch.Tensor | None = None,
) -> FederatedHistory:
    """DP-FedAvg under one trust model, training ``model`` in place.

    Every round, like ``run_dp_fedavg`` (and drawing from ``generator`` in
    the same order: ids, the clients' seeds, then the noise): each client
    joins with probability q = ``privacy.sample_rate``, the sampled clients
    train, and the server moves the model by a noisy average over the
    expected q K clients, with sigma = ``privacy.noise_multiplier``:

    - ``"central"``: ``dp_aggregate``, noise N(0, (sigma C)^2) added by the
      server to the sum of the raw clipped updates (the same numbers as
      ``run_dp_fedavg`` with the same generator);
    - ``"local"``: each client clips its own update and adds N(0, (sigma C)^2)
      before uploading; the server adds up the noisy uploads. A client that
      already took part ``participations`` times refuses (its budget is spent);
    - ``"distributed"``: ``secure_aggregation.distributed_dp_sum``: each
      client clips, scales by s = ``scale``, rounds without bias, adds an exact
      discrete-Gaussian share of variance (sigma D)^2 / m (D = s C + sqrt(P),
      m the round's clients) and masks; the server decodes only the noisy sum.
      A round with fewer than 2 clients has no secure sum and moves nothing.

    ``history.epsilon`` records, after each round: central and distributed,
    the subsampled Gaussian's epsilon (against the model's readers; see
    ``equal_epsilon_noise``); local, the epsilon of the client that took part
    most often so far (its releases composed, no amplification).

    Args:
        model: the global model, trained in place.
        clients: a list of ``(x_k, y_k)`` or a ``ClientPopulation``.
        trust_model: ``"local"``, ``"central"`` or ``"distributed"``.
        rounds: T >= 1.
        privacy: q, C, sigma (``equal_epsilon_noise``) and delta; no adaptive clipping.
        local: the clients' training, ``LocalSGD``.
        generator: all randomness of the run (clients' own draws are seeded from it).
        scale: s of the distributed shares' fixed point.
        participations: local DP's cap on a client's rounds (None: no cap).
        x_test, y_test: evaluation data (needed with a population).

    Returns:
        A ``FederatedHistory`` with epsilon and clip_norm filled in.
    """
    from fl_dp_lab.accounting import epsilon as accounted_epsilon

    check_choice("trust_model", trust_model, TRUST_MODELS)
    if not isinstance(privacy, UserLevelDP) or privacy.adaptive is not None:
        fail("privacy", "a UserLevelDP without adaptive clipping", privacy, TypeError)
    if not isinstance(local, LocalSGD):
        fail("local", "a LocalSGD", local, TypeError)
    s = check_real("scale", scale, low=0.0, low_open=True)
    cap = None if participations is None else check_int("participations", participations, minimum=1)
    generator = check_generator("generator", generator)
    run = _Run(model, clients, rounds=rounds, local=local, server_lr=1.0, generator=generator,
               x_test=x_test, y_test=y_test, loss_fn=nn.functional.cross_entropy,
               vectorised=True, progress=False)  # fmt: skip
    c, sigma, q = privacy.clip_norm, privacy.noise_multiplier, privacy.sample_rate
    server = DPFedAvgServer(
        privacy,
        num_clients=run.num_clients,
        generator=generator,
        sampling="per_client" if run.population is None else "round_size",
    )
    counts: dict[int, int] = {}
    for r in run.rounds():
        if trust_model == "central":  # run_dp_fedavg's own round
            step = server.round(run.client_updates)
            ids, average, eps = step.ids, step.average, step.epsilon
        else:
            ids, seeds = server.sample()
            if trust_model == "local" and cap is not None:
                keep = torch.tensor([counts.get(int(k), 0) < cap for k in ids], dtype=torch.bool)
                ids, seeds = ids[keep], seeds[keep]
            updates = run.client_updates(ids, seeds)
            if trust_model == "local":
                clipped = clip_update(updates.double(), clip_norm=c)
                noise = torch.randn(clipped.shape, generator=generator, dtype=torch.float64)
                average = (clipped + sigma * c * noise).sum(0) / server.expected_clients
            elif len(ids) >= 2:
                total = distributed_dp_sum(updates.double(), clip_norm=c, noise_multiplier=sigma,
                                           scale=s, generator=generator)  # fmt: skip
                average = total / server.expected_clients
            else:
                average = torch.zeros_like(run.flat)
        for k in ids.tolist():
            counts[k] = counts.get(k, 0) + 1
        run.apply(average)
        run.record(r, len(ids))
        run.history.clip_norm.append(c)
        if trust_model == "local":
            most = max(counts.values(), default=0)
            eps = 0.0 if most == 0 else accounted_epsilon(
                noise_multiplier=sigma, sample_rate=1.0, steps=most, delta=privacy.delta,
                accountant=privacy.accountant,
            )  # fmt: skip
        elif trust_model == "distributed":
            eps = accounted_epsilon(noise_multiplier=sigma, sample_rate=q, steps=r,
                                    delta=privacy.delta, accountant=privacy.accountant)  # fmt: skip
        run.history.epsilon.append(eps)
    return run.history


def one_example_influence(
    per_example_grads: torch.Tensor, *, clip_norm: float, index: int
) -> tuple[float, float]:
    """How far removing example ``index`` moves a batch's clipped gradient, two ways.

    With B rows g_1..g_B (one per example, flattened) and a fixed denominator B:

        per-batch clipping:   || clip(sum_j g_j / B) - clip(sum_{j != i} g_j / B) ||
        per-sample clipping:  || sum_j clip(g_j) / B - sum_{j != i} clip(g_j) / B ||
                              = ||clip(g_i)|| / B

    Per-sample clipping (DP-SGD, Abadi et al. 2016) bounds the second by C / B
    whatever the data. Clipping the batch gradient bounds the first only by
    2 C: one example can own the whole clipped gradient, so the noise would
    have to be B times larger for the same protection.

    Returns:
        (per-batch change, per-sample change), L2 norms.

    >>> g = torch.tensor([[200.0, 0.0], [-198.0, 0.0]])
    >>> [round(v, 3) for v in one_example_influence(g, clip_norm=1.0, index=0)]
    [2.0, 0.5]
    """
    if not isinstance(per_example_grads, torch.Tensor) or per_example_grads.dim() != 2:
        fail("per_example_grads", "a 2-D float tensor (B, P)", per_example_grads, TypeError)
    if not per_example_grads.is_floating_point() or per_example_grads.shape[0] < 1:
        fail("per_example_grads", "a float tensor with at least one row", per_example_grads.shape)
    c = check_real("clip_norm", clip_norm, low=0.0, low_open=True)
    b = per_example_grads.shape[0]
    i = check_int("index", index, minimum=0, maximum=b - 1)
    g = per_example_grads.double()
    others = torch.cat([g[:i], g[i + 1 :]])
    per_batch = _clip(g.sum(0) / b, c) - _clip(others.sum(0) / b, c)
    per_sample = _clip(g[i], c) / b
    return float(torch.linalg.vector_norm(per_batch)), float(torch.linalg.vector_norm(per_sample))


def snippet_client_upload(
    make_model: Callable[[], nn.Module],
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    batch_size: int,
    sigma: float,
    rng: np.random.Generator,
    as_written: bool = True,
) -> list[torch.Tensor]:
    """The circulating client-side "DP" pattern, rendered by the course to take it apart.

    For every batch in order (no sampling): a fresh model from
    ``make_model()`` (the server's model is never used), the batch's mean
    loss gradient, each layer's *batch* gradient clipped to norm 0.5, then
    noise from a (L x L) multivariate-normal draw with covariance sigma I (L
    layers), row l added to layer l; the noisy gradients are summed over
    batches and the sum is the upload. There is no accountant, and sigma
    comes with no clip norm or sampling rate, so it names no privacy level.

    ``as_written=True`` adds the length-L row to each layer as the pattern
    does: for any layer whose last dimension is not L (or 1) torch refuses to
    broadcast, and the call raises RuntimeError. ``as_written=False`` does
    what the author evidently meant: noise of each layer's shape, std
    sqrt(sigma). The pattern drew from NumPy's global generator; here ``rng``
    is passed in like every draw in the course.

    Returns:
        the upload, one tensor per parameter (float64).
    """
    size = check_int("batch_size", batch_size, minimum=1)
    variance = check_real("sigma", sigma, low=0.0)
    check_bool("as_written", as_written)
    if not isinstance(rng, np.random.Generator):
        fail("rng", "a numpy.random.Generator, e.g. np.random.default_rng(0)", rng, TypeError)
    upload: list[torch.Tensor] | None = None
    for start in range(0, len(x), size):
        model = make_model()  # a fresh model for every batch
        params = list(model.parameters())
        loss = nn.functional.cross_entropy(model(x[start : start + size]), y[start : start + size])
        grads = [g.double() for g in torch.autograd.grad(loss, params)]
        grads = [
            g * min(1.0, 0.5 / (float(g.norm()) + 1e-12)) for g in grads
        ]  # per layer, per batch
        layers = len(grads)
        draw = rng.multivariate_normal(np.zeros(layers), variance * np.eye(layers), size=layers)
        if as_written:
            noisy = [g + torch.as_tensor(draw[k]) for k, g in enumerate(grads)]
        else:
            noisy = [
                g + torch.as_tensor(rng.normal(0.0, math.sqrt(variance), g.shape)) for g in grads
            ]
        upload = noisy if upload is None else [u + n for u, n in zip(upload, noisy, strict=True)]
    if upload is None:
        fail("x", "at least one example", len(x))
    return upload


def _clip(v: torch.Tensor, c: float) -> torch.Tensor:
    norm = float(torch.linalg.vector_norm(v))
    return v * min(1.0, c / norm) if norm > 0 else v


def shuffled_epsilon(*, epsilon0: float, num_reports: int, delta: float) -> float:
    """Central epsilon of n shuffled reports, each from an epsilon0-DP local randomizer.

    Amplification by shuffling (Erlingsson et al. 2019): an anonymous channel
    that permutes the n reports hides whose report is whose, and the n reports
    together are (epsilon, delta)-DP with (Feldman, McMillan & Talwar 2021,
    "Hiding among the clones", Theorem 3.1, closed form)

        epsilon = log(1 + (e^eps0 - 1) / (e^eps0 + 1)
                          * (8 sqrt(e^eps0 log(4 / delta)) / sqrt(n) + 8 e^eps0 / n)),

    valid for eps0 <= log(n / (16 log(2 / delta))) (note log(2 / delta) in the
    condition, log(4 / delta) in the bound). Outside that range the theorem
    says nothing, and the function refuses rather than extrapolate. The bound
    tightens the earlier O(eps0 sqrt(log(1/delta) / n)) of Erlingsson et al.
    (2019) for eps0 < 1 and holds for larger eps0 too. The constants (8, 8 and
    16; log(4/delta) and log(2/delta)) agree with an independent
    implementation of Theorem 3.1 (OpenDP's smartnoise-core,
    ``shuffle_amplification``) and with Canonne's exposition of the theorem
    (differentialprivacy.org, 2022), which quotes the loosened form below.
    For small eps0 the bound is about eps0 (4 sqrt(log(4/delta) / n) + 4 / n); the often quoted
    log(1 + 16 (e^eps0 - 1) / (e^eps0 + 1) sqrt(e^eps0 log(4/delta) / n)) is
    the same bound loosened once 8 e^eps0 / n is below 8 sqrt(e^eps0
    log(4/delta) / n).

    The theorem is for pure eps0-DP randomizers; an (eps0, delta0)-DP one (a
    Gaussian) pays an extra delta of order n delta0 (their Theorem 3.8 extends
    the bound to approximate DP; its exact constant is not reproduced here).

    >>> round(shuffled_epsilon(epsilon0=1.0, num_reports=10_000, delta=1e-6), 4)
    0.214
    """
    eps0 = check_real("epsilon0", epsilon0, low=0.0, low_open=True)
    n = check_int("num_reports", num_reports, minimum=1)
    d = check_real("delta", delta, low=0.0, high=1.0, low_open=True, high_open=True)
    ratio = n / (16.0 * math.log(2.0 / d))
    if ratio <= 1.0 or eps0 > math.log(ratio):
        limit = "no epsilon0 (n is too small)" if ratio <= 1.0 else f"{math.log(ratio):.4g}"
        fail(
            "epsilon0",
            f"<= log(n / (16 log(2 / delta))) = {limit} for n = {n} and delta = {d:g}"
            " (the range where the shuffling bound holds)",
            eps0,
        )
    e = math.exp(eps0)
    factor = (e - 1.0) / (e + 1.0)
    return math.log1p(factor * (8.0 * math.sqrt(e * math.log(4.0 / d) / n) + 8.0 * e / n))
