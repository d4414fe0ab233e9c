"""The DQT training recipe: float pre-training, range calibration, then quantization-aware
training of the backbone and the controller, and export to an integer artifact.

Loss of the quantized phase (per batch)::

    J = J_task(dynamic) + alpha · Σ_{b in B'} J_task(all layers statically at b)
        + beta · max(0, E[cost] - target)

J_task is cross-entropy. The dynamic pass samples hard one-hot Gumbel-Softmax widths for the
controlled layers (temperature from :class:`training.controller.TauSchedule`). E[cost] is the
controller's expected mean bit-width over all quantized layers (``cost="bits"``, in bits) or
the expected BitOPs over the all-n BitOPs (``cost="bitops"``, a ratio), under the softmax of
its logits.

Reproducibility: same recipe and seed -> the same artifact (manifest digest), by seeding
torch/numpy, ``torch.use_deterministic_algorithms(True)`` and a fixed thread count.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from golden import defaults
from golden.formats import DQTValueError

from .controller import TauSchedule
from .data import digits_split
from .export import artifact_digest, save_artifact
from .models import QNet, build_model
from .quant import QuantConfig

__all__ = ["Recipe", "train_digits", "build_from_recipe", "save_state", "load_state",
           "STATE_FILE", "LOG_FILE", "PLOT_FILE", "set_determinism"]

STATE_FILE = "fakequant_state.npz"
LOG_FILE = "training_log.json"
PLOT_FILE = "training_log.png"


@dataclass(frozen=True)
class Recipe:
    """Every choice of a training run; stored in the artifact's metadata."""

    seed: int = 0
    split_seed: int = 0
    test_fraction: float = 0.2
    n: int = 8
    B: tuple = defaults.CANDIDATES
    mode: str = defaults.MODE.value
    arch: str = "digits_cnn"
    width: int = 16
    hidden: int = 64
    first_bits: int = 4          # static width of the layers up to the controller's tap
    fp32_epochs: int = 20
    qat_epochs: int = 25
    batch_size: int = 64
    lr: float = 3e-3
    qat_lr: float = 1e-3
    ctrl_lr: float = 3e-3
    weight_decay: float = 1e-4
    alpha: float = 0.5
    B_prime: tuple | None = None   # None: B
    beta: float = 2.0
    cost: str = "bits"
    cost_form: str = "batch"      # hinge on the batch mean ("batch") or per input ("input")
    target: float = 4.25
    tau_start: float = 2.0
    tau_end: float = 0.3
    tau_kind: str = "exp"
    calib_batches: int = 8
    threads: int = 2

    def __post_init__(self):
        cfg = self.quant_config()  # checks n, B, mode
        object.__setattr__(self, "B", cfg.B)
        bp = cfg.B if self.B_prime is None else tuple(self.B_prime)
        for b in bp:
            cfg.check_bits(b, "B_prime bit-width")
        object.__setattr__(self, "B_prime", tuple(sorted(set(bp))))
        cfg.check_bits(self.first_bits, "first_bits")
        for name in ("seed", "split_seed", "fp32_epochs", "qat_epochs", "calib_batches"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise DQTValueError(f"{name}={v!r} must be a non-negative integer")
        for name in ("batch_size", "threads", "width", "hidden"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise DQTValueError(f"{name}={v!r} must be a positive integer")
        for name in ("lr", "qat_lr", "ctrl_lr"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and 0 < v < 10):
                raise DQTValueError(f"{name}={v!r} is outside the allowed range (0, 10)")
        for name in ("alpha", "beta", "weight_decay"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise DQTValueError(f"{name}={v!r} must be a finite number >= 0")
        if self.cost_form not in ("input", "batch"):
            raise DQTValueError(f"cost_form {self.cost_form!r} is not one of ['input', 'batch']")
        if self.cost not in ("bits", "bitops"):
            raise DQTValueError(f"cost {self.cost!r} is not one of ['bits', 'bitops']")
        lo, hi = (min(cfg.B), cfg.n) if self.cost == "bits" else (0.0, 1.0)
        if not (isinstance(self.target, (int, float)) and lo <= self.target <= hi):
            raise DQTValueError(f"target={self.target!r} is outside the allowed range "
                                f"[{lo}, {hi}] for cost={self.cost!r}")
        TauSchedule(self.tau_start, self.tau_end, self.tau_kind)

    def quant_config(self) -> QuantConfig:
        return QuantConfig(self.n, tuple(self.B), self.mode)

    def tau(self) -> TauSchedule:
        return TauSchedule(self.tau_start, self.tau_end, self.tau_kind)

    def to_json(self) -> dict:
        d = asdict(self)
        d["B"], d["B_prime"] = list(self.B), list(self.B_prime)
        return d

    @classmethod
    def from_json(cls, d: dict) -> "Recipe":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise DQTValueError(f"recipe has unknown keys {sorted(unknown)}")
        d = dict(d)
        for k in ("B", "B_prime"):
            if d.get(k) is not None:
                d[k] = tuple(d[k])
        return cls(**d)


def set_determinism(seed: int, threads: int) -> None:
    """Seed every generator and pin the kernels so a run is reproducible bit for bit."""
    torch.manual_seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)


def build_from_recipe(r: Recipe) -> QNet:
    """The untrained model the recipe describes (static widths: ``first_bits`` up to the
    tap, n elsewhere)."""
    cfg = r.quant_config()
    if r.arch == "digits_cnn":
        m = build_model("digits_cnn", cfg, width=r.width, hidden=r.hidden, first_bits=r.first_bits)
    else:
        m = build_model(r.arch, cfg, hidden=r.hidden)
        if m.tap is not None:
            names = [nd.name for nd in m.nodes]
            ti = names.index(m.tap)
            m.set_static_bits({q: r.first_bits for q in m.qlayers if names.index(q) <= ti})
    return m


def save_state(path, model: QNet) -> None:
    """Float parameters and buffers as .npz (no pickle), written atomically."""
    arrays = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_state(path, model: QNet) -> QNet:
    with np.load(path, allow_pickle=False) as z:
        sd = {k: torch.from_numpy(z[k]) for k in z.files}
    model.load_state_dict(sd)
    return model


def _write_json(path, obj):
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        json.dump(obj, f, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)


def _plot(path, log):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 3, figsize=(13, 3.6))
    fp, q = log["fp32"], log["qat"]
    e0 = len(fp)
    ax[0].plot(range(1, e0 + 1), [r["loss"] for r in fp], label="fp32")
    ax[0].plot(range(e0 + 1, e0 + len(q) + 1), [r["loss"] for r in q], label="QAT (J)")
    ax[0].set_xlabel("epoch"); ax[0].set_ylabel("training loss"); ax[0].legend()
    ax[1].plot(range(1, e0 + 1), [r["test_acc"] for r in fp], label="fp32")
    xs = range(e0 + 1, e0 + len(q) + 1)
    ax[1].plot(xs, [r["test_acc_dynamic"] for r in q], label="dynamic")
    for b in (q[0]["test_acc_static"].keys() if q else []):
        ax[1].plot(xs, [r["test_acc_static"][b] for r in q], label=f"static {b}b", lw=0.8)
    ax[1].set_xlabel("epoch"); ax[1].set_ylabel("test accuracy (fake-quant)"); ax[1].legend(fontsize=7)
    ax[2].plot(xs, [r["test_avg_bits"] for r in q], label="dynamic mean bits")
    ax[2].set_xlabel("epoch"); ax[2].set_ylabel("bits"); ax[2].legend()
    fig.tight_layout()
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)


