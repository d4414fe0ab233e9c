"""Cost of a precision transition: nested shift vs fp32 dequantize + requantize.

Per element, DQT converts a master-width code to b bits with one shift (``floor``: a wire
selection once k is fixed; ``round``: one adder and a saturation), where a float pipeline
dequantizes (code x scale, one fp32 multiply) and requantizes (x 1/scale_b and round, a
second fp32 operation): two floating-point operations per element, the paper's count.

Per network, the number of elements converted depends on the counting convention, so all
are given:

``weights``            every weight of every quantized layer, once per switch;
``activations``        every input activation of every quantized layer, per inference;
``weights+activations`` both, per inference that follows a switch (the golden model's
                       ``ops[layer]["shifts"]`` counter uses this one).

Layer shapes of ResNet-18 (CIFAR-10, 32x32 input, 3x3 stem) and ResNet-50 (ImageNet,
224x224, torchvision v1.5 bottlenecks, stride on the 3x3) are written out below; the digits
network's come from its artifact. The stem convolution and the classifier are counted
(``include_stem_fc=False`` drops both, as papers that keep them at full precision do).
"""
from __future__ import annotations

import numpy as np

from golden.formats import DQTValueError

from .energy_model import HOROWITZ_45NM, add_pj

__all__ = ["resnet18_cifar_layers", "resnet50_imagenet_layers", "network_counts",
           "artifact_layers", "transition_table", "PAPER_RESNET50", "CONVENTIONS",
           "per_element_model"]

#: the paper's ResNet-50 figures (arXiv 2508.09176): shifts vs floating-point operations
PAPER_RESNET50 = {"shifts": 28.3e6, "fp_ops": 56.6e6}
CONVENTIONS = ("weights", "activations", "weights+activations")


def _conv(name, cin, cout, k, stride, h_in, kind="conv2d"):
    return {"name": name, "type": kind, "cin": cin, "cout": cout, "k": k, "stride": stride,
            "h_in": h_in}


def resnet18_cifar_layers() -> list[dict]:
    """Quantized layers of ResNet-18 for 32x32 CIFAR-10 (3x3 stem, no max-pool)."""
    L = [_conv("conv1", 3, 64, 3, 1, 32)]
    cin, h = 64, 32
    for stage, (w, s) in enumerate([(64, 1), (128, 2), (256, 2), (512, 2)], 1):
        for blk in range(2):
            stride = s if blk == 0 else 1
            L.append(_conv(f"layer{stage}.{blk}.conv1", cin, w, 3, stride, h))
            h_out = h // stride
            L.append(_conv(f"layer{stage}.{blk}.conv2", w, w, 3, 1, h_out))
            if blk == 0 and (stride != 1 or cin != w):
                L.append(_conv(f"layer{stage}.{blk}.downsample", cin, w, 1, stride, h))
            cin, h = w, h_out
    L.append(_conv("fc", 512, 10, 1, 1, 1, "linear"))
    return L


def resnet50_imagenet_layers() -> list[dict]:
    """Quantized layers of ResNet-50 for 224x224 ImageNet (torchvision v1.5)."""
    L = [_conv("conv1", 3, 64, 7, 2, 224)]
    cin, h = 64, 56                     # after the stride-2 stem and the 3x3/2 max-pool
    for stage, (w, blocks, s) in enumerate([(64, 3, 1), (128, 4, 2), (256, 6, 2),
                                            (512, 3, 2)], 1):
        for blk in range(blocks):
            stride = s if blk == 0 else 1
            p = f"layer{stage}.{blk}"
            L.append(_conv(p + ".conv1", cin, w, 1, 1, h))
            L.append(_conv(p + ".conv2", w, w, 3, stride, h))
            h_out = h // stride
            L.append(_conv(p + ".conv3", w, 4 * w, 1, 1, h_out))
            if blk == 0:
                L.append(_conv(p + ".downsample", cin, 4 * w, 1, stride, h))
            cin, h = 4 * w, h_out
    L.append(_conv("fc", 2048, 1000, 1, 1, 1, "linear"))
    return L


