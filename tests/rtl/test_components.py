# amaranth: UnusedElaboratable=no
"""Every RTL operator against its golden function, in Amaranth's own simulator.

Expected values always come from ``golden.ops``; random vectors are seeded and include
the format extremes. Each test asserts equality on every element and records how many
vectors it checked (``record_property("vectors", ...)``).
"""
from __future__ import annotations

import struct

import numpy as np
import pytest
from amaranth.hdl import signed, unsigned

from golden.formats import AccumulatorSpec, AddConstants, DQTValueError, IntFormat, \
    MulConstants, acc_width_rule
from golden import ops
from rtl.accumulate import Accumulate
from rtl.bitserial_mac import BitserialMac
from rtl.fusion_mac import FusionMac
from rtl.fp32_requant import Fp32Requant
from rtl.int_mac import IntMac
from rtl.nested_mac import NestedMac
from rtl.operators import FactoredDot, IntAdd, IntMul, PaperDot
from rtl.requantize import Requantize
from rtl.nested_shift import NestedShift

from .harness import as_int, run_stream


def _codes(rng, n, signed, size):
    """Uniform codes with the extremes forced into the first entries (corner cases)."""
    lo, hi = (-(1 << (n - 1)), (1 << (n - 1)) - 1) if signed else (0, (1 << n) - 1)
    a = rng.integers(lo, hi + 1, size=size)
    flat = a.reshape(-1)
    corners = [lo, hi, 0, lo + 1, hi - 1]
    flat[:min(len(corners), flat.size)] = corners[:flat.size]
    return a


# ----------------------------------------------------------------------------- shifter
@pytest.mark.parametrize("n", [8, 4])
@pytest.mark.parametrize("mode", ["floor", "round"])
@pytest.mark.parametrize("signed", [False, True])
def test_nested_shift(n, mode, signed, record_property):
    rng = np.random.default_rng(n * 10 + signed)
    dut = NestedShift(n, mode, signed)
    lo, hi = (-(1 << (n - 1)), (1 << (n - 1)) - 1) if signed else (0, (1 << n) - 1)
    # exhaustive over codes x precisions (n = 4) or every code at every precision (n = 8)
    q = np.repeat(np.arange(lo, hi + 1), n)
    b = np.tile(np.arange(1, n + 1), hi - lo + 1)
    perm = rng.permutation(q.size)  # interleave precisions: every beat may change b
    q, b = q[perm], b[perm]
    beats = [{"q": int(x), "bits": int(y)} for x, y in zip(q, b)]
    outs, _ = run_stream(dut, beats, len(beats), seed=n)
    exp = np.empty(q.size, dtype=np.int64)
    for bits in range(1, n + 1):
        sel = b == bits
        exp[sel] = ops.nested_shift(q[sel], n, bits, mode, signed)
    got = np.array([as_int(o) for o in outs])
    bad = np.nonzero(got != exp)[0]
    assert bad.size == 0, (f"first mismatch at {bad[0]}: q={q[bad[0]]} bits={b[bad[0]]} "
                           f"got {got[bad[0]]} expected {exp[bad[0]]}")
    record_property("vectors", int(q.size))


def test_nested_shift_rejects_bad_params():
    from golden.formats import DQTValueError
    with pytest.raises(DQTValueError, match="n=1 is outside"):
        NestedShift(n=1)
    with pytest.raises(DQTValueError, match="nested mode 'ceil'"):
        NestedShift(mode="ceil")
    with pytest.raises(DQTValueError, match="candidate bits=9"):
        NestedShift(n=8, candidates=[2, 9])


# ----------------------------------------------------------------------------- MACs
def _packets(rng, n, pes, n_packets, acc_width, bits_choices, max_beats=4):
    """Random dot-product packets; each packet has its own precision and bias."""
    packets = []
    for p in range(n_packets):
        beats = int(rng.integers(1, max_beats + 1))
        K = beats * pes
        x = _codes(rng, n, False, K)
        w = _codes(rng, n, True, K)
        if p % 5 == 1:   # extreme packet: every product at its most negative value
            x[:] = (1 << n) - 1
            w[:] = -(1 << (n - 1))
        lim = 1 << (acc_width - 1)
        bias = int(rng.integers(-lim, lim)) if p % 3 else int(rng.integers(-1000, 1000))
        bits = int(bits_choices[p % len(bits_choices)])
        packets.append((x, w, bias, bits))
    return packets


