"""Parallel nested MAC (``rtl.nested_mac.NestedMac``, variants "right" and "msb") against
``golden.ops.nested_mac``, with the MAC packet testbench of :mod:`sim.mac_tb`.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from rtl.registry import cost_points
from sim.mac_tb import precision_change_every_beat_stream, random_packets  # noqa: F401

MODULE = Path(__file__).stem


# ------------------------------------------------------------------------------- pytest
MAC_CONFIGS = [
    # (n, variant, mode, overflow, acc_width): every variant and mode, both policies;
    # acc_width below the default rule so random sums overflow
    (8, "right", "floor", "wrap", 19),
    (8, "right", "round", "saturate", 19),
    (8, "msb", "floor", "saturate", 19),
    (8, "msb", "round", "wrap", 19),
    (4, "right", "round", "wrap", 11),
]


# Verilator (slow builds) runs the n = 8 configurations, Icarus all of them.
MAC_CASES = [(*c, s) for c in MAC_CONFIGS for s in ("verilator", "icarus")
             if s == "icarus" or c[0] == 8]


@pytest.mark.simulator
@pytest.mark.parametrize("n,variant,mode,overflow,acc_width,sim", MAC_CASES)
def test_nested_mac(cocotb_run, sim, n, variant, mode, overflow, acc_width):
    s = cocotb_run(sim, "nested_mac", {"n": n, "pes": 4, "variant": variant, "mode": mode,
                                       "overflow": overflow, "acc_width": acc_width,
                                       "max_terms": 16,
                                       "candidates": [b for b in (1, 2, 4, 6, 8) if b <= n]},
                   MODULE, test_params={"seed": n, "packets": 25})
    assert len(s.passed) == 3


# Every parameter set of nested_mac that the reports cost runs this testbench (Icarus: fast
# builds); tests/test_catalog.py fails when a costed design is missing here.
@pytest.mark.simulator
@pytest.mark.parametrize("params", cost_points("nested_mac"), ids=lambda p: str(p.get("n", "")))
def test_nested_mac_cost_points(cocotb_run, params):
    s = cocotb_run("icarus", "nested_mac", params, MODULE,
                   test_params={"seed": 11, "packets": 25})
    assert len(s.passed) == 3
