"""Plain fixed-precision integer MAC, the reference design (golden ``int_mac``)."""
from __future__ import annotations

from amaranth.hdl import Module

from golden import defaults as D

from ._common import sum_tree
from .nested_mac import DotMac

__all__ = ["IntMac"]


class IntMac(DotMac):
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
        super().__init__(n, pes, acc_width, max_terms, overflow, with_bits=False)

    latency = property(lambda self: 2, doc="cycles from the ``last`` beat to the result")

    def elaborate(self, platform):
        m = Module()
        p = self.i.payload
        en = ~self.o.valid | self.o.ready
        m.d.comb += self.i.ready.eq(en)
        beat = sum_tree(p.x[j] * p.w[j] for j in range(self._pes))
        return self.accumulate_beats(m, en, beat)
