"""Bit-serial nested MAC (``rtl.bitserial_mac.BitserialMac``) against the golden model.

The packet testbench is the dot-product MACs' one (:mod:`sim.mac_tb`):
same ports, same golden scoreboard, ``golden.ops.bitserial_mac``.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from rtl.registry import cost_points
from sim.mac_tb import precision_change_every_beat_stream, random_packets  # noqa: F401

MODULE = Path(__file__).stem


@pytest.mark.simulator
@pytest.mark.parametrize("sim", ["verilator", "icarus"])
@pytest.mark.parametrize("mode,overflow", [("floor", "wrap"), ("round", "saturate")])
def test_bitserial_mac(cocotb_run, sim, mode, overflow):
    s = cocotb_run(sim, "bitserial_mac", {"n": 8, "pes": 4, "mode": mode, "overflow": overflow,
                                          "acc_width": 19, "max_terms": 16,
                                          "candidates": [1, 2, 4, 6, 8]},
                   MODULE, test_params={"seed": 3, "packets": 20})
    assert len(s.passed) == 3


# Every parameter set of bitserial_mac that the reports cost runs this testbench (Icarus: fast
# builds); tests/test_catalog.py fails when a costed design is missing here.
@pytest.mark.simulator
@pytest.mark.parametrize("params", cost_points("bitserial_mac"), ids=lambda p: str(p.get("n", "")))
def test_bitserial_mac_cost_points(cocotb_run, params):
    s = cocotb_run("icarus", "bitserial_mac", params, MODULE,
                   test_params={"seed": 12, "packets": 25})
    assert len(s.passed) == 3
