"""Pipelined dyadic requantizer (golden ``requantize``, rule "dyadic")."""
from __future__ import annotations

# ``signed`` is also a constructor argument here, so the shape function gets another name
from amaranth.hdl import Module, Signal, unsigned
from amaranth.hdl import signed as _signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from golden.formats import IntFormat

from ._common import check_int, check_n, clamp, code_shape, rshift_round_comb

__all__ = ["Requantize", "S_WIDTH"]

#: Width of the run-time shift field: S in [0, 62] as golden ``Dyadic`` allows.
S_WIDTH = 6


class Requantize(wiring.Component):
    """y = clamp(((acc * M + 2^(S-1)) >> S) + zy, lo, hi), round half up, S = 0: no rounding.

    Every operand travels with the beat so one instance serves per-channel multipliers.
    Only the dyadic rule is built in hardware; the gemmlowp rule stays a golden-model option.

    Parameters
    ----------
    acc_width : int
        Signed accumulator input width (2..62).
    m_bits : int
        Signed multiplier width (2..48); a non-negative M of m_bits - 1 bits fits.
    n : int
        Output code width (2..16).
    signed : bool
        Output format signedness (activations: unsigned).

    Members
    -------
    i : In(stream.Signature(StructLayout({"acc": signed(acc_width), "M": signed(m_bits),
        "S": unsigned(6), "zy": signed(n + 1), "lo": out, "hi": out})))
        ``lo``/``hi`` are the clamp bounds in the output format (ReLU: lo = zy; PACT clip:
        hi = clip code); lo <= hi is the caller's contract (otherwise the result is hi).
    o : Out(stream.Signature(out)), out = n-bit code of the given signedness.

    Latency: 3 cycles (multiply | round, shift, add zy | clamp); one beat per cycle.
    """

    def __init__(self, acc_width=32, m_bits=32, n=8, signed=False):
        self._acc_width = check_int("acc_width", acc_width, 2, 62)
        self._m_bits = check_int("m_bits", m_bits, 2, 48)
        self._n = check_n(n)
        self._signed = bool(signed)
        out = code_shape(self._n, self._signed)
        lay = data.StructLayout({
            "acc": _signed(self._acc_width), "M": _signed(self._m_bits), "S": unsigned(S_WIDTH),
            "zy": _signed(self._n + 1), "lo": out, "hi": out})
        super().__init__({"i": In(stream.Signature(lay)), "o": Out(stream.Signature(out))})

    acc_width = property(lambda self: self._acc_width)
    m_bits = property(lambda self: self._m_bits)
    n = property(lambda self: self._n)
    signed = property(lambda self: self._signed)
    out_format = property(lambda self: IntFormat(self._n, self._signed))
    product_width = property(lambda self: self._acc_width + self._m_bits,
                             doc="width of the exact acc*M product register")
    latency = property(lambda self: 3, doc="cycles from an accepted input to its output")

    def elaborate(self, platform):
        m = Module()
        p = self.i.payload
        en = ~self.o.valid | self.o.ready
        m.d.comb += self.i.ready.eq(en)
        v1, v2 = Signal(), Signal()
        prod = Signal(_signed(self.product_width))
        S1 = Signal(unsigned(S_WIDTH))
        zy1, zy2 = Signal(_signed(self._n + 1)), Signal(_signed(self._n + 1))
        lo1, hi1 = Signal.like(p.lo), Signal.like(p.hi)
        lo2, hi2 = Signal.like(p.lo), Signal.like(p.hi)
        rounded = Signal(_signed(self.product_width + 2))
        with m.If(en):
            m.d.sync += [v1.eq(self.i.valid), prod.eq(p.acc * p.M), S1.eq(p.S), zy1.eq(p.zy),
                         lo1.eq(p.lo), hi1.eq(p.hi)]
            m.d.sync += [v2.eq(v1), rounded.eq(rshift_round_comb(prod, S1) + zy1),
                         lo2.eq(lo1), hi2.eq(hi1)]
            m.d.sync += [self.o.valid.eq(v2), self.o.payload.eq(clamp(m, rounded, lo2, hi2))]
        return m

