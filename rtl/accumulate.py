"""Accumulator with the declared-width overflow policy and a sticky flag (golden ``accumulate``)."""
from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from golden import defaults as D
from golden.formats import acc_width_rule

from ._common import RTLParamError, ceil_log2, check_int, check_overflow, overflow_policy

__all__ = ["Accumulate", "exact_width"]


def exact_width(width: int, addend_width: int, max_terms: int) -> int:
    """Internal width that holds any sum of ``max_terms`` addends plus a W-bit start value.

    The register keeps these guard bits so the overflow flag and ``saturate`` act on the
    exact sum, as golden ``accumulate`` specifies.
    """
    return max(int(width), int(addend_width) + ceil_log2(max_terms)) + 1


def accumulate_stage(m, en, valid, first, last, addend, E, name="acc"):
    """Exact packet accumulator: returns ``(out_valid, result)`` registers.

    On an enabled valid beat: ``acc = (first ? 0 : acc) + addend``; on ``last`` the new sum
    is copied to ``result`` and ``out_valid`` rises for one enabled cycle.
    """
    acc = Signal(signed(E), name=f"{name}_exact")
    result = Signal(signed(E), name=f"{name}_result")
    out_valid = Signal(name=f"{name}_valid")
    new = Signal(signed(E), name=f"{name}_new")
    m.d.comb += new.eq(Mux(first, 0, acc) + addend)
    with m.If(en):
        m.d.sync += out_valid.eq(valid & last)
        with m.If(valid):
            m.d.sync += acc.eq(new)
            with m.If(last):
                m.d.sync += result.eq(new)
    return out_valid, result


def sticky_flag(m, set_, clear, name="sticky"):
    """A flag that rises on ``set_`` and stays until ``clear`` (set wins over clear)."""
    flag = Signal(name=name)
    with m.If(set_):
        m.d.sync += flag.eq(1)
    with m.Elif(clear):
        m.d.sync += flag.eq(0)
    return flag


class Accumulate(wiring.Component):
    """Sum a packet of signed addends exactly, then apply the declared width's policy.

    Parameters
    ----------
    width : int
        Declared accumulator width W (2..62); default ``acc_width_rule(8, max_terms)``.
    overflow : "wrap" or "saturate"
        wrap: the W-bit two's complement residue (what a W-bit register that wraps on every
        partial sum holds); saturate: the exact final sum clamped to the W-bit range.
    addend_width : int
        Width of each signed addend.
    max_terms : int
        Largest packet length; the internal register has :attr:`exact_width` bits so packets
        up to this length never lose a bit (longer packets are outside the contract).

    Members
    -------
    i : In(stream.Signature(StructLayout({"value": signed(addend_width), "first": 1, "last": 1})))
        ``first`` starts a new sum, ``last`` ends it (both set: a one-term packet).
    o : Out(stream.Signature(StructLayout({"value": signed(W), "overflow": 1})))
        One beat per packet; ``overflow`` is 1 when the exact sum lies outside the W-bit range.
    sticky_overflow : Out(1)
        Rises with the first overflowing result and stays until ``clear_overflow``.
    clear_overflow : In(1)

    Latency: 1 cycle from the ``last`` beat to the result. Throughput one addend per cycle.
    """

    def __init__(self, width=None, overflow=D.OVERFLOW, addend_width=17, max_terms=D.ACC_TERMS):
        self._max_terms = check_int("max_terms", max_terms, 1, 1 << 20)
        self._addend_width = check_int("addend_width", addend_width, 2, 48)
        if width is None:
            width = acc_width_rule(8, self._max_terms)
        self._width = check_int("width", width, 2, 62)
        self._overflow = check_overflow(overflow)
        if self.exact_width > 64:
            raise RTLParamError(f"exact accumulator width {self.exact_width} exceeds 64 bits: "
                                "lower max_terms or width")
        lay_i = data.StructLayout({"value": signed(self._addend_width), "first": 1, "last": 1})
        lay_o = data.StructLayout({"value": signed(self._width), "overflow": 1})
        super().__init__({
            "i": In(stream.Signature(lay_i)),
            "o": Out(stream.Signature(lay_o)),
            "sticky_overflow": Out(1),
            "clear_overflow": In(1),
        })

    width = property(lambda self: self._width)
    overflow = property(lambda self: self._overflow.value)
    addend_width = property(lambda self: self._addend_width)
    max_terms = property(lambda self: self._max_terms)
    exact_width = property(lambda self: exact_width(self._width, self._addend_width,
                                                    self._max_terms),
                           doc="internal register width (declared width plus guard bits)")
    latency = property(lambda self: 1, doc="cycles from the ``last`` addend to the result")

    def elaborate(self, platform):
        m = Module()
        en = ~self.o.valid | self.o.ready
        m.d.comb += self.i.ready.eq(en)
        p = self.i.payload
        ov, res = accumulate_stage(m, en, self.i.valid, p.first, p.last, p.value,
                                   self.exact_width)
        m.d.comb += self.o.valid.eq(ov)
        val, over = overflow_policy(m, res, self._width, self._overflow)
        m.d.comb += [self.o.payload.value.eq(val), self.o.payload.overflow.eq(over)]
        flag = sticky_flag(m, self.o.valid & over, self.clear_overflow)
        m.d.comb += self.sticky_overflow.eq(flag)
        return m

