"""fl_dp_lab.data: shipped files, checksums, partitions, synthetic federated data."""

from __future__ import annotations

import hashlib
import shutil

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fl_dp_lab import data
from fl_dp_lab.data import (
    DataIntegrityError,
    dirichlet_client_partition,
    dirichlet_partition,
    iid_partition,
    load_digits,
    load_mnist,
    make_synthetic_federated,
    shard_partition,
)


def test_shipped_files_match_recorded_checksums_and_readme():
    readme = (data.DATA_DIR / "README.md").read_text()
    total = 0
    for filename, expected in data.DATASETS.values():
        path = data.DATA_DIR / filename
        assert hashlib.sha256(path.read_bytes()).hexdigest() == expected
        assert expected in readme, f"data/README.md does not record the sha256 of {filename}"
        total += path.stat().st_size
    assert total <= 20 * 2**20


@pytest.mark.parametrize(
    ("loader", "shape", "n_train", "n_test"),
    [(load_digits, (8, 8), 1437, 360), (load_mnist, (28, 28), 4000, 1000)],
)
def test_loaders_return_scaled_float32_images_and_int64_labels(loader, shape, n_train, n_test):
    x_train, y_train, x_test, y_test = loader()
    assert x_train.shape == (n_train, *shape) and x_test.shape == (n_test, *shape)
    assert x_train.dtype == np.float32 and y_train.dtype == np.int64
    assert 0.0 == x_train.min() and x_train.max() == 1.0
    assert set(np.unique(y_train)) == set(range(10)) == set(np.unique(y_test))
    # the split is stratified: every class is in the test set in near-equal numbers
    assert np.bincount(y_test).min() >= n_test // 10 - 1


def test_missing_file_names_file_checksum_and_fix(tmp_path):
    with pytest.raises(DataIntegrityError, match=r"digits_8x8\.npz is missing.*git checkout"):
        load_digits(tmp_path)


def test_corrupt_file_reports_expected_and_found_checksum(tmp_path):
    # Prepare: a copy of the digits file with one byte flipped
    filename, expected = data.DATASETS["digits"]
    shutil.copy(data.DATA_DIR / filename, tmp_path / filename)
    raw = bytearray((tmp_path / filename).read_bytes())
    raw[100] ^= 0xFF
    (tmp_path / filename).write_bytes(bytes(raw))
    found = hashlib.sha256(bytes(raw)).hexdigest()
    # Execute / Assert
    with pytest.raises(DataIntegrityError) as info:
        load_digits(tmp_path)
    assert expected in str(info.value) and found in str(info.value)
    assert "build_data.py" in str(info.value)


def _assert_partition(parts, n):
    merged = np.concatenate(parts)
    assert len(merged) == n
    assert np.array_equal(np.sort(merged), np.arange(n))
    assert all(p.dtype == np.int64 for p in parts)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 400), k=st.integers(1, 50), seed=st.integers(0, 2**16))
def test_iid_partition_is_complete_disjoint_balanced_and_deterministic(n, k, seed):
    k = min(k, n)
    parts = iid_partition(n, k, seed)
    _assert_partition(parts, n)
    sizes = [len(p) for p in parts]
    assert max(sizes) - min(sizes) <= 1
    assert all(np.array_equal(a, b) for a, b in zip(parts, iid_partition(n, k, seed)))


@settings(max_examples=40, deadline=None)
@given(
    labels=st.lists(st.integers(0, 9), min_size=1, max_size=300),
    k=st.integers(1, 30),
    alpha=st.floats(0.01, 100.0),
    seed=st.integers(0, 2**16),
)
def test_dirichlet_partition_is_complete_disjoint_and_deterministic(labels, k, alpha, seed):
    labels = np.array(labels)
    parts = dirichlet_partition(labels, k, alpha, seed)
    assert len(parts) == k
    _assert_partition(parts, len(labels))
    again = dirichlet_partition(labels, k, alpha, seed)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again))


