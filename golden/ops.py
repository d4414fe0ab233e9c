"""Reference implementations of the DQT integer operators (numpy int64, obviously correct).

One function per operator; each RTL component in ``rtl/`` has a function of the same name
here with the same parameters. All arithmetic is exact in int64 (the formats' declared widths
bound every intermediate well below 2^63); every rounding point is the one that
``docs/arithmetic.md`` specifies.
"""
from __future__ import annotations

import numpy as np

from . import defaults as D
from .formats import (
    AccumulatorSpec, AddConstants, DQTValueError, IntFormat, MulConstants, NestedMode,
    Overflow, RequantRule, check_bits,
)

__all__ = [
    "rshift_round",
    "nested_shift",
    "accumulate",
    "nested_mac",
    "bitserial_mac",
    "int_mac",
    "requantize",
    "int_mul",
    "int_add",
    "paper_dot",
    "factored_dot",
    "fp32_requant",
    "srdhm",
    "rounding_divide_by_pot",
]

_I64 = np.int64


def _as_i64(x, name="x"):
    a = np.asarray(x)
    if a.dtype.kind not in "iub":
        raise DQTValueError(f"{name} must hold integers, got dtype {a.dtype}")
    return a.astype(_I64, copy=False)


def rshift_round(v, S):
    """Round-half-up division by 2^S: (v + 2^(S-1)) >> S, arithmetic shift; S = 0 is identity."""
    v = _as_i64(v, "v")
    S = int(S)
    if S < 0:
        raise DQTValueError(f"shift S={S} must be >= 0")
    if S == 0:
        return v.copy()
    return (v + (_I64(1) << _I64(S - 1))) >> _I64(S)


def nested_shift(q, n: int, bits: int, mode=D.MODE, signed: bool = False):
    """Convert master-width codes q (n bits) to ``bits`` bits by the nested rule.

    floor: q >> k (arithmetic); round: clamp((q + 2^(k-1)) >> k, lo_b, hi_b), k = n - bits.
    """
    fmt = IntFormat(n, signed)
    check_bits(bits, n)
    mode = NestedMode.parse(mode)
    q = fmt.check(_as_i64(q, "q"), "q")
    k = n - bits
    if k == 0:
        return q.copy()
    if mode is NestedMode.FLOOR:
        return q >> _I64(k)
    out = fmt.at(bits)
    return np.clip((q + (_I64(1) << _I64(k - 1))) >> _I64(k), out.lo, out.hi)


def accumulate(exact, acc: AccumulatorSpec):
    """Apply the accumulator's overflow policy to exact sums.

    Returns ``(value, overflowed)``; ``overflowed`` is True exactly where the exact sum lies
    outside [-2^(W-1), 2^(W-1) - 1]. ``wrap`` reduces modulo 2^W (equal to wrapping every
    partial sum of a W-bit register); ``saturate`` clamps the exact final sum.
    """
    exact = _as_i64(exact, "exact")
    over = (exact < acc.lo) | (exact > acc.hi)
    if acc.overflow is Overflow.SATURATE:
        return np.clip(exact, acc.lo, acc.hi), over
    W = acc.width
    mod = _I64(1) << _I64(W)
    wrapped = ((exact - acc.lo) & (mod - 1)) + acc.lo
    return wrapped, over


def nested_mac(x, w, n: int, bits: int, acc: AccumulatorSpec, mode=D.MODE, bias=0,
               variant=D.ALIGNMENT):
    """Dot product of unsigned activation codes x and signed weight codes w at ``bits``.

    Both operands are nested-shifted to ``bits``; the result is in master units:
    acc = (sum_i x_b[i] * w_b[i]) << 2k + bias, then the overflow policy. ``variant``
    ("right": operands right-aligned; "msb": MSB-aligned with low bits masked) names the
    hardware organisation; both produce the same value by construction. The last axis is K.
    Returns ``(value, overflowed)``.
    """
    if variant not in ("right", "msb"):
        raise DQTValueError(f"variant {variant!r} is not one of ['right', 'msb']")
    xb = nested_shift(x, n, bits, mode, signed=False)
    wb = nested_shift(w, n, bits, mode, signed=True)
    k = n - bits
    if variant == "right":
        s = (xb * wb).sum(axis=-1) << _I64(2 * k)
    else:
        s = ((xb << _I64(k)) * (wb << _I64(k))).sum(axis=-1)
    return accumulate(s + _as_i64(bias, "bias"), acc)


def bitserial_mac(x, w, n: int, bits: int, acc: AccumulatorSpec, mode=D.MODE, bias=0):
    """Bit-serial MSB-first nested MAC: the same value as :func:`nested_mac`.

    The hardware consumes the nested weight's bits MSB first for ``bits`` cycles; stopping
    after b bits of a nested code is the b-bit code, so the result equals the parallel MAC.
    """
    return nested_mac(x, w, n, bits, acc, mode, bias, "right")


