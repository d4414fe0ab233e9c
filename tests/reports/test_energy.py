"""Activity-based energy on real vectors: the nested MAC costs less at fewer bits."""
import numpy as np
import pytest

from golden.network import load_network
from reports.evaluate import evaluate_design, load_workload, save_workload
from reports.workload import build_workload

from .conftest import need

pytestmark = [pytest.mark.tools]


def test_workload_from_artifact(tiny_artifact, tmp_path):
    net = load_network(tiny_artifact)
    wl = build_workload(net, cycles=16, lanes=8, images=20)
    assert wl.bits == [2, 4, 6, 8] and wl.source == "artifact"
    s = wl.macs[4]
    # operands are master-width codes of the network: activations in range, weights from it
    assert s.x.min() >= 0 and s.x.max() <= 255
    allw = np.concatenate([net.arrays["c.w"].ravel(), net.arrays["f.w"].ravel()])
    assert np.isin(s.w, allw).all()
    assert (s.first.sum(axis=0) >= 1).all()
    p = save_workload(wl, tmp_path / "wl.npz")
    back = load_workload(p)
    assert np.array_equal(back.macs[4].x, s.x) and back.accuracy == wl.accuracy


@need("yosys", "sta")
def test_nested_mac_energy_decreases_with_precision(tiny_artifact, liberty, tmp_path):
    wl = build_workload(load_network(tiny_artifact), cycles=48, lanes=64, images=40)
    p = save_workload(wl, tmp_path / "wl.npz")
    r = evaluate_design("nested_mac_floor_right_n8", True, str(liberty), str(p), False,
                        fpga=False)
    e = r["energy_pj_per_mac"]
    assert e is not None, r["notes"]
    assert e["2"] < e["4"] < e["8"], e
    a = r["mean_activity"]
    assert a["2"] < a["4"] < a["8"], a
    assert r["sky130_um2"] > 0 and r["sta_critical_path_ns"] > 0
    assert r["energy_pj_per_mac_model"]["2"] < r["energy_pj_per_mac_model"]["8"]
