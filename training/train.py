"""The DQT training recipe: float pre-training, range calibration, then quantization-aware
training of the backbone and the controller, and export to an integer artifact.

Loss of the quantized phase (per batch)::

    J = J_task(dynamic) + alpha · Σ_{b in B'} J_task(all layers statically at b)
        + beta · max(0, E[cost] - target)

J_task is cross-entropy. The dynamic pass samples hard one-hot Gumbel-Softmax widths for the
controlled layers (temperature from :class:`training.controller.TauSchedule`). E[cost] is the
controller's expected mean bit-width over all quantized layers (``cost="bits"``, in bits) or
the expected BitOPs over the all-n BitOPs (``cost="bitops"``, a ratio), under the softmax of
its logits. ``ctrl_loss="expected"`` and ``"budget"`` add a per-input controller loss J_ctrl
(:func:`_ctrl_loss`, :func:`budget_labels`; docs/training.md "Loss").

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
from .data import digits_graded_split, digits_split, load_cifar10_bin
from .export import artifact_digest, save_artifact
from .models import QNet, build_model
from .quant import QuantConfig

__all__ = ["Recipe", "train", "budget_labels", "check_budget", "DATASET_DEFAULTS", "with_dataset_defaults", "train_digits", "load_dataset", "DATASETS", "build_from_recipe", "save_state", "load_state",
           "STATE_FILE", "LOG_FILE", "PLOT_FILE", "set_determinism"]

STATE_FILE = "fakequant_state.npz"
DATASETS = ("digits", "digits-graded", "cifar10")
CTRL_LOSSES = ("gumbel", "expected", "budget")
LOG_FILE = "training_log.json"
PLOT_FILE = "training_log.png"


@dataclass(frozen=True)
class Recipe:
    """Every choice of a training run; stored in the artifact's metadata."""

    seed: int = 0
    dataset: str = "digits"      # digits, digits-graded or cifar10
    data: str | None = None      # cifar10: the cifar-10-batches-bin directory
    device: str = "cpu"
    levels: int = 6              # digits-graded: severity levels (0: clean)
    copies: int = 2              # digits-graded: corrupted copies per training image
    split_seed: int = 0
    test_fraction: float = 0.2
    n: int = 8
    B: tuple = defaults.CANDIDATES
    mode: str = defaults.MODE.value  # the paper's single right shift; "round" is first-class too
    scales: str = "nested"       # "independent": the scale ablation (no integer export)
    arch: str | None = None      # None: digits_cnn for digits*, resnet20 for cifar10
    width: int = 16
    hidden: int = 64
    first_bits: int = 8          # static width of the layers up to the controller's tap
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
    ctrl_loss: str = "gumbel"     # "gumbel": J_task(dynamic) only; "expected" / "budget": + J_ctrl
    lam: float = 0.5              # J_ctrl: weight of the expected BitOPs ratio per input
    balance: float = 0.0          # J_ctrl: weight of the batch's width-usage entropy (bonus)
    budget: float | None = None   # ctrl_loss "budget": mean BitOPs ratio per input to hold
    tau_start: float = 2.0
    tau_end: float = 0.3
    tau_kind: str = "exp"
    calib_batches: int = 8
    threads: int = 2

    def __post_init__(self):
        cfg = self.quant_config()  # checks n, B, mode
        want = "resnet20" if self.dataset == "cifar10" else "digits_cnn"
        if self.arch is None:
            object.__setattr__(self, "arch", want)
        elif self.arch != want:
            raise DQTValueError(f"arch {self.arch!r} does not fit dataset {self.dataset!r} "
                                f"(use {want!r})")
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
        if self.dataset not in DATASETS:
            raise DQTValueError(f"dataset {self.dataset!r} is not one of {list(DATASETS)}")
        if self.dataset == "cifar10" and not self.data:
            raise DQTValueError("dataset 'cifar10' needs the directory of the binary batches "
                                "(--data DIR)")
        if self.device not in ("cpu", "cuda"):
            raise DQTValueError(f"device {self.device!r} is not one of ['cpu', 'cuda']")
        if self.device == "cuda" and not torch.cuda.is_available():
            raise DQTValueError("device 'cuda' is not available (torch.cuda.is_available() is False)")
        if self.ctrl_loss not in CTRL_LOSSES:
            raise DQTValueError(f"ctrl_loss {self.ctrl_loss!r} is not one of {list(CTRL_LOSSES)}")
        if not (isinstance(self.lam, (int, float)) and math.isfinite(self.lam) and self.lam >= 0):
            raise DQTValueError(f"lam={self.lam!r} must be a finite number >= 0")
        if not (isinstance(self.balance, (int, float)) and math.isfinite(self.balance)
                and 0 <= self.balance <= 10):
            raise DQTValueError(f"balance={self.balance!r} is outside the allowed range [0, 10]")
        if self.ctrl_loss == "budget" and self.budget is None:
            raise DQTValueError("ctrl_loss 'budget' needs a budget (the mean BitOPs per input "
                                "over the all-n BitOPs, in (0, 1])")
        if self.budget is not None:
            if self.ctrl_loss != "budget":
                raise DQTValueError(f"budget={self.budget!r} is used by ctrl_loss 'budget' "
                                    f"only (got {self.ctrl_loss!r})")
            if not (isinstance(self.budget, (int, float)) and 0 < self.budget <= 1):
                raise DQTValueError(f"budget={self.budget!r} is outside the allowed range (0, 1] "
                                    "(mean BitOPs per input over the all-n BitOPs)")
        for name in ("levels", "copies"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not (2 if name == "levels" else 1) <= v <= 64:
                raise DQTValueError(f"{name}={v!r} is outside the allowed range "
                                    f"[{2 if name == 'levels' else 1}, 64]")
        if self.cost not in ("bits", "bitops"):
            raise DQTValueError(f"cost {self.cost!r} is not one of ['bits', 'bitops']")
        lo, hi = (min(cfg.B), cfg.n) if self.cost == "bits" else (0.0, 1.0)
        if not (isinstance(self.target, (int, float)) and lo <= self.target <= hi):
            raise DQTValueError(f"target={self.target!r} is outside the allowed range "
                                f"[{lo}, {hi}] for cost={self.cost!r}")
        TauSchedule(self.tau_start, self.tau_end, self.tau_kind)

    def quant_config(self) -> QuantConfig:
        return QuantConfig(self.n, tuple(self.B), self.mode, self.scales)

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


#: Recipe fields a data set sets unless they are given: the graded split trains the adaptive
#: controller (budget labels, docs/training.md) on a narrower, shorter recipe.
DATASET_DEFAULTS = {
    "digits-graded": {"width": 8, "fp32_epochs": 10, "qat_epochs": 6, "ctrl_loss": "budget",
                      "budget": 0.35, "lam": 2.0, "ctrl_lr": 0.01, "beta": 0.0, "threads": 1},
}


def with_dataset_defaults(d: dict, dataset: str, given) -> dict:
    """Recipe dict ``d`` with ``dataset``'s defaults for the fields not in ``given`` and the
    architecture following the data set."""
    d = dict(d)
    if "arch" not in given:
        d["arch"] = None
    for k, v in DATASET_DEFAULTS.get(dataset, {}).items():
        if k == "budget" and given.get("ctrl_loss", "budget") != "budget":
            continue  # another controller loss given: it has no budget
        if k not in given:
            d[k] = v
    return d


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
        m = build_model(r.arch, cfg, width=r.width, hidden=r.hidden)
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
    """Load a fake-quant state written by :func:`train` into ``model``; a damaged file or one
    that does not fit the model is an :class:`~golden.loader.ArtifactError` naming the file."""
    from golden.loader import ArtifactError, read_arrays
    sd = {k: torch.from_numpy(v) for k, v in read_arrays(path, Path(path).name).items()}
    try:
        model.load_state_dict(sd)
    except (RuntimeError, KeyError) as e:
        raise ArtifactError(f"{path}: does not fit the recipe's model "
                            f"({str(e).splitlines()[0]})") from None
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
def fakequant_eval(model: QNet, x, y, bits, bs: int = 2000):
    """Accuracy, predictions and widths [N, len(qlayers)] of the fake-quantized model's
    evaluation pass (:meth:`QNet.forward_codes`, on the CPU; the model is moved there and
    back); dynamic mode adds ``avg_bits``."""
    dev = next(model.parameters()).device
    model.cpu().eval()
    x = torch.as_tensor(x)
    if model.cfg.scales != "nested":  # the ablation's float fake-quant pass
        logits, info = model(x, bits, integer=False)
        pred = logits.argmax(-1).numpy()
        model.to(dev)
        out = {"acc": float((pred == np.asarray(y)).mean()), "pred": pred}
        if bits == "dynamic":
            B = torch.tensor(model.cfg.B, dtype=torch.float32)
            ch = (info["gates"] * B).sum(-1)
            rest = sum(v for k, v in model.static_bits.items() if k not in model.controlled)
            out["avg_bits"] = float((rest + ch.sum(-1)).mean() / len(model.qlayers))
        return out
    preds, bits_ = [], []
    for i in range(0, len(x), bs):
        r = model.forward_codes(x[i:i + bs], bits)
        preds.append(r["logits"].argmax(-1))
        bits_.append(r["bits"])
    model.to(dev)
    pred = torch.cat(preds).numpy()
    m = torch.cat(bits_)
    out = {"acc": float((pred == np.asarray(y)).mean()), "pred": pred, "bits": m.numpy()}
    if bits == "dynamic":
        out["avg_bits"] = float(m.double().mean())
    return out


def _batches(N, bs, gen):
    p = torch.randperm(N, generator=gen)
    for i in range(0, N, bs):
        yield p[i:i + bs]


def load_dataset(r: Recipe) -> dict:
    """Training and test arrays of the recipe's data set: ``x_train``, ``y_train``,
    ``x_test``, ``y_test`` (float32 images on the model's input grid, int64 labels) and
    ``info`` (stored as the artifact's ``metadata.dataset``)."""
    if r.dataset == "digits":
        d = digits_split(r.split_seed, r.test_fraction)
        return {"x_train": d.x_train, "y_train": d.y_train, "x_test": d.x_test,
                "y_test": d.y_test, "info": d.info()}
    if r.dataset == "digits-graded":
        d = digits_graded_split(r.split_seed, r.test_fraction, r.levels, r.copies)
        return {"x_train": d.x_train, "y_train": d.y_train, "x_test": d.x_test,
                "y_test": d.y_test, "info": d.info(), "graded": d}
    xtr, ytr = load_cifar10_bin(r.data, "train")
    xte, yte = load_cifar10_bin(r.data, "test")
    info = {"dataset": "cifar10", "source": "cifar-10-batches-bin", "data": str(r.data),
            "n_train": int(len(ytr)), "n_test": int(len(yte))}
    return {"x_train": xtr.astype(np.float32) / 255, "y_train": ytr,
            "x_test": xte.astype(np.float32) / 255, "y_test": yte, "info": info}


def _fp32_phase(model, r, xtr, ytr, xte, yte, gen, bar, log):
    params = [p for n_, p in model.named_parameters() if not n_.startswith("controller.")
              and not n_.endswith(".alpha")]
    opt = torch.optim.Adam(params, lr=r.lr, weight_decay=r.weight_decay)
    steps = math.ceil(len(ytr) / r.batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, r.fp32_epochs * steps))
    dev = r.device
    for ep in range(r.fp32_epochs):
        model.train()
        tot = 0.0
        for idx in _batches(len(ytr), r.batch_size, gen):
            loss = F.cross_entropy(model.forward_float(xtr[idx].to(dev)), ytr[idx].to(dev))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            tot += float(loss.detach()) * len(idx)
            bar.update(1)
        log["fp32"].append({"epoch": ep + 1, "loss": tot / len(ytr),
                            "test_acc": _float_acc(model, xte, yte, dev)})
    return _float_acc(model, xte, yte, dev)