def fusion_group(n: int, bits: int) -> int:
    """Side g of the square group of 2-bit bricks one product takes in the fusion MAC's
    n/2 x n/2 grid at ``bits``: a b-bit code is ceil(b/2) digits, g the next power of two."""
    if n not in (4, 8):
        raise DQTValueError(f"fusion MAC n={n!r} is outside the allowed values [4, 8]")
    check_bits(bits, n)
    digits, g = -(-int(bits) // 2), 1
    while g < digits:
        g *= 2
    return g


def fusion_products_per_beat(n: int, bits: int) -> int:
    """Products per beat of the fusion MAC at ``bits``: (n/2 / g)^2 groups fit the grid
    (n = 8: 16 at b <= 2, 4 at b <= 4, 1 above)."""
    return (n // 2 // fusion_group(n, bits)) ** 2


def fusion_beats(x, w, n: int, bits: int, fill=None, width: int | None = None):
    """A packet's K terms as fusion-MAC beats: ``(x, w)`` int64 arrays [ceil(K / P),
    (n/2)^2] with P = ``fusion_products_per_beat(n, bits)`` terms per beat in lanes 0..P-1
    (the last beat zero-padded). The lanes beyond P are zero, or, with ``fill`` (a numpy
    Generator), random codes of ``width`` bits (default n) that the MAC must ignore."""
    x, w = _as_i64(x, "x").reshape(-1), _as_i64(w, "w").reshape(-1)
    P, lanes = fusion_products_per_beat(n, bits), (n // 2) ** 2
    nb = -(-x.size // P)
    xs, ws = np.zeros((nb, lanes), _I64), np.zeros((nb, lanes), _I64)
    xs[:, :P].flat[:x.size] = x
    ws[:, :P].flat[:w.size] = w
    if fill is not None and P < lanes:
        wd = width or n
        xs[:, P:] = fill.integers(0, 1 << wd, (nb, lanes - P))
        ws[:, P:] = fill.integers(-(1 << (wd - 1)), 1 << (wd - 1), (nb, lanes - P))
    return xs, ws


FUSION_INPUTS = ("master", "nested")


def fusion_mac(x, w, n: int, bits: int, acc: AccumulatorSpec, mode=D.MODE, bias=0,
               inputs: str = "master"):
    """Precision-scalable (fusion) nested MAC: the same value as :func:`nested_mac`.

    The hardware takes the K terms ``fusion_products_per_beat(n, bits)`` per beat and forms
    each product from 2-bit digit products; the sum of digit products shifted to their
    places is the product, so the dot product, and the result, equal the parallel MAC's.
    ``inputs="nested"``: x and w are already the right-aligned b-bit codes (as bit-plane
    storage delivers them; ``mode`` is then unused): acc = (sum x w) << 2(n - b) + bias.
    """
    fusion_products_per_beat(n, bits)
    if inputs == "master":
        return nested_mac(x, w, n, bits, acc, mode, bias, "right")
    if inputs != "nested":
        raise DQTValueError(f"inputs {inputs!r} is not one of {list(FUSION_INPUTS)}")
    xb, wb = _as_i64(x, "x"), _as_i64(w, "w")
    IntFormat(bits, False).check(xb, "x")
    IntFormat(bits, True).check(wb, "w")
    s = (xb * wb).sum(axis=-1) << _I64(2 * (n - bits))
    return accumulate(s + _as_i64(bias, "bias"), acc)


def int_mac(x, w, acc: AccumulatorSpec, bias=0, n: int = 8):
    """Plain fixed-precision MAC (the reference design): sum x*w + bias, no nesting."""
    IntFormat(n, False).check(_as_i64(x), "x")
    IntFormat(n, True).check(_as_i64(w), "w")
    s = (_as_i64(x) * _as_i64(w)).sum(axis=-1)
    return accumulate(s + _as_i64(bias, "bias"), acc)


def srdhm(a, b):
    """gemmlowp SaturatingRoundingDoublingHighMul on int32 values (exact int64 emulation)."""
    a = _as_i64(a, "a")
    b = _as_i64(b, "b")
    i32min, i32max = -(1 << 31), (1 << 31) - 1
    if a.size and (a.min() < i32min or a.max() > i32max):
        raise DQTValueError("srdhm operand a leaves the int32 range")
    ab = a * b
    nudge = np.where(ab >= 0, _I64(1 << 30), _I64(1 - (1 << 30)))
    t = ab + nudge
    # C integer division truncates toward zero.
    q = np.where(t >= 0, t >> _I64(31), -((-t) >> _I64(31)))
    return np.where((a == i32min) & (b == i32min), _I64(i32max), q)


def rounding_divide_by_pot(x, exponent: int):
    """gemmlowp RoundingDivideByPOT: round half away from zero division by 2^exponent."""
    x = _as_i64(x, "x")
    if not 0 <= exponent <= 31:
        raise DQTValueError(f"exponent={exponent} outside [0, 31]")
    mask = _I64((1 << exponent) - 1)
    remainder = x & mask
    threshold = (mask >> _I64(1)) + np.where(x < 0, _I64(1), _I64(0))
    return (x >> _I64(exponent)) + np.where(remainder > threshold, _I64(1), _I64(0))


def requantize(acc, M, S: int, out: IntFormat, zy: int = 0, rule="dyadic", lo=None, hi=None):
    """Map accumulator values to output codes.

    dyadic:   y = clamp(((acc*M + 2^(S-1)) >> S) + zy, lo, hi)
    gemmlowp: y = clamp(RDBP(SRDHM(acc, M), S) + zy, lo, hi), M in [2^30, 2^31), acc int32.
    ``lo``/``hi`` default to the output format's range; a fused ReLU is lo = zy and a PACT
    clip is hi = the clip code. ``M`` broadcasts against ``acc`` (per-channel on the last axis).
    """
    rule = RequantRule.parse(rule)
    acc = _as_i64(acc, "acc")
    M = _as_i64(M, "M")
    lo = out.lo if lo is None else max(int(lo), out.lo)
    hi = out.hi if hi is None else min(int(hi), out.hi)
    if lo > hi:
        raise DQTValueError(f"clamp range [{lo}, {hi}] is empty")
    if rule is RequantRule.DYADIC:
        y = rshift_round(acc * M, S)
    else:
        if M.size and (M.min() < (1 << 30) or M.max() > (1 << 31) - 1):
            raise DQTValueError("gemmlowp multiplier M must lie in [2^30, 2^31 - 1]")
        if acc.size and (acc.min() < -(1 << 31) or acc.max() > (1 << 31) - 1):
            raise DQTValueError("gemmlowp requantization needs int32 accumulators")
        y = rounding_divide_by_pot(srdhm(acc, M), S)
    return np.clip(y + _I64(zy), lo, hi)


def int_mul(q1, q2, c: MulConstants):
    """Integer multiply: y = clamp(round((M1 q1 q2 + M2 q1 + M3 q2 + M4) / 2^S))."""
    q1 = _as_i64(q1, "q1")
    q2 = _as_i64(q2, "q2")
    t = c.M1 * q1 * q2 + c.M2 * q1 + c.M3 * q2 + _I64(c.M4)
    return np.clip(rshift_round(t, c.S), c.out.lo, c.out.hi)


def int_add(q1, q2, c: AddConstants):
    """Integer add: y = clamp(round((M1 q1 + M2 q2 + M3) / 2^S))."""
    q1 = _as_i64(q1, "q1")
    q2 = _as_i64(q2, "q2")
    return np.clip(rshift_round(c.M1 * q1 + c.M2 * q2 + _I64(c.M3), c.S), c.out.lo, c.out.hi)


def paper_dot(qx, qw, c: MulConstants, zy: int = 0):
    """Paper-literal dot product: every term rounded to output units, then summed.

    y = clamp(zy + sum_i round((M1 qx_i qw_i + M2 qx_i + M3 qw_i + M4) / 2^S)).
    ``c`` carries no output zero point (build it with zy = 0); the last axis is K.
    """
    qx = _as_i64(qx, "qx")
    qw = _as_i64(qw, "qw")
    t = c.M1 * qx * qw + c.M2 * qx + c.M3 * qw + _I64(c.M4)
    return np.clip(rshift_round(t, c.S).sum(axis=-1) + _I64(zy), c.out.lo, c.out.hi)


def factored_dot(qx, qw, c: MulConstants, zy: int = 0):
    """Factored dot product: accumulate exactly, correct once, round once.

    y = clamp(zy + round((M1 sum qx qw + M2 sum qx + M3 sum qw + K M4) / 2^S)).
    """
    qx = _as_i64(qx, "qx")
    qw = _as_i64(qw, "qw")
    K = qx.shape[-1]
    t = (c.M1 * (qx * qw).sum(axis=-1) + c.M2 * qx.sum(axis=-1) + c.M3 * qw.sum(axis=-1)
         + _I64(K * c.M4))
    return np.clip(rshift_round(t, c.S) + _I64(zy), c.out.lo, c.out.hi)


def fp32_requant(acc, scale, out: IntFormat, zy: int = 0):
    """The float baseline DQT removes: int -> fp32, multiply by a fp32 scale, round to
    nearest even, add the zero point, clamp. Bit-exact with numpy float32 (denormals are not
    modelled by the RTL; scales and accumulators here never produce them).
    """
    acc = _as_i64(acc, "acc")
    f = acc.astype(np.float32) * np.float32(scale)
    r = np.rint(f).astype(np.float64)  # rint: round half to even
    r = np.clip(r + zy, out.lo, out.hi)
    return r.astype(_I64)
