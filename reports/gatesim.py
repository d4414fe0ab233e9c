"""Zero-delay, cycle-based simulation of a liberty-mapped gate-level netlist.

The netlist comes from Yosys ``write_blif -cname`` after mapping onto a liberty library; cell
behaviour comes from the liberty ``function``/``ff`` attributes, so what is simulated is the
mapped design itself, cell by cell. Many independent input streams ("lanes") run at once:
every net holds a Python integer whose bit ``l`` is the net's value in lane ``l``, so a cell
evaluation is one bitwise expression for all lanes.

Contract
--------
* One clock; every flip-flop is positive- (or negative-) edge triggered on it and samples at
  the end of each cycle. Asynchronous clear/preset pins are evaluated like synchronous ones
  (the costed designs never drive them).
* Zero delay: glitches are not counted, so toggle counts are a lower bound on real activity.
* Cycle ``t``: inputs take their values for ``t``, combinational logic settles, toggles are
  counted against cycle ``t - 1``, then flip-flops load.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from golden.formats import DQTValueError

__all__ = ["LibertyCells", "Netlist", "GateSim", "SimResult", "function_to_python"]


# --------------------------------------------------------------------------------------
# liberty functions
# --------------------------------------------------------------------------------------

_TOK = re.compile(r"\s*(?:(?P<id>[A-Za-z_][A-Za-z0-9_\[\]]*)|(?P<op>[!&|^*+()'])|(?P<c>[01]))")


def function_to_python(expr: str, env: str = "v", mask: str = "M") -> str:
    """Translate a liberty boolean function into a Python expression on lane integers.

    Identifiers become ``env['NAME']``; ``!A`` and ``A'`` become ``(M ^ A)``; ``&``/``*``/
    juxtaposition are AND, ``|``/``+`` OR, ``^`` XOR. Precedence: NOT > AND > XOR > OR.
    """
    toks = []
    pos = 0
    expr = expr.strip()
    while pos < len(expr):
        mt = _TOK.match(expr, pos)
        if not mt or mt.end() == pos:
            raise DQTValueError(f"cannot parse liberty function {expr!r} at {expr[pos:]!r}")
        pos = mt.end()
        if mt.group("id"):
            toks.append(("id", mt.group("id")))
        elif mt.group("op"):
            toks.append(("op", mt.group("op")))
        elif mt.group("c") is not None:
            toks.append(("c", mt.group("c")))
    i = 0

    def peek():
        return toks[i] if i < len(toks) else (None, None)

    def primary():
        nonlocal i
        kind, val = peek()
        if kind == "op" and val == "!":
            i += 1
            return f"({mask} ^ {primary()})"
        if kind == "op" and val == "(":
            i += 1
            e = or_()
            if peek() != ("op", ")"):
                raise DQTValueError(f"unbalanced parenthesis in liberty function {expr!r}")
            i += 1
            out = f"({e})"
        elif kind == "id":
            i += 1
            out = f"{env}[{val!r}]"
        elif kind == "c":
            i += 1
            out = mask if val == "1" else "0"
        else:
            raise DQTValueError(f"unexpected token {val!r} in liberty function {expr!r}")
        while peek() == ("op", "'"):
            i += 1
            out = f"({mask} ^ {out})"
        return out

    def and_():
        nonlocal i
        terms = [primary()]
        while True:
            kind, val = peek()
            if kind == "op" and val in "&*":
                i += 1
                terms.append(primary())
            elif kind in ("id", "c") or (kind == "op" and val in "!("):
                terms.append(primary())       # juxtaposition is AND
            else:
                break
        return " & ".join(terms) if len(terms) > 1 else terms[0]

    def xor_():
        nonlocal i
        terms = [and_()]
        while peek() == ("op", "^"):
            i += 1
            terms.append(and_())
        return "(" + " ^ ".join(f"({t})" for t in terms) + ")" if len(terms) > 1 else terms[0]

    def or_():
        nonlocal i
        terms = [xor_()]
        while peek()[0] == "op" and peek()[1] in "|+":
            i += 1
            terms.append(xor_())
        return "(" + " | ".join(f"({t})" for t in terms) + ")" if len(terms) > 1 else terms[0]

    out = or_()
    if i != len(toks):
        raise DQTValueError(f"trailing tokens in liberty function {expr!r}")
    return out


def _block(text: str, start: int) -> str:
    """The brace-delimited block whose '{' is at or after ``start``."""
    i = text.index("{", start)
    depth = 0
    for j in range(i, len(text)):
        c = text[j]
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1:j]
    raise DQTValueError("unbalanced braces in liberty file")


def _attr(block: str, name: str):
    m = re.search(rf'(?<![A-Za-z_]){name}\s*:\s*"?([^";\n]*)"?\s*;', block)
    return m.group(1).strip() if m else None


@dataclass
class CellModel:
    """Logic view of one liberty cell."""

    name: str
    inputs: list
    outputs: dict            # pin -> function (None for an undriven/unknown output)
    ff: dict | None = None   # iq, iqn, next_state, clocked_on, clear, preset
    area: float = 0.0


class LibertyCells:
    """Logic functions of liberty cells, parsed on demand from the library text."""

    def __init__(self, liberty_text: str):
        self._text = liberty_text
        self._index = {m.group(1): m.start() for m in
                       re.finditer(r'^\s*cell\s*\(\s*"?([A-Za-z0-9_]+)"?\s*\)', liberty_text, re.M)}
        self._cells: dict[str, CellModel] = {}

    def __contains__(self, name):
        return name in self._index

    def cell(self, name: str) -> CellModel:
        if name in self._cells:
            return self._cells[name]
        if name not in self._index:
            raise DQTValueError(f"cell {name!r} is not in the liberty library")
        body = _block(self._text, self._index[name])
        ff = None
        mff = re.search(r'\b(ff|latch)\s*\(\s*"?([A-Za-z0-9_]+)"?\s*,\s*"?([A-Za-z0-9_]+)"?\s*\)', body)
        if mff:
            if mff.group(1) == "latch":
                raise DQTValueError(f"cell {name}: latches are not supported by the simulator")
            fb = _block(body, mff.end())
            ff = {"iq": mff.group(2), "iqn": mff.group(3),
                  "next_state": _attr(fb, "next_state"), "clocked_on": _attr(fb, "clocked_on"),
                  "clear": _attr(fb, "clear"), "preset": _attr(fb, "preset")}
        inputs, outputs = [], {}
        for mp in re.finditer(r'\bpin\s*\(\s*"?([A-Za-z0-9_]+)"?\s*\)', body):
            pb = _block(body, mp.end())
            d = _attr(pb, "direction")
            if d == "input":
                inputs.append(mp.group(1))
            elif d in ("output", "inout"):
                outputs[mp.group(1)] = _attr(pb, "function")
        area = _attr(body, "area")
        cm = CellModel(name, inputs, outputs, ff, float(area) if area else 0.0)
        self._cells[name] = cm
        return cm


# --------------------------------------------------------------------------------------
# BLIF netlist
# --------------------------------------------------------------------------------------

@dataclass
class Instance:
    cell: str
    name: str
    conns: dict      # pin -> net


@dataclass
class Netlist:
    """A flat single-model BLIF netlist: ports, cell instances and net aliases."""

    model: str
    inputs: list
    outputs: list
    instances: list
    aliases: dict = field(default_factory=dict)   # net -> source net (buffers from assigns)
    consts: dict = field(default_factory=dict)    # net -> 0/1

    @classmethod
    def from_blif(cls, text: str) -> "Netlist":
        lines = []
        buf = ""
        for raw in text.splitlines():
            s = raw.split("#", 1)[0].rstrip()
            if s.endswith("\\"):
                buf += s[:-1] + " "
                continue
            s = buf + s
            buf = ""
            if s.strip():
                lines.append(s.strip())
        model, inputs, outputs, insts = None, [], [], []
        aliases, consts = {}, {}
        i = 0
        while i < len(lines):
            tok = lines[i].split()
            kw = tok[0]
            if kw == ".model":
                if model is not None:
                    raise DQTValueError("BLIF holds more than one model; flatten the design first")
                model = tok[1]
            elif kw == ".inputs":
                inputs += tok[1:]
            elif kw == ".outputs":
                outputs += tok[1:]
            elif kw == ".subckt":
                conns = dict(t.split("=", 1) for t in tok[2:])
                inst = Instance(tok[1], f"_inst{len(insts)}", conns)
                if i + 1 < len(lines) and lines[i + 1].startswith(".cname"):
                    inst.name = lines[i + 1].split(None, 1)[1]
                    i += 1
                insts.append(inst)
            elif kw == ".names":
                nets = tok[1:]
                rows = []
                while i + 1 < len(lines) and not lines[i + 1].startswith("."):
                    rows.append(lines[i + 1].split())
                    i += 1
                if len(nets) == 1:
                    consts[nets[0]] = 1 if rows and rows[0] == ["1"] else 0
                elif len(nets) == 2 and rows == [["1", "1"]]:
                    aliases[nets[1]] = nets[0]
                else:
                    raise DQTValueError(f"unsupported .names cover for {nets}: map the design "
                                        "onto liberty cells before simulating it")
            elif kw in (".end", ".cname", ".attr", ".param"):
                pass
            else:
                raise DQTValueError(f"unsupported BLIF construct {kw!r}")
            i += 1
        if model is None:
            raise DQTValueError("BLIF holds no .model")
        return cls(model, inputs, outputs, insts, aliases, consts)


# --------------------------------------------------------------------------------------
# simulator
# --------------------------------------------------------------------------------------

_BUS = re.compile(r"^(.*)\[(\d+)\]$")


def _split_bit(net):
    m = _BUS.match(net)
    return (m.group(1), int(m.group(2))) if m else (net, 0)


def _bind(fn: str, pins: dict) -> str:
    """A liberty function as Python on lane integers, pin names bound to expressions
    (unconnected pins read 0)."""
    py = function_to_python(fn, "P", "M")
    return re.sub(r"P\['([A-Za-z0-9_]+)'\]", lambda mm: pins.get(mm.group(1), "0"), py)


@dataclass
class SimResult:
    """Toggle statistics of a simulation over ``cycles`` x ``lanes``.

    ``toggles[net]`` counts value changes summed over lanes (cycle 0 is not counted);
    ``ones[net]`` counts cycles at 1. ``outputs[port]`` is an int64 array [cycles, lanes]
    (signed ports are not sign-extended: use :meth:`signed`).
    """

    cycles: int
    lanes: int
    toggles: dict
    ones: dict
    outputs: dict
    reg_nets: list
    input_nets: list
    reg_q: dict = field(default_factory=dict)

    def activity(self, net) -> float:
        """Transitions per clock cycle of ``net``, averaged over lanes."""
        return self.toggles[net] / max(1, (self.cycles - 1) * self.lanes)

    def duty(self, net) -> float:
        return self.ones[net] / max(1, self.cycles * self.lanes)

    def input_activity(self) -> dict:
        """Input port bit -> (transitions per cycle, duty), for OpenSTA."""
        return {n: (self.activity(n), self.duty(n)) for n in self.input_nets}

    def reg_activity(self) -> dict:
        """Flip-flop instance -> (transitions per cycle, duty) of its Q output."""
        return {inst: (self.activity(net), self.duty(net)) for inst, (pin, net) in self.reg_q.items()}

    def mean_activity(self) -> float:
        """Average transitions per cycle over all simulated nets."""
        return sum(self.toggles.values()) / max(1, len(self.toggles) * (self.cycles - 1) * self.lanes)

    def signed(self, port, width) -> np.ndarray:
        v = self.outputs[port]
        return np.where(v >= (1 << (width - 1)), v - (1 << width), v)


class GateSim:
    """Compile a netlist into one Python function per cycle and run it on lane integers.

    Parameters
    ----------
    netlist : Netlist
    lib : LibertyCells
    clock : str
        Name of the clock input (not driven by the stimulus).
    """

    def __init__(self, netlist: Netlist, lib: LibertyCells, clock: str = "clk"):
        self.nl = netlist
        self.clock = clock
        self.ports_in = {}
        for net in netlist.inputs:
            if net == clock:
                continue
            base, bit = _split_bit(net)
            self.ports_in.setdefault(base, {})[bit] = net
        self.ports_out = {}
        for net in netlist.outputs:
            base, bit = _split_bit(net)
            self.ports_out.setdefault(base, {})[bit] = net
        self._compile(lib)

    def _compile(self, lib):
        """Order the cells, generate one Python function per cycle phase and compile it."""
        seq, order, res = self._schedule(lib)
        self._res = res
        step, nets = self._step_code(order, seq, res)
        load, reg_nets = self._load_code(seq, res)
        ns = {}
        exec(compile("\n".join(step) + "\n" + "\n".join(load), f"<gatesim {self.nl.model}>",
                     "exec"), ns)
        self._step, self._load = ns["step"], ns["load"]
        self._seq = seq
        self.reg_nets = sorted({res(inst.conns[p]) for inst, cm in seq for p in cm.outputs
                                if p in inst.conns})
        # flip-flop instance -> the net on its non-inverted output (the pin OpenSTA annotates)
        self.reg_q = {}
        for inst, cm in seq:
            for pin, fn in cm.outputs.items():
                if pin in inst.conns and fn and fn.strip("() ") == cm.ff["iq"]:
                    self.reg_q[inst.name] = (pin, res(inst.conns[pin]))
        self.input_nets = [n for n in self.nl.inputs if n != self.clock]
        self.nets = sorted(nets | reg_nets | set(self.input_nets))

    def _schedule(self, lib):
        """(flip-flops, combinational cells in topological order, alias resolver)."""
        nl = self.nl
        seq, comb = [], []
        for inst in nl.instances:
            cm = lib.cell(inst.cell)
            (seq if cm.ff else comb).append((inst, cm))
        alias = dict(nl.aliases)

        def res(net):
            seen = 0
            while net in alias and seen < 1000:
                net = alias[net]
                seen += 1
            return net

        # nets from inputs, constants and flip-flops are ready at the start of a cycle
        ready = set(nl.inputs) | set(nl.consts)
        for inst, cm in seq:
            ready |= {inst.conns[pin] for pin in cm.outputs if pin in inst.conns}
        ready = {res(n) for n in ready}
        pending, order = list(comb), []
        while pending:
            progress, rest = [], []
            for inst, cm in pending:
                ins = [res(inst.conns[p]) for p in cm.inputs if p in inst.conns]
                if all(n in ready for n in ins):
                    progress.append((inst, cm))
                    ready |= {res(inst.conns[pin]) for pin in cm.outputs if pin in inst.conns}
                else:
                    rest.append((inst, cm))
            if not progress:
                raise DQTValueError(f"combinational loop or undriven net near cell "
                                    f"{rest[0][0].name} ({rest[0][0].cell})")
            order += progress
            pending = rest
        return seq, order, res

    def _step_code(self, order, seq, res):
        """Source of ``step(v, M)``: settle the logic, return the flip-flops' next states."""
        code, nets = ["def step(v, M):"], set()
        for net, val in self.nl.consts.items():
            code.append(f"    v[{net!r}] = {'M' if val else 0}")
        for inst, cm in order:
            pins = {p: f"v[{res(inst.conns[p])!r}]" for p in cm.inputs if p in inst.conns}
            for pin, fn in cm.outputs.items():
                if pin not in inst.conns or fn is None:
                    continue
                out = res(inst.conns[pin])
                code.append(f"    v[{out!r}] = {_bind(fn, pins)}")
                nets.add(out)
        # flip-flop next states, computed from settled nets, loaded at the end of the cycle
        code.append("    nxt = {}")
        for inst, cm in seq:
            ff = cm.ff
            pins = {p: f"v[{res(inst.conns[p])!r}]" for p in cm.inputs if p in inst.conns}
            pins[ff["iq"]] = f"v[{('__iq_' + inst.name)!r}]"
            ns = _bind(ff["next_state"], pins)
            if ff.get("clear"):
                ns = f"(({ns}) & (M ^ ({_bind(ff['clear'], pins)})))"
            if ff.get("preset"):
                ns = f"(({ns}) | ({_bind(ff['preset'], pins)}))"
            code.append(f"    nxt[{inst.name!r}] = {ns}")
        code.append("    return nxt")
        return code, nets

    def _load_code(self, seq, res):
        """Source of ``load(v, nxt, M)``: the clock edge (flip-flop outputs from IQ)."""
        code, nets = ["def load(v, nxt, M):"], set()
        for inst, cm in seq:
            iq = "__iq_" + inst.name
            code.append(f"    v[{iq!r}] = nxt[{inst.name!r}]")
            pins = {cm.ff["iq"]: f"v[{iq!r}]", cm.ff["iqn"]: f"(M ^ v[{iq!r}])"}
            for pin, fn in cm.outputs.items():
                if pin not in inst.conns or fn is None:
                    continue
                code.append(f"    v[{res(inst.conns[pin])!r}] = {_bind(fn, pins)}")
                nets.add(res(inst.conns[pin]))
        code.append("    return None")
        return code, nets

    def run(self, stimulus: dict, init: int = 0) -> SimResult:
        """Simulate. ``stimulus`` maps input port name -> integer array [cycles, lanes]
        (two's complement bits for signed ports). Unlisted inputs are held at 0.
        Flip-flops start at ``init`` (0 or 1 in every lane).
        """
        shapes = {np.asarray(a).shape for a in stimulus.values()}
        if len(shapes) != 1 or len(next(iter(shapes))) != 2:
            raise DQTValueError(f"stimulus arrays must share one [cycles, lanes] shape, got {shapes}")
        for p in stimulus:
            if p not in self.ports_in:
                raise DQTValueError(f"stimulus for {p!r}, which is not an input port "
                                    f"{sorted(self.ports_in)}")
        T, L = next(iter(shapes))
        M = (1 << L) - 1
        # lane-packed integers per input net and cycle
        packed = {}
        for port, bits in self.ports_in.items():
            a = np.asarray(stimulus.get(port, np.zeros((T, L), np.int64)))
            # ports wider than 63 bits arrive as object arrays of Python integers
            a = a if a.dtype == object else a.astype(np.int64)
            for bit, net in bits.items():
                col = ((a >> bit) & 1).astype(np.uint8)
                by = np.packbits(col, axis=1, bitorder="little")
                packed[net] = [int.from_bytes(by[t].tobytes(), "little") for t in range(T)]
        v = {n: 0 for n in self.nets}
        for inst, cm in self._seq:
            v["__iq_" + inst.name] = M if init else 0
        self._load(v, {inst.name: (M if init else 0) for inst, _ in self._seq}, M)
        toggles = dict.fromkeys(self.nets, 0)
        ones = dict.fromkeys(self.nets, 0)
        outs = {p: np.zeros((T, L), np.int64) for p in self.ports_out}
        prev = None
        for t in range(T):
            for net, seqv in packed.items():
                v[net] = seqv[t]
            nxt = self._step(v, M)
            if prev is not None:
                for n in self.nets:
                    toggles[n] += (v[n] ^ prev[n]).bit_count()
            for n in self.nets:
                ones[n] += v[n].bit_count()
            prev = {n: v[n] for n in self.nets}
            for port, bits in self.ports_out.items():
                acc = np.zeros(L, np.int64)
                for bit, net in bits.items():
                    val = v.get(self._res(net), 0) if net not in self.nl.consts else (
                        M if self.nl.consts[net] else 0)
                    if val:
                        lane_bits = np.unpackbits(np.frombuffer(val.to_bytes((L + 7) // 8, "little"),
                                                                np.uint8), bitorder="little")[:L]
                        acc |= lane_bits.astype(np.int64) << bit
                outs[port][t] = acc
            self._load(v, nxt, M)
        return SimResult(T, L, toggles, ones, outs, self.reg_nets, self.input_nets, dict(self.reg_q))
