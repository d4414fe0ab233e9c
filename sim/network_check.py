"""The whole-network check, independent of the driver: one walk over the network's layers.

Per mode, :func:`golden.network.run_network` with ``trace=True`` gives every layer's
output; the engine then runs the network itself, each layer fed with the *engine's* output
of the previous layers (so a wrong element anywhere propagates and is caught where it
first appears): linear and conv2d layers (conv2d through the host's im2col, as
``docs/rtl.md`` specifies), the residual add in the engine's ADD mode, pooling, clip and
flatten as host steps, and in dynamic mode the controller's two linear layers on the
engine, whose logits pick the precisions of the controlled layers. Every element of every
layer is compared with the golden trace in bulk (numpy); per-layer overflow counts are
compared too.

The engine is reached through a driver object with coroutine methods ``load_tile``,
``run_dense``, ``run_add`` and attributes ``geom``, ``cycles_busy``: the cocotb driver
(:class:`sim.engine_tb.EngineHarnessTB`, whose methods wait on clock edges) or the
Verilator-native one (:class:`sim.batch.BatchEngine`, whose methods return at once; run
with :func:`sim.batch.run_now`). Both therefore check, count and report identically.
"""
from __future__ import annotations

import time

import numpy as np

from golden import layers as L
from rtl.engine_protocol import conv_from_rows, conv_rows, plan_network_layer
from golden.formats import AddConstants, DQTValueError, IntFormat
from golden.network import QUANT_TYPES, run_network

__all__ = ["run_on_engine", "merge_reports", "SyncDriver"]


class SyncDriver:
    """The coroutine interface of the network walk for a driver whose calls complete at once
    (:class:`sim.batch.BatchEngine`, :class:`sim.uart_host.UartEngine`): ``load``,
    ``dense`` and ``add`` as ``load_tile``, ``run_dense`` and ``run_add``."""

    async def load_tile(self, tile):
        self.load(tile)

    async def run_dense(self, tile, rows, bits):
        return self.dense(tile, rows, bits)

    async def run_add(self, constants, q1, q2):
        return self.add(constants, q1, q2)


def _host_layer(l, x):
    """Pooling, clip and flatten: host steps, with the golden layer functions."""
    t = l["type"]
    if t == "maxpool":
        k = x.shape[-1] if l.get("global") else l["k"]
        return L.max_pool(x, k, x.shape[-1] if l.get("global") else l["stride"])
    if t == "avgpool":
        if l.get("global"):
            return L.avg_pool(x, x.shape[-1], x.shape[-1])
        return L.avg_pool(x, l["k"], l["stride"])
    if t == "clip":
        return L.clip(x, l["lo"], l["hi"])
    if t == "flatten":
        return x.reshape(x.shape[0], -1)
    raise DQTValueError(f"layer type {t!r} has no host step")


#: What produced the elements a check compares: the RTL engine, or the host (pooling, clip,
#: flatten through the golden functions themselves, and the controller's argmax). Only "rtl"
#: elements verify hardware; the report counts the two apart.
KINDS = ("rtl", "host")


class _Checker:
    """Accumulates element counts (per kind), mismatches and the first mismatch's description."""

    def __init__(self, rerun: str | None, image0: int = 0):
        self.image0 = image0  # index of this run's first image in the whole set
        self.elements = 0
        self.by_kind = dict.fromkeys(KINDS, 0)
        self.mismatches = 0
        self.first = None
        self.rerun = rerun
        self.layers = {}

    def layer(self, mode, name, got, exp, describe, kind="rtl") -> None:
        got, exp = np.asarray(got), np.asarray(exp)
        if got.shape != exp.shape:
            self.mismatches += int(exp.size)
            self._first(f"mode {mode}, layer {name}: engine output shape {got.shape}, golden "
                        f"{exp.shape}")
            return
        bad = np.argwhere(got != exp)
        if kind not in KINDS:
            raise ValueError(f"element kind {kind!r} is not one of {list(KINDS)}")
        self.elements += int(exp.size)
        self.by_kind[kind] += int(exp.size)
        self.mismatches += len(bad)
        rec = self.layers.setdefault(f"{mode}:{name}", {"elements": 0, "mismatches": 0,
                                                        "kind": kind})
        rec["elements"] += int(exp.size)
        rec["mismatches"] += len(bad)
        if len(bad):
            idx = tuple(int(i) for i in bad[0])
            where = [idx[0] + self.image0, *idx[1:]]
            self._first(f"mode {mode}, layer {name}: {len(bad)} of {exp.size} elements differ; "
                        f"first at index {where} (image {where[0]}): engine {got[idx]} != "
                        f"golden {exp[idx]}\n{describe(idx)}")

    def _first(self, msg):
        if self.first is None:
            self.first = msg + (f"\n  rerun with waves: {self.rerun}" if self.rerun else "")


