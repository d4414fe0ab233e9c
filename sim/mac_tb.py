"""The packet testbench of the dot-product MACs (``nested_mac``, ``bitserial_mac``,
``int_mac``, ``fusion_mac``): one testbench for the four, since they share ports and packet
convention (the integer MAC has no ``bits`` field; the fusion MAC uses the first
``fusion_products_per_beat(n, bits)`` lanes of a beat, and the testbench fills the others
with random codes it must ignore).

Stimulus: packets of 1..4 beats, each packet at its own precision (so the precision changes
mid-stream between consecutive dot products), operands drawn as directed corners (all
zero, all at the range extremes) and uniform random, biases uniform or pushed to the
declared width's edges so that both overflow outcomes occur; random valid gaps and
backpressure. Scoreboard: ``golden.ops.nested_mac`` / ``bitserial_mac`` / ``int_mac``
per packet, value and overflow flag, and the sticky flag with its clear.
Coverage: precision x operand class x overflow (a zero-operand packet cannot overflow:
its sum is the in-range bias).

The cocotb modules ``cocotb_tests/test_<operator>.py`` import the tests defined here.
"""
from __future__ import annotations

import numpy as np

import cocotb
from cocotb.triggers import FallingEdge, ReadOnly

from golden import ops
from golden.formats import AccumulatorSpec
from sim.checker import compare
from sim.coverage import Coverage, operand_class
from sim.packing import pack, unpack
from sim.stream import StreamTB, entry_from_env

__all__ = ["MacTB", "random_packets", "precision_change_every_beat_stream"]


