"""Plain fixed-precision integer MAC, the reference design (golden ``int_mac``)."""
from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from golden import defaults as D
from golden.formats import acc_width_rule

from ._common import RTLParamError, check_int, check_n, check_overflow, overflow_policy, \
    sum_tree
from .accumulate import accumulate_stage, exact_width, sticky_flag
from .nested_mac import dot_layouts

__all__ = ["IntMac"]


class IntMac(wiring.Component):
    """``pes`` products per beat of unsigned n-bit x and signed n-bit w, no nesting.

    Same ports and timing as :class:`rtl.nested_mac.NestedMac` without the ``bits`` field:
    ``acc = bias + sum x*w`` over a packet (``first`` .. ``last``), then the overflow policy.

    Parameters
    ----------
    n : int
        Operand width (8 for the int8 reference; 2..16 accepted).
    pes, acc_width, max_terms, overflow
        As for :class:`rtl.nested_mac.NestedMac`.

    Latency: 2 cycles from the ``last`` beat to the result; one beat per cycle.
    """

    def __init__(self, n=D.N, pes=8, acc_width=None, max_terms=D.ACC_TERMS, overflow=D.OVERFLOW):
        self._n = check_n(n)
        self._pes = check_int("pes", pes, 1, 256)
        self._max_terms = check_int("max_terms", max_terms, 1, 1 << 20)
        if acc_width is None:
            acc_width = acc_width_rule(self._n, self._max_terms)
        self._acc_width = check_int("acc_width", acc_width, 2, 62)
        self._overflow = check_overflow(overflow)
        if self.exact_width > 64:
            raise RTLParamError(f"exact accumulator width {self.exact_width} exceeds 64 bits")
        lay_i, lay_o = dot_layouts(self._n, self._pes, self._acc_width, with_bits=False)
        super().__init__({
            "i": In(stream.Signature(lay_i)),
            "o": Out(stream.Signature(lay_o)),
            "sticky_overflow": Out(1),
            "clear_overflow": In(1),
        })

    n = property(lambda self: self._n)
    pes = property(lambda self: self._pes)
    acc_width = property(lambda self: self._acc_width)
    max_terms = property(lambda self: self._max_terms)
    overflow = property(lambda self: self._overflow.value)
    exact_width = property(lambda self: exact_width(self._acc_width, 2 * self._n,
                                                    self._max_terms))
    latency = property(lambda self: 2, doc="cycles from the ``last`` beat to the result")

    def elaborate(self, platform):
        m = Module()
        p = self.i.payload
        E = self.exact_width
        en = ~self.o.valid | self.o.ready
        m.d.comb += self.i.ready.eq(en)
        beat = sum_tree(p.x[j] * p.w[j] for j in range(self._pes))
        a_valid, a_first, a_last = Signal(), Signal(), Signal()
        a_sum = Signal(signed(E))
        with m.If(en):
            m.d.sync += [a_valid.eq(self.i.valid), a_first.eq(p.first), a_last.eq(p.last),
                         a_sum.eq(beat + Mux(p.first, p.bias, 0))]
        ov, res = accumulate_stage(m, en, a_valid, a_first, a_last, a_sum, E)
        m.d.comb += self.o.valid.eq(ov)
        val, over = overflow_policy(m, res, self._acc_width, self._overflow)
        m.d.comb += [self.o.payload.acc.eq(val), self.o.payload.overflow.eq(over)]
        m.d.comb += self.sticky_overflow.eq(
            sticky_flag(m, self.o.valid & over, self.clear_overflow))
        return m
