"""Float-to-integer conversion of a trained :class:`training.models.QNet` into a golden artifact.

Per quantized layer (x: input codes on step s_x, w: signed codes on step s_w[o], y: output
codes on step s_y):

* weight codes: ``WeightQuantizer.codes`` (the master codes the fake-quantized model uses);
* bias in master accumulator units: round_half_even(b[o] / (s_x · s_w[o])), computed in the
  same float32 arithmetic as the fake-quantized forward pass, so both use the same integer;
* requantization: r[o] = s_x · s_w[o] / s_y as M[o] · 2^-S with one shared S, the largest
  that keeps every M[o] below 2^31 (and acc · M inside int64); M[o] = round(r[o] · 2^S);
* accumulator width: enough for the exact sum's bound K · (2^n - 1) · 2^(n-1) + max|bias|
  (never below ``golden.formats.acc_width_rule``), overflow policy ``saturate``;
* the last layer keeps its int64 accumulators (``requant: false``; M unused, stored as 0).

Residual adds become golden ``add`` layers with M_i = round(s_i / s_y · 2^S), S = 30, M3 = 0.
The controller is exported as the manifest's ``controller`` section (``tap``, ``controlled``
and two linear layers at the controller width).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from golden.formats import DQTValueError
from golden.network import save_network

from .layers import ADD_SHIFT, M_BITS
from .models import QUANT, QNet

__all__ = ["export_network", "save_artifact", "artifact_digest", "ADD_SHIFT", "M_BITS"]

def _wdtype(n):
    return np.int8 if n <= 8 else np.int16


def _qlayer(model: QNet, name, mod, src, x_scale, bits, arrays, relu=None):
    """Manifest entry and arrays of one quantized layer, from :meth:`_QDense.int_params`
    (the constants the fake-quantized model's evaluation pass uses too)."""
    try:
        p = mod.int_params(x_scale)
    except DQTValueError as e:
        raise DQTValueError(f"layer {name!r}: {e}") from None
    entry = {"name": name, "type": mod.kind, "input": src, "weight": f"{name}.weight",
             "bias": f"{name}.bias", "M": f"{name}.M", "bits": int(bits),
             "acc_width": p.acc_width, "overflow": "saturate", "rule": "dyadic",
             "relu": bool(mod.relu if relu is None else relu), "requant": bool(mod.requant),
             "S": p.S}
    if mod.kind == "conv2d":
        entry.update(stride=int(mod.stride), padding=int(mod.padding))
    arrays[f"{name}.weight"] = p.weight.numpy().astype(_wdtype(model.cfg.n))
    arrays[f"{name}.bias"] = p.bias.numpy().astype(np.int64)
    arrays[f"{name}.M"] = p.M.numpy().astype(np.int64)
    return entry


def export_network(model: QNet, metadata: dict | None = None):
    """Convert ``model`` (in its current state) into ``(manifest, arrays)`` for
    :func:`golden.network.save_network`. Static widths come from ``model.static_bits``."""
    model.eval()
    cfg = model.cfg
    arrays, layers = {}, []
    scales = {"input": torch.tensor(model.input_scale)}
    prev = "input"
    with torch.no_grad():
        for nd in model.nodes:
            src = nd.src or prev
            if nd.type in QUANT:
                mod = model.layers[nd.name]
                layers.append(_qlayer(model, nd.name, mod, src, scales[src],
                                      model.static_bits[nd.name], arrays))
                scales[nd.name] = mod.out_scale()
            elif nd.type == "add":
                a, b = nd.inputs
                mod = model.layers[nd.name]
                M1, M2, M3, S = mod.int_constants(scales[a], scales[b])
                layers.append({"name": nd.name, "type": "add", "inputs": [a, b], "M1": M1,
                               "M2": M2, "M3": M3, "S": S})
                scales[nd.name] = mod.out_scale()
            else:
                e = {"name": nd.name, "type": nd.type, "input": src}
                if nd.type in ("maxpool", "avgpool"):
                    if nd.params.get("global"):
                        e["global"] = True
                    else:
                        e.update(k=int(nd.params["k"]), stride=int(nd.params["stride"]))
                layers.append(e)
                scales[nd.name] = scales[src]
            prev = nd.name
        manifest = {
            "n": cfg.n, "candidate_bits": list(cfg.B), "mode": cfg.mode,
            "input": {"shape": list(model.input_shape), "scale": float(model.input_scale),
                      "zero_point": 0},
            "layers": layers, "output": prev, "metadata": dict(metadata or {}),
        }
        if model.controller is not None:
            c = model.controller
            fc1 = _qlayer(model, "ctrl_fc1", c.fc1, None, scales[model.tap], c.bits, arrays)
            fc2 = _qlayer(model, "ctrl_fc2", c.fc2, None, c.fc1.out_scale(), c.bits, arrays)
            for e in (fc1, fc2):
                del e["input"]  # controller layers chain from the pooled tap
            manifest["controller"] = {"tap": model.tap, "controlled": list(model.controlled),
                                      "layers": [fc1, fc2]}
    return manifest, arrays


def save_artifact(out_dir, model: QNet, metadata: dict | None = None) -> Path:
    """Export and write the artifact directory atomically (validated by the golden model)."""
    manifest, arrays = export_network(model, metadata)
    return save_network(out_dir, manifest, arrays)


def artifact_digest(artifact_dir) -> str:
    """sha256 of ``manifest.json``. The manifest holds every array's sha256, shape and dtype,
    so this digest identifies the whole artifact (``weights.npz`` itself embeds zip
    timestamps and is not byte-reproducible)."""
    p = Path(artifact_dir) / "manifest.json"
    if not p.is_file():
        raise DQTValueError(f"{p} does not exist (not an artifact directory)")
    return hashlib.sha256(p.read_bytes()).hexdigest()
