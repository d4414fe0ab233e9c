"""Graded digits, the static frontier, the adaptivity figures, CIFAR-10 training and the
ResNet-20 integer evaluation pass."""
import json

import numpy as np
import pytest
import torch

from golden.network import load_network, run_network, save_network
from training.data import CIFAR_RECORD, GRADED_FAMILIES, corrupt, digits_graded_split, digits_split
from training.evaluate import code_agreement, evaluate, load_fakequant_model, held_out_sets
from training.export import export_network
from training.frontier import adaptivity, entropy_bits, layer_macs, static_frontier
from training.models import resnet20
from training.quant import QuantConfig
from training.train import train

TINY = dict(width=4, hidden=8, fp32_epochs=1, qat_epochs=1, batch_size=256, calib_batches=2,
            threads=1)


def test_graded_split_is_seeded_graded_and_disjoint():
    a = digits_graded_split(0, levels=5, copies=1)
    b = digits_graded_split(0, levels=5, copies=1)
    np.testing.assert_array_equal(a.x_test, b.x_test)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert not np.array_equal(digits_graded_split(1, levels=5, copies=1).x_test, a.x_test)
    base = digits_split(0)
    nt = len(base.y_test)
    assert a.x_test.shape == (5 * nt, 1, 8, 8) and len(a.x_train) == len(base.y_train)
    assert np.bincount(a.level_test).tolist() == [nt] * 5
    assert set(np.unique(a.family_test)) == set(range(len(GRADED_FAMILIES)))
    # level 0 is the clean test image; test images come from the test half only
    np.testing.assert_array_equal(a.x_test[a.level_test == 0], base.x_test)
    np.testing.assert_array_equal(a.y_test, np.tile(base.y_test, 5))
    # severity grows with the level: mean |corrupted - clean| strictly increasing
    dev = [np.abs(a.x_test[a.level_test == l] - base.x_test).mean() for l in range(5)]
    assert all(u < v for u, v in zip(dev, dev[1:])), dev
    # images stay on the input grid (input code = 15 * pixel, exact)
    codes = a.x_test.astype(np.float64) * 15
    assert np.abs(codes - np.rint(codes)).max() < 1e-4 and a.x_test.max() <= 16


@pytest.mark.parametrize("family", GRADED_FAMILIES)
def test_each_corruption_moves_the_image(family):
    img = digits_split(0).x_test[0]
    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(corrupt(img, family, 0.0, rng), img)
    assert np.abs(corrupt(img, family, 1.0, rng) - img).mean() > 0.5


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    out = tmp_path_factory.mktemp("graded") / "g"
    train(out, progress=False, dataset="digits-graded", levels=3, copies=1, **TINY)
    return out


def test_graded_default_controller_holds_its_budget(graded):
    """The default graded recipe trains the controller against budget labels: every epoch
    logs a multiplier from the grid, and the recipe stored is the budget one."""
    from training.train import _LAM_GRID, DATASET_DEFAULTS, Recipe
    log = json.loads((graded / "training_log.json").read_text())
    r = Recipe.from_json(log["recipe"])
    assert r.ctrl_loss == "budget" and r.budget == DATASET_DEFAULTS["digits-graded"]["budget"]
    lo, hi = float(_LAM_GRID[0]), float(_LAM_GRID[-1])
    assert log["qat"] and all(lo * (1 - 1e-6) <= row["lam"] <= hi * (1 + 1e-6) for row in log["qat"])


def test_expected_controller_loss_still_trains(tmp_path):
    out = tmp_path / "e"
    s = train(out, progress=False, dataset="digits-graded", levels=3, copies=1,
              ctrl_loss="expected", **TINY)
    log = json.loads((out / "training_log.json").read_text())
    assert log["recipe"]["ctrl_loss"] == "expected" and log["recipe"]["budget"] is None
    assert 2.0 <= s["fakequant_dynamic_avg_bits"] <= 8.0


def test_frontier_rows_are_the_golden_runs(graded):
    net = load_network(graded)
    x, y, _ = held_out_sets(graded)["test"]
    from golden.network import quantize_input
    codes = quantize_input(net, x[::9])
    y = y[::9]
    fr = static_frontier(net, codes, y)
    B, L = net.candidate_bits, len(net.qlayers)
    assert len(fr) == len(B) ** L
    assert len({tuple(r["assignment"].values()) for r in fr}) == len(fr)
    macs = layer_macs(net, codes)
    rng = np.random.default_rng(0)
    for r in [fr[i] for i in rng.choice(len(fr), 6, replace=False)]:
        g = run_network(net, codes, bits=r["assignment"])
        assert r["accuracy"] == float((g.output.argmax(-1) == y).mean())
        assert r["bitops_per_image"] * len(y) == g.totals()["bitops"]
        assert r["bitops_per_image"] == sum(macs[q] * b * b for q, b in r["assignment"].items())
    best = max(fr, key=lambda r: r["accuracy"])
    assert best["pareto"] and all(not r["pareto"] for r in fr if r["accuracy"] < fr[0]["accuracy"]
                                  and r["bitops_per_image"] > fr[0]["bitops_per_image"])