def _mac_beats(packets, pes, with_bits=True):
    beats = []
    for x, w, bias, bits in packets:
        nb = x.size // pes
        for j in range(nb):
            d = {"x": [int(v) for v in x[j * pes:(j + 1) * pes]],
                 "w": [int(v) for v in w[j * pes:(j + 1) * pes]],
                 "bias": bias, "first": int(j == 0), "last": int(j == nb - 1)}
            if with_bits:
                d["bits"] = bits
            beats.append(d)
    return beats


def _check_mac_outputs(outs, packets, golden_fn):
    for idx, (o, (x, w, bias, bits)) in enumerate(zip(outs, packets)):
        val, over = golden_fn(x, w, bias, bits)
        got = (int(o.acc), int(o.overflow))
        assert got == (int(val), int(over)), (
            f"packet {idx}: bits={bits} bias={bias} K={x.size} got {got} expected "
            f"{(int(val), int(over))}\n x={x.tolist()}\n w={w.tolist()}")


MAC_CASES = [  # (mode, overflow, acc_width): the declared width is tight in some cases so
    ("floor", "wrap", None),        # that the wrap/saturate paths and the flag are exercised
    ("round", "saturate", 18),
    ("floor", "saturate", 20),
    ("round", "wrap", 17),
]


@pytest.mark.parametrize("variant", ["right", "msb"])
@pytest.mark.parametrize("mode,overflow,acc_width", MAC_CASES)
def test_nested_mac(variant, mode, overflow, acc_width, record_property):
    n, pes = 8, 4
    dut = NestedMac(n, pes, acc_width, max_terms=64, mode=mode, variant=variant,
                    overflow=overflow)
    rng = np.random.default_rng(7)
    # precision changes on every packet (mid-stream), all 8 precisions covered
    packets = _packets(rng, n, pes, 48, dut.acc_width, [1, 2, 3, 4, 5, 6, 7, 8, 2, 8, 4, 6])
    outs, _ = run_stream(dut, _mac_beats(packets, pes), len(packets), seed=3)
    spec = AccumulatorSpec(dut.acc_width, overflow)
    _check_mac_outputs(outs, packets, lambda x, w, b, bits: ops.nested_mac(
        x, w, n, bits, spec, mode, b, variant))
    assert any(ops.nested_mac(x, w, n, bits, spec, mode, b)[1] for x, w, b, bits in packets) \
        or acc_width is None
    record_property("vectors", len(packets))


def fusion_beats(packets, n, rng, mode="floor", inputs="master"):
    """Beats of the fusion MAC (golden ``fusion_beats``): each packet's terms P(bits) per
    beat, the other lanes random (the MAC must ignore them); ``inputs="nested"``: the terms
    as their b-bit codes (golden ``nested_shift``), the other lanes random b-bit codes."""
    beats = []
    for x, w, bias, bits in packets:
        wid = bits if inputs == "nested" else n
        if inputs == "nested":
            x = ops.nested_shift(x, n, bits, mode)
            w = ops.nested_shift(w, n, bits, mode, signed=True)
        xs, ws = ops.fusion_beats(x, w, n, bits, fill=rng, width=wid)
        for j in range(len(xs)):
            beats.append({"x": [int(v) for v in xs[j]], "w": [int(v) for v in ws[j]],
                          "bits": bits, "bias": bias, "first": int(j == 0),
                          "last": int(j == len(xs) - 1)})
    return beats


