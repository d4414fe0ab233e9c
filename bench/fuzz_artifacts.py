"""Fuzz run of artifacts and command lines at volume (the normal suite runs a few hundred cases
in tests/test_fuzz.py; this runs thousands).

    .venv/bin/python bench/fuzz_artifacts.py [--examples 300] [--seed 0]

Prints one row per corruption family (cases run, distinct cases, accepted with a correct
result, refused with one line, problems) and, last, one JSON line. Exit status 1 when any
case had a problem (each is printed: the corruption and what went wrong).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from hypothesis import HealthCheck, given, seed, settings  # noqa: E402
from tqdm import tqdm  # noqa: E402

from dqt import fuzz  # noqa: E402


def run_family(base, family, examples, rng_seed, work, bar):
    rec = {"cases": 0, "distinct": set(), "accepted": 0, "refused": 0, "problems": []}

    @seed(rng_seed)
    @settings(max_examples=examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=fuzz.strategy(base, family))
    def check(case):
        outcome, problem = fuzz.run_case(base, case, work)
        rec["cases"] += 1
        rec["distinct"].add(fuzz.digest(case))
        if problem is None:
            rec[outcome] += 1
        else:
            rec["problems"].append(f"{case.what}: {outcome}: {problem}")
        bar.update()

    check()
    rec["distinct"] = len(rec["distinct"])
    return rec


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=300, help="cases per family (default 300)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory() as d:
        base = fuzz.make_base(Path(d))
        rows = {}
        with tqdm(total=args.examples * len(fuzz.FAMILIES), desc="fuzz", unit="case") as bar:
            for fam in fuzz.FAMILIES:
                rows[fam] = run_family(base, fam, args.examples, args.seed, Path(d) / "w", bar)
    print(f"{'family':16s} {'cases':>6s} {'distinct':>8s} {'accepted':>8s} {'refused':>8s} {'problems':>8s}")
    for fam, r in rows.items():
        print(f"{fam:16s} {r['cases']:6d} {r['distinct']:8d} {r['accepted']:8d} {r['refused']:8d} "
              f"{len(r['problems']):8d}")
        for p in r["problems"][:20]:
            print(f"    {p}")
    total = {k: sum(r[k] for r in rows.values()) for k in ("cases", "distinct", "accepted", "refused")}
    total["problems"] = sum(len(r["problems"]) for r in rows.values())
    print(f"{'total':16s} {total['cases']:6d} {total['distinct']:8d} {total['accepted']:8d} "
          f"{total['refused']:8d} {total['problems']:8d}")
    print(json.dumps({"bench": "fuzz_artifacts", "examples_per_family": args.examples,
                      "seed": args.seed, "seconds": round(time.monotonic() - t0, 1),
                      "load": os.getloadavg()[0], "total": total,
                      "families": {f: {k: (len(v) if k == "problems" else v) for k, v in r.items()}
                                   for f, r in rows.items()}}))
    return 1 if total["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