def test_adaptivity_figures_follow_their_definitions(graded):
    net = load_network(graded)
    x, y, lv = held_out_sets(graded)["test"]
    from golden.network import quantize_input
    codes = quantize_input(net, x[::5])
    y, lv = y[::5], lv[::5]
    a = adaptivity(net, codes, y, lv)
    d = run_network(net, codes, bits="dynamic")
    dyn = a["dynamic"]
    assert dyn["accuracy"] == float((d.output.argmax(-1) == y).mean())
    assert dyn["bitops_per_image"] == pytest.approx(d.totals()["bitops"] / len(y)
                                                    + a["controller_bitops_per_image"])
    assert a["controller_bitops_per_image"] > 0
    assert dyn["assignment_entropy_bits"] == pytest.approx(entropy_bits(d.bits))
    assert set(dyn["avg_bits_by_level"]) == {"0", "1", "2"}
    fr = a["static_frontier"]
    ok = [r["bitops_per_image"] for r in fr if r["accuracy"] >= dyn["accuracy"]]
    if ok:
        assert a["bitops_saving_vs_static"] == pytest.approx(1 - dyn["bitops_per_image"] / min(ok))
    cheap = [r["accuracy"] for r in fr if r["bitops_per_image"] <= dyn["bitops_per_image"]]
    if cheap:
        assert a["accuracy_gain_vs_static_pts"] == pytest.approx(100 * (dyn["accuracy"] - max(cheap)))


def test_entropy_bits():
    assert entropy_bits(np.array([[2, 4], [2, 4]])) == 0.0
    assert entropy_bits(np.array([[2], [4], [6], [8]])) == pytest.approx(2.0)


def test_eval_of_a_graded_artifact(graded, capsys):
    from dqt.cli import main
    assert main(["eval", str(graded), "--json"]) == 0
    r = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert r["fakequant_vs_integer_code_agreement"] == 1.0
    for split in ("graded", "clean"):
        assert {"accuracy", "bitops_per_image", "avg_bits", "assignment_entropy_bits"} <= set(
            r[split]["dynamic"])
        assert "bitops_saving_vs_static" in r[split] and "accuracy_gain_vs_static_pts" in r[split]
    assert r["graded"]["n_images"] == 3 * r["clean"]["n_images"]
    assert (graded / "frontier.png").is_file()


def _cifar_dir(path, n=6, seed=0):
    rng = np.random.default_rng(seed)
    path.mkdir()
    for f in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        rec = rng.integers(0, 256, (n, CIFAR_RECORD), dtype=np.uint8)
        rec[:, 0] = rng.integers(0, 10, n)
        rec.tofile(path / f)
    return path


def test_cifar10_training_on_a_tiny_binary_set_is_bit_exact(tmp_path, capsys):
    """``dqt train --dataset cifar10`` trains ResNet-20 and its evaluation pass equals the
    exported network code for code (every layer, static and dynamic)."""
    from dqt.cli import main
    data = _cifar_dir(tmp_path / "cifar")
    out = tmp_path / "r20"
    rc = main(["train", "--dataset", "cifar10", "--data", str(data), "--out", str(out),
               "--no-progress", "--json", "--width", "4", "--hidden", "8", "--fp32-epochs", "1",
               "--qat-epochs", "1", "--batch-size", "16", "--threads", "1", "--device", "cpu"])
    assert rc == 0
    net = load_network(out)
    # ResNet-20: 19 3x3 convolutions + fc, plus the 2 projection shortcuts
    assert len(net.qlayers) == 22 and sum(l["type"] == "add" for l in net.layers) == 9
    x, _, _ = held_out_sets(out)["test"]
    r = code_agreement(load_fakequant_model(out), net, x[:4], [8, 2, "dynamic"])
    assert r["fraction"] == 1.0, r["per_layer"]


def test_resnet20_eval_pass_is_bit_exact_untrained(tmp_path):
    torch.manual_seed(0)
    m = resnet20(QuantConfig(8, (2, 4, 8), "round"), width=4, hidden=8)
    x = torch.rand(6, 3, 32, 32)
    m.train()
    m.forward_float(x)
    m.eval()
    m.forward_float(x, observe=True)
    for aq in m.act_quantizers():
        aq.init_from_ema()
    manifest, arrays = export_network(m)
    net = load_network(save_network(tmp_path / "r", manifest, arrays))
    xs = (torch.round(x * 255) / 255).numpy()
    r = code_agreement(m, net, xs, [8, 4, 2, "dynamic"])
    assert r["fraction"] == 1.0, r["per_layer"]
