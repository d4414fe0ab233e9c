"""The paper's experiments as commands: ``dqt experiment NAME --out DIR [--json] [--quick]``.

Each experiment writes ``NAME.json`` (every figure), ``NAME.md`` (a table) and ``NAME.png``
into DIR; ``--quick`` runs a reduced version (the tests use it). All run on digits, offline:

=================  ==========================================================================
shift-vs-requant   the right-shifted master code vs an independent b-bit quantization of the
                   same tensor (weights and activations of a float-trained digits CNN):
                   normalised RMS error and mean error per b and conversion mode
operator-error     the integer add / multiply with dyadic constants (golden ``int_add``,
                   ``int_mul``) vs the FP32 dequantize-compute-requantize path, against the
                   exact real result: |eps| in output LSBs per constant width
alpha-sweep        consistency weight alpha in {0, 0.01, 0.05, 0.1, 0.5} (floor and round):
                   accuracy per static b and the 2-bit path's test accuracy per epoch
scale-ablation     nested power-of-two steps vs independently learned per-width steps (a width
                   switch requantizes): accuracy per b and the transition cost per switch
bitops-vs-energy   BitOPs saving vs energy saving per image per mode (static b, dynamic), the
                   energy from the report's engine figures when given, else the 45 nm model
budget-sweep       graded digits: the controller trained at BitOPs budgets 0.25 .. 0.55; per
                   budget the dynamic mode against that network's full static frontier
=================  ==========================================================================
"""
from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from golden.formats import DQTValueError

__all__ = ["EXPERIMENTS", "run_experiment", "register"]

EXPERIMENTS = {}
ALPHAS = (0.0, 0.01, 0.05, 0.1, 0.5)


def _experiment(name, summary):
    def deco(f):
        EXPERIMENTS[name] = (summary, f)
        return f
    return deco


def _small_recipe(quick, **kw):
    """The recipe the training experiments share: the digits CNN at width 8, short."""
    base = dict(width=8, hidden=32, fp32_epochs=10, qat_epochs=6, batch_size=64, threads=1)
    if quick:
        base.update(width=4, hidden=8, fp32_epochs=1, qat_epochs=1, batch_size=256,
                    calib_batches=2, threads=1)
    base.update(kw)
    return base


# ---- shift-vs-requant ------------------------------------------------------------------
def _float_tensors(quick):
    """Weights and post-ReLU activations of a float-trained digits CNN (test images)."""
    from .data import digits_split
    from .train import Recipe, _float_acc, build_from_recipe, set_determinism
    import torch
    import torch.nn.functional as F

    r = Recipe(**_small_recipe(quick))
    set_determinism(0, r.threads)
    d = digits_split()
    m = build_from_recipe(r)
    opt = torch.optim.Adam(m.parameters(), lr=r.lr)
    xtr, ytr = torch.from_numpy(d.x_train), torch.from_numpy(d.y_train)
    for _ in range(r.fp32_epochs):
        m.train()
        for i in range(0, len(ytr), r.batch_size):
            loss = F.cross_entropy(m.forward_float(xtr[i:i + r.batch_size]), ytr[i:i + r.batch_size])
            opt.zero_grad()
            loss.backward()
            opt.step()
    acc = _float_acc(m, torch.from_numpy(d.x_test), d.y_test, "cpu")
    rec = {}
    with torch.no_grad():
        m.eval()
        m._run_float(torch.from_numpy(d.x_test), record=rec)
    w = {q: m.layers[q].weight.detach() for q in m.qlayers}
    a = {q: rec[q] for q in m.qlayers if m.layers[q].requant}
    return w, a, acc


def _errors(x, recon):
    import torch
    rms = float(torch.sqrt((x ** 2).mean()))
    e = recon - x
    return float(torch.sqrt((e ** 2).mean())) / rms, float(e.mean()) / rms


