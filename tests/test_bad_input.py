"""Bad and extreme inputs of the artifact, the golden runner and ``dqt check`` / ``dqt run``:
damaged files, shapes that do not chain, arithmetic at the edge of what validation admits,
overflow in the controller, an empty batch. Each answer is a correct result or exit status 2
with one line naming the problem."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from dqt.cli import main
from golden.formats import acc_width_rule
from golden.network import ARRAYS, MANIFEST, ArtifactError, load_network, run_network, save_network
from golden.testing import random_network


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    return random_network(tmp_path_factory.mktemp("art") / "net", seed=3)


def _copy(net, tmp_path):
    d = tmp_path / "art"
    shutil.copytree(net.path, d)
    return d


def _cli(argv, capsys):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def _one_line_error(rc, err, *words):
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for w in words:
        assert w in lines[0], lines[0]


# -- class 1: a damaged weights.npz or input file is a named error --------------------------

@pytest.mark.parametrize("damage", ["truncate", "flip", "text", "npy", "empty"])
@pytest.mark.parametrize("command", ["check", "run"])
def test_damaged_weights_npz_is_a_one_line_error(net, tmp_path, capsys, damage, command):
    d = _copy(net, tmp_path)
    p = d / ARRAYS
    raw = bytearray(p.read_bytes())
    if damage == "truncate":
        raw = raw[:len(raw) * 2 // 3]
    elif damage == "flip":  # inside the first member's data: the zip CRC or the hash catches it
        raw[200] ^= 0x5A
    elif damage == "text":
        raw = bytearray(b"this is not an archive\n")
    elif damage == "npy":
        import io
        buf = io.BytesIO()
        np.save(buf, np.arange(4))
        raw = bytearray(buf.getvalue())
    else:
        raw = bytearray()
    p.write_bytes(bytes(raw))
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((1, 1, 8, 8), dtype=np.int64))
    argv = ["check", d] if command == "check" else ["run", d, "--input", x, "--out", tmp_path / "y.npz"]
    rc, out, err = _cli(argv, capsys)
    _one_line_error(rc, err, ARRAYS)
    assert "pickle" not in err
    assert not (tmp_path / "y.npz").exists()


def test_damaged_input_npy_is_a_one_line_error(net, tmp_path, capsys):
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((2, 1, 8, 8), dtype=np.int64))
    x.write_bytes(x.read_bytes()[:100])
    rc, out, err = _cli(["run", net.path, "--input", x, "--out", tmp_path / "y.npz"], capsys)
    _one_line_error(rc, err, "--input")
    assert not (tmp_path / "y.npz").exists()


def test_manifest_not_utf8_is_a_one_line_error(net, tmp_path, capsys):
    d = _copy(net, tmp_path)
    (d / MANIFEST).write_bytes(b"\xff\xfe{}")
    _one_line_error(*_cli(["check", d], capsys)[::2], MANIFEST)


def test_rtl_manifest_is_not_an_artifact(tmp_path, capsys):
    (tmp_path / MANIFEST).write_text(json.dumps({"modules": [], "generator": "dqt rtl"}))
    rc, out, err = _cli(["check", tmp_path], capsys)
    _one_line_error(rc, err, "not a DQT network artifact")
    assert "missing" not in err


# -- class 2: shapes are checked between layers --------------------------------------------

def _linear(name, O, K, **kw):
    d = dict(name=name, type="linear", weight=f"{name}.w", bias=f"{name}.b", M=f"{name}.M", S=8,
             bits=8, acc_width=acc_width_rule(8, K) + 1, overflow="wrap", rule="dyadic",
             relu=True, requant=True, clip=None)
    d.update(kw)
    arrays = {f"{name}.w": np.ones((O, K), np.int8), f"{name}.b": np.zeros(O, np.int64),
              f"{name}.M": np.ones(O, np.int64)}
    return d, arrays


def _mlp(input_shape, dims, **kw):
    layers, arrays = [], {}
    for i, (O, K) in enumerate(dims):
        l, a = _linear(f"fc{i}", O, K, **(kw if i == len(dims) - 1 else {}))
        layers.append(l)
        arrays.update(a)
    return dict(n=8, candidate_bits=[2, 4, 8], mode="round",
                input=dict(shape=list(input_shape), scale=0.1, zero_point=0), layers=layers), arrays


@pytest.mark.parametrize("input_shape, dims, field", [
    ([6], [(4, 6), (3, 5)], "manifest.layers[1].weight"),       # K of fc1 != outputs of fc0
    ([7], [(4, 6), (3, 4)], "manifest.layers[0].weight"),       # input does not fit fc0
    ([1, 6], [(4, 6)], "manifest.layers[0].weight"),            # a 2-D input to a linear layer
])
def test_shapes_that_do_not_chain_are_refused(tmp_path, input_shape, dims, field):
    m, a = _mlp(input_shape, dims)
    with pytest.raises(ArtifactError, match=field.replace("[", r"\[").replace("]", r"\]")):
        save_network(tmp_path / "a", m, a)
    assert not (tmp_path / "a").exists()


def test_conv_channels_and_add_shapes_are_checked(net, tmp_path):
    m = json.loads(json.dumps(net.manifest))
    arrays = dict(net.arrays)
    arrays["conv2.weight"] = np.zeros((4, 3, 3, 3), np.int8)   # expects 3 channels, gets 4
    with pytest.raises(ArtifactError, match=r"layers\[1\]\.weight.*\[3, H, W\]"):
        save_network(tmp_path / "a", m, arrays)
    m["layers"][1]["stride"] = 2                                 # conv2 halves; add(conv1, conv2)
    with pytest.raises(ArtifactError, match=r"layers\[2\]\.inputs.*equal shapes"):
        save_network(tmp_path / "b", m, dict(net.arrays))


def test_shapes_are_what_the_runner_produces(net):
    r = run_network(net, np.zeros((2, 1, 8, 8), np.int64), bits="dynamic", trace=True)
    for name, tr in r.traces.items():
        assert tr["output"].shape[1:] == net.shapes[name].output, name
        assert tr["input"].shape[1:] == net.shapes[name].input, name


# -- class 3: exact or refused arithmetic ---------------------------------------------------

def test_requant_product_beyond_int64_is_refused(tmp_path):
    # acc_width 62 and M = 2^39: acc * M reaches 2^100; before, this ran in int64 and wrapped.
    m, a = _mlp([6], [(2, 6)], acc_width=62, S=40)
    a["fc0.M"][:] = 1 << 39
    with pytest.raises(ArtifactError, match=r"layers\[0\]\.M.*int64"):
        save_network(tmp_path / "a", m, a)


def test_bias_beyond_int64_is_refused(tmp_path):
    # the exact sum + bias would pass 2^62 (and int64 in the fast path's intermediates)
    m, a = _mlp([6], [(2, 6)])
    a["fc0.b"][:] = (1 << 62) - 6 * (1 << 15) + 1
    with pytest.raises(ArtifactError, match=r"layers\[0\]\.bias.*2\^62"):
        save_network(tmp_path / "a", m, a)
    a["fc0.b"][:] = (1 << 62) - 6 * (1 << 15)    # the largest admitted bias: exact
    net = load_network(save_network(tmp_path / "b", m, a))
    x = np.full((1, 6), 255)
    acc = int(net.arrays["fc0.b"][0]) + 6 * 255
    lim = 1 << (m["layers"][0]["acc_width"] - 1)
    wrapped = (acc + lim) % (2 * lim) - lim
    want = max(0, min(255, (wrapped * 1 + (1 << 7)) >> 8))
    assert run_network(net, x, bits=8).output[0, 0] == want


def test_add_constants_beyond_int64_are_refused(tmp_path):
    # 48-bit constants times 16-bit codes: (2^47 - 1) * 2 * 65535 > 2^63
    net16 = random_network(tmp_path / "n16", seed=1, n=16, B=(8, 16), controller=False, calib=4)
    m = json.loads(json.dumps(net16.manifest))
    m["layers"][2].update(M1=(1 << 47) - 1, M2=(1 << 47) - 1, M3=0, S=62)
    with pytest.raises(ArtifactError, match=r"layers\[2\]\.M1.*int64"):
        save_network(tmp_path / "a", m, dict(net16.arrays))


@pytest.mark.parametrize("acc_width, m_exp", [(24, 38), (40, 22), (62, 0)])
def test_admitted_edge_is_exact(tmp_path, acc_width, m_exp):
    """At the largest admitted M for an accumulator width, the output equals exact Python
    integer arithmetic (the bound of docs/arithmetic.md section 6)."""
    rng = np.random.default_rng(acc_width)
    m, a = _mlp([6], [(3, 6)], acc_width=acc_width, S=min(62, acc_width + m_exp - 9),
                relu=False, overflow="saturate")
    a["fc0.w"] = rng.integers(-128, 128, (3, 6)).astype(np.int8)
    lim = 1 << (acc_width - 1)
    a["fc0.b"] = np.array([lim - 1, -lim, 12345 % lim], np.int64)
    a["fc0.M"] = np.full(3, (1 << m_exp) - 1 if m_exp else 1, np.int64)
    net = load_network(save_network(tmp_path / "a", m, a))
    x = rng.integers(0, 256, (16, 6))
    got = run_network(net, x, bits=8).output
    l = m["layers"][0]
    for i in range(len(x)):
        for o in range(3):
            acc = sum(int(x[i, k]) * int(a["fc0.w"][o, k]) for k in range(6)) + int(a["fc0.b"][o])
            acc = max(-lim, min(lim - 1, acc))
            y = (acc * int(a["fc0.M"][o]) + (1 << l["S"] >> 1)) >> l["S"]
            assert int(got[i, o]) == max(0, min(255, y)), (i, o)


# -- class 4: overflow in the controller is counted -----------------------------------------

def test_controller_overflow_is_counted(net, tmp_path):
    m = json.loads(json.dumps(net.manifest))
    arrays = dict(net.arrays)
    ctrl1 = m["controller"]["layers"][0]
    ctrl1["acc_width"] = 10
    arrays["ctrl1.bias"] = np.zeros_like(arrays["ctrl1.bias"])
    small = load_network(save_network(tmp_path / "a", m, arrays))
    x = np.random.default_rng(0).integers(0, 256, (32, 1, 8, 8))
    r = run_network(small, x, bits="dynamic", trace=True)
    # independent count: the exact ctrl1 sums outside the 10-bit range
    feat = r.traces["ctrl1"]["input"]
    exact = feat @ arrays["ctrl1.weight"].astype(np.int64).T
    expected = int(((exact < -512) | (exact > 511)).sum())
    assert expected > 0
    assert r.overflow["ctrl1"] == expected
    assert r.totals()["overflow"] >= expected


# -- class 5: an empty batch ----------------------------------------------------------------

@pytest.mark.parametrize("bits", [None, "dynamic", "4"])
def test_empty_batch_gives_empty_outputs(net, tmp_path, capsys, bits):
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((0, 1, 8, 8), dtype=np.int64))
    y = tmp_path / "y.npz"
    argv = ["run", net.path, "--input", x, "--out", y, "--trace"] + (["--bits", bits] if bits else [])
    rc, out, err = _cli(argv, capsys)
    assert rc == 0, err
    assert json.loads(out.strip().splitlines()[-1])["images"] == 0
    with np.load(y, allow_pickle=False) as z:   # no pickled None
        assert z["output"].shape == (0, 10)
        assert z["bits"].shape == (0, len(net.qlayers))
        assert z["conv3.acc"].shape == (0,) + net.shapes["conv3"].output
