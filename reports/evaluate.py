"""Evaluate one design: area, FPGA resources, timing and energy, each step independent.

A step whose tool (or liberty) is missing, or that fails, leaves its fields null and adds a
note; the other steps still run. Runs in a worker process: everything it needs arrives as
plain values (design name, liberty path, workload ``.npz`` path) and the workload is read
with ``allow_pickle=False``.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from golden.formats import DQTValueError

from .energy_model import MODEL_FAMILIES, per_op_model
from .tools import ToolError, find_tool, prepare_liberty

__all__ = ["evaluate_design", "save_workload", "load_workload", "empty_result"]


def save_workload(wl, path) -> Path:
    """Write a :class:`~reports.workload.Workload` as ``.npz`` (arrays + a JSON header)."""
    from .cache import atomic_write_bytes
    import io
    arrays = {}
    for b, s in wl.macs.items():
        for k in ("x", "w", "first", "last", "K"):
            arrays[f"mac_{b}_{k}"] = getattr(s, k)
    for b, r in wl.requant.items():
        for k, a in r.items():
            arrays[f"rq_{b}_{k}"] = a
    head = {"n": wl.n, "bits": wl.bits, "source": wl.source, "seed": wl.seed,
            "accuracy": wl.accuracy}
    arrays["header"] = np.array(json.dumps(head))
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return atomic_write_bytes(path, buf.getvalue())


def load_workload(path):
    from .workload import MacStream, Workload
    with np.load(path, allow_pickle=False) as z:
        head = json.loads(str(z["header"]))
        macs = {b: MacStream(*(z[f"mac_{b}_{k}"] for k in ("x", "w", "first", "last", "K")))
                for b in head["bits"]}
        rq = {b: {k: z[f"rq_{b}_{k}"] for k in ("acc", "M", "S")} for b in head["bits"]}
    return Workload(head["n"], head["bits"], macs, rq, head["source"], head["seed"],
                    head["accuracy"])


def empty_result(d) -> dict:
    return {"name": d.name, "catalog": d.catalog, "family": d.family, "n": d.n,
            "params": d.params,
            "source": d.source, "unit": d.unit, "note": d.note,
            "transistors": None, "sky130_um2": None, "sky130_seq_um2": None,
            "ice40_luts": None, "ecp5_luts": None, "fpga": {},
            "fmax_mhz_ice40": None, "fmax_mhz_ecp5": None, "sta_critical_path_ns": None,
            "energy_pj_per_mac": None, "energy_pj_per_mac_model": None,
            "mean_activity": None, "memory_bits": None, "notes": [], "failed": []}


_LIBS = {}


def _lib_cells(lib_path):
    from .gatesim import LibertyCells
    if lib_path not in _LIBS:
        _LIBS[lib_path] = LibertyCells(Path(lib_path).read_text())
    return _LIBS[lib_path]


def _step(res, what, fn):
    """Run one step of a design; a failure is noted (first line) and recorded in the design's
    ``failed`` list with the whole message (a tool's signal and log tail) instead of
    stopping the report."""
    try:
        return fn()
    except (ToolError, DQTValueError) as e:
        msg = str(e)
    except Exception as e:     # a broken design must not stop the report
        msg = f"{type(e).__name__}: {e}"
    res["notes"].append(f"{what}: {msg}".splitlines()[0][:300])
    res.setdefault("failed", []).append({"step": what, "error": msg[-3000:]})
    return None


def evaluate_design(name: str, fast: bool = False, liberty=None, workload_path=None,
                    include_rtl: bool = True, fpga: bool = True) -> dict:
    """All figures of design ``name``; see the module docstring for the failure contract.

    ``fpga=False`` skips the FPGA synthesis and place-and-route steps (their fields stay
    null, with a note).
    """
    from .designs import default_designs

    designs = {d.name: d for d in default_designs(fast, include_rtl)}
    if name not in designs:
        raise DQTValueError(f"design {name!r} is not in the design list")
    t0 = time.monotonic()
    res = _evaluate(designs[name], fast, liberty, workload_path, fpga)
    res["eval_seconds"] = round(time.monotonic() - t0, 2)  # wall time, cache hits included
    return res


def _evaluate(d, fast, liberty, workload_path, fpga):
    from .pnr import place_and_route
    from .sta import sta_timing
    from .synth import synth_many

    res = empty_result(d)
    wl = load_workload(workload_path) if workload_path else None
    if wl is not None and d.family in MODEL_FAMILIES:
        res["energy_pj_per_mac_model"] = {str(b): per_op_model(d.family, d.n,
                                                               max(1, b * d.n // wl.n), d.params)
                                          for b in wl.bits}
    try:
        v, top = d.verilog()
    except Exception as e:
        res["notes"].append(f"build: {type(e).__name__}: {e}".splitlines()[0][:300])
        return res
    has_yosys = find_tool("yosys") is not None
    if not has_yosys:
        res["notes"].append("yosys not found: area, FPGA and timing fields are null")
        return res
    # With and without DSPs for the single-lane datapaths (the comparisons); the engine gets
    # the DSP flows only (the no-DSP multiplier mapping is its slowest step).
    lane = d.family != "engine"
    targets = ("ice40", "ice40_nodsp", "ecp5", "ecp5_nodsp") if lane else ("ice40", "ecp5")
    # synth_xilinx is the slowest flow (~25 s for a small MAC, many minutes for the 32-bit
    # multipliers of the requantizers without DSPs): run it for the n = 8 MACs only, and
    # not in --fast mode.
    if not fast and lane and d.n == 8 and d.family.endswith("_mac"):
        targets += ("xilinx", "xilinx_nodsp")
    if not fpga:
        targets = ()
        res["notes"].append("FPGA steps not requested")
    want = ["cmos", *targets] + (["sky130"] if liberty is not None else [])
    syn = _step(res, "synthesis", lambda: synth_many(v, top, want, liberty)) or {}
    for t in want:
        if t not in syn:
            res["notes"].append(f"synthesis target {t} failed")
    if "cmos" in syn:
        res["transistors"] = syn["cmos"]["transistors"]
        bits = syn["cmos"].get("memory_bits") or 0
        res["memory_bits"] = bits
        if bits:
            res["notes"].append(f"{bits} memory bits are SRAM macros outside the transistor count "
                                "and the sky130 area (logic only); FPGA flows map them to block RAM")
    for t in targets:
        if t in syn:
            res["fpga"][t] = syn[t]["resources"]
    res["ice40_luts"] = (res["fpga"].get("ice40") or {}).get("lut")
    res["ecp5_luts"] = (res["fpga"].get("ecp5") or {}).get("lut")
    for fam in ("ice40", "ecp5") if fpga else ():
        if find_tool(f"nextpnr-{fam}") is None:
            res["notes"].append(f"nextpnr-{fam} not found: fmax_mhz_{fam} is null")
            continue
        r = _step(res, f"pnr {fam}", lambda fam=fam: place_and_route(v, top, fam))
        if r:
            res[f"fmax_mhz_{fam}"] = r["fmax_mhz"]
    if liberty is None:
        res["notes"].append("no liberty file: sky130 area, STA and activity-based energy are null")
        return res
    s = syn.get("sky130")
    if not s:
        return res
    res["sky130_um2"] = s["area_um2"]
    res["sky130_seq_um2"] = s["seq_area_um2"]
    if find_tool("sta") is None:
        res["notes"].append("OpenSTA not found: critical path and activity-based energy are null")
        return res
    t = _step(res, "sta timing", lambda: sta_timing(s["netlist_v"], top, liberty))
    if t:
        res["sta_critical_path_ns"] = t["critical_path_ns"]
    if d.driver is None or wl is None or d.n != wl.n:
        if d.driver is not None and wl is not None:
            res["notes"].append(f"activity energy only at the workload's width n={wl.n}")
        return res

    r = _step(res, "activity energy", lambda: _activity_energy(d, s, top, liberty, wl))
    if r:
        res["energy_pj_per_mac"], res["mean_activity"] = r
    return res


def _activity_energy(d, s, top, liberty, wl):
    """({b: energy per operation}, {b: mean net activity}) of design ``d``'s sky130 netlist
    ``s`` driven with the workload at every precision (gate-level toggles into OpenSTA)."""
    from rtl.generate import port_table
    from .gatesim import GateSim, Netlist
    from .sta import sta_power
    ports = {p["name"]: p for p in port_table(d.make())}
    lib = _lib_cells(str(prepare_liberty(liberty)))
    sim = GateSim(Netlist.from_blif(s["netlist_blif"]), lib)
    e, act = {}, {}
    for b in wl.bits:
        stim, ops, unit = d.driver(wl, b, ports)
        sr = sim.run(stim)
        p = sta_power(s["netlist_v"], top, liberty, sr.input_activity(), sr.reg_activity())
        # OpenSTA's power is that of one instance; the lanes are independent instances
        # that together performed ``ops`` operations in cycles x lanes instance-cycles.
        e[str(b)] = p["energy_per_cycle_pj"] * sr.cycles * sr.lanes / ops
        act[str(b)] = sr.mean_activity()
    return e, act
