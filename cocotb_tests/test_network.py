"""Whole-network check on the layer engine under Verilator (``sim.network.verify_network``).

CI runs a calibrated random network (``golden.testing.random_network``: conv, residual
add, max/avg pooling, linear logits and a controller) on a few digits images in every
static precision and in dynamic mode; ``dqt sim ARTIFACT --images 360`` is the full run.
The engine geometry is the one of ``test_engine.py``, so both share one build.
"""
from __future__ import annotations

import pytest

from golden import defaults
from golden.testing import random_network
from sim import runner
from sim.network import verify_network

#: the catalog's engine sizing, as in cocotb_tests/test_engine.py (one build serves both)
ENGINE = dict(defaults.ENGINE)


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