class MacTB(StreamTB):
    """Clock, reset, packet driver on ``i``, result monitor on ``o``, golden model."""

    def __init__(self, dut, entry, seed, p_valid=0.8, p_ready=0.7):
        super().__init__(dut, seed=seed, p_valid=p_valid, p_ready=p_ready,
                         watch=("sticky_overflow",))
        d = entry["derived"]
        self.component = entry["component"]
        self.n, self.P = d["n"], d["pes"]
        self.W = d["acc_width"]
        self.overflow = d["overflow"]
        self.mode = d.get("mode", "floor")
        self.variant = entry["params"].get("variant", "right")
        self.inputs = entry["params"].get("inputs", "master")  # fusion_mac: b-bit codes in
        self.cands = d.get("candidates", [self.n])
        self.has_bits = self.component != "int_mac"
        self.pin = entry["ports_by_name"]["i__payload"]
        self.pout = entry["ports_by_name"]["o__payload"]
        self.rng = np.random.default_rng(seed)

    # ------------------------------------------------------------------ stimulus
    def width(self, bits) -> int:
        """The precision a beat at ``bits`` runs at (outside the candidates: full)."""
        return bits if bits in self.cands else self.n

    def per_beat(self, bits) -> int:
        """Terms a beat at ``bits`` carries."""
        if self.component == "fusion_mac":
            return ops.fusion_products_per_beat(self.n, self.width(bits))
        return self.P

    def packets(self, count, bits_list=None):
        """Random packets: list of (x [K], w [K], bits, bias, class) with K = beats * the
        terms per beat."""
        n, rng = self.n, self.rng
        xmax, wlo, whi = (1 << n) - 1, -(1 << (n - 1)), (1 << (n - 1)) - 1
        blim = 1 << (self.W - 1)
        out = []
        nc = len(bits_list) if bits_list else 1
        for i in range(count):
            beats = int(rng.integers(1, 5))
            # kind cycles fastest, then precision, so every (kind, precision) pair occurs
            bits = int(bits_list[(i // 5) % nc]) if bits_list else int(rng.choice(self.cands))
            K = beats * self.per_beat(bits)
            kind = i % 5
            up = (i // (5 * nc)) % 2 == 0
            if kind == 0:                                   # directed: zero operands
                x = np.zeros(K, np.int64) if up else rng.integers(0, xmax + 1, K)
                w = rng.integers(wlo, whi + 1, K) if up else np.zeros(K, np.int64)
            elif kind == 1:                                 # directed: range extremes
                x = np.full(K, xmax)
                w = np.full(K, whi if up else wlo)
            else:
                x = rng.integers(0, xmax + 1, K)
                w = rng.integers(wlo, whi + 1, K)
            edge_hi = int(blim - 1 - rng.integers(0, 4))
            edge_lo = int(-blim + rng.integers(0, 4))
            if kind in (1, 3):
                # bias at the width's edge on the side of the sum (overflows unless the sum
                # is 0) or, for every other extreme packet, on the opposite side (fits)
                s = self._exact(x, w, bits)
                same = kind == 3 or (i // (10 * nc)) % 2 == 0
                pos = (s >= 0) == same
                bias = edge_hi if pos else edge_lo
            else:
                bias = int(rng.integers(-blim, blim))
            out.append((x.astype(np.int64), w.astype(np.int64), bits, bias))
        return out

    def _exact(self, x, w, bits):
        """Exact product sum in master units (no bias, no overflow policy)."""
        wide = AccumulatorSpec(62, "wrap")
        if self.component == "int_mac":
            return int(ops.int_mac(x, w, wide, 0, self.n)[0])
        return int(ops.nested_mac(x, w, self.n, bits, wide, self.mode, 0)[0])

    def beats(self, packets):
        rows = {"x": [], "w": [], "bias": [], "first": [], "last": []}
        if self.has_bits:
            rows["bits"] = []
        for x, w, bits, bias in packets:
            if self.component == "fusion_mac":  # lanes beyond P(b): random, to be ignored
                b = self.width(bits)
                if self.inputs == "nested":  # the b-bit codes go in (golden nested_shift)
                    x = ops.nested_shift(x, self.n, b, self.mode)
                    w = ops.nested_shift(w, self.n, b, self.mode, signed=True)
                xs, ws = ops.fusion_beats(x, w, self.n, b, fill=self.rng,
                                          width=b if self.inputs == "nested" else self.n)
            else:
                xs, ws = x.reshape(-1, self.P), w.reshape(-1, self.P)
            nb = len(xs)
            for j in range(nb):
                rows["x"].append(xs[j])
                rows["w"].append(ws[j])
                rows["bias"].append(bias if j == 0 else 0)
                rows["first"].append(int(j == 0))
                rows["last"].append(int(j == nb - 1))
                if self.has_bits:
                    rows["bits"].append(bits)
        return pack(self.pin, {k: np.array(v) for k, v in rows.items()})

    # ------------------------------------------------------------------ model
    def model(self, packets):
        acc = AccumulatorSpec(self.W, self.overflow)
        vals, overs = [], []
        for x, w, bits, bias in packets:
            if self.component == "int_mac":
                v, o = ops.int_mac(x, w, acc, bias, self.n)
            elif self.component == "bitserial_mac":
                v, o = ops.bitserial_mac(x, w, self.n, bits, acc, self.mode, bias)
            elif self.component == "fusion_mac":
                v, o = ops.fusion_mac(x, w, self.n, self.width(bits), acc, self.mode, bias)
            else:
                v, o = ops.nested_mac(x, w, self.n, bits, acc, self.mode, bias, self.variant)
            vals.append(int(v))
            overs.append(bool(o))
        return np.array(vals), np.array(overs)

    async def check(self, packets, what):
        words = self.beats(packets)
        out = await self.transfer(words, len(packets))
        got = unpack(self.pout, out)
        exp, over = self.model(packets)
        ctx = {"bits": [p[2] for p in packets], "bias": [p[3] for p in packets],
               "x": [p[0] for p in packets], "w": [p[1] for p in packets]}
        cyc = self.monitor.cycles[-len(out):]
        compare(f"{what} value", got["acc"], exp, ctx, cyc)
        compare(f"{what} overflow flag", got["overflow"].astype(bool), over, ctx, cyc)
        return exp, over


def _coverage(tb, packets, over):
    cov = Coverage(f"{tb.component}", {"bits": tb.cands if tb.has_bits else [tb.n],
                                       "operands": ["zero", "extreme", "random"],
                                       "overflow": [False, True]},
                   exclude=[{"operands": "zero", "overflow": True}])
    xmax, wlo, whi = (1 << tb.n) - 1, -(1 << (tb.n - 1)), (1 << (tb.n - 1)) - 1
    cls = [operand_class(p[0][None], p[1][None], (xmax,), (wlo, whi))[0] for p in packets]
    cov.sample(bits=[p[2] if tb.has_bits else tb.n for p in packets], operands=cls, overflow=over)
    return cov


@cocotb.test()
@cocotb.parametrize(pressure=[(1.0, 1.0), (0.7, 0.6)])
async def random_packets(dut, pressure):
    """Every precision, corners and random operands, both overflow outcomes, with the
    precision changing between consecutive packets; full rate and random stalls."""
    e = entry_from_env()
    tb = MacTB(dut, e, seed=e["test"].get("seed", 0) + int(pressure[0] * 10), p_valid=pressure[0],
               p_ready=pressure[1])
    await tb.start(idle_inputs=("clear_overflow",))
    count = e["test"].get("packets", 30) * len(tb.cands if tb.has_bits else [1])
    pk = tb.packets(count, tb.cands if tb.has_bits else None)
    _, over = await tb.check(pk, f"{tb.component} packets")
    cov = _coverage(tb, pk, over)
    dut._log.info("\n" + cov.summary())
    cov.check()
    # sticky flag: high once any result overflowed, until a clear
    sticky = [w["sticky_overflow"] for w in tb.monitor.watched]
    first = int(np.argmax(over)) if over.any() else None
    if first is not None:
        assert all(sticky[first + 1:] or [1]), "sticky overflow fell without a clear"
        await FallingEdge(dut.clk)
        dut.clear_overflow.value = 1
        await FallingEdge(dut.clk)
        dut.clear_overflow.value = 0
        await ReadOnly()
        assert int(dut.sticky_overflow.value) == 0, "clear_overflow did not clear the sticky flag"


@cocotb.test()
async def precision_change_every_beat_stream(dut):
    """Back-to-back one-beat packets cycling through every precision at full rate."""
    e = entry_from_env()
    tb = MacTB(dut, e, seed=99, p_valid=1.0, p_ready=1.0)
    await tb.start(idle_inputs=("clear_overflow",))
    n = tb.n
    cands = tb.cands if tb.has_bits else [n]
    pk = []
    for i in range(4 * len(cands)):
        b = int(cands[i % len(cands)])
        x = tb.rng.integers(0, 1 << n, tb.per_beat(b))
        w = tb.rng.integers(-(1 << (n - 1)), 1 << (n - 1), tb.per_beat(b))
        pk.append((x, w, b, 0))
    await tb.check(pk, f"{tb.component} per-beat precision")
