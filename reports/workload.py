"""Real workload vectors for activity simulation, taken from an integer network artifact.

For each run-time precision b the golden model runs the held-out digits images with every
quantized layer at b (``run_network(net, x, bits=b, trace=True)``); the traces give each
layer's input activation codes and accumulators, the artifact gives its master-width weight
codes. A MAC stream is a concatenation of whole dot products (one output neuron, one input
image, one output position for conv layers), sampled across layers in proportion to their
MAC counts, laid out as ``[cycles, lanes]`` arrays with ``first``/``last`` flags.

Without an artifact a small stand-in network is built (digits pixels through one random
8-bit linear layer, weights drawn from a seeded normal distribution); the report marks that
provenance.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from golden import fast as _fast
from golden.formats import DQTValueError
from golden.network import Network, quantize_input, run_network
from golden.ops import nested_shift

__all__ = ["Workload", "MacStream", "digits_test_codes", "standin_network", "build_workload"]


@dataclass
class MacStream:
    """MAC operands at one precision: arrays [cycles, lanes] of master-width codes."""

    x: np.ndarray
    w: np.ndarray
    first: np.ndarray
    last: np.ndarray
    K: np.ndarray          # dot-product length per element (for information)


@dataclass
class Workload:
    """Streams per precision plus requantizer operands, and where they came from."""

    n: int
    bits: list
    macs: dict                      # b -> MacStream
    requant: dict                   # b -> {"acc": [T, L], "M": [T, L], "S": [T, L]}
    source: str
    seed: int
    accuracy: dict = field(default_factory=dict)   # mode -> {"accuracy", "bitops_per_image"}


def digits_test_codes(net: Network, limit: int | None = None):
    """Held-out digits images as input codes, and labels: the artifact's split, regenerated
    by :func:`training.data.digits_split` (the one split ``dqt eval`` and ``dqt sim`` use)."""
    from training.data import digits_split
    meta = (net.manifest.get("metadata") or {}).get("dataset") or {}
    d = digits_split(int(meta.get("split_seed", 0)), float(meta.get("test_fraction", 0.2)))
    shape = tuple(net.manifest["input"]["shape"])
    xt, yt = d.x_test.reshape((len(d.y_test),) + shape), d.y_test
    if limit:
        xt, yt = xt[:limit], yt[:limit]
    return quantize_input(net, xt), yt


def standin_network(n: int = 8, seed: int = 0) -> tuple[dict, dict]:
    """(manifest, arrays) of a one-layer digits classifier with random weights."""
    rng = np.random.default_rng(seed)
    hi = (1 << (n - 1)) - 1
    w = np.clip(np.rint(rng.normal(0, hi / 3, (10, 64))), -hi - 1, hi).astype(np.int64)
    manifest = {
        "n": n, "candidate_bits": sorted({max(1, n // 4), n // 2, 3 * n // 4, n}),
        "mode": "floor", "input": {"shape": [64], "scale": 16.0 / ((1 << n) - 1), "zero_point": 0},
        "layers": [{"name": "fc", "type": "linear", "weight": "fc.w", "bias": "fc.b", "M": "fc.M",
                    "bits": n, "S": 16, "acc_width": 2 * n + 8, "overflow": "wrap",
                    "rule": "dyadic", "relu": False, "requant": False}],
        "metadata": {"note": "stand-in network with random weights (no artifact given)"},
    }
    arrays = {"fc.w": w, "fc.b": np.zeros(10, np.int64), "fc.M": np.full(10, 1 << 10, np.int64)}
    return manifest, arrays


def _layer_elements(net, l, tr, rng, count):
    """``count`` dot products of layer ``l``: (x [count, K], w [count, K])."""
    w = net.arrays[l["weight"]]
    O = w.shape[0]
    x = tr["input"]
    if l["type"] == "linear":
        K = w.shape[1]
        i = rng.integers(0, x.shape[0], count)
        o = rng.integers(0, O, count)
        return x.reshape(x.shape[0], -1)[i], w[o]
    kh, kw = w.shape[2:]
    N = x.shape[0]
    cols, Ho, Wo = _fast.im2col(np.ascontiguousarray(x), kh, kw, l.get("stride", 1),
                                l.get("padding", 0))
    r = rng.integers(0, cols.shape[0], count)
    o = rng.integers(0, O, count)
    return np.asarray(cols)[r], _fast.weights_as_cols(w)[o]  # same (dy, dx, c) column order


def build_workload(net: Network | None = None, cycles: int = 128, lanes: int = 128,
                   seed: int = 0, images: int | None = None,
                   requant_len: int = 64) -> Workload:
    """Sample MAC streams and requantizer operands at every candidate precision of ``net``.

    ``cycles`` x ``lanes`` MACs per precision; ``images`` held-out images (None: all of them,
    the images ``dqt eval`` scores) feed the golden run and the accuracy figures.
    """
    source = "artifact"
    if net is None:
        from golden.network import validate_network, array_sha256
        man, arr = standin_network()
        man = dict(man, format="dqt-integer-network", format_version=1,
                   arrays={k: {"shape": list(a.shape), "dtype": str(a.dtype),
                               "sha256": array_sha256(a)} for k, a in arr.items()})
        validate_network(man, arr)
        net = Network(man, arr, None)
        source = "stand-in (random weights, digits pixels)"
    if cycles < 4 or lanes < 1:
        raise DQTValueError(f"cycles={cycles} must be >= 4 and lanes={lanes} >= 1")
    rng = np.random.default_rng(seed)
    x, y = digits_test_codes(net, images)
    n = net.n
    macs, requant, acc_info = {}, {}, {}
    qls = [l for l in net.layers if l["type"] in ("linear", "conv2d")]
    for b in sorted(net.candidate_bits):
        res = run_network(net, x, bits=b, trace=True)
        acc_info[f"static {b}"] = {
            "accuracy": float(np.mean(np.argmax(res.output.reshape(len(y), -1), axis=1) == y)),
            "bitops_per_image": res.totals()["bitops"] / len(y), "bits": b, "images": len(y)}
        weights = np.array([res.ops[l["name"]]["macs"] for l in qls], dtype=float)
        weights /= weights.sum()
        X = np.zeros((cycles, lanes), np.int64)
        W = np.zeros((cycles, lanes), np.int64)
        F = np.zeros((cycles, lanes), np.int64)
        La = np.zeros((cycles, lanes), np.int64)
        Kc = np.zeros((cycles, lanes), np.int64)
        for lane in range(lanes):
            t = 0
            while t < cycles:
                l = qls[rng.choice(len(qls), p=weights)]
                xs, ws = _layer_elements(net, l, res.traces[l["name"]], rng, 1)
                K = xs.shape[1]
                take = min(K, cycles - t)
                X[t:t + take, lane] = xs[0, :take]
                W[t:t + take, lane] = ws[0, :take]
                F[t, lane] = 1
                La[t + take - 1, lane] = 1
                Kc[t:t + take, lane] = K
                t += take
        macs[b] = MacStream(X, W, F, La, Kc)
        # requantizer operands: accumulators of layers that requantize, with their M and S
        rq = [l for l in qls if l["requant"]] or qls
        A = np.zeros((requant_len, lanes), np.int64)
        Mm = np.zeros_like(A)
        Ss = np.zeros_like(A)
        for lane in range(lanes):
            for t in range(requant_len):
                l = rq[rng.integers(len(rq))]
                a = res.traces[l["name"]]["acc"]
                idx = tuple(int(rng.integers(s)) for s in a.shape)
                A[t, lane] = a[idx]
                Mm[t, lane] = net.arrays[l["M"]][idx[1]]
                Ss[t, lane] = l["S"]
        requant[b] = {"acc": A, "M": Mm, "S": Ss}
    if net.controller is not None:
        res = run_network(net, x, bits="dynamic")
        acc_info["dynamic"] = {
            "accuracy": float(np.mean(np.argmax(res.output.reshape(len(y), -1), axis=1) == y)),
            "bitops_per_image": res.totals()["bitops"] / len(y),
            "bits": float(res.bits.mean()), "images": len(y)}
    return Workload(n, sorted(net.candidate_bits), macs, requant, source, seed, acc_info)


def shifted(stream: MacStream, n: int, b: int, mode="floor"):
    """The stream's operands nested-shifted to b bits (right-aligned), for fixed-width MACs."""
    return (nested_shift(stream.x, n, b, mode, False), nested_shift(stream.w, n, b, mode, True))
