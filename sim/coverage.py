"""Functional coverage: declared bins, hit counts, a summary table, and a hard check.

A :class:`Coverage` declares its bins up front as the cross product of named axes (for the
arithmetic components: precision x operand class x overflow), optionally minus combinations
that cannot occur. Testbenches sample every checked transaction; :meth:`Coverage.check`
raises when a declared bin was never hit, so a stimulus change that silently stops exercising
a corner fails the test instead of passing with less coverage.
"""
from __future__ import annotations

import itertools
import json

import numpy as np

__all__ = ["Coverage", "CoverageError", "operand_class", "OPERAND_CLASSES"]

#: Operand classes of a dot product / code vector (see :func:`operand_class`).
OPERAND_CLASSES = ("zero", "extreme", "random")


class CoverageError(AssertionError):
    """A declared coverage bin was never hit."""


def operand_class(x, w=None, x_ext=(), w_ext=()) -> np.ndarray:
    """Class of each row of operands: ``zero`` (all x or all w zero), ``extreme`` (every
    element at a range extreme listed in ``x_ext``/``w_ext``), otherwise ``random``.

    ``x`` is [N] or [N, K]; ``w`` likewise or None. Returns an array of class names [N].
    """
    x = np.asarray(x)
    x = x[:, None] if x.ndim == 1 else x
    zero = (x == 0).all(axis=-1)
    ext = np.isin(x, list(x_ext)).all(axis=-1) if len(x_ext) else np.zeros(len(x), bool)
    if w is not None:
        w = np.asarray(w)
        w = w[:, None] if w.ndim == 1 else w
        zero |= (w == 0).all(axis=-1)
        ext &= np.isin(w, list(w_ext)).all(axis=-1) if len(w_ext) else True
    return np.where(zero, "zero", np.where(ext, "extreme", "random"))


class Coverage:
    """Cross coverage over named axes.

    Parameters
    ----------
    name : str
        Shown in the summary.
    axes : dict
        Axis name -> list of bin values; the declared bins are the cross product.
    exclude : iterable of dict, optional
        Partial bin specifications (axis -> value) removed from the declared set because
        they cannot occur (e.g. no overflow at all for a shifter).
    """

    def __init__(self, name: str, axes: dict, exclude=()):
        self.name = name
        self.axes = {k: list(v) for k, v in axes.items()}
        names = list(self.axes)
        bins = set(itertools.product(*self.axes.values()))
        for ex in exclude:
            bins = {b for b in bins if not all(b[names.index(k)] == v for k, v in ex.items())}
        self.bins = sorted(bins, key=str)
        self.hits = {b: 0 for b in self.bins}
        self.extra = {}

    def sample(self, **values) -> None:
        """Record one transaction (scalar axis values) or many (equal-length arrays)."""
        names = list(self.axes)
        if set(values) != set(names):
            raise ValueError(f"coverage {self.name}: sample needs axes {names}, got {sorted(values)}")
        cols = [np.atleast_1d(np.asarray(values[k], dtype=object)) for k in names]
        n = max(len(c) for c in cols)
        cols = [np.broadcast_to(c, (n,)) for c in cols]
        for row in zip(*cols):
            key = tuple(v.item() if hasattr(v, "item") else v for v in row)
            if key in self.hits:
                self.hits[key] += 1
            else:
                self.extra[key] = self.extra.get(key, 0) + 1

    def missing(self) -> list:
        return [b for b, c in self.hits.items() if c == 0]

    def summary(self) -> str:
        names = list(self.axes)
        hit = sum(1 for c in self.hits.values() if c)
        lines = [f"coverage {self.name}: {hit}/{len(self.bins)} bins hit "
                 f"({', '.join(f'{k}: {len(v)}' for k, v in self.axes.items())})"]
        w = [max(len(k), *(len(str(b[i])) for b in self.bins)) for i, k in enumerate(names)]
        lines.append("  " + "  ".join(f"{k:{w[i]}s}" for i, k in enumerate(names)) + "   hits")
        for b in self.bins:
            mark = "" if self.hits[b] else "   <-- never hit"
            lines.append("  " + "  ".join(f"{str(v):{w[i]}s}" for i, v in enumerate(b))
                         + f" {self.hits[b]:6d}{mark}")
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {"name": self.name, "axes": self.axes,
                "bins": [{"bin": list(b), "hits": c} for b, c in self.hits.items()],
                "missing": [list(b) for b in self.missing()]}

    def check(self) -> None:
        """Raise :class:`CoverageError` naming every declared bin never hit."""
        miss = self.missing()
        if miss:
            raise CoverageError(f"coverage {self.name}: {len(miss)} declared bin(s) never hit: "
                                f"{miss[:10]}{' ...' if len(miss) > 10 else ''}\n{self.summary()}")

    def __repr__(self):
        return json.dumps(self.to_json())
