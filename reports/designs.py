"""The design list the reports sweep: data, not code paths.

A :class:`Design` names a concept (``family``), its parameters, a callable that builds the
Amaranth elaboratable, and optionally a ``driver`` that turns a :class:`~reports.workload.
Workload` at precision b into per-port stimulus for the gate-level simulation. Designs
without a driver get area and timing but no activity-based energy.

Two sources:

* ``proxy``: the registered single-lane datapaths of :mod:`reports.datapaths`, one MAC (or
  one conversion) per cycle, swept over n in {4, 8, 16}; these carry the energy figures.
* ``rtl``: every instance ``dqt rtl generate`` writes by default (:mod:`rtl.registry`),
  including the layer engine at its default size; area and timing only. Listed when the
  ``rtl`` package imports; a component that fails to build is reported with its error.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from golden.formats import DQTValueError, IntFormat, MulConstants

from . import datapaths as dp

__all__ = ["Design", "proxy_designs", "rtl_designs", "default_designs", "design_by_name",
           "paper_constants", "fp32_bits"]

WIDTHS = (4, 8, 16)


@dataclass(frozen=True)
class Design:
    """One design point.

    Attributes
    ----------
    name : str
        Unique, stable (used in the summary and as a cache key component).
    family : str
        Concept compared across widths: int_mac, nested_mac, bitserial_mac, paper_dot,
        factored_dot, requantizer, fp32_requant, nested_shift, or an rtl component name.
    n : int
        Master width.
    params : dict
        JSON parameters (recorded in the summary).
    make : callable
        () -> Amaranth elaboratable with ports ``clk``/``rst`` + the design's own.
    driver : callable or None
        (workload, b) -> (stimulus {port: int array [cycles, lanes]}, ops, unit).
    source : "proxy" or "rtl"
    """

    name: str
    family: str
    n: int
    params: dict
    make: Callable
    driver: Callable | None = None
    source: str = "proxy"
    unit: str = "MAC"
    note: str = ""

    def verilog(self) -> tuple[str, str]:
        """(Verilog text, top module name)."""
        from amaranth.back import verilog
        top = "dqt_" + "".join(c if c.isalnum() else "_" for c in self.name)
        return verilog.convert(self.make(), name=top), top


def _u(a, n):
    """Two's complement bit pattern of ``a`` in n bits (for signed ports)."""
    return np.asarray(a, np.int64) & ((1 << n) - 1)


def _rescale(a, n_from, n_to, signed_):
    """Codes of width n_from re-expressed at width n_to (MSB-aligned; nested codes)."""
    a = np.asarray(a, np.int64)
    if n_to >= n_from:
        return a << (n_to - n_from)
    return a >> (n_from - n_to)