@settings(max_examples=40, deadline=None)
@given(
    labels=st.lists(st.integers(0, 9), min_size=4, max_size=300),
    k=st.integers(1, 10),
    shards=st.integers(1, 4),
    seed=st.integers(0, 2**16),
)
def test_shard_partition_is_complete_disjoint_and_deterministic(labels, k, shards, seed):
    labels = np.array(labels)
    k = min(k, len(labels) // shards)
    parts = shard_partition(labels, k, shards, seed)
    _assert_partition(parts, len(labels))
    again = shard_partition(labels, k, shards, seed)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again))


def _mean_label_share_of_top_class(labels, parts):
    shares = [np.bincount(labels[p], minlength=10).max() / len(p) for p in parts if len(p) > 0]
    return float(np.mean(shares))


def test_dirichlet_alpha_controls_label_skew():
    # Prepare: the digits labels, 20 clients; IID would give each client ~10% of each class
    _, labels, _, _ = load_digits()
    # Execute
    concentrated = _mean_label_share_of_top_class(labels, dirichlet_partition(labels, 20, 0.05, 0))
    near_iid = _mean_label_share_of_top_class(labels, dirichlet_partition(labels, 20, 1000.0, 0))
    iid = _mean_label_share_of_top_class(labels, iid_partition(len(labels), 20, 0))
    # Assert: small alpha -> one class dominates each client; large alpha -> as balanced
    # as an IID split (or more: Dirichlet(1000) shares are close to exactly 1/K per class)
    assert concentrated > 0.6
    assert near_iid <= iid + 0.02
    assert near_iid < 0.2


def test_shard_partition_gives_each_client_few_classes():
    _, labels, _, _ = load_digits()
    parts = shard_partition(labels, 50, 2, seed=0)
    classes_per_client = [len(np.unique(labels[p])) for p in parts]
    assert max(classes_per_client) <= 4 and np.mean(classes_per_client) <= 2.5


def test_synthetic_federated_is_deterministic_and_has_many_clients():
    a = make_synthetic_federated(num_clients=1000, seed=3)
    b = make_synthetic_federated(num_clients=1000, seed=3)
    c = make_synthetic_federated(num_clients=1000, seed=4)
    assert a.num_clients == 1000 and np.array_equal(a.x, b.x) and np.array_equal(a.y, b.y)
    assert not np.array_equal(a.x[:10], c.x[:10])
    assert set(np.unique(a.client_ids)) == set(range(1000))
    assert a.x.dtype == np.float32 and a.y.dtype == np.int64 and a.x.shape[1] == 60
    _assert_partition(a.client_indices(), len(a.y))
    assert np.array_equal(a.client_sizes(), [len(p) for p in a.client_indices()])


def test_synthetic_alpha_beta_control_heterogeneity():
    # beta = 0 gives every client inputs centred alike; large beta spreads client means apart
    def spread_of_client_means(fed):
        means = np.stack([fed.x[p].mean(0) for p in fed.client_indices()])
        return float(means.std(0).mean())

    same = make_synthetic_federated(num_clients=200, alpha=0.0, beta=0.0, seed=0)
    spread = make_synthetic_federated(num_clients=200, alpha=0.0, beta=4.0, seed=0)
    assert spread_of_client_means(spread) > 1.5 * spread_of_client_means(same)


