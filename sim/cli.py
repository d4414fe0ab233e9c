"""``dqt sim ARTIFACT``: run an exported network on the layer engine in an HDL simulator and
check every element of every layer against the golden model.

The last line of the output is one JSON object with at least ``images, layers,
elements_checked, rtl_elements, host_elements, mismatches, verified_macs, seconds,
verified_macs_per_s`` (``rtl_elements``: produced by the RTL engine; ``host_elements``:
pooling, flatten, clip and the controller's argmax, computed by the golden functions
themselves; ``elements_checked`` is their sum). The exit
status is 0 when there is no mismatch, 1 when there is one (its description goes to
stderr, with the command that reruns the check with waves), 2 for bad arguments.
"""
from __future__ import annotations

import json
import shlex
import sys

from golden.formats import DQTValueError

__all__ = ["register"]


def _parse_engine(text):
    """``--engine``: a JSON object of engine parameters (checked by ``engine_params_for``)."""
    if not text:
        return None
    try:
        engine = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as e:
        raise DQTValueError(f"--engine {text!r} is not valid JSON ({getattr(e, 'msg', e)}); "
                            'write an object such as \'{"lanes": 4}\'') from None
    if not isinstance(engine, dict):
        raise DQTValueError(f"--engine {text!r} must be a JSON object such as '{{\"lanes\": 4}}'")
    return engine


def _sim(args) -> int:
    from .network import verify_network
    if args.preset:
        # the pin-level top of an FPGA preset, over its UART (sim.fpga_cli)
        for flag, given in (("--engine", args.engine), ("--driver", args.driver),
                            ("--jobs", args.jobs), ("--stall", args.stall)):
            if given:
                raise DQTValueError(f"{flag} does not apply with --preset (the preset fixes "
                                    "the engine and the host drives it over the UART)")
        if args.simulator != "verilator":
            raise DQTValueError("--preset runs under Verilator only")
        from .fpga_cli import _run
        args.sim, args.port, args.baud = True, None, 115200
        if args.images is None:
            args.images = 1
        return _run(args)
    if args.netlist != "rtl":
        raise DQTValueError("--netlist gate needs --preset (the FPGA netlist of that preset)")
    modes = None
    if args.modes:
        modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    engine = _parse_engine(args.engine)
    if args.images is not None and args.images < 1:
        raise DQTValueError(f"--images {args.images} is outside the allowed range [1, inf)")
    if not 1 <= args.batch <= 4096:
        raise DQTValueError(f"--batch {args.batch} is outside the allowed range [1, 4096]")
    rerun = "WAVES=1 " + " ".join(shlex.quote(a) for a in ["dqt"] + sys.argv[1:])
    rep = verify_network(args.artifact, images=args.images, simulator=args.simulator,
                         modes=modes, batch=args.batch, stall=args.stall, engine=engine,
                         rerun=rerun, driver=args.driver, jobs=args.jobs)
    if not args.json:
        print(f"{rep['simulator']} ({rep['driver']} driver): {rep['images']} images "
              f"({rep['input_source']}), modes "
              f"{', '.join(rep['modes'])}", file=sys.stderr)
        for k, v in sorted(rep["per_layer"].items()):
            print(f"  {k:40s} {v['elements']:9d} elements  {v['mismatches']:6d} mismatches"
                  f"  ({v.get('kind', 'rtl')})", file=sys.stderr)
        print(f"verified on the RTL engine: {rep['rtl_elements']} elements; host steps "
              f"(pooling, flatten, clip, controller argmax, golden functions): "
              f"{rep['host_elements']} elements", file=sys.stderr)
    if rep["mismatches"]:
        print(f"dqt sim: {rep['mismatches']} mismatches; first:\n{rep['first_mismatch']}",
              file=sys.stderr)
    # engine clock cycles per image in each mode (streaming only; register and memory
    # writes excluded): what the precision buys in time
    by_mode = rep.get("engine_cycles_by_mode") or {}
    rep["cycles_per_image"] = {k: round(v / rep["images"]) for k, v in by_mode.items()}
    if not args.json and by_mode:
        print("engine cycles per image: " + ", ".join(
            f"{k} {v}" for k, v in rep["cycles_per_image"].items()), file=sys.stderr)
    keys = ["images", "layers", "elements_checked", "rtl_elements", "host_elements",
            "mismatches", "verified_macs", "seconds", "verified_macs_per_s", "simulator",
            "driver", "modes", "engine_cycles", "cycles_per_image", "build_seconds",
            "peak_rss_mib", "input_source", "artifact", "jobs"]
    print(json.dumps({k: rep.get(k) for k in keys}, sort_keys=False))
    return 1 if rep["mismatches"] else 0


def register(sub) -> None:
    p = sub.add_parser("sim", help="verify a network on the RTL layer engine against "
                       "the golden model")
    p.add_argument("artifact", help="network artifact directory (manifest.json + weights.npz)")
    p.add_argument("--simulator", default="verilator", choices=["verilator", "icarus"])
    p.add_argument("--images", type=int, default=None,
                   help="number of held-out images (default: all of them)")
    p.add_argument("--modes", default=None,
                   help="comma-separated precision modes: bit-widths of B, 'static', "
                   "'dynamic' (default: every width of B, static, and dynamic if the "
                   "artifact has a controller)")
    p.add_argument("--driver", default=None, choices=["batch", "cocotb"],
                   help="batch: the engine Verilated with a C++ driver and called from this "
                   "process with whole arrays (Verilator only; the default there); cocotb: "
                   "the cocotb testbench on the harnessed engine (the default for Icarus)")
    p.add_argument("--jobs", type=int, default=None,
                   help="batch driver: worker threads, each simulating its own engine on a "
                   "share of the modes (default: the CPUs available; 1 = one engine)")
    p.add_argument("--batch", type=int, default=64,
                   help="beats per harness batch (cocotb driver)")
    p.add_argument("--stall", action="store_true", help="random output backpressure")
    p.add_argument("--engine", default=None,
                   help="JSON object of engine parameters overriding the sizing")
    from rtl.fpga import PRESETS
    p.add_argument("--preset", choices=sorted(PRESETS), default=None,
                   help="run the pin-level top of this FPGA preset over its UART (the host "
                   "driver of 'dqt fpga run'; default 1 image)")
    p.add_argument("--netlist", choices=["rtl", "gate"], default="rtl",
                   help="with --preset: the generated Verilog or the netlist synthesized for "
                   "the preset's part with the vendor cell models")
    p.add_argument("--json", action="store_true", help="only the JSON line on stdout")
    p.set_defaults(func=_sim)
