"""The paper's integer operators against the golden model: ``rtl.operators.IntMul``
(``int_mul``), ``IntAdd`` (``int_add``), and the two dot-product forms ``PaperDot``
(``paper_dot``, every term rounded) and ``FactoredDot`` (``factored_dot``, one rounding).

Constants come from ``MulConstants``/``AddConstants.from_scales`` with non-zero zero points
(all four multiply terms present). Element-wise operators get every operand pair of the
4-bit formats exhaustively, or for 8-bit formats the corners, random pairs and one pair per
reachable coverage bin; dot products get packets of 1..4 beats with zero, extreme and
random operands. Coverage: operand class x output clamp (low / inside / high), the
operators' analogue of overflow; for element-wise operators the declared bins are those the
golden operator reaches over the whole operand space.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import cocotb

from golden import ops
from golden.formats import AddConstants, IntFormat, MulConstants
from rtl.registry import cost_points
from sim.checker import compare
from sim.coverage import Coverage, operand_class
from sim.packing import pack, unpack
from sim.stream import StreamTB, entry_from_env

MODULE = Path(__file__).stem


def _fmt(d):
    return IntFormat(d["n"], d["signed"])


def _mulc(d):
    return MulConstants(d["M1"], d["M2"], d["M3"], d["M4"], d["S"], _fmt(d["out"]), d["m_bits"])


def _range(f):
    return np.arange(f.lo, f.hi + 1)


class OperatorTB(StreamTB):
    """Clock, reset, operand driver on ``i``, code monitor on ``o``, golden model."""

    def __init__(self, dut, entry, seed):
        super().__init__(dut, seed=seed, p_valid=0.8, p_ready=0.7)
        self.e = entry
        self.d = entry["derived"]
        self.comp = entry["component"]
        self.pin = entry["ports_by_name"]["i__payload"]
        self.pout = entry["ports_by_name"]["o__payload"]
        self.rng = np.random.default_rng(seed)

    def clamp_class(self, raw, out):
        return np.where(raw < out.lo, "low", np.where(raw > out.hi, "high", "inside"))


async def _elementwise(dut, e):
    tb = OperatorTB(dut, e, e["test"].get("seed", 0))
    await tb.start()
    d = tb.d
    f1, f2 = _fmt(d["f1"]), _fmt(d["f2"])
    c = d["constants"]
    if tb.comp == "int_mul":
        k = _mulc(c)
        model = lambda a, b: ops.int_mul(a, b, k)  # noqa: E731
        unclamped = lambda a, b: ops.rshift_round(k.M1 * a * b + k.M2 * a + k.M3 * b + k.M4, k.S)  # noqa: E731
    else:
        k = AddConstants(c["M1"], c["M2"], c["M3"], c["S"], _fmt(c["out"]), c["m_bits"])
        model = lambda a, b: ops.int_add(a, b, k)  # noqa: E731
        unclamped = lambda a, b: ops.rshift_round(k.M1 * a + k.M2 * b + k.M3, k.S)  # noqa: E731

    def classes(a, b):
        return np.where((a == 0) | (b == 0), "zero",
                        np.where(np.isin(a, [f1.lo, f1.hi]) & np.isin(b, [f2.lo, f2.hi]),
                                 "extreme", "random"))

    g1, g2 = np.meshgrid(_range(f1), _range(f2), indexing="ij")
    g1, g2 = g1.reshape(-1), g2.reshape(-1)
    gbin = np.char.add(np.char.add(classes(g1, g2), "/"), tb.clamp_class(unclamped(g1, g2), k.out))
    # declared bins, before any stimulus: every (operand class, clamp) the golden operator
    # reaches on the whole operand domain of the formats
    cov = Coverage(tb.comp, {"operands": ["zero", "extreme", "random"],
                             "clamp": ["low", "inside", "high"]},
                   reachable={tuple(u.split("/")) for u in np.unique(gbin)})
    if g1.size > 1500:  # 8-bit formats: corners x corners, random pairs, one pair per bin
        corners1 = np.array([f1.lo, f1.lo + 1, 0, f1.hi - 1, f1.hi])
        corners2 = np.array([f2.lo, f2.lo + 1, 0, f2.hi - 1, f2.hi])
        a, b = np.meshgrid(corners1, corners2, indexing="ij")
        sel = tb.rng.choice(g1.size, 800, replace=False)
        rep = np.array([tb.rng.choice(np.nonzero(gbin == u)[0]) for u in np.unique(gbin)])
        q1 = np.concatenate([a.reshape(-1), g1[sel], g1[rep]])
        q2 = np.concatenate([b.reshape(-1), g2[sel], g2[rep]])
    else:               # 4-bit formats: exhaustive
        q1, q2 = g1, g2
    perm = tb.rng.permutation(q1.size)
    q1, q2 = q1[perm], q2[perm]
    out = await tb.transfer(pack(tb.pin, {"q1": q1, "q2": q2}), q1.size)
    got = unpack(tb.pout, out)[""]
    exp = model(q1, q2)
    raw = unclamped(q1, q2)
    compare(tb.comp, got, exp, {"q1": q1, "q2": q2}, tb.monitor.cycles[-len(out):])
    cls = classes(q1, q2)
    cov.sample(operands=cls, clamp=tb.clamp_class(raw, k.out))
    dut._log.info("\n" + cov.summary())
    cov.check()


def _class_probe(fx, fw, P, count, seed=1234):
    """Packets drawn class by class from the operand domain of a dot product (one operand
    all zero; both operands constant at a range extreme; uniform), for declaring the bins
    the golden operator can reach. Deliberately separate from the stimulus generator."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        K = int(rng.integers(1, 5)) * P
        x, w = rng.integers(fx.lo, fx.hi + 1, K), rng.integers(fw.lo, fw.hi + 1, K)
        cls = rng.integers(0, 3)
        if cls == 0:
            (x if rng.integers(2) else w)[:] = 0
        elif cls == 1:
            x, w = np.full(K, rng.choice([fx.lo, fx.hi])), np.full(K, rng.choice([fw.lo, fw.hi]))
        out.append((x, w))
    return out