def _stream_codes(wl, b, n, shift_to_b):
    s = wl.macs[b]
    x = _rescale(s.x, wl.n, n, False)
    w = _rescale(s.w, wl.n, n, True)
    if shift_to_b:
        k = n - (b * n // wl.n)
        x, w = x >> k, w >> k
    return s, x, w


def _bits_port(wl, b, n, shape):
    return np.full(shape, max(1, b * n // wl.n), np.int64)


def _drive_int_mac(n):
    def drive(wl, b):
        s, x, w = _stream_codes(wl, b, n, shift_to_b=True)
        return {"x": x, "w": _u(w, n), "clear": s.first}, x.size, "MAC"
    return drive


def _drive_nested_mac(n):
    def drive(wl, b):
        s, x, w = _stream_codes(wl, b, n, shift_to_b=False)
        return ({"x": x, "w": _u(w, n), "bits": _bits_port(wl, b, n, x.shape), "clear": s.first},
                x.size, "MAC")
    return drive


def _drive_bitserial(n):
    def drive(wl, b):
        s, x, w = _stream_codes(wl, b, n, shift_to_b=False)
        bb = max(1, b * n // wl.n)
        T, L = x.shape
        E = T // bb                              # elements that fit the window
        rep = lambda a: np.repeat(a[:E], bb, axis=0)
        load = np.zeros((E * bb, L), np.int64)
        load[::bb] = 1
        clear = np.zeros_like(load)
        clear[::bb] = s.first[:E]
        stim = {"x": rep(x), "w": _u(rep(w), n), "bits": np.full((E * bb, L), bb, np.int64),
                "load": load, "clear": clear}
        return stim, E * L, "MAC"
    return drive


def paper_constants(n: int = 8, m_bits: int = 16) -> MulConstants:
    """Operator constants of the paper-literal / factored comparison: scales dx = 0.02,
    dw = 0.01, dy = 0.05 and non-zero zero points (3, 2) so all four terms are present."""
    return MulConstants.from_scales(0.02, 3, 0.01, 2, 0.05, 0, IntFormat(n, False), m_bits=m_bits)


def _drive_dot(n, factored):
    c = paper_constants(n)

    def drive(wl, b):
        s, x, w = _stream_codes(wl, b, n, shift_to_b=True)
        ones = np.ones_like(x)
        stim = {"x": x, "w": _u(w, n), "clear": s.first,
                "m1": _u(c.M1 * ones, 16), "m2": _u(c.M2 * ones, 16), "m3": _u(c.M3 * ones, 16)}
        if factored:
            stim["done"] = s.last
            stim["k4"] = _u(s.K * c.M4, 32)
        else:
            stim["m4"] = _u(c.M4 * ones, 16 + n)
        return stim, x.size, "MAC"
    return drive


def fp32_bits(v) -> np.ndarray:
    """IEEE-754 binary32 bit patterns of ``v`` (as int64)."""
    return np.asarray(v, np.float32).view(np.uint32).astype(np.int64)


def _acc32(a):
    return np.clip(np.asarray(a, np.int64), -(1 << 31), (1 << 31) - 1)


def _drive_requant(n):
    def drive(wl, b):
        r = wl.requant[b]
        return ({"acc": _u(_acc32(r["acc"]), 32), "m": np.minimum(r["M"], (1 << 32) - 1),
                 "s": np.clip(r["S"], 1, 63)}, r["acc"].size, "output")
    return drive


def _drive_fp32(n):
    def drive(wl, b):
        r = wl.requant[b]
        scale = r["M"].astype(np.float64) / np.exp2(r["S"].astype(np.float64))
        return ({"acc": _u(_acc32(r["acc"]), 32), "scale": fp32_bits(scale)},
                r["acc"].size, "output")
    return drive


def _drive_shift(n):
    def drive(wl, b):
        s, x, w = _stream_codes(wl, b, n, shift_to_b=False)
        return {"q": x, "bits": _bits_port(wl, b, n, x.shape)}, x.size, "element"
    return drive


def proxy_designs(widths=WIDTHS) -> list[Design]:
    """The swept proxy datapaths at the given master widths."""
    out = []
    for n in widths:
        out.append(Design(f"int_mac_n{n}", "int_mac", n, {"n": n},
                          lambda n=n: dp.IntMac(n), _drive_int_mac(n),
                          note="fixed-width MAC; at b bits it is fed right-aligned b-bit codes"))
        for mode in ("floor", "round"):
            # the MSB-aligned organisation is compared at n = 8 (where energy is measured)
            for var in (("right", "msb") if n == 8 else ("right",)):
                out.append(Design(f"nested_mac_{mode}_{var}_n{n}", "nested_mac", n,
                                  {"n": n, "mode": mode, "variant": var},
                                  lambda n=n, mode=mode, var=var: dp.NestedMac(n, mode, var),
                                  _drive_nested_mac(n)))
        out.append(Design(f"bitserial_mac_n{n}", "bitserial_mac", n, {"n": n, "mode": "floor"},
                          lambda n=n: dp.BitSerialMac(n), _drive_bitserial(n),
                          note="b cycles per MAC"))
    for n in widths:
        if n != 8:
            continue   # operator constants are sized for 8-bit codes
        out.append(Design(f"paper_dot_n{n}", "paper_dot", n, {"n": n, "m_bits": 16, "S": 20},
                          lambda n=n: dp.PaperDot(n, 16, paper_constants(n).S),
                          _drive_dot(n, False)))
        out.append(Design(f"factored_dot_n{n}", "factored_dot", n,
                          {"n": n, "m_bits": 16, "S": 20},
                          lambda n=n: dp.FactoredDot(n, 16, paper_constants(n).S),
                          _drive_dot(n, True)))
        out.append(Design(f"requantizer_n{n}", "requantizer", n,
                          {"n": n, "acc_width": 32, "m_bits": 32},
                          lambda n=n: dp.Requantizer(n), _drive_requant(n), unit="output"))
        out.append(Design(f"fp32_requant_n{n}", "fp32_requant", n, {"n": n},
                          lambda n=n: dp.Fp32Requant(n), _drive_fp32(n), unit="output",
                          note="int32 -> fp32, x fp32 scale, -> int (RNE): the baseline DQT removes"))
        for mode in ("floor", "round"):
            out.append(Design(f"nested_shift_{mode}_n{n}", "nested_shift", n,
                              {"n": n, "mode": mode},
                              lambda n=n, mode=mode: dp.NestedShiftReg(n, mode),
                              _drive_shift(n), unit="element"))
    return out


def rtl_designs() -> list[Design]:
    """Default instances of the ``rtl`` package (area/timing only); [] when it is absent."""
    try:
        from rtl.registry import DEFAULT_INSTANCES, REGISTRY, build
    except Exception:      # absent, or broken mid-edit: the proxies still make a report
        return []
    out = []
    for inst in DEFAULT_INSTANCES:
        comp, params = inst["component"], dict(inst.get("params") or {})
        n = int((REGISTRY[comp].defaults.get("n") or 8)) if comp in REGISTRY else 8
        out.append(Design(f"rtl_{inst['name']}", comp, n, params,
                          lambda comp=comp, params=params: build(comp, params), None, "rtl",
                          note="rtl/ component at its default parameters"))
    return out


def default_designs(fast: bool = False, include_rtl: bool = True) -> list[Design]:
    """The report's design list; ``fast`` keeps n = 8 only."""
    d = proxy_designs((8,) if fast else WIDTHS)
    if include_rtl:
        d += rtl_designs()
    return d


def design_by_name(name: str, fast: bool = False) -> Design:
    for d in default_designs(fast) + proxy_designs(WIDTHS):
        if d.name == name:
            return d
    raise DQTValueError(f"design {name!r} is not in the design list")
