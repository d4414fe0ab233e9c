"""``dqt flow``: train -> export -> golden evaluation -> Verilog -> RTL check -> report.

Every stage records a content hash of its inputs (the files it reads, its settings and the
source code of the packages it runs) in ``DIR/flow_state.json``; a stage whose hash is unchanged
and whose outputs still exist is skipped. The last lines printed are a short summary and, as the
very last line, one JSON object (also written to ``DIR/summary.json``).
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path

__all__ = ["register", "run_flow", "PRESETS", "stage_sources", "stage_digests"]

ROOT = Path(__file__).resolve().parents[1]

#: Reduced settings for ``--fast`` (the CI smoke test) and the full default.
PRESETS = {
    # make demo: the default training recipe, every held-out image through the RTL engine in
    # dynamic mode (the controller's per-input precisions), the n = 8 operator designs.
    "full": {"train": {}, "sim_images": 360, "sim_modes": ["dynamic"], "report_fast": True,
             "report_rtl": True, "report_designs": None},
    # dqt flow --fast (CI smoke test): a short training run, a few images in every mode, the
    # headline comparison: the int MAC against the nested MAC in both shift modes.
    "fast": {"train": {"fp32_epochs": 4, "qat_epochs": 3, "batch_size": 128}, "sim_images": 6,
             "sim_modes": None, "report_fast": True, "report_rtl": False,
             "report_designs": ["int_mac_n8", "nested_mac_floor_right_n8",
                                "nested_mac_round_right_n8"]},
}


def _hash_files(paths) -> str:
    h = hashlib.sha256()
    for p in sorted(Path(p) for p in paths):
        if p.is_file():
            h.update(str(p.relative_to(ROOT) if p.is_relative_to(ROOT) else p).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


#: The project's packages: imports of these are followed when a stage's sources are listed.
PACKAGES = ("golden", "rtl", "sim", "reports", "training", "dqt")

#: Entry modules of each stage (what the stage imports, directly or lazily, is followed
#: from here; the cocotb module the simulation loads by name is listed as well).
STAGE_ENTRIES = {
    "train": ("training.train",),
    "eval": ("training.evaluate",),
    "rtl": ("rtl.generate",),
    "sim": ("sim.network", "sim.network_tb"),
    "report": ("reports.build",),
}


def _module_file(name: str, root: Path) -> Path | None:
    p = root.joinpath(*name.split("."))
    for f in (p / "__init__.py", p.with_suffix(".py")):
        if f.is_file():
            return f
    return None


def _imported(path: Path, name: str, root: Path) -> set[str]:
    """Project modules ``path`` (module ``name``) imports anywhere, lazy imports included."""
    import ast
    pkg = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = pkg.split(".")[:len(pkg.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            # modules named in data and imported by importlib ("rtl.nested_mac:NestedMac",
            # "golden.ops.nested_mac"): the operator catalog
            ref = node.value.split(":")[0]
            found |= {ref, ref.rpartition(".")[0]}
    return {m for m in found if m.split(".")[0] in PACKAGES and _module_file(m, root)}


def stage_sources(entries, root: Path = ROOT) -> list[Path]:
    """Every project source file the entry modules import, transitively (their packages'
    ``__init__`` files included)."""
    todo, seen = list(entries), set()
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        parents = [".".join(m.split(".")[:i]) for i in range(1, len(m.split(".")))]
        todo += [p for p in parents if p not in seen]
        todo += sorted(_imported(_module_file(m, root), m, root) - seen)
    return sorted(_module_file(m, root) for m in seen)


def stage_digests(root: Path = ROOT) -> dict[str, str]:
    """Stage -> digest of the sources it imports (part of each stage's cache key)."""
    return {stage: _hash_files(stage_sources(e, root)) for stage, e in STAGE_ENTRIES.items()}


def _dir_digest(d) -> str:
    d = Path(d)
    return _hash_files([p for p in d.rglob("*") if p.is_file()]) if d.is_dir() else "missing"


def _key(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


class _State:
    def __init__(self, out: Path):
        self.path = out / "flow_state.json"
        self.data = json.loads(self.path.read_text()) if self.path.is_file() else {}

    def fresh(self, stage, key, outputs) -> dict | None:
        s = self.data.get(stage)
        if s and s.get("key") == key and all(Path(o).exists() for o in outputs):
            return s["result"]
        return None

    def store(self, stage, key, result):
        from golden.atomic import atomic_write_text
        self.data[stage] = {"key": key, "result": result}
        atomic_write_text(self.path, json.dumps(self.data, indent=1, sort_keys=True, default=str))


def _stage(state, name, key, outputs, fn, log):
    cached = state.fresh(name, key, outputs)
    if cached is not None:
        log(f"[flow] {name}: inputs unchanged, skipped")
        return cached
    log(f"[flow] {name}: running")
    t0 = time.perf_counter()
    result = fn()
    result = json.loads(json.dumps(result, default=str))
    result["stage_seconds"] = round(time.perf_counter() - t0, 2)
    state.store(name, key, result)
    log(f"[flow] {name}: done in {result['stage_seconds']:.1f} s")
    return result


def run_flow(out_dir, fast: bool = False, liberty=None, simulator: str = "verilator", log=print) -> dict:
    """Run every stage into ``out_dir``; returns the summary dict."""
    from golden.formats import DQTValueError

    from reports.liberty import find_liberty, missing_hints
    from reports.tools import find_tool
    from sim import runner

    # every input is checked before the first stage runs
    found = find_liberty(liberty)
    lib = str(found.path) if found else None
    runner.check_simulator(simulator)
    reason = runner.missing_reason(simulator)
    if reason:
        raise DQTValueError(f"--simulator {simulator}: {reason}")
    missing = missing_hints(found, find_tool("sta") is not None)
    preset = PRESETS["fast" if fast else "full"]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = _State(out)
    t_start = time.perf_counter()
    src = stage_digests()
    art = out / "artifact"
    vdir = out / "verilog"
    rdir = out / "report"

    def do_train():
        from training.train import train_digits
        return train_digits(art, progress=True, **preset["train"])

    train = _stage(state, "train", _key(preset["train"], src["train"]),
                   [art / "manifest.json"], do_train, log)
    art_digest = _dir_digest(art)

    def do_eval():
        from training.evaluate import evaluate
        r = evaluate(art)
        (out / "eval.json").write_text(json.dumps(r, indent=1))
        return r

    ev = _stage(state, "eval", _key(art_digest, src["eval"]), [out / "eval.json"], do_eval, log)

    def do_rtl():
        from rtl.generate import generate
        m = generate(vdir, progress=True)
        return {"files": len(m.get("modules", m.get("files", []))) if isinstance(m, dict) else None}

    rtl = _stage(state, "rtl", _key(src["rtl"]), [vdir / "manifest.json"], do_rtl, log)
    v_digest = _dir_digest(vdir)

    def do_sim():
        from sim.network import verify_network
        r = verify_network(art, images=preset["sim_images"], simulator=simulator, modes=preset["sim_modes"])
        (out / "sim.json").write_text(json.dumps(r, indent=1))
        return r

    sim = _stage(state, "sim", _key(art_digest, v_digest, preset["sim_images"], preset["sim_modes"], simulator,
                                    src["sim"]),
                 [out / "sim.json"], do_sim, log)
    if sim.get("mismatches", 1) != 0:
        raise DQTValueError(f"RTL check found {sim.get('mismatches')} mismatches against the golden model; "
                            f"see {out / 'sim.json'}")

    def do_report():
        from reports.build import build_report
        return build_report(rdir, artifact=art, liberty=lib, fast=preset["report_fast"],
                            include_rtl=preset["report_rtl"], designs=preset["report_designs"],
                            sim_result=out / "sim.json")

    lib_digest = _hash_files([lib]) if lib and Path(lib).is_file() else str(lib)
    rep = _stage(state, "report", _key(art_digest, v_digest, lib_digest, sim.get("engine_cycles"),
                                       preset["report_fast"], preset["report_rtl"],
                                       preset["report_designs"], src["report"]),
                 [rdir / "index.html", rdir / "summary.json"], do_report, log)

    summary = {
        "out": str(out),
        "preset": "fast" if fast else "full",
        "fp32_accuracy": ev.get("fp32_accuracy"),
        "static_accuracy": ev.get("static_accuracy"),
        "dynamic_accuracy": ev.get("dynamic_accuracy"),
        "dynamic_avg_bits": ev.get("dynamic_avg_bits"),
        "dynamic_bitops_ratio": ev.get("dynamic_bitops_ratio"),
        "integer_vs_torch_identical": ev.get("integer_vs_torch_identical"),
        "rtl_images": sim.get("images"),
        "rtl_elements_checked": sim.get("rtl_elements", sim.get("elements_checked")),
        "host_elements_checked": sim.get("host_elements"),
        "rtl_mismatches": sim.get("mismatches"),
        "rtl_verified_macs_per_s": sim.get("verified_macs_per_s"),
        "report": str(rdir / "index.html"),
        "headline": rep.get("headline"),
        "engine": rep.get("engine"),
        "seconds": round(time.perf_counter() - t_start, 1),
        "liberty": lib,
        "missing": missing,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    _print_summary(summary, log)
    return summary


def _print_summary(s, log):
    log("")
    log("DQT flow summary")
    log(f"  fp32 accuracy            {s['fp32_accuracy']}")
    for b, a in (s["static_accuracy"] or {}).items():
        log(f"  static {b}-bit accuracy    {a:.4f}")
    if s["dynamic_accuracy"] is not None:
        log(f"  dynamic accuracy         {s['dynamic_accuracy']:.4f} at {s['dynamic_avg_bits']:.2f} average bits "
            f"(BitOPs {s['dynamic_bitops_ratio']:.3f} of all-8-bit)")
    log(f"  RTL vs golden            {s['rtl_mismatches']} mismatches over {s['rtl_elements_checked']} "
        f"RTL-verified elements (+{s.get('host_elements_checked')} host-step elements, "
        f"{s['rtl_images']} images)")
    rows = s.get("headline") or []
    base = next((r for r in rows if str(r.get("name", "")).startswith("int_mac")), None)

    def ratio(a, b):
        return f"{a / b:.2f}x" if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b else "n/a"

    if rows:
        log("  design                          sky130 um2  iCE40 LUT   pJ/op @8b   @4b    @2b   (vs int8 MAC: area, energy @4b)")
    for r in rows:
        def f(v, fmt):
            width = int(fmt.split(".")[0])   # "n/a" right-aligned in the column's width
            return format(v, fmt) if isinstance(v, (int, float)) else "n/a".rjust(width)
        extra = f"   {ratio(r.get('sky130_um2'), base.get('sky130_um2'))}, {ratio(r.get('pj_4b'), base.get('pj_4b'))}" \
            if base is not None else ""
        log(f"  {str(r.get('name')):30s} {f(r.get('sky130_um2'), '10.0f')} {f(r.get('ice40_luts'), '10.0f')} "
            f"{f(r.get('pj_8b'), '11.2f')} {f(r.get('pj_4b'), '6.2f')} {f(r.get('pj_2b'), '6.2f')}{extra}")
    e = s.get("engine") or {}
    pj = e.get("energy_pj_per_mac") or {}
    nested = e.get("nested") or {}
    npj = nested.get("energy_pj_per_mac") or {}
    if any(v is not None for v in pj.values()):
        scal = ((e.get("measured_on") or {}).get("params") or {}).get("fusion")
        log(f"  engine on the network    gate level, {e.get('images_sampled')} images per mode, "
            f"{e.get('mismatches')} mismatches; pJ/MAC (vs 8-bit), cycles/image:")
        if nested:
            log(f"    {'':8s}                 {'scalable (fusion)' if scal else 'engine':26s}"
                f"nested, same 8-bit MACs/cycle")
        for m, v in pj.items():
            if v is not None:
                line = (f"    mode {m:8s}             {v:8.2f} ({ratio(v, pj.get('8'))})  "
                        f"{str((e.get('cycles_per_image') or {}).get(m)):>8s}")
                if npj.get(m) is not None:
                    line += (f"   {npj[m]:8.2f} ({ratio(npj[m], npj.get('8'))})  "
                             f"{(nested.get('cycles_per_image') or {}).get(m)}")
                log(line)
        vs = e.get("vs_nested") or {}
        if vs.get("sky130_um2") is not None:
            log(f"    logic area: scalable {ratio(vs['sky130_um2'], 1)} of nested "
                f"(sky130 um2 {(e.get('measured_on') or {}).get('sky130_um2'):.0f} vs "
                f"{nested.get('sky130_um2'):.0f})")
    log(f"  report                   {s['report']}")
    for line in s.get("missing") or []:
        log(f"  missing: {line}")
    log(f"  wall time                {s['seconds']} s")
    log(json.dumps(s, default=str))


def _cmd(args):
    run_flow(args.out, fast=args.fast, liberty=args.liberty, simulator=args.simulator,
             log=lambda m: print(m, flush=True))
    return 0


def register(sub):
    p = sub.add_parser("flow", help="run every stage end to end on the bundled digits data")
    p.add_argument("--out", required=True, help="output directory (stages with unchanged inputs are skipped)")
    p.add_argument("--fast", action="store_true", help="reduced preset: fewer epochs, images and designs")
    p.add_argument("--liberty", default=None, help="Liberty file for sky130 area/timing/power "
                   "(default: $DQT_LIBERTY, else the sky130 PDK under $PDK_ROOT (ciel/volare), "
                   "else ../shared/pdk/sky130_fd_sc_hd__tt_025C_1v80.lib.gz if present)")
    p.add_argument("--simulator", choices=["verilator", "icarus"], default="verilator")
    p.set_defaults(func=_cmd)
