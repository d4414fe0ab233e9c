"""Content-addressed result cache for tool runs.

A result is stored under ``<cache>/<kind>/<key[:2]>/<key>.json`` where ``key`` is the sha256
of everything that determines it (the Verilog text, the tool's version and its settings).
The cache directory is ``$DQT_CACHE`` when set, else ``build/cache`` under the current
directory. Writes are atomic (temp file + rename), so parallel workers never see half a file.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from golden.atomic import atomic_write_bytes, atomic_write_text

__all__ = ["cache_dir", "cache_key", "cache_get", "cache_put", "atomic_write_text",
           "atomic_write_bytes"]


def cache_dir() -> Path:
    """The cache root (created on demand)."""
    p = Path(os.environ.get("DQT_CACHE") or Path("build") / "cache")
    p.mkdir(parents=True, exist_ok=True)
    return p


def cache_key(*parts) -> str:
    """sha256 over the JSON encoding of ``parts`` (strings, numbers, lists, dicts)."""
    h = hashlib.sha256()
    h.update(json.dumps(parts, sort_keys=True, default=str).encode())
    return h.hexdigest()


def _path(kind: str, key: str) -> Path:
    return cache_dir() / kind / key[:2] / f"{key}.json"


def cache_get(kind: str, key: str):
    """The cached JSON value, or None when absent or unreadable."""
    p = _path(kind, key)
    try:
        with open(p) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def cache_put(kind: str, key: str, value) -> None:
    p = _path(kind, key)
    atomic_write_text(p, json.dumps(value, sort_keys=True, allow_nan=False))


