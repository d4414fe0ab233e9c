"""Drive :class:`rtl.engine.Engine` in the Amaranth simulator with the host convention of
:mod:`rtl.engine_protocol` (register writes, weight rows, channel constants, input beats)."""
from __future__ import annotations

import random

from amaranth.sim import Simulator

__all__ = ["EngineRun", "run_engine"]


class EngineRun:
    """One job: optional programming writes, then beats in, ``n_out`` output beats out."""

    def __init__(self, cfg=(), weights=(), chans=(), beats=(), n_out=0):
        self.cfg, self.weights, self.chans = list(cfg), list(weights), list(chans)
        self.beats, self.n_out = list(beats), n_out
        self.outs = []
        self.stream_cycles = None  # cycles from the first beat offered to the last output
        self.sticky = None          # the overflow flag after the job


def _out_dict(v):
    return {"y": [int(x) for x in v.y], "over": int(v.over), "bits": int(v.bits),
            "last": int(v.last)}


def run_engine(dut, jobs, *, seed=0, p_valid=0.85, p_ready=0.85, max_cycles=200000):
    """Run ``jobs`` (list of :class:`EngineRun`) back to back; fills their ``outs``."""
    rng = random.Random(seed)

    async def bench(ctx):
        cycles = 0
        for job in jobs:
            for addr, val in job.cfg:
                ctx.set(dut.cfg_we, 1)
                ctx.set(dut.cfg_addr, addr)
                ctx.set(dut.cfg_data, val)
                await ctx.tick()
            ctx.set(dut.cfg_we, 0)
            for addr, rows in job.weights:
                ctx.set(dut.w_we, 1)
                ctx.set(dut.w_addr, addr)
                ctx.set(dut.w_data, rows)
                await ctx.tick()
            ctx.set(dut.w_we, 0)
            for addr, bias, mval in job.chans:
                ctx.set(dut.c_we, 1)
                ctx.set(dut.c_addr, addr)
                ctx.set(dut.c_bias, bias)
                ctx.set(dut.c_m, mval)
                await ctx.tick()
            ctx.set(dut.c_we, 0)
            i, start = 0, cycles
            while len(job.outs) < job.n_out:
                cycles += 1
                if cycles > max_cycles:
                    raise AssertionError(f"engine timeout: {len(job.outs)}/{job.n_out} outputs")
                drive = i < len(job.beats) and rng.random() < p_valid
                if drive:
                    ctx.set(dut.i.payload, job.beats[i])
                ctx.set(dut.i.valid, int(drive))
                rdy = rng.random() < p_ready
                ctx.set(dut.o.ready, int(rdy))
                took = drive and ctx.get(dut.i.ready)
                if rdy and ctx.get(dut.o.valid):
                    job.outs.append(_out_dict(ctx.get(dut.o.payload)))
                await ctx.tick()
                if took:
                    i += 1
            job.stream_cycles = cycles - start
            ctx.set(dut.i.valid, 0)
            ctx.set(dut.o.ready, 0)
            # drain: the engine must go idle with nothing left over
            for _ in range(12):
                assert not ctx.get(dut.o.valid), "engine produced more beats than expected"
                await ctx.tick()
            assert not ctx.get(dut.busy), "engine still busy after its last output"
            job.sticky = int(ctx.get(dut.overflow))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return jobs
