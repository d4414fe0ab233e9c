"""One design point -> its figures: the thin adapter from the RTL registry to the report's
cost functions (synthesis area, the 45 nm per-operation energy model, cycles from the
component's own latency). Runs on a Dask worker; results are cached by the hash of the
point's Verilog and settings in a directory the workers share."""
from __future__ import annotations

import json
import math
import time
import traceback
from pathlib import Path

__all__ = ["point_key", "evaluate_point", "cycles_per_dot"]

_VERSION = 2   # bump when the figures a point computes change


def point_key(verilog: str, settings: dict) -> str:
    from reports.cache import cache_key
    return cache_key("sweep-point", _VERSION, settings, verilog)


def cycles_per_dot(component: str, params: dict, latency, bits: int, K: int):
    """Cycles to stream one K-term dot product (or K values through an element-wise
    component): ceil(K / pes) beats, b cycles per beat for the bit-serial MAC, plus the
    component's latency."""
    pes = params.get("pes")
    beats = math.ceil(K / pes) if pes else K
    per_beat = bits if component == "bitserial_mac" else 1
    return beats * per_beat + (latency if isinstance(latency, int) else 0)


def _figures(point, comp_info, verilog, top):
    from reports.energy_model import MODEL_FAMILIES, per_op_model
    from reports.synth import synth
    t0 = time.perf_counter()
    res = synth(verilog, top, point["target"])
    area = res.get("transistors") or sum((res.get("resources") or {}).values()) or None
    n = point["params"].get("n", 8)
    comp = point["component"]   # catalog names are the energy model's family names
    energy = per_op_model(comp, n, point["bits"], point["params"]) if comp in MODEL_FAMILIES else None
    cycles = cycles_per_dot(point["component"], point["params"], comp_info.get("latency"),
                            point["bits"], point["K"])
    return {"area": area, "area_unit": "transistors" if point["target"] == "cmos" else "cells",
            "energy_pj_per_op": energy, "cycles": cycles, "synth_s": time.perf_counter() - t0}


def evaluate_point(point: dict, cache_dir: str) -> dict:
    """Figures of one point (a :meth:`sweep.config.Point.settings` dict). Never raises: a
    failure comes back as ``status: failed`` with its reason. A point already in
    ``cache_dir`` comes back with ``resumed: True`` and is not recomputed."""
    from rtl.generate import component_info, to_verilog
    from rtl.registry import build
    out = dict(point, status="failed", resumed=False)
    try:
        comp = build(point["component"], point["params"])
        top = f"sweep_{point['component']}"
        verilog = to_verilog(comp, top)
        key = point_key(verilog, point)
        path = Path(cache_dir) / key[:2] / f"{key}.json"
        if path.is_file():
            return dict(json.loads(path.read_text()), resumed=True)
        out.update(_figures(point, component_info(comp), verilog, top), status="done", key=key)
        _atomic_json(path, out)
        return out
    except Exception as e:   # recorded per point; the sweep goes on
        out["reason"] = f"{type(e).__name__}: {e}".splitlines()[0][:500]
        out["traceback"] = traceback.format_exc(limit=3)[-2000:]
        return out


def _atomic_json(path: Path, obj) -> None:
    from reports.cache import atomic_write_text
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(obj, sort_keys=True))
