"""Property tests of the golden operators against exact rational arithmetic.

Each operator gets >= 1000 hypothesis examples; strategies put weight on the extremes of every
width (hypothesis shrinks towards and samples boundaries of integer ranges by itself, and the
``_code`` strategy adds the format's lo/hi explicitly).
"""
from fractions import Fraction
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from golden.formats import (
    AccumulatorSpec, AddConstants, DQTValueError, Dyadic, IntFormat, MulConstants, acc_width_rule,
)
from golden import ops

N_EX = settings(max_examples=1000, deadline=None)


def _floor_half_up(f: Fraction) -> int:
    """Round half up: floor(f + 1/2) (exact)."""
    return math.floor(f + Fraction(1, 2))


def _half_away(f: Fraction) -> int:
    s = -1 if f < 0 else 1
    return s * math.floor(abs(f) + Fraction(1, 2))


def _clamp(v, lo, hi):
    return max(lo, min(hi, v))


@st.composite
def _code(draw, n, signed):
    fmt = IntFormat(n, signed)
    return draw(st.one_of(st.sampled_from([fmt.lo, fmt.hi, 0, fmt.lo + 1, fmt.hi - 1][: (fmt.hi - fmt.lo + 1)]),
                          st.integers(fmt.lo, fmt.hi)))


@st.composite
def _shift_case(draw):
    n = draw(st.integers(1, 16))
    bits = draw(st.integers(1, n))
    signed = draw(st.booleans())
    q = draw(_code(n, signed))
    return n, bits, signed, q


@N_EX
@given(_shift_case())
def test_floor_shift_is_floor_division(case):
    n, bits, signed, q = case
    got = int(ops.nested_shift(np.array([q]), n, bits, "floor", signed)[0])
    assert got == q // (1 << (n - bits))
    assert IntFormat(bits, signed).contains(got)


@N_EX
@given(_shift_case())
def test_round_shift_is_eq4(case):
    """Paper Eq. 4: q_b = clip(round_half_up(q_n / 2^k), lo_b, hi_b)."""
    n, bits, signed, q = case
    k = n - bits
    out = IntFormat(bits, signed)
    want = _clamp(_floor_half_up(Fraction(q, 1 << k)), out.lo, out.hi)
    assert int(ops.nested_shift(np.array([q]), n, bits, "round", signed)[0]) == want


@N_EX
@given(st.data())
def test_floor_nesting(data):
    """Shift by a then by b equals a shift by a + b (floor mode only)."""
    n = data.draw(st.integers(2, 16))
    a = data.draw(st.integers(0, n - 1))
    b = data.draw(st.integers(0, n - a - 1))
    signed = data.draw(st.booleans())
    q = np.array([data.draw(_code(n, signed))])
    once = ops.nested_shift(q, n, n - a - b, "floor", signed)
    twice = ops.nested_shift(ops.nested_shift(q, n, n - a, "floor", signed), n - a, n - a - b, "floor", signed)
    assert once[0] == twice[0]


@N_EX
@given(st.integers(-(1 << 40), 1 << 40), st.integers(0, 20))
def test_rshift_round(v, S):
    assert int(ops.rshift_round(np.array([v]), S)[0]) == _floor_half_up(Fraction(v, 1 << S))


@N_EX
@given(st.integers(2, 40), st.sampled_from(["wrap", "saturate"]), st.data())
def test_accumulate_overflow_detection(width, policy, data):
    spec = AccumulatorSpec(width, policy)
    lim = 1 << (width + 2)
    v = data.draw(st.one_of(st.sampled_from([spec.lo, spec.hi, spec.lo - 1, spec.hi + 1]),
                            st.integers(-lim, lim)))
    got, over = ops.accumulate(np.array([v]), spec)
    exact_outside = v < spec.lo or v > spec.hi
    assert bool(over[0]) == exact_outside
    if policy == "saturate":
        assert got[0] == _clamp(v, spec.lo, spec.hi)
    else:
        assert got[0] % (1 << width) == v % (1 << width) and spec.lo <= got[0] <= spec.hi


