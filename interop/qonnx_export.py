"""QONNX export of an integer network at a static precision, and its check against the golden
model with qonnx's own executor.

The exported graph computes exactly what :func:`golden.network.run_network` computes; every
choice QONNX semantics forced is stated in ``docs/interop.md``. In short:

* tensors between layers hold **master-width codes** (one unit = one master step of that
  tensor), so every ``Quant`` scale is a power of two: the nested step Δ_b / Δ_n = 2^(n-b);
* the activation quantizer of a layer at b bits is ``Quant(scale=2^(n-b), bitwidth=b,
  signed=0)`` with ``HALF_UP`` (``round`` mode; exact, codes are unsigned) or ``FLOOR``;
  the weight quantizer is ``Quant(scale=2^(n-b), bitwidth=b, signed=1, FLOOR)``, in ``round``
  mode after adding half a nested step (QONNX has no round-half-toward-+inf mode);
* Conv / MatMul run in float32, exact because every partial sum is an integer below 2^24
  (checked per layer before export); the requantization (acc · M · 2^-S, round half up,
  clamp) runs in float64, where acc · M is exact, and ends in a ``Quant(bitwidth=n)``.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from golden.formats import DQTValueError, NestedMode, RequantRule
from golden.network import QUANT_TYPES, Network, run_network
from golden.ops import nested_shift

__all__ = ["QONNX_DOMAIN", "parse_assignment", "export_qonnx", "save_qonnx", "run_qonnx",
           "qonnx_bops", "compare_with_golden"]

QONNX_DOMAIN = "qonnx.custom_op.general"
_OPSET = 13
_F32_EXACT = 1 << 24   # integers below this are exact in float32, and so is every partial sum
_F64_EXACT = 1 << 53


def parse_assignment(net: Network, bits=None, assignment=None) -> dict:
    """Layer -> bits from ``--bits B`` (uniform) or ``--assignment b1,b2,...`` (one per
    quantized layer, in order); neither: each layer's static ``bits`` from the manifest."""
    q = net.qlayers
    B = net.candidate_bits
    if bits is not None and assignment is not None:
        raise DQTValueError("give --bits or --assignment, not both")
    if bits is not None:
        vals = [bits] * len(q)
    elif assignment is not None:
        vals = list(assignment)
        if len(vals) != len(q):
            raise DQTValueError(f"--assignment has {len(vals)} widths, the network has "
                                f"{len(q)} quantized layers {q}")
    else:
        vals = [net.layer(name)["bits"] for name in q]
    for name, b in zip(q, vals):
        if b not in B:
            raise DQTValueError(f"bit-width {b} for layer {name!r} is not in the candidate set B={B}")
    return dict(zip(q, (int(b) for b in vals)))


class _Graph:
    """Accumulates ONNX nodes, initializers and the value-info QONNX needs."""

    def __init__(self):
        from onnx import TensorProto
        self.F, self.D = TensorProto.FLOAT, TensorProto.DOUBLE
        self.nodes, self.inits, self.vinfo, self.used = [], [], [], set()

    def _name(self, base):
        name, i = base, 1
        while name in self.used:
            i += 1
            name = f"{base}_{i}"
        self.used.add(name)
        return name

    def const(self, base, value, dtype=np.float32):
        from onnx import numpy_helper
        name = self._name(base)
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def node(self, op, inputs, base, domain=None, **attrs):
        from onnx import helper
        out = self._name(base)
        kw = {"domain": domain} if domain else {}
        self.nodes.append(helper.make_node(op, list(inputs), [out], name=out, **kw, **attrs))
        return out

    def quant(self, x, scale, bits, signed, rounding, base, double=False):
        """A QONNX ``Quant`` node (zero point 0, full range). ``double``: float64 scale and
        zero point for a float64 input; qonnx computes Quant in its input's precision and
        writes float32, where the resulting codes are exact."""
        from onnx import helper
        dt = np.float64 if double else np.float32
        ins = [x, self.const(f"{base}.scale", scale, dt), self.const(f"{base}.zeropt", 0.0, dt),
               self.const(f"{base}.bitwidth", float(bits), np.float32)]
        out = self.node("Quant", ins, base, QONNX_DOMAIN, signed=int(signed), narrow=0,
                        rounding_mode=rounding)
        self.vinfo.append(helper.make_tensor_value_info(out, self.F, None))
        return out

    def cast(self, x, double, base):
        return self.node("Cast", [x], base, to=self.D if double else self.F)