@torch.no_grad()
def _float_acc(model, x, y, dev, bs=1000):
    model.eval()
    pred = torch.cat([model.forward_float(x[i:i + bs].to(dev)).argmax(-1).cpu()
                      for i in range(0, len(x), bs)])
    return float((pred.numpy() == np.asarray(y)).mean())


def _ctrl_loss(model, r, info, ce_static):
    """J_ctrl: per input, the expected task loss and cost under the controller's softmax,
    E_p[CE_i(b)] (mean over the controlled layers, CE_i(b): the input's loss with every layer
    at b, held constant) + lam · E_p[BitOPs_i] / BitOPs(all n), minus balance times the mean
    over the controlled layers of the entropy (bits) of the batch's width usage, mean_i p_icb
    (the load-balancing term of mixture-of-experts routers: it rewards using several widths
    across the batch, while the per-input terms decide which inputs get which)."""
    p = info["probs"]                                   # [N, C, len(B)]
    ce = torch.stack([ce_static[b] for b in model.cfg.B], -1).detach()  # [N, len(B)]
    task = (p * ce[:, None, :]).sum(-1).mean(-1)
    j = (task + r.lam * info["exp_bitops_per_input"]).mean()
    if r.balance:
        usage = p.mean(0)                               # [C, len(B)]
        h = -(usage * torch.log2(usage.clamp_min(1e-12))).sum(-1).mean()
        j = j - r.balance * h
    return j


