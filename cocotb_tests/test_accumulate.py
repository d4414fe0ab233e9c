"""Packet accumulator (``rtl.accumulate.Accumulate``) against ``golden.ops.accumulate``.

Packets of 1..8 signed addends (extremes of the addend width, zero, random), exact sums on
both sides of the declared width's range, wrap and saturate, random gaps and
backpressure; the sticky flag and its clear. Coverage: packet length (1 / 2-8) x operand class x
overflow (a single addend always fits the wider declared width).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import cocotb
from cocotb.triggers import FallingEdge, ReadOnly

from golden import ops
from golden.formats import AccumulatorSpec
from sim.checker import compare
from sim.coverage import Coverage
from sim.packing import pack, unpack
from sim.stream import StreamTB, entry_from_env

MODULE = Path(__file__).stem


class AccTB(StreamTB):
    """Clock, reset, addend driver on ``i``, result monitor on ``o``."""

    def __init__(self, dut, entry, seed):
        super().__init__(dut, seed=seed, p_valid=0.8, p_ready=0.7, watch=("sticky_overflow",))
        d = entry["derived"]
        self.W, self.AW, self.policy = d["width"], d["addend_width"], d["overflow"]
        self.pin = entry["ports_by_name"]["i__payload"]
        self.pout = entry["ports_by_name"]["o__payload"]
        self.rng = np.random.default_rng(seed)


@cocotb.test()
async def packets(dut):
    e = entry_from_env()
    tb = AccTB(dut, e, 4)
    await tb.start(idle_inputs=("clear_overflow",))
    lo, hi = -(1 << (tb.AW - 1)), (1 << (tb.AW - 1)) - 1
    pk = []
    for i in range(240):
        L = int(tb.rng.integers(1, 9))
        kind = i % 3
        if kind == 0:
            v = np.zeros(L, np.int64)
        elif kind == 1:
            v = np.full(L, hi if (i // 3) % 2 else lo)
        elif (i // 3) % 2:
            v = tb.rng.integers(lo, hi + 1, L)
        else:                       # same-sign random addends: long sums leave the range
            v = tb.rng.integers(hi // 2, hi + 1, L) * (1 if (i // 6) % 2 else -1)
        pk.append(v)
    vals = np.concatenate(pk)
    first = np.concatenate([[1] + [0] * (len(v) - 1) for v in pk])
    last = np.concatenate([[0] * (len(v) - 1) + [1] for v in pk])
    out = await tb.transfer(pack(tb.pin, {"value": vals, "first": first, "last": last}), len(pk))
    got = unpack(tb.pout, out)
    exact = np.array([int(v.sum()) for v in pk])
    exp, over = ops.accumulate(exact, AccumulatorSpec(tb.W, tb.policy))
    ctx = {"addends": pk, "exact": exact}
    compare("accumulate value", got["value"], exp, ctx, tb.monitor.cycles[-len(out):])
    compare("accumulate overflow", got["overflow"].astype(bool), over, ctx)
    cov = Coverage("accumulate", {"length": ["1", "2-8"],
                                  "operands": ["zero", "extreme", "random"],
                                  "overflow": [False, True]},
                   exclude=[{"operands": "zero", "overflow": True},
                            {"length": "1", "overflow": True}])
    lens = np.array([len(v) for v in pk])
    cov.sample(length=np.where(lens == 1, "1", "2-8"),
               operands=np.array(["zero", "extreme", "random"])[np.arange(len(pk)) % 3],
               overflow=over)
    dut._log.info("\n" + cov.summary())
    cov.check()
    sticky = [w["sticky_overflow"] for w in tb.monitor.watched]
    k = int(np.argmax(over))
    assert all(sticky[k + 1:]), "sticky overflow fell without a clear"
    await FallingEdge(dut.clk)
    dut.clear_overflow.value = 1
    await FallingEdge(dut.clk)
    dut.clear_overflow.value = 0
    await ReadOnly()
    assert int(dut.sticky_overflow.value) == 0, "clear_overflow did not clear the flag"


@pytest.mark.simulator
@pytest.mark.parametrize("sim", ["verilator", "icarus"])
@pytest.mark.parametrize("overflow", ["wrap", "saturate"])
def test_accumulate(cocotb_run, sim, overflow):
    # declared width 1 bit above the addend: sums of 3 or more extreme addends overflow it
    s = cocotb_run(sim, "accumulate", {"width": 13, "overflow": overflow, "addend_width": 12,
                                       "max_terms": 8}, MODULE)
    assert len(s.passed) == 1