@torch.no_grad()
def fakequant_eval(model: QNet, x, y, bits):
    """Accuracy, predictions and (dynamic) widths of the fake-quantized model."""
    model.eval()
    logits, info = model(torch.as_tensor(x), bits)
    pred = logits.argmax(-1).numpy()
    out = {"acc": float((pred == np.asarray(y)).mean()), "pred": pred}
    if "gates" in info:
        B = torch.tensor(model.cfg.B, dtype=torch.float32)
        chosen = (info["gates"] * B).sum(-1)  # [N, C]
        nb = dict(model.static_bits)
        total = sum(v for k, v in nb.items() if k not in model.controlled)
        out["avg_bits"] = float((total + chosen.sum(-1)).mean() / len(model.qlayers))
    return out


def _batches(N, bs, gen):
    p = torch.randperm(N, generator=gen)
    for i in range(0, N, bs):
        yield p[i:i + bs]


def train_digits(out_dir, recipe: Recipe | None = None, progress: bool = True, **overrides) -> dict:
    """Train the digits model with ``recipe`` (``Recipe()`` defaults, ``overrides`` applied),
    write the artifact to ``out_dir`` plus ``training_log.json``, ``training_log.png`` and the
    fake-quantized model's state (``fakequant_state.npz``). Returns a summary dict."""
    from tqdm import tqdm

    r = recipe or Recipe()
    if overrides:
        d = r.to_json()
        d.update(overrides)
        r = Recipe.from_json(d)
    if r.arch != "digits_cnn":
        raise DQTValueError(f"train_digits trains arch 'digits_cnn', got {r.arch!r}")
    t0 = time.perf_counter()
    set_determinism(r.seed, r.threads)
    data = digits_split(r.split_seed, r.test_fraction)
    xtr, ytr = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    xte, yte = torch.from_numpy(data.x_test), data.y_test
    model = build_from_recipe(r)
    gen = torch.Generator().manual_seed(r.seed)
    N = len(ytr)
    steps = math.ceil(N / r.batch_size)
    bar = tqdm(total=(r.fp32_epochs + r.qat_epochs) * steps, desc="dqt train", unit="step",
               disable=not progress, leave=False)
    log = {"recipe": r.to_json(), "split": data.info(), "fp32": [], "qat": []}

    # ---- phase 1: float network ---------------------------------------------------------
    params = [p for n_, p in model.named_parameters() if not n_.startswith("controller.")
              and not n_.endswith(".alpha")]
    opt = torch.optim.Adam(params, lr=r.lr, weight_decay=r.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, r.fp32_epochs * steps))
    for ep in range(r.fp32_epochs):
        model.train()
        tot = 0.0
        for idx in _batches(N, r.batch_size, gen):
            loss = F.cross_entropy(model.forward_float(xtr[idx]), ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            tot += float(loss.detach()) * len(idx)
            bar.update(1)
        model.eval()
        with torch.no_grad():
            acc = float((model.forward_float(xte).argmax(-1).numpy() == yte).mean())
        log["fp32"].append({"epoch": ep + 1, "loss": tot / N, "test_acc": acc})
    model.eval()
    with torch.no_grad():
        fp32_acc = float((model.forward_float(xte).argmax(-1).numpy() == yte).mean())
    log["fp32_wall_s"] = time.perf_counter() - t0

    # ---- calibration: EMA of activation ranges initialises the PACT clips -----------------
    with torch.no_grad():
        for i, idx in enumerate(_batches(N, r.batch_size, gen)):
            if i >= max(1, r.calib_batches):
                break
            model.forward_float(xtr[idx], observe=True)
    for aq in model.act_quantizers():
        aq.init_from_ema()

    # ---- phase 2: quantization-aware training with the controller ------------------------
    ctrl = [p for n_, p in model.named_parameters() if n_.startswith("controller.")]
    back = [p for n_, p in model.named_parameters() if not n_.startswith("controller.")]
    opt = torch.optim.Adam([{"params": back, "lr": r.qat_lr},
                            {"params": ctrl, "lr": r.ctrl_lr}], weight_decay=r.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, r.qat_epochs * steps))
    tau = r.tau()
    total_steps = max(1, r.qat_epochs * steps)
    step = 0
    for ep in range(r.qat_epochs):
        model.train()
        sums = {"loss": 0.0, "task_dynamic": 0.0, "task_static": 0.0, "cost": 0.0, "exp": 0.0}
        for idx in _batches(N, r.batch_size, gen):
            xb, yb = xtr[idx], ytr[idx]
            t = tau(step / total_steps)
            logits, info = model(xb, "dynamic", tau=t)
            j_dyn = F.cross_entropy(logits, yb)
            j_static = torch.zeros(())
            for b in r.B_prime:
                j_static = j_static + F.cross_entropy(model(xb, b)[0], yb)
            e = info["exp_bits"] if r.cost == "bits" else info["exp_bitops"]
            if r.cost_form == "batch":
                j_cost = torch.relu(e - r.target)
            else:
                ei = info["exp_bits_per_input"] if r.cost == "bits" else info["exp_bitops_per_input"]
                j_cost = torch.relu(ei - r.target).mean()
            loss = j_dyn + r.alpha * j_static + r.beta * j_cost
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            k = len(idx)
            sums["loss"] += float(loss.detach()) * k
            sums["task_dynamic"] += float(j_dyn.detach()) * k
            sums["task_static"] += float(j_static.detach()) * k
            sums["cost"] += float(j_cost.detach()) * k
            sums["exp"] += float(e.detach()) * k
            bar.update(1)
        row = {"epoch": r.fp32_epochs + ep + 1, "tau": tau(step / total_steps)}
        row.update({k: v / N for k, v in sums.items()})
        dyn = fakequant_eval(model, xte, yte, "dynamic")
        row["test_acc_dynamic"] = dyn["acc"]
        row["test_avg_bits"] = dyn["avg_bits"]
        row["test_acc_static"] = {str(b): fakequant_eval(model, xte, yte, b)["acc"] for b in r.B}
        log["qat"].append(row)
        bar.set_postfix(dyn=f"{dyn['acc']:.3f}", bits=f"{dyn['avg_bits']:.2f}")
    bar.close()
    log["qat_wall_s"] = time.perf_counter() - t0 - log["fp32_wall_s"]

    # ---- export --------------------------------------------------------------------------
    model.eval()
    fq = {str(b): fakequant_eval(model, xte, yte, b)["acc"] for b in r.B}
    dyn = fakequant_eval(model, xte, yte, "dynamic")
    meta = {"fp32_accuracy": fp32_acc, "seed": r.seed, "recipe": r.to_json(),
            "dataset": data.info(), "arch": r.arch,
            "fakequant_static_accuracy": fq, "fakequant_dynamic_accuracy": dyn["acc"],
            "fakequant_dynamic_avg_bits": dyn["avg_bits"],
            "state_file": STATE_FILE}
    out = Path(out_dir)
    save_artifact(out, model, meta)
    save_state(out / STATE_FILE, model)
    wall = time.perf_counter() - t0
    log["wall_s"] = wall
    log["fp32_accuracy"] = fp32_acc
    _write_json(out / LOG_FILE, log)
    _plot(out / PLOT_FILE, log)
    return {"artifact": str(out), "digest": artifact_digest(out), "wall_s": wall,
            "fp32_accuracy": fp32_acc, "fakequant_static_accuracy": fq,
            "fakequant_dynamic_accuracy": dyn["acc"], "fakequant_dynamic_avg_bits": dyn["avg_bits"]}
