"""Energy of the layer engine from its own gate-level activity (reports.engine_energy,
sim.gate, reports.gate_models)."""
from __future__ import annotations

import math

import pytest

from golden.formats import DQTValueError
from reports.gate_models import SRAM_MODEL, cell_models, used_cells
from reports.gatesim import LibertyCells
from sim.gate import _covering, _watch_name, check_macros, toggle_counts

from .conftest import need

NETLIST = """module top(a, y, clk);
  input [1:0] a;
  input clk;
  output y;
  wire \\_0_[0] ;
  wire n5_;
  wire \\$sig$3[1] ;
  sky130_fd_sc_hd__nand2_1 n1_ (.A(a[0]), .B(\\_0_[0] ), .Y(n5_));
  sky130_fd_sc_hd__dfxtp_1 n2_ (.CLK(clk), .D(n5_), .Q(\\$sig$3[1] ));
endmodule
"""


def test_covering_aliases_every_watched_net_and_nothing_else():
    v = _covering(NETLIST, {"\\_0_[0]", "n5_", "a[1]", "\\$sig$3[1]"})
    assert v.startswith("/* verilator coverage_off */")
    body = v[v.index("coverage_on"):v.index("coverage_off */\nendmodule")]
    assert f"wire {_watch_name('_0_[0]')} = \\_0_[0] ;" in body
    assert f"wire {_watch_name('n5_')} = n5_;" in body
    assert f"wire {_watch_name('a[1]')} = a[1];" in body          # bit of a vector port
    assert f"wire {_watch_name('$sig$3[1]')} = \\$sig$3[1] ;" in body
    assert body.count("wire dqtw_") == 4
    with pytest.raises(DQTValueError, match="'nowhere' is not declared"):
        _covering(NETLIST, {"nowhere"})


def test_toggle_counts_reads_the_engine_points_of_a_coverage_file(tmp_path):
    def point(h, o, n):
        kv = {"f": "x.v", "l": "3", "t": "toggle", "page": "v_toggle/top", "o": o, "h": h}
        return "C '" + "".join(f"\x01{k}\x02{v}" for k, v in kv.items())[1:] + f"' {n}\n"
    f = tmp_path / "cov.dat"
    f.write_text("# SystemC::Coverage-3\n" +
                 point("TOP.dqt_engine_batch_top.engine", "dqtw_1:0->1", 5) +
                 point("TOP.dqt_engine_batch_top.engine", "dqtw_1:1->0", 4) +
                 point("TOP.dqt_engine_batch_top.engine", "a___05Fb__05b3__05d:0->1", 2) +
                 point("TOP.dqt_engine_batch_top", "rst_r:0->1", 7), encoding="latin-1")
    assert toggle_counts(f) == {"dqtw_1": 9, "a__b[3]": 2}


def test_cell_models_come_from_the_liberty_functions(liberty):
    from reports.tools import prepare_liberty
    lib = LibertyCells(prepare_liberty(liberty).read_text())
    assert used_cells(NETLIST, lib) == ["sky130_fd_sc_hd__dfxtp_1", "sky130_fd_sc_hd__nand2_1"]
    v = cell_models(NETLIST, lib)
    assert "module sky130_fd_sc_hd__nand2_1(input A, input B, output Y);" in v
    assert "assign Y = ((((1'b1 ^ A))) | (((1'b1 ^ B))));" in v   # liberty: (!A) | (!B)
    assert "always @(posedge CLK) IQ <= D;" in v
    assert v.index("coverage_off") < v.index("module ")


def test_macros_with_other_port_settings_are_refused():
    blif = (".model m\n.subckt DQT_SRAM RD_DATA[0]=x\n.cname mem\n.param RD_PORTS "
            "00000000000000000000000000000010\n.end\n")
    with pytest.raises(DQTValueError, match="RD_PORTS=2"):
        check_macros(blif)
    assert check_macros(blif.replace("0010\n", "0001\n")) == 1
    assert "module DQT_SRAM" in SRAM_MODEL


@pytest.mark.slow
@need("yosys", "sta")
def test_engine_energy_gate_netlist_is_bit_exact_and_costed(liberty, tmp_path):
    """The engine's sky130 netlist runs a calibrated random network (every element checked
    against the golden model) and its toggles give the energy per mode."""
    from golden.testing import random_network
    from reports.engine_energy import engine_energy
    from sim import runner
    if runner.missing_reason("verilator"):
        pytest.skip(runner.missing_reason("verilator"))
    random_network(tmp_path / "net", seed=0)
    r = engine_energy(tmp_path / "net", liberty, images=1, modes=("2", "8", "dynamic"),
                      engine={"lanes": 2, "pes": 2})
    assert r["mismatches"] == 0 and r["elements_checked"] > 1000
    assert set(r["energy_pj_per_mac"]) == {"2", "8", "dynamic"}
    for m, pj in r["energy_pj_per_mac"].items():
        assert math.isfinite(pj) and pj > 0
        # energy per image and per MAC are the same measurement
        assert r["energy_uj_per_image"][m] * 1e6 == pytest.approx(pj * r["macs_per_image"][m])
    # fewer bits toggle less: the 2-bit run of the same images costs less than the 8-bit one
    assert r["power_mw"]["2"] < r["power_mw"]["8"]
    assert r["cycles_per_image"]["2"] > 0 and r["memory_bits"] > 0


@pytest.mark.slow
@need("yosys", "sta")
def test_fusion_engine_gate_netlist_is_bit_exact_and_scales(liberty, tmp_path):
    """The precision-scalable engine's sky130 netlist runs a random network bit-exactly in
    every static mode and dynamic mode; at 2 and 4 bits it takes fewer cycles per image and
    less energy per MAC than at 8 (its cycles follow the host convention's beat counts)."""
    from golden.testing import random_network
    from reports.engine_energy import engine_energy
    from sim import runner
    if runner.missing_reason("verilator"):
        pytest.skip(runner.missing_reason("verilator"))
    random_network(tmp_path / "net", seed=1)
    r = engine_energy(tmp_path / "net", liberty, images=1, modes=("2", "4", "8", "dynamic"),
                      engine={"lanes": 1, "pes": 2, "fusion": True})
    assert r["mismatches"] == 0 and r["elements_checked"] > 1000
    cyc, pj = r["cycles_per_image"], r["energy_pj_per_mac"]
    assert cyc["8"] > 2 * cyc["4"] > 2 * cyc["2"], cyc
    assert pj["8"] > pj["4"] > pj["2"], pj
    assert r["macs_per_image"]["2"] == r["macs_per_image"]["8"]


def test_macro_init_is_dropped_only_when_empty():
    from sim.gate import _drop_init
    v = "  DQT_SRAM #(\n    .ABITS(32'b11),\n    .INIT(8'b0000xx00),\n    .MEMID(\"m\"),\n"
    assert ".INIT" not in _drop_init(v) and ".MEMID" in _drop_init(v)
    with pytest.raises(DQTValueError, match="initial contents"):
        _drop_init(v.replace("0000xx00", "00000100"))
