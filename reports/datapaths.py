"""Synthesis proxies of the DQT operators, sized for cost measurement.

Each class here is a small registered Amaranth ``wiring.Component`` that computes exactly the
value of the golden function of the same concept (``golden.ops``): the reports synthesize it,
simulate its mapped netlist with workload vectors and compare the netlist's outputs with the
golden model (``tests/reports/test_gatesim.py``). Every input and output goes through a
register so each design has a register-to-register timed path and its activity is defined per
clock cycle.

They exist so the cost flow does not depend on the ``rtl/`` package's interfaces; the design
list in :mod:`reports.designs` is data and can point at ``rtl/`` components instead.

Conventions shared by all designs
---------------------------------
* ``x``: unsigned n-bit activation code; ``w``: signed n-bit weight code.
* ``bits``: run-time precision b in the candidate set (an unsigned port of
  ``bits_width(n)`` bits); a value outside the set behaves as b = n.
* Accumulators are signed, ``acc_width`` bits, two's complement wrap (the golden ``wrap``
  policy; the overflow flag is not part of the cost proxies).
* Latency: inputs are registered (1 cycle) and the accumulator register follows, so a MAC's
  accumulator reflects the element presented two cycles earlier.
"""
from __future__ import annotations

import operator

from amaranth.hdl import Cat, Const, Mux, Module, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from golden.formats import DQTValueError, NestedMode, acc_width_rule

__all__ = [
    "bits_width",
    "IntMac",
    "NestedMac",
    "BitSerialMac",
    "PaperDot",
    "FactoredDot",
    "Requantizer",
    "Fp32Requant",
    "default_candidates",
    "NestedShiftReg",
]

#: K used to size the MAC accumulators (2n + ceil(log2 K) + 1 bits): the largest fan-in of
#: the digits network is 64 and ResNet layers reach 4608, so 256 is a middle ground.
ACC_K = 256


def _check_n(n, lo=2, hi=16):
    try:
        n = operator.index(n)
    except TypeError:
        raise DQTValueError(f"n must be an integer, got {n!r}") from None
    if not lo <= n <= hi:
        raise DQTValueError(f"n={n} is outside the allowed range [{lo}, {hi}]")
    return n


def bits_width(n: int) -> int:
    """Width of the run-time precision port for master width ``n``."""
    return int(n).bit_length()


