"""The verification infrastructure itself, without a simulator: payload packing against
Amaranth's own layouts, coverage bookkeeping, mismatch reports, and ``dqt sim`` argument
errors (exit status 2 with the value and the allowed range)."""
from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import signed, unsigned
from amaranth.lib import data

from dqt.cli import main as dqt_main
from rtl.generate import port_table
from rtl.registry import build
from sim.checker import Mismatch, compare
from sim.coverage import Coverage, CoverageError
from sim.packing import pack, pack_array, unpack, unpack_array


def _payload_port(component, params):
    return {p["name"]: p for p in port_table(build(component, params))}["i__payload"]


def test_pack_matches_amaranth_layout():
    """Packed integers equal Amaranth's own ``Layout.const(...)`` bit patterns."""
    port = _payload_port("nested_mac", {"pes": 3, "acc_width": 20, "max_terms": 8})
    lay = data.StructLayout({"x": data.ArrayLayout(unsigned(8), 3),
                             "w": data.ArrayLayout(signed(8), 3), "bits": unsigned(4),
                             "bias": signed(20), "first": 1, "last": 1})
    rng = np.random.default_rng(0)
    x, w = rng.integers(0, 256, (20, 3)), rng.integers(-128, 128, (20, 3))
    bias, bits = rng.integers(-(1 << 19), 1 << 19, 20), rng.integers(0, 9, 20)
    words = pack(port, {"x": x, "w": w, "bits": bits, "bias": bias, "first": 1, "last": 0})
    for j in range(20):
        c = lay.const({"x": x[j].tolist(), "w": w[j].tolist(), "bits": int(bits[j]),
                       "bias": int(bias[j]), "first": 1, "last": 0})
        assert words[j] == c.as_value().value
    back = unpack(port, words)
    assert (back["x"] == x).all() and (back["w"] == w).all() and (back["bias"] == bias).all()
    wide = pack_array(port, port["width"], {"x": x, "w": w, "bits": bits, "bias": bias,
                                            "first": 1, "last": 0}, 20)
    assert wide == sum(v << (j * port["width"]) for j, v in enumerate(words))
    arr = unpack_array(port, port["width"], wide, 20)
    assert (arr["w"] == w).all() and (arr["bias"] == bias).all() and (arr["first"] == 1).all()


def test_coverage_fails_on_a_bin_never_hit():
    cov = Coverage("t", {"bits": [2, 4], "overflow": [False, True]},
                   exclude=[{"bits": 2, "overflow": True}])
    cov.sample(bits=[2, 4], overflow=[False, False])
    with pytest.raises(CoverageError, match=r"\(4, True\)"):
        cov.check()
    cov.sample(bits=4, overflow=True)
    cov.check()


def test_coverage_bins_are_declared_once_and_read_only():
    """Bins live in cocotb-coverage's CoverCross; a test cannot replace them by what its
    stimulus reached, and two instances of one name do not share hits."""
    cov = Coverage("t", {"cls": ["zero", "max"], "sat": [False, True]},
                   reachable=[("zero", False), ("max", True)])
    assert cov.bins == (("max", True), ("zero", False))
    with pytest.raises(AttributeError):
        cov.bins = [("zero", False)]
    with pytest.raises(AttributeError):
        cov.hits = {}
    with pytest.raises(TypeError):
        cov.hits[("max", True)] = 1
    cov.sample(cls=["zero", "zero", "max"], sat=[False, False, False])
    assert cov.hits[("zero", False)] == 2 and cov.extra == {("max", False): 1}
    with pytest.raises(CoverageError, match=r"\('max', True\)"):
        cov.check()
    again = Coverage("t", {"cls": ["zero", "max"], "sat": [False, True]})
    assert sum(again.hits.values()) == 0 and len(again.bins) == 4
    with pytest.raises(ValueError, match="not in the cross product"):
        Coverage("t", {"cls": ["zero"]}, reachable=[("max",)])


def test_compare_reports_first_mismatch():
    with pytest.raises(Mismatch, match=r"(?s)first at index \[2\].*output cycle: 17.*bits: 6"):
        compare("x", [1, 2, 3], [1, 2, 4], {"bits": [2, 4, 6]}, cycles=[5, 9, 17])
    assert compare("x", [1, 2], [1, 2]) == 2


def test_dqt_sim_rejects_bad_arguments(tmp_path, capsys):
    from golden.testing import random_network
    art = tmp_path / "net"
    random_network(art)
    assert dqt_main(["sim", str(art), "--images", "5000"]) == 2
    assert "images=5000 is outside the allowed range [1, 1797]" in capsys.readouterr().err
    assert dqt_main(["sim", str(art), "--modes", "3"]) == 2
    assert "bits=3 is not in the candidate set" in capsys.readouterr().err
    assert dqt_main(["sim", str(tmp_path / "missing")]) == 2


def test_harness_top_is_a_shell_of_plain_ports():
    """The harness's top module declares ports and wires only: no registers and no per-field
    view wires, so a ``--public-depth 1`` build exposes nothing that drives the datapath
    (see docs/verification.md, Throughput design)."""
    import re

    from rtl.generate import to_verilog
    from sim.harness import EngineHarness
    h = EngineHarness({"lanes": 2, "pes": 2, "n": 8, "max_k": 16, "max_out": 4}, 4)
    text = to_verilog(h, "dqt_engine_harness")
    top = text[text.index("module dqt_engine_harness("):]
    top = top[:top.index("endmodule")]
    assert not re.search(r"^\s*reg\b", top, re.M)
    assert "[0]" not in top  # no element/field wires of layout-typed ports
    assert "dqt_engine_harness.harness" in top  # the logic lives one level down


def test_build_rejects_an_unknown_visibility():
    from sim import runner
    with pytest.raises(ValueError, match=r"public='some'.*\['all', 'ports'\]"):
        runner.build("verilator", [], "x", public="some")
