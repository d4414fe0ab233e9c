"""Bit-serial MSB-first nested MAC (golden ``bitserial_mac``)."""
from __future__ import annotations

from amaranth.hdl import Array, Module, Mux, Signal, signed, unsigned

from golden import defaults as D

from ._common import bits_width, check_candidates, check_int, check_mode, \
    nested_shift_comb, overflow_policy, sum_tree
from .accumulate import sticky_flag
from .nested_mac import DotMac, shift_left_by_bits

__all__ = ["BitserialMac"]


class BitserialMac(DotMac):
    """Nested MAC that consumes the weights' b-bit codes MSB first, one bit per cycle.

    Ports and packet convention are those of :class:`rtl.nested_mac.NestedMac`. A beat at
    precision b occupies the datapath for exactly b cycles (``i.ready`` is low for the
    b - 1 cycles after a beat is accepted): cycle j adds ``sum_i bit_(b-1-j)(w_b[i]) * x_b[i]``
    to a doubled partial sum, the MSB with negative weight (two's complement). The weight
    register holds the nested code MSB-aligned, so in ``floor`` mode the bits consumed are
    the master code's own top b bits: stopping after b bits *is* the b-bit product.
    The result equals golden ``nested_mac`` (and the parallel MAC) for every precision.

    Parameters
    ----------
    n, pes, acc_width, max_terms, mode, overflow, candidates
        As for :class:`rtl.nested_mac.NestedMac`.

    Latency: the packet's result is valid 1 cycle after its last beat's final bit cycle;
    a beat at precision b takes b cycles (``cycles_per_beat(b)``).
    """

    def __init__(self, n=D.N, pes=8, acc_width=None, max_terms=D.ACC_TERMS, mode=D.MODE,
                 overflow=D.OVERFLOW, candidates=None):
        self._mode = check_mode(mode)
        super().__init__(n, pes, acc_width, max_terms, overflow)
        self._candidates = check_candidates(candidates, self._n)

    mode = property(lambda self: self._mode.value)
    candidates = property(lambda self: self._candidates)
    latency = property(lambda self: 1,
                       doc="cycles from the last bit cycle of the ``last`` beat to the result")

    def cycles_per_beat(self, bits: int) -> int:
        """Cycles one beat occupies at run-time precision ``bits``."""
        bits = check_int("bits", bits, 0, (1 << bits_width(self._n)) - 1)
        return bits if bits in self._candidates else self._n

    def elaborate(self, platform):
        m = Module()
        n, P, p = self._n, self._pes, self.i.payload
        E = self.exact_width
        PW = n + 1 + P.bit_length() + n  # partial sum: |sum x_b w_b| < pes * 2^(2n-1)

        busy = Signal()
        cnt = Signal(range(n + 1))
        xs = Array(Signal(unsigned(n), name=f"xs{j}") for j in range(P))
        ws = Array(Signal(signed(n), name=f"ws{j}") for j in range(P))
        partial = Signal(signed(PW))
        h_bits = Signal.like(p.bits)
        h_first, h_last = Signal(), Signal()
        h_bias = Signal.like(p.bias)
        acc = Signal(signed(E))
        result = Signal(signed(E))

        out_free = ~self.o.valid | self.o.ready
        m.d.comb += self.i.ready.eq(~busy & out_free)
        accept = self.i.valid & self.i.ready
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)

        # effective precision: outside the candidate set means full precision
        eff = Signal(range(n + 1))
        with m.Switch(p.bits):
            for b in self._candidates:
                with m.Case(b):
                    m.d.comb += eff.eq(b)
            with m.Default():
                m.d.comb += eff.eq(n)

        # operands of an incoming beat: x right-aligned, w MSB-aligned for MSB-first bits
        xin, win = [], []
        for j in range(P):
            xr, _ = nested_shift_comb(m, p.x[j], n, p.bits, self._mode, False,
                                      self._candidates, name=f"x{j}")
            _, wm = nested_shift_comb(m, p.w[j], n, p.bits, self._mode, True,
                                      self._candidates, name=f"w{j}")
            xin.append(xr)
            win.append(wm)
        # bit cycle 0 happens in the accept cycle on the incoming operands (MSB: weight -2^(b-1))
        sel0 = sum_tree(Mux(win[j][n - 1], xin[j], 0) for j in range(P))
        # later bit cycles use the held operands
        selc = sum_tree(Mux(ws[j][n - 1], xs[j], 0) for j in range(P))

        done = Signal()
        new_partial = Signal(signed(PW))
        d_bits = Signal.like(p.bits)
        d_first, d_last = Signal(), Signal()
        d_bias = Signal.like(p.bias)
        with m.If(accept):
            m.d.comb += [new_partial.eq(-sel0), d_bits.eq(p.bits), d_first.eq(p.first),
                         d_last.eq(p.last), d_bias.eq(p.bias), done.eq(eff <= 1)]
            m.d.sync += [partial.eq(-sel0), cnt.eq(eff - 1), busy.eq(eff > 1),
                         h_bits.eq(p.bits), h_first.eq(p.first), h_last.eq(p.last),
                         h_bias.eq(p.bias)]
            for j in range(P):
                m.d.sync += [xs[j].eq(xin[j]), ws[j].eq(win[j] << 1)]
        with m.Elif(busy):
            m.d.comb += [new_partial.eq((partial << 1) + selc), d_bits.eq(h_bits),
                         d_first.eq(h_first), d_last.eq(h_last), d_bias.eq(h_bias),
                         done.eq(cnt == 1)]
            m.d.sync += [partial.eq(new_partial), cnt.eq(cnt - 1), busy.eq(cnt > 1)]
            for j in range(P):
                m.d.sync += ws[j].eq(ws[j] << 1)

        beat = shift_left_by_bits(m, new_partial, n, d_bits, self._candidates, 2, E, "beat")
        new_acc = Signal(signed(E))
        m.d.comb += new_acc.eq(Mux(d_first, d_bias, acc) + beat)
        with m.If(done):
            m.d.sync += acc.eq(new_acc)
            with m.If(d_last):
                m.d.sync += [result.eq(new_acc), self.o.valid.eq(1)]

        val, over = overflow_policy(m, result, self._acc_width, self._overflow)
        m.d.comb += [self.o.payload.acc.eq(val), self.o.payload.overflow.eq(over)]
        m.d.comb += self.sticky_overflow.eq(
            sticky_flag(m, self.o.valid & over, self.clear_overflow))
        return m
