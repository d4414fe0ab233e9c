"""Inputs are validated before the first expensive step, and the liberty a user installed
is found where PDK installers put it, with the command that adds what is missing."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from dqt.cli import main

LIB = "sky130_fd_sc_hd__tt_025C_1v80.lib"
IN_PDK = Path("sky130A", "libs.ref", "sky130_fd_sc_hd", "lib", LIB)


@pytest.fixture
def no_training(monkeypatch):
    """Any call of the trainer fails the test: validation must come first."""
    import training.train

    def boom(*a, **k):
        raise AssertionError("training started before the inputs were validated")
    monkeypatch.setattr(training.train, "train_digits", boom)
    monkeypatch.setattr(training.train, "train", boom)


def _err(capsys):
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


def test_train_checks_B_before_training(tmp_path, capsys, no_training):
    # the first layer's default width (8) is not in B: both flags are named
    assert main(["train", "--out", str(tmp_path / "a"), "--B", "3,5"]) == 2
    err = _err(capsys)
    assert "--B" in err and "--first-bits" in err
    # a first-layer width in B, but B without the master width n
    assert main(["train", "--out", str(tmp_path / "a"), "--B", "3,5", "--first-bits", "3"]) == 2
    err = _err(capsys)
    assert "--B 3,5" in err and "n=8" in err
    assert not (tmp_path / "a").exists()


def test_flow_checks_liberty_before_training(tmp_path, capsys, no_training):
    out = tmp_path / "flow"
    assert main(["flow", "--out", str(out), "--liberty", str(tmp_path / "missing.lib")]) == 2
    assert "missing.lib" in _err(capsys)
    assert not out.exists()


def test_range_with_an_open_end_prints_inf(tmp_path, capsys):
    from golden.testing import random_network
    net = random_network(tmp_path / "a", seed=2, calib=4, controller=False)
    m = json.loads((net.path / "manifest.json").read_text())
    m["input"]["scale"] = 0.0
    (net.path / "manifest.json").write_text(json.dumps(m))
    assert main(["check", str(net.path)]) == 2
    err = _err(capsys)
    assert "[1e-30, inf)" in err and "None" not in err


def _fake_lib(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("library (sky130_fd_sc_hd__tt_025C_1v80) { }\n")
    return path


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for k in ("DQT_LIBERTY", "DQT_NO_LIBERTY", "PDK_ROOT"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return monkeypatch


@pytest.mark.parametrize("layout", ["enabled", "ciel", "volare"])
def test_report_finds_the_liberty_under_PDK_ROOT(tmp_path, clean_env, layout):
    from reports.tools import resolve_liberty     # what build_report (dqt report) calls
    root = tmp_path / "pdk"
    sub = {"enabled": Path(), "ciel": Path("ciel/sky130/versions/0fe599b2"),
           "volare": Path("volare/sky130/versions/bdc9412b")}[layout]
    lib = _fake_lib(root / sub / IN_PDK)
    clean_env.setenv("PDK_ROOT", str(root))
    assert resolve_liberty(None) == lib
    # DQT_LIBERTY and --liberty come first
    other = _fake_lib(tmp_path / "other.lib")
    clean_env.setenv("DQT_LIBERTY", str(other))
    assert resolve_liberty(None) == other
    assert resolve_liberty(str(lib)) == lib


def test_default_pdk_root_is_ciels(tmp_path, clean_env):
    from reports.liberty import find_liberty
    lib = _fake_lib(tmp_path / "home" / ".ciel" / IN_PDK)
    found = find_liberty()
    assert found.path == lib and found.source == "~/.ciel"


def test_missing_pieces_name_the_install_commands(clean_env):
    from dqt.flow import _print_summary
    from reports.liberty import find_liberty, missing_hints
    clean_env.setenv("DQT_NO_LIBERTY", "1")
    assert find_liberty() is None
    hints = missing_hints(find_liberty(), sta_found=False)
    assert any("ciel enable --pdk-family=sky130" in h for h in hints)
    assert any("apt-get install opensta" in h for h in hints)
    lines = []
    s = {"fp32_accuracy": 0.9, "static_accuracy": {}, "dynamic_accuracy": None,
         "rtl_mismatches": 0, "rtl_elements_checked": 10, "host_elements_checked": 2,
         "rtl_images": 1, "headline": [], "report": "r/index.html", "seconds": 1.0,
         "missing": hints}
    _print_summary(s, lines.append)
    text = "\n".join(lines)
    assert "ciel enable --pdk-family=sky130" in text and "apt-get install opensta" in text


def test_summary_table_columns_line_up_when_figures_are_missing():
    """Without a liberty or OpenSTA the figures are "n/a": they keep their columns' widths."""
    from dqt.flow import _print_summary
    full = {"name": "a", "sky130_um2": 123.0, "ice40_luts": 49, "pj_8b": 0.41, "pj_4b": 0.26,
            "pj_2b": 0.22}
    empty = {"name": "b", "sky130_um2": None, "ice40_luts": 49, "pj_8b": None, "pj_4b": None,
             "pj_2b": None}
    lines = []
    _print_summary({"fp32_accuracy": 0.9, "static_accuracy": {}, "dynamic_accuracy": None,
                    "rtl_mismatches": 0, "rtl_elements_checked": 1, "rtl_images": 1,
                    "headline": [full, empty], "report": "r", "seconds": 1.0}, lines.append)
    a = next(ln for ln in lines if ln.startswith("  a "))
    b = next(ln for ln in lines if ln.startswith("  b "))
    assert len(a) == len(b), (a, b)
    assert b.split() == ["b", "n/a", "49", "n/a", "n/a", "n/a"]


