"""The mapped sky130 netlists of the proxies, simulated by reports.gatesim, against golden."""
import itertools

import numpy as np
import pytest

from golden.formats import AccumulatorSpec, DQTValueError, IntFormat
from golden.ops import (bitserial_mac, factored_dot, fp32_requant, nested_mac, nested_shift,
                        paper_dot, requantize)
from reports import datapaths as dp
from reports.designs import fp32_bits, paper_constants
from reports.gatesim import GateSim, LibertyCells, Netlist, function_to_python
from reports.synth import synth
from reports.tools import prepare_liberty

from .conftest import need

pytestmark = [pytest.mark.tools]


# (liberty function, the same function as a Python boolean expression): the reference is
# Python's own boolean evaluation; juxtaposition ("A B") is AND and postfix ' is NOT.
FUNCTIONS = [("!A", "not A"), ("(A&B) | C", "(A and B) or C"), ("A'", "not A"),
             ("A B + !C", "(A and B) or not C"), ("(A^B)&!(C|D)", "(A != B) and not (C or D)"),
             ("(!A1&!A2) | (!B1)", "(not A1 and not A2) or (not B1)"),
             ("A*B+C'", "(A and B) or not C"), ("1", "True"), ("0", "False")]


@pytest.mark.parametrize("expr, ref", FUNCTIONS)
def test_function_translation_matches_truth_table(expr, ref):
    names = sorted(set(__import__("re").findall(r"[A-Z][A-Z0-9]*", expr)))
    py = function_to_python(expr, "v", "M")
    for vals in itertools.product([0, 1], repeat=len(names)):
        env = dict(zip(names, vals))
        got = eval(py, {"v": env, "M": 1}) & 1
        want = int(bool(eval(ref, {}, {k: bool(v) for k, v in env.items()})))
        assert got == want, (expr, env)


def test_postfix_and_juxtaposition():
    f = eval("lambda v, M: " + function_to_python("A B + C'", "v", "M"))
    for a, b, c in itertools.product([0, 1], repeat=3):
        assert f({"A": a, "B": b, "C": c}, 1) & 1 == int((a and b) or not c)


def test_bad_function_raises():
    with pytest.raises(DQTValueError, match="liberty function"):
        function_to_python("(A&B")


@pytest.fixture(scope="module")
def lib(liberty):
    return LibertyCells(prepare_liberty(liberty).read_text())


def _sim(comp, liberty, lib):
    from amaranth.back import verilog
    width = getattr(comp, "acc_width", None)
    v = verilog.convert(comp, name="top")
    s = synth(v, "top", "sky130", liberty=liberty)
    sim = GateSim(Netlist.from_blif(s["netlist_blif"]), lib)
    sim.acc_width = width
    return sim


def _mac_stream(rng, T, L):
    x = rng.integers(0, 256, (T, L))
    w = rng.integers(-128, 128, (T, L))
    clear = np.zeros((T, L), np.int64)
    clear[0] = 1
    return x, w, clear


@need("yosys")
@pytest.mark.parametrize("mode,variant", [("floor", "right"), ("round", "msb")])
def test_nested_mac_netlist_matches_golden(mode, variant, liberty, lib):
    sim = _sim(dp.NestedMac(8, mode, variant), liberty, lib)
    rng = np.random.default_rng(1)
    T, L = 20, 64
    x, w, clear = _mac_stream(rng, T, L)
    acc = AccumulatorSpec(sim.acc_width)
    for b in (2, 4, 6, 8):
        r = sim.run({"x": x, "w": w & 255, "bits": np.full((T, L), b), "clear": clear})
        got = r.signed("acc", acc.width)[T - 1]          # 2-cycle latency: elements 0..T-3
        want, _ = nested_mac(x[:T - 2].T, w[:T - 2].T, 8, b, acc, mode, variant=variant)
        assert np.array_equal(got, want), f"mode={mode} variant={variant} b={b}"


@need("yosys")
def test_bitserial_netlist_matches_golden(liberty, lib):
    sim = _sim(dp.BitSerialMac(8), liberty, lib)
    rng = np.random.default_rng(2)
    L, E = 32, 6
    acc = AccumulatorSpec(sim.acc_width)
    for b in (2, 6, 8):
        x = rng.integers(0, 256, (E, L))
        w = rng.integers(-128, 128, (E, L))
        # E elements then one flush element of zeros, each held for b cycles
        xs = np.repeat(np.vstack([x, np.zeros((1, L), int)]), b, axis=0)
        ws = np.repeat(np.vstack([w, np.zeros((1, L), int)]), b, axis=0)
        T = xs.shape[0] + 2
        pad = lambda a: np.vstack([a, np.zeros((2, L), int)])
        load = np.zeros_like(xs)
        load[::b] = 1
        clear = np.zeros_like(xs)
        clear[0] = 1
        r = sim.run({"x": pad(xs), "w": pad(ws) & 255, "bits": np.full((T, L), b),
                     "load": pad(load), "clear": pad(clear)})
        want, _ = bitserial_mac(x.T, w.T, 8, b, acc)
        assert np.array_equal(r.signed("acc", acc.width)[T - 1], want), f"b={b}"


