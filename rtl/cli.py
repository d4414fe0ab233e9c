"""``dqt rtl ...`` subcommands."""
from __future__ import annotations

import sys

__all__ = ["register"]


def _generate(args) -> int:
    from .generate import generate, load_config
    cfg = load_config(args.config) if args.config else None
    man = generate(args.out, cfg, progress=not args.quiet)
    if not args.quiet:
        for m in man["modules"]:
            print(f"{m['file']:36s} top={m['top']:36s} latency={m['latency']}")
        print(f"wrote {len(man['modules'])} Verilog files and manifest.json to {args.out}",
              file=sys.stderr)
    return 0


def _lint(args) -> int:
    from .lint import check_dir
    res = check_dir(args.dir, log_dir=args.logs,
                    noabc_components=() if args.full_synth else ("engine",))
    bad = 0
    for name, r in sorted(res.items()):
        if name == "_yosys":
            continue
        print(f"{name:36s} verilator -Wall: {'clean' if r['lint'] else 'WARNINGS':8s} "
              f"slang: {'elaborated' if r['slang'] else 'ERRORS'}")
        if not r["lint"]:
            bad += 1
            print(r["lint_output"][-3000:], file=sys.stderr)
        if not r["slang"]:
            bad += 1
            print(r["slang_output"][-3000:], file=sys.stderr)
    ok = res["_yosys"]["ok"]
    print(f"yosys synth: {'ok' if ok else 'FAILED'}")
    if not ok:
        print(res["_yosys"]["log"][-3000:], file=sys.stderr)
    return 0 if ok and not bad else 1


def _list(args) -> int:
    from .registry import REGISTRY
    for name, spec in REGISTRY.items():
        print(f"{name:16s} {spec.cls_path:32s} golden={spec.golden}")
    return 0


def _build(args) -> int:
    import json
    from .fpga import build
    quiet = args.json
    r = build(args.preset, args.out, args.artifact, args.baud,
              log=(lambda *a: None) if quiet else (lambda m: print(m, file=sys.stderr)))
    if args.json:
        keys = ("preset", "device", "fits", "fmax_mhz", "target_mhz", "timing_met", "luts",
                "dsps", "brams", "bitstream")
        print(json.dumps({k: r[k] for k in keys}))
    else:
        print(f"{r['preset']} ({r['board']}, {r['device']}): {r['luts']} LUTs, {r['dsps']} DSPs, "
              f"{r['brams']} block RAMs; Fmax {r['fmax_mhz']:.1f} MHz against the "
              f"{r['target_mhz']:g} MHz target ({'met' if r['timing_met'] else 'NOT met'})")
        print(f"bitstream {r['bitstream']}; report {args.out}/report.json")
    return 0


def register(sub) -> None:
    p = sub.add_parser("rtl", help="RTL components: Verilog generation")
    s = p.add_subparsers(dest="rtl_command", metavar="RTL_COMMAND")
    g = s.add_parser("generate", help="write one Verilog file per component + manifest.json")
    g.add_argument("--out", required=True, help="output directory")
    g.add_argument("--config", help="JSON config selecting instances and parameters")
    g.add_argument("--quiet", action="store_true", help="no progress or table")
    g.set_defaults(func=_generate)
    li = s.add_parser("lint", help="Verilator -Wall lint, slang elaboration and Yosys synth of "
                      "a generated dir")
    li.add_argument("dir", help="directory written by 'dqt rtl generate'")
    li.add_argument("--logs", help="keep the Yosys log and per-module stat files here")
    li.add_argument("--full-synth", action="store_true",
                    help="run ABC on the engine too (minutes; default synth -noabc for it)")
    li.set_defaults(func=_lint)
    from .fpga import PRESETS
    b = s.add_parser("build", help="synthesize, place and route the pin-level top of an FPGA "
                     "preset and write its bitstream, constraints, FuseSoC core and report")
    b.add_argument("--preset", required=True, choices=sorted(PRESETS), help="target part and board")
    b.add_argument("--out", required=True, help="build directory (replaced only on success)")
    b.add_argument("--artifact", help="check that this network fits the preset's engine first")
    b.add_argument("--baud", type=int, default=115200, help="UART line rate (default 115200)")
    b.add_argument("--json", action="store_true", help="print one JSON line only")
    b.set_defaults(func=_build)
    ls = s.add_parser("list", help="list the registered components")
    ls.set_defaults(func=_list)
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])
