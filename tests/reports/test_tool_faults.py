"""A tool killed by a signal: retried once, then reported with the signal's name and the log
tail; the design is marked failed and the rest of its evaluation (and the report) goes on."""
from __future__ import annotations

import signal
import sys

import pytest

from reports.tools import ToolError, run_tool


def _fake_tool(tmp_path, kills: int):
    """A tool that prints a line, then kills itself with SIGBUS on its first ``kills`` runs."""
    counter = tmp_path / "runs"
    exe = tmp_path / "faketool"
    exe.write_text(f"""#!{sys.executable}
import os, signal, pathlib
c = pathlib.Path({str(counter)!r})
n = int(c.read_text()) if c.exists() else 0
c.write_text(str(n + 1))
print("mapping cells, run", n + 1, flush=True)
if n < {kills}:
    os.kill(os.getpid(), signal.SIGBUS)
print("done")
""")
    exe.chmod(0o755)
    return exe, counter


def test_killed_once_is_retried(tmp_path):
    exe, counter = _fake_tool(tmp_path, kills=1)
    out = run_tool([str(exe)], tmp_path)
    assert "done" in out and counter.read_text() == "2"


def test_killed_twice_names_the_signal_and_the_log_tail(tmp_path):
    exe, counter = _fake_tool(tmp_path, kills=2)
    with pytest.raises(ToolError) as e:
        run_tool([str(exe)], tmp_path)
    msg = str(e.value)
    assert counter.read_text() == "2"
    assert "SIGBUS" in msg and "mapping cells, run 2" in msg


def test_design_is_marked_failed_not_the_report(tmp_path, monkeypatch):
    import reports.evaluate as ev
    import reports.synth as synth
    exe, _ = _fake_tool(tmp_path, kills=99)
    monkeypatch.setattr(synth, "find_tool", lambda t: str(exe) if t == "yosys" else None)
    monkeypatch.setattr(ev, "find_tool", lambda t: str(exe) if t == "yosys" else None)
    monkeypatch.setenv("DQT_CACHE", str(tmp_path / "cache"))
    res = ev.evaluate_design("int_mac_n8", fast=True, include_rtl=False, fpga=False)
    assert res["transistors"] is None
    assert [f["step"] for f in res["failed"]] == ["synthesis"]
    assert "SIGBUS" in res["failed"][0]["error"] and "mapping cells" in res["failed"][0]["error"]
    assert any("SIGBUS" in n for n in res["notes"])
