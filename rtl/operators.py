"""The paper's integer operators with pre-computed dyadic constants.

:class:`IntMul` (golden ``int_mul``), :class:`IntAdd` (``int_add``), and the two dot-product
organisations: :class:`PaperDot` rounds every term to output units (``paper_dot``),
:class:`FactoredDot` accumulates exactly and corrects once (``factored_dot``). The constants
are elaboration-time parameters: they become constant multipliers.
"""
from __future__ import annotations

from amaranth.hdl import Module, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from golden.formats import AddConstants, IntFormat, MulConstants

from ._common import RTLParamError, ceil_log2, check_int, clamp, code_shape, const_width, \
    rshift_round_comb, sum_tree
from .accumulate import accumulate_stage

__all__ = ["IntMul", "IntAdd", "PaperDot", "FactoredDot"]


def _fmt(f, name):
    if not isinstance(f, IntFormat):
        raise RTLParamError(f"{name} must be a golden.formats.IntFormat, got {f!r}")
    return f


def _shape(f: IntFormat):
    return code_shape(f.n, f.signed)


def _mul_term_bounds(c: MulConstants, fx: IntFormat, fw: IntFormat):
    """Exact range of M1 qx qw + M2 qx + M3 qw + M4 over the two formats (bilinear: corners)."""
    vals = [c.M1 * a * b + c.M2 * a + c.M3 * b + c.M4
            for a in (fx.lo, fx.hi) for b in (fw.lo, fw.hi)]
    return min(vals), max(vals)


class IntMul(wiring.Component):
    """y = clamp(round((M1 q1 q2 + M2 q1 + M3 q2 + M4) / 2^S), out) with round half up.

    Parameters
    ----------
    c : golden.formats.MulConstants
        M1..M4, S and the output format.
    f1, f2 : golden.formats.IntFormat
        Formats of q1 and q2 (default unsigned and signed 8-bit).

    Members
    -------
    i : In(stream.Signature(StructLayout({"q1": f1, "q2": f2})))
    o : Out(stream.Signature(c.out))

    Latency 2 (terms | round and clamp); one beat per cycle.
    """

    def __init__(self, c: MulConstants, f1=IntFormat(8, False), f2=IntFormat(8, True)):
        if not isinstance(c, MulConstants):
            raise RTLParamError(f"c must be a golden.formats.MulConstants, got {c!r}")
        self._c, self._f1, self._f2 = c, _fmt(f1, "f1"), _fmt(f2, "f2")
        lay = data.StructLayout({"q1": _shape(self._f1), "q2": _shape(self._f2)})
        super().__init__({"i": In(stream.Signature(lay)),
                          "o": Out(stream.Signature(_shape(c.out)))})

    constants = property(lambda self: self._c)
    f1 = property(lambda self: self._f1)
    f2 = property(lambda self: self._f2)
    term_width = property(lambda self: const_width(*_mul_term_bounds(self._c, self._f1,
                                                                      self._f2)))
    latency = property(lambda self: 2)

    def elaborate(self, platform):
        m = Module()
        c, p = self._c, self.i.payload
        en = ~self.o.valid | self.o.ready
        m.d.comb += self.i.ready.eq(en)
        v1 = Signal()
        t = Signal(signed(self.term_width))
        with m.If(en):
            m.d.sync += [v1.eq(self.i.valid),
                         t.eq(c.M1 * p.q1 * p.q2 + c.M2 * p.q1 + c.M3 * p.q2 + c.M4)]
            m.d.sync += [self.o.valid.eq(v1),
                         self.o.payload.eq(clamp(m, rshift_round_comb(t, c.S), c.out.lo, c.out.hi))]
        return m


