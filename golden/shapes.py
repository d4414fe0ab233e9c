"""Shape propagation through a network manifest: the one place that knows what shape every
layer consumes and produces.

The validator (:func:`golden.network.validate_network`) calls it so that a layer whose input
channels or K do not match its producer fails ``dqt check`` and ``save_network`` naming the
field; the runner (:func:`golden.network.run_network`) reads output shapes from it (an empty
batch still gets correctly shaped outputs); the engine planner (:func:`sim.network.
engine_params_for`) reads each dense layer's K and output count from it.

Shapes exclude the batch axis. Every rule mirrors what :mod:`golden.layers` computes.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .loader import ArtifactError

__all__ = ["LayerShape", "propagate_shapes", "controller_feature_shape", "MAX_ELEMENTS"]

#: Largest number of elements of one layer's output per input. Far above any network the
#: engine or the golden model is used for; it keeps a corrupted shape from asking for terabytes.
MAX_ELEMENTS = 1 << 26


@dataclass(frozen=True)
class LayerShape:
    """Input and output shape of one layer (no batch axis); for linear and conv2d layers also
    K (the dot-product length) and the rows per input (output pixels; 1 for linear)."""

    input: tuple
    output: tuple
    K: int = 0
    rows: int = 0


def _fail(where, msg):
    raise ArtifactError(f"{where}: {msg}")


def _window(where, what, size, k, stride, pad=0):
    out = (size + 2 * pad - k) // stride + 1
    if out < 1:
        _fail(where, f"{what} window {k} (padding {pad}) is larger than the input size {size}")
    return out


def _dense_shape(l, where, x, w_shape) -> LayerShape:
    O = int(w_shape[0])
    if O < 1:
        _fail(f"{where}.weight", f"shape {list(w_shape)} has no output channels")
    if l["type"] == "linear":
        K = int(w_shape[1])
        if x != (K,):
            _fail(f"{where}.weight", f"shape {list(w_shape)} expects an input of [{K}] values, "
                  f"but the layer's input has shape {list(x)}")
        return LayerShape(x, (O,), K, 1)
    C, kh, kw = (int(v) for v in w_shape[1:])
    if len(x) != 3 or x[0] != C:
        _fail(f"{where}.weight", f"shape {list(w_shape)} expects an input of [{C}, H, W], "
              f"but the layer's input has shape {list(x)}")
    s, p = l["stride"], l["padding"]
    Ho = _window(where, "kernel", x[1], kh, s, p)
    Wo = _window(where, "kernel", x[2], kw, s, p)
    return LayerShape(x, (O, Ho, Wo), C * kh * kw, Ho * Wo)


def _pool_shape(l, where, x) -> LayerShape:
    if len(x) != 3:
        _fail(where, f"{l['type']} needs a [C, H, W] input, got {list(x)}")
    if l.get("global", False):
        if x[1] != x[2]:
            _fail(where, f"global {l['type']} needs a square input, got {list(x)}")
        return LayerShape(x, (x[0], 1, 1))
    k, s = l["k"], l["stride"]
    return LayerShape(x, (x[0], _window(where, "pool", x[1], k, s), _window(where, "pool", x[2], k, s)))


def layer_shape(l, where, shapes, arrays, prev) -> LayerShape:
    """Shape of one (already field-validated) layer given the shapes of earlier layers."""
    t = l["type"]
    if t == "add":
        a, b = (shapes[s].output for s in l["inputs"])
        if a != b:
            _fail(f"{where}.inputs", f"{l['inputs'][0]!r} has shape {list(a)} but "
                  f"{l['inputs'][1]!r} has shape {list(b)}; add needs equal shapes")
        ls = LayerShape(a, a)
    else:
        x = shapes[l.get("input", prev)].output
        if t in ("linear", "conv2d"):
            ls = _dense_shape(l, where, x, arrays[l["weight"]].shape)
        elif t in ("maxpool", "avgpool"):
            ls = _pool_shape(l, where, x)
        elif t == "flatten":
            ls = LayerShape(x, (int(np.prod(x)),))
        else:  # clip
            ls = LayerShape(x, x)
    if int(np.prod(ls.output)) > MAX_ELEMENTS:
        _fail(where, f"output shape {list(ls.output)} has more than {MAX_ELEMENTS} elements")
    return ls


def controller_feature_shape(tap_shape) -> tuple:
    """The controller's input: the tap's globally average-pooled channels (or the tap itself
    when it is already a vector)."""
    if len(tap_shape) == 3:
        if tap_shape[1] != tap_shape[2]:
            _fail("manifest.controller.tap", f"the tap's output {list(tap_shape)} must be square "
                  "for the global average pooling in front of the controller")
        return (tap_shape[0],)
    return (int(np.prod(tap_shape)),)


def propagate_shapes(manifest: dict, arrays: dict) -> dict:
    """``{layer name: LayerShape}`` for ``input``, every backbone layer and every controller
    layer (the controller's feature vector is ``_tap``). Expects a manifest whose fields have
    been checked one by one; raises :class:`ArtifactError` naming the first layer whose input
    does not fit."""
    inp = tuple(int(v) for v in manifest["input"]["shape"])
    if int(np.prod(inp)) > MAX_ELEMENTS:
        _fail("manifest.input.shape", f"{list(inp)} has more than {MAX_ELEMENTS} elements")
    shapes = {"input": LayerShape(inp, inp)}
    prev = "input"
    for i, l in enumerate(manifest["layers"]):
        shapes[l["name"]] = layer_shape(l, f"manifest.layers[{i}]", shapes, arrays, prev)
        prev = l["name"]
    ctrl = manifest.get("controller")
    if ctrl is not None:
        f = controller_feature_shape(shapes[ctrl["tap"]].output)
        cshapes = {"_tap": LayerShape(f, f)}
        prev = "_tap"
        for i, l in enumerate(ctrl["layers"]):
            cshapes[l["name"]] = layer_shape(l, f"manifest.controller.layers[{i}]", cshapes, arrays, prev)
            prev = l["name"]
        shapes.update(cshapes)
    return shapes
