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
    the port is sampled (latched) on the ``in_go`` clock edge.
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

from amaranth.hdl import (ClockDomain, ClockSignal, DomainRenamer, Module, ResetSignal, Shape, Signal,
                          Value, unsigned)
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from rtl._common import RTLParamError, check_int
from rtl.engine import Engine

__all__ = ["EngineHarness"]



class _HarnessCore(wiring.Component):
    """The harness logic (parameters as :class:`EngineHarness`, which wraps it so that the
    top module holds nothing but ports)."""

    def __init__(self, engine_params: dict, batch: int = 64):
        self._batch = check_int("batch", batch, 1, 1024)
        try:
            self.engine = Engine(**engine_params)
        except TypeError as e:
            raise RTLParamError(f"engine parameters {engine_params!r}: {e}") from None
        eng = self.engine
        lay_i = eng.signature.members["i"].signature.members["payload"].shape
        lay_o = eng.signature.members["o"].signature.members["payload"].shape
        # Ports are plain bit vectors (views are made inside): a layout-typed port makes the
        # Verilog backend declare a named wire per field and element in the module that
        # drives it (thousands for out_data), each one evaluated on every eval().
        self._lay = {"in_data": data.ArrayLayout(lay_i, self._batch),
                     "out_data": data.ArrayLayout(lay_o, self._batch),
                     "out_cycle": data.ArrayLayout(32, self._batch)}
        members = {
            "in_data": In(Shape.cast(self._lay["in_data"]).width),
            "in_count": In(range(self._batch + 1)), "in_go": In(1),
            "out_data": Out(Shape.cast(self._lay["out_data"]).width),
            "out_cycle": Out(Shape.cast(self._lay["out_cycle"]).width),
            "out_count": Out(range(self._batch + 1)), "out_clear": In(1),
            "stall": In(1), "idle": Out(1), "cycle": Out(32),
        }
        # every other engine port (configuration, weight and channel writes, flags) passes
        # through under its own name, whatever the engine's register interface looks like
        self._pass = [k for k in eng.signature.members if k not in ("i", "o")]
        for name in self._pass:
            mem = eng.signature.members[name]
            shape = mem.shape
            if isinstance(shape, data.ShapeCastable):
                shape = unsigned(Shape.cast(shape).width)
            members[name] = In(shape) if mem.flow == wiring.In else Out(shape)
        super().__init__(members)

    batch = property(lambda self: self._batch)

    def elaborate(self, platform):
        m = Module()
        # No combinational path from a port into the datapath: Verilator re-evaluates
        # input-driven logic (its "ico" region) on every eval(). So every input is registered
        # before use (configuration and memory writes, stall, reset: one cycle later than
        # written) and the batch is latched at in_go. Reset included because Amaranth ends
        # every register's next-state process with ``if (rst) next = init``: the engine and
        # the harness run in domain "h", whose reset is ``rst`` registered once.
        m.domains.h = ClockDomain("h", local=True)
        m.domains.hr = ClockDomain("hr", local=True, reset_less=True)
        rst_r = Signal(init=1)
        m.d.comb += [ClockSignal("h").eq(ClockSignal("sync")), ClockSignal("hr").eq(ClockSignal("sync")),
                     ResetSignal("h").eq(rst_r)]
        m.d.hr += rst_r.eq(ResetSignal("sync"))
        m.submodules.engine = eng = DomainRenamer("h")(self.engine)
        B = self._batch
        for name in self._pass:
            if eng.signature.members[name].flow == wiring.In:
                m.d.h += Value.cast(getattr(eng, name)).eq(getattr(self, name))
            else:
                m.d.comb += getattr(self, name).eq(Value.cast(getattr(eng, name)))
        in_data = data.View(self._lay["in_data"], self.in_data)
        out_data = data.View(self._lay["out_data"], self.out_data)
        out_cycle = data.View(self._lay["out_cycle"], self.out_cycle)
        m.d.h += self.cycle.eq(self.cycle + 1)

        # sender: beats 0 .. in_count-1 of the batch latched at in_go, one per handshake
        ptr = Signal(range(B + 1))
        active = Signal()
        buf = Signal(self._lay["in_data"])
        with m.If(self.in_go):
            m.d.h += [ptr.eq(0), active.eq(self.in_count != 0), buf.eq(in_data)]
        m.d.comb += [eng.i.valid.eq(active), eng.i.payload.eq(buf[ptr])]
        with m.If(active & eng.i.ready & ~self.in_go):
            m.d.h += ptr.eq(ptr + 1)
            with m.If(ptr + 1 >= self.in_count):
                m.d.h += active.eq(0)

        # capture: every output beat into the next slot
        lfsr = Signal(16, init=0xACE1)
        m.d.h += lfsr.eq((lfsr << 1) | (lfsr[15] ^ lfsr[13] ^ lfsr[12] ^ lfsr[10]))
        stall = Signal()
        m.d.h += stall.eq(self.stall)
        m.d.comb += eng.o.ready.eq(~stall | lfsr[0])
        with m.If(self.out_clear):
            m.d.h += self.out_count.eq(0)
        with m.Elif(eng.o.valid & eng.o.ready & (self.out_count < B)):
            m.d.h += [out_data[self.out_count].eq(eng.o.payload),
                      out_cycle[self.out_count].eq(self.cycle),
                      self.out_count.eq(self.out_count + 1)]
        m.d.comb += self.idle.eq(~active & ~eng.busy)
        return m


class EngineHarness(wiring.Component):
    """Wrap ``rtl.engine.Engine(**engine_params)`` with batch input/output buffers.

    Parameters
    ----------
    engine_params : dict
        Constructor arguments of :class:`rtl.engine.Engine`.
    batch : int
        Beats per batch in each direction (1..1024).

    The top module is a shell of ports around the harness logic: Verilator builds it with
    only the top module's signals VPI-visible (:func:`sim.runner.build` ``public="ports"``),
    so no internal signal counts as externally writable and the datapath is evaluated only
    when its registers change.
    """

    def __init__(self, engine_params: dict, batch: int = 64):
        self._core = _HarnessCore(engine_params, batch)
        self.engine = self._core.engine
        members = dict(self._core.signature.members)
        super().__init__(members)

    batch = property(lambda self: self._core.batch)

    def elaborate(self, platform):
        m = Module()
        m.submodules.harness = core = self._core
        for name, member in self.signature.members.items():
            if member.flow == wiring.In:
                m.d.comb += getattr(core, name).eq(getattr(self, name))
            else:
                m.d.comb += getattr(self, name).eq(getattr(core, name))
        return m