class IntAdd(wiring.Component):
    """y = clamp(round((M1 q1 + M2 q2 + M3) / 2^S), out) with round half up (residual add).

    Parameters
    ----------
    c : golden.formats.AddConstants
    f1, f2 : golden.formats.IntFormat
        Formats of q1 and q2 (default unsigned 8-bit activations).

    Members
    -------
    i : In(stream.Signature(StructLayout({"q1": f1, "q2": f2})))
    o : Out(stream.Signature(c.out))

    Latency 2; one beat per cycle.
    """

    def __init__(self, c: AddConstants, f1=IntFormat(8, False), f2=IntFormat(8, False)):
        if not isinstance(c, AddConstants):
            raise RTLParamError(f"c must be a golden.formats.AddConstants, got {c!r}")
        self._c, self._f1, self._f2 = c, _fmt(f1, "f1"), _fmt(f2, "f2")
        lay = data.StructLayout({"q1": _shape(self._f1), "q2": _shape(self._f2)})
        super().__init__({"i": In(stream.Signature(lay)),
                          "o": Out(stream.Signature(_shape(c.out)))})

    constants = property(lambda self: self._c)
    f1 = property(lambda self: self._f1)
    f2 = property(lambda self: self._f2)
    latency = property(lambda self: 2)

    @property
    def term_width(self):
        c, f1, f2 = self._c, self._f1, self._f2
        vals = [c.M1 * a + c.M2 * b + c.M3 for a in (f1.lo, f1.hi) for b in (f2.lo, f2.hi)]
        return const_width(min(vals), max(vals))

    def elaborate(self, platform):
        m = Module()
        c, p = self._c, self.i.payload
        en = ~self.o.valid | self.o.ready
        m.d.comb += self.i.ready.eq(en)
        v1 = Signal()
        t = Signal(signed(self.term_width))
        with m.If(en):
            m.d.sync += [v1.eq(self.i.valid), t.eq(c.M1 * p.q1 + c.M2 * p.q2 + c.M3)]
            m.d.sync += [self.o.valid.eq(v1),
                         self.o.payload.eq(clamp(m, rshift_round_comb(t, c.S), c.out.lo, c.out.hi))]
        return m


class _DotBase(wiring.Component):
    def __init__(self, c, pes, max_terms, fx, fw, zy):
        if not isinstance(c, MulConstants):
            raise RTLParamError(f"c must be a golden.formats.MulConstants, got {c!r}")
        self._c = c
        self._pes = check_int("pes", pes, 1, 256)
        self._max_terms = check_int("max_terms", max_terms, 1, 1 << 20)
        self._fx, self._fw = _fmt(fx, "fx"), _fmt(fw, "fw")
        self._zy = check_int("zy", zy, c.out.lo, c.out.hi)
        lay = data.StructLayout({"x": data.ArrayLayout(_shape(self._fx), self._pes),
                                 "w": data.ArrayLayout(_shape(self._fw), self._pes),
                                 "first": 1, "last": 1})
        super().__init__({"i": In(stream.Signature(lay)),
                          "o": Out(stream.Signature(_shape(c.out)))})

    constants = property(lambda self: self._c)
    pes = property(lambda self: self._pes)
    max_terms = property(lambda self: self._max_terms)
    fx = property(lambda self: self._fx)
    fw = property(lambda self: self._fw)
    zy = property(lambda self: self._zy)


