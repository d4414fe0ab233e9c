"""Whole-network check on the layer engine under Verilator (``sim.network.verify_network``).

CI runs a calibrated random network (``golden.testing.random_network``: conv, residual
add, max/avg pooling, linear logits and a controller) on a few digits images in every
static precision and in dynamic mode; ``dqt sim ARTIFACT --images 360`` is the full run.
The engine geometry is the one of ``test_engine.py``, so both share one build.
"""
from __future__ import annotations

import pytest

from golden.testing import random_network
from sim import runner
from sim.network import verify_network

#: same as cocotb_tests/test_engine.py ENGINE (kept literal: pytest imports test files
#: under their own names, and one build per geometry is the point)
ENGINE = {"lanes": 8, "pes": 8, "max_k": 64, "max_out": 16, "weight_depth": 16,
          "acc_max": 32, "m_bits": 16, "candidates": [2, 4, 6, 8]}


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    d = tmp_path_factory.mktemp("net") / "random"
    random_network(d, seed=3)
    return d


@pytest.mark.simulator
def test_network_every_layer_matches_golden(artifact, request):
    reason = runner.missing_reason("verilator")
    if reason:
        pytest.skip(reason)
    def job_dirs():
        return {p for pat in ("network-*", "run-sim.network_tb-*")
                for p in runner.BUILD_ROOT.rglob(pat)}

    before = job_dirs()
    rep = verify_network(artifact, images=6, simulator="verilator", engine=ENGINE,
                         rerun=runner.rerun_command("cocotb_tests/test_network.py",
                                                    request.node.name))
    print({k: rep[k] for k in ("images", "elements_checked", "mismatches", "verified_macs",
                               "seconds", "verified_macs_per_s")})
    assert rep["mismatches"] == 0, rep["first_mismatch"]
    assert rep["modes"] == ["2", "4", "6", "8", "static", "dynamic"]
    # every layer of the backbone and the controller was compared, in every mode
    names = {k.split(":", 1)[1] for k in rep["per_layer"]}
    assert {"conv1", "conv2", "res", "pool", "conv3", "gap", "flat", "fc", "ctrl1",
            "ctrl2"} <= names
    assert rep["elements_checked"] > 0 and rep["verified_macs"] > 0
    # RTL-verified elements and host steps (pooling, flatten, controller argmax) apart
    host = sum(v["elements"] for k, v in rep["per_layer"].items() if v["kind"] == "host")
    assert {v["kind"] for k, v in rep["per_layer"].items() if k.endswith((":pool", ":gap", ":flat"))} == {"host"}
    assert rep["host_elements"] == host > 0
    assert rep["rtl_elements"] + rep["host_elements"] == rep["elements_checked"]
    assert job_dirs() <= before, "the run left its job directories behind"
