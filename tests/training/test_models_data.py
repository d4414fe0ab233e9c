"""Digits split, CIFAR-10 binary loader, ResNet-20 structure and its export to golden."""
import numpy as np
import pytest
import torch

from golden.formats import DQTValueError
from golden.network import load_network, run_network, save_network
from training.data import CIFAR_RECORD, digits_split, load_cifar10_bin
from training.export import export_network
from training.integer_torch import IntegerNetwork
from training.models import build_model, resnet20
from training.quant import QuantConfig


def test_digits_split_is_seeded_disjoint_and_large_enough():
    a, b = digits_split(0, 0.2), digits_split(0, 0.2)
    np.testing.assert_array_equal(a.x_test, b.x_test)
    assert len(a.y_test) == 360 and len(a.y_train) == 1797 - 360
    assert a.x_test.shape == (360, 1, 8, 8) and a.x_test.max() <= 16
    c = digits_split(1, 0.2)
    assert not np.array_equal(a.y_test, c.y_test)
    # disjoint: no training image equals the multiset of test images by index (the rows
    # come from one permutation, so the union is the whole data set)
    from sklearn.datasets import load_digits
    total = np.sort(np.concatenate([a.y_train, a.y_test]))
    np.testing.assert_array_equal(total, np.sort(load_digits().target))
    with pytest.raises(DQTValueError, match="gives 180 test images; the allowed range is"):
        digits_split(0, 0.1)


def _write_cifar(d, files, n, seed=0):
    rng = np.random.default_rng(seed)
    recs = {}
    for f in files:
        lab = rng.integers(0, 10, n).astype(np.uint8)
        img = rng.integers(0, 256, (n, 3, 32, 32)).astype(np.uint8)
        raw = np.concatenate([lab[:, None], img.reshape(n, -1)], axis=1)
        assert raw.shape[1] == CIFAR_RECORD
        raw.tofile(d / f)
        recs[f] = (img, lab)
    return recs


def test_cifar10_binary_loader(tmp_path):
    train = [f"data_batch_{i}.bin" for i in range(1, 6)]
    recs = _write_cifar(tmp_path, train + ["test_batch.bin"], 3)
    x, y = load_cifar10_bin(tmp_path, "train")
    assert x.shape == (15, 3, 32, 32) and x.dtype == np.uint8 and y.dtype == np.int64
    np.testing.assert_array_equal(x[:3], recs["data_batch_1.bin"][0])
    np.testing.assert_array_equal(y[12:], recs["data_batch_5.bin"][1])
    # red plane first: byte 1 of a record is pixel (0, 0) of channel 0
    raw = np.fromfile(tmp_path / "test_batch.bin", dtype=np.uint8)
    xt, yt = load_cifar10_bin(tmp_path, "test")
    assert xt[0, 0, 0, 0] == raw[1] and xt[0, 1, 0, 0] == raw[1 + 1024] and yt[0] == raw[0]
    xl, _ = load_cifar10_bin(tmp_path, "train", limit=4)
    assert len(xl) == 4


def test_cifar10_loader_errors(tmp_path):
    with pytest.raises(DQTValueError, match="does not exist"):
        load_cifar10_bin(tmp_path / "missing")
    _write_cifar(tmp_path, ["data_batch_1.bin", "data_batch_2.bin"], 1)
    with pytest.raises(DQTValueError, match=r"lacks \['data_batch_3.bin', 'data_batch_4.bin', "
                                            r"'data_batch_5.bin'\]"):
        load_cifar10_bin(tmp_path, "train")
    with pytest.raises(DQTValueError, match=r"lacks \['test_batch.bin'\]"):
        load_cifar10_bin(tmp_path, "test")
    (tmp_path / "test_batch.bin").write_bytes(b"\x00" * 100)
    with pytest.raises(DQTValueError, match="not a positive multiple of the 3073-byte record"):
        load_cifar10_bin(tmp_path, "test")
    with pytest.raises(DQTValueError, match="split 'val'"):
        load_cifar10_bin(tmp_path, "val")


def test_resnet20_structure():
    m = resnet20(QuantConfig())
    convs = [nd.name for nd in m.nodes if nd.type == "conv2d"]
    adds = [nd for nd in m.nodes if nd.type == "add"]
    # 1 stem + 9 blocks x 2 convolutions + 2 downsampling shortcuts; 19 + fc = 20 weight layers
    # on the main path as in He et al.
    assert len(convs) == 21 and len(adds) == 9 and m.qlayers[-1] == "fc"
    assert len(m.controlled) == len(m.qlayers) - 1
    y = m.forward_float(torch.rand(2, 3, 32, 32))
    assert y.shape == (2, 10)


def test_unknown_architecture():
    with pytest.raises(DQTValueError, match="architecture 'vgg' is not one of"):
        build_model("vgg", QuantConfig())


def test_resnet_export_runs_bit_exact_in_golden(tmp_path):
    """Residual adds export as golden ``add`` layers; torch integer path == golden."""
    torch.manual_seed(0)
    m = resnet20(QuantConfig(8, (2, 4, 8)), blocks=1, width=4, hidden=8)
    x = torch.rand(8, 3, 32, 32)
    m.train()
    for _ in range(3):
        m.forward_float(x)  # BatchNorm running statistics
    m.eval()
    m.forward_float(x, observe=True)
    for aq in m.act_quantizers():
        aq.init_from_ema()
    manifest, arrays = export_network(m, {"note": "untrained"})
    assert sum(l["type"] == "add" for l in manifest["layers"]) == 3
    net = load_network(save_network(tmp_path / "r8", manifest, arrays))
    codes = np.clip(np.rint(x.numpy() * 255), 0, 255).astype(np.int64)[:3]
    inet = IntegerNetwork(net.manifest, net.arrays)
    for bits in (8, 2, "dynamic"):
        want = run_network(net, codes, bits=bits)
        got, gb = inet.run(codes, bits)
        np.testing.assert_array_equal(got.numpy(), want.output)
        np.testing.assert_array_equal(gb.numpy(), want.bits)
    # the fake-quantized model and the integer network agree on the class at 8 bits
    fq, _ = m(torch.from_numpy(codes).float() / 255, 8)
    assert (fq.argmax(-1).numpy() == run_network(net, codes, bits=8).output.argmax(-1)).mean() >= 2 / 3