#: the multipliers the budget loss tries per batch (geometric, 1e-4 .. 1e4)
_LAM_GRID = torch.logspace(-4, 4, 161, dtype=torch.float64)


def budget_labels(ce, cost, static_cost: float, n_controlled: int, budget: float):
    """Each input's best width per controlled layer under a BitOPs budget, and the multiplier.

    ``ce`` [N, len(B)]: the input's loss with the network at each width; ``cost`` [C, len(B)]:
    each controlled layer's BitOPs at each width over the all-n BitOPs; ``static_cost``: the
    uncontrolled layers' share. For a multiplier lam, input i's width in layer c is
    argmin_b ce[i, b] / C + lam · cost[c, b] (first index on ties), the minimum of the
    per-input objective of the expected loss. lam is the smallest of ``_LAM_GRID`` whose
    labels keep the batch's mean BitOPs ratio within ``budget`` (the largest if none does):
    the budget sets how many inputs get few bits, the losses which ones.
    Returns (labels [N, C] indices into B, lam)."""
    ce = ce.detach().to(torch.float64)
    cost = cost.to(torch.float64)
    u = ce[None, :, None, :] / n_controlled + _LAM_GRID[:, None, None, None] * cost[None, None]
    lab = u.argmin(-1)                                                  # [L, N, C]
    spent = cost[torch.arange(cost.shape[0])[None, None, :], lab].sum(-1).mean(-1) + static_cost
    ok = torch.nonzero(spent <= budget + 1e-12)
    k = int(ok[0, 0]) if len(ok) else len(_LAM_GRID) - 1
    return lab[k], _LAM_GRID[k]


