"""``dqt sweep CONFIG --out DIR [--scheduler ADDRESS] [--workers N] [--json]``."""
from __future__ import annotations

import json

from golden.formats import DQTValueError

__all__ = ["register"]


def _cmd_sweep(args) -> int:
    from .config import load_config
    from .run import run_sweep
    cfg = load_config(args.config)
    if not 1 <= args.workers <= 64:
        raise DQTValueError(f"--workers {args.workers} is outside the allowed range [1, 64]")
    s = run_sweep(cfg, args.out, scheduler=args.scheduler, workers=args.workers,
                  progress=not args.json)
    if not args.json:
        print(f"{s['points']} points: {s['done']} done ({s['resumed']} from the cache), "
              f"{s['failed']} failed, {s['seconds']:.1f} s; see {args.out}/index.html")
    print(json.dumps(s, sort_keys=True))
    return 0 if s["failed"] == 0 else 1


def register(sub) -> None:
    """Add ``sweep`` to the ``dqt`` subparsers."""
    p = sub.add_parser("sweep", help="design-space sweep over RTL component parameters on Dask",
                       description="Area (Yosys), energy per operation (45 nm model) and cycles "
                       "of every point of CONFIG (docs/sweep.md), on a Dask LocalCluster or an "
                       "existing scheduler; cached per point, resumable; results.csv, "
                       "results.json, pareto.png, index.html in --out.")
    p.add_argument("config", help="sweep config (.json or .toml)")
    p.add_argument("--out", required=True, help="output directory (also holds the point cache)")
    p.add_argument("--scheduler", help="address of a running Dask scheduler, e.g. tcp://127.0.0.1:8786")
    p.add_argument("--workers", type=int, default=2, help="LocalCluster worker processes (default 2)")
    p.add_argument("--json", action="store_true", help="no progress bar; the JSON line only")
    p.set_defaults(func=_cmd_sweep)