def test_summary_prints_the_engine_energy_per_mode():
    """The flow summary lists the engine's measured pJ/MAC per mode with its ratio to 8 bits."""
    from dqt.flow import _print_summary
    lines = []
    eng = {"images_sampled": 2, "mismatches": 0, "cycles_per_image": {"8": 900, "2": 900},
           "energy_pj_per_mac": {"2": 3.0, "8": 12.0, "dynamic": None}}
    _print_summary({"fp32_accuracy": 0.9, "static_accuracy": {}, "dynamic_accuracy": None,
                    "rtl_mismatches": 0, "rtl_elements_checked": 1, "rtl_images": 1,
                    "headline": [], "engine": eng, "report": "r", "seconds": 1.0}, lines.append)
    two = next(ln for ln in lines if ln.strip().startswith("mode 2 "))
    assert "3.00 (0.25x)" in two and two.split()[-1] == "900"
    assert not any(ln.strip().startswith("mode dynamic") for ln in lines)


def test_summary_prints_the_scalable_engine_beside_the_nested_one():
    """With the nested engine measured beside the scalable one, each mode's line carries
    both engines' pJ/MAC (with its ratio to its own 8 bits) and cycles, and the area ratio."""
    from dqt.flow import _print_summary
    lines = []
    eng = {"images_sampled": 2, "mismatches": 0, "cycles_per_image": {"8": 1600, "2": 100},
           "energy_pj_per_mac": {"2": 10.0, "8": 100.0},
           "measured_on": {"params": {"fusion": True}, "sky130_um2": 3000.0},
           "nested": {"cycles_per_image": {"8": 1600, "2": 1600},
                      "energy_pj_per_mac": {"2": 60.0, "8": 80.0}, "sky130_um2": 1000.0},
           "vs_nested": {"sky130_um2": 3.0}}
    _print_summary({"fp32_accuracy": 0.9, "static_accuracy": {}, "dynamic_accuracy": None,
                    "rtl_mismatches": 0, "rtl_elements_checked": 1, "rtl_images": 1,
                    "headline": [], "engine": eng, "report": "r", "seconds": 1.0}, lines.append)
    two = next(ln for ln in lines if ln.strip().startswith("mode 2 "))
    assert two.split()[2:] == ["10.00", "(0.10x)", "100", "60.00", "(0.75x)", "1600"], two
    assert any("scalable (fusion)" in ln for ln in lines)
    assert any("logic area: scalable 3.00x of nested" in ln for ln in lines)


def test_the_command_line_starts_without_torch():
    """Building the parser (``dqt --help``, every bad-argument exit) imports no torch: a stage
    imports its heavy libraries when its command runs (torch alone takes seconds)."""
    import subprocess
    import sys
    code = ("import sys; from dqt.cli import build_parser; build_parser(); "
            "print(sorted(m for m in ('torch', 'onnx', 'dask', 'cocotb', 'matplotlib') "
            "if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "[]", r.stdout
