"""Drive an Amaranth stream component in the Amaranth simulator (no external simulator).

``run_stream`` pushes payload beats into ``dut.i`` with random valid gaps, pulls ``dut.o``
with random back-pressure (both seeded, so each run is reproducible) and returns the output
payloads in order. Random stalls check that the handshake loses and duplicates nothing.
"""
from __future__ import annotations

import random

from amaranth.sim import Simulator

__all__ = ["run_stream", "as_int"]


def as_int(v):
    """Plain int of a simulator value (data.Const or int)."""
    if isinstance(v, int):
        return v
    return int(v.as_value().value) if hasattr(v, "as_value") else int(v)


def run_stream(dut, beats, n_out, *, seed=0, p_valid=0.8, p_ready=0.8, max_cycles=None,
               extra=None, getter=None):
    """Feed ``beats`` (payload values: ints, dicts or lists) and collect ``n_out`` outputs.

    ``getter(ctx)`` reads one output (default ``ctx.get(dut.o.payload)``); ``extra(ctx,
    cycle)`` may drive other inputs each cycle. Returns ``(outputs, cycles)``.
    """
    rng = random.Random(seed)
    outs = []
    state = {"cycles": 0}
    limit = max_cycles or (len(beats) * 40 + n_out * 20 + 200)

    async def bench(ctx):
        i = 0
        while len(outs) < n_out:
            if state["cycles"] > limit:
                raise AssertionError(f"timeout after {limit} cycles: {len(outs)}/{n_out} outputs")
            drive = i < len(beats) and rng.random() < p_valid
            if drive:
                ctx.set(dut.i.payload, beats[i])
            ctx.set(dut.i.valid, int(drive))
            rdy = rng.random() < p_ready
            ctx.set(dut.o.ready, int(rdy))
            if extra is not None:
                extra(ctx, state["cycles"])
            # testbench reads see settled combinational values, so this samples the handshake
            took = drive and ctx.get(dut.i.ready)
            got = rdy and ctx.get(dut.o.valid)
            if got:
                outs.append(getter(ctx) if getter else ctx.get(dut.o.payload))
            await ctx.tick()
            state["cycles"] += 1
            if took:
                i += 1

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return outs, state["cycles"]
