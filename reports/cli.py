"""``dqt report``: build the area / timing / energy report."""
from __future__ import annotations

import json

__all__ = ["register"]


def _run(args) -> int:
    from .build import build_report
    s = build_report(args.out, artifact=args.artifact, liberty=args.liberty, fast=args.fast,
                     jobs=args.jobs, include_rtl=not args.no_rtl, progress=not args.quiet,
                     experiments=args.experiments, sim_result=args.sim_result,
                     engine_images=args.engine_images)
    n_null = sum(1 for d in s["designs"] for k in ("sky130_um2", "transistors") if d[k] is None)
    for note in s["notes"]:
        print(f"note: {note}")
    print(f"wrote {args.out}/index.html, report.md, summary.json ({len(s['designs'])} designs, "
          f"{n_null} null area fields, {s['provenance']['elapsed_s']} s)")
    return 0


def register(sub) -> None:
    p = sub.add_parser("report", help="area, timing and energy report of the DQT operators",
                       description="Synthesize every design (Yosys, nextpnr, OpenSTA), simulate "
                       "the mapped netlists with workload vectors and write DIR/index.html, "
                       "report.md, summary.json and PNG plots. Results are cached under "
                       "$DQT_CACHE (default build/cache).")
    p.add_argument("--out", required=True, help="output directory (replaced atomically)")
    p.add_argument("--artifact", help="integer network artifact directory (workload and accuracy)")
    p.add_argument("--liberty", help="liberty file (.lib or .lib.gz); default $DQT_LIBERTY, "
                   "else the sky130 PDK under $PDK_ROOT (ciel/volare), else "
                   "../shared/pdk; without one the sky130 fields are null")
    p.add_argument("--fast", action="store_true", help="n = 8 only, no Xilinx, shorter workload")
    p.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    p.add_argument("--no-rtl", action="store_true", help="leave out the layer engine")
    p.add_argument("--sim-result", help="JSON result of `dqt sim` on the same artifact (the "
                   "engine's cycles per image per mode)")
    p.add_argument("--engine-images", type=int, default=2, metavar="N",
                   help="held-out images per mode that the engine's gate netlist runs for its "
                   "energy (default 2; 0 skips it; needs --artifact)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--experiments", metavar="DIR", help="include the results that `dqt "
                   "experiment NAME --out DIR` wrote there (tables and plots)")
    p.set_defaults(func=_run)