@pytest.mark.parametrize("inputs", ["master", "nested"])
@pytest.mark.parametrize("n", [8, 4])
@pytest.mark.parametrize("mode,overflow,acc_width", MAC_CASES)
def test_fusion_mac(n, mode, overflow, acc_width, inputs, record_property):
    """Every precision 1..n, changing from packet to packet, both nested modes, extreme and
    random codes, unused lanes random: golden ``fusion_mac`` on each packet's terms (with
    b-bit inputs, the master codes' nested shift goes in, and golden ``fusion_mac`` on those
    codes gives the same value)."""
    dut = FusionMac(n, acc_width, max_terms=64, mode=mode, overflow=overflow, inputs=inputs)
    rng = np.random.default_rng(17 + n)
    bits_seq = list(range(1, n + 1)) + [2, n, 4 if n == 8 else 1, 1]
    packets = []
    for k, bits in enumerate(bits_seq * 3):
        P = ops.fusion_products_per_beat(n, bits)
        packets += _packets(rng, n, P, 1, dut.acc_width, [bits])
        if k % 4 == 1:  # every product at its most negative value
            x, w, bias, b = packets[-1]
            packets[-1] = (np.full_like(x, (1 << n) - 1), np.full_like(w, -(1 << (n - 1))),
                           bias, b)
    outs, _ = run_stream(dut, fusion_beats(packets, n, rng, mode, inputs), len(packets),
                         seed=5)
    spec = AccumulatorSpec(dut.acc_width, overflow)
    _check_mac_outputs(outs, packets, lambda x, w, b, bits: ops.fusion_mac(
        x, w, n, bits, spec, mode, b))
    for x, w, b, bits in packets[:8]:  # the two golden forms agree
        xb, wb = ops.nested_shift(x, n, bits, mode), ops.nested_shift(w, n, bits, mode, True)
        assert ops.fusion_mac(xb, wb, n, bits, spec, "round", b, "nested") == \
            ops.fusion_mac(x, w, n, bits, spec, mode, b)
    record_property("vectors", len(packets))


def test_fusion_products_per_beat():
    """Directed: 16 / 4 / 1 products per beat at n = 8 (2-bit bricks, square groups)."""
    assert [ops.fusion_products_per_beat(8, b) for b in range(1, 9)] == [16, 16, 4, 4, 1, 1, 1, 1]
    assert [ops.fusion_products_per_beat(4, b) for b in range(1, 5)] == [4, 4, 1, 1]
    with pytest.raises(DQTValueError, match="fusion MAC n=6"):
        ops.fusion_products_per_beat(6, 2)
    with pytest.raises(DQTValueError, match="fusion_mac n=6"):
        FusionMac(6)