@need("yosys")
@pytest.mark.slow      # the fp32 netlist alone takes ~40 s to map onto sky130
def test_shifter_requantizer_fp32_match_golden(liberty, lib):
    rng = np.random.default_rng(3)
    T, L = 12, 64
    # nested shifter, round mode
    sim = _sim(dp.NestedShiftReg(8, "round"), liberty, lib)
    q = rng.integers(0, 256, (T, L))
    r = sim.run({"q": q, "bits": np.full((T, L), 4)})
    assert np.array_equal(r.outputs["y"][2:], nested_shift(q[:-2], 8, 4, "round"))
    # dyadic requantizer
    sim = _sim(dp.Requantizer(8), liberty, lib)
    acc = rng.integers(-(1 << 20), 1 << 20, (T, L))
    M = rng.integers(1, 1 << 16, (T, L))
    S = rng.integers(8, 30, (T, L))
    r = sim.run({"acc": acc & 0xFFFFFFFF, "m": M, "s": S})
    want = requantize(acc[:-3] * 1, 1, 0, IntFormat(8, False)) * 0  # shape helper
    for t in range(T - 3):
        want[t] = [requantize(acc[t, l], M[t, l], int(S[t, l]), IntFormat(8, False))
                   for l in range(L)]
    assert np.array_equal(r.outputs["y"][3:], want)
    # fp32 baseline, including exact ties and saturation
    sim = _sim(dp.Fp32Requant(8), liberty, lib)
    acc = rng.integers(-(1 << 31), 1 << 31, (T, L))
    acc[0, :8] = [0, 1, 3, 5, 255, 256, -7, (1 << 24) + 1]
    scale = np.exp2(rng.uniform(-30, 1, (T, L))).astype(np.float32)
    scale[0, :8] = 0.5                       # x.5 ties round to even
    r = sim.run({"acc": acc & 0xFFFFFFFF, "scale": fp32_bits(scale)})
    for t in range(T - 4):                   # latency 4: input register + 3 stages
        want = fp32_requant(acc[t], scale[t], IntFormat(8, False))
        bad = np.nonzero(r.outputs["y"][t + 4] != want)[0]
        assert bad.size == 0, [(int(acc[t, l]), float(scale[t, l])) for l in bad[:3]]


@need("yosys")
@pytest.mark.slow      # four wide constant multipliers per design
def test_paper_and_factored_dot_match_golden(liberty, lib):
    c = paper_constants(8)
    rng = np.random.default_rng(4)
    K, L = 10, 32
    x = rng.integers(0, 256, (K, L))
    w = rng.integers(-128, 128, (K, L))
    T = K + 3
    pad = lambda a: np.vstack([a, np.zeros((T - a.shape[0], L), int)])
    clear = np.zeros((K, L), int)
    clear[0] = 1
    ones = np.ones((T, L), int)
    sim = _sim(dp.PaperDot(8, 16, c.S), liberty, lib)
    r = sim.run({"x": pad(x), "w": pad(w) & 255, "clear": pad(clear),
                 "m1": (c.M1 * ones) & 0xFFFF, "m2": (c.M2 * ones) & 0xFFFF,
                 "m3": (c.M3 * ones) & 0xFFFF, "m4": (c.M4 * ones) & 0xFFFFFF})
    got = r.signed("acc", sim.acc_width)[K + 1]
    # golden paper_dot clamps to the output format; the proxy leaves the clamp to the
    # requantizer, so compare before the clamp: clip the proxy's sum the same way.
    want = paper_dot(x.T, w.T, c)
    assert np.array_equal(np.clip(got, 0, 255), want)
    fd = dp.FactoredDot(8, 16, c.S)
    out_width = fd.out_width
    sim = _sim(fd, liberty, lib)
    done = np.zeros((K, L), int)
    done[-1] = 1
    r = sim.run({"x": pad(x), "w": pad(w) & 255, "clear": pad(clear), "done": pad(done),
                 "m1": (c.M1 * ones) & 0xFFFF, "m2": (c.M2 * ones) & 0xFFFF,
                 "m3": (c.M3 * ones) & 0xFFFF, "k4": (K * c.M4 * ones) & 0xFFFFFFFF})
    got = r.signed("y", out_width)[K + 2]
    assert np.array_equal(np.clip(got, 0, 255), factored_dot(x.T, w.T, c))
