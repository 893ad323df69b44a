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
not accounted for).

Not cryptography: the masks come from torch's Mersenne Twister seeded with
s_ij, which is not a cryptographically secure PRG (its state can be
recovered from its outputs), and the seeds are drawn from one generator
instead of agreed by key exchange. The toy shows the arithmetic of the
protocol, not its security.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

from fl_dp_lab._validate import check_generator, check_int, check_real, fail

__all__ = [
    "MAX_CLIENTS",
    "MODULUS",
    "decode",
    "encode",
    "mask_update",
    "noisy_encode",
    "pairwise_seeds",
    "secure_sum",
    "unmask_sum",
]

MODULUS = 2**32
_SCALE = 2**16
#: The most clients the toy takes. torch seeds its generator with the low 32 bits of a
#: seed only, so the K (K - 1) / 2 pairs need distinct 32-bit seeds: at K = 200 a draw has
#: them with probability 0.95 (birthday bound), at K = 1000 practically never.
MAX_CLIENTS = 200
_SEED_BITS = 32


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
    in their low 32 bits, all that ``torch.Generator.manual_seed`` uses (a repeat
    is redrawn): two such seeds give equal masks, which could cancel inside one
    client's upload.

    >>> seeds = pairwise_seeds(3, generator=torch.Generator().manual_seed(0))
    >>> bool((seeds == seeds.T).all()), seeds.diagonal().tolist()
    (True, [0, 0, 0])
    """
    num_clients = check_int("num_clients", num_clients, minimum=2, maximum=MAX_CLIENTS)
    generator = check_generator("generator", generator)
    while True:  # a repeat has probability below K^4 / 2^35 (0.05 at K = MAX_CLIENTS)
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
    masked = encoded.clone()
    for other in range(num_clients):
        if other != client:
            sign = 1 if client < other else -1
            masked = (masked + sign * _mask(int(seeds[client, other]), len(encoded))) % MODULUS
    return masked


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
    for d in dropped:
        for j in alive:  # j reveals s_jd; remove the mask j added for the pair (j, d)
            sign = 1 if j < d else -1
            total = (total - sign * _mask(int(seeds[j, d]), masked.shape[1])) % MODULUS
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
    masked = torch.stack([mask_update(encode(u), i, seeds) for i, u in enumerate(updates)])
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


def _mask(seed: int, size: int) -> torch.Tensor:
    """The pseudo-random mask of one pair: ``size`` integers uniform on [0, M)."""
    return torch.randint(0, MODULUS, (size,), generator=torch.Generator().manual_seed(seed))


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
            "distinct for every pair of clients, modulo 2^32 (torch uses the low 32 bits "
            "of a seed; equal seeds give equal masks, which can cancel inside one "
            "client's upload)",
            "a repeated seed",
        )
    return int(seeds.shape[0])


def _distinct_pairs(upper: torch.Tensor) -> bool:
    """Whether the seeds above the diagonal of ``upper`` differ in their low 32 bits.

    ``torch.Generator().manual_seed(s)`` uses s mod 2^32 only (seeds 0 and 2^40 give
    the same mask), so that is what must differ.
    """
    rows, cols = torch.triu_indices(upper.shape[0], upper.shape[1], offset=1)
    pairs = torch.remainder(upper[rows, cols].long(), 2**_SEED_BITS)
    return int(torch.unique(pairs).numel()) == int(pairs.numel())


def _check_ids(name: str, ids: object, num_clients: int) -> list[int]:
    """``ids`` as a list of client ids in [0, num_clients), each checked by name."""
    if isinstance(ids, torch.Tensor) and ids.dim() == 1 and not ids.is_floating_point():
        if ids.dtype != torch.bool:
            ids = ids.tolist()
    if isinstance(ids, torch.Tensor | str) or not isinstance(ids, Iterable):
        fail(name, "a list of client ids", ids, TypeError)
    return [check_int(name, i, minimum=0, maximum=num_clients - 1) for i in ids]
