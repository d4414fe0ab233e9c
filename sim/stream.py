"""cocotb driver and monitor for the Amaranth ``lib.stream`` ports of the generated RTL.

A stream port ``p`` appears in Verilog as ``p__valid``, ``p__ready`` and ``p__payload``.
Timing convention (simulator independent): inputs are written just after the falling edge
of ``clk``; after ``ReadOnly`` the handshake (``valid & ready``, including the
combinational ``ready`` paths) is sampled; the rising edge that follows commits it. So
every transfer is seen exactly once, with the cycle number of the rising edge that takes
it.

:class:`StreamTB` owns the clock (``Clock(dut.clk, 10, unit="ns")``) and the synchronous
reset, and runs a :class:`StreamDriver` (random valid gaps) against a
:class:`StreamMonitor` (random backpressure), both seeded so a failure reproduces.
"""
from __future__ import annotations

import random

import cocotb
from cocotb.clock import Clock
from cocotb.simtime import get_sim_time
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

__all__ = ["StreamDriver", "StreamMonitor", "StreamTB", "PERIOD_NS"]

PERIOD_NS = 10


def _cycle() -> int:
    """Index of the next rising edge (edges at PERIOD_NS/2 + k * PERIOD_NS)."""
    return int(get_sim_time("ns") // PERIOD_NS)


class StreamDriver:
    """Feeds payload words into ``<prefix>__payload`` with ``valid`` high with probability
    ``p_valid`` per cycle; records the cycle each word was accepted."""

    def __init__(self, dut, prefix: str, rng: random.Random, p_valid: float = 1.0):
        self.valid = getattr(dut, f"{prefix}__valid")
        self.ready = getattr(dut, f"{prefix}__ready")
        self.payload = getattr(dut, f"{prefix}__payload")
        self.clk = dut.clk
        self.rng, self.p_valid = rng, p_valid
        self.words: list[int] = []
        self.idx = 0
        self.accepted_at: list[int] = []

    def send(self, words) -> None:
        self.words.extend(int(w) for w in words)

    @property
    def done(self) -> bool:
        return self.idx >= len(self.words)

    async def run(self) -> None:
        while True:
            await FallingEdge(self.clk)
            drive = self.idx < len(self.words) and (self.p_valid >= 1.0 or
                                                     self.rng.random() < self.p_valid)
            if drive:
                self.payload.value = self.words[self.idx]
            self.valid.value = int(drive)
            await ReadOnly()
            if drive and int(self.ready.value):
                self.accepted_at.append(_cycle())
                self.idx += 1


class StreamMonitor:
    """Collects ``<prefix>__payload`` words on handshakes, with ``ready`` high with
    probability ``p_ready`` per cycle; ``watch`` names extra outputs sampled with each word."""

    def __init__(self, dut, prefix: str, rng: random.Random, p_ready: float = 1.0, watch=()):
        self.valid = getattr(dut, f"{prefix}__valid")
        self.ready = getattr(dut, f"{prefix}__ready")
        self.payload = getattr(dut, f"{prefix}__payload")
        self.clk = dut.clk
        self.rng, self.p_ready = rng, p_ready
        self.watch = [(w, getattr(dut, w)) for w in watch]
        self.words: list[int] = []
        self.cycles: list[int] = []
        self.watched: list[dict] = []

    async def collect(self, n: int, timeout_cycles: int) -> None:
        start = _cycle()
        while len(self.words) < n:
            if _cycle() - start > timeout_cycles:
                raise AssertionError(f"timeout: {len(self.words)}/{n} outputs after "
                                     f"{timeout_cycles} cycles")
            await FallingEdge(self.clk)
            rdy = self.p_ready >= 1.0 or self.rng.random() < self.p_ready
            self.ready.value = int(rdy)
            await ReadOnly()
            if rdy and int(self.valid.value):
                self.words.append(int(self.payload.value))
                self.cycles.append(_cycle())
                if self.watch:
                    self.watched.append({k: int(h.value) for k, h in self.watch})
        await FallingEdge(self.clk)
        self.ready.value = 0


class StreamTB:
    """Clock, reset, one input stream driver and one output stream monitor.

    Parameters
    ----------
    dut : cocotb handle of the generated top module.
    seed : int
        Seeds the valid-gap and backpressure patterns.
    p_valid, p_ready : float
        Per-cycle probabilities of offering an input / accepting an output.
    """

    def __init__(self, dut, seed: int = 0, p_valid: float = 0.8, p_ready: float = 0.8,
                 in_port: str = "i", out_port: str = "o", watch=()):
        self.dut = dut
        self.rng = random.Random(seed)
        self.driver = StreamDriver(dut, in_port, self.rng, p_valid)
        self.monitor = StreamMonitor(dut, out_port, self.rng, p_ready, watch)
        self._task = None

    async def start(self, idle_inputs=()) -> None:
        """Start the clock, hold reset for two cycles with every input idle."""
        Clock(self.dut.clk, PERIOD_NS, unit="ns").start()
        self.driver.valid.value = 0
        self.monitor.ready.value = 0
        for name in idle_inputs:
            getattr(self.dut, name).value = 0
        self.dut.rst.value = 1
        for _ in range(2):
            await RisingEdge(self.dut.clk)
        await FallingEdge(self.dut.clk)
        self.dut.rst.value = 0
        self._task = cocotb.start_soon(self.driver.run())

    async def transfer(self, words, n_out: int, timeout_cycles: int | None = None):
        """Send ``words``, collect ``n_out`` output words; returns the new outputs."""
        first = len(self.monitor.words)
        self.driver.send(words)
        limit = timeout_cycles or (len(words) * 64 + n_out * 32 + 200)
        await self.monitor.collect(first + n_out, limit)
        return self.monitor.words[first:]


def entry_from_env() -> dict:
    """The generated module's manifest entry, passed to the testbench as ``DQT_ENTRY``
    (a JSON file path), with the test parameters from ``DQT_PARAMS`` (JSON) under
    ``"test"``."""
    import json
    import os
    with open(os.environ["DQT_ENTRY"]) as f:
        entry = json.load(f)
    entry["test"] = json.loads(os.environ.get("DQT_PARAMS", "{}"))
    entry["ports_by_name"] = {p["name"]: p for p in entry["ports"]}
    return entry
