"""The float baseline (``rtl.fp32_requant.Fp32Requant``) against ``golden.ops.fp32_requant``
(numpy float32: int -> binary32, multiply by a binary32 scale, round half to even).

Stimulus: accumulators at the range ends, zero, powers of two around 2^24 (where the int to
float conversion starts rounding), exact .5 ties after scaling (scale 0.5, odd
accumulators) and random values; scales 0.5, powers of two, random in [2^-20, 4]; zero
points. Coverage: accumulator class x conversion exact/rounded x output clamped.
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


class Fp32TB(StreamTB):
    """Clock, reset, (acc, scale bits, zy) driver, code monitor."""

    def __init__(self, dut, entry, seed):
        super().__init__(dut, seed=seed, p_valid=0.8, p_ready=0.7)
        d = entry["derived"]
        self.A, self.out = d["acc_width"], IntFormat(d["n"], d["signed"])
        self.pin = entry["ports_by_name"]["i__payload"]
        self.pout = entry["ports_by_name"]["o__payload"]
        self.rng = np.random.default_rng(seed)


@cocotb.test()
async def corners_and_random(dut):
    e = entry_from_env()
    tb = Fp32TB(dut, e, 6)
    await tb.start()
    rng, A = tb.rng, tb.A
    lo, hi = -(1 << (A - 1)), (1 << (A - 1)) - 1
    N = 900
    acc = rng.integers(lo, hi + 1, N)
    small = np.arange(N) % 4 == 1            # small accumulators: results inside the range
    acc[small] = rng.integers(-600, 600, small.sum())
    scale = np.exp2(rng.uniform(-20, 2, N)).astype(np.float32)
    tie = np.arange(N) % 4 == 2              # exact ties: odd accumulator x 0.5
    scale[tie] = np.float32(0.5)
    acc[tie] = 2 * rng.integers(-200, 200, tie.sum()) + 1
    # directed corners, each at a tiny, a unit and a large scale (placed last so the
    # masks above do not overwrite them)
    special = [lo, hi, 0, 1, -1, (1 << 24) + 1, -(1 << 24) - 3, (1 << 25) + 3, 7, -5]
    special = np.array([v for v in special if lo <= v <= hi])
    for j, sc in enumerate((2.0 ** -40, 1.0, 2.0 ** -20, 3.0)):
        sl = slice(N - (j + 1) * len(special), N - j * len(special))
        acc[sl] = special
        scale[sl] = np.float32(sc)
    zy = np.where(np.arange(N) % 5 == 0, rng.integers(tb.out.lo, tb.out.hi + 1, N), 0)
    sbits = scale.view(np.uint32).astype(np.int64)
    out = await tb.transfer(pack(tb.pin, {"acc": acc, "scale": sbits, "zy": zy}), N)
    got = unpack(tb.pout, out)[""]
    exp = np.array([int(ops.fp32_requant(np.array([a]), s, tb.out, int(z))[0])
                    for a, s, z in zip(acc, scale, zy)])
    compare("fp32_requant", got, exp, {"acc": acc, "scale": scale, "zy": zy},
            tb.monitor.cycles[-len(out):])
    exact = np.abs(acc) <= (1 << 24)
    r = np.rint(acc.astype(np.float32) * scale).astype(np.float64) + zy
    clamped = (r < tb.out.lo) | (r > tb.out.hi)
    acls = np.where(acc == 0, "zero", np.where(np.isin(acc, [lo, hi]), "extreme", "random"))
    cov = Coverage("fp32_requant", {"acc": ["zero", "extreme", "random"],
                                    "int_to_float": ["exact", "rounded"],
                                    "clamped": [False, True]},
                   exclude=[{"acc": "zero", "int_to_float": "rounded"},
                            {"acc": "zero", "clamped": True}]
                   # up to 2^24 every integer is a binary32: nothing to round
                   + ([{"int_to_float": "rounded"}] if A <= 25 else
                      [{"acc": "extreme", "int_to_float": "exact"}]))
    cov.sample(acc=acls, int_to_float=np.where(exact, "exact", "rounded"), clamped=clamped)
    dut._log.info("\n" + cov.summary())
    cov.check()


@pytest.mark.simulator
@pytest.mark.parametrize("acc_width,n,signed,sim", [
    (32, 8, False, "verilator"), (32, 8, False, "icarus"),
    (20, 8, True, "icarus")])  # the narrow accumulator: Icarus only (fast build)
def test_fp32_requant(cocotb_run, sim, acc_width, n, signed):
    s = cocotb_run(sim, "fp32_requant", {"acc_width": acc_width, "n": n, "signed": signed},
                   MODULE)
    assert len(s.passed) == 1


# Every parameter set of fp32_requant that the reports cost runs this testbench (Icarus: fast
# builds); tests/test_catalog.py fails when a costed design is missing here.
@pytest.mark.simulator
@pytest.mark.parametrize("params", cost_points("fp32_requant"), ids=lambda p: str(p.get("n", "")))
def test_fp32_requant_cost_points(cocotb_run, params):
    s = cocotb_run("icarus", "fp32_requant", params, MODULE,
                   test_params={"seed": 8})
    assert len(s.passed) == 1