@pytest.mark.parametrize("mode,overflow,acc_width", MAC_CASES[:2])
def test_bitserial_mac(mode, overflow, acc_width, record_property):
    n, pes = 8, 4
    dut = BitserialMac(n, pes, acc_width, max_terms=64, mode=mode, overflow=overflow)
    rng = np.random.default_rng(11)
    packets = _packets(rng, n, pes, 40, dut.acc_width, [8, 1, 4, 2, 7, 6, 3, 5])
    outs, cycles = run_stream(dut, _mac_beats(packets, pes), len(packets), seed=5,
                              p_valid=1.0, p_ready=1.0)
    spec = AccumulatorSpec(dut.acc_width, overflow)
    _check_mac_outputs(outs, packets, lambda x, w, b, bits: ops.bitserial_mac(
        x, w, n, bits, spec, mode, b))
    # b cycles per beat and nothing else: total = sum over beats of b (+ drain latency)
    busy = sum((x.size // pes) * bits for x, _, _, bits in packets)
    assert busy <= cycles <= busy + 4, (busy, cycles)
    record_property("vectors", len(packets))


@pytest.mark.parametrize("mode", ["floor", "round"])
def test_parallel_equals_bitserial_every_precision(mode, record_property):
    """The parallel (both variants) and bit-serial MACs agree for every precision 1..n."""
    n, pes = 8, 2
    rng = np.random.default_rng(21)
    W = acc_width_rule(n, 64)
    packets = []
    for bits in range(1, n + 1):
        packets += [(x, w, b, bits) for x, w, b, _ in _packets(rng, n, pes, 4, W, [bits], 3)]
    beats = _mac_beats(packets, pes)
    results = {}
    for name, dut in [("right", NestedMac(n, pes, max_terms=64, mode=mode)),
                      ("msb", NestedMac(n, pes, max_terms=64, mode=mode, variant="msb")),
                      ("serial", BitserialMac(n, pes, max_terms=64, mode=mode))]:
        outs, _ = run_stream(dut, beats, len(packets), seed=1)
        results[name] = [(int(o.acc), int(o.overflow)) for o in outs]
    assert results["right"] == results["msb"] == results["serial"]
    spec = AccumulatorSpec(W)
    exp = [tuple(int(v) for v in ops.nested_mac(x, w, n, b2, spec, mode, b))
           for x, w, b, b2 in packets]
    assert results["right"] == exp
    record_property("vectors", len(packets))


@pytest.mark.parametrize("overflow,acc_width", [("wrap", None), ("saturate", 18)])
def test_int_mac(overflow, acc_width, record_property):
    n, pes = 8, 4
    dut = IntMac(n, pes, acc_width, max_terms=64, overflow=overflow)
    rng = np.random.default_rng(5)
    packets = _packets(rng, n, pes, 40, dut.acc_width, [8])
    outs, _ = run_stream(dut, _mac_beats(packets, pes, with_bits=False), len(packets), seed=2)
    spec = AccumulatorSpec(dut.acc_width, overflow)
    _check_mac_outputs(outs, packets, lambda x, w, b, bits: ops.int_mac(x, w, spec, b, n))
    record_property("vectors", len(packets))


@pytest.mark.parametrize("overflow", ["wrap", "saturate"])
def test_accumulate_and_sticky_flag(overflow, record_property):
    width, aw = 12, 10
    dut = Accumulate(width, overflow, addend_width=aw, max_terms=16)
    rng = np.random.default_rng(3)
    packets = [rng.integers(-(1 << (aw - 1)), 1 << (aw - 1), size=int(rng.integers(1, 17)))
               for _ in range(60)]
    beats = [{"value": int(v), "first": int(j == 0), "last": int(j == len(p) - 1)}
             for p in packets for j, v in enumerate(p)]
    sticky = []
    outs, _ = run_stream(dut, beats, len(packets), seed=4,
                         extra=lambda ctx, c: sticky.append(ctx.get(dut.sticky_overflow)))
    spec = AccumulatorSpec(width, overflow)
    exp = [tuple(int(v) for v in ops.accumulate(np.array(p.sum()), spec)) for p in packets]
    got = [(int(o.value), int(o.overflow)) for o in outs]
    assert got == exp
    assert any(e[1] for e in exp) and not all(e[1] for e in exp)
    # sticky: low until the first overflowing result, then high for good (no clear)
    first = next(i for i, s in enumerate(sticky) if s)
    assert all(sticky[first:])
    record_property("vectors", len(packets))


# ----------------------------------------------------------------------------- requant
@pytest.mark.parametrize("signed", [False, True])
def test_requantize(signed, record_property):
    acc_w, m_bits, n = 24, 20, 8
    dut = Requantize(acc_w, m_bits, n, signed)
    out = IntFormat(n, signed)
    rng = np.random.default_rng(9)
    N = 400
    acc = _codes(rng, acc_w, True, N)
    M = rng.integers(0, 1 << (m_bits - 1), N)
    M[:4] = [(1 << (m_bits - 1)) - 1, 0, 1, -(1 << (m_bits - 1))]
    S = rng.integers(0, 40, N)
    S[:3] = [0, 1, 62]
    zy = rng.integers(out.lo, out.hi + 1, N) if signed else rng.integers(0, 20, N)
    lo = rng.integers(out.lo, out.lo + 10, N)
    hi = rng.integers(out.hi - 10, out.hi + 1, N)
    beats = [{"acc": int(a), "M": int(m), "S": int(s), "zy": int(z), "lo": int(l), "hi": int(h)}
             for a, m, s, z, l, h in zip(acc, M, S, zy, lo, hi)]
    outs, _ = run_stream(dut, beats, N, seed=6)
    exp = [int(ops.requantize(np.array([a]), np.array([m]), int(s), out, int(z),
                              lo=int(l), hi=int(h))[0])
           for a, m, s, z, l, h in zip(acc, M, S, zy, lo, hi)]
    got = [as_int(o) for o in outs]
    assert got == exp
    record_property("vectors", N)


@pytest.mark.parametrize("shape", [signed(5), unsigned(5), signed(7), unsigned(2)])
def test_rshift_round_comb_every_value_and_shift(shape, record_property):
    """The run-time rounding shift (kept to one bit above its operand, with a mux for
    S >= width) equals golden ``rshift_round`` on every operand value and every 6-bit S,
    including the shifts past the operand's width."""
    from amaranth.hdl import Module, Signal
    from amaranth.sim import Simulator
    from rtl._common import rshift_round_comb
    m = Module()
    v, S, o = Signal(shape), Signal(6), Signal(signed(16))
    m.d.comb += o.eq(rshift_round_comb(v, S))
    w = shape.width
    vals = np.arange(-(1 << (w - 1)), 1 << (w - 1)) if shape.signed else np.arange(1 << w)
    got = np.zeros((len(vals), 64), np.int64)

    async def bench(ctx):
        for i, x in enumerate(vals):
            ctx.set(v, int(x))
            for s in range(64):
                ctx.set(S, s)
                got[i, s] = ctx.get(o)

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    exp = np.stack([ops.rshift_round(vals, s) for s in range(64)], axis=1)
    assert np.array_equal(got, exp)
    record_property("vectors", got.size)


def test_overflow_policy_run_time_width_every_value(record_property):
    """The engine's run-time accumulator width and policy (registers, not parameters):
    every 7-bit exact sum at every width 2..6 under wrap and saturate equals golden
    ``accumulate``, value and overflow flag."""
    from amaranth.hdl import Module, Signal
    from amaranth.sim import Simulator
    from golden.formats import Overflow
    from rtl._common import overflow_policy
    m = Module()
    exact, width, sat = Signal(signed(7)), Signal(range(8)), Signal()
    val, over = overflow_policy(m, exact, width, sat)
    vals = np.arange(-64, 64)
    cases = [(w, s) for w in range(2, 7) for s in (0, 1)]
    got = np.zeros((len(cases), len(vals), 2), np.int64)

    async def bench(ctx):
        for c, (w, s) in enumerate(cases):
            ctx.set(width, w)
            ctx.set(sat, s)
            for i, x in enumerate(vals):
                ctx.set(exact, int(x))
                got[c, i] = ctx.get(val), ctx.get(over)

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    for c, (w, s) in enumerate(cases):
        ev, eo = ops.accumulate(vals, AccumulatorSpec(w, Overflow.SATURATE if s else
                                                      Overflow.WRAP))
        assert np.array_equal(got[c, :, 0], ev), (w, s)
        assert np.array_equal(got[c, :, 1], eo), (w, s)
    record_property("vectors", got.shape[0] * got.shape[1])


# ----------------------------------------------------------------------------- operators
def _mulc(zx=3, zw=2, S=None):
    return MulConstants.from_scales(0.02, zx, 0.01, zw, 0.05, 0, IntFormat(8, False), S=S)


@pytest.mark.parametrize("zx,zw", [(3, 2), (0, 0), (17, -5)])
def test_int_mul(zx, zw, record_property):
    c = _mulc(zx, zw)
    dut = IntMul(c)
    rng = np.random.default_rng(zx)
    q1, q2 = _codes(rng, 8, False, 300), _codes(rng, 8, True, 300)
    outs, _ = run_stream(dut, [{"q1": int(a), "q2": int(b)} for a, b in zip(q1, q2)], 300)
    assert [as_int(o) for o in outs] == ops.int_mul(q1, q2, c).tolist()
    record_property("vectors", 300)


def test_int_add(record_property):
    c = AddConstants.from_scales(0.02, 0, 0.03, 0, 0.04, 0, IntFormat(8, False))
    c2 = AddConstants(c.M1, c.M2, -5 << 16, 16, IntFormat(8, False))
    total = 0
    for cc in (c, c2):
        dut = IntAdd(cc)
        rng = np.random.default_rng(1)
        q1, q2 = _codes(rng, 8, False, 300), _codes(rng, 8, False, 300)
        outs, _ = run_stream(dut, [{"q1": int(a), "q2": int(b)} for a, b in zip(q1, q2)], 300)
        assert [as_int(o) for o in outs] == ops.int_add(q1, q2, cc).tolist()
        total += 300
    record_property("vectors", total)


@pytest.mark.parametrize("cls", [PaperDot, FactoredDot])
@pytest.mark.parametrize("zx,zw,zy", [(3, 2, 0), (0, 0, 7), (12, -3, 100)])
def test_dot_operators(cls, zx, zw, zy, record_property):
    c = _mulc(zx, zw)
    pes = 4
    dut = cls(c, pes=pes, max_terms=64, zy=zy)
    golden_fn = ops.paper_dot if cls is PaperDot else ops.factored_dot
    rng = np.random.default_rng(zx + 100 * zy)
    packets = []
    for _ in range(30):
        K = pes * int(rng.integers(1, 5))
        packets.append((_codes(rng, 8, False, K), _codes(rng, 8, True, K)))
    beats = [{"x": [int(v) for v in x[j:j + pes]], "w": [int(v) for v in w[j:j + pes]],
              "first": int(j == 0), "last": int(j == x.size - pes)}
             for x, w in packets for j in range(0, x.size, pes)]
    outs, _ = run_stream(dut, beats, len(packets), seed=8)
    exp = [int(golden_fn(x, w, c, zy)) for x, w in packets]
    assert [as_int(o) for o in outs] == exp
    record_property("vectors", len(packets))


# ----------------------------------------------------------------------------- fp32
def _f32_bits(v):
    return struct.unpack("<I", struct.pack("<f", np.float32(v)))[0]


@pytest.mark.parametrize("signed", [False, True])
def test_fp32_requant(signed, record_property):
    acc_w, n = 32, 8
    dut = Fp32Requant(acc_w, n, signed)
    out = IntFormat(n, signed)
    rng = np.random.default_rng(13)
    N = 500
    acc = np.concatenate([
        rng.integers(-(1 << 31), 1 << 31, 150),                       # rounding to 24 bits
        rng.integers(-3000, 3000, 250),                               # typical layer range
        [0, 1, -1, (1 << 31) - 1, -(1 << 31), (1 << 24) + 1, (1 << 25) + 3, -(1 << 24) - 3],
    ])[:N]
    N = acc.size
    scales = np.float32(2.0) ** rng.uniform(-14, 2, N).astype(np.float32)
    scales = scales.astype(np.float32) * np.where(rng.random(N) < 0.1, -1, 1).astype(np.float32)
    # directed ties: acc * scale exactly x.5 (round half to even) and tiny/huge scales
    scales[:6] = np.float32([0.5, 0.25, 1.0, 2.0 ** -120, 2.0 ** 100, 0.0])
    acc[:6] = [5, 6, 7, 1 << 20, 3, 12345]
    # large accumulators with scales that bring the product into the output range, so the
    # int -> fp32 rounding (|acc| > 2^24) and the product rounding decide the result
    big = acc[:150]
    scales[6:150] = (rng.uniform(-40, 300, 144) / np.where(big[6:] == 0, 1, big[6:])).astype(
        np.float32)
    # exact ties k + 0.5 after both roundings: acc = 2k + 1 with scale 0.5
    acc[300:350] = 2 * rng.integers(-200, 300, 50) + 1
    scales[300:350] = np.float32(0.5)
    zy = rng.integers(0, 10, N) if not signed else rng.integers(-5, 5, N)
    beats = [{"acc": int(a), "scale": _f32_bits(s), "zy": int(z)}
             for a, s, z in zip(acc, scales, zy)]
    outs, _ = run_stream(dut, beats, N, seed=9)
    exp = [int(ops.fp32_requant(np.array([a]), s, out, int(z))[0])
           for a, s, z in zip(acc, scales, zy)]
    got = [as_int(o) for o in outs]
    bad = [i for i in range(N) if got[i] != exp[i]]
    assert not bad, [(int(acc[i]), float(scales[i]), int(zy[i]), got[i], exp[i]) for i in bad[:5]]
    record_property("vectors", N)