def default_candidates(n: int) -> tuple[int, ...]:
    """Run-time precision set used for the cost proxies: {2, 4, 6, 8} scaled to n."""
    n = _check_n(n)
    if n <= 4:
        return tuple(range(1, n + 1))
    if n == 8:
        return (2, 4, 6, 8)
    return tuple(sorted({2, 4, n // 2, n}))


def _check_cands(n, candidates):
    cands = tuple(sorted(set(int(b) for b in candidates)))
    if not cands or cands[0] < 1 or cands[-1] > n:
        raise DQTValueError(f"candidate set {list(candidates)} must hold integers in [1, n={n}]")
    return cands


def _nested(m, q, n, bits, cands, mode, signed_, align):
    """Nested conversion of ``q`` at run-time width ``bits`` (a Switch over the candidate set).

    align="right": the b-bit code, right-aligned; align="msb": the b-bit code << k, i.e. the
    master-width word with its low k bits cleared (same value times 2^k).
    """
    shape = signed(n) if signed_ else unsigned(n)
    out = Signal(shape)
    with m.Switch(bits):
        for b in cands:
            k = n - b
            with m.Case(b):
                if k == 0:
                    m.d.comb += out.eq(q)
                    continue
                if mode is NestedMode.FLOOR:
                    v = q >> k
                else:
                    lo, hi = (-(1 << (b - 1)), (1 << (b - 1)) - 1) if signed_ else (0, (1 << b) - 1)
                    t = Signal(signed(n + 2) if signed_ else unsigned(n + 1))
                    m.d.comb += t.eq((q + (1 << (k - 1))) >> k)
                    # Only the top of the range can leave it: adding half a step to a
                    # negative code never goes below lo.
                    v = Mux(t > hi, hi, t) if not signed_ else Mux(t > hi, hi, Mux(t < lo, lo, t))
                m.d.comb += out.eq(v << k if align == "msb" else v)
        with m.Default():
            m.d.comb += out.eq(q)
    return out


def _kshift(m, bits, n, cands):
    """Shift 2k = 2(n - bits) as a signal (the right-aligned product is re-scaled by it)."""
    s = Signal(range(2 * n + 1))
    with m.Switch(bits):
        for b in cands:
            with m.Case(b):
                m.d.comb += s.eq(2 * (n - b))
        with m.Default():
            m.d.comb += s.eq(0)
    return s


class IntMac(wiring.Component):
    """Plain n-bit MAC (golden ``int8_mac``): acc <= (clear ? 0 : acc) + x*w.

    Parameters
    ----------
    n : int
        Operand width, 2..16.

    Members
    -------
    x : In(n), w : In(signed(n)), clear : In(1), acc : Out(signed(acc_width))
    """

    def __init__(self, n: int = 8):
        self.n = _check_n(n)
        self.acc_width = acc_width_rule(self.n, ACC_K)
        super().__init__({"x": In(self.n), "w": In(signed(self.n)), "clear": In(1),
                          "acc": Out(signed(self.acc_width))})

    def elaborate(self, platform):
        m = Module()
        x = Signal(self.n)
        w = Signal(signed(self.n))
        clr = Signal()
        m.d.sync += [x.eq(self.x), w.eq(self.w), clr.eq(self.clear)]
        m.d.sync += self.acc.eq(Mux(clr, 0, self.acc) + x * w)
        return m


class NestedMac(wiring.Component):
    """Parallel nested MAC with a run-time precision input (golden ``nested_mac``).

    acc <= (clear ? 0 : acc) + (x_b * w_b << 2k), k = n - bits. ``variant="right"`` shifts
    the operands right and re-scales the product; ``variant="msb"`` keeps them MSB-aligned
    with the low k bits cleared (no re-scaling shifter, a full-width multiplier).

    Parameters
    ----------
    n : int
        Master width, 2..16.
    mode : "floor" or "round"
        Nested conversion rule (``round`` adds an adder and a saturation per operand).
    variant : "right" or "msb"
    candidates : iterable of int, optional
        Run-time precision set; defaults to :func:`default_candidates`.
    """

    def __init__(self, n: int = 8, mode="floor", variant: str = "right", candidates=None):
        self.n = _check_n(n)
        self.mode = NestedMode.parse(mode)
        if variant not in ("right", "msb"):
            raise DQTValueError(f"variant {variant!r} is not one of ['right', 'msb']")
        self.variant = variant
        self.candidates = _check_cands(self.n, candidates or default_candidates(self.n))
        self.acc_width = acc_width_rule(self.n, ACC_K)
        super().__init__({"x": In(self.n), "w": In(signed(self.n)),
                          "bits": In(bits_width(self.n)), "clear": In(1),
                          "acc": Out(signed(self.acc_width))})

    def elaborate(self, platform):
        m = Module()
        n = self.n
        x = Signal(n)
        w = Signal(signed(n))
        bits = Signal(bits_width(n))
        clr = Signal()
        m.d.sync += [x.eq(self.x), w.eq(self.w), bits.eq(self.bits), clr.eq(self.clear)]
        xb = _nested(m, x, n, bits, self.candidates, self.mode, False, self.variant)
        wb = _nested(m, w, n, bits, self.candidates, self.mode, True, self.variant)
        if self.variant == "right":
            prod = (xb * wb) << _kshift(m, bits, n, self.candidates)
        else:
            prod = xb * wb
        m.d.sync += self.acc.eq(Mux(clr, 0, self.acc) + prod)
        return m


class BitSerialMac(wiring.Component):
    """Bit-serial MSB-first nested MAC, floor mode (golden ``bitserial_mac``).

    A ``load`` cycle takes x and w, processes the weight's sign bit and adds the previous
    element's finished product (<< 2k) to the accumulator; the next b - 1 cycles process the
    remaining nested weight bits MSB first. The driver pulses ``load`` every b cycles, so a
    MAC costs b cycles and stopping after b bits is the b-bit product (nested codes). After the
    last element one more ``load`` (with x = w = 0) flushes the final product.
    """

    def __init__(self, n: int = 8, candidates=None):
        self.n = _check_n(n)
        self.candidates = _check_cands(self.n, candidates or default_candidates(self.n))
        self.acc_width = acc_width_rule(self.n, ACC_K)
        super().__init__({"x": In(self.n), "w": In(signed(self.n)),
                          "bits": In(bits_width(self.n)), "load": In(1), "clear": In(1),
                          "acc": Out(signed(self.acc_width))})

    def elaborate(self, platform):
        m = Module()
        n = self.n
        x = Signal(n)
        w = Signal(signed(n))
        bits = Signal(bits_width(n))
        load = Signal()
        clr = Signal()
        m.d.sync += [x.eq(self.x), w.eq(self.w), bits.eq(self.bits), load.eq(self.load),
                     clr.eq(self.clear)]
        xb = _nested(m, x, n, bits, self.candidates, NestedMode.FLOOR, False, "right")
        xs = Signal(n)                       # x_b of the element in flight
        ws = Signal(n)                       # remaining weight bits, MSB first
        p = Signal(signed(2 * n + 1))        # partial product x_b * w_b
        k2 = Signal(range(2 * n + 1))        # 2k of the element in flight
        k2_now = _kshift(m, bits, n, self.candidates)
        with m.If(load):
            m.d.sync += [xs.eq(xb), ws.eq(w.as_unsigned() << 1), k2.eq(k2_now),
                         p.eq(Mux(w[n - 1], -xb, 0)),
                         self.acc.eq(Mux(clr, 0, self.acc) + (p << k2))]
        with m.Else():
            m.d.sync += [ws.eq(ws << 1), p.eq((p << 1) + Mux(ws[n - 1], xs, 0))]
        return m


def _round_shift(v, S):
    return (v + (1 << (S - 1))) >> S if S > 0 else v


class PaperDot(wiring.Component):
    """Paper-literal dot product (golden ``paper_dot``): every term of
    M1 qx qw + M2 qx + M3 qw + M4 is rounded to output units (>> S, half up) and summed.

    Constants are configuration registers (held during a layer), ``m_bits`` wide signed; S is
    fixed at elaboration. The running sum is ``acc_width`` bits; the clamp to the output
    format happens once, in the requantizer, and is not part of this proxy.
    """

    def __init__(self, n: int = 8, m_bits: int = 16, S: int = 16):
        self.n = _check_n(n)
        self.m_bits = _check_n(m_bits, 2, 32)
        self.S = _check_n(S, 1, 40)
        self.acc_width = acc_width_rule(self.n, ACC_K) + 2
        ports = {"x": In(self.n), "w": In(signed(self.n)), "clear": In(1),
                 "acc": Out(signed(self.acc_width))}
        for i in range(1, 5):
            ports[f"m{i}"] = In(signed(self.m_bits if i < 4 else self.m_bits + self.n))
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        x = Signal(self.n)
        w = Signal(signed(self.n))
        clr = Signal()
        m.d.sync += [x.eq(self.x), w.eq(self.w), clr.eq(self.clear)]
        t = Signal(signed(self.m_bits + 2 * self.n + 3))
        m.d.comb += t.eq(self.m1 * x * w + self.m2 * x + self.m3 * w + self.m4)
        m.d.sync += self.acc.eq(Mux(clr, 0, self.acc) + _round_shift(t, self.S))
        return m


class FactoredDot(wiring.Component):
    """Factored dot product (golden ``factored_dot``): accumulate Σqx·qw, Σqx, Σqw exactly;
    ``done`` latches the corrected, rounded result M1 Σqxqw + M2 Σqx + M3 Σqw + K M4 >> S.

    The correction multipliers switch once per output (every K elements) while the three
    accumulators switch every element: that is the cost the reports compare with
    :class:`PaperDot`. Latency: ``y`` holds the result from 3 cycles after the ``done``
    element was presented.
    """

    def __init__(self, n: int = 8, m_bits: int = 16, S: int = 16):
        self.n = _check_n(n)
        self.m_bits = _check_n(m_bits, 2, 32)
        self.S = _check_n(S, 1, 40)
        self.acc_width = acc_width_rule(self.n, ACC_K)
        kb = (ACC_K - 1).bit_length()
        self.out_width = self.m_bits + self.acc_width + 2
        ports = {"x": In(self.n), "w": In(signed(self.n)), "clear": In(1), "done": In(1),
                 "k4": In(signed(self.m_bits + self.n + kb)),
                 "y": Out(signed(self.out_width))}
        for i in range(1, 4):
            ports[f"m{i}"] = In(signed(self.m_bits))
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        n = self.n
        x = Signal(n)
        w = Signal(signed(n))
        clr = Signal()
        done = Signal()
        m.d.sync += [x.eq(self.x), w.eq(self.w), clr.eq(self.clear), done.eq(self.done)]
        sxw = Signal(signed(self.acc_width))
        sx = Signal(n + (ACC_K - 1).bit_length())
        sw = Signal(signed(n + (ACC_K - 1).bit_length()))
        m.d.sync += [sxw.eq(Mux(clr, 0, sxw) + x * w), sx.eq(Mux(clr, 0, sx) + x),
                     sw.eq(Mux(clr, 0, sw) + w)]
        # ``done`` arrives with the last element, which reaches the sums one cycle later.
        done2 = Signal()
        m.d.sync += done2.eq(done)
        with m.If(done2):
            t = self.m1 * sxw + self.m2 * sx + self.m3 * sw + self.k4
            m.d.sync += self.y.eq(_round_shift(t, self.S))
        return m


class Requantizer(wiring.Component):
    """Dyadic requantizer (golden ``requantize``, rule ``dyadic``), two pipeline stages.

    y = clamp((acc * M + 2^(S-1)) >> S, 0 if relu else lo, 2^n - 1) with M an unsigned
    ``m_bits`` configuration value and S a run-time shift in [1, 2^s_bits - 1]. Latency 3
    cycles (input register, product register, output register).
    """

    def __init__(self, n: int = 8, acc_width: int = 32, m_bits: int = 32, s_bits: int = 6):
        self.n = _check_n(n)
        self.acc_width_in = _check_n(acc_width, 4, 48)
        self.m_bits = _check_n(m_bits, 2, 40)
        self.s_bits = _check_n(s_bits, 1, 6)
        super().__init__({"acc": In(signed(self.acc_width_in)), "m": In(self.m_bits),
                          "s": In(self.s_bits), "y": Out(self.n)})

    def elaborate(self, platform):
        m = Module()
        acc = Signal(signed(self.acc_width_in))
        M = Signal(self.m_bits)
        S = Signal(self.s_bits)
        m.d.sync += [acc.eq(self.acc), M.eq(self.m), S.eq(self.s)]
        prod = Signal(signed(self.acc_width_in + self.m_bits + 1))
        S1 = Signal(self.s_bits)
        m.d.sync += [prod.eq(acc * M), S1.eq(S)]
        # Round half up: add 2^(S-1), then an arithmetic shift by S (S >= 1 here).
        half = Signal(signed(self.acc_width_in + self.m_bits + 2))
        m.d.comb += half.eq(prod + ((Const(1, 2) << S1) >> 1))
        r = Signal(signed(self.acc_width_in + self.m_bits + 2))
        m.d.comb += r.eq(half >> S1)
        hi = (1 << self.n) - 1
        m.d.sync += self.y.eq(Mux(r < 0, 0, Mux(r > hi, hi, r)))
        return m


class Fp32Requant(wiring.Component):
    """The float baseline DQT removes (golden ``fp32_requant``): int32 -> fp32 (round to
    nearest even), fp32 multiply by a positive normal fp32 scale (RNE), fp32 -> int (RNE),
    clamp to the unsigned n-bit output range. Bit-exact with numpy float32; denormal
    products are not modelled (they round to 0 in the clamp anyway). Latency 4 cycles
    (input register, three stage registers).

    Members
    -------
    acc : In(signed(32)), scale : In(32) (IEEE-754 bits), y : Out(n)
    """

    def __init__(self, n: int = 8):
        self.n = _check_n(n)
        super().__init__({"acc": In(signed(32)), "scale": In(32), "y": Out(self.n)})

    def elaborate(self, platform):
        m = Module()
        n = self.n
        acc = Signal(signed(32))
        sc = Signal(32)
        m.d.sync += [acc.eq(self.acc), sc.eq(self.scale)]

        # Stage 1: int32 -> fp32 (sign, exponent, 24-bit significand with hidden one).
        neg = acc[31]
        mag = Signal(32)
        m.d.comb += mag.eq(Mux(neg, -acc, acc))
        lz = Signal(range(33))
        for i in range(32):      # priority: the highest set bit wins (last assignment)
            with m.If(mag[i]):
                m.d.comb += lz.eq(31 - i)
        with m.If(mag == 0):
            m.d.comb += lz.eq(32)
        norm = Signal(32)
        m.d.comb += norm.eq(mag << lz)
        top = norm[8:32]
        rnd = norm[7] & (norm[0:7].any() | top[0])
        sig1 = Signal(25)
        m.d.comb += sig1.eq(top + rnd)
        a_sig = Signal(24)
        a_exp = Signal(signed(8))                    # unbiased exponent of |acc|
        m.d.comb += [a_sig.eq(Mux(sig1[24], sig1[1:25], sig1[0:24])),
                     a_exp.eq(31 - lz + sig1[24])]
        r_sig, r_exp, r_neg, r_zero = Signal(24), Signal(signed(8)), Signal(), Signal()
        s_sig, s_exp = Signal(24), Signal(signed(9))
        m.d.sync += [r_sig.eq(a_sig), r_exp.eq(a_exp), r_neg.eq(neg), r_zero.eq(mag == 0),
                     s_sig.eq(Cat(sc[0:23], Const(1, 1))), s_exp.eq(sc[23:31] - 127)]

        # Stage 2: fp32 multiply, round to nearest even on the 48-bit significand product.
        P = Signal(48)
        m.d.comb += P.eq(r_sig * s_sig)
        hi_bit = P[47]
        keep = Mux(hi_bit, P[24:48], P[23:47])
        guard = Mux(hi_bit, P[23], P[22])
        sticky = Mux(hi_bit, P[0:23].any(), P[0:22].any())
        sig2 = Signal(25)
        m.d.comb += sig2.eq(keep + (guard & (sticky | keep[0])))
        p_sig = Signal(24)
        p_exp = Signal(signed(11))
        m.d.comb += [p_sig.eq(Mux(sig2[24], sig2[1:25], sig2[0:24])),
                     p_exp.eq(r_exp + s_exp + hi_bit + sig2[24])]
        q_sig, q_exp, q_neg, q_zero = Signal(24), Signal(signed(11)), Signal(), Signal()
        m.d.sync += [q_sig.eq(p_sig), q_exp.eq(p_exp), q_neg.eq(r_neg), q_zero.eq(r_zero)]

        # Stage 3: fp32 -> int with round half to even, then the clamp to [0, 2^n - 1].
        # value = q_sig * 2^(q_exp - 23); only q_exp in [-1, n-1] needs the rounding shifter.
        hi = (1 << n) - 1
        sh = Signal(range(26))
        m.d.comb += sh.eq(23 - q_exp)
        ext = Signal(25)
        m.d.comb += ext.eq(Cat(Const(0, 1), q_sig))   # one extra bit below for exponent -1
        ip = Signal(25)
        m.d.comb += ip.eq(ext >> (sh + 1))
        rem = Signal(25)
        m.d.comb += rem.eq(ext - (ip << (sh + 1)))
        half = Signal(26)
        m.d.comb += half.eq(Const(1, 26) << sh)
        up = (rem > half) | ((rem == half) & ip[0])
        iv = Signal(26)
        m.d.comb += iv.eq(ip + up)
        y = Signal(n)
        with m.If(q_neg | q_zero | (q_exp < -1)):
            m.d.comb += y.eq(0)
        with m.Elif(q_exp >= n):
            m.d.comb += y.eq(hi)
        with m.Else():
            m.d.comb += y.eq(Mux(iv > hi, hi, iv))
        m.d.sync += self.y.eq(y)
        return m


class NestedShiftReg(wiring.Component):
    """Registered nested shifter (golden ``nested_shift``): y <= shift(q, bits), right-aligned.

    The per-element cost of a precision transition in the integer datapath. Latency 2 cycles
    (input register, output register).
    """

    def __init__(self, n: int = 8, mode="floor", signed_: bool = False, candidates=None):
        self.n = _check_n(n)
        self.mode = NestedMode.parse(mode)
        self.signed_ = bool(signed_)
        self.candidates = _check_cands(self.n, candidates or default_candidates(self.n))
        shape = signed(self.n) if self.signed_ else unsigned(self.n)
        super().__init__({"q": In(shape), "bits": In(bits_width(self.n)), "y": Out(shape)})

    def elaborate(self, platform):
        m = Module()
        q = Signal.like(self.q)
        bits = Signal(bits_width(self.n))
        m.d.sync += [q.eq(self.q), bits.eq(self.bits)]
        out = _nested(m, q, self.n, bits, self.candidates, self.mode, self.signed_, "right")
        m.d.sync += self.y.eq(out)
        return m