def artifact_layers(net) -> list[dict]:
    """Layer shapes of an artifact's quantized layers (input sizes from one golden run)."""
    from golden.network import run_network
    shape = tuple(net.manifest["input"]["shape"])
    res = run_network(net, np.zeros((1,) + shape, np.int64), trace=True)
    out = []
    for name in net.qlayers:
        l = net.layer(name)
        w = net.arrays[l["weight"]]
        inp = res.traces[name]["input"]
        out.append({"name": name, "type": l["type"], "weights": int(w.size),
                    "inputs": int(np.prod(inp.shape[1:]))})
    return out


def _counts(l):
    if "weights" in l:
        return l["weights"], l["inputs"]
    w = l["cout"] * l["cin"] * l["k"] * l["k"]
    a = l["cin"] * l["h_in"] * l["h_in"]
    return w, a


def network_counts(layers: list[dict], include_stem_fc: bool = True) -> dict:
    """Elements converted per convention, and the layer count."""
    sel = layers if include_stem_fc else layers[1:-1]
    W = sum(_counts(l)[0] for l in sel)
    A = sum(_counts(l)[1] for l in sel)
    return {"layers": len(sel), "weights": int(W), "activations": int(A),
            "weights+activations": int(W + A)}


def per_element_model(n: int = 8) -> dict:
    """Modelled energy (pJ) of converting one element, per method."""
    return {
        "nested_floor": 0.0,                  # fixed k per layer: a wire selection
        "nested_floor_runtime": add_pj(n),    # run-time k: a mux tree ~ one n-bit add
        "nested_round": add_pj(n + 1),        # Eq. 4: one adder + saturation
        # dequantize (x scale) + requantize (x 1/scale): two fp32 multiplies (Horowitz 3.7 pJ)
        "fp32_dequant_requant": 2 * HOROWITZ_45NM["fmult32"],
    }


def transition_table(networks: dict, measured: dict | None = None, n: int = 8) -> dict:
    """Operations and energy of one precision transition, per network and convention.

    ``networks``: name -> layer list; ``measured``: method -> pJ per element from the
    activity-based figures (optional). Returns a JSON-able dict that also states which
    convention reproduces the paper's ResNet-50 figures.
    """
    model = per_element_model(n)
    out = {"per_element": {"model_pj": model, "measured_pj": measured or {},
                           "ops": {"nested": "1 shift", "fp32": "2 floating-point ops "
                                   "(dequantize multiply + requantize multiply)"}},
           "conventions": list(CONVENTIONS), "networks": {}}
    for name, layers in networks.items():
        if not layers:
            raise DQTValueError(f"network {name!r} has no layers")
        row = {}
        for incl in (True, False):
            c = network_counts(layers, incl)
            key = "all_layers" if incl else "without_stem_fc"
            row[key] = {
                conv: {"elements": c[conv], "shifts": c[conv], "fp_ops": 2 * c[conv],
                       "energy_uj": {m: c[conv] * e * 1e-6 for m, e in model.items()},
                       "energy_uj_measured": {m: c[conv] * e * 1e-6
                                              for m, e in (measured or {}).items()
                                              if e is not None}}
                for conv in CONVENTIONS}
            row[key]["layers"] = c["layers"]
        out["networks"][name] = row
    if "resnet50_imagenet" in out["networks"]:
        best = None
        for key in ("all_layers", "without_stem_fc"):
            for conv in CONVENTIONS:
                s = out["networks"]["resnet50_imagenet"][key][conv]["shifts"]
                err = abs(s - PAPER_RESNET50["shifts"]) / PAPER_RESNET50["shifts"]
                if best is None or err < best[0]:
                    best = (err, key, conv, s)
        err, key, conv, s = best
        out["paper_resnet50"] = {
            "paper": PAPER_RESNET50, "closest": {"layers": key, "convention": conv,
                                                 "shifts": s, "relative_error": err},
            "reproduced": err < 0.02,
            "verdict": (f"{conv} ({key.replace('_', ' ')}) gives {s / 1e6:.1f}M shifts and "
                        f"{2 * s / 1e6:.1f}M fp ops vs the paper's 28.3M / 56.6M "
                        f"({100 * err:.1f} % off)" + ("" if err < 0.02 else
                                                      "; no convention reproduces it"))}
    return out
