"""Benchmark: every ``dqt experiment`` at full size on digits, timed.

Prints one row per experiment (wall time, CPU time, load average) and, as the last line, one
JSON object with the same figures. The aim is under 10 minutes per experiment on 2 cores.

    .venv/bin/python bench/experiments.py [--out DIR] [--only NAME ...]
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

from training.experiments import EXPERIMENTS, run_experiment  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", help="directory for the results (default: a temporary directory)")
    p.add_argument("--only", nargs="*", choices=sorted(EXPERIMENTS))
    a = p.parse_args(argv)
    names = a.only or list(EXPERIMENTS)
    res = {}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(a.out or tmp)
        for name in names:
            t0, c0 = time.perf_counter(), time.process_time()
            run_experiment(name, out, quick=False, progress=False)
            res[name] = {"wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0,
                         "load_avg_1min": os.getloadavg()[0]}
            r = res[name]
            print(f"{name:<18} wall {r['wall_s']:8.1f} s  cpu {r['cpu_s']:8.1f} s  "
                  f"load {r['load_avg_1min']:.2f}  {'ok' if r['wall_s'] < 600 else 'over 10 min'}",
                  flush=True)
    print(json.dumps(res, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
