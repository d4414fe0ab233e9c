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


def _list(args) -> int:
    from .registry import REGISTRY
    for name, spec in REGISTRY.items():
        print(f"{name:16s} {spec.cls_path:32s} golden={spec.golden}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("rtl", help="RTL components: Verilog generation")
    s = p.add_subparsers(dest="rtl_command", metavar="RTL_COMMAND")
    g = s.add_parser("generate", help="write one Verilog file per component + manifest.json")
    g.add_argument("--out", required=True, help="output directory")
    g.add_argument("--config", help="JSON config selecting instances and parameters")
    g.add_argument("--quiet", action="store_true", help="no progress or table")
    g.set_defaults(func=_generate)
    ls = s.add_parser("list", help="list the registered components")
    ls.set_defaults(func=_list)
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])