def _conversions(x, n, b, signed):
    """{method: reconstruction} of ``x`` at b bits: nested floor / round / floor read at the
    bin centre, and an independent b-bit quantization (max-abs, or the 99.9th percentile
    clip for activations)."""
    import torch

    from .quant import nested_codes

    if signed:
        a = x.abs().max()
        lo_n, hi_n, lo_b, hi_b = -(1 << (n - 1)), (1 << (n - 1)) - 1, -(1 << (b - 1)), (1 << (b - 1)) - 1
        s_n, s_b = a / hi_n, a / max(1, hi_b)
    else:
        a = torch.quantile(x.flatten()[:200000], 0.999)
        lo_n, hi_n, lo_b, hi_b = 0, (1 << n) - 1, 0, (1 << b) - 1
        s_n, s_b = a / hi_n, a / hi_b
    q = torch.clamp(torch.round(x / s_n), lo_n, hi_n)
    k = float(1 << (n - b))
    fl = nested_codes(q, n, b, "floor", signed)
    return {"nested floor": fl * k * s_n,
            "nested round": nested_codes(q, n, b, "round", signed) * k * s_n,
            "nested floor, bin centre": (fl * k + (k - 1) / 2) * s_n,
            "independent b-bit": torch.clamp(torch.round(x / s_b), lo_b, hi_b) * s_b}


@_experiment("shift-vs-requant", "right-shifted master code vs an independent b-bit "
             "quantization of the same tensor: error per b and mode")
def shift_vs_requant(quick=False, progress=True, **_):
    w, a, acc = _float_tensors(quick)
    n, rows = 8, []
    for kind, tensors, signed in (("weights", w, True), ("activations", a, False)):
        for b in (2, 3, 4, 5, 6, 7):
            per = {}
            for t in tensors.values():
                for meth, rec in _conversions(t, n, b, signed).items():
                    per.setdefault(meth, []).append(_errors(t, rec))
            for meth, v in per.items():
                rows.append([kind, b, meth, float(np.mean([e[0] for e in v])),
                             float(np.mean([e[1] for e in v]))])
    cols = ["tensor", "b", "method", "normalised RMS error", "mean error / RMS"]

    def plot(ax):
        for j, kind in enumerate(("weights", "activations")):
            for meth in sorted({r[2] for r in rows}):
                pts = [(r[1], r[3]) for r in rows if r[0] == kind and r[2] == meth]
                ax[j].plot(*zip(*pts), marker="o", label=meth)
            ax[j].set_yscale("log")
            ax[j].set_xlabel("b")
            ax[j].set_ylabel("RMS error / RMS")
            ax[j].set_title(f"{kind} (n = 8, mean over layers)")
            ax[j].legend(fontsize=7)
    return {"columns": cols, "rows": rows, "panels": 2, "plot": plot,
            "data": {"float_accuracy": acc, "n": n}}


# ---- operator-error ---------------------------------------------------------------------
def _fit_constants(make, widths_S=range(40, -1, -1)):
    for S in widths_S:
        try:
            return make(S)
        except DQTValueError:
            continue
    raise DQTValueError("no shift fits the constants")


