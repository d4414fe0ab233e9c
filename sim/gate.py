"""The layer engine's sky130 gate netlist under Verilator, with toggle counts.

:func:`gate_engine` synthesizes the same engine that :class:`sim.batch.BatchEngine` runs
(``reports.synth`` target ``sky130``: the netlist OpenSTA times and costs), writes its
simulation view (the netlist, the liberty cells as Verilog, the memory macro model of
:mod:`reports.gate_models`) and builds it with the batch driver and Verilator's toggle
coverage. The result is a :class:`~sim.batch.BatchEngine`: the network walk of
:mod:`sim.network_check` runs on it unchanged, so the gate netlist is checked against the
golden traces element by element while it counts its own toggles.

:func:`toggle_counts` reads Verilator's coverage file; :func:`activities` turns the counts
of one run into the annotations :func:`reports.sta.sta_power` takes (engine input ports,
flip-flop outputs, and the load pins of the memory macros' read data, which the STA netlist
leaves undriven because the macros are outside it).
"""
from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from golden.formats import DQTValueError

from . import runner
from .batch import BatchEngine

__all__ = ["gate_engine", "toggle_counts", "activities", "check_macros"]

#: Parameters of the ``$mem_v2`` macros that :data:`reports.gate_models.SRAM_MODEL` models.
_MACRO_EXPECT = {"RD_PORTS": 1, "WR_PORTS": 1, "RD_CLK_ENABLE": 1, "RD_CLK_POLARITY": 1,
                 "RD_TRANSPARENCY_MASK": 0, "WR_CLK_ENABLE": 1, "WR_CLK_POLARITY": 1}


def _param_int(v: str) -> int | None:
    v = v.strip().strip('"')
    if re.fullmatch(r"[01]+", v):
        return int(v, 2)
    return None


def check_macros(netlist_blif: str) -> int:
    """Number of ``DQT_SRAM`` macros in a simulation-view BLIF; raises DQTValueError when
    one has port settings the memory model does not implement."""
    n = 0
    for blk in netlist_blif.split(".subckt DQT_SRAM")[1:]:
        n += 1
        params = dict(re.findall(r"^\.param\s+(\S+)\s+(\S+)", blk.split(".subckt")[0], re.M))
        for k, want in _MACRO_EXPECT.items():
            got = _param_int(params.get(k, ""))
            if got is not None and got != want:
                raise DQTValueError(f"memory macro {k}={got}: the gate-level memory model "
                                    f"implements {k}={want} only")
    return n


_INIT = re.compile(r"\n\s*\.INIT\((\d+)'b([01xz]+)\),")


def _drop_init(netlist_v: str) -> str:
    """The netlist without the macros' INIT parameters (as wide as the memory: Verilator
    limits a literal to 64k bits). The engine's memories have no initial contents (all
    x), and the model starts them at zero; a macro with real contents is refused."""
    for m in _INIT.finditer(netlist_v):
        if "1" in m.group(2):
            raise DQTValueError("a memory macro has initial contents: the gate-level memory "
                                "model starts every memory at zero")
    return _INIT.sub("", netlist_v)


def gate_engine(engine_params: dict, liberty) -> tuple:
    """``(engine, synth_result, watched)``: a coverage-instrumented :class:`BatchEngine` on
    the sky130 netlist of the engine sized by ``engine_params``, the synthesis result it came
    from (``netlist_v`` / ``netlist_blif``: the STA view; ``netlist_sim_*``: with the macros)
    and the nets whose toggles it counts (:func:`activities` takes them)."""
    from reports.gate_models import SRAM_MODEL, cell_models
    from reports.gatesim import LibertyCells
    from reports.synth import synth
    from reports.tools import prepare_liberty

    info = runner.generate_module("engine", engine_params, name="engine_batch")
    s = synth(info.path.read_text(), info.top, "sky130", liberty)
    if "netlist_sim_v" not in s:
        raise DQTValueError("the engine's sky130 synthesis has no memory macros: no "
                            "simulation view was written")
    check_macros(s["netlist_sim_blif"])
    lib = LibertyCells(Path(prepare_liberty(liberty)).read_text())
    w = _watched(s["netlist_blif"], s["netlist_sim_blif"], lib)
    nets = set(w["regs"].values()) | set(w["macro"]) | set(w["inputs"])
    text = (_covering(_drop_init(s["netlist_sim_v"]), nets) + "\n" +
            cell_models(s["netlist_sim_v"], lib) + SRAM_MODEL)
    key = hashlib.sha256(text.encode()).hexdigest()[:12]
    path = runner.BUILD_ROOT / "gate" / f"{info.top}-{key}.v"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(text)
        os.replace(tmp, path)
    return BatchEngine(engine_params, source=path, coverage=True), s, w