async def _dot(dut, e):
    tb = OperatorTB(dut, e, e["test"].get("seed", 0))
    await tb.start()
    d = tb.d
    fx, fw = _fmt(d["fx"]), _fmt(d["fw"])
    k = _mulc(d["constants"])
    P, zy = d["pes"], d["zy"]
    def gen(count, rng):
        out = []
        for i in range(count):
            K = int(rng.integers(1, 5)) * P
            kind = i % 4
            if kind == 0:
                x = np.zeros(K, np.int64)
                w = rng.integers(fw.lo, fw.hi + 1, K)
            elif kind == 1:
                x = np.full(K, fx.hi if i % 8 == 1 else fx.lo)
                w = np.full(K, fw.lo if (i // 8) % 2 else fw.hi)
            else:
                x = rng.integers(fx.lo, fx.hi + 1, K)
                w = rng.integers(fw.lo, fw.hi + 1, K)
            out.append((x, w))
        return out

    def unclamped(x, w):
        t = k.M1 * x * w + k.M2 * x + k.M3 * w + k.M4
        if tb.comp == "paper_dot":
            return int(ops.rshift_round(t, k.S).sum()) + zy
        return int(ops.rshift_round(np.array([t.sum()]), k.S)[0]) + zy

    def bin_of(x, w):
        cls = operand_class(x[None], w[None], (fx.lo, fx.hi), (fw.lo, fw.hi))[0]
        return (str(cls), str(tb.clamp_class(np.array([unclamped(x, w)]), k.out)[0]))

    # declared bins, before the stimulus: those a golden-only probe of the operand classes
    # reaches (built by _class_probe, independent of the stimulus generator)
    cov = Coverage(tb.comp, {"operands": ["zero", "extreme", "random"],
                             "clamp": ["low", "inside", "high"]},
                   reachable={bin_of(x, w) for x, w in _class_probe(fx, fw, P, 4000)})
    pk = gen(e["test"].get("packets", 150), tb.rng)
    rows = {"x": [], "w": [], "first": [], "last": []}
    for x, w in pk:
        nb = len(x) // P
        for j in range(nb):
            rows["x"].append(x[j * P:(j + 1) * P])
            rows["w"].append(w[j * P:(j + 1) * P])
            rows["first"].append(int(j == 0))
            rows["last"].append(int(j == nb - 1))
    out = await tb.transfer(pack(tb.pin, {kk: np.array(v) for kk, v in rows.items()}), len(pk))
    got = unpack(tb.pout, out)[""]
    fn = ops.paper_dot if tb.comp == "paper_dot" else ops.factored_dot
    exp = np.array([int(fn(x, w, k, zy)) for x, w in pk])
    compare(tb.comp, got, exp, {"x": [p[0] for p in pk], "w": [p[1] for p in pk]},
            tb.monitor.cycles[-len(out):])
    hit = [bin_of(x, w) for x, w in pk]
    cov.sample(operands=[h[0] for h in hit], clamp=[h[1] for h in hit])
    dut._log.info("\n" + cov.summary())
    cov.check()


@cocotb.test()
async def operator_vs_golden(dut):
    """Exhaustive or corner + random operands; every result equals the golden operator."""
    e = entry_from_env()
    if e["component"] in ("int_mul", "int_add"):
        await _elementwise(dut, e)
    else:
        await _dot(dut, e)


# ------------------------------------------------------------------------------- pytest
def _mul_json(c: MulConstants):
    return {"M1": c.M1, "M2": c.M2, "M3": c.M3, "M4": c.M4, "S": c.S, "m_bits": c.m_bits,
            "out": {"n": c.out.n, "signed": c.out.signed}}


# Scales chosen so that results span the output range and clamp on both sides.
_MUL8 = MulConstants.from_scales(0.05, 3, 0.02, 2, 0.05, 0, IntFormat(8, False))
_MUL4 = MulConstants.from_scales(0.3, 2, 0.25, -1, 0.2, 7, IntFormat(4, False))
_ADD8 = AddConstants.from_scales(0.05, 0, 0.04, 0, 0.06, 0, IntFormat(8, False))
_DOT = MulConstants.from_scales(0.05, 3, 0.02, -2, 0.5, 0, IntFormat(8, True), m_bits=24)


@pytest.mark.simulator
@pytest.mark.parametrize("sim", ["verilator", "icarus"])
@pytest.mark.parametrize("case", ["int_mul8", "int_mul4", "int_add8"])
def test_elementwise_operator(cocotb_run, sim, case):
    comp, params = {
        "int_mul8": ("int_mul", {"c": _mul_json(_MUL8)}),
        "int_mul4": ("int_mul", {"c": _mul_json(_MUL4), "f1": {"n": 4, "signed": False},
                                 "f2": {"n": 4, "signed": True}}),
        "int_add8": ("int_add", {"c": {"M1": _ADD8.M1, "M2": _ADD8.M2, "M3": _ADD8.M3,
                                       "S": _ADD8.S, "m_bits": _ADD8.m_bits,
                                       "out": {"n": 8, "signed": False}}}),
    }[case]
    s = cocotb_run(sim, comp, params, MODULE, test_params={"seed": 1})
    assert len(s.passed) == 1


@pytest.mark.simulator
@pytest.mark.parametrize("sim", ["verilator", "icarus"])
@pytest.mark.parametrize("comp", ["paper_dot", "factored_dot"])
def test_dot_operator(cocotb_run, sim, comp):
    s = cocotb_run(sim, comp, {"c": _mul_json(_DOT), "pes": 4, "max_terms": 16, "zy": 3},
                   MODULE, test_params={"seed": 2, "packets": 160})
    assert len(s.passed) == 1


# Every parameter set of paper_dot that the reports cost runs this testbench (Icarus: fast
# builds); tests/test_catalog.py fails when a costed design is missing here.
@pytest.mark.simulator
@pytest.mark.parametrize("params", cost_points("paper_dot"), ids=lambda p: str(p.get("n", "")))
def test_paper_dot_cost_points(cocotb_run, params):
    s = cocotb_run("icarus", "paper_dot", params, MODULE,
                   test_params={"seed": 4, "packets": 60})
    assert len(s.passed) == 1


# Every parameter set of factored_dot that the reports cost runs this testbench (Icarus: fast
# builds); tests/test_catalog.py fails when a costed design is missing here.
@pytest.mark.simulator
@pytest.mark.parametrize("params", cost_points("factored_dot"), ids=lambda p: str(p.get("n", "")))
def test_factored_dot_cost_points(cocotb_run, params):
    s = cocotb_run("icarus", "factored_dot", params, MODULE,
                   test_params={"seed": 4, "packets": 60})
    assert len(s.passed) == 1
