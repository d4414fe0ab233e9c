"""The design list the reports sweep: catalog components, nothing else.

Every :class:`Design` is one cost point of the operator catalog (:data:`rtl.registry.
COST_POINTS`): a parameter set of a verified ``rtl/`` component, under the instance name
that ``dqt rtl generate`` also writes. The MACs, dot products, requantizers and shifters
are costed as single-lane parameterisations (``pes=1``, one MAC or one conversion per
cycle) of the very components the cocotb suite runs against the golden model, at those
parameters. A design may carry a ``driver`` that turns a :class:`~reports.workload.
Workload` at precision b into cycle-by-cycle stimulus of the component's stream ports for
the gate-level simulation; designs without one get area and timing only.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from golden import ops
from golden.formats import AccumulatorSpec, DQTValueError, IntFormat
from rtl.registry import COST_POINTS, Parameters, paper_constants

__all__ = ["Design", "cost_designs", "default_designs", "design_by_name", "fp32_bits",
           "WIDTHS"]

WIDTHS = (4, 8, 16)


@dataclass(frozen=True)
class Design:
    """One design point.

    Attributes
    ----------
    name : str
        Instance name (the report's key, and the module ``dqt rtl generate`` writes).
    family : str
        The catalog operator (``catalog`` in the summary).
    n : int
        Master width.
    params : dict
        JSON parameters of the catalog component (recorded in the summary).
    driver : callable or None
        (workload, b, port_table) -> (stimulus {port: array [cycles, lanes]}, ops, unit).
    expect : callable or None
        (workload, b) -> golden outputs per lane, in order (the netlist check).
    """

    name: str
    family: str
    n: int
    params: dict
    driver: Callable | None = None
    expect: Callable | None = None
    unit: str = "MAC"
    note: str = ""

    source = "rtl"

    @property
    def catalog(self) -> str:
        return self.family

    def parameters(self) -> Parameters:
        return Parameters(self.family, self.params)

    def make(self):
        """A fresh instance of the catalog component."""
        return self.parameters().create()

    def verilog(self) -> tuple[str, str]:
        """(Verilog text, top module name)."""
        from rtl.generate import to_verilog
        top = "dqt_" + self.name
        return to_verilog(self.make(), top), top


# ------------------------------------------------------------------------------ stimulus
def _u(a, n):
    """Two's complement bit pattern of ``a`` in n bits (for signed fields)."""
    return np.asarray(a, np.int64) & ((1 << n) - 1)


def _rescale(a, n_from, n_to):
    """Codes of width n_from re-expressed at width n_to (MSB-aligned; nested codes)."""
    a = np.asarray(a, np.int64)
    return a << (n_to - n_from) if n_to >= n_from else a >> (n_from - n_to)


def _bits_at(wl, b, n):
    """Precision b of the n = wl.n workload, scaled to master width n."""
    return max(1, b * n // wl.n)


def _codes(wl, b, n, shift_to_b):
    s = wl.macs[b]
    x, w = _rescale(s.x, wl.n, n), _rescale(s.w, wl.n, n)
    if shift_to_b:
        k = n - _bits_at(wl, b, n)
        x, w = x >> k, w >> k
    return s, x, w


def _payload(ports, fields: dict, shape):
    """Per-cycle integers of the ``i__payload`` port (object array: may exceed 63 bits)."""
    from sim.packing import pack
    port = ports["i__payload"]
    flat = {}
    for k, v in fields.items():
        v = np.broadcast_to(np.asarray(v, np.int64), shape).reshape(-1)
        counted = any(f["name"] == k and "count" in f for f in port.get("fields", []))
        flat[k] = v[:, None] if counted else v
    words = pack(port, flat, int(np.prod(shape)))
    return np.array(words, dtype=object).reshape(shape)


def _stream(ports, fields, shape):
    return {"i__payload": _payload(ports, fields, shape),
            "i__valid": np.ones(shape, np.int64), "o__ready": np.ones(shape, np.int64)}


def _drive_mac(n, has_bits, shift_to_b):
    def drive(wl, b, ports):
        s, x, w = _codes(wl, b, n, shift_to_b)
        f = {"x": x, "w": w, "first": s.first, "last": s.last}
        if has_bits:
            f["bits"] = _bits_at(wl, b, n)
        return _stream(ports, f, x.shape), x.size, "MAC"
    return drive


def _drive_bitserial(n):
    def drive(wl, b, ports):
        s, x, w = _codes(wl, b, n, False)
        bb = _bits_at(wl, b, n)
        E = x.shape[0] // bb                     # elements that fit the window
        rep = lambda a: np.repeat(np.asarray(a)[:E], bb, axis=0)
        # each beat is held for the b cycles the component is busy with it
        f = {"x": rep(x), "w": rep(w), "bits": bb, "first": rep(s.first), "last": rep(s.last)}
        return _stream(ports, f, (E * bb, x.shape[1])), E * x.shape[1], "MAC"
    return drive


def _fusion_beats(wl, b, n, inputs="master", mode="floor"):
    """The workload's dot products (every lane's, one after another: one fusion MAC does
    the work of several single-MAC lanes) as fusion-MAC beats at b: each packet's terms
    ``fusion_products_per_beat`` at a time (golden ``fusion_beats``: a packet's last beat
    zero-padded, the lanes beyond P zero). Returns (packets, x, w, first, last, bits)."""
    s, x, w = _codes(wl, b, n, False)
    bb = _bits_at(wl, b, n)
    if inputs == "nested":  # the b-bit codes, as bit-plane storage delivers them
        x, w = ops.nested_shift(x, n, bb, mode), ops.nested_shift(w, n, bb, mode, signed=True)
    lanes = (n // 2) ** 2
    runs = [r for lane in _packets(s, x, w) for r in lane]
    X, W, F, L = [], [], [], []
    for xr, wr in runs:
        xb, wb = ops.fusion_beats(xr, wr, n, bb)
        X.append(xb)
        W.append(wb)
        F.append(np.arange(len(xb)) == 0)
        L.append(np.arange(len(xb)) == len(xb) - 1)
    cat = lambda a: np.concatenate(a) if a else np.zeros((0, lanes), np.int64)  # noqa: E731
    return runs, cat(X), cat(W), cat(F).astype(np.int64), cat(L).astype(np.int64), bb


def _drive_fusion(n, p):
    def drive(wl, b, ports):
        from sim.packing import pack
        runs, x, w, first, last, bb = _fusion_beats(wl, b, n, p["inputs"], p["mode"])
        words = pack(ports["i__payload"], {"x": x, "w": w, "bits": bb, "first": first,
                                           "last": last}, len(x))
        shape = (len(x), 1)
        return {"i__payload": np.array(words, dtype=object).reshape(shape),
                "i__valid": np.ones(shape, np.int64), "o__ready": np.ones(shape, np.int64)}, \
            int(sum(len(xr) for xr, _ in runs)), "MAC"
    return drive


def _expect_fusion(p):
    acc = AccumulatorSpec(Parameters("fusion_mac", p).create().acc_width, p["overflow"])

    def expect(wl, b):
        n = p["n"]
        runs, *_, bb = _fusion_beats(wl, b, n, p["inputs"], p["mode"])
        return [[int(ops.fusion_mac(xi, wi, n, bb, acc, p["mode"], 0, p["inputs"])[0])
                 for xi, wi in runs]]
    return expect


def _drive_dot(n):
    def drive(wl, b, ports):
        s, x, w = _codes(wl, b, n, True)
        return _stream(ports, {"x": x, "w": w, "first": s.first, "last": s.last}, x.shape), \
            x.size, "MAC"
    return drive


def fp32_bits(v) -> np.ndarray:
    """IEEE-754 binary32 bit patterns of ``v`` (as int64)."""
    return np.asarray(v, np.float32).view(np.uint32).astype(np.int64)


def _acc32(a):
    return np.clip(np.asarray(a, np.int64), -(1 << 31), (1 << 31) - 1)


def _requant_operands(wl, b):
    r = wl.requant[b]
    return _acc32(r["acc"]), np.minimum(r["M"], (1 << 31) - 1), np.clip(r["S"], 0, 62)


def _drive_requant(n):
    def drive(wl, b, ports):
        acc, M, S = _requant_operands(wl, b)
        f = {"acc": acc, "M": M, "S": S, "zy": 0, "lo": 0, "hi": (1 << n) - 1}
        return _stream(ports, f, acc.shape), acc.size, "output"
    return drive


def _fp32_scale(wl, b):
    _, M, S = _requant_operands(wl, b)
    return fp32_bits(M.astype(np.float64) / np.exp2(S.astype(np.float64)))


def _drive_fp32(n):
    def drive(wl, b, ports):
        acc, _, _ = _requant_operands(wl, b)
        f = {"acc": acc, "scale": _fp32_scale(wl, b), "zy": 0}
        return _stream(ports, f, acc.shape), acc.size, "output"
    return drive


def _drive_shift(n):
    def drive(wl, b, ports):
        _, x, _ = _codes(wl, b, n, False)
        return _stream(ports, {"q": x, "bits": _bits_at(wl, b, n)}, x.shape), x.size, "element"
    return drive


# ------------------------------------------------------------------------- golden outputs
def _packets(s, x, w):
    """Per lane: list of (x, w) element runs from ``first`` to ``last``."""
    out = []
    for lane in range(x.shape[1]):
        runs, start = [], None
        for t in range(x.shape[0]):
            if s.first[t, lane]:
                start = t
            if s.last[t, lane] and start is not None:
                runs.append((x[start:t + 1, lane], w[start:t + 1, lane]))
                start = None
        out.append(runs)
    return out


def _expect_mac(family, p):
    acc = AccumulatorSpec(Parameters(family, p).create().acc_width, p["overflow"])

    def expect(wl, b):
        n = p["n"]
        s, x, w = _codes(wl, b, n, family == "int_mac")
        if family == "bitserial_mac":
            E = x.shape[0] // _bits_at(wl, b, n)
            s = type(s)(s.x[:E], s.w[:E], s.first[:E], s.last[:E], s.K[:E])
            x, w = x[:E], w[:E]
        fn = {"int_mac": lambda xi, wi: ops.int_mac(xi, wi, acc, 0, n),
              "nested_mac": lambda xi, wi: ops.nested_mac(xi, wi, n, _bits_at(wl, b, n), acc,
                                                          p["mode"], 0, p["variant"]),
              "bitserial_mac": lambda xi, wi: ops.bitserial_mac(xi, wi, n, _bits_at(wl, b, n),
                                                                acc, p["mode"], 0)}[family]
        return [[int(fn(xi, wi)[0]) for xi, wi in lane] for lane in _packets(s, x, w)]
    return expect


def _expect_dot(family, p):
    c = paper_constants(p["c"]["out"]["n"], p["c"]["m_bits"])

    def expect(wl, b):
        s, x, w = _codes(wl, b, 8, True)
        fn = getattr(ops, family)
        return [[int(fn(xi, wi, c)) for xi, wi in lane] for lane in _packets(s, x, w)]
    return expect


def _expect_elementwise(family, p):
    out = IntFormat(p["n"], False)

    def expect(wl, b):
        if family == "nested_shift":
            _, x, _ = _codes(wl, b, p["n"], False)
            y = ops.nested_shift(x, p["n"], _bits_at(wl, b, p["n"]), p["mode"])
        else:
            acc, M, S = _requant_operands(wl, b)
            if family == "requantize":
                y = np.vectorize(lambda a, m, s: int(ops.requantize(a, m, int(s), out)))(acc, M, S)
            else:
                sc = _fp32_scale(wl, b).astype(np.uint32).view(np.float32)
                y = np.vectorize(lambda a, f: int(ops.fp32_requant(a, f, out)))(acc, sc)
        return [list(map(int, y[:, lane])) for lane in range(y.shape[1])]
    return expect


# ------------------------------------------------------------------------------- the list
_NOTES = {
    "int_mac": "fixed-width MAC; at b bits it is fed right-aligned b-bit codes",
    "bitserial_mac": "b cycles per MAC",
    "fusion_mac": "2-bit bricks: 16 MACs per cycle at b <= 2, 4 at b <= 4, 1 above",
    "fp32_requant": "int32 -> fp32, x fp32 scale, -> int (RNE): the baseline DQT removes",
    "engine": "the layer engine at the geometry its testbench and the network run verify",
}


def _design(name, op, params) -> Design:
    p = Parameters(op, params).params
    n = int(p.get("n") or p.get("c", {}).get("out", {}).get("n") or 8)
    unit = {"requantize": "output", "fp32_requant": "output",
            "nested_shift": "element"}.get(op, "MAC")
    drivers = {
        "int_mac": lambda: (_drive_mac(n, False, True), _expect_mac(op, p)),
        "nested_mac": lambda: (_drive_mac(n, True, False), _expect_mac(op, p)),
        "bitserial_mac": lambda: (_drive_bitserial(n), _expect_mac(op, p)),
        "fusion_mac": lambda: (_drive_fusion(n, p), _expect_fusion(p)),
        "paper_dot": lambda: (_drive_dot(n), _expect_dot(op, p)),
        "factored_dot": lambda: (_drive_dot(n), _expect_dot(op, p)),
        "requantize": lambda: (_drive_requant(n), _expect_elementwise(op, p)),
        "fp32_requant": lambda: (_drive_fp32(n), _expect_elementwise(op, p)),
        "nested_shift": lambda: (_drive_shift(n), _expect_elementwise(op, p)),
    }
    drive, expect = drivers[op]() if op in drivers else (None, None)
    return Design(name, op, n, params, drive, expect, unit, _NOTES.get(op, ""))


def cost_designs(widths=WIDTHS, include_engine: bool = True) -> list[Design]:
    """Every catalog cost point at the given master widths (the engine at its own)."""
    out = []
    for name, (op, params) in COST_POINTS.items():
        if op == "engine":
            if include_engine:
                out.append(_design(name, op, params))
            continue
        d = _design(name, op, params)
        if d.n in widths:
            out.append(d)
    return out


def default_designs(fast: bool = False, include_rtl: bool = True) -> list[Design]:
    """The report's design list; ``fast`` keeps n = 8 only, ``include_rtl=False`` leaves
    the layer engine out."""
    return cost_designs((8,) if fast else WIDTHS, include_engine=include_rtl)


def design_by_name(name: str, fast: bool = False) -> Design:
    for d in cost_designs(WIDTHS):
        if d.name == name:
            return d
    raise DQTValueError(f"design {name!r} is not in the design list")