def _op_errors(op, m_bits, trials, per, rng):
    from golden.formats import AddConstants, IntFormat, MulConstants
    from golden.ops import int_add, int_mul

    out, sout = IntFormat(8, False), IntFormat(8, True)
    lo, hi = (0, 255) if op == "add" else (-128, 127)
    e_int, e_fp = [], []
    for _ in range(trials):
        d1, d2 = 10 ** rng.uniform(-3, -1, 2)
        z1, z2 = int(rng.integers(0, 32)), 0 if op == "multiply" else int(rng.integers(0, 32))
        q1 = rng.integers(0, 256, per)
        if op == "add":
            dy, zy = (d1 + d2) * 10 ** rng.uniform(0, 0.7), int(rng.integers(0, 16))
            q2 = rng.integers(0, 256, per)
            real = d1 * (q1 - z1) + d2 * (q2 - z2)
            c = _fit_constants(lambda S: AddConstants.from_scales(d1, z1, d2, z2, dy, zy, out,
                                                                  m_bits, S))
            y = int_add(q1, q2, c)
            f32 = np.float32
            yf = (f32(d1) * (q1 - z1).astype(f32) + f32(d2) * (q2 - z2).astype(f32)) / f32(dy)
        else:
            q2 = rng.integers(-128, 128, per)
            dy, zy = d1 * d2 * 10 ** rng.uniform(1.5, 2.5), 0
            real = d1 * (q1 - z1) * d2 * q2
            c = MulConstants.from_scales(d1, z1, d2, 0, dy, zy, sout, m_bits)
            y = int_mul(q1, q2, c)
            f32 = np.float32
            yf = (f32(d1) * (q1 - z1).astype(f32)) * (f32(d2) * q2.astype(f32)) / f32(dy)
        ystar = real / dy + zy
        ok = (ystar >= lo) & (ystar <= hi)
        e_int.append(np.abs(y - ystar)[ok])
        e_fp.append(np.abs(np.clip(np.rint(yf) + zy, lo, hi) - ystar)[ok])
    return np.concatenate(e_int), np.concatenate(e_fp)


def _stats(e):
    return {"mean": float(e.mean()), "p99": float(np.quantile(e, 0.99)), "max": float(e.max()),
            "frac_over_half_lsb": float((e > 0.5 + 1e-9).mean()), "count": int(e.size)}


@_experiment("operator-error", "integer add / multiply with dyadic constants vs FP32: "
             "|eps| distribution per constant width")
def operator_error(quick=False, progress=True, **_):
    rng = np.random.default_rng(0)
    trials, per = (20, 200) if quick else (300, 2000)
    rows, data = [], {}
    for op in ("add", "multiply"):
        fp_all = []
        for m_bits in (8, 12, 16, 24, 32):
            e, ef = _op_errors(op, m_bits, trials, per, rng)
            fp_all.append(ef)
            st = _stats(e)
            data[f"{op}/int{m_bits}"] = dict(st, hist=np.histogram(e, 40, (0, 2))[0].tolist())
            rows.append([op, f"integer, {m_bits}-bit constants", st["mean"], st["p99"], st["max"],
                         st["frac_over_half_lsb"]])
        st = _stats(np.concatenate(fp_all))
        data[f"{op}/fp32"] = st
        rows.append([op, "FP32 dequantize / compute / requantize", st["mean"], st["p99"],
                     st["max"], st["frac_over_half_lsb"]])
    cols = ["operator", "implementation", "mean |eps| (LSB)", "p99 |eps|", "max |eps|",
            "share |eps| > 0.5"]

    def plot(ax):
        for j, op in enumerate(("add", "multiply")):
            r = [x for x in rows if x[0] == op]
            lab = [x[1].replace(" dequantize / compute / requantize", "").replace(", ", "\n")
                   for x in r]
            ax[j].bar(range(len(r)), [x[3] for x in r], label="p99")
            ax[j].plot(range(len(r)), [x[2] for x in r], "ko", label="mean")
            ax[j].axhline(0.5, color="r", lw=0.8, label="0.5 LSB (ideal rounding)")
            ax[j].set_xticks(range(len(r)), lab, fontsize=6)
            ax[j].set_yscale("log")
            ax[j].set_ylabel("|eps| vs the exact result (output LSB)")
            ax[j].set_title(f"integer {op}")
            ax[j].legend(fontsize=7)
    return {"columns": cols, "rows": rows, "panels": 2, "plot": plot, "data": data}


# ---- alpha-sweep ------------------------------------------------------------------------
def _note(progress, row):
    """A finished row on stderr, so that a long sweep shows its results as it goes."""
    if progress:
        from tqdm import tqdm
        tqdm.write(" | ".join(_fmt(v) for v in row))


def _train_tmp(quick, progress, **kw):
    from .train import train

    with tempfile.TemporaryDirectory() as tmp:
        s = train(Path(tmp) / "a", progress=progress, **_small_recipe(quick, **kw))
        log = json.loads((Path(tmp) / "a" / "training_log.json").read_text())
    return s, log


