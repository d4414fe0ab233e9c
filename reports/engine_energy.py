"""Energy of the layer engine running a trained network, from the engine's own activity.

Method (docs/reports.md, "Engine energy"): the engine sized for the network
(:func:`sim.network.engine_params_for`) is synthesized onto the sky130 liberty; its gate
netlist runs under Verilator (:mod:`sim.gate`) with the same stream ``dqt sim`` verifies:
the artifact's held-out images, the golden traces, the same precision per vector, every
element compared with the golden model. Toggle coverage counts the transitions of every
input port, every flip-flop output and every memory-macro read bit over each mode's run;
OpenSTA propagates them through the combinational logic and reports power at the clock
period of the other designs; energy = power x period x cycles of that run (tile loads,
register writes and idle cycles included).

Limits: the memory macros' own read and write energy is not included (no memory compiler
for sky130 here; their bit count is in ``memory_bits``); zero-delay simulation counts no
glitches; duty is 0.5 for every annotated net.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

from golden.formats import DQTValueError

__all__ = ["ENGINE_MODES", "ENERGY_ENGINE", "FUSION_ENERGY_ENGINE", "PUBLISHED_RATIOS",
           "engine_energy"]

#: Modes of the engine figures: every static width, the trained per-layer widths, dynamic.
ENGINE_MODES = ("2", "4", "6", "8", "static", "dynamic")
#: Geometry the report measures the engine at (memories still sized for the network): the
#: catalog's 8 x 8 array is 16 times the multipliers and its gate netlist takes Verilator and
#: the C++ compiler most of an hour on 2 cores; 2 lanes x 4 PEs builds in minutes.
ENERGY_ENGINE = {"lanes": 2, "pes": 4}
#: The precision-scalable engine (docs/rtl.md, "The fusion engine") the report measures
#: beside it: the same lanes x PEs, so the same products per cycle at 8 bits (4x and 16x
#: at 4 and 2 bits), with digit-plane weight banks.
FUSION_ENERGY_ENGINE = dict(ENERGY_ENGINE, fusion=True)
#: Published energy per MAC at 4 and 2 bits relative to 8 bits of precision-scalable MAC
#: arrays, 28 nm (the PSMA benchmark of KU Leuven MICAS, arXiv 2108.04773): the anchors the
#: report sets beside the measured ratios. Literature values, not results of this toolkit.
PUBLISHED_RATIOS = {"Bit Fusion (PSMA benchmark, 28 nm)": {"4": 0.23, "2": 0.056},
                    "BitBlade (PSMA benchmark, 28 nm)": {"4": 0.24, "2": 0.059}}


def engine_energy(artifact, liberty, images: int = 2, modes=ENGINE_MODES,
                  engine: dict | None = ENERGY_ENGINE, progress: bool = False) -> dict:
    """Per-mode cycles and energy of the gate-level engine on ``images`` held-out images.

    Returns ``{"images_sampled", "engine_params", "cycles_per_image", "energy_uj_per_image",
    "energy_pj_per_mac", "macs_per_image", "mismatches", "elements_checked", "seconds",
    "sky130_um2", "memory_bits"}`` (per-mode dicts keyed like :data:`ENGINE_MODES`).
    ``engine``: overrides of the engine sizing (``lanes``, ``pes``; as ``dqt sim --engine``;
    None: the catalog's).
    Raises DQTValueError when the gate netlist disagrees with the golden model (no energy
    is reported for a netlist that computes something else).
    """
    from tqdm import tqdm

    from golden.network import load_network
    from sim.gate import activities, gate_engine, toggle_counts
    from sim.network import _parse_modes, engine_params_for, input_codes
    from sim.network_check import run_on_engine
    from sim.batch import run_now
    from .sta import sta_power

    images = int(images)
    if images < 1:
        raise DQTValueError(f"images={images} must be >= 1")
    net = load_network(artifact)
    modes = [m for m in modes if m != "dynamic" or net.controller]
    parsed = _parse_modes(list(modes), net)
    codes, _ = input_codes(artifact, images)
    params = engine_params_for(net, engine)
    t0 = time.monotonic()
    eng, s, watched = gate_engine(params, liberty)
    out = {"images_sampled": len(codes), "engine_params": params, "cycles_per_image": {},
           "energy_uj_per_image": {}, "energy_pj_per_mac": {}, "macs_per_image": {},
           "mismatches": 0, "elements_checked": 0, "sky130_um2": s["area_um2"],
           "memory_bits": s.get("memory_bits"), "power_mw": {}}
    with eng, tempfile.TemporaryDirectory(prefix="engine-energy-") as tmp:
        for key, mode in tqdm(list(zip(modes, parsed)), desc="engine energy", unit="mode",
                              disable=not progress):
            eng.coverage_zero()
            c0, busy0 = eng.cycle, eng.cycles_busy
            rep = run_now(run_on_engine(eng, net, codes, [mode]))
            cycles = eng.cycle - c0
            out["mismatches"] += rep["mismatches"]
            out["elements_checked"] += rep["elements_checked"]
            if rep["mismatches"]:
                raise DQTValueError(f"the engine's gate netlist disagrees with the golden model "
                                    f"in mode {key}: {rep['first_mismatch']}")
            cov = Path(tmp) / f"{key}.dat"
            eng.coverage_write(cov)
            ins, regs, pins = activities(toggle_counts(cov), cycles, watched)
            p = sta_power(s["netlist_v"], eng.info.top, liberty, ins, regs, pin_activity=pins)
            e_pj = p["energy_per_cycle_pj"] * cycles
            out["cycles_per_image"][key] = round((eng.cycles_busy - busy0) / len(codes))
            out["energy_uj_per_image"][key] = e_pj / 1e6 / len(codes)
            out["energy_pj_per_mac"][key] = e_pj / max(1, rep["verified_macs"])
            out["macs_per_image"][key] = rep["verified_macs"] // len(codes)
            out["power_mw"][key] = p["total_w"] * 1e3
    out["seconds"] = round(time.monotonic() - t0, 1)
    return out
