"""Precision-scalable fusion MAC (``rtl.fusion_mac.FusionMac``: 2-bit bricks, 16 / 4 / 1
products per beat at n = 8) against ``golden.ops.fusion_mac``, with the MAC packet
testbench of :mod:`sim.mac_tb` (unused lanes carry random codes the MAC must ignore).
"""
from __future__ import annotations

from pathlib import Path

import pytest

from rtl.registry import cost_points
from sim.mac_tb import precision_change_every_beat_stream, random_packets  # noqa: F401

MODULE = Path(__file__).stem

# (n, mode, overflow, acc_width): both modes, both policies, a width narrow enough that
# extreme packets overflow and wide enough that, with the bias on the other side, they fit
# (inputs: master codes, or the b-bit codes bit-plane storage would deliver)
CONFIGS = [(8, "floor", "wrap", 24, "master"), (8, "round", "saturate", 24, "master"),
           (4, "round", "wrap", 14, "master"), (8, "round", "wrap", 24, "nested")]
# Icarus runs every configuration, Verilator (slower builds) the first one
CASES = [(*c, "icarus") for c in CONFIGS] + [(*CONFIGS[0], "verilator")]


@pytest.mark.simulator
@pytest.mark.parametrize("n,mode,overflow,acc_width,inputs,sim", CASES)
def test_fusion_mac(cocotb_run, sim, n, mode, overflow, acc_width, inputs):
    s = cocotb_run(sim, "fusion_mac", {"n": n, "mode": mode, "overflow": overflow,
                                       "acc_width": acc_width, "max_terms": 64,
                                       "candidates": list(range(1, n + 1)), "inputs": inputs},
                   MODULE, test_params={"seed": n, "packets": 25})
    assert len(s.passed) == 3


# Every parameter set of fusion_mac that the reports cost runs this testbench (Icarus);
# tests/test_catalog.py fails when a costed design is missing here.
@pytest.mark.simulator
@pytest.mark.parametrize("params", cost_points("fusion_mac"), ids=lambda p: str(p.get("n", "")))
def test_fusion_mac_cost_points(cocotb_run, params):
    s = cocotb_run("icarus", "fusion_mac", params, MODULE,
                   test_params={"seed": 11, "packets": 25})
    assert len(s.passed) == 3
