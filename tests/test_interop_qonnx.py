"""QONNX export: qonnx's own executor reproduces every golden output element, at every
width and per-layer assignment, in both nested modes; qonnx's BOPs equal the golden BitOPs."""
import json

import numpy as np
import pytest

pytest.importorskip("qonnx")

from golden.formats import DQTValueError  # noqa: E402
from golden.network import run_network  # noqa: E402
from golden.testing import random_network  # noqa: E402
from interop.qonnx_export import (  # noqa: E402
    compare_with_golden, export_qonnx, parse_assignment, qonnx_bops, run_qonnx)


@pytest.fixture(scope="module", params=["round", "floor"])
def net(request, tmp_path_factory):
    return random_network(tmp_path_factory.mktemp("qonnx") / request.param, mode=request.param)


def _codes(net, N=48):
    rng = np.random.default_rng(7)
    x = rng.integers(0, 1 << net.n, (N, 1, 8, 8))
    x[0] = 0                      # directed: all-zero and all-max images reach both clamps
    x[-1] = (1 << net.n) - 1
    return x


@pytest.mark.parametrize("b", [2, 4, 6, 8])
def test_qonnx_executor_matches_golden_every_element(net, b):
    a = parse_assignment(net, bits=b)
    model = export_qonnx(net, a)
    x = _codes(net)
    got = run_qonnx(model, x)
    want = run_network(net, x, bits=b).output
    assert got.shape == want.shape
    np.testing.assert_array_equal(got.astype(np.int64), want)
    assert compare_with_golden(model, net, x, a)["differences"] == 0


def test_per_layer_assignment_and_nested_quant_nodes(net):
    a = parse_assignment(net, assignment=[2, 8, 4, 6])
    model = export_qonnx(net, a)
    x = _codes(net, 16)
    np.testing.assert_array_equal(run_qonnx(model, x).astype(np.int64),
                                  run_network(net, x, bits=a).output)
    # each quantized layer's activation and weight quantizers carry its width and nested step
    for name, b in a.items():
        for q in ("act_quant", "weight_quant"):
            node = model.get_node_from_name(f"{name}.{q}")
            assert model.get_initializer(node.input[3]) == b
            assert model.get_initializer(node.input[1]) == 2.0 ** (net.n - b)


def test_qonnx_bops_equal_golden_bitops(net):
    for b in (2, 8):
        a = parse_assignment(net, bits=b)
        r = run_network(net, _codes(net, 1)[:1], bits=b)
        assert qonnx_bops(export_qonnx(net, a))["bops"] == r.totals()["bitops"]


def test_assignment_errors(net):
    with pytest.raises(DQTValueError, match="not in the candidate set"):
        parse_assignment(net, bits=3)
    with pytest.raises(DQTValueError, match="has 2 widths, the network has 4"):
        parse_assignment(net, assignment=[2, 4])


def test_cli_json_and_bad_input(net, tmp_path, capsys):
    from dqt.cli import main
    x = tmp_path / "x.npy"
    np.save(x, _codes(net, 8))
    out = tmp_path / "m.onnx"
    assert main(["export", "qonnx", str(net.path), "--out", str(out), "--bits", "4",
                 "--input", str(x), "--json"]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {"nodes", "quant_nodes", "outputs_identical", "images", "differences", "bops"} <= set(res)
    assert res["outputs_identical"] is True and res["images"] == 8 and out.is_file()
    bad = tmp_path / "bad.onnx"
    assert main(["export", "qonnx", str(net.path), "--out", str(bad), "--bits", "5",
                 "--input", str(x)]) == 2
    assert "not in the candidate set" in capsys.readouterr().err and not bad.exists()


@pytest.mark.slow
def test_trained_digits_artifact_on_the_test_split(tmp_path_factory, capsys):
    """A trained artifact, every image of its digits test split, through the CLI."""
    from dqt.cli import main
    from training.evaluate import digits_test_codes
    from training.train import train_digits
    art = tmp_path_factory.mktemp("digits") / "art"
    train_digits(art, progress=False, width=4, hidden=16, fp32_epochs=2, qat_epochs=1,
                 batch_size=128, calib_batches=2, threads=1)
    n_test = len(digits_test_codes(art)[1])
    out = tmp_path_factory.mktemp("onnx") / "m.onnx"
    for b in (2, 8):
        assert main(["export", "qonnx", str(art), "--out", str(out), "--bits", str(b), "--json"]) == 0
        res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert res["images"] == n_test >= 300
        assert res["outputs_identical"] is True and res["differences"] == 0
        assert res["bops"] == res["bitops"]