def _check_exact(name, what, bound, limit):
    if bound >= limit:
        raise DQTValueError(f"layer {name!r}: {what} can reach {bound}, which float arithmetic "
                            f"in QONNX cannot hold exactly (limit {limit})")


def _qlayer(g, net, l, x, b):
    """Nested activation and weight quantizers, Conv/MatMul, bias, accumulator, requantizer."""
    n, name, k = net.n, l["name"], net.n - b
    mode = NestedMode.parse(net.mode)
    xq = g.quant(x, 2.0 ** k, b, 0, "HALF_UP" if mode is NestedMode.ROUND else "FLOOR",
                 f"{name}.act_quant")
    w = net.arrays[l["weight"]].astype(np.int64)
    wname = g.const(f"{name}.weight", w.T if l["type"] == "linear" else w)
    if mode is NestedMode.ROUND and k:
        wname = g.node("Add", [wname, g.const(f"{name}.weight_half_step", 2.0 ** (k - 1))],
                       f"{name}.weight_plus_half")
    wq = g.quant(wname, 2.0 ** k, b, 1, "FLOOR", f"{name}.weight_quant")
    bias = net.arrays[l["bias"]]
    wb = nested_shift(w, n, b, mode, signed=True).reshape(w.shape[0], -1)
    bound = int(((np.abs(wb).sum(axis=1) * ((1 << b) - 1)) << (2 * k)).max() + np.abs(bias).max())
    _check_exact(name, "an accumulator partial sum", bound, _F32_EXACT)
    if l["type"] == "conv2d":
        p, s = l.get("padding", 0), l.get("stride", 1)
        acc = g.node("Conv", [xq, wq], f"{name}.conv", kernel_shape=list(w.shape[2:]),
                     pads=[p] * 4, strides=[s, s])
        bshape = (-1, 1, 1)
    else:
        acc = g.node("MatMul", [xq, wq], f"{name}.matmul")
        bshape = (-1,)
    acc = g.node("Add", [acc, g.const(f"{name}.bias", bias.reshape(bshape))], f"{name}.add_bias")
    W = l["acc_width"]
    if bound > (1 << (W - 1)) - 1 and l["overflow"] == "wrap":
        raise DQTValueError(f"layer {name!r}: its {W}-bit wrapping accumulator can overflow; "
                            "QONNX export supports wrap only where overflow cannot happen")
    acc = g.quant(acc, 1.0, W, 1, "ROUND", f"{name}.acc")   # saturating: the acc's datatype
    if not l["requant"]:
        return acc
    if l["rule"] != RequantRule.DYADIC.value:
        raise DQTValueError(f"layer {name!r}: requantization rule {l['rule']!r} has no QONNX "
                            "export (only 'dyadic')")
    M = net.arrays[l["M"]]
    _check_exact(name, "acc * M", bound * int(M.max(initial=0)), _F64_EXACT)
    d = g.cast(acc, True, f"{name}.acc_f64")
    d = g.node("Mul", [d, g.const(f"{name}.requant_scale", (M / 2.0 ** l["S"]).reshape(bshape),
                                  np.float64)], f"{name}.requant_mul")
    y = g.quant(d, 1.0, n, 0, "HALF_UP", f"{name}.requant", double=True)
    if l.get("clip") is not None:
        y = g.node("Clip", [y, g.const(f"{name}.clip_lo", 0.0), g.const(f"{name}.clip_hi",
                                                                       float(l["clip"]))],
                   f"{name}.pact_clip")
    return y


