"""Benchmark: the default DQT training recipe on digits, timed, then evaluated.

Runs ``training.train.train_digits`` (default ``Recipe``, 2 threads) and
``training.evaluate.evaluate`` on the held-out split, prints a table and, as the last line,
one JSON object with the wall times and every evaluation figure.

    .venv/bin/python bench/train_digits.py [--out DIR] [--seed S] [--quick]

``--quick`` runs a few epochs only (a smoke run of the script, not the recipe).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from training.evaluate import evaluate  # noqa: E402
from training.train import Recipe, train_digits  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", help="artifact directory (default: a temporary directory)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    over = {"seed": a.seed, "threads": a.threads}
    if a.quick:
        over.update(fp32_epochs=2, qat_epochs=1)
    d = Recipe().to_json()
    d.update(over)
    recipe = Recipe.from_json(d)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(a.out) if a.out else Path(tmp) / "digits"
        t0, c0 = time.perf_counter(), time.process_time()
        s = train_digits(out, recipe, progress=not a.no_progress)
        t_train, c_train = time.perf_counter() - t0, time.process_time() - c0
        log = json.loads((out / "training_log.json").read_text())
        t1 = time.perf_counter()
        r = evaluate(out)
        t_eval = time.perf_counter() - t1
    rows = [
        ("train wall time (s)", f"{t_train:.1f}"),
        ("  fp32 phase (s)", f"{log['fp32_wall_s']:.1f}"),
        ("  QAT phase (s)", f"{log['qat_wall_s']:.1f}"),
        ("train CPU time, all threads (s)", f"{c_train:.1f}"),
        ("eval wall time (s)", f"{t_eval:.1f}"),
        ("load average (1 min) at the end", f"{os.getloadavg()[0]:.2f}"),
        ("torch threads / CPUs", f"{a.threads} / {os.cpu_count()}"),
        ("fp32 accuracy", f"{r['fp32_accuracy']:.4f}"),
    ]
    rows += [(f"static {b}-bit accuracy", f"{v:.4f}") for b, v in r["static_accuracy"].items()]
    rows += [
        ("dynamic accuracy", f"{r['dynamic_accuracy']:.4f}"),
        ("dynamic mean bits", f"{r['dynamic_avg_bits']:.3f}"),
        ("dynamic BitOPs / 8-bit BitOPs", f"{r['dynamic_bitops_ratio']:.3f}"),
        ("integer torch == golden", f"{r['integer_vs_torch_identical']:.4f}"),
        ("fake-quant vs integer top-1", f"{r['fakequant_vs_integer_top1_agreement']:.4f}"),
    ]
    w = max(len(k) for k, _ in rows)
    print(f"{'quantity':<{w}}  value")
    for k, v in rows:
        print(f"{k:<{w}}  {v}")
    r.pop("artifact", None)
    r.update(train_wall_s=t_train, fp32_wall_s=log["fp32_wall_s"], qat_wall_s=log["qat_wall_s"],
             eval_wall_s=t_eval, train_cpu_s=c_train, loadavg_1min=os.getloadavg()[0],
             threads=a.threads, cpu_count=os.cpu_count(),
             digest=s["digest"], recipe=recipe.to_json(), quick=a.quick)
    print(json.dumps(r, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
