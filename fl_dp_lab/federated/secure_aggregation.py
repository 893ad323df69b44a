"""A toy of secure aggregation: pairwise additive masks that cancel in the sum.

Bonawitz et al. (2017), "Practical secure aggregation for privacy-preserving
machine learning", Sec. 3-4, reduced to its core idea. Every pair of
clients i < j agrees on a shared seed s_ij (in the real protocol through a
Diffie-Hellman key exchange; here the seeds are drawn from a generator).
Both expand it with a pseudo-random generator into the same mask vector
m_ij, uniform on the integers modulo M = 2^32. Client i uploads

    y_i = x_i + sum_{j > i} m_ij - sum_{j < i} m_ji   (mod M),

where x_i is its update in fixed point (``encode``). Each y_i alone is
uniform on Z_M whatever x_i is, so the server learns nothing from it; in
sum_i y_i every mask appears once with + and once with -, so the sum is
exactly sum_i x_i (mod M).

Dropout: if client d never uploads, the masks m_dj it shared with the
survivors no longer cancel. In the simple case handled here the survivors
reveal their seeds s_dj with d, the server regenerates those masks and
removes them (Bonawitz et al. add secret sharing of seeds and self-masks so
that a late upload of d cannot then be unmasked; that part is left out).

What secure aggregation does *not* give. In DP-FedAvg with central noise
(notebook 09) the server unmasks the exact, noise-free sum of the clipped
updates and only then adds N(0, (sigma C)^2) noise. Secure aggregation hides
each client's update from the server, and the noise protects users from
whoever sees the released model, but the server itself has seen the sum
before any noise: there is no differential privacy against the server. That
needs *distributed* DP: each client adds its own share of the noise before
masking, over the integers, so the sum the server decodes is already noisy
(the distributed discrete Gaussian, Kairouz, Liu & Steinke 2021; Skellam
noise, Agarwal, Kairouz & Liu 2021). ``noisy_encode`` is a teaching toy of
that step: a rounded Gaussian share in fixed point, not the discrete
Gaussian with its accountant (the rounding and the modular wrap-around are
not accounted for). ``distributed_dp_encode`` and ``distributed_dp_sum`` do
the step over the integers, end to end: each client clips, scales, rounds
without bias, adds an exact discrete-Gaussian (or Skellam) share from
``fl_dp_lab.federated.distributed_dp`` and masks modulo M; the server decodes only the
noisy sum. A client that drops out takes its noise share with it.

What a real protocol adds to the toy. Bonawitz et al. (2017): seeds agreed
by Diffie-Hellman key exchange over authenticated channels; each client also
adds a self-mask, and both its pairwise-key secret and its self-mask seed are
Shamir secret-shared t-out-of-n, so the server can remove a dropped client's
masks (with t survivors' help) but never unmask a client that did upload
(for each client the survivors reveal one or the other, never both); a
consistency round against a server that lies about who dropped. Bell et al.
(2020), SecAgg+: each client masks only with its neighbours in a sparse
random graph of O(log n) clients instead of all n - 1, so a client's cost
is polylogarithmic in n instead of linear, with security against a bounded
fraction of corrupted clients.

Not cryptography: a pair's mask is its seed expanded by a counter-based
generator (``_masks``: entry k of the mask of seed s is the high 32 bits of
the SplitMix64 output function of mix(s) + (k + 1) gamma, Steele, Lea & Flood
2014), which is fast and uniform enough for the arithmetic but not a
cryptographically secure PRG (it is invertible), and the seeds are drawn from
one generator instead of agreed by key exchange. The toy shows the arithmetic
of the protocol, not its security. Being counter-based, the generator expands
all of one client's K - 1 pair masks in one vectorised step, so a round of
K = 1,000 clients (about 500,000 pairs) takes seconds; the work is still
K (K - 1) P per round, the full graph's quadratic cost that SecAgg+ avoids.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import torch

from fl_dp_lab._validate import check_choice, check_generator, check_int, check_real, fail
from fl_dp_lab.federated import distributed_dp

__all__ = [
    "MAX_CLIENTS",
    "MODULUS",
    "decode",
    "distributed_dp_encode",
    "distributed_dp_sum",
    "encode",
    "mask_update",
    "mask_updates",
    "noisy_encode",
    "pairwise_seeds",
    "secure_sum",
    "unmask_sum",
]

MODULUS = 2**32
_SCALE = 2**16
#: The most clients the toy takes: a round's masking work grows as K^2 P (every
#: client expands a mask for each of the K - 1 others), about 2 s at K = 1,000 and
#: P = 170 on one core (``benchmarks/trust_models.py``). Seeds are 62-bit, so the
#: K (K - 1) / 2 pairs' seeds are distinct except with probability below K^4 / 2^65
#: (redrawn if not).
MAX_CLIENTS = 2_000
#: Entries of one block of masks expanded at once (bounds the memory of the toy).
_BLOCK = 2**21
_GAMMA = np.uint64(0x9E3779B97F4A7C15)  # SplitMix64's increment, 2^64 / golden ratio
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def encode(update: torch.Tensor, *, scale: int = _SCALE) -> torch.Tensor:
    """Fixed point: round(x * scale) as int64 modulo M (negatives wrap around).

    Every entry must be finite and, once rounded, within [-M/2, M/2) / scale
    (±32,768 at the default scale): anything else would come back as a
    different number (32767.999995 rounds to 32768, which would wrap to -32768).
    ``scale`` is at most M/2 (a larger one could not hold even 1).

    >>> encode(torch.tensor([1.5, -1.0])).tolist()
    [98304, 4294901760]
    """
    if not isinstance(update, torch.Tensor) or not update.is_floating_point():
        fail("update", "a floating-point torch.Tensor", update, TypeError)
    scale = check_int("scale", scale, minimum=1, maximum=MODULUS // 2)
    rounded = _check_representable("update", update.double(), scale)
    return rounded.long() % MODULUS


def decode(encoded: torch.Tensor, *, scale: int = _SCALE) -> torch.Tensor:
    """Inverse of ``encode`` for sums whose true value lies in [-M/2, M/2) / scale.

    >>> decode(encode(torch.tensor([1.5, -1.0]))).tolist()
    [1.5, -1.0]
    """
    if not isinstance(encoded, torch.Tensor) or encoded.is_floating_point():
        fail("encoded", "an integer torch.Tensor (from encode)", encoded, TypeError)
    scale = check_int("scale", scale, minimum=1, maximum=MODULUS // 2)
    signed = torch.where(encoded >= MODULUS // 2, encoded - MODULUS, encoded)
    return signed.double() / scale


def pairwise_seeds(num_clients: int, *, generator: torch.Generator) -> torch.Tensor:
    """A symmetric matrix of shared seeds: entry (i, j) is the secret s_ij of clients i and j.

    Stands in for the key agreement of the real protocol. The diagonal is unused (0).
    At most ``MAX_CLIENTS`` clients. The seeds of different pairs are distinct
    (a repeat is redrawn): two equal seeds give equal masks, which could cancel
    inside one client's upload.

    >>> seeds = pairwise_seeds(3, generator=torch.Generator().manual_seed(0))
    >>> bool((seeds == seeds.T).all()), seeds.diagonal().tolist()
    (True, [0, 0, 0])
    """
    num_clients = check_int("num_clients", num_clients, minimum=2, maximum=MAX_CLIENTS)
    generator = check_generator("generator", generator)
    while True:  # a repeat has probability below K^4 / 2^65 (4e-7 at K = MAX_CLIENTS)
        upper = torch.randint(1, 2**62, (num_clients, num_clients), generator=generator).triu(1)
        if _distinct_pairs(upper):
            return upper + upper.T


def mask_update(encoded: torch.Tensor, client: int, seeds: torch.Tensor) -> torch.Tensor:
    """What client i uploads: x_i + sum_{j>i} m_ij - sum_{j<i} m_ji (mod M).

    >>> seeds = pairwise_seeds(2, generator=torch.Generator().manual_seed(0))
    >>> x = encode(torch.tensor([1.0, 2.0]))
    >>> masked = [mask_update(x, i, seeds) for i in range(2)]
    >>> decode((masked[0] + masked[1]) % MODULUS).tolist()
    [2.0, 4.0]
    """
    num_clients = _check_seeds(seeds)
    client = check_int("client", client, minimum=0, maximum=num_clients - 1)
    if not isinstance(encoded, torch.Tensor) or encoded.dtype != torch.long or encoded.dim() != 1:
        fail("encoded", "a 1-D int64 tensor from encode()", encoded, TypeError)
    return _masked(encoded, client, seeds)


def mask_updates(encoded: torch.Tensor, seeds: torch.Tensor) -> torch.Tensor:
    """Every client's upload at once: row i is ``mask_update(encoded[i], i, seeds)``.

    The same numbers, with the seed matrix checked once instead of once per
    client (the check is O(K^2), so per-client calls cost O(K^3) at K clients);
    what a simulation of K = 1,000 clients uses.

    >>> seeds = pairwise_seeds(3, generator=torch.Generator().manual_seed(0))
    >>> x = encode(torch.tensor([[1.0], [2.0], [-0.5]]))
    >>> decode(unmask_sum(mask_updates(x, seeds), range(3), seeds)).tolist()
    [2.5]
    """
    num_clients = _check_seeds(seeds)
    if not isinstance(encoded, torch.Tensor) or encoded.dtype != torch.long or encoded.dim() != 2:
        fail("encoded", "a 2-D int64 tensor, one encode() row per client", encoded, TypeError)
    if encoded.shape[0] != num_clients:
        fail("encoded", f"one row per client ({num_clients})", tuple(encoded.shape))
    return torch.stack([_masked(row, i, seeds) for i, row in enumerate(encoded)])


def _masked(encoded: torch.Tensor, client: int, seeds: torch.Tensor) -> torch.Tensor:
    """``mask_update`` without the checks (for seeds from ``pairwise_seeds``, checked once)."""
    others = torch.cat([torch.arange(client), torch.arange(client + 1, seeds.shape[0])])
    signs = torch.where(others > client, 1, -1)  # + m_ij for j > i, - m_ji for j < i
    return (encoded + _signed_mask_sum(seeds[client, others], signs, len(encoded))) % MODULUS


def unmask_sum(
    masked: torch.Tensor,
    survivors: Iterable[int],
    seeds: torch.Tensor,
) -> torch.Tensor:
    """The server's sum of the survivors' updates (encoded), removing dropped clients' masks.

    ``masked`` holds one row per client (rows of dropped clients are
    ignored). For each dropped client d, the survivors reveal s_dj and the
    server subtracts what survivor j added for the pair (j, d).

    Args:
        masked: int64 rows ``mask_update(...)``, shape ``(num_clients, P)``.
        survivors: ids of the clients whose rows arrived (at least one).
        seeds: the pairwise seed matrix (only the survivors' seeds with
            dropped clients are used, as they would be revealed); checked as
            in ``mask_update``: integer, symmetric, zero diagonal, distinct pairs.

    Returns:
        sum over survivors of x_i modulo M, int64 shape ``(P,)`` (``decode`` it).
    """
    num_clients = _check_seeds(seeds)
    survivors = _check_ids("survivors", survivors, num_clients)
    alive = sorted(set(survivors))
    if not alive:
        fail("survivors", "at least one client id", survivors)
    if not isinstance(masked, torch.Tensor) or masked.dtype != torch.long or masked.dim() != 2:
        fail("masked", "a 2-D int64 tensor of mask_update() rows", masked, TypeError)
    if masked.shape[0] != num_clients:
        fail("masked", f"one row per client ({num_clients})", tuple(masked.shape))
    dropped = sorted(set(range(num_clients)) - set(alive))
    total = masked[alive].sum(0) % MODULUS
    if dropped:
        # each survivor j reveals s_jd; remove the mask j added for the pair (j, d)
        j = torch.tensor(alive).repeat(len(dropped))
        d = torch.tensor(dropped).repeat_interleave(len(alive))
        signs = torch.where(j < d, 1, -1)
        total = (total - _signed_mask_sum(seeds[j, d], signs, masked.shape[1])) % MODULUS
    return total


def secure_sum(
    updates: torch.Tensor,
    *,
    generator: torch.Generator,
    dropped: Iterable[int] = (),
) -> torch.Tensor:
    """End to end: encode, mask, drop some uploads, unmask; returns the survivors' float sum.

    >>> updates = torch.tensor([[0.5, -1.0], [0.25, 2.0], [1.0, 1.0]])
    >>> secure_sum(updates, generator=torch.Generator().manual_seed(0), dropped=[1]).tolist()
    [1.5, 0.0]
    """
    if not isinstance(updates, torch.Tensor) or not updates.is_floating_point():
        fail("updates", "a floating-point torch.Tensor (num_clients, P)", updates, TypeError)
    if updates.dim() != 2 or not 2 <= updates.shape[0] <= MAX_CLIENTS:
        fail(
            "updates",
            f"of shape (num_clients, P) with 2 <= num_clients <= {MAX_CLIENTS}",
            tuple(updates.shape),
        )
    check_generator("generator", generator)
    num_clients = updates.shape[0]
    gone = set(_check_ids("dropped", dropped, num_clients))
    if len(gone) == num_clients:
        fail("dropped", "a list leaving at least one client to sum", sorted(gone))
    # each update must fit the fixed point, and so must the sum: bound it by the sum of
    # the rounded magnitudes (what the encoded values add up to at most)
    rounded = _check_representable("updates", updates.double(), _SCALE)
    _check_representable("the sum of updates", rounded.abs().sum(0) / _SCALE, _SCALE)
    seeds = pairwise_seeds(num_clients, generator=generator)
    masked = torch.stack([_masked(encode(u), i, seeds) for i, u in enumerate(updates)])
    survivors = [i for i in range(num_clients) if i not in gone]
    return decode(unmask_sum(masked, survivors, seeds)).to(updates.dtype)


def noisy_encode(
    update: torch.Tensor,
    *,
    noise_multiplier: float,
    clip_norm: float,
    num_clients: int,
    generator: torch.Generator,
    scale: int = _SCALE,
) -> torch.Tensor:
    """A client's share of distributed DP: its update plus its noise share, in fixed point.

    Returns encode(x_i) + round(z_i * scale) modulo M with z_i ~ N(0, (sigma C)^2 / n
    I), n = ``num_clients``. Summed over the n clients the shares add up to
    N(0, (sigma C)^2 I) (up to rounding), the noise of central DP-FedAvg, but
    it is added *before* masking, so the sum the server decodes is already
    noisy. Each client draws its share from its own secret generator.

    A teaching toy, not a mechanism to deploy: the share is a rounded Gaussian,
    whose privacy is not what a Gaussian accountant computes; deployed systems
    use the discrete Gaussian (Kairouz, Liu & Steinke 2021) or Skellam noise
    (Agarwal, Kairouz & Liu 2021) with an accountant for the sum of integer
    shares, and a modulus large enough that the noisy sum never wraps. Also,
    if some clients drop out, the survivors' shares add up to less noise than
    planned.

    Args:
        update: the client's clipped update, a 1-D float tensor.
        noise_multiplier: sigma >= 0 of the whole sum.
        clip_norm: C > 0, the norm every update was clipped to.
        num_clients: n >= 1, the clients whose shares make up the sum.
        generator: the client's own generator (secret in a deployment).
        scale: the fixed-point scale of ``encode``.

    Returns:
        int64 tensor modulo M, ready for ``mask_update``.

    >>> x = torch.zeros(4, dtype=torch.float64)
    >>> share = noisy_encode(x, noise_multiplier=0.0, clip_norm=1.0, num_clients=3,
    ...                      generator=torch.Generator().manual_seed(0))
    >>> torch.equal(share, encode(x))
    True
    """
    sigma = check_real("noise_multiplier", noise_multiplier, low=0.0)
    c = check_real("clip_norm", clip_norm, low=0.0, low_open=True)
    n = check_int("num_clients", num_clients, minimum=1)
    generator = check_generator("generator", generator)
    scale = check_int("scale", scale, minimum=1)
    encoded = encode(update, scale=scale)
    std = sigma * c / math.sqrt(n)
    noise = torch.randn(encoded.shape, generator=generator, dtype=torch.float64) * std
    _check_representable("the noise share", noise, scale)
    return (encoded + torch.round(noise * scale).long()) % MODULUS


#: The integer noise ``distributed_dp_encode`` can add.
NOISES = ("discrete_gaussian", "skellam")


def distributed_dp_encode(
    update: torch.Tensor,
    *,
    clip_norm: float,
    scale: float,
    share_variance: float,
    num_clients: int,
    generator: torch.Generator,
    noise: str = "discrete_gaussian",
) -> torch.Tensor:
    """One client's distributed-DP upload before masking: clip, scale, round, add a share, mod M.

    y_i = (round(s clip(x_i, C)) + z_i) mod M, where round is unbiased
    stochastic rounding and z_i is the client's integer noise share: N_Z(0,
    v) (exact discrete Gaussian) or Skellam of variance v, v =
    ``share_variance`` in integer units (``distributed_dp.noise_share_std``
    with clip norm s C gives it). The L2 sensitivity of the integer sum is
    at most s C + sqrt(d) (``distributed_dp.rounded_sensitivity``).

    Every entry must stay within +-M / (2 m), m = ``num_clients``, so that the
    sum of m uploads never wraps around the modulus (a wrapped sum decodes
    to garbage); a scale or share too large for that is refused.

    Args:
        update: the client's update, a 1-D float tensor (clipped here to C).
        clip_norm: C > 0.
        scale: s > 0, integer units per unit of the update.
        share_variance: v >= 0, the variance (discrete Gaussian: sigma^2) of the share.
        num_clients: m >= 1, how many uploads the server will add up.
        generator: the client's own secret generator (rounding and noise).
        noise: "discrete_gaussian" or "skellam".

    Returns:
        int64 tensor in [0, M), ready for ``mask_update``.

    >>> y = distributed_dp_encode(torch.tensor([3.0, 4.0]), clip_norm=1.0, scale=10.0,
    ...     share_variance=0.0, num_clients=2, generator=torch.Generator().manual_seed(0))
    >>> y.tolist()  # clipped to (0.6, 0.8), scaled by 10: exact integers, no noise
    [6, 8]
    """
    if not isinstance(update, torch.Tensor) or not update.is_floating_point() or update.dim() != 1:
        fail("update", "a 1-D floating-point torch.Tensor", update, TypeError)
    c = check_real("clip_norm", clip_norm, low=0.0, low_open=True)
    s = check_real("scale", scale, low=0.0, low_open=True)
    v = check_real("share_variance", share_variance, low=0.0, high=distributed_dp.MAX_SIGMA_SQUARED)
    m = check_int("num_clients", num_clients, minimum=1, maximum=MAX_CLIENTS)
    generator = check_generator("generator", generator)
    check_choice("noise", noise, NOISES)
    integers = _scaled_rounded(update, clip_norm=c, scale=s, num_clients=m, generator=generator)
    share = _draw_shares((len(update),), variance=v, noise=noise, generator=generator)
    return _add_share(integers, share, num_clients=m)


def _scaled_rounded(
    update: torch.Tensor, *, clip_norm: float, scale: float, num_clients: int,
    generator: torch.Generator,
) -> torch.Tensor:  # fmt: skip
    """round(s clip(x, C)), stochastic and unbiased, int64; refuses a scale that could wrap."""
    x = update.double()
    if not bool(torch.isfinite(x).all()):
        fail("update", "finite (no NaN or inf)", "a non-finite entry")
    norm = float(torch.linalg.vector_norm(x))
    clipped = x * min(1.0, clip_norm / norm) if norm > 0 else x
    limit = MODULUS // (2 * num_clients)
    if scale * clip_norm + 1 >= limit:
        fits = (
            f"below {(limit - 1) / clip_norm:.6g} so that m = {num_clients} clipped updates "
            "fit mod 2^32"
        )
        fail("scale", fits, scale)
    return distributed_dp.stochastic_round(clipped * scale, generator=generator)


def _draw_shares(
    shape: tuple[int, ...], *, variance: float, noise: str, generator: torch.Generator
) -> torch.Tensor:
    """Integer noise shares of the given shape: exact discrete Gaussian or Skellam, int64."""
    if noise == "skellam":
        return distributed_dp.skellam(shape, variance=variance, generator=generator)
    return distributed_dp.discrete_gaussian(shape, sigma_squared=variance, generator=generator)


def _add_share(integers: torch.Tensor, share: torch.Tensor, *, num_clients: int) -> torch.Tensor:
    """(integers + share) mod M, refusing an upload that m of could wrap the modulus."""
    limit = MODULUS // (2 * num_clients)
    noisy = integers + share
    if noisy.numel() and int(noisy.abs().max()) >= limit:
        fail(
            "the noisy share",
            f"within +-{limit} (M / (2 m)) so that the sum of {num_clients} uploads cannot "
            "wrap around mod 2^32 (lower the scale)",
            int(noisy.abs().max()),
        )
    return distributed_dp.wrap(noisy, bits=MODULUS.bit_length() - 1)


def distributed_dp_sum(
    updates: torch.Tensor,
    *,
    clip_norm: float,
    noise_multiplier: float,
    scale: float,
    generator: torch.Generator,
    dropped: Iterable[int] = (),
    dropout_rate: float = 0.0,
    noise: str = "discrete_gaussian",
) -> torch.Tensor:
    """End to end: clients upload ``distributed_dp_encode`` masked; the server decodes the sum.

    The integer sum has L2 sensitivity D = s C + sqrt(P) (a clipped update
    scaled by s, each entry rounded by less than 1:
    ``distributed_dp.rounded_sensitivity``). Client i rounds with its own
    generator (seeded from ``generator``) and adds a share of variance
    (sigma D)^2 / (m (1 - p)), p = ``dropout_rate``; the simulation draws all
    the survivors' shares in one call of the sampler (the same law as one call
    per client, and at m = 1,000 many times faster for the exact discrete
    Gaussian, whose cost is mostly per call). The m (1 - p) expected survivors' shares add
    up to std sigma D, the noise multiplier sigma of the integer sum; in
    update units that is sigma (C + sqrt(P) / s), which tends to sigma C as
    the scale s grows (the price of the integers). The
    server unmasks the survivors' uploads (``unmask_sum``) and divides by s;
    it never sees an upload without masks, and the sum it decodes already
    carries the noise. Clients in ``dropped`` never upload: their shares are
    missing, and the decoded sum carries (m - dropped) shares' variance.

    Returns:
        float64 tensor (P,): sum over survivors of clip(x_i, C) plus the noise, in update units.

    >>> updates = torch.tensor([[0.5, -1.0], [0.25, 2.0], [1.0, 1.0]])
    >>> distributed_dp_sum(updates, clip_norm=10.0, noise_multiplier=0.0, scale=4.0,
    ...                    generator=torch.Generator().manual_seed(0), dropped=[1]).tolist()
    [1.5, 0.0]
    """
    if not isinstance(updates, torch.Tensor) or not updates.is_floating_point():
        fail("updates", "a floating-point torch.Tensor (num_clients, P)", updates, TypeError)
    if updates.dim() != 2 or not 2 <= updates.shape[0] <= MAX_CLIENTS:
        fail(
            "updates",
            f"of shape (num_clients, P) with 2 <= num_clients <= {MAX_CLIENTS}",
            tuple(updates.shape),
        )
    generator = check_generator("generator", generator)
    s = check_real("scale", scale, low=0.0, low_open=True)
    m = updates.shape[0]
    gone = set(_check_ids("dropped", dropped, m))
    if len(gone) == m:
        fail("dropped", "a list leaving at least one client to sum", sorted(gone))
    clip_norm = check_real("clip_norm", clip_norm, low=0.0, low_open=True)
    sensitivity, _ = distributed_dp.rounded_sensitivity(
        scaled_clip_norm=clip_norm * s, dim=max(updates.shape[1], 1)
    )
    share_std = distributed_dp.noise_share_std(
        noise_multiplier=noise_multiplier, clip_norm=sensitivity, num_clients=m,
        dropout_rate=dropout_rate,
    )  # fmt: skip
    check_choice("noise", noise, NOISES)
    client_seeds = torch.randint(0, 2**62, (m,), generator=generator).tolist()
    seeds = pairwise_seeds(m, generator=generator)
    alive = sorted(set(range(m)) - gone)  # a dropped client never uploads
    # every surviving client's share, drawn in one call of the sampler: the same law as one
    # draw per client from its own generator, and far fewer rounds of exact rejection
    shares = _draw_shares((len(alive), updates.shape[1]), variance=share_std**2, noise=noise,
                          generator=generator)  # fmt: skip
    uploads = torch.zeros(updates.shape, dtype=torch.long)
    for row, i in enumerate(alive):
        own = torch.Generator().manual_seed(client_seeds[i])  # the client's rounding
        integers = _scaled_rounded(updates[i], clip_norm=clip_norm, scale=s, num_clients=m,
                                   generator=own)  # fmt: skip
        y = _add_share(integers, shares[row], num_clients=m)
        uploads[i] = _masked(y, i, seeds)  # the seeds are pairwise_seeds', valid by construction
    total = unmask_sum(uploads, sorted(set(range(m)) - gone), seeds)
    return distributed_dp.unwrap(total, bits=MODULUS.bit_length() - 1).double() / s


def _check_representable(name: str, values: torch.Tensor, scale: int) -> torch.Tensor:
    """round(values * scale) (float64), refusing non-finite values and any outside [-M/2, M/2).

    The range is checked after rounding: 32767.999995 * 2^16 rounds up to 2^31 = M/2,
    which would wrap to -32768.
    """
    if not torch.isfinite(values).all():
        bad = int((~torch.isfinite(values)).sum())
        fail(name, "finite (no NaN or inf)", f"{bad} non-finite entries", ValueError)
    rounded = torch.round(values * scale)
    half = MODULUS // 2
    if rounded.numel() and (float(rounded.max()) >= half or float(rounded.min()) < -half):
        fail(
            name,
            f"within ±{half / scale:g} once rounded to a multiple of 1/{scale}, to fit the "
            f"{MODULUS.bit_length() - 1}-bit fixed point at scale {scale} (clip the updates "
            "first)",
            float(values.abs().max()),
            ValueError,
        )
    return rounded


def _masks(seeds: torch.Tensor, size: int) -> np.ndarray:
    """The pairs' pseudo-random masks: row r is ``size`` integers uniform on [0, M) from seeds[r].

    Counter-based (SplitMix64's output function, Steele, Lea & Flood 2014):
    z = mix(mix(s) + (k + 1) gamma) modulo 2^64 and the mask's entry k is the
    high 32 bits of z. The same seed always expands to the same mask, and every
    row is computed at once. uint64, shape ``(len(seeds), size)``.
    """
    base = _mix(seeds.numpy().astype(np.uint64))
    counters = np.arange(1, size + 1, dtype=np.uint64) * _GAMMA
    return _mix(base[:, None] + counters[None, :]) >> np.uint64(32)


def _mix(z: np.ndarray) -> np.ndarray:
    """SplitMix64's output function on uint64 (wrapping arithmetic)."""
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


def _signed_mask_sum(seeds: torch.Tensor, signs: torch.Tensor, size: int) -> torch.Tensor:
    """sum_r signs[r] * mask(seeds[r]) modulo M, int64 ``(size,)``, in blocks of rows.

    Each mask is below 2^32 and each block holds at most 2^21 entries, so the
    int64 partial sums cannot overflow.
    """
    total = np.zeros(size, dtype=np.int64)
    rows = max(1, _BLOCK // max(size, 1))
    sign = signs.numpy().astype(np.int64)
    for start in range(0, len(seeds), rows):
        block = _masks(seeds[start : start + rows], size).astype(np.int64)
        total = (total + sign[start : start + rows] @ block) % MODULUS
    return torch.from_numpy(total)


def _check_seeds(seeds: object) -> int:
    """The number of clients, after checking ``seeds`` can mask every client's upload.

    A bool or float matrix, an asymmetric one (the two clients of a pair would
    expand different masks, which do not cancel in the sum), a nonzero diagonal
    or two pairs sharing a seed (equal masks can cancel inside one upload: with
    all seeds equal, client 1 of 3 uploads its update in the clear) are refused.
    """
    if not isinstance(seeds, torch.Tensor):
        fail("seeds", "a square integer torch.Tensor from pairwise_seeds()", seeds, TypeError)
    if seeds.dtype == torch.bool or seeds.is_floating_point() or seeds.is_complex():
        fail("seeds", "an integer tensor (pairwise_seeds() gives int64)", seeds.dtype, TypeError)
    if seeds.dim() != 2 or seeds.shape[0] != seeds.shape[1] or seeds.shape[0] < 2:
        fail("seeds", "a square matrix, one row per client (at least 2)", tuple(seeds.shape))
    if not torch.equal(seeds, seeds.T):
        fail(
            "seeds", "symmetric (clients i and j expand the same seed s_ij)", "an asymmetric matrix"
        )
    if bool((seeds.diagonal() != 0).any()):
        fail(
            "seeds",
            "zero on the diagonal (a client shares no seed with itself)",
            seeds.diagonal().tolist(),
        )
    if not _distinct_pairs(seeds.triu(1)):
        fail(
            "seeds",
            "distinct for every pair of clients (equal seeds give equal masks, which can "
            "cancel inside one client's upload)",
            "a repeated seed",
        )
    return int(seeds.shape[0])


def _distinct_pairs(upper: torch.Tensor) -> bool:
    """Whether the seeds above the diagonal of ``upper`` are distinct (as 64-bit words).

    ``_masks`` reads a seed as an unsigned 64-bit word, so that is what must differ.
    """
    rows, cols = torch.triu_indices(upper.shape[0], upper.shape[1], offset=1)
    pairs = upper[rows, cols].long()
    return int(torch.unique(pairs).numel()) == int(pairs.numel())


def _check_ids(name: str, ids: object, num_clients: int) -> list[int]:
    """``ids`` as a list of client ids in [0, num_clients), each checked by name."""
    if isinstance(ids, torch.Tensor) and ids.dim() == 1 and not ids.is_floating_point():
        if ids.dtype != torch.bool:
            ids = ids.tolist()
    if isinstance(ids, torch.Tensor | str) or not isinstance(ids, Iterable):
        fail(name, "a list of client ids", ids, TypeError)
    return [check_int(name, i, minimum=0, maximum=num_clients - 1) for i in ids]
