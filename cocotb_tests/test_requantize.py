"""Dyadic requantizer (``rtl.requantize.Requantize``) against ``golden.ops.requantize``.

Stimulus: accumulators at the signed range ends, zero, the rounding ties of each shift
(acc*M = odd multiple of 2^(S-1)) and uniform random values; multipliers 0, 1, the top of
the declared width and random; shifts 0, 1 and up to 40; clamp windows for a fused ReLU
(lo = 0), a PACT clip (hi < 2^n - 1) and the full range; random gaps and backpressure.
Coverage: shift class x operand class x clamped (below lo / inside / above hi); with M >= 0
the most negative accumulator cannot clamp high and the largest cannot clamp low.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import cocotb

from golden import ops
from golden.formats import IntFormat
from rtl.registry import cost_points
from sim.checker import compare
from sim.coverage import Coverage
from sim.packing import pack, unpack
from sim.stream import StreamTB, entry_from_env

MODULE = Path(__file__).stem


class RequantTB(StreamTB):
    """Clock, reset, driver of (acc, M, S, zy, lo, hi) beats, monitor of output codes."""

    def __init__(self, dut, entry, seed):
        super().__init__(dut, seed=seed, p_valid=0.8, p_ready=0.7)
        d = entry["derived"]
        self.A, self.mb, self.n, self.signed = d["acc_width"], d["m_bits"], d["n"], d["signed"]
        self.out = IntFormat(self.n, self.signed)
        self.pin = entry["ports_by_name"]["i__payload"]
        self.pout = entry["ports_by_name"]["o__payload"]
        self.rng = np.random.default_rng(seed)

    def vectors(self, count):
        rng, A = self.rng, self.A
        alo, ahi = -(1 << (A - 1)), (1 << (A - 1)) - 1
        mtop = (1 << (self.mb - 1)) - 1
        M = rng.integers(0, min(mtop, 1 << 20) + 1, count)
        M[::7] = 0
        M[1::7] = 1
        M[2::7] = mtop                       # directed: the widest multiplier
        S = rng.integers(0, 41, count)
        S[::5] = 0
        S[1::5] = 1
        acc = rng.integers(alo, ahi + 1, count)
        acc[::6] = alo                       # directed: both range ends and zero
        acc[1::6] = ahi
        acc[2::6] = 0
        # directed: exact rounding ties, acc*M = (2j+1) * 2^(S-1)
        tie = (np.arange(count) % 6 == 3) & (S > 0)
        M[tie] = 1
        acc[tie] = np.clip((2 * rng.integers(-50, 50, tie.sum()) + 1) << (S[tie] - 1), alo, ahi)
        lo = np.where(np.arange(count) % 3 == 0, 0, self.out.lo)
        hi = np.where(np.arange(count) % 4 == 0, rng.integers(max(self.out.lo, 1), self.out.hi + 1,
                                                              count), self.out.hi)
        zy = np.where(np.arange(count) % 5 == 2, rng.integers(self.out.lo, self.out.hi + 1, count), 0)
        return dict(acc=acc, M=M, S=S, zy=zy, lo=lo, hi=hi)

    def model(self, v):
        exp = np.array([int(ops.requantize(np.array([a]), int(m), int(s), self.out, int(z),
                                           "dyadic", int(lo), int(hi))[0])
                        for a, m, s, z, lo, hi in zip(v["acc"], v["M"], v["S"], v["zy"],
                                                      v["lo"], v["hi"])])
        raw = np.array([int(ops.rshift_round(np.array([int(a) * int(m)]), int(s))[0]) + int(z)
                        for a, m, s, z in zip(v["acc"], v["M"], v["S"], v["zy"])])
        cls = np.where(raw < v["lo"], "below", np.where(raw > v["hi"], "above", "inside"))
        return exp, cls


@cocotb.test()
async def random_and_corners(dut):
    e = entry_from_env()
    tb = RequantTB(dut, e, e["test"].get("seed", 0))
    await tb.start()
    v = tb.vectors(e["test"].get("count", 600))
    out = await tb.transfer(pack(tb.pin, v), len(v["acc"]))
    got = unpack(tb.pout, out)[""]
    exp, cls = tb.model(v)
    compare("requantize", got, exp, v, tb.monitor.cycles[-len(out):])
    alo, ahi = -(1 << (tb.A - 1)), (1 << (tb.A - 1)) - 1
    cov = Coverage("requantize", {"shift": ["0", "1", ">1"],
                                  "acc": ["min", "max", "zero", "random"],
                                  "clamp": ["below", "inside", "above"]},
                   exclude=[{"acc": "zero", "clamp": "above"}, {"acc": "zero", "clamp": "below"},
                            {"acc": "min", "clamp": "above"}, {"acc": "max", "clamp": "below"}])
    scls = np.where(v["S"] == 0, "0", np.where(v["S"] == 1, "1", ">1"))
    acls = np.where(v["acc"] == alo, "min", np.where(v["acc"] == ahi, "max",
                                                      np.where(v["acc"] == 0, "zero", "random")))
    cov.sample(shift=scls, acc=acls, clamp=cls)
    dut._log.info("\n" + cov.summary())
    cov.check()


@pytest.mark.simulator
@pytest.mark.parametrize("acc_width,m_bits,n,signed,sim", [
    (32, 32, 8, False, "verilator"), (32, 32, 8, False, "icarus"),
    (20, 16, 4, True, "icarus")])  # the narrow signed format: Icarus only (fast build)
def test_requantize(cocotb_run, sim, acc_width, m_bits, n, signed):
    s = cocotb_run(sim, "requantize", {"acc_width": acc_width, "m_bits": m_bits, "n": n,
                                       "signed": signed}, MODULE, test_params={"seed": n})
    assert len(s.passed) == 1


# Every parameter set of requantize that the reports cost runs this testbench (Icarus: fast
# builds); tests/test_catalog.py fails when a costed design is missing here.
@pytest.mark.simulator
@pytest.mark.parametrize("params", cost_points("requantize"), ids=lambda p: str(p.get("n", "")))
def test_requantize_cost_points(cocotb_run, params):
    s = cocotb_run("icarus", "requantize", params, MODULE,
                   test_params={"seed": 8})
    assert len(s.passed) == 1
