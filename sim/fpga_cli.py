# amaranth: UnusedElaboratable=no
"""``dqt fpga run ARTIFACT --preset NAME (--port DEV | --sim)``: run an exported network on a
board programmed with ``dqt rtl build`` (or on the same pin-level top in simulation) through
the UART host driver (:mod:`sim.uart_host`), and check every element of every layer against
the golden model (:mod:`sim.network_check`).

The last output line is one JSON object (``preset, line, images, modes, elements_checked,
rtl_elements, mismatches, verified_macs, seconds, first_mismatch``); exit status 0 without a
mismatch, 1 with one, 2 for bad input (checked before the line is opened).
"""
from __future__ import annotations

import json
import sys
import time

from golden.formats import DQTValueError

__all__ = ["register"]


def _run(args) -> int:
    from golden.network import load_network
    from rtl.engine import Engine
    from rtl.fpga import check_network, preset
    from .batch import run_now
    from .network import _parse_modes, input_codes
    from .network_check import run_on_engine
    from .uart_host import SerialLine, SimLine, UartEngine
    p = preset(args.preset)
    if bool(args.port) == bool(args.sim):
        raise DQTValueError("give exactly one of --port DEVICE (a board) and --sim (the "
                            "pin-level top under Verilator)")
    if not 300 <= args.baud <= 3_000_000:
        raise DQTValueError(f"--baud {args.baud} is outside the allowed range [300, 3000000]")
    check_network(args.preset, args.artifact)
    net = load_network(args.artifact)
    modes = _parse_modes([m.strip() for m in args.modes.split(",") if m.strip()]
                         if args.modes else None, net)
    codes, src = input_codes(args.artifact, args.images)
    if args.netlist == "gate" and not args.sim:
        raise DQTValueError("--netlist gate runs the synthesized netlist in simulation: add --sim")
    if args.sim and args.netlist == "gate":
        from rtl.fpga import gate_netlist
        g = gate_netlist(args.preset)
        line = SimLine(p["engine"], divisor=4, source=[g["netlist"], g["models"]],
                       defines=g["defines"], include=g["include"])
        where = f"sim (synth_{p['family']} netlist)"
    elif args.sim:
        line, where = SimLine(p["engine"], divisor=4), "sim"
    else:
        line, where = SerialLine(args.port, args.baud), args.port
    geom = Engine(**p["engine"]).geometry
    t0 = time.monotonic()
    try:
        rep = run_now(run_on_engine(UartEngine(geom, line), net, codes, modes))
    finally:
        line.close()
    out = {"preset": args.preset, "line": where, "netlist": args.netlist, "images": rep["images"], "modes": rep["modes"],
           "input_source": src, "elements_checked": rep["elements_checked"],
           "rtl_elements": rep["rtl_elements"], "mismatches": rep["mismatches"],
           "verified_macs": rep["verified_macs"], "seconds": round(time.monotonic() - t0, 2),
           "first_mismatch": rep["first_mismatch"]}
    if rep["mismatches"]:
        print(f"dqt fpga run: {rep['mismatches']} mismatches; first:\n{rep['first_mismatch']}",
              file=sys.stderr)
    elif not args.json:
        print(f"{args.preset} over {where}: {rep['images']} images, modes "
              f"{', '.join(rep['modes'])}: {rep['rtl_elements']} engine elements, 0 mismatches",
              file=sys.stderr)
    print(json.dumps(out))
    return 1 if rep["mismatches"] else 0


def register(sub) -> None:
    from rtl.fpga import PRESETS
    p = sub.add_parser("fpga", help="run a network on an FPGA board (or its simulated top) "
                       "over the UART host interface")
    s = p.add_subparsers(dest="fpga_command", metavar="FPGA_COMMAND")
    r = s.add_parser("run", help="run and check a network through the pin-level top")
    r.add_argument("artifact", help="directory written by 'dqt train' or 'dqt export'")
    r.add_argument("--preset", required=True, choices=sorted(PRESETS),
                   help="the preset the board was built with ('dqt rtl build')")
    r.add_argument("--port", help="serial device of the board, e.g. /dev/ttyUSB1 (pyserial)")
    r.add_argument("--sim", action="store_true",
                   help="the pin-level top under Verilator instead of a board")
    r.add_argument("--netlist", choices=["rtl", "gate"], default="rtl",
                   help="with --sim: the generated Verilog (rtl) or the top synthesized for "
                   "the preset's part with the vendor cell models (gate)")
    r.add_argument("--baud", type=int, default=115200, help="line rate of the bitstream")
    r.add_argument("--images", type=int, default=1, help="images to run (default 1)")
    r.add_argument("--modes", help="comma-separated: bit-widths, static, dynamic (default all)")
    r.add_argument("--json", action="store_true", help="only the JSON line")
    r.set_defaults(func=_run)
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])