@_experiment("alpha-sweep", "consistency weight alpha: accuracy per static b and the 2-bit "
             "path's convergence (floor and round)")
def alpha_sweep(quick=False, progress=True, **_):
    alphas, modes = ((0.0, 0.5), ("floor",)) if quick else (ALPHAS, ("floor", "round"))
    rows, curves = [], {}
    for mode in modes:
        for a in alphas:
            s, log = _train_tmp(quick, progress, alpha=a, mode=mode)
            acc = s["fakequant_static_accuracy"]
            c2 = [r["test_acc_static"]["2"] for r in log["qat"]]
            curves[f"{mode} alpha={a}"] = c2
            rows.append([mode, a] + [acc[str(b)] for b in (2, 4, 6, 8)]
                        + [s["fakequant_dynamic_accuracy"], " ".join(f"{v:.3f}" for v in c2)])
            _note(progress, rows[-1])
    cols = ["mode", "alpha", "2b", "4b", "6b", "8b", "dynamic", "2-bit accuracy per QAT epoch"]

    def plot(ax):
        for k, c in curves.items():
            ax[0].plot(range(1, len(c) + 1), c, ls="-" if k.startswith("floor") else "--",
                       marker="o", label=k)
        ax[0].set_xlabel("quantized epoch")
        ax[0].set_ylabel("2-bit test accuracy (integer pass)")
        ax[0].legend(fontsize=7)
    return {"columns": cols, "rows": rows, "panels": 1, "plot": plot,
            "data": {"curves": curves, "recipe": _small_recipe(quick)}}


# ---- scale-ablation ---------------------------------------------------------------------
def _transition_cost(quick):
    """Per image, for one precision switch of every controlled layer of the digits CNN:
    elements converted (weights + input activations), the nested shift vs dequantize +
    requantize, and their energy in the 45 nm model."""
    from reports.energy_model import HOROWITZ_45NM, add_pj

    from .models import digits_cnn
    from .quant import QuantConfig

    w = _small_recipe(quick)["width"]
    m = digits_cnn(QuantConfig(), width=w)
    shapes = m._shapes()
    prev = {"conv2": "conv1", "conv3": "pool1", "fc": "flat"}
    el = {c: m.layers[c].weight.numel() + int(np.prod(shapes[prev[c]])) for c in m.controlled}
    N = sum(el.values())
    h = HOROWITZ_45NM
    return {"elements": N, "per_layer": el,
            "nested floor": {"ops": N, "op": "shift", "pj": N * add_pj(8)},
            "nested round": {"ops": 2 * N, "op": "shift + add", "pj": N * (add_pj(8) + add_pj(9))},
            "independent": {"ops": 2 * N, "op": "2 fp32 multiplies (+ 2 int<->fp32 conversions)",
                            "pj": N * 2 * (h["fmult32"] + h["fadd32"])}}


@_experiment("scale-ablation", "nested power-of-two steps vs independently learned "
             "per-width steps: accuracy and transition cost")
def scale_ablation(quick=False, progress=True, **_):
    variants = [("nested floor", dict(mode="floor")), ("nested round", dict(mode="round")),
                ("independent", dict(scales="independent"))]
    if quick:
        variants = [variants[0], variants[2]]
    tc = _transition_cost(quick)
    rows, data = [], {"transition": tc}
    for name, kw in variants:
        s, _ = _train_tmp(quick, progress, **kw)
        acc = s["fakequant_static_accuracy"]
        t = tc[name]
        rows.append([name] + [acc[str(b)] for b in (2, 4, 6, 8)]
                    + [s["fakequant_dynamic_accuracy"], t["ops"], t["op"], t["pj"]])
        data[name] = {"static": acc, "dynamic": s["fakequant_dynamic_accuracy"]}
        _note(progress, rows[-1])
    cols = ["scales", "2b", "4b", "6b", "8b", "dynamic", "ops per switch (image)", "operation",
            "switch energy (pJ, 45 nm model)"]

    def plot(ax):
        for r in rows:
            ax[0].plot([2, 4, 6, 8], r[1:5], marker="o", label=r[0])
        ax[0].set_xlabel("static b")
        ax[0].set_ylabel("test accuracy")
        ax[0].legend(fontsize=7)
        ax[1].bar(range(len(rows)), [r[8] for r in rows])
        ax[1].set_xticks(range(len(rows)), [r[0] for r in rows], fontsize=7)
        ax[1].set_ylabel("energy of one precision switch per image (pJ)")
        ax[1].set_yscale("log")
    return {"columns": cols, "rows": rows, "panels": 2, "plot": plot, "data": data}


