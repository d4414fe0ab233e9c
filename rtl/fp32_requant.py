"""The float baseline that DQT removes: int -> fp32, fp32 multiply, fp32 -> int (golden
``fp32_requant``)."""
from __future__ import annotations

# ``signed`` is also a constructor argument here, so the shape function gets another name
from amaranth.hdl import Cat, Module, Mux, Signal, unsigned
from amaranth.hdl import signed as _s
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from golden.formats import IntFormat

from ._common import check_int, check_n, clamp, code_shape

__all__ = ["Fp32Requant"]


def _rne_top24(m, mag, name):
    """Round an unsigned, MSB-normalised ``mag`` (MSB set) to 24 bits, round to nearest even.

    Returns ``(mant, carry)``: ``mant`` has its MSB at bit 23; ``carry`` is 1 when rounding
    overflowed to 2^24 (the exponent must then grow by one, ``mant`` is 2^23).
    """
    W = len(mag)
    mant = Signal(24, name=f"{name}_mant")
    carry = Signal(name=f"{name}_carry")
    if W <= 24:
        m.d.comb += mant.eq(mag << (24 - W))
        return mant, carry
    top = mag[W - 24:]
    guard = mag[W - 25]
    sticky = mag[:W - 25].any() if W > 25 else 0
    up = guard & (sticky | top[0])
    r = Signal(25, name=f"{name}_r")
    m.d.comb += r.eq(top + up)
    m.d.comb += [carry.eq(r[24]), mant.eq(Mux(r[24], 1 << 23, r[:24]))]
    return mant, carry


class Fp32Requant(wiring.Component):
    """y = clamp(rint(float32(acc) * scale) + zy, out), bit-exact with numpy float32.

    Three IEEE binary32 steps, each round-to-nearest-even: the signed integer accumulator
    is converted to float32 (rounded to 24 significant bits when |acc| >= 2^24), multiplied
    by the float32 ``scale`` (the 48-bit significand product rounded to 24 bits), and
    converted back with round-half-to-even, then the zero point is added and the result
    clamped to the output format.

    Not supported (documented limits): denormal scales are read as zero (flush to zero);
    inf/NaN scales are outside the contract. Results that would be float32 denormals are
    flushed to zero, which is exact here because any value below 2^-126 rounds to the
    integer 0 anyway; products beyond the float32 range (inf in numpy) clamp to the output
    range exactly as numpy's clipped inf does.

    Parameters
    ----------
    acc_width : int
        Signed accumulator width (2..62).
    n : int
        Output code width (2..16).
    signed : bool
        Output signedness.

    Members
    -------
    i : In(stream.Signature(StructLayout({"acc": signed(acc_width), "scale": unsigned(32),
        "zy": signed(n + 1)})))  ``scale`` holds the IEEE binary32 bit pattern.
    o : Out(stream.Signature(out))

    Latency: 3 cycles (int -> fp32 | multiply, round | fp32 -> int, clamp).
    """

    def __init__(self, acc_width=32, n=8, signed=False):
        self._acc_width = check_int("acc_width", acc_width, 2, 62)
        self._n = check_n(n)
        self._signed = bool(signed)
        out = code_shape(self._n, self._signed)
        lay = data.StructLayout({"acc": _s(self._acc_width), "scale": unsigned(32),
                                 "zy": _s(self._n + 1)})
        super().__init__({"i": In(stream.Signature(lay)), "o": Out(stream.Signature(out))})

    acc_width = property(lambda self: self._acc_width)
    n = property(lambda self: self._n)
    signed = property(lambda self: self._signed)
    out_format = property(lambda self: IntFormat(self._n, self._signed))
    latency = property(lambda self: 3)

    def elaborate(self, platform):
        m = Module()
        p = self.i.payload
        W = self._acc_width
        fmt = self.out_format
        en = ~self.o.valid | self.o.ready
        m.d.comb += self.i.ready.eq(en)

        # ---- stage 1: int -> float32 (sign, exponent of the MSB, 24-bit significand)
        neg = p.acc < 0
        mag = Signal(W)
        m.d.comb += mag.eq(Mux(neg, -p.acc, p.acc))
        msb = Signal(range(W))
        for b in range(W):  # priority encoder: the last (highest) set bit wins
            with m.If(mag[b]):
                m.d.comb += msb.eq(b)
        lz = Signal(range(W))
        m.d.comb += lz.eq(W - 1 - msb)
        norm = Signal(W)
        m.d.comb += norm.eq(mag << lz)
        mant_a, carry_a = _rne_top24(m, norm, "cvt")
        v1, z1, s1 = Signal(), Signal(), Signal()
        e1 = Signal(_s(10))
        m1 = Signal(24)
        sc1 = Signal(32)
        zy1 = Signal(_s(self._n + 1))
        with m.If(en):
            m.d.sync += [v1.eq(self.i.valid), z1.eq(mag == 0), s1.eq(neg),
                         e1.eq(msb + carry_a), m1.eq(mant_a), sc1.eq(p.scale), zy1.eq(p.zy)]

        # ---- stage 2: multiply by the scale, round the 48-bit product to 24 bits
        se, sm, ss = sc1[23:31], sc1[:23], sc1[31]
        prod = Signal(48)
        m.d.comb += prod.eq(m1 * Cat(sm, 1))
        hi_bit = prod[47]
        pn = Signal(48)
        m.d.comb += pn.eq(Mux(hi_bit, prod, prod << 1))  # MSB at bit 47
        mant_p, carry_p = _rne_top24(m, pn, "mul")
        v2, z2, s2 = Signal(), Signal(), Signal()
        e2 = Signal(_s(11))
        m2 = Signal(24)
        zy2 = Signal.like(zy1)
        with m.If(en):
            m.d.sync += [v2.eq(v1), z2.eq(z1 | (se == 0)), s2.eq(s1 ^ ss),
                         e2.eq(e1 + se - 127 + hi_bit + carry_p), m2.eq(mant_p), zy2.eq(zy1)]

        # ---- stage 3: float32 -> integer, round half to even, zero point, clamp
        # value = m2 * 2^(e2 - 23); |value| >= 2^24 saturates (beyond any n <= 16 output)
        big = e2 >= 24
        r = Signal(range(26))
        m.d.comb += r.eq(Mux(e2 >= 23, 0, Mux(e2 < -2, 25, 23 - e2)))
        ext = Signal(49)
        m.d.comb += ext.eq(m2 << 25)
        shifted = Signal(49)
        m.d.comb += shifted.eq(ext >> r)          # m2 / 2^r with 25 fraction bits kept
        q, frac = shifted[25:], shifted[:25]
        half = 1 << 24
        up = (frac > half) | ((frac == half) & q[0])
        mag_ok = Signal(27)
        m.d.comb += mag_ok.eq(Mux(big, 1 << 25, Mux(e2 == 23, m2, q + up)))
        val = Signal(_s(28))
        m.d.comb += val.eq(Mux(z2, 0, Mux(s2, -mag_ok, mag_ok)))
        with m.If(en):
            m.d.sync += [self.o.valid.eq(v2),
                         self.o.payload.eq(clamp(m, val + zy2, fmt.lo, fmt.hi))]
        return m

