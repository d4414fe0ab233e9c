"""Shared fixtures of the report tests: liberty path, tool availability, a tiny artifact."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from reports.tools import find_tool

REPO = Path(__file__).resolve().parents[2]
LIBERTY = REPO.parent / "shared" / "pdk" / "sky130_fd_sc_hd__tt_025C_1v80.lib.gz"


def need(*tools):
    missing = [t for t in tools if find_tool(t) is None]
    return pytest.mark.skipif(bool(missing), reason=f"missing tool(s): {missing}")


@pytest.fixture(scope="session")
def liberty():
    if not LIBERTY.is_file():
        pytest.skip(f"liberty file {LIBERTY} is not present")
    return LIBERTY


@pytest.fixture(scope="session")
def tiny_artifact(tmp_path_factory):
    """A two-layer digits network with random integer weights (conv + linear)."""
    from golden.network import save_network
    rng = np.random.default_rng(7)
    arrays = {
        "c.w": rng.integers(-60, 60, (4, 1, 3, 3)).astype(np.int64),
        "c.b": rng.integers(-500, 500, 4).astype(np.int64),
        "c.M": np.full(4, 300, np.int64),
        "f.w": rng.integers(-90, 90, (10, 4 * 8 * 8)).astype(np.int64),
        "f.b": np.zeros(10, np.int64),
        "f.M": np.full(10, 1 << 10, np.int64),
    }
    common = {"bits": 8, "acc_width": 26, "overflow": "wrap", "rule": "dyadic"}
    manifest = {
        "n": 8, "candidate_bits": [2, 4, 6, 8], "mode": "floor",
        "input": {"shape": [1, 8, 8], "scale": 16.0 / 255, "zero_point": 0},
        "layers": [
            {"name": "c", "type": "conv2d", "weight": "c.w", "bias": "c.b", "M": "c.M",
             "S": 12, "relu": True, "requant": True, "stride": 1, "padding": 1, **common},
            {"name": "flat", "type": "flatten"},
            {"name": "f", "type": "linear", "weight": "f.w", "bias": "f.b", "M": "f.M",
             "S": 16, "relu": False, "requant": False, **common},
        ],
        "metadata": {"dataset": {"split_seed": 0, "test_fraction": 0.2}},
    }
    return save_network(tmp_path_factory.mktemp("art") / "tiny", manifest, arrays)
