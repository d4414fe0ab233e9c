"""The one reader of artifact files: every way a read can fail becomes an :class:`ArtifactError`
that names the file and what is wrong with it.

Artifacts come from disks, copies and downloads, so a file may be missing, truncated, have a
flipped byte, be a different format, or hold object arrays that would need unpickling. numpy and
zipfile report these as a dozen unrelated exceptions (``BadZipFile``, ``zlib.error``,
``EOFError``, ``ValueError`` saying "pickled data" for a file that is simply not a zip); the
functions here check the container first and turn the rest into one named error, so a command
can answer with exit status 2 and one line instead of a traceback.
"""
from __future__ import annotations

import json
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np

from .formats import DQTValueError

__all__ = ["ArtifactError", "read_json", "read_arrays", "read_npy"]

_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")   # a local file header, or an empty archive
_NPY_MAGIC = b"\x93NUMPY"
# What numpy's and zipfile's readers raise on damaged input (zlib.error: a damaged deflate
# stream; struct.error: a truncated header; KeyError: a zip directory naming an absent member;
# NotImplementedError: an unknown compression method; RecursionError: absurdly nested JSON).
_READ_ERRORS = (OSError, EOFError, ValueError, KeyError, TypeError, RuntimeError, OverflowError,
                NotImplementedError, RecursionError, MemoryError, zipfile.BadZipFile, zlib.error,
                struct.error, UnicodeDecodeError)


class ArtifactError(DQTValueError):
    """An artifact (or an input file) that does not meet the format; the message names the
    file or the field."""


def _head(path: Path, what: str) -> bytes:
    if not path.exists():
        raise ArtifactError(f"{path}: {what} is missing")
    if not path.is_file():
        raise ArtifactError(f"{path}: {what} is not a regular file")
    try:
        with open(path, "rb") as f:
            return f.read(8)
    except OSError as e:
        raise ArtifactError(f"{path}: {what} cannot be read ({e.strerror or e})") from None


def _expect(path: Path, what: str, head: bytes, magic: bytes, expected: str, other: bytes,
            other_kind: str) -> None:
    """Refuse a file whose first bytes are not ``magic``, saying what it looks like instead."""
    if not head.startswith(magic):
        kind = other_kind if head.startswith(other) else \
            "empty" if not head else \
            f"starts with bytes {head[:len(magic[0] if isinstance(magic, tuple) else magic)]!r}"
        raise ArtifactError(f"{path}: {what} is not {expected} ({kind})")


def _plain(a: np.ndarray, path: Path, member: str) -> np.ndarray:
    if a.dtype.kind not in "biuf" or a.dtype.fields is not None:
        raise ArtifactError(f"{path}: member {member!r} has dtype {a.dtype}; only plain integer, "
                            "float and bool arrays are allowed")
    return a


def read_json(path, what: str = "JSON file"):
    """Parse a JSON file; a missing, unreadable or malformed file raises :class:`ArtifactError`."""
    path = Path(path)
    _head(path, what)
    try:
        with open(path, "rb") as f:
            return json.loads(f.read().decode("utf-8"))
    except json.JSONDecodeError as e:
        raise ArtifactError(f"{path}: {what} is not valid JSON ({e})") from None
    except UnicodeDecodeError as e:
        raise ArtifactError(f"{path}: {what} is not UTF-8 text ({e.reason} at byte {e.start})") from None
    except _READ_ERRORS as e:
        raise ArtifactError(f"{path}: {what} cannot be read ({type(e).__name__}: {e})") from None


def _damaged(path: Path, what: str, e: Exception) -> ArtifactError:
    """The one-line error for a file numpy could not read to the end."""
    msg = str(e).splitlines()[0] if str(e) else ""
    return ArtifactError(f"{path}: {what} is damaged or truncated "
                         f"({type(e).__name__}{': ' + msg if msg else ''})")


def read_arrays(path, what: str = "array archive") -> dict:
    """Every member of an ``.npz`` as a plain numeric array, never unpickled. Raises
    :class:`ArtifactError` for anything that is not a complete, undamaged npz of such arrays."""
    path = Path(path)
    _expect(path, what, _head(path, what), _ZIP_MAGIC, "a zip archive of .npy arrays",
            _NPY_MAGIC, "a single .npy array")
    try:
        with np.load(path, allow_pickle=False) as z:
            names = list(z.files)
            if len(set(names)) != len(names):
                raise ArtifactError(f"{path}: {what} holds a member name twice")
            return {k: _plain(z[k], path, k) for k in names}
    except ArtifactError:
        raise
    except _READ_ERRORS as e:
        raise _damaged(path, what, e) from None


def read_npy(path, what: str = "array file") -> np.ndarray:
    """One ``.npy`` array of plain numbers, never unpickled; anything else raises
    :class:`ArtifactError`."""
    path = Path(path)
    _expect(path, what, _head(path, what), _NPY_MAGIC, "a .npy array", _ZIP_MAGIC,
            "a zip archive (.npz)")
    try:
        return _plain(np.load(path, allow_pickle=False), path, "array")
    except ArtifactError:
        raise
    except _READ_ERRORS as e:
        raise _damaged(path, what, e) from None
