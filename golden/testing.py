"""Small calibrated random integer networks for tests and benchmarks.

Weights are random codes; each layer's multiplier is calibrated on random inputs so that the
requantized activations use the code range instead of saturating, as a trained network's do.
Every layer type of the artifact format and a controller appear once.
"""
from __future__ import annotations

import numpy as np

from .formats import Dyadic, acc_width_rule
from .network import Network, load_network, run_network, save_network

__all__ = ["random_network"]

_SHAPES = {"conv1": (4, 1, 3, 3), "conv2": (4, 4, 3, 3), "conv3": (8, 4, 3, 3), "fc": (10, 8),
           "ctrl1": (8, 4)}


def _qlayer(name, kind, K, n, **kw):
    d = dict(name=name, type=kind, weight=f"{name}.weight", bias=f"{name}.bias", M=f"{name}.M", S=0,
             bits=n, acc_width=acc_width_rule(n, K) + 1, overflow="wrap", rule="dyadic", relu=True,
             requant=True, clip=None)
    d.update(kw)
    return d


def random_network(out_dir, seed: int = 0, n: int = 8, B=(2, 4, 6, 8), mode: str = "round",
                   controller: bool = True, calib: int = 32) -> Network:
    """Write to ``out_dir`` and load a calibrated random network on 1x8x8 inputs:
    conv1 -> conv2 -> add(conv1, conv2) -> maxpool -> conv3 (stride 2) -> global avgpool ->
    flatten -> fc (logits), with a controller tapping conv1 that sets conv2, conv3 and fc."""
    B = sorted(B)
    rng = np.random.default_rng(seed)
    wmax = (1 << (n - 1)) - 1
    shapes = dict(_SHAPES, ctrl2=(3 * len(B), 8))
    layers = [
        _qlayer("conv1", "conv2d", 9, n, stride=1, padding=1),
        _qlayer("conv2", "conv2d", 36, n, stride=1, padding=1),
        dict(name="res", type="add", inputs=["conv1", "conv2"], M1=1 << 15, M2=1 << 15, M3=0, S=16),
        dict(name="pool", type="maxpool", k=2, stride=2),
        _qlayer("conv3", "conv2d", 36, n, stride=2, padding=1),
        dict(name="gap", type="avgpool", **{"global": True}),
        dict(name="flat", type="flatten"),
        _qlayer("fc", "linear", 8, n, requant=False, relu=False),
    ]
    ctrl = [_qlayer("ctrl1", "linear", 4, n), _qlayer("ctrl2", "linear", 8, n, requant=False, relu=False)]
    manifest = dict(n=n, candidate_bits=list(B), mode=mode,
                    input=dict(shape=[1, 8, 8], scale=1.0 / 15, zero_point=0), layers=layers,
                    output="fc", metadata=dict(kind="random", seed=seed))
    qls = [l for l in layers if "weight" in l]
    if controller:
        manifest["controller"] = dict(tap="conv1", layers=ctrl, controlled=["conv2", "conv3", "fc"])
        qls += ctrl
    arrays = {}
    wdt = np.int16 if n > 8 else np.int8
    for l in qls:
        shape = shapes[l["name"]]
        arrays[l["weight"]] = np.clip(np.round(rng.normal(0, wmax / 3, shape)), -wmax - 1, wmax).astype(wdt)
        arrays[l["bias"]] = rng.integers(-(1 << (2 * n - 3)), 1 << (2 * n - 3), shape[0]).astype(np.int64)
        arrays[l["M"]] = np.ones(shape[0], dtype=np.int64)
    x = rng.integers(0, 1 << n, (calib, 1, 8, 8))
    for l in qls:
        if not l["requant"]:
            continue
        # With M = 1 and S = 0 the trace's "acc" is the raw accumulator of this layer; the
        # layers before it are calibrated already.
        r = run_network(Network(manifest, arrays), x, bits="dynamic" if controller else n, trace=True)
        top = max(1.0, float(np.percentile(np.abs(r.traces[l["name"]]["acc"]), 99)))
        d = Dyadic.from_real(((1 << n) - 1) * 0.8 / top, m_bits=16, max_shift=40)
        l["S"] = d.S
        arrays[l["M"]] = np.full(shapes[l["name"]][0], d.M, dtype=np.int64)
    return load_network(save_network(out_dir, manifest, arrays))
