"""Held-out evaluation of a trained artifact with the golden model.

The test split is regenerated from the artifact's metadata (``metadata.dataset``: digits and
digits-graded are generated offline from scikit-learn's bundled digits; cifar10 is read from
the recorded directory); inputs become codes with the manifest's input scale
(``golden.network.quantize_input``). Figures (all on the held-out split):

* ``fp32_accuracy``: the float model before quantization (stored at training time);
* ``static_accuracy``: {b: accuracy with every quantized layer at b} for b in B;
* ``dynamic_accuracy``, ``dynamic_avg_bits`` (mean width over quantized layers and images),
  ``dynamic_bitops_ratio`` (dynamic BitOPs / BitOPs with every layer at n, backbone only);
* ``integer_vs_torch_identical``: fraction of images whose dynamic-mode logits from
  :class:`training.integer_torch.IntegerNetwork` equal the golden runner's on every element
  (per static width too, under ``integer_vs_torch_identical_static``);
* ``fakequant_vs_integer_code_agreement``: fraction of equal codes between the
  fake-quantized model's evaluation pass (rebuilt from ``fakequant_state.npz``) and the golden
  integer network, over every layer output, every mode (each b in B and dynamic, widths
  chosen included) and every image; ``fakequant_vs_integer_constants_equal``: the model's
  integer constants equal the artifact's (weights, bias, M, S, accumulator widths, add
  constants); ``fakequant_vs_integer_top1_agreement``: agreement of the predicted class;
* digits-graded artifacts: ``graded`` (graded test split) and ``clean`` (the clean test
  split), each from :func:`training.frontier.adaptivity`; digits artifacts: ``clean``.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from golden.formats import DQTValueError
from golden.loader import ArtifactError
from golden.network import load_network, quantize_input, run_network

from .export import export_network
from .frontier import adaptivity, plot_frontier
from .integer_torch import IntegerNetwork
from .train import DATASETS, STATE_FILE, Recipe, build_from_recipe, fakequant_eval, \
    load_dataset, load_state

__all__ = ["evaluate", "digits_test_set", "digits_test_codes", "load_fakequant_model",
           "held_out_sets", "code_agreement", "constants_equal", "FRONTIER_PLOT"]

#: Largest number of static assignments the frontier enumerates.
MAX_FRONTIER = 4096
#: Frontier plot written next to the artifact by ``evaluate(..., plot=True)``.
FRONTIER_PLOT = "frontier.png"


def _meta(net):
    meta = net.manifest.get("metadata") or {}
    ds = meta.get("dataset")
    if not isinstance(ds, dict) or ds.get("dataset") not in DATASETS:
        raise DQTValueError(f"{net.path}: metadata.dataset does not describe a data set "
                            f"{list(DATASETS)} (this artifact was not written by 'dqt train')")
    if ds["dataset"] == "cifar10":   # fixed train / test files: no split to check
        return meta, ds
    seed, frac = ds.get("split_seed"), ds.get("test_fraction")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ArtifactError(f"{net.path}: metadata.dataset.split_seed {seed!r} must be an "
                            "integer >= 0")
    if not isinstance(frac, (int, float)) or isinstance(frac, bool) or not 0 < frac < 1:
        raise ArtifactError(f"{net.path}: metadata.dataset.test_fraction {frac!r} is outside "
                            "the allowed range (0, 1)")
    return meta, ds


def _recipe(meta, ds) -> Recipe:
    if "recipe" in meta:
        d = dict(meta["recipe"])
        d.setdefault("dataset", ds["dataset"])
        d.setdefault("mode", "round")       # artifacts written before floor became default
        d.setdefault("first_bits", 4)
        return Recipe.from_json(d)
    return Recipe(dataset=ds["dataset"], split_seed=int(ds["split_seed"]),
                  test_fraction=float(ds["test_fraction"]))


def held_out_sets(artifact_dir) -> dict:
    """{split name: (float images, labels, levels or None)} of the artifact's held-out data:
    ``test`` always; digits-graded adds ``clean`` (the clean test images)."""
    net = load_network(artifact_dir)
    meta, ds = _meta(net)
    data = load_dataset(_recipe(meta, ds))
    if len(data["y_test"]) != ds.get("n_test", len(data["y_test"])):
        raise DQTValueError(f"regenerated split has {len(data['y_test'])} test images, metadata "
                            f"says {ds['n_test']}")
    out = {"test": (data["x_test"], data["y_test"], None)}
    if "graded" in data:
        g = data["graded"]
        out["test"] = (g.x_test, g.y_test, g.level_test)
        out["clean"] = (g.x_clean_test, g.y_clean_test, None)
    return out


def digits_test_set(artifact_dir):
    """(float pixel images [N, 1, 8, 8], labels [N]) of the artifact's held-out split."""
    x, y, _ = held_out_sets(artifact_dir)["test"]
    return x, y