def budget_costs(model):
    """(cost [C, len(B)], static): each controlled layer's BitOPs at each width of B and the
    uncontrolled layers' BitOPs at their static widths, over the all-n BitOPs."""
    B, n = model.cfg.B, model.cfg.n
    tot = float(sum(model.macs.values())) * n * n
    cost = torch.tensor([[model.macs[q] * b * b / tot for b in B] for q in model.controlled],
                        dtype=torch.float64)
    static = sum(model.macs[q] * model.static_bits[q] ** 2 / tot
                 for q in model.qlayers if q not in model.controlled)
    return cost, float(static)


def check_budget(r: Recipe) -> None:
    """A budget the model can meet: at least its cost with every controlled layer at the
    narrowest width of B (checked on a throwaway model, the random streams untouched)."""
    if r.budget is None:
        return
    with torch.random.fork_rng(devices=[]):
        m = build_from_recipe(r)
    if m.controller is None:
        raise DQTValueError(f"budget={r.budget!r}: arch {r.arch!r} has no controller")
    cost, static = budget_costs(m)
    lo = static + float(cost.min(dim=1).values.sum())
    if r.budget < lo - 1e-12:
        raise DQTValueError(f"budget={r.budget!r} is outside the allowed range [{lo:.4f}, 1] for "
                            f"this network (every controlled layer at {min(r.B)} bits, the "
                            f"first layers at {r.first_bits})")


