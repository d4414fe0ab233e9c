"""Area grows with width for the multiplier-based designs (Yosys transistors and sky130)."""
import pytest

from reports.designs import cost_designs
from reports.synth import parse_stat_cells, ports_of, synth

from .conftest import need

pytestmark = [pytest.mark.tools]


@need("yosys")
@pytest.mark.parametrize("family", ["int_mac", "nested_mac"])
def test_area_grows_with_width(family, liberty):
    ds = [d for d in cost_designs((4, 8, 16), include_engine=False) if d.family == family
          and d.params.get("mode", "floor") == "floor" and d.params.get("variant", "right") == "right"]
    assert [d.n for d in ds] == [4, 8, 16]
    tr, um2 = [], []
    for d in ds:
        v, top = d.verilog()
        tr.append(synth(v, top, "cmos")["transistors"])
        if family == "int_mac":      # one family on the liberty keeps the test quick
            um2.append(synth(v, top, "sky130", liberty=liberty)["area_um2"])
    assert tr[0] < tr[1] < tr[2], tr
    # a multiplier grows faster than linearly: doubling n more than doubles the size
    assert tr[2] > 2 * tr[1]
    if um2:
        assert um2[0] < um2[1] < um2[2], um2
        assert um2[2] > 2 * um2[1]


def test_stat_and_port_parsers():
    stat = """
   Number of cells:                 12
     $_AND_                          5
     SB_LUT4                         7
"""
    assert parse_stat_cells(stat) == {"$_AND_": 5, "SB_LUT4": 7}
    new = """
       12 cells
        5   $_AND_
        7   SB_LUT4
"""
    assert parse_stat_cells(new) == {"$_AND_": 5, "SB_LUT4": 7}
    v = "module top(clk, a, y);\n  input clk;\n  input [7:0] a;\n  output signed [3:0] y;\nendmodule\n"
    assert ports_of(v, "top") == [("input", "clk", 1, False), ("input", "a", 8, False),
                                  ("output", "y", 4, True)]


@pytest.mark.slow
@need("yosys")
def test_fpga_flows_infer_dsps_and_memories_stay_macros(liberty):
    """The vendor flows start from the elaborated design (a multiplier lands on a DSP with
    -dsp and in LUTs without); the gate-level flows keep memories as SRAM macros and say
    how many bits they hold."""
    from reports.designs import design_by_name
    from reports.synth import synth_many
    d = design_by_name("int_mac_n8")
    v, top = d.verilog()
    r = synth_many(v, top, ["ice40", "ice40_nodsp", "cmos"])
    assert r["ice40"]["resources"]["dsp"] >= 1
    assert r["ice40_nodsp"]["resources"]["dsp"] == 0
    assert r["ice40_nodsp"]["resources"]["lut"] > r["ice40"]["resources"]["lut"]
    assert r["cmos"]["memory_bits"] == 0
    import dataclasses
    from rtl.registry import resolve_params
    # 2 lanes of the catalog engine's 8 (the memories and the check are per lane)
    eng = design_by_name("engine")
    eng = dataclasses.replace(eng, params={**eng.params, "lanes": 2})
    p = resolve_params("engine", eng.params)
    v, top = eng.verilog()
    bits = synth_many(v, top, ["cmos"])["cmos"]["memory_bits"]
    # weight rows (lanes x pes codes) + channel constants + the two-bank input buffer
    assert bits >= p["weight_depth"] * p["lanes"] * p["pes"] * p["n"]
