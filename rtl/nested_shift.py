"""Nested shifter: master-width code -> run-time precision b (golden ``nested_shift``)."""
from __future__ import annotations

from amaranth.hdl import Module, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from golden import defaults as D

from ._common import bits_width, check_candidates, check_mode, check_n, code_shape, \
    nested_shift_comb

__all__ = ["NestedShift"]


class NestedShift(wiring.Component):
    """Convert an n-bit master code to ``bits`` bits by the nested rule.

    floor: ``q >> k`` (arithmetic when signed); round: ``clamp((q + 2^(k-1)) >> k)`` to the
    b-bit range, k = n - bits. The result is right-aligned (a b-bit code in an n-bit field).

    Parameters
    ----------
    n : int
        Master width, 2..16.
    mode : "floor" or "round"
    signed : bool
        Two's complement (weights) or unsigned (activations) codes.
    candidates : iterable of int or None
        Run-time precisions the hardware supports (default every width 1..n). A ``bits``
        value outside this set passes the code through unchanged (k = 0).

    Members
    -------
    i : In(stream.Signature(StructLayout({"q": n bits, "bits": bits_width})))
    o : Out(stream.Signature(n bits)), same signedness as ``q``.

    Latency is 1 cycle (one output register); the stream stalls as a whole when ``o`` is not
    ready, so throughput is one code per cycle.
    """

    def __init__(self, n=D.N, mode=D.MODE, signed=False, candidates=None):
        self._n = check_n(n)
        self._mode = check_mode(mode)
        self._signed = bool(signed)
        self._candidates = check_candidates(candidates, self._n)
        shape = code_shape(self._n, self._signed)
        lay = data.StructLayout({"q": shape, "bits": unsigned(bits_width(self._n))})
        super().__init__({"i": In(stream.Signature(lay)), "o": Out(stream.Signature(shape))})

    n = property(lambda self: self._n)
    mode = property(lambda self: self._mode.value)
    signed = property(lambda self: self._signed)
    candidates = property(lambda self: self._candidates)
    bits_width = property(lambda self: bits_width(self._n), doc="width of the ``bits`` field")
    latency = property(lambda self: 1, doc="cycles from an accepted input to its output")

    def elaborate(self, platform):
        m = Module()
        right, _ = nested_shift_comb(m, self.i.payload.q, self._n, self.i.payload.bits,
                                     self._mode, self._signed, self._candidates)
        en = ~self.o.valid | self.o.ready
        m.d.comb += self.i.ready.eq(en)
        with m.If(en):
            m.d.sync += [self.o.valid.eq(self.i.valid), self.o.payload.eq(right)]
        return m
