"""Network runner and artifact format: precision assignment, traces, counts, rejection."""
import json
import shutil

import numpy as np
import pytest

from golden import ArtifactError, load_network, run_network
from golden.formats import DQTValueError
from golden.network import ARRAYS, MANIFEST, Network, save_network
from golden.testing import random_network


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    return random_network(tmp_path_factory.mktemp("net") / "a", seed=3)


@pytest.fixture(scope="module")
def x(net):
    return np.random.default_rng(5).integers(0, 256, (24, 1, 8, 8))


@pytest.mark.parametrize("bits", [2, 4, 6, 8, None, "dynamic"])
def test_fast_equals_reference_on_network(net, x, bits):
    f = run_network(net, x, bits=bits, impl="fast", trace=True)
    r = run_network(net, x, bits=bits, impl="reference", trace=True)
    assert np.array_equal(f.output, r.output)
    for name in r.traces:
        for key, v in r.traces[name].items():
            if v is not None:
                assert np.array_equal(v, f.traces[name][key]), (name, key)


def test_per_input_assignment_equals_one_by_one(net, x):
    rng = np.random.default_rng(0)
    m = rng.choice(net.candidate_bits, (len(x), len(net.qlayers)))
    together = run_network(net, x, bits=m)
    for i in range(len(x)):
        alone = run_network(net, x[i:i + 1], bits=m[i])
        assert np.array_equal(alone.output[0], together.output[i])
    assert np.array_equal(together.bits, m)


def test_mid_stream_precision_changes_match_static_runs(net, x):
    """Alternating precisions input by input gives, per input, the static run at that precision."""
    m = np.array([[b] * len(net.qlayers) for b in np.resize(net.candidate_bits, len(x))])
    mixed = run_network(net, x, bits=m)
    for b in net.candidate_bits:
        rows = m[:, 0] == b
        assert np.array_equal(mixed.output[rows], run_network(net, x[rows], bits=b).output)


def test_dynamic_uses_controller_argmax(net, x):
    r = run_network(net, x, bits="dynamic", trace=True)
    ctrl = net.controller
    B = np.array(net.candidate_bits)
    logits = r.traces[ctrl["layers"][-1]["name"]]["output"].reshape(len(x), len(ctrl["controlled"]), -1)
    for j, name in enumerate(ctrl["controlled"]):
        assert np.array_equal(r.bits[:, net.qlayers.index(name)], B[np.argmax(logits[:, j], axis=1)])
    static = [net.layer(q)["bits"] for q in net.qlayers if q not in ctrl["controlled"]]
    unc = [i for i, q in enumerate(net.qlayers) if q not in ctrl["controlled"]]
    assert np.array_equal(r.bits[:, unc], np.tile(static, (len(x), 1)))
    again = run_network(net, x, bits=r.bits)
    assert np.array_equal(again.output, r.output)


def test_op_counts(net, x):
    b = 4
    r = run_network(net, x, bits=b, trace=True)
    for name in net.qlayers:
        l = net.layer(name)
        w = net.arrays[l["weight"]]
        out = r.traces[name]["acc"]
        macs = out.size * int(np.prod(w.shape[1:]))
        assert r.ops[name]["macs"] == macs
        assert r.ops[name]["bitops"] == macs * b * b
        assert r.ops[name]["shifts"] == len(x) * w.size + r.traces[name]["input"].size
    assert run_network(net, x, bits=8).totals()["shifts"] == 0


def test_overflow_is_counted(tmp_path, net, x):
    man = json.loads(json.dumps(net.manifest))
    man["layers"][0]["acc_width"] = 14  # narrower than conv1's 8-bit sums need
    small = load_network(save_network(tmp_path / "o", man, net.arrays))
    wide = run_network(net, x, bits=8, trace=True).traces["conv1"]["acc"]
    r = run_network(small, x, bits=8)
    want = int(((wide < -(1 << 13)) | (wide > (1 << 13) - 1)).sum())
    assert want > 0 and r.overflow["conv1"] == want


def test_round_trip_is_byte_identical(tmp_path, net):
    a = save_network(tmp_path / "a", net.manifest, net.arrays)
    b = save_network(tmp_path / "b", load_network(a).manifest, load_network(a).arrays)
    for f in (MANIFEST, ARRAYS):
        assert (a / f).read_bytes() == (b / f).read_bytes()


def _corrupt(tmp_path, net, edit=None, arrays_edit=None):
    d = tmp_path / "bad"
    shutil.copytree(net.path, d)
    man = json.loads((d / MANIFEST).read_text())
    arrays = dict(net.arrays)
    if edit:
        edit(man)
    if arrays_edit:
        arrays_edit(arrays)
        np.savez(d / ARRAYS, **arrays)
    (d / MANIFEST).write_text(json.dumps(man))
    return d


