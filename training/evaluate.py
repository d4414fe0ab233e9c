"""Held-out evaluation of a trained digits artifact with the golden model.

The test split is regenerated from the artifact's metadata (``dataset.split_seed``,
``dataset.test_fraction``); inputs become codes with the manifest's input scale
(``golden.network.quantize_input``). Figures (all on the held-out split):

* ``fp32_accuracy``: the float model before quantization (stored at training time);
* ``static_accuracy``: {b: accuracy with every quantized layer at b} for b in B;
* ``dynamic_accuracy``, ``dynamic_avg_bits`` (mean width over quantized layers and images),
  ``dynamic_bitops_ratio`` (dynamic BitOPs / BitOPs with every layer at n), controller
  included in neither;
* ``integer_vs_torch_identical``: fraction of images whose dynamic-mode logits from
  :class:`training.integer_torch.IntegerNetwork` equal the golden runner's on every element
  (per static width too, under ``integer_vs_torch_identical_static``);
* ``fakequant_vs_integer_top1_agreement``: fraction of images where the fake-quantized
  PyTorch model (rebuilt from ``fakequant_state.npz``) and the golden integer network agree
  on the top-1 class in dynamic mode (per static width under ``..._static``).
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from golden.formats import DQTValueError
from golden.loader import ArtifactError, read_arrays
from golden.network import load_network, quantize_input, run_network

from .data import digits_split
from .integer_torch import IntegerNetwork
from .train import STATE_FILE, Recipe, build_from_recipe, fakequant_eval

__all__ = ["evaluate", "digits_test_set", "digits_test_codes", "load_fakequant_model"]


def _meta(net):
    meta = net.manifest.get("metadata") or {}
    ds = meta.get("dataset")
    if not isinstance(ds, dict) or ds.get("dataset") != "digits":
        raise DQTValueError(f"{net.path}: metadata.dataset does not describe a digits split "
                            "(this artifact was not written by 'dqt train --dataset digits')")
    seed, frac = ds.get("split_seed"), ds.get("test_fraction")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ArtifactError(f"{net.path}: metadata.dataset.split_seed {seed!r} must be an "
                            "integer >= 0")
    if not isinstance(frac, (int, float)) or isinstance(frac, bool) or not 0 < frac < 1:
        raise ArtifactError(f"{net.path}: metadata.dataset.test_fraction {frac!r} is outside "
                            "the allowed range (0, 1)")
    return meta, ds


def digits_test_set(artifact_dir):
    """(float pixel images [N, 1, 8, 8], labels [N]) of the artifact's held-out split."""
    net = load_network(artifact_dir)
    _, ds = _meta(net)
    d = digits_split(int(ds["split_seed"]), float(ds["test_fraction"]))
    if len(d.y_test) != ds.get("n_test", len(d.y_test)):
        raise DQTValueError(f"regenerated split has {len(d.y_test)} test images, metadata "
                            f"says {ds['n_test']}")
    return d.x_test, d.y_test


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
    meta, _ = _meta(net)
    p = Path(artifact_dir) / STATE_FILE
    if not p.is_file():
        return None
    try:
        model = build_from_recipe(Recipe.from_json(meta["recipe"]))
    except (KeyError, TypeError, ValueError) as e:
        raise ArtifactError(f"{net.path}: metadata.recipe cannot rebuild the model ({e})") from None
    state = {k: torch.from_numpy(v) for k, v in read_arrays(p, STATE_FILE).items()}
    try:
        model.load_state_dict(state)
    except (RuntimeError, KeyError) as e:
        raise ArtifactError(f"{p}: does not fit the recipe's model "
                            f"({str(e).splitlines()[0]})") from None
    model.eval()
    return model


def evaluate(artifact_dir, impl: str = "fast") -> dict:
    """All figures listed in the module docstring, as a JSON-ready dict."""
    t0 = time.perf_counter()
    net = load_network(artifact_dir)
    meta, ds = _meta(net)
    x, y = digits_test_set(artifact_dir)
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
    else:
        res["fakequant_vs_integer_top1_agreement"] = None
    res["eval_wall_s"] = time.perf_counter() - t0
    return res