def _pool(g, net, l, x, shape):
    """Max pooling as MaxPool; average pooling as an exact window sum (depthwise Conv of
    ones, or ReduceSum for a global pool), a float64 divide and a HALF_UP Quant."""
    name, C, H = l["name"], shape[1], shape[-1]
    glob = bool(l.get("global"))
    k, s = (H, H) if glob else (l["k"], l["stride"])
    if l["type"] == "maxpool":
        return g.node("MaxPool", [x], f"{name}.maxpool", kernel_shape=[k, k], strides=[s, s])
    _check_exact(name, "a window sum", ((1 << net.n) - 1) * k * k, _F32_EXACT)
    if glob:
        t = g.node("ReduceSum", [x, g.const(f"{name}.axes", [2, 3], np.int64)], f"{name}.sum",
                   keepdims=1)
    else:
        t = g.node("Conv", [x, g.const(f"{name}.ones", np.ones((C, 1, k, k)))], f"{name}.sum",
                   kernel_shape=[k, k], strides=[s, s], group=C)
    d = g.node("Div", [g.cast(t, True, f"{name}.sum_f64"), g.const(f"{name}.count", k * k,
                                                                   np.float64)], f"{name}.mean")
    return g.quant(d, 1.0, net.n, 0, "HALF_UP", f"{name}.round", double=True)


def _add(g, net, l, a, b):
    """Integer add y = clamp(round_half_up((M1 q1 + M2 q2 + M3) / 2^S)) in float64."""
    name = l["name"]
    hi = (1 << net.n) - 1
    _check_exact(name, "M1 q1 + M2 q2 + M3", (abs(l["M1"]) + abs(l["M2"])) * hi + abs(l["M3"]),
                 _F64_EXACT)
    t1 = g.node("Mul", [g.cast(a, True, f"{name}.a_f64"), g.const(f"{name}.M1", l["M1"], np.float64)],
                f"{name}.mul1")
    t2 = g.node("Mul", [g.cast(b, True, f"{name}.b_f64"), g.const(f"{name}.M2", l["M2"], np.float64)],
                f"{name}.mul2")
    t = g.node("Add", [g.node("Add", [t1, t2], f"{name}.sum"),
                       g.const(f"{name}.M3", l["M3"], np.float64)], f"{name}.offset")
    t = g.node("Mul", [t, g.const(f"{name}.shift", 2.0 ** -l["S"], np.float64)], f"{name}.scale")
    return g.quant(t, 1.0, net.n, 0, "HALF_UP", f"{name}.round", double=True)


def _layer_shapes(net, assignment):
    """Each layer's output shape, from one golden run on a zero image."""
    x = np.zeros((1, *net.manifest["input"]["shape"]), dtype=np.int64)
    r = run_network(net, x, bits=dict(assignment), impl="reference", trace=True)
    return {name: tr["output"].shape for name, tr in r.traces.items()}


def _metadata(net, assignment):
    inp = net.manifest["input"]
    return {"dqt.n": str(net.n), "dqt.mode": net.mode,
            "dqt.assignment": json.dumps(assignment),
            "dqt.input_scale": repr(float(inp["scale"])),
            "dqt.units": "every tensor holds master-width codes; real value = code * master step",
            "dqt.controller": "not exported (static precision)"}


