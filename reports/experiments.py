"""The paper's experiments (``dqt experiment NAME --out DIR``) as a section of the report.

``dqt report --experiments DIR`` reads every ``NAME.json`` in DIR that ``dqt experiment``
wrote (an object with ``experiment``, ``columns`` and ``rows``) and its ``NAME.png`` when
present. Each becomes a table and a plot under "Experiments" in report.md and index.html, and
an entry of ``summary.json["experiments"]``. The directory is checked before the report's
first synthesis run: a file that is not such an object is refused with its name.
"""
from __future__ import annotations

import math
from pathlib import Path

from golden.formats import DQTValueError
from golden.loader import read_json

__all__ = ["load_experiments"]


def _check(obj, path: Path) -> dict:
    if not isinstance(obj, dict) or not isinstance(obj.get("experiment"), str):
        raise DQTValueError(f"{path}: not a dqt experiment result (no 'experiment' name)")
    cols, rows = obj.get("columns"), obj.get("rows")
    if not (isinstance(cols, list) and all(isinstance(c, str) for c in cols)):
        raise DQTValueError(f"{path}: 'columns' must be a list of strings")
    if not (isinstance(rows, list) and all(isinstance(r, list) and len(r) == len(cols)
                                           for r in rows)):
        raise DQTValueError(f"{path}: 'rows' must be a list of rows of {len(cols)} values")
    return obj


def load_experiments(directory) -> list[dict]:
    """``[{name, columns, rows, quick, wall_s, png}]`` from a ``dqt experiment`` output
    directory (``png``: the plot's path or None), sorted by name. Raises
    :class:`DQTValueError` when the directory is missing, holds no result, or a result is
    malformed."""
    d = Path(directory)
    if not d.is_dir():
        raise DQTValueError(f"--experiments {str(d)!r} is not a directory")
    out = []
    for p in sorted(d.glob("*.json")):
        obj = _check(read_json(p, "experiment result"), p)
        png = p.with_suffix(".png")
        rows = [[None if isinstance(v, float) and not math.isfinite(v) else v for v in r]
                for r in obj["rows"]]
        out.append({"name": obj["experiment"], "columns": obj["columns"], "rows": rows,
                    "quick": bool(obj.get("quick")), "wall_s": obj.get("wall_s"),
                    "png": str(png) if png.is_file() else None})
    if not out:
        raise DQTValueError(f"--experiments {str(d)!r} holds no experiment result (NAME.json "
                            "written by `dqt experiment NAME --out DIR`)")
    return out
