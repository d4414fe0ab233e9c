"""Fixed-precision integer MAC (``rtl.int_mac.IntMac``) against the golden model.

The packet testbench is the dot-product MACs' one (:mod:`sim.mac_tb`):
same ports, same golden scoreboard, ``golden.ops.int_mac``.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from rtl.registry import cost_points
from sim.mac_tb import precision_change_every_beat_stream, random_packets  # noqa: F401

MODULE = Path(__file__).stem


@pytest.mark.simulator
@pytest.mark.parametrize("sim", ["verilator", "icarus"])
@pytest.mark.parametrize("overflow", ["wrap", "saturate"])
def test_int_mac(cocotb_run, sim, overflow):
    s = cocotb_run(sim, "int_mac", {"n": 8, "pes": 4, "overflow": overflow, "acc_width": 19,
                                     "max_terms": 16},
                   MODULE, test_params={"seed": 5, "packets": 40})
    assert len(s.passed) == 3


# Every parameter set of int_mac that the reports cost runs this testbench (Icarus: fast
# builds); tests/test_catalog.py fails when a costed design is missing here.
@pytest.mark.simulator
@pytest.mark.parametrize("params", cost_points("int_mac"), ids=lambda p: str(p.get("n", "")))
def test_int_mac_cost_points(cocotb_run, params):
    s = cocotb_run("icarus", "int_mac", params, MODULE,
                   test_params={"seed": 13, "packets": 25})
    assert len(s.passed) == 3