@st.composite
def _mac_case(draw):
    n = draw(st.integers(2, 16))
    bits = draw(st.integers(1, n))
    K = draw(st.integers(1, 12))
    x = [draw(_code(n, False)) for _ in range(K)]
    w = [draw(_code(n, True)) for _ in range(K)]
    width = draw(st.integers(2, acc_width_rule(n, K) + 2))
    policy = draw(st.sampled_from(["wrap", "saturate"]))
    mode = draw(st.sampled_from(["floor", "round"]))
    bias = draw(st.integers(-(1 << 20), 1 << 20))
    return n, bits, x, w, AccumulatorSpec(width, policy), mode, bias


@N_EX
@given(_mac_case(), st.sampled_from(["right", "msb"]))
def test_nested_mac_exact(case, variant):
    n, bits, x, w, spec, mode, bias = case
    k = n - bits
    xb = [int(v) for v in ops.nested_shift(np.array(x), n, bits, mode, False)]
    wb = [int(v) for v in ops.nested_shift(np.array(w), n, bits, mode, True)]
    exact = sum(a * b for a, b in zip(xb, wb)) * (1 << (2 * k)) + bias
    got, over = ops.nested_mac(np.array(x), np.array(w), n, bits, spec, mode, bias, variant)
    assert bool(over) == (exact < spec.lo or exact > spec.hi)
    want = _clamp(exact, spec.lo, spec.hi) if spec.overflow.value == "saturate" else \
        ((exact - spec.lo) % (1 << spec.width)) + spec.lo
    assert int(got) == want
    assert int(ops.bitserial_mac(np.array(x), np.array(w), n, bits, spec, mode, bias)[0]) == want


def test_full_precision_mac_is_int_mac():
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (500, 64))
    w = rng.integers(-128, 128, (500, 64))
    spec = AccumulatorSpec(acc_width_rule(8, 64))
    a, _ = ops.nested_mac(x, w, 8, 8, spec)
    b, _ = ops.int_mac(x, w, spec)
    assert np.array_equal(a, b)


@N_EX
@given(st.integers(-(1 << 31), (1 << 31) - 1), st.integers(0, (1 << 20) - 1), st.integers(0, 40),
       st.integers(0, 255), st.data())
def test_requantize_dyadic(acc, M, S, zy, data):
    out = IntFormat(8, False)
    lo = data.draw(st.integers(0, 255))
    hi = data.draw(st.integers(lo, 255))
    got = int(ops.requantize(np.array([acc]), M, S, out, zy, "dyadic", lo, hi)[0])
    assert got == _clamp(_floor_half_up(Fraction(acc * M, 1 << S)) + zy, lo, hi)


@N_EX
@given(st.one_of(st.sampled_from([-(1 << 31), (1 << 31) - 1, 0, -1, 1]), st.integers(-(1 << 31), (1 << 31) - 1)),
       st.integers(1 << 30, (1 << 31) - 1), st.integers(0, 31), st.integers(-128, 127))
def test_requantize_gemmlowp(acc, M, shift, zy):
    """TFLite MultiplyByQuantizedMultiplier. gemmlowp's SRDHM adds a sign-dependent nudge and
    then truncates toward zero, which works out to round half *up* (toward +inf) of a*b / 2^31;
    RoundingDivideByPOT rounds half away from zero."""
    out = IntFormat(8, True)
    hi_mul = _floor_half_up(Fraction(acc * M, 1 << 31))  # no saturation case: M > 0
    want = _clamp(_half_away(Fraction(hi_mul, 1 << shift)) + zy, out.lo, out.hi)
    assert int(ops.requantize(np.array([acc]), M, shift, out, zy, "gemmlowp")[0]) == want


def test_srdhm_saturation_corner():
    # The one input pair whose doubled product overflows int32 (gemmlowp's special case).
    m = -(1 << 31)
    assert int(ops.srdhm(np.array([m]), np.array([m]))[0]) == (1 << 31) - 1


@st.composite
def _mul_consts(draw, out_signed=False, zy0=False):
    S = draw(st.integers(0, 24))
    lim = (1 << 23) - 1
    Ms = [draw(st.integers(-lim, lim)) for _ in range(4)]
    return MulConstants(*Ms, S, IntFormat(8, out_signed), m_bits=24)


