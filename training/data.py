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
    "GradedSplit",
    "digits_graded_split",
    "GRADED_FAMILIES",
    "corrupt",
    "check_cifar10_dir",
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


def check_cifar10_dir(directory) -> None:
    """Raise naming what is missing unless ``directory`` holds the six binary batches with
    sizes that are positive multiples of the record (reads nothing else)."""
    d = Path(directory)
    if not d.is_dir():
        raise DQTValueError(f"CIFAR-10 directory {str(d)!r} does not exist")
    files = CIFAR_TRAIN_FILES + CIFAR_TEST_FILES
    missing = [f for f in files if not (d / f).is_file()]
    if missing:
        raise DQTValueError(f"CIFAR-10 directory {str(d)!r} lacks {missing} "
                            f"(expected the binary version: {list(files)})")
    for f in files:
        size = (d / f).stat().st_size
        if size == 0 or size % CIFAR_RECORD:
            raise DQTValueError(f"{d / f}: size {size} bytes is not a positive multiple of "
                                f"the {CIFAR_RECORD}-byte record")


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


#: Corruption families of the graded split, each a function of a severity in [0, 1].
GRADED_FAMILIES = ("noise", "blur", "occlusion", "contrast")


def corrupt(img: np.ndarray, family: str, severity: float, rng) -> np.ndarray:
    """One corrupted copy of an 8x8 digit (pixel values 0..16) at ``severity`` in [0, 1]
    (0: the clean image). ``noise``: additive Gaussian, sigma = 6 · severity; ``blur``:
    Gaussian blur, sigma = 1.2 · severity; ``occlusion``: a zeroed square of side
    round(5 · severity) at a random position; ``contrast``: pixels pulled towards the image
    mean, x' = m + (x - m)(1 - 0.9 · severity). The result is clipped to [0, 16] and rounded
    to the input grid (1/15 of a pixel unit, the networks' input step)."""
    from scipy.ndimage import gaussian_filter

    x = img.astype(np.float64)
    if severity > 0:
        if family == "noise":
            x = x + rng.normal(0.0, 6.0 * severity, x.shape)
        elif family == "blur":
            x = gaussian_filter(x, 1.2 * severity, mode="constant")
        elif family == "occlusion":
            k = int(round(5 * severity))
            if k:
                r, c = rng.integers(0, 9 - k, size=2)
                x = x.copy()
                x[..., r:r + k, c:c + k] = 0.0
        elif family == "contrast":
            m = x.mean()
            x = m + (x - m) * (1.0 - 0.9 * severity)
        else:
            raise DQTValueError(f"corruption family {family!r} is not one of {list(GRADED_FAMILIES)}")
    return (np.round(np.clip(x, 0.0, 16.0) * 15.0) / 15.0).astype(np.float32)


@dataclass(frozen=True)
class GradedSplit:
    """Graded-difficulty digits: x float32 [N, 1, 8, 8], y int64 [N], level int64 [N] (0: the
    clean image, ``levels - 1``: the hardest), family int64 [N] (index into
    ``GRADED_FAMILIES``); the clean split's images are ``x_clean_test`` / ``y_clean_test``."""

    x_train: np.ndarray
    y_train: np.ndarray
    level_train: np.ndarray
    family_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    level_test: np.ndarray
    family_test: np.ndarray
    x_clean_test: np.ndarray
    y_clean_test: np.ndarray
    split_seed: int
    test_fraction: float
    levels: int
    copies: int

    def info(self) -> dict:
        return {"dataset": "digits-graded", "source": "sklearn.datasets.load_digits",
                "n_train": int(len(self.y_train)), "n_test": int(len(self.y_test)),
                "n_clean_test": int(len(self.y_clean_test)),
                "split_seed": int(self.split_seed), "test_fraction": float(self.test_fraction),
                "levels": int(self.levels), "copies": int(self.copies),
                "families": list(GRADED_FAMILIES),
                "split_rule": "the digits split (split_seed, test_fraction); train: `copies` "
                              "corrupted copies of each training image, family and level drawn "
                              "uniformly; test: every test image at every level, one family per "
                              "image; rng=numpy.random.default_rng([split_seed, 1])"}


def digits_graded_split(split_seed: int = 0, test_fraction: float = 0.2, levels: int = 6,
                        copies: int = 2) -> GradedSplit:
    """Deterministic graded-difficulty split built from the digits split of the same seed, so
    train and test come from disjoint source images. Severity of level l is l / (levels - 1)."""
    for name, v, lo in (("levels", levels, 2), ("copies", copies, 1)):
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= 64:
            raise DQTValueError(f"graded {name}={v!r} is outside the allowed range [{lo}, 64]")
    base = digits_split(split_seed, test_fraction)
    rng = np.random.default_rng([int(split_seed), 1])
    nf = len(GRADED_FAMILIES)
    sev = np.linspace(0.0, 1.0, levels)

    def make(xs, lv, fam):
        return np.stack([corrupt(x, GRADED_FAMILIES[f], sev[l], rng)
                         for x, l, f in zip(xs, lv, fam)])

    src = np.repeat(np.arange(len(base.y_train)), copies)
    lv_tr = rng.integers(0, levels, len(src))
    fam_tr = rng.integers(0, nf, len(src))
    x_tr = make(base.x_train[src], lv_tr, fam_tr)
    nt = len(base.y_test)
    fam_img = rng.integers(0, nf, nt)
    src_te = np.tile(np.arange(nt), levels)
    lv_te = np.repeat(np.arange(levels), nt)
    fam_te = fam_img[src_te]
    x_te = make(base.x_test[src_te], lv_te, fam_te)
    return GradedSplit(x_tr, base.y_train[src], lv_tr.astype(np.int64), fam_tr.astype(np.int64),
                       x_te, base.y_test[src_te], lv_te.astype(np.int64), fam_te.astype(np.int64),
                       base.x_test, base.y_test, int(split_seed), float(test_fraction),
                       int(levels), int(copies))
