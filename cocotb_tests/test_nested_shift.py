"""Nested shifter (``rtl.nested_shift.NestedShift``) against ``golden.ops.nested_shift``.

Every master code at every precision (exhaustive), interleaved so the precision changes on
every beat, under random valid gaps and backpressure; then the candidate-set fallback
(``bits`` outside B passes the code through). Coverage: precision x operand class x
saturated (the round mode's clip), declared as the bins the golden model can reach.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import cocotb

from golden import ops
from rtl.registry import cost_points
from sim.checker import compare
from sim.coverage import Coverage
from sim.packing import pack, unpack
from sim.stream import StreamTB, entry_from_env

MODULE = Path(__file__).stem


def _classes(q, lo, hi):
    return np.where(q == 0, "zero", np.where(q == lo, "min", np.where(q == hi, "max", "random")))


def stimulus_codes(lo, hi, drop_class=None):
    """Every master code (exhaustive stimulus), less one operand class when ``drop_class``
    names one: the test that shows coverage notices a missing stimulus class."""
    codes = np.arange(lo, hi + 1)
    return codes if drop_class is None else codes[_classes(codes, lo, hi) != drop_class]


class ShifterTB(StreamTB):
    """Clock, reset, driver on ``i`` (q, bits), monitor on ``o`` (code)."""

    def __init__(self, dut, entry, seed):
        super().__init__(dut, seed=seed, p_valid=0.85, p_ready=0.75)
        d = entry["derived"]
        self.n, self.mode, self.signed = d["n"], d["mode"], d["signed"]
        self.cands = d["candidates"]
        self.pin = entry["ports_by_name"]["i__payload"]
        self.pout = entry["ports_by_name"]["o__payload"]
        self.lo = -(1 << (self.n - 1)) if self.signed else 0
        self.hi = (1 << (self.n - 1)) - 1 if self.signed else (1 << self.n) - 1

    def model(self, q, bits):
        """Golden scoreboard; ``bits`` outside the candidate set means full precision."""
        exp = np.empty(q.size, dtype=np.int64)
        sat = np.zeros(q.size, dtype=bool)
        for b in np.unique(bits):
            sel = bits == b
            eff = int(b) if int(b) in self.cands else self.n
            exp[sel] = ops.nested_shift(q[sel], self.n, eff, self.mode, self.signed)
            if self.mode == "round" and eff < self.n:
                k = self.n - eff
                sat[sel] = ((q[sel] + (1 << (k - 1))) >> k) != exp[sel]
        return exp, sat

    async def check(self, q, bits, what):
        words = pack(self.pin, {"q": q, "bits": bits})
        out = await self.transfer(words, len(words))
        got = unpack(self.pout, out)[""]
        exp, sat = self.model(q, bits)
        compare(what, got, exp, {"q": q, "bits": bits}, self.monitor.cycles[-len(out):])
        return exp, sat


@cocotb.test()
async def exhaustive_interleaved(dut):
    """Every code x every candidate precision, random order (precision changes per beat)."""
    e = entry_from_env()
    tb = ShifterTB(dut, e, e["test"].get("seed", 0))
    await tb.start()
    codes = np.arange(tb.lo, tb.hi + 1)
    # declared bins, before any stimulus: every (precision, class, saturated) the golden
    # model reaches on the whole code domain (e.g. no saturation in floor mode)
    dom_q, dom_bits = np.repeat(codes, len(tb.cands)), np.tile(np.array(tb.cands), codes.size)
    _, dom_sat = tb.model(dom_q, dom_bits)
    cov = Coverage("nested_shift", {"bits": tb.cands, "operand": ["zero", "min", "max", "random"],
                                    "saturated": [False, True]},
                   reachable=zip(dom_bits.tolist(), _classes(dom_q, tb.lo, tb.hi).tolist(),
                                 dom_sat.tolist()))
    rng = np.random.default_rng(e["test"].get("seed", 0))
    q = stimulus_codes(tb.lo, tb.hi, e["test"].get("drop_class"))
    q = np.repeat(q, len(tb.cands))
    bits = np.tile(np.array(tb.cands), q.size // len(tb.cands))
    perm = rng.permutation(q.size)
    q, bits = q[perm], bits[perm]
    _, sat = await tb.check(q, bits, "nested_shift exhaustive")
    cov.sample(bits=bits, operand=_classes(q, tb.lo, tb.hi), saturated=sat)
    dut._log.info("\n" + cov.summary())
    cov.check()


@cocotb.test()
async def bits_outside_candidates(dut):
    """A precision outside B (0, and values above n) passes the master code unchanged."""
    e = entry_from_env()
    tb = ShifterTB(dut, e, 1)
    await tb.start()
    bw = e["derived"]["bits_width"]
    outside = [b for b in range(1 << bw) if b not in tb.cands]
    if not outside:
        return
    rng = np.random.default_rng(7)
    q = rng.integers(tb.lo, tb.hi + 1, 64)
    q[:2] = [tb.lo, tb.hi]  # corners: both range ends
    bits = rng.choice(outside, 64)
    await tb.check(q, bits, "nested_shift bits outside B")


# ------------------------------------------------------------------------------- pytest
CONFIGS = [(n, mode, s) for n in (8, 4) for mode in ("floor", "round") for s in (False, True)]


# Icarus builds in well under a second: every configuration; Verilator builds take tens of
# seconds: the master width 8 configurations (the n = 4 ones share its code paths).
CASES = [(*c, s) for c in CONFIGS for s in ("verilator", "icarus") if s == "icarus" or c[0] == 8]


@pytest.mark.simulator
@pytest.mark.parametrize("n,mode,signed,sim", CASES)
def test_nested_shift(cocotb_run, sim, n, mode, signed):
    s = cocotb_run(sim, "nested_shift", {"n": n, "mode": mode, "signed": signed,
                                         "candidates": [b for b in (1, 2, 3, 4, 6, 8) if b <= n]},
                   MODULE, test_params={"seed": n})
    assert len(s.passed) == 2


@pytest.mark.simulator
@pytest.mark.parametrize("drop", ["max", "random"])
def test_coverage_fails_without_a_stimulus_class(cocotb_run, drop):
    """The same exhaustive test, its stimulus less one operand class: the declared bins of
    that class are never hit and the coverage check fails the test."""
    s = cocotb_run("icarus", "nested_shift", {"n": 4, "mode": "round", "signed": False,
                                              "candidates": [2, 4]},
                   MODULE, test_params={"seed": 4, "drop_class": drop}, expect_fail=True)
    failed = {r.name.split(".")[-1]: r.message for r in s.failed}
    assert set(failed) == {"exhaustive_interleaved"}, s.table()
    assert "never hit" in failed["exhaustive_interleaved"] and f"'{drop}'" in failed["exhaustive_interleaved"]
# Every parameter set of nested_shift that the reports cost runs this testbench (Icarus: fast
# builds); tests/test_catalog.py fails when a costed design is missing here.
@pytest.mark.simulator
@pytest.mark.parametrize("params", cost_points("nested_shift"), ids=lambda p: str(p.get("n", "")))
def test_nested_shift_cost_points(cocotb_run, params):
    s = cocotb_run("icarus", "nested_shift", params, MODULE,
                   test_params={"seed": 8})
    assert len(s.passed) == 2
