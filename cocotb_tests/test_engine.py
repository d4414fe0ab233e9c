"""Layer engine (``rtl.engine.Engine``, through ``sim.harness.EngineHarness``) against the
golden model (``rtl.engine_protocol.reference_dense`` = ``golden.layers.qdense`` per row, and
``golden.ops.int_add`` for the ADD mode).

Random dense layers with every precision of the candidate set changing from vector to
vector (mid-stream, no reconfiguration), floor and round nested modes, wrap and saturate
at declared widths small enough to overflow, with and without requantization, a PACT clip,
more output channels than lanes (several groups and a tile split), and the residual add;
random output backpressure from the harness's LFSR. Coverage: precision x operand class x
overflow over every dense output element.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import cocotb

from golden import defaults, ops
from rtl.engine_protocol import plan_dense, reference_dense
from golden.formats import AccumulatorSpec, AddConstants, IntFormat
from sim.checker import compare
from sim.coverage import Coverage
from sim.engine_tb import EngineHarnessTB
from sim.stream import entry_from_env

MODULE = Path(__file__).stem


def _layer(rng, geom, O, K, acc_width):
    n = geom.n
    w = rng.integers(-(1 << (n - 1)), 1 << (n - 1), (O, K))
    w[0] = -(1 << (n - 1))                    # directed: an all-minimum weight row
    if O > 1:
        w[1] = (1 << (n - 1)) - 1             # and an all-maximum one
    lim = 1 << (acc_width - 2)
    bias = rng.integers(-lim, lim, O)
    M = rng.integers(1, 1 << 14, O)
    return w, bias, M


def _rows(rng, geom, R, K, directed):
    x = rng.integers(0, 1 << geom.n, (R, K))
    x[0:2 * directed:2] = 0                    # directed: zero vectors
    x[1:2 * directed:2] = (1 << geom.n) - 1    # and all-maximum ones
    return x


@cocotb.test()
@cocotb.parametrize(case=[
    # (mode, overflow, requant, clip, O, K, acc_width)
    ("round", "wrap", True, None, 12, 36, 18),
    ("floor", "saturate", True, 200, 5, 20, 17),
    ("floor", "wrap", False, None, 20, 9, 16),
    ("round", "saturate", False, None, 8, 64, 19),
])
async def dense_layers(dut, case):
    """Dense layers, precision changing every vector, with output backpressure."""
    mode, overflow, requant, clip, O, K, W = case
    e = entry_from_env()
    tb = EngineHarnessTB(dut, e, stall=True)
    await tb.start()
    g = tb.geom
    rng = np.random.default_rng(O * K + W)
    cands = list(g.candidates or range(1, g.n + 1))
    w, bias, M = _layer(rng, g, O, K, W)
    nc = len(cands)
    R = 6 * nc
    x = _rows(rng, g, R, K, nc)
    # one zero and one all-maximum vector per precision, then random vectors in a random
    # precision order: the precision changes between consecutive vectors
    bits = np.array([cands[(i // 2) % nc] if i < 2 * nc else cands[i % nc] for i in range(R)])
    rng.shuffle(bits[2 * nc:])
    S = 14
    y = np.zeros((R, O), dtype=np.int64)
    ov = np.zeros((R, O), dtype=bool)
    cyc = np.zeros((R, O), dtype=np.int64)
    tiles = plan_dense(g, w, bias, M, S, W, overflow, requant, clip, mode)
    for t in tiles:
        await tb.load_tile(t)
        yy, oo, cc = await tb.run_dense(t, x, bits)
        y[:, t.c0:t.c1], ov[:, t.c0:t.c1], cyc[:, t.c0:t.c1] = yy, oo, cc
    acc = AccumulatorSpec(W, overflow)
    ey, eo = reference_dense(x, w, bias, M, S, g.n, bits, mode, acc, requant, clip)
    ctx = {"bits": np.repeat(bits[:, None], O, 1), "x_row": x}
    compare(f"engine dense {case}", y, ey, ctx, cyc[:, 0])
    compare(f"engine overflow flags {case}", ov, eo, ctx, cyc[:, 0])
    cov = Coverage("engine dense", {"bits": cands, "operands": ["zero", "extreme", "random"],
                                    "overflow": [False, True]},
                   exclude=[{"operands": "zero", "overflow": True}])
    cls_row = np.where((x == 0).all(1), "zero", np.where((x == x.max()).all(1), "extreme", "random"))
    cls = np.repeat(cls_row[:, None], O, 1)
    cov.sample(bits=np.repeat(bits[:, None], O, 1).reshape(-1), operands=cls.reshape(-1),
               overflow=eo.reshape(-1))
    dut._log.info("\n" + cov.summary())
    if overflow == "wrap" and requant:  # the case built to reach every bin
        cov.check()


@cocotb.test()
async def residual_add(dut):
    """ADD mode: every code pair corner plus random pairs, golden ``int_add``."""
    e = entry_from_env()
    tb = EngineHarnessTB(dut, e, stall=True)
    await tb.start()
    g = tb.geom
    c = AddConstants.from_scales(0.05, 0, 0.04, 0, 0.06, 0, IntFormat(g.n, False))
    rng = np.random.default_rng(11)
    hi = (1 << g.n) - 1
    corners = np.array([0, 1, hi - 1, hi])
    a, b = np.meshgrid(corners, corners)
    q1 = np.concatenate([a.reshape(-1), rng.integers(0, hi + 1, 700)])
    q2 = np.concatenate([b.reshape(-1), rng.integers(0, hi + 1, 700)])
    y, cyc = await tb.run_add(c, q1, q2)
    compare("engine add", y, ops.int_add(q1, q2, c), {"q1": q1, "q2": q2}, cyc)


# ------------------------------------------------------------------------------- pytest
#: Engine geometry shared with the whole-network test and the report (one build serves
#: both simulations): the catalog's engine sizing.
ENGINE = dict(defaults.ENGINE)


@pytest.mark.slow
@pytest.mark.simulator
@pytest.mark.parametrize("sim", ["verilator", "icarus"])
def test_engine(engine_run, sim):
    s = engine_run(sim, ENGINE, MODULE)
    assert len(s.passed) == 5
