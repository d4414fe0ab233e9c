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


def _flat_fields(port_or_elem: dict):
    """(name, offset, width, count, elem_width, signed) for each field of a struct port."""
    out = []
    for name, f in field_map(port_or_elem).items():
        if "count" in f:
            out.append((name, f["offset"], f["width"], f["count"], f["elem_width"],
                        bool(f.get("signed"))))
        else:
            out.append((name, f["offset"], f["width"], 1, f["width"], bool(f.get("signed"))))
    return out


def pack_array(elem: dict, elem_width: int, values: dict, count: int) -> int:
    """Pack ``count`` struct elements (fields as in :func:`pack`) into one wide integer,
    element j at bit ``j * elem_width``: the value of an ``ArrayLayout(struct, N)`` port.

    Vectorised through a bit matrix, so a batch of thousands of bits costs microseconds.
    """
    bits = np.zeros((count, elem_width), dtype=np.uint8)
    for name, off, _, cnt, ew, _s in _flat_fields(elem):
        if name not in values:
            continue
        v = np.asarray(values[name], dtype=np.int64)
        v = np.broadcast_to(v.reshape(v.shape[0], -1) if v.ndim else v, (count, cnt))
        sh = np.arange(ew, dtype=np.int64)
        b = ((v[:, :, None] >> sh) & 1).astype(np.uint8).reshape(count, cnt * ew)
        bits[:, off:off + cnt * ew] = b
    flat = np.packbits(bits.reshape(-1), bitorder="little")
    return int.from_bytes(flat.tobytes(), "little")


def unpack_array(elem: dict, elem_width: int, word: int, count: int) -> dict:
    """Inverse of :func:`pack_array`: ``field -> int64 array`` [count] or [count, n]."""
    word = int(word) & ((1 << (count * elem_width)) - 1)  # later elements may hold stale data
    nbytes = (count * elem_width + 7) // 8 + 1
    raw = np.frombuffer(int(word).to_bytes(nbytes, "little"), dtype=np.uint8)
    bits = np.unpackbits(raw, bitorder="little")[:count * elem_width].reshape(count, elem_width)
    out = {}
    for name, off, _, cnt, ew, sgn in _flat_fields(elem):
        if ew > 62:
            raise PackError(f"field {name!r} is {ew} bits wide; unpack_array handles <= 62")
        b = bits[:, off:off + cnt * ew].reshape(count, cnt, ew).astype(np.int64)
        v = (b << np.arange(ew, dtype=np.int64)).sum(axis=-1)
        if sgn:
            v = to_signed(v, ew)
        out[name] = v if cnt > 1 or "count" in field_map(elem)[name] else v[:, 0]
    return out