@pytest.mark.parametrize(
    ("call", "error", "pattern"),
    [
        (lambda: iid_partition(0, 1, 0), ValueError, "num_examples must be an integer >= 1, got 0"),
        (lambda: iid_partition(5, 6, 0), ValueError, "num_clients must be an integer <= 5, got 6"),
        (lambda: iid_partition(5, 2.0, 0), TypeError, "num_clients must be an integer, got 2.0"),
        (lambda: iid_partition(5, 2, -1), ValueError, "seed must be an integer >= 0"),
        (
            lambda: dirichlet_partition(np.array([0, 1]), 2, 0.0, 0),
            ValueError,
            "alpha must be > 0, got 0.0",
        ),
        (
            lambda: dirichlet_partition(np.array([0.5, 1.0]), 2, 1.0, 0),
            TypeError,
            "labels must be a non-empty 1-D integer array",
        ),
        (
            lambda: shard_partition(np.array([0, 1, 2]), 2, 2, 0),
            ValueError,
            r"num_clients \* shards_per_client must be <= the number of examples \(3\), got 4",
        ),
        (
            lambda: make_synthetic_federated(num_clients=0),
            ValueError,
            "num_clients must be an integer >= 1",
        ),
        (
            lambda: make_synthetic_federated(alpha=float("nan")),
            ValueError,
            "alpha must be a finite number",
        ),
        (
            lambda: make_synthetic_federated(test_fraction=1.0),
            ValueError,
            r"test_fraction must be in \[0, 1\), got 1.0",
        ),
    ],
)
def test_bad_input_names_parameter_value_and_allowed_range(call, error, pattern):
    with pytest.raises(error, match=pattern):
        call()


@settings(max_examples=40, deadline=None)
@given(
    labels=st.lists(st.integers(0, 9), min_size=1, max_size=300),
    k=st.integers(1, 30),
    alpha=st.floats(0.001, 1000.0),
    seed=st.integers(0, 2**16),
)
def test_dirichlet_client_partition_uses_every_index_once_in_equal_sizes(labels, k, alpha, seed):
    labels = np.array(labels)
    k = min(k, len(labels))
    parts = dirichlet_client_partition(labels, k, alpha, seed)
    assert len(parts) == k
    _assert_partition(parts, len(labels))
    sizes = [len(p) for p in parts]
    assert max(sizes) - min(sizes) <= 1
    again = dirichlet_client_partition(labels, k, alpha, seed)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again))


def test_dirichlet_client_partition_skews_labels_but_not_sizes():
    # Prepare: the digits labels over 10 clients, as in notebook 08
    _, labels, _, _ = load_digits()
    # Execute
    concentrated = dirichlet_client_partition(labels, 10, 0.05, seed=0)
    near_prior = dirichlet_client_partition(labels, 10, 1000.0, seed=0)
    # Assert: small alpha -> one class holds about half of a client (more would be, but two
    # clients that want the same digit share its 144 examples and spill over to others);
    # large alpha -> every client close to the overall 10 % per digit, as IID (about 0.14)
    assert _mean_label_share_of_top_class(labels, concentrated) > 0.4
    assert _mean_label_share_of_top_class(labels, near_prior) < 0.2
    for parts in (concentrated, near_prior):
        assert {len(p) for p in parts} == {143, 144}


def test_per_class_dirichlet_split_skews_client_sizes_too():
    # the numbers data.dirichlet_partition's docstring and notebook 08 quote: 8 to 362 of the
    # 1,437 training digits over 10 clients at alpha = 0.1, seed 0 (IID: 143 or 144 each)
    _, labels, _, _ = load_digits()
    sizes = [len(p) for p in dirichlet_partition(labels, 10, 0.1, seed=0)]
    assert (min(sizes), max(sizes)) == (8, 362)
    for seed in range(8):  # over seeds the largest client always holds > 5x the smallest
        sizes = [len(p) for p in dirichlet_partition(labels, 10, 0.1, seed=seed)]
        assert max(sizes) > 5 * min(sizes)


def test_dirichlet_client_partition_rejects_bad_input():
    with pytest.raises(ValueError, match="num_clients must be an integer <= 3, got 4"):
        dirichlet_client_partition(np.array([0, 1, 1]), 4, 1.0, seed=0)
    with pytest.raises(ValueError, match="alpha must be > 0, got 0.0"):
        dirichlet_client_partition(np.array([0, 1, 1]), 2, 0.0, seed=0)
    with pytest.raises(TypeError, match="labels must be a non-empty 1-D integer array"):
        dirichlet_client_partition(np.array([0.5, 1.0]), 2, 1.0, seed=0)
