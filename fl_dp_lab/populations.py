"""Populations of clients that are never stored, and Poisson sampling at their scale.

User-level DP-FedAvg adds noise of std sigma C to a sum over about qK clients,
so the noise on the average is sigma C / (qK): it shrinks as the population K
grows. Showing that takes K = 10^5 to 10^6 users, more than fit in memory as
a list of tensors. A ``ClientPopulation`` holds none of them: it knows how
many clients there are and makes client k's data when asked.

Two populations ship, each a pure function of (seed, k): client k's data is
drawn from a NumPy generator seeded by ``SeedSequence(seed, spawn_key=(s, k))``
(s names the population kind), so it is the same on every call, in any order,
and nothing of size K is ever built:

- ``SyntheticPopulation``: the Synthetic(alpha, beta) benchmark of Li et al.
  (2020), one client at a time (``fl_dp_lab.data.synthetic_client``);
- ``VirtualWriters``: each user is a "writer" with its own style (rotation,
  shear, scale and stroke thickness) and its own label mix (Dirichlet alpha),
  writing digits taken from the shipped MNIST subset. Users share base
  images, so this simulates user-level DP on images; it is not real
  federated data such as federated EMNIST's 3,400 writers.

``sample_client_ids`` draws a round's clients by Poisson sampling (each of the
K clients joins independently with probability q, as the subsampled-Gaussian
accountant assumes) in time and memory proportional to the number it returns,
not to K.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from fl_dp_lab._validate import check_choice, check_generator, check_int, check_real, fail
from fl_dp_lab.data import load_mnist, synthetic_client

__all__ = [
    "MAX_CLIENTS",
    "ClientPopulation",
    "SyntheticPopulation",
    "VirtualWriters",
    "apply_style",
    "distinct_client_ids",
    "sample_client_ids",
]

#: The largest population ``sample_client_ids`` accepts: 2^53, the largest
#: size below which every count is exact in float64 (the Binomial draw's type).
MAX_CLIENTS = 2**53


@runtime_checkable
class ClientPopulation(Protocol):
    """K clients whose data is made on demand: client k is ``client(k)``.

    Anything with these two members is a population (a structural type, as
    ``typing.Protocol`` defines it): no base class to inherit. A population may
    also have ``clients(ids)``, returning ``[client(k) for k in ids]`` made in one
    batch (``VirtualWriters`` has it); the federated runs then use it for each round.

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


def distinct_client_ids(
    num_clients: int, size: int, generator: torch.Generator
) -> torch.Tensor:
    """``size`` distinct ids uniform among ``num_clients``, sorted, in memory O(size).

    Every subset of that size is equally likely: FedAvg's fixed-size rounds on a
    population. Above half the population a permutation is as cheap and ends at once;
    below it, ids are drawn without the modulo bias of ``sample_client_ids``'s note.

    >>> distinct_client_ids(10**8, 3, torch.Generator().manual_seed(0)).shape
    torch.Size([3])
    """
    num_clients = check_int("num_clients", num_clients, minimum=1, maximum=MAX_CLIENTS)
    size = check_int("size", size, minimum=0, maximum=num_clients)
    check_generator("generator", generator)
    if 2 * size > num_clients:
        return torch.randperm(num_clients, generator=generator)[:size].sort().values
    return _distinct_uniform(num_clients, size, generator)


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