def export_qonnx(net: Network, assignment: dict, batch: int = 1):
    """The QONNX ``ModelWrapper`` of ``net`` with layer -> bits ``assignment`` (see
    :func:`parse_assignment`); input ``input`` [batch, *input.shape] holds unsigned n-bit
    codes, the output is the network's output layer in its own units (codes, or the
    accumulator of a logits layer). Raises :class:`DQTValueError` before building anything a
    float graph could not compute exactly."""
    from onnx import helper
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.infer_shapes import InferShapes
    from qonnx.util.basic import qonnx_make_model

    shapes = _layer_shapes(net, assignment)
    g = _Graph()
    g.used.add("input")
    env = {"input": g.quant("input", 1.0, net.n, 0, "ROUND", "input.quant")}
    prev = "input"
    for l in net.layers:
        t = l["type"]
        src = env[l.get("input", prev)] if t != "add" else None
        if t in QUANT_TYPES:
            y = _qlayer(g, net, l, src, assignment[l["name"]])
        elif t in ("maxpool", "avgpool"):
            in_shape = shapes.get(l.get("input", prev), (1, *net.manifest["input"]["shape"]))
            y = _pool(g, net, l, src, in_shape)
        elif t == "add":
            y = _add(g, net, l, env[l["inputs"][0]], env[l["inputs"][1]])
        elif t == "clip":
            y = g.node("Clip", [src, g.const(f"{l['name']}.lo", float(l["lo"])),
                                g.const(f"{l['name']}.hi", float(l["hi"]))], f"{l['name']}.clip")
        elif t == "flatten":
            y = g.node("Flatten", [src], f"{l['name']}.flatten", axis=1)
        else:
            raise DQTValueError(f"layer {l['name']!r}: type {t!r} has no QONNX export")
        env[l["name"]] = y
        prev = l["name"]
    out = env[net.manifest.get("output", net.layers[-1]["name"])]
    inp = helper.make_tensor_value_info("input", g.F, [batch, *net.manifest["input"]["shape"]])
    outp = helper.make_tensor_value_info(out, g.F, None)
    vinfo = [v for v in g.vinfo if v.name != out]  # the output carries its own
    graph = helper.make_graph(g.nodes, "dqt_integer_network", [inp], [outp], g.inits, value_info=vinfo)
    model = qonnx_make_model(graph, producer_name="dqt-codesign",
                             opset_imports=[helper.make_opsetid("", _OPSET),
                                            helper.make_opsetid(QONNX_DOMAIN, 1)])
    helper.set_model_props(model, _metadata(net, assignment))
    return ModelWrapper(model).transform(InferShapes())


def save_qonnx(model, out) -> Path:
    """Write the model atomically (a temporary file beside ``out``, then a rename)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    os.close(fd)
    try:
        model.save(tmp)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out


def _rebatched(model, batch: int):
    """A copy of ``model`` whose input and output have batch dimension ``batch``."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.infer_shapes import InferShapes
    m = ModelWrapper(model.model.__deepcopy__())
    del m.graph.value_info[:]   # re-inferred below (a Quant output defaults to float32)
    m.graph.output[0].type.tensor_type.ClearField("shape")
    m.graph.input[0].type.tensor_type.shape.dim[0].dim_value = batch
    return m.transform(InferShapes())


def run_qonnx(model, x: np.ndarray) -> np.ndarray:
    """Run the exported model on input codes [N, ...] with ``qonnx.core.onnx_exec``."""
    from qonnx.core.onnx_exec import execute_onnx
    m = _rebatched(model, x.shape[0])
    out = execute_onnx(m, {"input": np.asarray(x, dtype=np.float32)})
    return out[m.graph.output[0].name]


def qonnx_bops(model) -> dict:
    """qonnx's ``inference_cost`` per image: BOPs and MACs, dense and with zero weights
    discounted (qonnx's default)."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.inference_cost import inference_cost
    res = {}
    for key, sparse in (("dense", False), ("sparse", True)):
        cost = inference_cost(ModelWrapper(model.model.__deepcopy__()), discount_sparsity=sparse)
        res[key] = cost["total_cost"]
    return {"bops": res["dense"]["total_bops"], "macs": res["dense"]["total_macs"],
            "bops_sparse": res["sparse"]["total_bops"], "macs_sparse": res["sparse"]["total_macs"]}


def compare_with_golden(model, net: Network, x: np.ndarray, assignment: dict) -> dict:
    """Output codes of the QONNX model (qonnx's executor) against the golden model on input
    codes ``x``: element-wise, every element of every image."""
    got = run_qonnx(model, x)
    r = run_network(net, x, bits=dict(assignment))
    want = r.output
    if got.shape != want.shape:
        raise DQTValueError(f"QONNX output shape {got.shape} differs from the golden {want.shape}")
    exact = np.array_equal(got, got.round()) and np.abs(got).max(initial=0) < _F32_EXACT
    diff = int(np.count_nonzero(got.astype(np.int64) != want)) if exact else int(want.size)
    return {"images": int(x.shape[0]), "elements": int(want.size), "differences": diff,
            "outputs_identical": diff == 0,
            "images_differing": int(np.count_nonzero((got != want).reshape(len(x), -1).any(1))),
            "bitops": int(r.totals()["bitops"]) // max(1, int(x.shape[0]))}
