"""The checks can fail: deliberately broken RTL variants must be caught.

Each case edits the generated Verilog text in its own build (``sim.runner.mutant_source``)
and expects the component's testbench to fail with a mismatch report naming the element,
the operands and the precision. A mutant that survives means the testbench cannot see that
class of bug.
"""
from __future__ import annotations

import re

import pytest

#: the testbench module the mutants run under (cocotb_tests/test_nested_shift.py)
SHIFTER_TB = "test_nested_shift"


def _drop_round_bit(text: str) -> str:
    """Round mode, k = 4 (8 -> 4 bits): replace the rounding constant 2^(k-1) = 8 by 0,
    i.e. the round-half bit is dropped and the shifter floors at that precision only."""
    new, count = re.subn(r"\+ 4'h8;", "+ 4'h0;", text)
    assert count == 1, f"expected one k=4 rounding adder in the Verilog, found {count}"
    return new


@pytest.mark.simulator
@pytest.mark.parametrize("sim", ["verilator", "icarus"])
def test_dropped_rounding_bit_is_caught(cocotb_run, sim):
    s = cocotb_run(sim, "nested_shift", {"n": 8, "mode": "round", "signed": False,
                                         "candidates": [1, 2, 3, 4, 6, 8]},
                   SHIFTER_TB, test_params={"seed": 8}, mutate=_drop_round_bit,
                   expect_fail=True)
    failed = {r.name: r.message for r in s.failed}
    assert "exhaustive_interleaved" in failed, s.table()
    msg = failed["exhaustive_interleaved"]
    # the report locates the first bad element: operands, precision and cycle
    assert "elements differ" in msg and "bits: 4" in msg and "q: " in msg, msg
    assert "output cycle" in msg, msg