@dataclass(frozen=True)
class SyntheticPopulation:
    """Synthetic(alpha, beta) of Li et al. (2020, FedProx, Sec. 5.1), client k made on demand.

    Client k is ``fl_dp_lab.data.synthetic_client`` drawn from a generator
    seeded by (seed, k): its own model W_k, b_k and inputs around its own
    mean v_k, about ``mean_samples`` rows, of which the last
    ``test_fraction`` are held out (``held_out(k)``). The law is that of
    ``make_synthetic_federated``; the draws differ (there one generator runs
    through all clients in turn, which needs every client before k).

    Args:
        num_clients: K, in [1, 2^53].
        alpha: model heterogeneity, >= 0.
        beta: input heterogeneity, >= 0.
        seed: a non-negative integer.
        dim, num_classes, mean_samples: as in ``make_synthetic_federated``.
        test_fraction: share of each client's rows held out, in [0, 1).

    >>> population = SyntheticPopulation(10**8, seed=0)
    >>> x, y = population.client(12_345_678)
    >>> x.shape[1], x.dtype, y.dtype, torch.equal(x, population.client(12_345_678)[0])
    (60, torch.float32, torch.int64, True)
    """

    num_clients: int
    alpha: float = 0.5
    beta: float = 0.5
    seed: int = 0
    dim: int = 60
    num_classes: int = 10
    mean_samples: int = 24
    test_fraction: float = 0.2

    def __post_init__(self) -> None:
        check_int("num_clients", self.num_clients, minimum=1, maximum=MAX_CLIENTS)
        check_real("alpha", self.alpha, low=0.0)
        check_real("beta", self.beta, low=0.0)
        check_int("seed", self.seed, minimum=0)
        check_int("dim", self.dim, minimum=1)
        check_int("num_classes", self.num_classes, minimum=2)
        check_int("mean_samples", self.mean_samples, minimum=4)
        check_real("test_fraction", self.test_fraction, low=0.0, high=1.0, high_open=True)

    def client(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Client k's training rows ``(x, y)``: float32 ``(n, dim)`` and int64 labels."""
        x, y = self._rows(k)
        n_train = len(y) - int(math.floor(self.test_fraction * len(y)))
        return x[:n_train], y[:n_train]

    def held_out(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Client k's held-out rows (its last ``test_fraction``; possibly none)."""
        x, y = self._rows(k)
        n_train = len(y) - int(math.floor(self.test_fraction * len(y)))
        return x[n_train:], y[n_train:]

    def _rows(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = _client_rng(self.seed, _SYNTHETIC, _check_id(k, self.num_clients))
        x, y = synthetic_client(
            rng,
            alpha=self.alpha,
            beta=self.beta,
            dim=self.dim,
            num_classes=self.num_classes,
            mean_samples=self.mean_samples,
        )
        return torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y.astype(np.int64))


@dataclass(frozen=True)
class VirtualWriters:
    """K writers of MNIST digits, each with its own hand and label mix, made on demand.

    Writer k draws from a generator seeded by (seed, split, k):

    - a style, fixed for all its digits: rotation ~ U(-r, r) degrees, shear
      ~ U(-s, s), scale ~ U(1 - c, 1 + c) and stroke thickness t ~ U(-w, w)
      (t > 0 blends each image towards its 3x3 dilation, t < 0 towards its
      erosion, by |t|);
    - a label mix p_k ~ Dirichlet(label_alpha * 1_10) (small alpha: a writer
      writes mostly a few digits, as in Hsu et al. 2019);
    - ``samples_per_client`` labels from p_k and, for each, a base image of
      that digit drawn uniformly from the split's MNIST images (``load_mnist``:
      4,000 training or 1,000 test images).

    The base images are shared by all writers (they are the only thing held
    in memory: 12.5 MB for the training split, whatever K is), so two writers
    may write the same base image with different hands. The privacy unit is
    the writer; this simulates user-level DP, it is not real federated data.
    ``split="test"`` builds a held-out population the same way from the test
    images (other writers: the split is part of the seed).

    Args:
        num_clients: K, in [1, 2^53].
        seed: a non-negative integer.
        split: "train" or "test", which MNIST images the writers copy.
        label_alpha: Dirichlet concentration of each writer's label mix, > 0.
        samples_per_client: digits per writer, >= 1.
        max_rotation: r, in degrees, in [0, 90].
        max_shear: s, in [0, 1].
        max_scale_change: c, in [0, 0.5].
        max_thickness: w, in [0, 1].
        data_dir: folder of the shipped data (defaults to ``fl_dp_lab.data.DATA_DIR``).

    >>> writers = VirtualWriters(10**6, seed=0)
    >>> x, y = writers.client(999_999)
    >>> x.shape, x.dtype, y.dtype, bool(0 <= x.min() and x.max() <= 1)
    (torch.Size([20, 28, 28]), torch.float32, torch.int64, True)
    """

    num_clients: int
    seed: int = 0
    split: str = "train"
    label_alpha: float = 1.0
    samples_per_client: int = 20
    max_rotation: float = 15.0
    max_shear: float = 0.3
    max_scale_change: float = 0.15
    max_thickness: float = 0.7
    image_size: int = 28
    data_dir: str | Path | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        check_int("num_clients", self.num_clients, minimum=1, maximum=MAX_CLIENTS)
        check_int("seed", self.seed, minimum=0)
        check_choice("split", self.split, ("train", "test"))
        check_real("label_alpha", self.label_alpha, low=0.0, low_open=True)
        check_int("samples_per_client", self.samples_per_client, minimum=1)
        check_real("max_rotation", self.max_rotation, low=0.0, high=90.0)
        check_real("max_shear", self.max_shear, low=0.0, high=1.0)
        check_real("max_scale_change", self.max_scale_change, low=0.0, high=0.5)
        check_real("max_thickness", self.max_thickness, low=0.0, high=1.0)
        if self.image_size not in (14, 28):
            fail(
                "image_size",
                "28 (MNIST's) or 14 (2x2 averages, four times cheaper)",
                self.image_size,
            )

    def client(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Writer k's digits ``(x, y)``: float32 images ``(n, s, s)`` in [0, 1], int64 labels."""
        return self.clients([k])[0]

    def clients(self, ids: Any) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """``[client(k) for k in ids]``, the images of all writers restyled in one batch."""
        draws = [self._draw(_check_id(k, self.num_clients)) for k in ids]
        if not draws:
            return []
        images, _ = _mnist_split(self.data_dir, self.split, self.image_size)
        rows = torch.as_tensor(np.concatenate([d[0] for d in draws]))
        sizes = [len(d[0]) for d in draws]
        styles = torch.as_tensor(np.repeat(np.stack([d[2] for d in draws]), sizes, axis=0))
        x = apply_style(images[rows], styles)
        return [(xk, torch.as_tensor(d[1])) for xk, d in zip(x.split(sizes), draws)]

    def test_set(self, num_clients: int, first: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """The digits of writers ``first .. first + num_clients - 1`` pooled: an evaluation set."""
        num_clients = check_int("num_clients", num_clients, minimum=1, maximum=self.num_clients)
        first = check_int("first", first, minimum=0, maximum=self.num_clients - num_clients)
        parts = self.clients(range(first, first + num_clients))
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])

    def _draw(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Writer k's base-image rows, labels and style (rotation, shear, scale, thickness)."""
        _, by_label = _mnist_split(self.data_dir, self.split, self.image_size)
        order, starts, counts = by_label
        rng = _client_rng(self.seed, _WRITER_STREAMS[self.split], k)
        limits = (
            math.radians(self.max_rotation),
            self.max_shear,
            self.max_scale_change,
            self.max_thickness,
        )
        style = rng.uniform(-1.0, 1.0, 4) * limits
        mix = rng.dirichlet(np.full(10, self.label_alpha))
        labels = rng.choice(10, size=self.samples_per_client, p=mix)
        picks = rng.integers(0, counts[labels])  # one uniform base image of each label
        return order[starts[labels] + picks], labels, style


def apply_style(images: torch.Tensor, styles: torch.Tensor) -> torch.Tensor:
    """Restyle images ``(n, s, s)``: thicker or thinner strokes, then an affine map, per image.

    Row i of ``styles`` is (rotation, shear, scale_change, thickness) for
    image i. Thickness t in [-1, 1] blends the image with its 3x3 grey
    dilation (max over the neighbourhood, t > 0) or erosion (min, t < 0) by
    |t|. The affine map A = (1 + scale_change) R(rotation) [[1, shear], [0, 1]]
    shears, rotates and scales about the centre (bilinear resampling, zero
    outside). Pixel values stay in [0, 1].

    >>> digit = torch.zeros(1, 28, 28); digit[0, 10:18, 13:15] = 1.0
    >>> torch.allclose(apply_style(digit, torch.zeros(1, 4)), digit, atol=1e-6)
    True
    >>> bool(apply_style(digit, torch.tensor([[0.0, 0.0, 0.0, 1.0]])).sum() > digit.sum())
    True
    """
    styles = styles.to(images.dtype)
    x = images.unsqueeze(1).clone()
    thickness = styles[:, 3]
    for sign, reduce, pad in ((1.0, torch.maximum, 0.0), (-1.0, torch.minimum, 1.0)):
        rows = torch.nonzero(sign * thickness > 0).flatten()  # only the images that need it
        if len(rows):
            part = x[rows]
            padded = torch.nn.functional.pad(part, (1, 1, 1, 1), value=pad)
            t = (sign * thickness[rows]).view(-1, 1, 1, 1)
            x[rows] = part + t * (_neighbourhood(padded, reduce) - part)
    # affine_grid maps output coordinates to input ones: pass A^-1 = R(-r) [[1, -s], [0, 1]] / z
    rotation, shear, zoom = styles[:, 0], styles[:, 1], 1.0 + styles[:, 2]
    cos, sin = torch.cos(rotation), torch.sin(rotation)
    inverse = torch.zeros(len(x), 2, 3, dtype=x.dtype)
    inverse[:, 0, 0] = (cos + shear * sin) / zoom
    inverse[:, 0, 1] = (sin - shear * cos) / zoom
    inverse[:, 1, 0] = -sin / zoom
    inverse[:, 1, 1] = cos / zoom
    size = x.shape[-1]
    base = _pixel_centres(size, x.dtype)  # (size^2, 3): x, y in [-1, 1] and 1
    grid = (base @ inverse.transpose(1, 2)).view(len(x), size, size, 2)
    out = torch.nn.functional.grid_sample(x, grid, align_corners=False)
    return out.squeeze(1).clamp(0.0, 1.0)


@functools.lru_cache(maxsize=8)
def _pixel_centres(size: int, dtype: torch.dtype) -> torch.Tensor:
    """Homogeneous coordinates (x, y, 1) of a size x size image's pixel centres, x fastest."""
    centres = (torch.arange(size, dtype=dtype) * 2 + 1) / size - 1
    ones = centres.new_ones(size * size)
    return torch.stack([centres.repeat(size), centres.repeat_interleave(size), ones], 1)


def _neighbourhood(padded: torch.Tensor, reduce: Any) -> torch.Tensor:
    """Max or min over each pixel's 3x3 neighbourhood of a 1-pixel-padded batch."""
    rows = reduce(reduce(padded[..., :-2], padded[..., 1:-1]), padded[..., 2:])
    return reduce(reduce(rows[..., :-2, :], rows[..., 1:-1, :]), rows[..., 2:, :])


_SYNTHETIC = 0
_WRITER_STREAMS = {"train": 1, "test": 2}


def _client_rng(seed: int, stream: int, k: int) -> np.random.Generator:
    """Client k's own generator: a pure function of (seed, stream, k), independent across k."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(stream, k)))


def _check_id(k: Any, num_clients: int) -> int:
    if isinstance(k, torch.Tensor) and k.numel() == 1 and not k.is_floating_point():
        k = int(k)
    k = check_int("k", k)
    if not 0 <= k < num_clients:
        fail("k", f"a client id in [0, {num_clients})", k)
    return k


@functools.lru_cache(maxsize=4)
def _mnist_split(
    data_dir: str | Path | None, split: str, image_size: int
) -> tuple[torch.Tensor, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The split's images, and its rows grouped by digit: (order, digit starts, counts)."""
    x_train, y_train, x_test, y_test = load_mnist(data_dir)
    x, y = (x_train, y_train) if split == "train" else (x_test, y_test)
    images = torch.from_numpy(x)
    if image_size == 14:
        images = torch.nn.functional.avg_pool2d(images.unsqueeze(1), 2).squeeze(1)
    order = np.argsort(y, kind="stable")  # rows grouped by digit, digit c from starts[c]
    counts = np.bincount(y, minlength=10)
    return images, (order, np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