# ---- bitops-vs-energy -------------------------------------------------------------------
def _engine_pj(report):
    """({b: pJ per MAC}, engine name) measured by ``dqt report`` on the trained network
    (``summary.json["engine"]``, the engine's gate netlist running held-out images), or
    (None, None) without a report. A report without those figures is refused: the 45 nm
    model is what runs without ``--report``, never a silent stand-in for it."""
    if not report:
        return None, None
    p = Path(report) / "summary.json"
    if not p.is_file():
        raise DQTValueError(f"--report {report!r}: no summary.json there (run 'dqt report')")
    s = json.loads(p.read_text())
    e = s.get("engine") if isinstance(s, dict) else None
    pj = e.get("energy_pj_per_mac") if isinstance(e, dict) else None
    per_b = {int(b): float(v) for b, v in (pj or {}).items() if str(b).isdigit()}
    if not per_b:
        raise DQTValueError(f"--report {report!r}: summary.json has no measured engine energy "
                            "per MAC (run 'dqt report --artifact A' with OpenSTA and the "
                            "liberty available)")
    return per_b, e.get("name") or "engine"


def _check_widths(measured, B, report) -> None:
    if measured and not set(B) <= set(measured):
        raise DQTValueError(f"--report {report!r}: the engine's energy is measured at "
                            f"{sorted(measured)} bits, the artifact runs {list(B)}")


@_experiment("bitops-vs-energy", "BitOPs saving vs engine energy per image per mode "
             "(dynamic: the controller included)")
def bitops_vs_energy(quick=False, progress=True, artifact=None, report=None, **_):
    from golden.network import load_network, run_network
    from reports.energy_model import mac_model

    from .evaluate import held_out_sets
    from .frontier import controller_bitops, layer_macs

    with tempfile.TemporaryDirectory() as tmp:
        if artifact is None:
            from .train import train
            artifact = Path(tmp) / "a"
            train(artifact, progress=progress, **_small_recipe(quick))
        net = load_network(artifact)
        x, y, _ = held_out_sets(artifact)["test"]
    from golden.network import quantize_input
    codes = quantize_input(net, x)
    macs = layer_macs(net, codes)
    measured, design = _engine_pj(report)
    source = f"measured ({design}, report)" if measured else "45 nm model (nested_mac)"
    _check_widths(measured, net.candidate_bits, report)
    pj = measured or {b: mac_model("nested_mac", net.n, b) for b in net.candidate_bits}
    modes = list(net.candidate_bits) + (["dynamic"] if net.controller else [])
    res = {}
    for mode in modes:
        r = run_network(net, codes, bits=mode)
        m = np.array([macs[q] for q in net.qlayers], dtype=np.float64)
        bo = float(((r.bits ** 2) * m).sum(-1).mean())
        en = float(np.mean([sum(m[i] * pj[int(b)] for i, b in enumerate(row)) for row in r.bits]))
        if mode == "dynamic":  # the controller runs on every image, at its layers' width
            bo += controller_bitops(net)
            en += sum(int(np.prod(net.arrays[l["weight"]].shape)) * pj[int(l["bits"])]
                      for l in net.controller["layers"])
        res[str(mode)] = {"bitops": bo, "energy_pj": en,
                          "accuracy": float((r.output.argmax(-1) == y).mean())}
    ref = res[str(net.n)]
    rows = [[k, v["accuracy"], v["bitops"], 1 - v["bitops"] / ref["bitops"], v["energy_pj"],
             1 - v["energy_pj"] / ref["energy_pj"]] for k, v in res.items()]
    cols = ["mode", "accuracy", "BitOPs / image", "BitOPs saving vs n", "energy / image (pJ)",
            "energy saving vs n"]

    def plot(ax):
        for r in rows:
            ax[0].plot(r[3], r[5], "o")
            ax[0].annotate(str(r[0]), (r[3], r[5]))
        ax[0].plot([0, 1], [0, 1], "k--", lw=0.8, label="energy saving = BitOPs saving")
        ax[0].set_xlabel("BitOPs saving vs all layers at n")
        ax[0].set_ylabel(f"energy saving ({source})")
        ax[0].legend(fontsize=7)
    return {"columns": cols, "rows": rows, "panels": 1, "plot": plot,
            "data": {"energy_source": source, "pj_per_mac": {str(k): v for k, v in pj.items()},
                     "modes": res}}