def _budget_loss(model, r, info, ce_static):
    """J_ctrl of ctrl_loss "budget": cross-entropy of the controller's logits against
    :func:`budget_labels` (a classification target, so the gradient does not vanish when the
    softmax is confident, as the expected loss's does). Returns (loss, lam)."""
    B = model.cfg.B
    cost, static_cost = budget_costs(model)
    ce = torch.stack([ce_static[b] for b in B], -1)
    lab, lam = budget_labels(ce, cost, static_cost, len(model.controlled), r.budget)
    logits = info["logits"]                                           # [N, C, len(B)]
    j = F.cross_entropy(logits.reshape(-1, len(B)), lab.reshape(-1).to(logits.device))
    return j, lam.float()


def _qat_step(model, r, xb, yb, t):
    """Loss of one quantized-phase batch and its parts (module docstring)."""
    gates_only = r.ctrl_loss in ("expected", "budget")
    logits, info = model(xb, "dynamic", tau=t, detach_gates=gates_only)
    j_dyn = F.cross_entropy(logits, yb)
    j_static = torch.zeros((), device=xb.device)
    ce_static = {}
    for b in model.cfg.B:
        if b in r.B_prime:
            ce = F.cross_entropy(model(xb, b)[0], yb, reduction="none")
            j_static = j_static + ce.mean()
        elif gates_only:
            with torch.no_grad():
                ce = F.cross_entropy(model(xb, b)[0], yb, reduction="none")
        else:
            continue
        ce_static[b] = ce
    e = info["exp_bits"] if r.cost == "bits" else info["exp_bitops"]
    if r.cost_form == "batch":
        j_cost = torch.relu(e - r.target)
    else:
        ei = info["exp_bits_per_input"] if r.cost == "bits" else info["exp_bitops_per_input"]
        j_cost = torch.relu(ei - r.target).mean()
    loss = j_dyn + r.alpha * j_static + r.beta * j_cost
    if r.ctrl_loss == "budget":
        j_ctrl, lam = _budget_loss(model, r, info, ce_static)
    elif gates_only:
        j_ctrl, lam = _ctrl_loss(model, r, info, ce_static), torch.tensor(float(r.lam))
    else:
        j_ctrl, lam = torch.zeros(()), torch.zeros(())
    loss = loss + j_ctrl
    parts = {"task_dynamic": j_dyn, "task_static": j_static, "cost": j_cost, "exp": e,
             "ctrl": j_ctrl, "exp_bitops": info["exp_bitops"], "lam": lam}
    return loss, parts



def _qat_phase(model, r, xtr, ytr, xte, yte, gen, bar, log):
    ctrl = [p for n_, p in model.named_parameters() if n_.startswith("controller.")]
    back = [p for n_, p in model.named_parameters() if not n_.startswith("controller.")]
    opt = torch.optim.Adam([{"params": back, "lr": r.qat_lr},
                            {"params": ctrl, "lr": r.ctrl_lr}], weight_decay=r.weight_decay)
    N = len(ytr)
    steps = math.ceil(N / r.batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, r.qat_epochs * steps))
    tau = r.tau()
    total_steps = max(1, r.qat_epochs * steps)
    step = 0
    for ep in range(r.qat_epochs):
        model.train()
        sums = {}
        for idx in _batches(N, r.batch_size, gen):
            loss, parts = _qat_step(model, r, xtr[idx].to(r.device), ytr[idx].to(r.device),
                                    tau(step / total_steps))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            for k, v in dict(parts, loss=loss).items():
                sums[k] = sums.get(k, 0.0) + float(v.detach()) * len(idx)
            bar.update(1)
        row = {"epoch": r.fp32_epochs + ep + 1, "tau": tau(step / total_steps)}
        row.update({k: v / N for k, v in sums.items()})
        dyn = fakequant_eval(model, xte, yte, "dynamic")
        row["test_acc_dynamic"] = dyn["acc"]
        row["test_avg_bits"] = dyn["avg_bits"]
        row["test_acc_static"] = {str(b): fakequant_eval(model, xte, yte, b)["acc"]
                                  for b in r.B}
        log["qat"].append(row)
        bar.set_postfix(dyn=f"{dyn['acc']:.3f}", bits=f"{dyn['avg_bits']:.2f}")