class PaperDot(_DotBase):
    """Paper-literal dot product: each term rounded to output units, then summed.

    y = clamp(zy + sum_i round((M1 qx_i qw_i + M2 qx_i + M3 qw_i + M4) / 2^S), out).
    Every lane computes and rounds its own term (pes constant-multiplier lanes and
    rounders), the rounded terms are accumulated over the packet (``first`` .. ``last``).
    Padding terms count: a padded element contributes round(M4 / 2^S).

    Parameters
    ----------
    c : golden.formats.MulConstants
        Built with output zero point 0; ``zy`` is added once at the end.
    pes : int
        Terms per beat.
    max_terms : int
        Longest dot product; sizes the accumulator.
    fx, fw : golden.formats.IntFormat
        Operand formats (default unsigned / signed 8-bit).
    zy : int
        Output zero point, in the output format's range.

    Members
    -------
    i : In(stream.Signature(StructLayout({"x": ArrayLayout(fx, pes), "w": ArrayLayout(fw,
        pes), "first": 1, "last": 1})))
    o : Out(stream.Signature(c.out)): one beat per packet.

    Latency 3 cycles from the ``last`` beat; one beat per cycle.
    """

    def __init__(self, c, pes=8, max_terms=512, fx=IntFormat(8, False), fw=IntFormat(8, True),
                 zy=0):
        super().__init__(c, pes, max_terms, fx, fw, zy)

    latency = property(lambda self: 3)

    @property
    def acc_width(self):
        lo, hi = _mul_term_bounds(self._c, self._fx, self._fw)
        r = max(abs(lo), abs(hi)) >> self._c.S
        return const_width(-r - 1, r + 1) + ceil_log2(self._max_terms) + 1

    def elaborate(self, platform):
        m = Module()
        c, p = self._c, self.i.payload
        E = self.acc_width
        en = ~self.o.valid | self.o.ready
        m.d.comb += self.i.ready.eq(en)
        terms = [rshift_round_comb(c.M1 * p.x[j] * p.w[j] + c.M2 * p.x[j] + c.M3 * p.w[j] + c.M4,
                                   c.S) for j in range(self._pes)]
        a_valid, a_first, a_last = Signal(), Signal(), Signal()
        a_sum = Signal(signed(E))
        with m.If(en):
            m.d.sync += [a_valid.eq(self.i.valid), a_first.eq(p.first), a_last.eq(p.last),
                         a_sum.eq(sum_tree(terms))]
        ov, res = accumulate_stage(m, en, a_valid, a_first, a_last, a_sum, E)
        with m.If(en):
            m.d.sync += [self.o.valid.eq(ov),
                         self.o.payload.eq(clamp(m, res + self._zy, c.out.lo, c.out.hi))]
        return m


class FactoredDot(_DotBase):
    """Factored dot product: exact sums, one correction, one rounding.

    y = clamp(zy + round((M1 sum qx qw + M2 sum qx + M3 sum qw + K M4) / 2^S), out),
    K = pes x beats in the packet (padding terms count). Only ``pes`` plain multipliers per
    beat; the constant multipliers act once per output.

    Parameters, members
        As for :class:`PaperDot`.

    Latency 3 cycles from the ``last`` beat; one beat per cycle.
    """

    def __init__(self, c, pes=8, max_terms=512, fx=IntFormat(8, False), fw=IntFormat(8, True),
                 zy=0):
        super().__init__(c, pes, max_terms, fx, fw, zy)

    latency = property(lambda self: 3)

    def elaborate(self, platform):
        m = Module()
        c, p, P = self._c, self.i.payload, self._pes
        fx, fw = self._fx, self._fw
        L = ceil_log2(self._max_terms)
        en = ~self.o.valid | self.o.ready
        m.d.comb += self.i.ready.eq(en)
        pw = const_width(min(a * b for a in (fx.lo, fx.hi) for b in (fw.lo, fw.hi)),
                         max(a * b for a in (fx.lo, fx.hi) for b in (fw.lo, fw.hi)))
        Exw, Ex, Ew = pw + L + 1, fx.n + L + 2, fw.n + L + 2
        a_valid, a_first, a_last = Signal(), Signal(), Signal()
        a_xw, a_x, a_w = Signal(signed(Exw)), Signal(signed(Ex)), Signal(signed(Ew))
        with m.If(en):
            m.d.sync += [a_valid.eq(self.i.valid), a_first.eq(p.first), a_last.eq(p.last),
                         a_xw.eq(sum_tree(p.x[j] * p.w[j] for j in range(P))),
                         a_x.eq(sum_tree(p.x[j] for j in range(P))),
                         a_w.eq(sum_tree(p.w[j] for j in range(P)))]
        ov, sxw = accumulate_stage(m, en, a_valid, a_first, a_last, a_xw, Exw, "sxw")
        _, sx = accumulate_stage(m, en, a_valid, a_first, a_last, a_x, Ex, "sx")
        _, sw = accumulate_stage(m, en, a_valid, a_first, a_last, a_w, Ew, "sw")
        _, beats = accumulate_stage(m, en, a_valid, a_first, a_last, 1, L + 2, "beats")
        t = c.M1 * sxw + c.M2 * sx + c.M3 * sw + beats * (P * c.M4)
        with m.If(en):
            m.d.sync += [self.o.valid.eq(ov),
                         self.o.payload.eq(clamp(m, rshift_round_comb(t, c.S) + self._zy,
                                                 c.out.lo, c.out.hi))]
        return m