@pytest.mark.parametrize("what,edit,arrays_edit,needle", [
    ("version", lambda m: m.update(format_version=99), None, "format_version"),
    ("format", lambda m: m.update(format="onnx"), None, "manifest.format"),
    ("missing array", None, lambda a: a.pop("conv2.bias"), "conv2.bias"),
    ("extra array", None, lambda a: a.update(extra=np.zeros(3, np.int64)), "extra"),
    ("shape", lambda m: m["arrays"]["fc.M"].update(shape=[11]), None, "fc.M.shape"),
    ("dtype", None, lambda a: a.update({"fc.M": a["fc.M"].astype(np.int32)}), "fc.M.dtype"),
    ("hash", None, lambda a: a.update({"fc.bias": a["fc.bias"] + 1}), "fc.bias.sha256"),
    ("bits not in B", lambda m: m["layers"][0].update(bits=3), None, "layers[0].bits"),
    ("bits above n", lambda m: m.update(candidate_bits=[2, 4, 9]), None, "candidate_bits"),
    ("nan", lambda m: m["input"].update(scale=float("nan")), None, "input.scale"),
    ("inf metadata", lambda m: m["metadata"].update(acc=float("inf")), None, "metadata.acc"),
    ("unknown type", lambda m: m["layers"][3].update(type="softmax"), None, "layers[3].type"),
    ("bad input ref", lambda m: m["layers"][1].update(input="nope"), None, "layers[1].input"),
    ("controlled early", lambda m: m["controller"].update(controlled=["conv1", "conv3", "fc"]), None,
     "controller.controlled"),
])
def test_bad_artifacts_are_rejected(tmp_path, net, what, edit, arrays_edit, needle):
    d = _corrupt(tmp_path, net, edit, arrays_edit)
    with pytest.raises(ArtifactError) as e:
        load_network(d)
    assert needle in str(e.value), str(e.value)


def test_pickled_npz_is_refused(tmp_path, net):
    d = _corrupt(tmp_path, net, arrays_edit=lambda a: a.update({"fc.M": np.array([object()] * 10)}))
    with pytest.raises(ArtifactError):
        load_network(d)


def test_failed_save_leaves_nothing(tmp_path, net):
    man = json.loads(json.dumps(net.manifest))
    man["layers"][0]["bits"] = 5
    with pytest.raises(ArtifactError):
        save_network(tmp_path / "x", man, net.arrays)
    assert not (tmp_path / "x").exists() and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("bits,needle", [(3, "candidate set"), ({"nope": 2}, "nope"),
                                         (np.full((2, 4), 4), "shape")])
def test_bad_precision_assignments(net, x, bits, needle):
    with pytest.raises(DQTValueError, match=needle):
        run_network(net, x, bits=bits)


def test_bad_inputs(net, x):
    with pytest.raises(DQTValueError, match="255"):
        run_network(net, x + 1)
    with pytest.raises(DQTValueError, match="expected"):
        run_network(net, x[:, :, :4])


def test_fast_equals_reference_on_digits_images(net):
    """Real data: the bundled digits images (pixel values 0..16) quantized with the input scale."""
    from sklearn.datasets import load_digits
    from golden import quantize_input
    x = quantize_input(net, load_digits().images[:, None].astype(np.float64))
    assert x.max() == 240  # 16 / (1/15): the scale maps the brightest pixel inside the range
    for bits in ("dynamic", 2, 8):
        f = run_network(net, x, bits=bits, impl="fast")
        r = run_network(net, x, bits=bits, impl="reference")
        assert np.array_equal(f.output, r.output) and np.array_equal(f.bits, r.bits)


def test_controller_tap_must_be_a_layer(tmp_path, net):
    d = _corrupt(tmp_path, net, lambda m: m["controller"].update(tap="input"))
    with pytest.raises(ArtifactError, match="controller.tap"):
        load_network(d)


def test_saved_bytes_do_not_depend_on_the_clock(tmp_path, net, monkeypatch):
    import time
    a = save_network(tmp_path / "a", net.manifest, net.arrays)
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 86400 * 400)
    monkeypatch.setattr(time, "localtime", lambda *a: __import__("time").gmtime(real() + 86400 * 400))
    b = save_network(tmp_path / "b", net.manifest, net.arrays)
    assert (a / ARRAYS).read_bytes() == (b / ARRAYS).read_bytes()


def test_loaded_network_is_read_only_and_caches_prepared_weights(tmp_path, net, x):
    loaded = load_network(save_network(tmp_path / "c", net.manifest, net.arrays))
    w = loaded.arrays[loaded.layers[0]["weight"]] if "weight" in loaded.layers[0] else \
        next(a for a in loaded.arrays.values() if a.ndim == 4)
    with pytest.raises(ValueError):
        w[...] = 0  # immutable after load: the runner's weight cache relies on it
    for bits in (4, 8, 4):  # the second 4-bit run reuses the cached weights
        f = run_network(loaded, x, bits=bits, impl="fast")
        r = run_network(loaded, x, bits=bits, impl="reference")
        assert np.array_equal(f.output, r.output)
    assert {b for (_, b) in loaded.__dict__["_prepared"]} == {4, 8}