def train(out_dir, recipe: Recipe | None = None, progress: bool = True, **overrides) -> dict:
    """Train with ``recipe`` (``Recipe()`` defaults, ``overrides`` applied), write the
    artifact to ``out_dir`` plus ``training_log.json``, ``training_log.png`` and the
    fake-quantized model's state (``fakequant_state.npz``). Returns a summary dict."""
    from tqdm import tqdm

    r = recipe or Recipe()
    if overrides:
        d = r.to_json()
        if "dataset" in overrides:
            d = with_dataset_defaults(d, overrides["dataset"], overrides)
        d.update(overrides)
        r = Recipe.from_json(d)
    check_budget(r)
    t0 = time.perf_counter()
    set_determinism(r.seed, r.threads)
    data = load_dataset(r)
    xtr, ytr = torch.from_numpy(data["x_train"]), torch.from_numpy(data["y_train"])
    xte, yte = torch.from_numpy(data["x_test"]), data["y_test"]
    model = build_from_recipe(r).to(r.device)
    gen = torch.Generator().manual_seed(r.seed)
    steps = math.ceil(len(ytr) / r.batch_size)
    bar = tqdm(total=(r.fp32_epochs + r.qat_epochs) * steps, desc="dqt train", unit="step",
               disable=not progress, leave=False)
    log = {"recipe": r.to_json(), "split": data["info"], "fp32": [], "qat": []}
    fp32_acc = _fp32_phase(model, r, xtr, ytr, xte, yte, gen, bar, log)
    log["fp32_wall_s"] = time.perf_counter() - t0
    # calibration: EMA of activation ranges initialises the PACT clips
    with torch.no_grad():
        for i, idx in enumerate(_batches(len(ytr), r.batch_size, gen)):
            if i >= max(1, r.calib_batches):
                break
            model.forward_float(xtr[idx].to(r.device), observe=True)
    for aq in model.act_quantizers():
        aq.init_from_ema()
    _qat_phase(model, r, xtr, ytr, xte, yte, gen, bar, log)
    bar.close()
    log["qat_wall_s"] = time.perf_counter() - t0 - log["fp32_wall_s"]
    model = model.cpu().eval()
    fq = {str(b): fakequant_eval(model, xte, yte, b)["acc"] for b in r.B}
    dyn = fakequant_eval(model, xte, yte, "dynamic")
    meta = {"fp32_accuracy": fp32_acc, "seed": r.seed, "recipe": r.to_json(),
            "dataset": data["info"], "arch": r.arch,
            "fakequant_static_accuracy": fq, "fakequant_dynamic_accuracy": dyn["acc"],
            "fakequant_dynamic_avg_bits": dyn["avg_bits"],
            "state_file": STATE_FILE}
    out = Path(out_dir)
    if r.scales == "nested":
        save_artifact(out, model, meta)
    else:  # the ablation has no integer form: state and log only
        out.mkdir(parents=True, exist_ok=True)
    save_state(out / STATE_FILE, model)
    wall = time.perf_counter() - t0
    log["wall_s"] = wall
    log["fp32_accuracy"] = fp32_acc
    _write_json(out / LOG_FILE, log)
    _plot(out / PLOT_FILE, log)
    return {"artifact": str(out), "wall_s": wall,
            "digest": artifact_digest(out) if r.scales == "nested" else None,
            "fp32_accuracy": fp32_acc, "fakequant_static_accuracy": fq,
            "fakequant_dynamic_accuracy": dyn["acc"], "fakequant_dynamic_avg_bits": dyn["avg_bits"]}


#: The name the digits-only version had; it trains every data set now.
train_digits = train