# ---- budget-sweep -----------------------------------------------------------------------
BUDGETS = (0.25, 0.35, 0.45, 0.55)


@_experiment("budget-sweep", "graded digits: the dynamic mode at several BitOPs budgets "
             "against each network's full static frontier (accuracy, BitOPs, adaptivity)")
def budget_sweep(quick=False, progress=True, **_):
    from golden.network import load_network, quantize_input

    from .evaluate import held_out_sets
    from .frontier import adaptivity
    from .train import train

    budgets = (0.3, 0.5) if quick else BUDGETS
    extra = _small_recipe(True, levels=3, copies=1) if quick else {}
    rows, points = [], []
    for bgt in budgets:
        with tempfile.TemporaryDirectory() as tmp:
            art = Path(tmp) / "a"
            train(art, progress=progress, dataset="digits-graded", budget=bgt, **extra)
            net = load_network(art)
            x, y, lv = held_out_sets(art)["test"]
            a = adaptivity(net, quantize_input(net, x), y, lv)
        d = a["dynamic"]
        by = d["avg_bits_by_level"]
        cheap = [r["accuracy"] for r in a["static_frontier"]
                 if r["bitops_per_image"] <= d["bitops_per_image"]]
        rows.append([bgt, d["accuracy"], d["bitops_per_image"], d["avg_bits"],
                     d["assignment_entropy_bits"], by[min(by, key=int)], by[max(by, key=int)],
                     max(cheap) if cheap else None, a["bitops_saving_vs_static"],
                     a["accuracy_gain_vs_static_pts"]])
        points.append({"budget": bgt, "dynamic": d,
                       "pareto": [{k: r[k] for k in ("assignment", "accuracy", "bitops_per_image")}
                                  for r in a["static_frontier"] if r["pareto"]]})
        _note(progress, rows[-1])
    cols = ["budget", "accuracy", "BitOPs / image", "avg bits", "entropy (bits)",
            "avg bits cleanest", "avg bits hardest", "best static at <= BitOPs",
            "BitOPs saving vs static", "accuracy gain vs static (pts)"]

    def plot(ax):
        for i, p in enumerate(points):
            par = p["pareto"]
            ax[0].plot([r["bitops_per_image"] for r in par], [100 * r["accuracy"] for r in par],
                       "-", color=f"C{i}", lw=0.8, alpha=0.6,
                       label=f"static Pareto frontier (network of budget {p['budget']})")
            ax[0].plot(p["dynamic"]["bitops_per_image"], 100 * p["dynamic"]["accuracy"], "*",
                       color=f"C{i}", ms=13, label=f"dynamic, budget {p['budget']}")
        ax[0].set_xscale("log")
        ax[0].set_xlabel("BitOPs per image (controller included for dynamic)")
        ax[0].set_ylabel("graded test accuracy (%)")
        ax[0].legend(fontsize=6, loc="lower right")
    return {"columns": cols, "rows": rows, "panels": 1, "plot": plot,
            "data": {"points": points, "quick_recipe": extra}}


