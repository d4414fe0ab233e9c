"""Throughput of RTL-vs-golden verification on the layer engine, per simulator and driver.

Runs :func:`sim.network.verify_network` (every layer of a network on the engine, every
element compared with the golden traces) with the Verilator batch driver (the engine
Verilated with a C++ driver, called from this process with whole arrays), with the cocotb
driver under Verilator, and with the cocotb driver under Icarus, and reports verified MACs
per second, the speed-up of the batch driver over cocotb (same run, same artifact, same
modes) and the batch path's peak RSS. The batch run goes first, so this process's peak
RSS is its own.

As an anchor, the same engine (same parameters, no harness, no driver) is compiled by
Verilator with a plain C++ main that toggles the clock under LFSR stimulus: activations,
weights, channel constants and configuration registers are all LFSR-driven (so none is a
constant Verilator could fold), and the output payload is a port of the anchor's top (so
the datapath that computes it cannot be removed as dead logic). Its simulated cycles per
second are the simulator's own speed on this design, and times ``lanes * pes`` the MAC rate
any driver could at most verify.

``--engine '{"lanes": 16, "pes": 16}'`` measures another engine geometry (as ``dqt sim
--engine``): the per-clock cost of the Verilated engine has a large part that does not grow
with the number of MAC units, so a wider engine verifies more MACs per second.

Prints a table and, as the last line, one JSON object (with the load average).

    .venv/bin/python bench/rtl_verify.py --artifact build/digits --images 360
    .venv/bin/python bench/rtl_verify.py --quick          # random network, 16 images
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from golden.formats import DQTValueError  # noqa: E402
from golden.network import load_network  # noqa: E402
from sim import runner  # noqa: E402
from sim.network import engine_params_for, verify_network  # noqa: E402

_BENCH_TOP = """\
// Free-running anchor: LFSR stimulus in SystemVerilog, clock from a C++ loop; no VPI.
// Weight and constant writes are LFSR-driven too, so the weight memory is not a constant.
module bench_top(input clk, input rst, output o_valid, output [{ow}-1:0] o_payload);
  reg [63:0] lfsr = 64'h1234_5678_9abc_def1;
  always @(posedge clk) lfsr <= {{lfsr[62:0], lfsr[63] ^ lfsr[62] ^ lfsr[60] ^ lfsr[59]}};
  wire [{pw}-1:0] payload = {{{rep}{{lfsr}}}};
  wire [{pw}-1:0] payload2 = {{{rep}{{lfsr[31:0], lfsr[63:32]}}}};
  wire i_ready, busy, overflow;
  {top} dut (.clk(clk), .rst(rst), .i__valid(1'b1), .i__ready(i_ready),
    .i__payload(payload[{iw}-1:0]), .o__valid(o_valid), .o__ready(1'b1),
    .o__payload(o_payload){extra});
endmodule
"""

_BENCH_MAIN = """\
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include "Vbench_top.h"
#include "verilated.h"
int main(int argc, char** argv) {
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    VerilatedContext ctx;
    Vbench_top top{&ctx};
    top.rst = 1;
    for (int i = 0; i < 4; ++i) { top.clk = 0; top.eval(); top.clk = 1; top.eval(); }
    top.rst = 0;
    long valid = 0;
    auto t0 = std::chrono::steady_clock::now();
    for (long i = 0; i < n; ++i) {
        top.clk = 0; top.eval(); top.clk = 1; top.eval();
        valid += top.o_valid;
    }
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    printf("%ld %.6f %ld\\n", n, s, valid);
    return 0;
}
"""


def anchor_cycles_per_s(params: dict, cycles: int) -> dict:
    """Build the plain engine with ``verilator --binary`` and time ``cycles`` clocks."""
    reason = runner.missing_reason("verilator")
    if reason:
        return {"skipped": reason}
    info = runner.generate_module("engine", params, name="engine_bench")
    ports = info.ports
    iw = ports["i__payload"]["width"]
    ow = ports["o__payload"]["width"]
    widest = max(p["width"] for p in ports.values())
    pw = max(64, -(-max(iw, widest) // 64) * 64)
    extra = ""
    for name, p in ports.items():
        if name in ("clk", "rst") or name.startswith(("i__", "o__")):
            continue
        if name in ("busy", "overflow"):
            extra += f", .{name}({name})"
        elif name == "cfg_we":  # a register write on about 1 cycle in 16
            extra += f", .{name}(lfsr[13] & lfsr[14] & lfsr[15] & lfsr[16])"
        elif name.startswith("cfg_"):  # register address and value
            extra += f", .{name}(payload[{p['width']} + 3:4])"
        elif name in ("w_we", "c_we"):  # a write on about a quarter of the cycles
            bit = 5 if name == "w_we" else 9
            extra += f", .{name}(lfsr[{bit}] & lfsr[{bit + 1}])"
        else:  # write addresses and data
            extra += f", .{name}(payload2[{p['width']}-1:0])"
    d = runner.BUILD_ROOT / "anchor" / info.path.parent.name
    d.mkdir(parents=True, exist_ok=True)
    top = d / "bench_top.sv"
    top.write_text(_BENCH_TOP.format(pw=pw, rep=pw // 64, ow=ow, iw=iw, top=info.top,
                                     extra=extra))
    main = d / "bench_main.cpp"
    main.write_text(_BENCH_MAIN)
    exe = d / "obj" / "Vbench_top"
    if not exe.exists() or exe.stat().st_mtime < top.stat().st_mtime:
        cmd = ["verilator", "--cc", "--exe", "--build", "-O3", "--top-module", "bench_top",
               "-Mdir", str(d / "obj"), "-j", "2"] + \
            [f"-Wno-{w}" for w in runner.VERILATOR_WAIVERS] + [str(info.path), str(top),
                                                                str(main)]
        env = dict(os.environ, MAKEFLAGS="CFG_CXXFLAGS_PCH_I=-include")  # see sim.runner
        t0 = time.monotonic()
        r = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if r.returncode:
            return {"error": (r.stdout + r.stderr)[-2000:]}
        build_s = time.monotonic() - t0
    else:
        build_s = 0.0
    r = subprocess.run([str(exe), str(cycles)], capture_output=True, text=True, cwd=d)
    if r.returncode:
        return {"error": (r.stdout + r.stderr)[-2000:]}
    n, wall, valid = r.stdout.split()
    wall = float(wall)
    return {"cycles": cycles, "seconds": round(wall, 3), "cycles_per_s": round(cycles / wall),
            "output_beats": int(valid), "build_seconds": round(build_s, 1)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--artifact", help="network artifact (default: a random network)")
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--runs", default="verilator:batch,verilator:cocotb,icarus:cocotb",
                    help="comma-separated simulator:driver pairs, run in this order")
    ap.add_argument("--cocotb-images", type=int, default=None,
                    help="images for the cocotb driver under Verilator (default: --images)")
    ap.add_argument("--modes", default=None, help="comma-separated, as for dqt sim")
    ap.add_argument("--icarus-images", type=int, default=8,
                    help="images for Icarus (an interpreted simulator: far slower)")
    ap.add_argument("--anchor-cycles", type=int, default=200_000)
    ap.add_argument("--engine", default=None,
                    help="engine overrides as a JSON object, as for dqt sim (e.g. "
                         "'{\"lanes\": 16, \"pes\": 16}')")
    ap.add_argument("--jobs", type=int, default=None,
                    help="batch driver worker threads (default: the CPUs available)")
    ap.add_argument("--quick", action="store_true", help="16 images, 200k anchor cycles")
    a = ap.parse_args(argv)
    if a.quick:
        a.images, a.anchor_cycles, a.icarus_images = 16, 50_000, 4
    from sim.cli import _parse_engine
    try:
        engine = _parse_engine(a.engine)
    except DQTValueError as e:
        ap.error(str(e))
    art = a.artifact
    if art is None:
        from golden.testing import random_network
        art = Path(tempfile.mkdtemp(prefix="dqt-bench-")) / "random"
        random_network(art, seed=0)
    net = load_network(art)
    params = engine_params_for(net, engine)
    modes = a.modes.split(",") if a.modes else None
    rows = []
    for run in a.runs.split(","):
        sim, _, driver = run.partition(":")
        reason = runner.missing_reason(sim)
        if reason:
            rows.append({"simulator": sim, "driver": driver, "skipped": reason})
            continue
        n = a.images if driver == "batch" else \
            (a.cocotb_images or a.images) if sim == "verilator" else \
            min(a.images, a.icarus_images)
        load = os.getloadavg()[0]
        r = verify_network(art, images=n, simulator=sim, modes=modes, driver=driver or None,
                           engine=engine, jobs=a.jobs if driver == "batch" else None)
        row = {k: r[k] for k in ("simulator", "driver", "images", "elements_checked",
                                 "mismatches", "verified_macs", "seconds",
                                 "verified_macs_per_s", "cpu_seconds",
                                 "verified_macs_per_cpu_s", "engine_cycles", "build_seconds",
                                 "peak_rss_mib", "modes")}
        row["jobs"] = r.get("jobs", 1)
        row["load_1min"] = [round(load, 2), round(os.getloadavg()[0], 2)]
        rows.append(row)
        print(f"{sim}:{driver} done: {json.dumps(row)}", file=sys.stderr, flush=True)
    anchor = anchor_cycles_per_s(params, a.anchor_cycles)
    mpc = params["lanes"] * params["pes"]
    print(f"artifact {art}; engine lanes={params['lanes']} pes={params['pes']} "
          f"({mpc} MACs/cycle peak)")
    print(f"{'simulator':10s} {'driver':7s} {'jobs':>4s} {'images':>6s} {'elements':>10s} {'mism':>5s} "
          f"{'MACs':>11s} {'seconds':>8s} {'MACs/s':>10s} {'MACs/cpu-s':>10s} {'cycles/s':>9s} "
          f"{'RSS MiB':>8s}")
    for r in rows:
        if "skipped" in r:
            print(f"{r['simulator']:10s} {r['driver']:7s} skipped: {r['skipped']}")
            continue
        cps = r["engine_cycles"] / r["seconds"]
        print(f"{r['simulator']:10s} {r['driver']:7s} {r['jobs']:4d} {r['images']:6d} "
              f"{r['elements_checked']:10d} {r['mismatches']:5d} {r['verified_macs']:11d} "
              f"{r['seconds']:8.2f} {r['verified_macs_per_s']:10d} "
              f"{r['verified_macs_per_cpu_s']:10d} {cps:9.0f} "
              f"{r['peak_rss_mib']:8.0f}")
    if "cycles_per_s" in anchor:
        print(f"{'anchor':10s} verilator --binary, plain engine: {anchor['cycles_per_s']} "
              f"cycles/s ({anchor['cycles_per_s'] * mpc:.3g} MACs/s at peak)")
    else:
        print(f"anchor: {anchor}")
    rate = {f"{r['simulator']}:{r['driver']}": r["verified_macs_per_s"] for r in rows
            if "skipped" not in r}
    speedup = None
    if rate.get("verilator:batch") and rate.get("verilator:cocotb"):
        speedup = round(rate["verilator:batch"] / rate["verilator:cocotb"], 2)
        print(f"batch driver / cocotb driver (Verilator, same run): {speedup}x")
    print(json.dumps({"artifact": str(art), "engine": params, "runs": rows,
                      "batch_vs_cocotb": speedup, "anchor": anchor,
                      "loadavg": [round(v, 2) for v in os.getloadavg()]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