def _watched(sta_blif: str, sim_blif: str, lib) -> dict:
    """The nets whose toggles set the power annotations: ``{"regs": {flip-flop instance:
    Q net}, "macro": {macro read-data net: [load pins in the STA netlist]}, "inputs":
    [input port bits]}`` (BLIF net names)."""
    from reports.gatesim import Netlist
    sta = Netlist.from_blif(sta_blif)
    regs, loads = {}, {}
    for inst in sta.instances:
        if inst.cell not in lib:
            continue
        cell = lib.cell(inst.cell)
        if cell.ff is not None:
            q = inst.conns.get("Q") or next((inst.conns[p] for p in cell.outputs
                                             if p in inst.conns), None)
            if q is not None:
                regs[inst.name] = q
        for pin, net in inst.conns.items():
            if pin in cell.inputs:
                loads.setdefault(sta.aliases.get(net, net), []).append(f"{inst.name}/{pin}")
    macro = {}
    for inst in Netlist.from_blif(sim_blif).instances:
        if inst.cell == "DQT_SRAM":
            for pin, net in inst.conns.items():
                if re.fullmatch(r"RD_DATA\[\d+\]", pin) and net in loads:
                    macro[net] = loads[net]
    inputs = [n for n in sta.inputs if n != "clk"]
    return {"regs": regs, "macro": macro, "inputs": inputs}


_DECL = re.compile(r"^\s*(?:wire|input|output|reg)\s+(\[\d+:\d+\]\s+)?(\\\S+ |[A-Za-z_][\w$]*)\s*;\s*$")


def _watch_name(net: str) -> str:
    """Name of the covered alias wire of a watched net (Verilator leaves signals whose name
    starts with ``_`` out of toggle coverage, and Yosys names many nets so)."""
    return "dqtw_" + hashlib.sha1(net.lstrip("\\").encode()).hexdigest()[:12]


def _covering(netlist_v: str, nets: set) -> str:
    """The netlist outside toggle coverage, plus one covered alias wire per net of ``nets``
    (BLIF names: a scalar ``n12_`` or escaped ``a[3]``, or a bit ``port[3]`` of a vector)."""
    scalars, vectors = set(), set()
    for line in netlist_v.splitlines():
        m = _DECL.match(line)
        if m:
            (vectors if m.group(1) else scalars).add(m.group(2).strip().lstrip("\\"))
    alias = []
    for net in sorted({n.lstrip("\\") for n in nets}):
        if net in scalars:
            ref = net if re.fullmatch(r"[A-Za-z_][\w$]*", net) else f"\\{net} "
        elif re.sub(r"\[\d+\]$", "", net) in vectors:
            ref = net
        else:
            raise DQTValueError(f"watched net {net!r} is not declared in the netlist")
        alias.append(f"  wire {_watch_name(net)} = {ref};")
    k = netlist_v.rindex("endmodule")
    return ("/* verilator coverage_off */\n" + netlist_v[:k] + "/* verilator coverage_on */\n" +
            "\n".join(alias) + "\n/* verilator coverage_off */\n" + netlist_v[k:])


_COV_LINE = re.compile(r"^C '(.*)' (\d+)$")


def _unescape(name: str) -> str:
    """A Verilator signal name as written in the netlist (``i___05Fpayload`` is
    ``i__payload``: ``__0XX`` encodes the character 0xXX)."""
    return re.sub(r"__0([0-9A-Fa-f]{2})", lambda m: chr(int(m.group(1), 16)), name)


def toggle_counts(path) -> dict:
    """``{signal bit: transitions}`` of the engine's nets from a Verilator coverage file
    (both directions summed; the covered nets are the alias wires of :func:`_covering`)."""
    out = {}
    with open(path, encoding="latin-1") as f:
        for line in f:
            m = _COV_LINE.match(line.rstrip("\n"))
            if not m:
                continue
            kv = dict(p.split("\x02", 1) for p in m.group(1).split("\x01") if "\x02" in p)
            if not kv.get("page", "").startswith("v_toggle") or \
                    not kv.get("h", "").endswith(".engine"):
                continue
            sig = _unescape(kv.get("o", "").rsplit(":", 1)[0])
            out[sig] = out.get(sig, 0) + int(m.group(2))
    return out


def activities(counts: dict, cycles: int, watched: dict) -> tuple[dict, dict, dict]:
    """OpenSTA annotations from one run's toggle counts over ``cycles`` clock cycles (of the
    ``watched`` nets :func:`gate_engine` returned):
    ``(input port bits, flip-flop instances, pins)`` -> (transitions per cycle, duty).

    Duty is not counted (0.5 is assumed): it moves leakage and state-dependent internal
    power only. Flip-flops: the ``Q`` net of each flip-flop instance. Macro read data: the
    load pins in the STA netlist of each ``RD_DATA`` bit's net (the net is undriven there).
    Raises DQTValueError when a watched net has no count (coverage and netlist disagree).
    """
    w = watched  # {"inputs": ..., "regs": ..., "pins": ...} of gate_engine
    per = max(1, cycles - 1)
    missing = []

    def rate(net):
        c = counts.get(_watch_name(net))
        if c is None:
            missing.append(net)
            return (0.0, 0.5)
        return (c / per, 0.5)
    inputs = {n: rate(n) for n in w["inputs"]}
    regs = {inst: rate(q) for inst, q in w["regs"].items()}
    pins = {p: r for net, ps in w["macro"].items() for r in [rate(net)] for p in ps}
    if missing:
        raise DQTValueError(f"{len(missing)} watched nets have no toggle count (first: "
                            f"{missing[:3]}): the coverage file does not match the netlist")
    return inputs, regs, pins
