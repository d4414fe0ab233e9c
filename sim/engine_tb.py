"""cocotb driver of the layer engine through :class:`sim.harness.EngineHarness`.

The host convention (register writes, weight rows, per-channel constants, input beats,
output mapping) is :mod:`rtl.engine_protocol`'s; this module only moves it through the harness:
register and memory writes one per clock (a few hundred per layer), activation beats and
results in batches through the wide ``in_data``/``out_data`` ports, so the simulator runs
freely while the engine computes.
"""
from __future__ import annotations

import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, RisingEdge, Timer

from rtl.engine_protocol import EngineGeometry, LayerTile, dense_beat_arrays, plan_add
from golden.formats import DQTValueError

from .packing import pack_array, unpack_array
from .stream import PERIOD_NS

__all__ = ["EngineHarnessTB", "geometry_from_entry"]


def geometry_from_entry(entry: dict) -> EngineGeometry:
    return EngineGeometry.from_derived(entry["derived"])


def _flat(values, width):
    """Concatenate integers (element 0 in the low bits), each masked to ``width`` bits."""
    word = 0
    for j, v in enumerate(np.asarray(values, dtype=object).reshape(-1)):
        word |= (int(v) & ((1 << width) - 1)) << (j * width)
    return word


class EngineHarnessTB:
    """Clock, reset, configuration writes and batched streaming for the harnessed engine.

    ``stall=True`` turns on the harness's pseudo-random output backpressure.
    """

    def __init__(self, dut, entry: dict, stall: bool = False):
        self.dut = dut
        self.entry = entry
        self.geom = geometry_from_entry(entry)
        self.B = int(entry["batch"])
        self.elem_in, self.elem_out = entry["elem_in"], entry["elem_out"]
        self.ew_in, self.ew_out = self.elem_in["width"], self.elem_out["width"]
        self.stall = stall
        self._we = []
        self.cycles_busy = 0
        self.beats_in = 0

    async def start(self) -> None:
        d = self.dut
        # the clock toggles in the GPI layer (C++): no Python per edge while the engine runs
        Clock(d.clk, PERIOD_NS, unit="ns", impl="gpi").start()
        outputs = {"clk", "rst", "idle", "busy", "overflow", "out_data", "out_count",
                   "out_cycle", "cycle"}
        for p in self.entry["ports"]:
            if p["name"] not in outputs:
                getattr(d, p["name"]).value = 0
        d.stall.value = int(self.stall)
        d.rst.value = 1
        for _ in range(2):
            await RisingEdge(d.clk)
        await FallingEdge(d.clk)
        d.rst.value = 0

    # ---------------------------------------------------------------- register writes
    async def _write(self, we: str, **values) -> None:
        await FallingEdge(self.dut.clk)
        for name in self._we:
            getattr(self.dut, name).value = 0
        self._we = [we]
        for k, v in values.items():
            getattr(self.dut, k).value = v
        getattr(self.dut, we).value = 1

    async def _flush(self) -> None:
        await FallingEdge(self.dut.clk)
        for name in self._we:
            getattr(self.dut, name).value = 0
        self._we = []

    async def configure(self, cfg) -> None:
        for addr, val in cfg:
            await self._write("cfg_we", cfg_addr=int(addr), cfg_data=int(val) & 0xFFFFFFFF)
        await self._flush()

    async def load_tile(self, tile: LayerTile) -> None:
        """Write a tile's registers, weight rows and per-channel constants (engine idle)."""
        g = self.geom
        await self.configure(tile.cfg)
        for addr, rows in tile.weights:
            await self._write("w_we", w_addr=int(addr), w_data=_flat(rows, g.n))
        for grp, bias, M in tile.chans:
            await self._write("c_we", c_addr=int(grp), c_bias=_flat(bias, g.acc_max),
                              c_m=_flat(M, g.m_bits))
        await self._flush()

    # ---------------------------------------------------------------- streaming
    async def _batch(self, x, x2, bits, n_out: int, est_cycles: int):
        """Send beats (x, x2 [nb, pes], bits [nb]); return output fields and cycles."""
        d = self.dut
        nb = len(x)
        d.in_data.value = pack_array(self.elem_in, self.ew_in,
                                     {"x": x, "x2": x2, "bits": bits}, nb)
        d.in_count.value = nb
        d.in_go.value = 1
        await FallingEdge(d.clk)
        d.in_go.value = 0
        # 1 ns past a falling edge: never the same instant as a clock edge, so the reads
        # below and the writes after them are ordered against the clock unambiguously
        await Timer(max(1, est_cycles) * PERIOD_NS + 1, unit="ns")
        waited = est_cycles
        limit = 4 * est_cycles + 64 * (1 + self.stall)
        while not (int(d.idle.value) and int(d.out_count.value) >= n_out):
            if waited > limit:
                raise AssertionError(f"engine timeout: {int(d.out_count.value)}/{n_out} output "
                                     f"beats after {waited} cycles (idle={int(d.idle.value)})")
            await Timer(8 * PERIOD_NS, unit="ns")
            waited += 8
        got = int(d.out_count.value)
        if got != n_out:
            seen = unpack_array(self.elem_out, self.ew_out, int(d.out_data.value), got)
            raise AssertionError(f"engine produced {got} output beats, expected {n_out} "
                                 f"(last flags {seen['last'][:16].tolist()}, bits "
                                 f"{seen['bits'][:16].tolist()})")
        out = unpack_array(self.elem_out, self.ew_out, int(d.out_data.value), n_out)
        cyc_all = int(d.out_cycle.value)
        cyc = np.array([(cyc_all >> (32 * j)) & 0xFFFFFFFF for j in range(n_out)])
        d.out_clear.value = 1
        await FallingEdge(d.clk)
        d.out_clear.value = 0
        self.cycles_busy += waited + 2
        self.beats_in += nb
        return out, cyc

    async def run_dense(self, tile: LayerTile, rows, bits):
        """Run rows [R, K] (unsigned codes) with per-row ``bits`` through a loaded tile.

        Returns ``(y [R, C], over [R, C], cycle [R, C])`` for the tile's channels
        ``C = c1 - c0`` (y: requantized codes or declared-width accumulators).
        """
        g = self.geom
        R = len(rows)
        kb, G = tile.k_beats, tile.groups
        beats, bb = dense_beat_arrays(g, kb, rows, bits, tile.mode)
        # first beat of every row (the fusion engine's rows take fewer beats at lower b)
        first = np.concatenate([[0], np.cumsum([g.beats(kb, int(b), tile.mode)
                                                for b in np.broadcast_to(bits, (R,))])])
        per = max(1, min(self.B // kb, self.B // G))
        C = tile.c1 - tile.c0
        y = np.zeros((R, C), dtype=np.int64)
        over = np.zeros((R, C), dtype=bool)
        cyc = np.zeros((R, C), dtype=np.int64)
        L = g.lanes
        for r0 in range(0, R, per):
            r1 = min(R, r0 + per)
            sl = slice(first[r0], first[r1])
            n_out = (r1 - r0) * G
            est = max((r1 - r0) * kb, (r1 - r0) * G * kb) * (2 if self.stall else 1) + 12
            out, oc = await self._batch(beats[sl], np.zeros_like(beats[sl]), bb[sl], n_out, est)
            ridx, grp = np.divmod(np.arange(n_out), G)
            last = out["last"].astype(bool)
            if not np.array_equal(last, grp == G - 1):
                bad = int(np.nonzero(last != (grp == G - 1))[0][0])
                raise AssertionError(f"output beat {bad} of a batch: last={int(last[bad])}, "
                                     f"expected {int(grp[bad] == G - 1)} (group {grp[bad]} of {G})")
            for lane in range(L):
                c = grp * L + lane
                ok = c < C
                y[r0 + ridx[ok], c[ok]] = out["y"][ok, lane]
                over[r0 + ridx[ok], c[ok]] = ((out["over"][ok] >> lane) & 1).astype(bool)
                cyc[r0 + ridx[ok], c[ok]] = oc[ok]
        return y, over, cyc

    async def run_add(self, constants, q1, q2):
        """Residual add of two equal-shape code arrays through the engine's ADD mode."""
        g = self.geom
        q1 = np.asarray(q1, dtype=np.int64)
        shape = q1.shape
        a = q1.reshape(-1)
        b = np.asarray(q2, dtype=np.int64).reshape(-1)
        K = g.pes * min(g.kb_max, max(1, self.B // 2))
        R = -(-a.size // K)
        A = np.zeros(R * K, dtype=np.int64)
        Bv = np.zeros(R * K, dtype=np.int64)
        A[:a.size], Bv[:b.size] = a, b
        await self.configure(plan_add(g, constants, K))
        kb = K // g.pes
        pad = ((0, 0), (0, g.x_fields - g.pes))
        xa, xb = np.pad(A.reshape(R * kb, g.pes), pad), np.pad(Bv.reshape(R * kb, g.pes), pad)
        ys, cycs = [], []
        per_rows = max(1, self.B // kb)
        for r0 in range(0, R, per_rows):
            r1 = min(R, r0 + per_rows)
            sl = slice(r0 * kb, r1 * kb)
            n_out = (r1 - r0) * kb
            out, oc = await self._batch(xa[sl], xb[sl], np.full(n_out, g.n), n_out,
                                        n_out * (2 if self.stall else 1) + 8)
            ys.append(out["y"][:, :g.pes].reshape(-1))
            cycs.append(np.repeat(oc, g.pes))
        y = np.concatenate(ys)[:a.size].reshape(shape)
        return y, np.concatenate(cycs)[:a.size].reshape(shape)
