"""Adaptivity figures of an artifact: the dynamic mode against the full static frontier.

The static frontier is every per-layer width assignment over B (uniform ones included),
evaluated with the golden runner's layer function on a depth-first walk of the layer list, so
each prefix of an assignment runs once (|B|^L assignments cost about |B|^L runs of the last
layer and |B| of the first). BitOPs per image are Σ_l MACs_l · b_l²; the dynamic mode's
include the controller's own layers at their width.
"""
from __future__ import annotations


import numpy as np

from golden.network import QUANT_TYPES, _resolve_sources, _run_layer, run_network

__all__ = ["layer_macs", "controller_bitops", "static_frontier", "adaptivity", "entropy_bits"]


def layer_macs(net, x1) -> dict:
    """MACs per image of every quantized backbone layer (from one image at n bits)."""
    r = run_network(net, x1[:1], bits=net.n)
    return {q: r.ops[q]["macs"] for q in net.qlayers}


def controller_bitops(net) -> int:
    """BitOPs per image of the controller's layers (MACs · bits²), 0 without one."""
    if net.controller is None:
        return 0
    return int(sum(int(np.prod(net.arrays[l["weight"]].shape)) * l["bits"] ** 2
                   for l in net.controller["layers"]))


def static_frontier(net, codes, y, impl: str = "fast", progress: bool = False) -> list:
    """[{assignment: {layer: bits}, accuracy, bitops_per_image, pareto}] for every assignment."""
    from tqdm import tqdm

    seq = [dict(l) for l in net.layers]
    _resolve_sources(seq, "input")
    out_name = net.manifest.get("output", seq[-1]["name"])
    macs = layer_macs(net, codes)
    B = net.candidate_bits
    acc = {}
    bar = tqdm(total=len(B) ** len(net.qlayers), desc="static frontier", disable=not progress,
               leave=False)

    def walk(i, env, prefix):
        if i == len(seq):
            acc[prefix] = float((env[out_name].argmax(-1) == y).mean())
            bar.update(1)
            return
        l = seq[i]
        for b in (B if l["type"] in QUANT_TYPES else [None]):
            v = _run_layer(net, l, env, b, impl, False)[0]
            walk(i + 1, dict(env, **{l["name"]: v}), prefix + ((b,) if b else ()))

    walk(0, {"input": np.asarray(codes, dtype=np.int64)}, ())
    bar.close()
    rows = []
    for a, ac in acc.items():
        bo = sum(macs[q] * b * b for q, b in zip(net.qlayers, a))
        rows.append({"assignment": dict(zip(net.qlayers, a)), "accuracy": ac,
                     "bitops_per_image": int(bo)})
    for r in rows:  # Pareto: no other assignment at most as costly and strictly more accurate
        r["pareto"] = not any(o["bitops_per_image"] <= r["bitops_per_image"] and
                              o["accuracy"] > r["accuracy"] for o in rows)
    rows.sort(key=lambda r: (r["bitops_per_image"], -r["accuracy"]))
    return rows


def entropy_bits(rows: np.ndarray) -> float:
    """Shannon entropy (bits) of the empirical distribution of the rows of ``rows``."""
    _, counts = np.unique(rows, axis=0, return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log2(p)).sum())


def adaptivity(net, codes, y, levels=None, impl: str = "fast", frontier=None,
               progress: bool = False) -> dict:
    """``dynamic`` {accuracy, bitops_per_image (controller included), avg_bits,
    assignment_entropy_bits, avg_bits_by_level}, ``static_frontier``,
    ``bitops_saving_vs_static`` (1 - dynamic BitOPs / the lowest BitOPs of a static assignment
    at least as accurate; None when none is) and ``accuracy_gain_vs_static_pts`` (dynamic
    accuracy minus the best static accuracy at no more BitOPs, in points; None when no static
    assignment is that cheap)."""
    macs = layer_macs(net, codes)
    frontier = frontier or static_frontier(net, codes, y, impl, progress)
    d = run_network(net, codes, bits="dynamic", impl=impl)
    m = np.array([macs[q] for q in net.qlayers], dtype=np.float64)
    per_img = (d.bits.astype(np.float64) ** 2 * m).sum(-1) + controller_bitops(net)
    dyn = {"accuracy": float((d.output.argmax(-1) == y).mean()),
           "bitops_per_image": float(per_img.mean()),
           "avg_bits": float(d.bits.mean()),
           "assignment_entropy_bits": entropy_bits(d.bits)}
    if levels is not None:
        dyn["avg_bits_by_level"] = {str(int(v)): float(d.bits[levels == v].mean())
                                    for v in np.unique(levels)}
        dyn["accuracy_by_level"] = {str(int(v)): float((d.output.argmax(-1) == y)[levels == v].mean())
                                    for v in np.unique(levels)}
    ok = [r["bitops_per_image"] for r in frontier if r["accuracy"] >= dyn["accuracy"]]
    cheap = [r["accuracy"] for r in frontier if r["bitops_per_image"] <= dyn["bitops_per_image"]]
    return {"n_images": int(len(y)), "dynamic": dyn, "static_frontier": frontier,
            "bitops_saving_vs_static": (1 - dyn["bitops_per_image"] / min(ok)) if ok else None,
            "accuracy_gain_vs_static_pts": 100 * (dyn["accuracy"] - max(cheap)) if cheap else None,
            "controller_bitops_per_image": controller_bitops(net)}


def plot_frontier(path, fig_data: dict) -> None:
    """PNG: static assignments (grey, Pareto set joined) and the dynamic point per split."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(fig_data), figsize=(6 * len(fig_data), 4.2), squeeze=False)
    for ax, (name, a) in zip(axes[0], fig_data.items()):
        fr = a["static_frontier"]
        ax.scatter([r["bitops_per_image"] for r in fr], [100 * r["accuracy"] for r in fr],
                   s=8, c="0.7", label="static assignments")
        par = [r for r in fr if r["pareto"]]
        ax.plot([r["bitops_per_image"] for r in par], [100 * r["accuracy"] for r in par],
                "k-", lw=1, label="static Pareto frontier")
        for r in fr:
            if len(set(r["assignment"].values())) == 1:
                b = next(iter(r["assignment"].values()))
                ax.annotate(f"{b}b", (r["bitops_per_image"], 100 * r["accuracy"]), fontsize=7)
        dy = a["dynamic"]
        ax.plot(dy["bitops_per_image"], 100 * dy["accuracy"], "r*", ms=12, label="dynamic")
        ax.set_xscale("log")
        ax.set_xlabel("BitOPs per image")
        ax.set_ylabel("accuracy (%)")
        ax.set_title(f"{name} split ({a['n_images']} images)")
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


