"""End-to-end report flow: designs -> tool runs (parallel, cached) -> summary, plots, HTML.

Python API::

    from reports.build import build_report
    summary = build_report("build/report", artifact="build/digits", liberty="../shared/pdk/"
                           "sky130_fd_sc_hd__tt_025C_1v80.lib.gz", fast=False)

The output directory is written atomically (built in a temporary sibling, then renamed).
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import tempfile
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from golden.formats import DQTValueError

from .cache import cache_dir
from .engine_energy import ENGINE_MODES, FUSION_ENERGY_ENGINE, PUBLISHED_RATIOS
from .liberty import Liberty, missing_hints
from .tools import ToolError, find_tool, resolve_liberty, tool_version, warn_first_yosys

__all__ = ["build_report", "SUMMARY_KEYS", "DESIGN_KEYS"]

SUMMARY_KEYS = ("designs", "transition", "accuracy", "provenance", "notes", "headline", "engine")
DESIGN_KEYS = ("name", "catalog", "source", "transistors", "sky130_um2", "ice40_luts", "ecp5_luts",
               "fmax_mhz_ice40", "sta_critical_path_ns", "energy_pj_per_mac",
               "energy_pj_per_mac_model")

WORKLOAD_SEED = 0


def _git_commit():
    try:
        r = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                           timeout=10, cwd=Path(__file__).resolve().parent)
        return r.stdout.strip() or None
    except (OSError, subprocess.TimeoutExpired):
        return None


def _provenance(liberty, artifact, workload, fast, jobs):
    import amaranth
    import numpy
    return {
        "tools": {t: tool_version(t) for t in ("yosys", "nextpnr-ice40", "nextpnr-ecp5", "sta")},
        "amaranth": amaranth.__version__, "numpy": numpy.__version__,
        "python": platform.python_version(),
        "liberty": Path(liberty).name if liberty else None,
        "artifact": str(artifact) if artifact else None,
        "artifact_digest": _artifact_digest(artifact),
        "workload": {"source": workload.source if workload else None,
                     "seed": WORKLOAD_SEED, "bits": workload.bits if workload else None},
        "pnr_seed": 1, "fast": fast, "jobs": jobs, "git_commit": _git_commit(),
        "cache": str(cache_dir()),
    }


def _artifact_digest(artifact):
    if not artifact:
        return None
    import hashlib
    p = Path(artifact) / "manifest.json"
    return hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else None


def _headline(designs, energy=None, fusion=None):
    """Rows of the headline table: plain MAC vs nested MACs vs the fp32 baseline vs the
    layer engine (n = 8); the engine's pJ per MAC is its measured energy on the trained
    network (``energy``, :func:`reports.engine_energy.engine_energy`) when there is one, and
    ``fusion`` (the precision-scalable engine's measurement) adds its row, ``engine_fusion``,
    with the area of its measured sky130 netlist."""
    want = ["int_mac_n8", "nested_mac_floor_right_n8", "nested_mac_floor_msb_n8",
            "nested_mac_round_right_n8", "nested_mac_round_msb_n8", "bitserial_mac_n8",
            "fusion_mac_n8", "fusion_mac_nested_n8",
            "fp32_requant_n8", "requantize_n8", "engine"]
    by = {d["name"]: d for d in designs}
    rows = []
    for name in want:
        d = by.get(name)
        if d is None:
            continue
        e = d.get("energy_pj_per_mac") or {}
        if name == "engine" and energy is not None:
            e = energy["energy_pj_per_mac"]
        em = d.get("energy_pj_per_mac_model") or {}
        rows.append({"name": name, "unit": d["unit"], "sky130_um2": d["sky130_um2"],
                     "ice40_luts": d["ice40_luts"],
                     **{f"pj_{b}b": e.get(str(b)) for b in (8, 4, 2)},
                     **{f"model_pj_{b}b": em.get(str(b)) for b in (8, 4, 2)}})
    if fusion is not None:
        e = fusion["energy_pj_per_mac"]
        rows.append({"name": "engine_fusion", "unit": "MAC", "sky130_um2": fusion["sky130_um2"],
                     "ice40_luts": None, **{f"pj_{b}b": e.get(str(b)) for b in (8, 4, 2)},
                     **{f"model_pj_{b}b": None for b in (8, 4, 2)}})
    return rows


def engine_summary(rows, sim_result=None, energy=None, nested=None) -> dict | None:
    """The summary's ``engine`` object: the costed engine's area and SRAM bits; cycles,
    energy per image and per MAC per mode from the gate-level run of the trained network
    (``energy``: :func:`reports.engine_energy.engine_energy`'s result), or, without one,
    the cycles per image that ``dqt sim``'s result (``sim_result``) measured.

    The report measures the precision-scalable (fusion) engine as ``energy`` and the plain
    nested engine of the same 8-bit throughput as ``nested``: then ``nested`` holds the
    latter's figures, ``vs_nested`` the ratios of the two (area, pJ/MAC and cycles per
    mode), and ``published`` the PSMA anchors of energy per MAC vs 8 bits."""
    row = next((r for r in rows if r["family"] == "engine"), None)
    if row is None:
        return None
    from rtl.registry import Parameters
    e = {"name": row["name"], "params": Parameters("engine", row["params"]).params,
         "sky130_um2": row["sky130_um2"], "memory_bits": row["memory_bits"],
         "cycles_per_image": {}, "energy_uj_per_image": dict.fromkeys(ENGINE_MODES),
         "energy_pj_per_mac": dict.fromkeys(ENGINE_MODES), "images_sampled": 0, "note": ""}
    if energy is not None:
        for k in ("cycles_per_image", "energy_uj_per_image", "energy_pj_per_mac",
                  "images_sampled", "macs_per_image", "power_mw", "elements_checked",
                  "mismatches", "seconds"):
            e[k] = energy[k]
        e["measured_on"] = {"params": energy["engine_params"],
                            "sky130_um2": energy["sky130_um2"],
                            "memory_bits": energy["memory_bits"]}
        pj, cyc = energy["energy_pj_per_mac"], energy["cycles_per_image"]
        e["energy_vs_8bit"] = {m: _div(pj.get(m), pj.get("8")) for m in pj}
        e["cycles_8bit_over"] = {m: _div(cyc.get("8"), cyc.get(m)) for m in cyc}
        e["published"] = PUBLISHED_RATIOS
        if nested is not None:
            e["nested"] = {k: nested[k] for k in (
                "engine_params", "cycles_per_image", "energy_uj_per_image", "energy_pj_per_mac",
                "sky130_um2", "memory_bits", "mismatches", "elements_checked")}
            npj = nested["energy_pj_per_mac"]
            e["vs_nested"] = {
                "sky130_um2": _div(energy["sky130_um2"], nested["sky130_um2"]),
                "energy_pj_per_mac": {m: _div(pj.get(m), npj.get(m)) for m in pj},
                "cycles_per_image": {m: _div(cyc.get(m), nested["cycles_per_image"].get(m))
                                     for m in cyc}}
        scal = bool(energy["engine_params"].get("fusion"))
        e["note"] = (f"gate-level sky130 netlist of the "
                     f"{'precision-scalable (fusion) ' if scal else ''}engine sized for the "
                     f"network, {energy['images_sampled']} held-out images per mode, every "
                     "element checked against the golden model; logic, flip-flop and clock "
                     "energy from the netlist's own toggles (OpenSTA); the memory macros' read "
                     "and write energy is not included"
                     + ("; beside it the plain nested engine of the same 8-bit throughput"
                        if nested is not None else ""))
        return e
    e["note"] = "energy not measured (needs an artifact, a liberty, OpenSTA and Verilator)"
    if sim_result is None:
        e["note"] += "; no `dqt sim` result given, so no cycle counts"
        return e
    r = json.loads(Path(sim_result).read_text())
    imgs = int(r.get("images") or 0)
    by_mode = r.get("engine_cycles_by_mode") or {}
    e["images_sampled"] = imgs
    e["cycles_per_image"] = {m: round(by_mode[m] / imgs) for m in ENGINE_MODES
                             if m in by_mode and imgs}
    if r.get("engine") and Parameters("engine", r["engine"]) != Parameters("engine", row["params"]):
        e["note"] += (f"; cycles were measured on the engine sized for the network "
                      f"({json.dumps(r['engine'], sort_keys=True)})")
    return e


def _div(a, b):
    """a / b, or None unless both are numbers and b is not zero."""
    return a / b if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b else None


#: Note prefixes of a design step that failed (rather than one not requested or not possible).
_FAILED = ("build:", "synthesis", "pnr ", "sta timing", "activity energy")


def _dropped(rows) -> list[str]:
    """A note and a warning for every design that lost a figure to a failed step."""
    out = []
    for r in rows:
        failed = [n for n in r["notes"] if n.startswith(_FAILED)]
        if failed:
            msg = f"design {r['name']} is missing figures: {'; '.join(failed)}"
            warnings.warn(msg)
            out.append(msg)
    return out


def _engine_energy(artifact, lib, images, progress, notes, engine=None):
    """The engine's per-mode energy on the trained network (``engine``: sizing overrides,
    default :data:`reports.engine_energy.ENERGY_ENGINE`), or None with a note saying why
    (a missing tool, or a failed step: that one also warns)."""
    from sim import runner
    missing = [what for what, ok in (("a liberty", lib is not None),
                                     ("OpenSTA", find_tool("sta") is not None),
                                     ("Yosys", find_tool("yosys") is not None),
                                     ("Verilator", not runner.missing_reason("verilator")))
               if not ok]
    if missing:
        notes.append(f"engine energy not measured: no {', '.join(missing)}")
        return None
    from .engine_energy import ENERGY_ENGINE, engine_energy
    try:
        return engine_energy(artifact, lib, images=images, progress=progress,
                             engine=engine or ENERGY_ENGINE)
    except Exception as e:   # one failed measurement must not lose the whole report
        what = "fusion engine" if (engine or {}).get("fusion") else "engine"
        msg = f"{what} energy failed: {type(e).__name__}: {e}".splitlines()[0][:400]
        warnings.warn(msg)
        notes.append(msg)
        return None


def _cost_hint(d) -> int:
    """Rough relative synthesis cost of a design (scheduling order only)."""
    if d.family == "engine":
        return 1000
    wide = ("paper_dot", "fp32_requant", "factored_dot", "requantize", "int_mul")
    base = 100 if any(w in d.name for w in wide) else 10
    return base + d.n


def _result_or_failed(future, design) -> dict:
    """A worker's result, or the design's empty row marked failed when the worker itself died
    (a killed process breaks the pool): one design fails, not the whole report."""
    from .evaluate import empty_result
    try:
        return future.result()
    except Exception as e:
        res = empty_result(design)
        msg = f"{type(e).__name__}: {e}"
        res["notes"].append(f"evaluation: {msg}".splitlines()[0][:300])
        res["failed"].append({"step": "evaluation", "error": msg[-3000:]})
        return res


def _select(only, fast, include_rtl):
    """The design list, restricted to the names in ``only`` (None: all of them)."""
    from .designs import default_designs
    designs = default_designs(fast, include_rtl)
    if only is not None:
        known = {d.name for d in designs}
        bad = [n for n in only if n not in known]
        if bad:
            raise DQTValueError(f"unknown design(s) {bad}; known: {sorted(known)}")
        designs = [d for d in designs if d.name in set(only)]
    return designs


def _run_designs(designs, wl, fast, lib, include_rtl, jobs, progress) -> dict:
    """name -> evaluation result of every design, in ``jobs`` worker processes."""
    from tqdm import tqdm

    from .evaluate import evaluate_design, save_workload
    scratch = Path(tempfile.mkdtemp(prefix="report-", dir=cache_dir()))
    try:
        wl_path = save_workload(wl, scratch / "workload.npz")
        if find_tool("yosys"):
            warn_first_yosys()
            # one Yosys call first, alone: it pays the WebAssembly compile once for everyone
            from .synth import synth
            from .designs import cost_designs
            v, top = cost_designs((4,), include_engine=False)[0].verilog()
            try:
                synth(v, top, "cmos")
            except ToolError as e:     # the designs' own runs report it, per design
                warnings.warn(f"yosys warm-up run failed: {str(e).splitlines()[0]}")
        results = {}
        # longest first, so that no worker is left alone with the engine at the end
        order = sorted(designs, key=_cost_hint, reverse=True)
        args = [(d.name, fast, str(lib) if lib else None, str(wl_path), include_rtl)
                for d in order]
        by_name = {d.name: d for d in designs}
        bar = tqdm(total=len(args), desc="dqt report", unit="design", disable=not progress)
        if jobs == 1:
            for a in args:
                results[a[0]] = evaluate_design(*a)
                bar.update()
        else:
            with ProcessPoolExecutor(max_workers=jobs) as ex:
                futs = {ex.submit(evaluate_design, *a): a[0] for a in args}
                for f in as_completed(futs):
                    results[futs[f]] = _result_or_failed(f, by_name[futs[f]])
                    bar.set_postfix_str(futs[f][:28])
                    bar.update()
        bar.close()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return results


def _transition(rows, net, artifact) -> dict:
    """The transition-cost table, with the measured per-element figures of the rows."""
    from .transition import (artifact_layers, resnet18_cifar_layers,
                             resnet50_imagenet_layers, transition_table)
    by = {r["name"]: r for r in rows}
    measured = {}
    for key, name in (("nested_floor_runtime", "nested_shift_floor_n8"),
                      ("nested_round", "nested_shift_round_n8"),
                      ("fp32_dequant_requant", "fp32_requant_n8")):
        e = (by.get(name) or {}).get("energy_pj_per_mac") or {}
        vals = [v for v in e.values() if v is not None]
        measured[key] = sum(vals) / len(vals) if vals else None
    nets = {"resnet18_cifar10": resnet18_cifar_layers(),
            "resnet50_imagenet": resnet50_imagenet_layers()}
    if net is not None:
        nets = {"digits": artifact_layers(net), **nets}
    trans = transition_table(nets, measured, n=8)
    trans["measured_note"] = ("measured per element: nested shifter and fp32 requantizer "
                              "gate netlists, activity from the workload, averaged over "
                              "precisions")
    return trans


def _experiments(directory) -> tuple[list, dict]:
    """The ``dqt experiment`` results in ``directory`` (None: none) and the plots to copy
    into the report (report file name -> source path)."""
    exps, sources = [], {}
    if directory is None:
        return exps, sources
    from .experiments import load_experiments
    for e in load_experiments(directory):
        if e["png"]:
            sources[f"experiment_{e['name']}.png"] = e["png"]
            e = dict(e, png=f"experiment_{e['name']}.png")
        exps.append(e)
    return exps, sources


def _input_notes(net, lib) -> list[str]:
    """Notes on what the report runs without: an artifact, the liberty, a tool."""
    notes = []
    if net is None:
        notes.append("no artifact given: workload vectors come from a stand-in network with "
                     "random weights; accuracy figures are not meaningful")
    notes += missing_hints(Liberty(lib, "") if lib else None, find_tool("sta") is not None)
    for t in ("yosys", "nextpnr-ice40", "nextpnr-ecp5"):
        if find_tool(t) is None:
            notes.append(f"{t} not found: the fields that need it are null")
    return notes


def build_report(out_dir, artifact=None, liberty=None, fast: bool = False, jobs: int = 2,
                 include_rtl: bool = True, progress: bool = True, designs=None,
                 sim_result=None, experiments=None, engine_images: int = 2) -> dict:
    """Build the whole report into ``out_dir``; return the summary dict.

    Parameters
    ----------
    out_dir : path
        Output directory (replaced atomically).
    artifact : path or None
        Integer network artifact (workload vectors, accuracy vs BitOPs); None uses a
        stand-in network with random weights and says so.
    liberty : path or None
        Liberty file (``.lib`` or ``.lib.gz``); None looks for one where a user has it
        (:func:`reports.liberty.find_liberty`); none found: sky130 area, STA and
        activity-based energy are null and the notes say how to install the PDK.
    fast : bool
        n = 8 designs only, no Xilinx runs, a shorter workload.
    jobs : int
        Worker processes for the per-design runs.
    designs : list of str or None
        Restrict the run to these design names (default: the whole list).
    sim_result : path or None
        ``dqt sim --json`` result of the same artifact: the engine's cycles per image.
    experiments : path or None
        A ``dqt experiment`` output directory: its results become the report's
        "Experiments" section (:mod:`reports.experiments`).
    engine_images : int
        Held-out images per mode that the engine's gate netlist runs for its energy
        (:mod:`reports.engine_energy`; needs an artifact, the engine in the design list, a
        liberty, OpenSTA and Verilator); 0 skips it.
    """
    from golden.network import load_network
    from .render import write_outputs
    from .workload import build_workload

    jobs, engine_images = int(jobs), int(engine_images)
    if jobs < 1:
        raise DQTValueError(f"jobs={jobs} must be >= 1")
    if not 0 <= engine_images <= 360:
        raise DQTValueError(f"engine_images={engine_images} is outside 0..360")
    lib = resolve_liberty(liberty)
    net = load_network(artifact) if artifact else None
    exps, sources = _experiments(experiments)
    notes = _input_notes(net, lib)
    designs = _select(designs, fast, include_rtl)
    if sim_result is not None and not Path(sim_result).is_file():
        raise DQTValueError(f"sim result {sim_result} is not a file")
    t0 = time.time()
    wl = build_workload(net, cycles=64 if fast else 128, lanes=64 if fast else 128,
                        seed=WORKLOAD_SEED)
    results = _run_designs(designs, wl, fast, lib, include_rtl, jobs, progress)
    rows = [results[d.name] for d in designs]
    notes += _dropped(rows)

    energy = fusion = None
    if engine_images and net is not None and any(r["family"] == "engine" for r in rows):
        energy = _engine_energy(artifact, lib, engine_images, progress, notes)
        if energy is not None:
            fusion = _engine_energy(artifact, lib, engine_images, progress, notes,
                                    FUSION_ENERGY_ENGINE)
    trans = _transition(rows, net, artifact)
    summary = {
        "designs": rows,
        "transition": trans,
        "accuracy": wl.accuracy if net is not None else {},
        "headline": _headline(rows, energy, fusion),
        "engine": engine_summary(rows, sim_result, fusion or energy,
                                 nested=energy if fusion else None),
        "notes": notes,
        "provenance": _provenance(lib, artifact, wl, fast, jobs),
    }
    if exps:
        summary["experiments"] = exps
    summary["provenance"]["elapsed_s"] = round(time.time() - t0, 1)
    write_outputs(out_dir, summary, sources)
    return summary
