"""``dqt`` command line.

Each stage package contributes its subcommands through a module ``<pkg>/cli.py`` with a
function ``register(subparsers)`` that adds parsers whose ``func(args) -> int`` runs the
command. Packages are imported lazily so ``dqt --help`` stays fast and a stage that is not
installed does not break the others.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# module path -> subcommands it registers (for the help text when it fails to import)
_STAGES = [
    "golden.cli",
    "training.cli",
    "rtl.cli",
    "sim.cli",
    "sim.fpga_cli",
    "reports.cli",
    "interop.cli",
    "sweep.cli",
    "dqt.flow",
]


class _Parser(argparse.ArgumentParser):
    """Bad arguments: one line naming the problem and exit status 2, like every other bad
    input (argparse would print the whole usage first). Subcommands inherit the class."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="dqt", description="DQT co-design toolkit: golden model, "
                                "training, RTL, verification and silicon-cost reports.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for mod in _STAGES:
        try:
            m = importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name == mod or mod.startswith(str(e.name) + "."):
                continue  # stage not present in this checkout
            raise
        m.register(sub)
    return p


def main(argv=None) -> int:
    from golden.formats import DQTValueError

    p = build_parser()
    args = p.parse_args(argv)
    if not getattr(args, "func", None):
        p.error("a command is required")
    try:
        return int(args.func(args) or 0)
    except DQTValueError as e:
        print(f"dqt {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"dqt {args.command}: interrupted", file=sys.stderr)
        return 130
