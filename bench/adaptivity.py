"""Benchmark: does the graded-digits controller adapt, seed after seed?

For every seed, ``dqt train --dataset digits-graded`` (the default recipe, plus the options
given here) and ``dqt eval`` on the graded and clean test splits; the seeds run in worker
processes (``--jobs``, one thread each). Prints one table row per seed with the adaptivity
figures and whether the issue's targets hold (assignment entropy >= 1 bit, average width
rising from the cleanest to the hardest level, BitOPs saving >= 0.15 or accuracy gain >= 1
point against the full static frontier), then, as the last line, one JSON object with every
figure, the wall time and the load average.

    .venv/bin/python bench/adaptivity.py [--seeds 0,1,2,3,4] [--budget F] [--mode floor|round]
                                         [--ctrl-loss budget|expected] [--jobs 2] [--quick]

``--quick`` trains a tiny network for one epoch per phase (a smoke run of the script; its
figures say nothing about the recipe).
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from training.experiments import _small_recipe  # noqa: E402

#: --quick: the tiny recipe the reduced experiments train, on three levels
QUICK = dict(_small_recipe(True), levels=3, copies=1)


def targets(g: dict) -> dict:
    """The three adaptivity targets of one split's figures (``dqt eval`` JSON object)."""
    d = g["dynamic"]
    lv = [d["avg_bits_by_level"][k] for k in sorted(d["avg_bits_by_level"], key=int)]
    rising = lv[-1] > lv[0] and all(b >= a - 1e-9 for a, b in zip(lv, lv[1:]))
    s, gain = g["bitops_saving_vs_static"], g["accuracy_gain_vs_static_pts"]
    return {"entropy": d["assignment_entropy_bits"] >= 1.0, "rising": bool(rising),
            "saving_or_gain": (s is not None and s >= 0.15) or (gain is not None and gain >= 1.0)}


def one_seed(seed: int, over: dict) -> dict:
    """Train and evaluate one seed in a temporary directory; the figures the table shows."""
    from training.evaluate import evaluate
    from training.train import train

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        s = train(Path(tmp) / "a", progress=False, dataset="digits-graded", seed=seed,
                  **{"threads": 1, **over})
        t1 = time.perf_counter()
        e = evaluate(Path(tmp) / "a")
        t2 = time.perf_counter()
    row = {"seed": seed, "digest": s["digest"], "train_s": t1 - t0, "eval_s": t2 - t1,
           "code_agreement": e["fakequant_vs_integer_code_agreement"],
           "static_accuracy": e["static_accuracy"]}
    for split in ("graded", "clean"):
        g = e[split]
        row[split] = {k: g[k] for k in ("bitops_saving_vs_static", "accuracy_gain_vs_static_pts")}
        row[split]["dynamic"] = g["dynamic"]
    row["targets"] = targets(e["graded"])
    row["targets_met"] = all(row["targets"].values())
    return row


def _fmt(v, spec):
    return "–" if v is None else format(v, spec)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", default="0,1,2,3,4", help="comma-separated seeds")
    p.add_argument("--budget", type=float, help="--budget of the recipe (default 0.35)")
    p.add_argument("--mode", choices=["floor", "round"])
    p.add_argument("--ctrl-loss", dest="ctrl_loss", choices=["budget", "expected"])
    p.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    p.add_argument("--quick", action="store_true")
    a = p.parse_args(argv)
    try:
        seeds = [int(v) for v in a.seeds.split(",") if v.strip()]
    except ValueError:
        p.error(f"--seeds {a.seeds!r} is not a comma-separated list of integers")
    if not seeds or any(s < 0 for s in seeds):
        p.error(f"--seeds {a.seeds!r}: give one or more non-negative integers")
    if a.jobs < 1:
        p.error(f"--jobs {a.jobs} must be >= 1")
    over = {k: getattr(a, k) for k in ("budget", "mode", "ctrl_loss") if getattr(a, k) is not None}
    if a.quick:
        over.update(QUICK)
    from golden.formats import DQTValueError
    from training.train import Recipe, check_budget, with_dataset_defaults
    try:  # every option checked before any training
        d = with_dataset_defaults(Recipe().to_json(), "digits-graded", over)
        d.update(over, dataset="digits-graded")
        check_budget(Recipe.from_json(d))
    except DQTValueError as e:  # names the value and the range; exit status 2
        p.error(str(e))
    t0 = time.perf_counter()
    # spawned workers: a forked child of a process that has run torch's OpenMP threads hangs
    with ProcessPoolExecutor(max_workers=min(a.jobs, len(seeds)),
                             mp_context=multiprocessing.get_context("spawn")) as ex:
        rows = list(ex.map(one_seed, seeds, [over] * len(seeds)))
    wall = time.perf_counter() - t0
    hdr = ("seed | graded acc | BitOPs/img | entropy | avg bits by level (clean -> hardest) | "
           "saving | gain pts | clean acc | targets")
    print(f"graded digits, options {over or 'default'}; targets: entropy >= 1, width rising "
          f"with the level, saving >= 0.15 or gain >= 1 point")
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        g, d = r["graded"], r["graded"]["dynamic"]
        lv = " ".join(f"{d['avg_bits_by_level'][k]:.2f}"
                      for k in sorted(d["avg_bits_by_level"], key=int))
        print(f"{r['seed']:4d} | {d['accuracy']:.4f} | {d['bitops_per_image'] / 1e6:.2f} M | "
              f"{abs(d['assignment_entropy_bits']):.2f} | {lv} | "
              f"{_fmt(g['bitops_saving_vs_static'], '.3f')} | "
              f"{_fmt(g['accuracy_gain_vs_static_pts'], '+.2f')} | "
              f"{r['clean']['dynamic']['accuracy']:.4f} | "
              f"{'met' if r['targets_met'] else 'missed ' + str([k for k, v in r['targets'].items() if not v])}")
    out = {"bench": "adaptivity", "quick": a.quick, "options": over, "seeds": seeds,
           "seeds_meeting_targets": sum(r["targets_met"] for r in rows),
           "wall_s": round(wall, 1), "jobs": a.jobs, "load_avg_1min": os.getloadavg()[0],
           "runs": rows}
    print(json.dumps(out, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
