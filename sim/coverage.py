"""Functional coverage through ``cocotb-coverage``: declared bins, hit counts, a summary
table, and a hard check.

A :class:`Coverage` declares its bins when it is built, before any stimulus: one
``CoverPoint`` per named axis and a ``CoverCross`` over all of them (for the arithmetic
components: precision x operand class x overflow), minus combinations that cannot occur
(``exclude``, or ``reachable``: the subset a golden enumeration of the operand *domain*
reaches, computed independently of the stimulus). The declared bins are read-only.
Testbenches sample every checked transaction; :meth:`Coverage.check` raises when a declared
bin was never hit, so a stimulus change that silently stops exercising a corner fails the
test instead of passing with less coverage.
"""
from __future__ import annotations

import itertools
import json
import types

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
    """Cross coverage over named axes, recorded in ``cocotb_coverage.coverage.coverage_db``.

    Parameters
    ----------
    name : str
        Shown in the summary.
    axes : dict
        Axis name -> list of bin values; the declared bins are the cross product.
    exclude : iterable of dict, optional
        Partial bin specifications (axis -> value) removed from the declared set because
        they cannot occur (e.g. no overflow at all for a shifter).
    reachable : iterable of tuples, optional
        When given, only these cross bins are declared (each must be in the cross product):
        the bins a golden enumeration of the operand domain reaches.

    Members
    -------
    bins : tuple
        The declared cross bins (read-only).
    hits : mapping
        Declared bin -> hit count (a read-only view).
    """

    _ids = itertools.count()

    def __init__(self, name: str, axes: dict, exclude=(), reachable=None):
        from cocotb_coverage.coverage import CoverCross, CoverPoint
        self.name = name
        self._axes = {k: tuple(v) for k, v in axes.items()}
        names = list(self._axes)
        cross = set(itertools.product(*self._axes.values()))
        ign = [tuple(ex.get(a) for a in names) for ex in exclude]  # None: any value
        if reachable is not None:
            keep = {tuple(b) for b in reachable}
            if keep - cross:
                raise ValueError(f"coverage {name}: reachable bins {sorted(keep - cross, key=str)} "
                                 f"are not in the cross product of {names}")
            ign += sorted(cross - keep, key=str)
        # coverage_db is process-global and returns an existing item for a known name:
        # a fresh root per instance keeps the hits of two tests apart
        root = f"dqt{next(Coverage._ids)}_{''.join(c if c.isalnum() else '_' for c in name)}"
        self._cross_name = f"{root}.cross"
        points = [CoverPoint(f"{root}.{a}", xf=(lambda *row, i=i: row[i]), bins=list(self._axes[a]))
                  for i, a in enumerate(names)]   # registered first: the cross reads their bins
        sample = CoverCross(self._cross_name, items=[f"{root}.{a}" for a in names],
                            ign_bins=ign)(lambda *row: None)
        # wrapped innermost first: the points sample, then the cross reads their new hits
        for p in reversed(points):
            sample = p(sample)
        self._sample_row = sample
        self._bins = tuple(sorted(self._db().detailed_coverage, key=str))
        self._declared = frozenset(self._bins)
        self.extra = {}

    def _db(self):
        from cocotb_coverage.coverage import coverage_db
        return coverage_db[self._cross_name]

    @property
    def axes(self) -> dict:
        return dict(self._axes)

    @property
    def bins(self) -> tuple:
        return self._bins

    @property
    def hits(self):
        return types.MappingProxyType(dict(self._db().detailed_coverage))

    def sample(self, **values) -> None:
        """Record one transaction (scalar axis values) or many (equal-length arrays)."""
        names = list(self._axes)
        if set(values) != set(names):
            raise ValueError(f"coverage {self.name}: sample needs axes {names}, got {sorted(values)}")
        cols = [np.atleast_1d(np.asarray(values[k], dtype=object)) for k in names]
        n = max(len(c) for c in cols)
        cols = [np.broadcast_to(c, (n,)) for c in cols]
        for row in zip(*cols):
            key = tuple(v.item() if hasattr(v, "item") else v for v in row)
            self._sample_row(*key)
            if key not in self._declared:
                self.extra[key] = self.extra.get(key, 0) + 1

    def missing(self) -> list:
        return [b for b, c in self.hits.items() if c == 0]   # at_least = 1

    def summary(self) -> str:
        names = list(self._axes)
        hits = self.hits
        hit = sum(1 for c in hits.values() if c)
        lines = [f"coverage {self.name}: {hit}/{len(self.bins)} bins hit "
                 f"({', '.join(f'{k}: {len(v)}' for k, v in self.axes.items())})"]
        w = [max(len(k), *(len(str(b[i])) for b in self.bins)) for i, k in enumerate(names)]
        lines.append("  " + "  ".join(f"{k:{w[i]}s}" for i, k in enumerate(names)) + "   hits")
        for b in self.bins:
            mark = "" if hits[b] else "   <-- never hit"
            lines.append("  " + "  ".join(f"{str(v):{w[i]}s}" for i, v in enumerate(b))
                         + f" {hits[b]:6d}{mark}")
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {"name": self.name, "axes": {k: list(v) for k, v in self._axes.items()},
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