def digits_test_codes(artifact_dir):
    """(unsigned n-bit input codes int64 [N, 1, 8, 8], labels int64 [N]) of the held-out
    split, as the golden runner and the RTL consume them."""
    net = load_network(artifact_dir)
    x, y = digits_test_set(artifact_dir)
    return quantize_input(net, x), y


def load_fakequant_model(artifact_dir):
    """The fake-quantized PyTorch model the artifact was exported from (None when the
    artifact directory has no ``fakequant_state.npz``)."""
    net = load_network(artifact_dir)
    meta, ds = _meta(net)
    p = Path(artifact_dir) / STATE_FILE
    if not p.is_file():
        return None
    try:
        model = build_from_recipe(_recipe(meta, ds))
    except (KeyError, TypeError, ValueError) as e:
        raise ArtifactError(f"{net.path}: metadata.recipe cannot rebuild the model ({e})") from None
    load_state(p, model)
    model.eval()
    return model


def code_agreement(model, net, x, modes, impl: str = "fast", bs: int = 1000) -> dict:
    """Equal codes of the model's evaluation pass and the golden runner: {"fraction": equal
    elements / all elements over every layer output, the chosen widths and every mode in
    ``modes``, "per_layer": {mode: {node: fraction}}}."""
    codes = quantize_input(net, x)
    eq = tot = 0
    per = {}
    for mode in modes:
        per[str(mode)] = {}
        for i in range(0, len(x), bs):
            g = run_network(net, codes[i:i + bs], bits=mode, impl=impl, trace=True)
            f = model.forward_codes(torch.from_numpy(np.asarray(x[i:i + bs])), mode)
            pairs = [(k, v.numpy(), g.traces[k]["output"]) for k, v in f["codes"].items()]
            pairs.append(("bits", f["bits"].numpy(), g.bits))
            for k, a, b in pairs:
                e, t = int((a == b).sum()), int(a.size)
                eq, tot = eq + e, tot + t
                c = per[str(mode)].setdefault(k, [0, 0])
                c[0] += e
                c[1] += t
    per = {m: {k: e / t for k, (e, t) in d.items()} for m, d in per.items()}
    return {"fraction": eq / tot, "per_layer": per}


def constants_equal(model, net) -> bool:
    """The artifact's integer constants equal the model's (export of the current state)."""
    manifest, arrays = export_network(model)
    if set(arrays) != set(net.arrays):
        return False
    if any(not np.array_equal(arrays[k], net.arrays[k]) for k in arrays):
        return False
    strip = ("metadata", "arrays", "format", "format_version")
    a = {k: v for k, v in manifest.items() if k not in strip}
    b = {k: v for k, v in net.manifest.items() if k not in strip}
    return json.loads(json.dumps(a)) == b


