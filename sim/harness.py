"""Batch harness around the layer engine for high-volume verification (Amaranth).

Driving the engine's stream ports one cycle at a time from Python costs tens of
microseconds per clock. The harness moves the per-cycle work into the simulated design:
the testbench writes a batch of up to ``batch`` input beats at once into a wide port,
pulses ``in_go``, lets the simulator run freely, and reads all captured output beats
back from a wide port. Python then touches the simulator a handful of times per batch
instead of once per clock.

Members
-------
in_data : In(ArrayLayout(engine input payload, batch))
    Beats ``0 .. in_count - 1`` are streamed into ``engine.i`` in order after ``in_go``;
    the port must hold its value until ``idle`` rises again.
in_count : In(range(batch + 1)), in_go : In(1)
out_data : Out(ArrayLayout(engine output payload, batch))
    Output beat j of the batch lands in element j (in arrival order).
out_cycle : Out(ArrayLayout(32, batch))
    The ``cycle`` value at which output beat j was taken.
out_count : Out(range(batch + 1)); out_clear : In(1) empties the capture buffer.
stall : In(1)
    When 1, ``engine.o.ready`` follows a 16-bit LFSR (about half the cycles), so the
    engine's backpressure path is exercised at full simulation speed.
idle : Out(1)
    No beat left to send and the engine is not busy.
cycle : Out(32)
    Free-running cycle counter (for throughput figures and failure reports).
every other engine port
    The engine's configuration, weight and channel write ports and its flags, passed
    through unchanged under the same names.
"""
from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from rtl._common import RTLParamError, check_int
from rtl.engine import Engine

__all__ = ["EngineHarness"]



class EngineHarness(wiring.Component):
    """Wrap ``rtl.engine.Engine(**engine_params)`` with batch input/output buffers.

    Parameters
    ----------
    engine_params : dict
        Constructor arguments of :class:`rtl.engine.Engine`.
    batch : int
        Beats per batch in each direction (1..1024).
    """

    def __init__(self, engine_params: dict, batch: int = 64):
        self._batch = check_int("batch", batch, 1, 1024)
        try:
            self.engine = Engine(**engine_params)
        except TypeError as e:
            raise RTLParamError(f"engine parameters {engine_params!r}: {e}") from None
        eng = self.engine
        lay_i = eng.signature.members["i"].signature.members["payload"].shape
        lay_o = eng.signature.members["o"].signature.members["payload"].shape
        members = {
            "in_data": In(data.ArrayLayout(lay_i, self._batch)),
            "in_count": In(range(self._batch + 1)), "in_go": In(1),
            "out_data": Out(data.ArrayLayout(lay_o, self._batch)),
            "out_cycle": Out(data.ArrayLayout(32, self._batch)),
            "out_count": Out(range(self._batch + 1)), "out_clear": In(1),
            "stall": In(1), "idle": Out(1), "cycle": Out(32),
        }
        # every other engine port (configuration, weight and channel writes, flags) passes
        # through under its own name, whatever the engine's register interface looks like
        self._pass = [k for k in eng.signature.members if k not in ("i", "o")]
        for name in self._pass:
            members[name] = eng.signature.members[name]
        super().__init__(members)

    batch = property(lambda self: self._batch)

    def elaborate(self, platform):
        m = Module()
        m.submodules.engine = eng = self.engine
        B = self._batch
        for name in self._pass:
            if eng.signature.members[name].flow == wiring.In:
                m.d.comb += getattr(eng, name).eq(getattr(self, name))
            else:
                m.d.comb += getattr(self, name).eq(getattr(eng, name))
        m.d.sync += self.cycle.eq(self.cycle + 1)

        # sender: beats 0 .. in_count-1 of in_data, one per accepted handshake
        ptr = Signal(range(B + 1))
        active = Signal()
        with m.If(self.in_go):
            m.d.sync += [ptr.eq(0), active.eq(self.in_count != 0)]
        m.d.comb += [eng.i.valid.eq(active), eng.i.payload.eq(self.in_data[ptr])]
        with m.If(active & eng.i.ready & ~self.in_go):
            m.d.sync += ptr.eq(ptr + 1)
            with m.If(ptr + 1 >= self.in_count):
                m.d.sync += active.eq(0)

        # capture: every output beat into the next slot
        lfsr = Signal(16, init=0xACE1)
        m.d.sync += lfsr.eq((lfsr << 1) | (lfsr[15] ^ lfsr[13] ^ lfsr[12] ^ lfsr[10]))
        m.d.comb += eng.o.ready.eq(~self.stall | lfsr[0])
        with m.If(self.out_clear):
            m.d.sync += self.out_count.eq(0)
        with m.Elif(eng.o.valid & eng.o.ready & (self.out_count < B)):
            m.d.sync += [self.out_data[self.out_count].eq(eng.o.payload),
                         self.out_cycle[self.out_count].eq(self.cycle),
                         self.out_count.eq(self.out_count + 1)]
        m.d.comb += self.idle.eq(~active & ~eng.busy)
        return m
