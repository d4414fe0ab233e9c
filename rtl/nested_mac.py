"""Parallel nested MAC with a run-time precision (golden ``nested_mac``)."""
from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from golden import defaults as D
from golden.formats import acc_width_rule

from ._common import RTLParamError, bits_width, check_candidates, check_choice, \
    check_int, check_mode, check_n, check_overflow, materialize, nested_shift_comb, \
    overflow_policy, sum_tree
from .accumulate import accumulate_stage, exact_width, sticky_flag

__all__ = ["NestedMac", "DotMac", "VARIANTS", "dot_layouts", "shift_left_by_bits"]

VARIANTS = ("right", "msb")


def dot_layouts(n, pes, acc_width, with_bits=True):
    """Input and output payload layouts shared by the dot-product MACs."""
    fields = {"x": data.ArrayLayout(unsigned(n), pes), "w": data.ArrayLayout(signed(n), pes)}
    if with_bits:
        fields["bits"] = unsigned(bits_width(n))
    fields.update({"bias": signed(acc_width), "first": 1, "last": 1})
    return (data.StructLayout(fields),
            data.StructLayout({"acc": signed(acc_width), "overflow": 1}))


class DotMac(wiring.Component):
    """What the dot-product MACs (:class:`NestedMac`, :class:`rtl.int_mac.IntMac`,
    :class:`rtl.bitserial_mac.BitserialMac`) share: the checks of ``n``, ``pes``,
    ``max_terms``, ``acc_width`` and ``overflow``, the exact accumulator width, and the
    stream ports (:func:`dot_layouts`) with the sticky overflow flag."""

    def __init__(self, n, pes, acc_width, max_terms, overflow, with_bits=True):
        self._n = check_n(n)
        self._pes = check_int("pes", pes, 1, 256)
        self._max_terms = check_int("max_terms", max_terms, 1, 1 << 20)
        if acc_width is None:
            acc_width = acc_width_rule(self._n, self._max_terms)
        self._acc_width = check_int("acc_width", acc_width, 2, 62)
        self._overflow = check_overflow(overflow)
        if self.exact_width > 64:
            raise RTLParamError(f"exact accumulator width {self.exact_width} exceeds 64 bits")
        lay_i, lay_o = dot_layouts(self._n, self._pes, self._acc_width, with_bits=with_bits)
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


    def accumulate_beats(self, m, en, beat):
        """Stages A and B behind a beat's products: A registers the beat's sum with the bias
        folded into the first beat, B accumulates exactly; the overflow policy acts on the
        final exact sum; the sticky flag follows the results. Returns ``m``."""
        p, E = self.i.payload, self.exact_width
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

def shift_left_by_bits(m, v, n, bits, candidates, factor, E, name="sh"):
    """``v << factor*(n - bits)`` for a run-time ``bits`` (outside ``candidates``: no shift)."""
    out = Signal(signed(E), name=name)
    v = materialize(m, v, f"{name}_in")
    with m.Switch(bits):
        for b in candidates:
            if b != n:
                with m.Case(b):
                    m.d.comb += out.eq(v << (factor * (n - b)))
        with m.Default():
            m.d.comb += out.eq(v)
    return out


class NestedMac(DotMac):
    """Parallel nested multiply-accumulate over ``pes`` terms per beat.

    Each beat carries ``pes`` unsigned activation codes ``x`` and signed weight codes ``w``
    at master width n and the run-time precision ``bits``. Both operands are nested-shifted
    (``mode``), multiplied, summed, and added to an exact accumulator in master units::

        acc = bias + sum over the packet of  x_b * w_b << 2k      (k = n - bits)

    ``variant="right"`` multiplies the right-aligned b-bit codes and shifts the beat's sum
    by 2k; ``variant="msb"`` multiplies the MSB-aligned codes (low k bits zero) and needs no
    shift. Both give golden ``nested_mac`` bit for bit. A packet (one dot product) is the
    beats from ``first`` to ``last``; its ``bias`` is taken on the ``first`` beat.
    Precision may change from beat to beat at no cost (each beat is self-contained).

    Parameters
    ----------
    n : int
        Master width (2..16).
    pes : int
        Products per beat (1..256).
    acc_width : int or None
        Declared accumulator width W; default ``acc_width_rule(n, max_terms)``.
    max_terms : int
        Longest dot product (terms) the guard bits cover.
    mode : "floor" or "round"
    variant : "right" or "msb"
    overflow : "wrap" or "saturate"
    candidates : iterable of int or None
        Supported precisions (default 1..n); other ``bits`` values mean full precision.

    Members
    -------
    i : In(stream.Signature(StructLayout({"x": ArrayLayout(unsigned(n), pes),
        "w": ArrayLayout(signed(n), pes), "bits", "bias": signed(W), "first", "last"})))
    o : Out(stream.Signature(StructLayout({"acc": signed(W), "overflow": 1})))
        One beat per packet: the policy-applied value and its overflow flag.
    sticky_overflow : Out(1)
    clear_overflow : In(1)

    Latency: 2 cycles from the ``last`` beat to the result; one beat per cycle.
    """

    def __init__(self, n=D.N, pes=8, acc_width=None, max_terms=D.ACC_TERMS, mode=D.MODE,
                 variant=D.ALIGNMENT, overflow=D.OVERFLOW, candidates=None):
        self._mode = check_mode(mode)
        self._variant = check_choice("variant", variant, VARIANTS)
        super().__init__(n, pes, acc_width, max_terms, overflow)
        self._candidates = check_candidates(candidates, self._n)

    mode = property(lambda self: self._mode.value)
    variant = property(lambda self: self._variant)
    candidates = property(lambda self: self._candidates)
    latency = property(lambda self: 2, doc="cycles from the ``last`` beat to the result")

    def elaborate(self, platform):
        m = Module()
        n, p = self._n, self.i.payload
        E = self.exact_width
        en = ~self.o.valid | self.o.ready
        m.d.comb += self.i.ready.eq(en)

        prods = []
        for j in range(self._pes):
            xr, xm = nested_shift_comb(m, p.x[j], n, p.bits, self._mode, False,
                                       self._candidates, name=f"x{j}")
            wr, wm = nested_shift_comb(m, p.w[j], n, p.bits, self._mode, True,
                                       self._candidates, name=f"w{j}")
            prods.append(xr * wr if self._variant == "right" else xm * wm)
        beat = sum_tree(prods)
        if self._variant == "right":
            beat = shift_left_by_bits(m, beat, n, p.bits, self._candidates, 2, E, "beat_sh")

        return self.accumulate_beats(m, en, beat)