# ---- driver -----------------------------------------------------------------------------
def _fmt(v):
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _write(out: Path, name, res, meta):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    lines = [f"# {name}", "", EXPERIMENTS[name][0], "",
             "| " + " | ".join(res["columns"]) + " |", "|" + "---|" * len(res["columns"])]
    lines += ["| " + " | ".join(_fmt(v) for v in r) + " |" for r in res["rows"]]
    fig, ax = plt.subplots(1, res["panels"], figsize=(6.5 * res["panels"], 4.4), squeeze=False)
    res["plot"](ax[0])
    fig.suptitle(name)
    fig.tight_layout()
    obj = {"experiment": name, "columns": res["columns"], "rows": res["rows"],
           "data": res["data"], **meta}
    for suffix, write in ((".png", lambda p: fig.savefig(p, dpi=100)),
                          (".md", lambda p: p.write_text("\n".join(lines) + "\n")),
                          (".json", lambda p: p.write_text(json.dumps(obj, indent=1) + "\n"))):
        tmp = out / f".{name}.tmp{suffix}"
        write(tmp)
        os.replace(tmp, out / f"{name}{suffix}")
    plt.close(fig)
    return obj, "\n".join(lines)


def run_experiment(name, out_dir, quick=False, progress=True, **kw) -> dict:
    """Run one experiment, write NAME.json / .md / .png into ``out_dir``; returns the JSON."""
    if name not in EXPERIMENTS:
        raise DQTValueError(f"experiment {name!r} is not one of {sorted(EXPERIMENTS)}")
    t0 = time.perf_counter()
    res = EXPERIMENTS[name][1](quick=quick, progress=progress, **kw)
    meta = {"quick": bool(quick), "wall_s": time.perf_counter() - t0,
            "load_avg_1min": os.getloadavg()[0]}
    obj, _ = _write(Path(out_dir), name, res, meta)
    return obj


def _cmd(args) -> int:
    if args.list:
        for k, (summary, _) in EXPERIMENTS.items():
            print(f"{k:<18} {summary}")
        return 0
    if not args.name or not args.out:
        raise DQTValueError("give an experiment NAME and --out DIR (or --list)")
    if args.name not in EXPERIMENTS:
        raise DQTValueError(f"experiment {args.name!r} is not one of {sorted(EXPERIMENTS)}")
    if args.artifact is not None and not (Path(args.artifact) / "manifest.json").is_file():
        raise DQTValueError(f"--artifact {args.artifact!r} is not an artifact directory")
    kw = {}
    if args.name == "bitops-vs-energy":
        kw = {"artifact": args.artifact, "report": args.report}
        measured, _ = _engine_pj(args.report)  # checks the report before any work
        if measured and args.artifact:
            from golden.network import load_network
            _check_widths(measured, load_network(args.artifact).candidate_bits, args.report)
    elif args.artifact or args.report:
        raise DQTValueError("--artifact and --report are options of bitops-vs-energy only")
    obj = run_experiment(args.name, args.out, args.quick, progress=not args.json, **kw)
    if not args.json:
        print((Path(args.out) / f"{args.name}.md").read_text())
    print(json.dumps(obj, sort_keys=True))
    return 0


def register(sub) -> None:
    """Add ``experiment`` to the ``dqt`` subparsers."""
    p = sub.add_parser("experiment", help="run one of the paper's experiments on digits",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("name", nargs="?", help="experiment name (see --list)")
    p.add_argument("--out", help="directory for NAME.json, NAME.md and NAME.png")
    p.add_argument("--list", action="store_true", help="list the experiments")
    p.add_argument("--quick", action="store_true", help="reduced version (tests, smoke runs)")
    p.add_argument("--artifact", help="bitops-vs-energy: a trained artifact (default: train one)")
    p.add_argument("--report", help="bitops-vs-energy: a 'dqt report' directory with engine "
                   "energy figures")
    p.add_argument("--json", action="store_true", help="print only the JSON object")
    p.set_defaults(func=_cmd)
