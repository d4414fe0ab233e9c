"""Pack and unpack stream payloads using the port table of ``rtl.generate``'s manifest.

A payload port is a flat bit vector; its entry in the manifest lists the struct fields
(``name``, ``offset``, ``width``, ``signed``) and array fields (``count``, ``elem_width``).
:func:`pack` turns per-field numpy arrays (one row per beat) into the integers the
testbench writes to the port; :func:`unpack` turns the integers read back into per-field
int64 arrays, sign-extended where the field is signed. Values are masked to their field
width when packed, so a signed -1 becomes all ones, as in hardware.
"""
from __future__ import annotations

import numpy as np

from golden.formats import DQTValueError

__all__ = ["PackError", "field_map", "pack", "unpack", "to_signed"]


class PackError(DQTValueError):
    """A payload field that the port does not have, or a value of the wrong shape."""


def field_map(port: dict) -> dict:
    """``name -> field entry`` of a payload port (a plain port is one field named "")."""
    if "fields" not in port:
        f = {"name": "", "offset": 0, "width": port["width"], "signed": port.get("signed", False)}
        if "count" in port:
            f.update(count=port["count"], elem_width=port["elem_width"],
                     signed=port.get("elem_signed", False))
        return {"": f}
    return {f["name"]: f for f in port["fields"]}


def to_signed(v: np.ndarray, width: int) -> np.ndarray:
    """Reinterpret unsigned ``width``-bit values (int64) as two's complement."""
    v = np.asarray(v, dtype=np.int64)
    return np.where(v >= (1 << (width - 1)), v - (1 << width), v)


def pack(port: dict, values: dict, n: int | None = None) -> list[int]:
    """Pack ``values`` (field -> scalar, [N] or [N, count]) into N port integers.

    Missing fields are zero. Raises :class:`PackError` naming an unknown field.
    """
    fields = field_map(port)
    for k in values:
        if k not in fields:
            raise PackError(f"port {port['name']} has no field {k!r}; fields: {sorted(fields)}")
    if n is None:
        n = max((len(np.atleast_1d(v)) if np.ndim(v) else 1 for v in values.values()), default=1)
    acc = np.zeros(n, dtype=object)
    for name, f in fields.items():
        if name not in values:
            continue
        v = np.asarray(values[name], dtype=np.int64)
        if "count" in f:
            ew, cnt = f["elem_width"], f["count"]
            if v.shape[-1:] != (cnt,):
                raise PackError(f"field {name!r} needs shape [N, {cnt}], got {list(v.shape)}")
            u = (np.broadcast_to(v, (n, cnt)) & ((1 << ew) - 1)).astype(object)
            word = np.zeros(n, dtype=object)
            for j in range(cnt):
                word = word | (u[:, j] << (j * ew))
        else:
            v = np.broadcast_to(v, (n,))
            wd = f["width"]
            if wd <= 62:
                word = (v & ((1 << wd) - 1)).astype(object)
            else:
                word = np.array([int(x) & ((1 << wd) - 1) for x in v], dtype=object)
        acc = acc | (word << f["offset"])
    return [int(x) for x in acc]


def unpack(port: dict, words) -> dict:
    """Unpack port integers into ``field -> int64 array`` ([N] or [N, count])."""
    fields = field_map(port)
    w = [int(x) for x in words]
    out = {}
    for name, f in fields.items():
        if "count" in f:
            ew, cnt = f["elem_width"], f["count"]
            mask = (1 << ew) - 1
            a = np.array([[(x >> (f["offset"] + j * ew)) & mask for j in range(cnt)] for x in w],
                         dtype=np.int64).reshape(len(w), cnt)
            out[name] = to_signed(a, ew) if f.get("signed") else a
        else:
            mask = (1 << f["width"]) - 1
            a = np.array([(x >> f["offset"]) & mask for x in w], dtype=object)
            if f["width"] <= 63:
                a = a.astype(np.int64)
                out[name] = to_signed(a, f["width"]) if f.get("signed") else a
            else:
                out[name] = np.array([x - (1 << f["width"]) if f.get("signed") and x >> (f["width"] - 1)
                                      else x for x in a], dtype=object)
    return out
