"""Data sets: scikit-learn's bundled digits (fixed seeded split) and CIFAR-10 binary files.

Digits: 1797 images of 8x8 pixels with values 0..16, loaded offline. The split is a seeded
permutation (``numpy.random.default_rng(split_seed)``): the first ``ceil(test_fraction · N)``
indices are the held-out test set. The same (seed, fraction) always gives the same split, so
an artifact records them and evaluation regenerates its test set.

CIFAR-10: the *binary* distribution (``cifar-10-batches-bin``): ``data_batch_1.bin`` ..
``data_batch_5.bin`` and ``test_batch.bin``, each a sequence of 3073-byte records (one label
byte, then 3072 bytes: 1024 red, 1024 green, 1024 blue, row-major 32x32). Read with numpy
only, nothing unpickled.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from golden.formats import DQTValueError

__all__ = [
    "DigitsSplit",
    "digits_split",
    "CIFAR_RECORD",
    "CIFAR_TRAIN_FILES",
    "CIFAR_TEST_FILES",
    "load_cifar10_bin",
    "DIGITS_MIN_TEST",
]

#: The held-out digits split must hold at least this many images (20 % of 1797).
DIGITS_MIN_TEST = 360
CIFAR_RECORD = 1 + 3 * 32 * 32
CIFAR_TRAIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
CIFAR_TEST_FILES = ("test_batch.bin",)


@dataclass(frozen=True)
class DigitsSplit:
    """Digits train/test arrays: x float32 [N, 1, 8, 8] (pixel values 0..16), y int64 [N]."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    split_seed: int
    test_fraction: float

    def info(self) -> dict:
        """JSON description stored in an artifact's metadata."""
        return {"dataset": "digits", "source": "sklearn.datasets.load_digits",
                "n_total": int(len(self.y_train) + len(self.y_test)),
                "n_train": int(len(self.y_train)), "n_test": int(len(self.y_test)),
                "split_seed": int(self.split_seed), "test_fraction": float(self.test_fraction),
                "split_rule": "rng=numpy.random.default_rng(split_seed); p=rng.permutation(N); "
                              "test=p[:ceil(test_fraction*N)], train=rest (in permutation order)"}


def digits_split(split_seed: int = 0, test_fraction: float = 0.2) -> DigitsSplit:
    """The seeded digits split; raises if the test set would hold fewer than 360 images."""
    from sklearn.datasets import load_digits

    if isinstance(split_seed, bool) or not isinstance(split_seed, (int, np.integer)) \
            or split_seed < 0:
        raise DQTValueError(f"split_seed={split_seed!r} must be a non-negative integer")
    if not (isinstance(test_fraction, (int, float)) and 0.0 < test_fraction < 1.0):
        raise DQTValueError(f"test_fraction={test_fraction!r} is outside the allowed range (0, 1)")
    d = load_digits()
    x = d.images.astype(np.float32).reshape(-1, 1, 8, 8)
    y = d.target.astype(np.int64)
    N = len(y)
    n_test = math.ceil(test_fraction * N)
    if n_test < DIGITS_MIN_TEST or n_test >= N:
        raise DQTValueError(f"test_fraction={test_fraction} gives {n_test} test images; the "
                            f"allowed range is [{DIGITS_MIN_TEST}, {N - 1}]")
    p = np.random.default_rng(int(split_seed)).permutation(N)
    te, tr = p[:n_test], p[n_test:]
    return DigitsSplit(x[tr], y[tr], x[te], y[te], int(split_seed), float(test_fraction))


def load_cifar10_bin(directory, split: str = "train", limit: int | None = None):
    """Read CIFAR-10 binary batches from ``directory``.

    Parameters
    ----------
    directory : path
        Folder holding the ``*.bin`` files (e.g. ``cifar-10-batches-bin``).
    split : {"train", "test"}
        ``train``: data_batch_1..5.bin; ``test``: test_batch.bin.
    limit : int, optional
        Read at most this many records (in file order).

    Returns
    -------
    x : uint8 array [N, 3, 32, 32]; y : int64 array [N] (labels 0..9).

    Raises
    ------
    DQTValueError
        The directory or a file is missing (named), a file size is not a multiple of 3073
        bytes, or a label is outside 0..9.
    """
    if split not in ("train", "test"):
        raise DQTValueError(f"split {split!r} is not one of ['train', 'test']")
    d = Path(directory)
    if not d.is_dir():
        raise DQTValueError(f"CIFAR-10 directory {str(d)!r} does not exist")
    files = CIFAR_TRAIN_FILES if split == "train" else CIFAR_TEST_FILES
    missing = [f for f in files if not (d / f).is_file()]
    if missing:
        raise DQTValueError(f"CIFAR-10 directory {str(d)!r} lacks {missing} "
                            f"(expected the binary version: {list(files)})")
    xs, ys, total = [], [], 0
    for f in files:
        raw = np.fromfile(d / f, dtype=np.uint8)
        if raw.size == 0 or raw.size % CIFAR_RECORD:
            raise DQTValueError(f"{d / f}: size {raw.size} bytes is not a positive multiple of "
                                f"the {CIFAR_RECORD}-byte record")
        rec = raw.reshape(-1, CIFAR_RECORD)
        if limit is not None:
            rec = rec[:max(0, int(limit) - total)]
        lab = rec[:, 0].astype(np.int64)
        if lab.size and lab.max() > 9:
            raise DQTValueError(f"{d / f}: label {int(lab.max())} is outside [0, 9]")
        xs.append(rec[:, 1:].reshape(-1, 3, 32, 32))
        ys.append(lab)
        total += len(lab)
        if limit is not None and total >= limit:
            break
    return np.concatenate(xs), np.concatenate(ys)