@N_EX
@given(_mul_consts(), st.integers(0, 255), st.integers(-128, 127))
def test_int_mul_exact(c, q1, q2):
    t = c.M1 * q1 * q2 + c.M2 * q1 + c.M3 * q2 + c.M4
    want = _clamp(_floor_half_up(Fraction(t, 1 << c.S)), c.out.lo, c.out.hi)
    assert int(ops.int_mul(np.array([q1]), np.array([q2]), c)[0]) == want


@N_EX
@given(st.integers(-(1 << 23), 1 << 23), st.integers(-(1 << 23), 1 << 23), st.integers(-(1 << 30), 1 << 30),
       st.integers(0, 24), st.integers(0, 255), st.integers(0, 255))
def test_int_add_exact(M1, M2, M3, S, q1, q2):
    c = AddConstants(M1, M2, M3, S, IntFormat(8, False))
    want = _clamp(_floor_half_up(Fraction(M1 * q1 + M2 * q2 + M3, 1 << S)), 0, 255)
    assert int(ops.int_add(np.array([q1]), np.array([q2]), c)[0]) == want


@N_EX
@given(_mul_consts(out_signed=True), st.lists(st.tuples(st.integers(0, 255), st.integers(-128, 127)),
                                              min_size=1, max_size=16), st.integers(-128, 127))
def test_paper_and_factored_dot_exact(c, pairs, zy):
    qx = np.array([p[0] for p in pairs])
    qw = np.array([p[1] for p in pairs])
    per = sum(_floor_half_up(Fraction(c.M1 * a * b + c.M2 * a + c.M3 * b + c.M4, 1 << c.S)) for a, b in pairs)
    tot = sum(c.M1 * a * b + c.M2 * a + c.M3 * b + c.M4 for a, b in pairs)
    assert int(ops.paper_dot(qx, qw, c, zy)) == _clamp(per + zy, c.out.lo, c.out.hi)
    assert int(ops.factored_dot(qx, qw, c, zy)) == _clamp(_floor_half_up(Fraction(tot, 1 << c.S)) + zy,
                                                         c.out.lo, c.out.hi)


@N_EX
@given(st.integers(-(1 << 31), (1 << 31) - 1),
       st.floats(min_value=2.0 ** -20, max_value=4.0, allow_nan=False, allow_infinity=False, width=32),
       st.integers(-128, 127))
def test_fp32_requant_is_ieee_single(acc, scale, zy):
    """int -> fp32 (RNE), one IEEE single multiply (the binary64 product of two singles is exact,
    rounding it to single is the IEEE result), round half to even, add zero point, clamp."""
    out = IntFormat(8, True)
    a32 = float(np.float32(acc))
    prod = float(np.float32(a32 * float(np.float32(scale))))
    want = _clamp(round(prod) + zy, out.lo, out.hi)  # Python round(): half to even
    assert int(ops.fp32_requant(np.array([acc]), scale, out, zy)[0]) == want


def test_dyadic_from_real():
    d = Dyadic.from_real(0.0123, m_bits=16)
    assert abs(d.value - 0.0123) <= 2.0 ** -(d.S + 1)
    assert 1 << 14 <= d.M < 1 << 15  # normalised: uses the full 16-bit signed width


@pytest.mark.parametrize("bad", [
    lambda: ops.nested_shift(np.array([256]), 8, 4),         # code above the unsigned 8-bit range
    lambda: ops.nested_shift(np.array([3]), 8, 9),           # bits above n
    lambda: ops.nested_shift(np.array([3]), 8, 0),           # bits below 1
    lambda: ops.nested_shift(np.array([3]), 8, 4, "ceil"),   # unknown mode
    lambda: IntFormat(17, True),                             # n above the supported maximum
    lambda: AccumulatorSpec(70),                             # accumulator wider than int64 headroom
    lambda: ops.requantize(np.array([1]), 1 << 29, 3, IntFormat(8, True), rule="gemmlowp"),
])
def test_bad_values_are_rejected_with_the_range(bad):
    with pytest.raises(DQTValueError) as e:
        bad()
    msg = str(e.value)
    assert any(ch.isdigit() for ch in msg) or "one of" in msg
