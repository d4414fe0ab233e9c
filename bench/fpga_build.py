"""Build every FPGA preset (``dqt rtl build``) and, for presets with cell models, run the
synthesized netlist on a network (``dqt sim --preset P --netlist gate``).

Usage::

    .venv/bin/python bench/fpga_build.py [--artifact A] [--images 2] [--modes 2,4,6,8,static,dynamic]
                                         [--presets ice40-up5k,ecp5-25k] [--out DIR]

Prints a table (resources, Fmax against the target, build seconds; gate-level mismatches
and seconds) and, last, one JSON line. Builds are cached by Verilog and tool versions:
the first run of a preset takes minutes (ECP5 about 2.5, iCE40 under 1 on two cores).
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv=None) -> int:
    from rtl.fpga import PRESETS, gate_presets
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--artifact", help="network for the gate-level run (default: none)")
    p.add_argument("--images", type=int, default=2)
    p.add_argument("--modes", default=None)
    p.add_argument("--presets", default=",".join(sorted(PRESETS)))
    p.add_argument("--out", default=None, help="build directories here (default: temporary)")
    a = p.parse_args(argv)
    presets = [s for s in a.presets.split(",") if s]
    for s in presets:
        if s not in PRESETS:
            p.error(f"preset {s!r} is not one of {sorted(PRESETS)}")
    out = Path(a.out or tempfile.mkdtemp(prefix="fpga-bench-"))
    dqt = [sys.executable, "-m", "dqt"]
    rows = []
    for s in presets:
        t0 = time.monotonic()
        r = subprocess.run(dqt + ["rtl", "build", "--preset", s, "--out", str(out / s), "--json"]
                           + (["--artifact", a.artifact] if a.artifact else []),
                           capture_output=True, text=True, cwd=ROOT)
        row = {"preset": s, "build_s": round(time.monotonic() - t0, 1), "rc": r.returncode}
        if r.returncode == 0:
            row.update(json.loads(r.stdout.strip().splitlines()[-1]))
        else:
            row["error"] = r.stderr.strip().splitlines()[-1:]
        if a.artifact and s in gate_presets():
            t0 = time.monotonic()
            g = subprocess.run(dqt + ["sim", a.artifact, "--preset", s, "--netlist", "gate",
                                      "--images", str(a.images), "--json"] +
                               (["--modes", a.modes] if a.modes else []),
                               capture_output=True, text=True, cwd=ROOT)
            row["gate_s"] = round(time.monotonic() - t0, 1)
            if g.returncode in (0, 1):
                j = json.loads(g.stdout.strip().splitlines()[-1])
                row.update(gate_mismatches=j["mismatches"], gate_elements=j["rtl_elements"],
                           gate_modes=j["modes"], gate_images=j["images"])
            else:
                row["gate_error"] = g.stderr.strip().splitlines()[-1:]
        rows.append(row)
    print(f"{'preset':12s} {'LUT':>6s} {'DSP':>4s} {'BRAM':>5s} {'Fmax':>7s} {'target':>7s} "
          f"{'build s':>8s} {'gate mismatches':>16s}")
    for r in rows:
        print(f"{r['preset']:12s} {r.get('luts', '-')!s:>6s} {r.get('dsps', '-')!s:>4s} "
              f"{r.get('brams', '-')!s:>5s} {r.get('fmax_mhz', '-')!s:>7s} "
              f"{r.get('target_mhz', '-')!s:>7s} {r['build_s']:8.1f} "
              f"{r.get('gate_mismatches', '-')!s:>16s}")
    print(json.dumps({"bench": "fpga_build", "presets": rows, "loadavg": os.getloadavg()}))
    return 0 if all(r["rc"] == 0 and not r.get("gate_mismatches") for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