async def _dense(tb, net, l, x, bits_img, mode, chk, stats):
    """One linear/conv2d layer on the engine; returns its output (engine values)."""
    name = l["name"]
    tiles, w2d = plan_network_layer(tb.geom, net, name)
    N = x.shape[0]
    if l["type"] == "conv2d":
        w = net.arrays[l["weight"]]
        rows, shp = conv_rows(x, w.shape[2], w.shape[3], l["stride"], l["padding"])
        per = shp[1] * shp[2]
    else:
        rows, shp, per = x.reshape(N, -1), None, 1
    bits_rows = np.repeat(np.asarray(bits_img, dtype=np.int64), per)
    O, K = w2d.shape
    Y = np.zeros((rows.shape[0], O), dtype=np.int64)
    OV = np.zeros_like(Y, dtype=bool)
    CY = np.zeros_like(Y)
    for t in tiles:
        await tb.load_tile(t)
        y, ov, cy = await tb.run_dense(t, rows, bits_rows)
        Y[:, t.c0:t.c1], OV[:, t.c0:t.c1], CY[:, t.c0:t.c1] = y, ov, cy
    stats["verified_macs"] += int(rows.shape[0]) * O * K
    out = conv_from_rows(Y, shp) if shp else Y
    cyc = conv_from_rows(CY, shp) if shp else CY

    def describe(idx):
        img, c = idx[0], idx[1]
        r = img * per + (idx[2] * shp[2] + idx[3] if shp else 0)
        A = net.arrays
        return (f"  precision bits={int(bits_rows[r])} mode={net.mode} acc_width={l['acc_width']} "
                f"overflow={l['overflow']} requant={l['requant']}\n"
                f"  x row (im2col patch) = {rows[r].tolist()}\n"
                f"  w[{c}] = {w2d[c].tolist()}\n  bias[{c}] = {int(A[l['bias']][c])} "
                f"M[{c}] = {int(A[l['M']][c])} S = {l['S']}\n"
                f"  engine output cycle = {int(cyc[idx])}")
    return out, int(OV.sum()), describe


async def _add(tb, net, l, env, stats):
    c = AddConstants(l["M1"], l["M2"], l["M3"], l["S"], IntFormat(net.n, False), m_bits=48)
    a, b = env[l["inputs"][0]], env[l["inputs"][1]]
    y, cyc = await tb.run_add(c, a, b)

    def describe(idx):
        return (f"  add q1={int(a[idx])} q2={int(b[idx])} M1={c.M1} M2={c.M2} M3={c.M3} S={c.S}\n"
                f"  engine output cycle = {int(cyc[idx])}")
    return y, describe


async def run_on_engine(tb: EngineHarnessTB, net, x, modes, rerun=None, log=None,
                        image0: int = 0) -> dict:
    """Run every mode of ``modes`` on the engine and compare with the golden traces
    (``image0``: index of ``x[0]`` in the whole image set, for the mismatch report)."""
    chk = _Checker(rerun, image0)
    stats = {"verified_macs": 0}
    qidx = {name: i for i, name in enumerate(net.qlayers)}
    B = np.array(net.candidate_bits, dtype=np.int64)
    overflow_mismatch = []
    t0, busy0 = time.monotonic(), tb.cycles_busy
    cycles_by_mode, macs_by_mode = {}, {}
    for mode in modes:
        cycles0, macs0 = tb.cycles_busy, stats["verified_macs"]
        bits_arg = None if mode == "static" else ("dynamic" if mode == "dynamic" else int(mode))
        res = run_network(net, x, bits=bits_arg, trace=True)
        bits = res.bits.copy()
        env = {"input": np.asarray(x, dtype=np.int64)}
        prev = "input"
        tap = net.controller["tap"] if (mode == "dynamic") else None
        for l in net.layers:
            name, t = l["name"], l["type"]
            if t in QUANT_TYPES:
                src = l.get("input", prev)
                y, nover, describe = await _dense(tb, net, l, env[src], bits[:, qidx[name]],
                                                  mode, chk, stats)
                if nover != res.overflow[name]:
                    overflow_mismatch.append(f"{mode}:{name}: engine {nover}, golden "
                                             f"{res.overflow[name]} overflow events")
            elif t == "add":
                y, describe = await _add(tb, net, l, env, stats)
            else:
                y = _host_layer(l, env[l.get("input", prev)])
                describe = lambda idx: "  (host step)"  # noqa: E731
            chk.layer(mode, name, y, res.traces[name]["output"], describe,
                      "rtl" if t in QUANT_TYPES or t == "add" else "host")
            env[name] = y
            prev = name
            if name == tap:
                bits = await _controller(tb, net, env[tap], res, bits, qidx, B, mode, chk, stats,
                                         overflow_mismatch)
        cycles_by_mode[str(mode)] = int(tb.cycles_busy - cycles0)
        macs_by_mode[str(mode)] = int(stats["verified_macs"] - macs0)
        if log:
            log(f"mode {mode}: {chk.elements} elements checked so far, {chk.mismatches} mismatches")
    sim_s = time.monotonic() - t0
    mism = chk.mismatches + len(overflow_mismatch)
    if overflow_mismatch and chk.first is None:
        chk.first = "overflow counts differ: " + "; ".join(overflow_mismatch)
    return {"images": int(len(x)), "modes": [str(m) for m in modes],
            "layers": len(net.layers) + (len(net.controller["layers"]) if net.controller else 0),
            "elements_checked": chk.elements, "rtl_elements": chk.by_kind["rtl"],
            "host_elements": chk.by_kind["host"], "mismatches": mism,
            "overflow_mismatches": overflow_mismatch,
            "verified_macs": stats["verified_macs"], "sim_seconds": round(sim_s, 3),
            "engine_cycles": int(tb.cycles_busy - busy0), "engine_cycles_by_mode": cycles_by_mode,
            "verified_macs_by_mode": macs_by_mode, "first_mismatch": chk.first,
            "per_layer": chk.layers}


