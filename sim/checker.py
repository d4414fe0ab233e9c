"""Scoreboard comparison: bulk equality with a precise report of the first mismatch.

The report names the element (index), what was expected and what the RTL produced, the
operands and precision of that transaction, the clock cycle it left the DUT, and the
command that reruns the failing test with waves (``WAVES=1``).
"""
from __future__ import annotations

import os

import numpy as np

__all__ = ["Mismatch", "compare"]


class Mismatch(AssertionError):
    """RTL output differs from the golden model; the message locates the first element."""


def _fmt(v):
    v = np.asarray(v)
    if v.ndim == 0:
        return str(v.item())
    return np.array2string(v, separator=",", max_line_width=200, threshold=64)


def compare(what: str, got, exp, context: dict | None = None, cycles=None,
            rerun: str | None = None) -> int:
    """Assert ``got == exp`` on every element (first axis = transactions).

    ``context`` maps names to per-transaction arrays (operands, precision, ...) shown for
    the first mismatch; ``cycles`` gives the output cycle of each transaction. Returns the
    number of elements checked. Raises :class:`Mismatch`.
    """
    got = np.asarray(got)
    exp = np.asarray(exp)
    if got.shape != exp.shape:
        raise Mismatch(f"{what}: RTL produced shape {got.shape}, golden {exp.shape}")
    bad = np.argwhere(got != exp)
    if bad.size == 0:
        return int(exp.size)
    idx = tuple(int(i) for i in bad[0])
    t = idx[0]
    lines = [f"{what}: {len(bad)} of {exp.size} elements differ; first at index {list(idx)}: "
             f"RTL {got[idx]} != golden {exp[idx]}"]
    if cycles is not None and t < len(cycles):
        lines.append(f"  output cycle: {int(cycles[t])}")
    for k, v in (context or {}).items():
        # per-transaction values (lists may be ragged: packets of different lengths)
        per = (isinstance(v, (list, tuple)) or np.ndim(v) > 0) and len(v) > t
        lines.append(f"  {k}: {_fmt(np.asarray(v[t] if per else v))}")
    rerun = rerun or os.environ.get("DQT_RERUN")
    if rerun:
        lines.append(f"  rerun with waves: {rerun}")
    raise Mismatch("\n".join(lines))