def evaluate(artifact_dir, impl: str = "fast", frontier: bool = True, plot: bool = False,
             progress: bool = False) -> dict:
    """All figures listed in the module docstring, as a JSON-ready dict. ``frontier``: add
    the adaptivity objects (``graded`` / ``clean``); ``plot``: also write ``frontier.png``
    into the artifact directory."""
    t0 = time.perf_counter()
    net = load_network(artifact_dir)
    meta, ds = _meta(net)
    sets = held_out_sets(artifact_dir)
    x, y, levels = sets["test"]
    codes = quantize_input(net, x)
    n, B = net.n, net.candidate_bits
    res = {"artifact": str(artifact_dir), "n_test": int(len(y)), "n": n, "B": B,
           "mode": net.mode, "fp32_accuracy": meta.get("fp32_accuracy")}
    golden_static, static_acc = {}, {}
    for b in B:
        r = run_network(net, codes, bits=b, impl=impl)
        golden_static[b] = r
        static_acc[str(b)] = float((r.output.argmax(-1) == y).mean())
    res["static_accuracy"] = static_acc
    full = golden_static[n] if n in golden_static else run_network(net, codes, bits=n, impl=impl)
    dyn = None
    if net.controller is not None:
        dyn = run_network(net, codes, bits="dynamic", impl=impl)
        res["dynamic_accuracy"] = float((dyn.output.argmax(-1) == y).mean())
        res["dynamic_avg_bits"] = float(dyn.bits.mean())
        res["dynamic_bitops_ratio"] = dyn.totals()["bitops"] / full.totals()["bitops"]
        res["dynamic_bits_histogram"] = {str(b): int((dyn.bits == b).sum()) for b in B}
        res["dynamic_layer_mean_bits"] = {q: float(dyn.bits[:, i].mean())
                                          for i, q in enumerate(dyn.qlayers)}
        res["overflow_events"] = dyn.totals()["overflow"]
    # independent integer path in torch
    inet = IntegerNetwork(net.manifest, net.arrays)

    def same(a, b_):
        a = np.asarray(a)
        return (a.reshape(len(a), -1) == np.asarray(b_).reshape(len(a), -1)).all(-1)

    res["integer_vs_torch_identical_static"] = {
        str(b): float(same(inet.run(codes, b)[0].numpy(), golden_static[b].output).mean()) for b in B}
    if dyn is not None:
        tout, tbits = inet.run(codes, "dynamic")
        ident = same(tout.numpy(), dyn.output) & same(tbits.numpy(), dyn.bits)
        res["integer_vs_torch_identical"] = float(ident.mean())
    else:
        res["integer_vs_torch_identical"] = float(np.mean(
            list(res["integer_vs_torch_identical_static"].values())))
    # fake-quant vs integer
    model = load_fakequant_model(artifact_dir)
    if model is not None:
        xt = torch.from_numpy(np.asarray(x, dtype=np.float32))
        res["fakequant_vs_integer_top1_agreement_static"] = {
            str(b): float((fakequant_eval(model, xt, y, b)["pred"]
                           == golden_static[b].output.argmax(-1)).mean()) for b in B}
        if dyn is not None:
            fq = fakequant_eval(model, xt, y, "dynamic")
            res["fakequant_vs_integer_top1_agreement"] = float(
                (fq["pred"] == dyn.output.argmax(-1)).mean())
        else:
            res["fakequant_vs_integer_top1_agreement"] = float(np.mean(
                list(res["fakequant_vs_integer_top1_agreement_static"].values())))
        modes = list(B) + (["dynamic"] if dyn is not None else [])
        ca = code_agreement(model, net, x, modes, impl)
        res["fakequant_vs_integer_code_agreement"] = ca["fraction"]
        res["fakequant_vs_integer_code_agreement_per_layer"] = ca["per_layer"]
        res["fakequant_vs_integer_constants_equal"] = constants_equal(model, net)
        n_ctrl = sum(p.numel() for p in model.controller.parameters()) if model.controller else 0
        n_all = sum(p.numel() for n_, p in model.named_parameters() if not n_.endswith(".alpha"))
        res["controller_parameter_share"] = n_ctrl / n_all
    else:
        res["fakequant_vs_integer_top1_agreement"] = None
        res["fakequant_vs_integer_code_agreement"] = None
    if frontier and dyn is not None and len(B) ** len(net.qlayers) > MAX_FRONTIER:
        res["frontier_skipped"] = (f"{len(B)}^{len(net.qlayers)} static assignments exceed "
                                   f"{MAX_FRONTIER}")
    elif frontier and dyn is not None:
        figs = {}
        if "clean" in sets:
            figs["graded"] = adaptivity(net, codes, y, levels, impl, progress=progress)
            xc, yc, _ = sets["clean"]
            figs["clean"] = adaptivity(net, quantize_input(net, xc), yc, None, impl,
                                       progress=progress)
        else:
            figs["clean"] = adaptivity(net, codes, y, None, impl, progress=progress)
        res.update(figs)
        if plot:
            plot_frontier(Path(artifact_dir) / FRONTIER_PLOT, figs)
    res["eval_wall_s"] = time.perf_counter() - t0
    return res