async def _controller(tb, net, tap_value, res, bits, qidx, B, mode, chk, stats, overflow_mismatch):
    """Controller layers on the engine; their logits choose the controlled precisions."""
    f = tap_value
    if f.ndim == 4:
        f = L.avg_pool(f, f.shape[-1], f.shape[-1])
    f = f.reshape(f.shape[0], -1)
    env = {"_tap": f}
    prev = "_tap"
    for l in net.controller["layers"]:
        y, nover, describe = await _dense(tb, net, l, env[l.get("input", prev)],
                                          np.full(len(f), l["bits"]), mode, chk, stats)
        if nover != res.overflow[l["name"]]:   # the golden model counts the controller's too
            overflow_mismatch.append(f"{mode}:{l['name']}: engine {nover}, golden "
                                     f"{res.overflow[l['name']]} overflow events")
        chk.layer(mode, l["name"], y, res.traces[l["name"]]["output"], describe)
        env[l["name"]] = y
        prev = l["name"]
    ctl = net.controller["controlled"]
    logits = env[prev].reshape(len(f), len(ctl), -1)
    chosen = B[np.argmax(logits, axis=-1)]
    bits = bits.copy()
    for j, name in enumerate(ctl):
        chk.layer(mode, f"{name} (controller precision)", chosen[:, j], res.bits[:, qidx[name]],
                  lambda idx: f"  controller logits = {logits[idx[0]].tolist()}", "host")
        bits[:, qidx[name]] = chosen[:, j]
    return bits


def merge_reports(reps, modes, images: int) -> dict:
    """One report from the reports of :func:`run_on_engine` runs over disjoint shards of
    the work (modes, or image ranges of a mode), given in shard order: counts add up, the
    per-layer and per-mode tables add per key, the first mismatch is the first shard's."""
    out = {"images": int(images), "modes": [str(m) for m in modes], "layers": reps[0]["layers"]}
    for k in ("elements_checked", "rtl_elements", "host_elements", "mismatches",
              "verified_macs", "engine_cycles"):
        out[k] = sum(r[k] for r in reps)
    out["overflow_mismatches"] = [m for r in reps for m in r["overflow_mismatches"]]
    out["sim_seconds"] = round(sum(r["sim_seconds"] for r in reps), 3)
    for k in ("engine_cycles_by_mode", "verified_macs_by_mode"):
        out[k] = {str(m): sum(r[k].get(str(m), 0) for r in reps) for m in modes}
    out["first_mismatch"] = next((r["first_mismatch"] for r in reps if r["first_mismatch"]),
                                 None)
    layers = {}
    for r in reps:
        for key, rec in r["per_layer"].items():
            acc = layers.setdefault(key, {"elements": 0, "mismatches": 0, "kind": rec["kind"]})
            acc["elements"] += rec["elements"]
            acc["mismatches"] += rec["mismatches"]
    out["per_layer"] = layers
    return out
