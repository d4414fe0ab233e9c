"""Export, round trip, determinism, integer torch path == golden, evaluation and CLI."""
import json

import numpy as np
import pytest

from golden import defaults

from golden.formats import DQTValueError
from golden.network import load_network, run_network, save_network
from training.evaluate import code_agreement, constants_equal, digits_test_codes, \
    digits_test_set, load_fakequant_model
from training.export import artifact_digest, export_network
from training.integer_torch import IntegerNetwork
from training.train import LOG_FILE, PLOT_FILE, STATE_FILE, Recipe, train_digits

TINY = dict(width=4, hidden=16, fp32_epochs=3, qat_epochs=1, batch_size=128, calib_batches=2,
            threads=1)


@pytest.fixture(scope="module")
def art(tmp_path_factory):
    out = tmp_path_factory.mktemp("art") / "digits"
    summary = train_digits(out, progress=False, **TINY)
    return out, summary


def test_artifact_files_and_metadata(art):
    out, summary = art
    for f in ("manifest.json", "weights.npz", LOG_FILE, PLOT_FILE, STATE_FILE):
        assert (out / f).is_file(), f
    net = load_network(out)  # validates schema and every array hash
    meta = net.manifest["metadata"]
    assert meta["fp32_accuracy"] == summary["fp32_accuracy"]
    assert meta["seed"] == 0 and meta["dataset"]["n_test"] >= 360
    assert Recipe.from_json(meta["recipe"]).width == 4
    assert net.candidate_bits == list(defaults.CANDIDATES) and net.mode == defaults.MODE.value
    assert net.mode == "floor"  # the paper's single right shift
    ctrl = net.controller
    assert ctrl["tap"] == "conv1" and ctrl["controlled"] == ["conv2", "conv3", "fc"]
    last = ctrl["layers"][-1]
    assert net.arrays[last["weight"]].shape[0] == 3 * 4 and last["requant"] is False
    log = json.loads((out / LOG_FILE).read_text())
    assert len(log["fp32"]) == 3 and len(log["qat"]) == 1
    assert all(np.isfinite(r["loss"]) for r in log["fp32"] + log["qat"])


def test_save_load_round_trip(art, tmp_path):
    out, _ = art
    net = load_network(out)
    save_network(tmp_path / "copy", net.manifest, net.arrays)
    again = load_network(tmp_path / "copy")
    assert again.manifest == net.manifest
    for k, a in net.arrays.items():
        assert again.arrays[k].dtype == a.dtype
        np.testing.assert_array_equal(again.arrays[k], a)
    assert artifact_digest(tmp_path / "copy") == artifact_digest(out)


def test_fakequant_state_round_trip_reexports_the_same_network(art):
    out, _ = art
    model = load_fakequant_model(out)
    manifest, arrays = export_network(model, load_network(out).manifest["metadata"])
    net = load_network(out)
    for k, a in arrays.items():
        np.testing.assert_array_equal(a, net.arrays[k])
    assert [l["name"] for l in manifest["layers"]] == [l["name"] for l in net.layers]


def test_same_seed_same_artifact(art, tmp_path):
    out, summary = art
    again = train_digits(tmp_path / "again", progress=False, **TINY)
    assert again["digest"] == summary["digest"]
    other = train_digits(tmp_path / "other", progress=False, **dict(TINY, seed=1, fp32_epochs=1))
    assert other["digest"] != summary["digest"]


def _codes(out, k=None):
    x, y = digits_test_codes(out)
    return (x, y) if k is None else (x[:k], y[:k])


@pytest.mark.parametrize("bits", [2, 4, 6, 8, None, "dynamic", "random"])
def test_integer_torch_equals_golden(art, bits):
    out, _ = art
    net = load_network(out)
    x, _ = _codes(out, 120)
    if bits == "random":
        rng = np.random.default_rng(0)
        bits = rng.choice(net.candidate_bits, size=(len(x), len(net.qlayers)))
    want = run_network(net, x, bits=bits, impl="fast", trace=True)
    got, gbits, accs = IntegerNetwork(net.manifest, net.arrays).run(x, bits, want_acc=True)
    np.testing.assert_array_equal(gbits.numpy(), want.bits)
    np.testing.assert_array_equal(got.numpy(), want.output)
    for name, a in accs.items():
        np.testing.assert_array_equal(a.numpy(), want.traces[name]["acc"], err_msg=name)


@pytest.mark.parametrize("overflow", ["wrap", "saturate"])
def test_integer_torch_equals_golden_on_overflow_and_gemmlowp(art, overflow):
    """Directed corner cases: accumulators too narrow (overflow policy applies) and the
    gemmlowp requantization rule, on an edited copy of the exported network."""
    out, _ = art
    net = load_network(out)
    man = json.loads(json.dumps(net.manifest))
    arrays = dict(net.arrays)
    conv2 = next(l for l in man["layers"] if l["name"] == "conv2")
    conv2.update(acc_width=14, overflow=overflow)  # far below the exact sums' range
    conv3 = next(l for l in man["layers"] if l["name"] == "conv3")
    M = arrays["conv3.M"].astype(np.float64)
    # Same ratios as M / 2^S, rescaled into gemmlowp's [2^30, 2^31) multiplier range.
    e = int(np.ceil(np.log2((1 << 30) / M.min())))
    Mg = np.clip(np.round(M * 2.0 ** e), 1 << 30, (1 << 31) - 1).astype(np.int64)
    arrays["conv3.M"] = Mg
    conv3.update(rule="gemmlowp", S=max(0, min(31, conv3["S"] + e - 31)))
    man.pop("arrays")
    net2 = load_network(save_network(out.parent / f"edited_{overflow}", man, arrays))
    x, _ = _codes(out, 64)
    want = run_network(net2, x, bits="dynamic")
    assert want.totals()["overflow"] > 0
    got, gb = IntegerNetwork(net2.manifest, net2.arrays).run(x, "dynamic")
    np.testing.assert_array_equal(gb.numpy(), want.bits)
    np.testing.assert_array_equal(got.numpy(), want.output)


def test_cli_eval_figures(art, capsys):
    """``dqt eval ART --json``: the last line is the JSON object with the figures."""
    from dqt.cli import main
    out, _ = art
    assert main(["eval", str(out), "--json"]) == 0
    r = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert r["n_test"] >= 360
    assert set(r["static_accuracy"]) == {"2", "4", "6", "8"}
    assert r["integer_vs_torch_identical"] == 1.0
    assert set(r["integer_vs_torch_identical_static"].values()) == {1.0}
    assert r["fakequant_vs_integer_top1_agreement"] == 1.0
    assert r["fakequant_vs_integer_code_agreement"] == 1.0
    assert r["fakequant_vs_integer_constants_equal"] is True
    assert 0 < r["controller_parameter_share"] < 0.5
    fr = r["clean"]["static_frontier"]
    assert len(fr) == 4 ** 4 and "graded" not in r
    assert 2.0 <= r["dynamic_avg_bits"] <= 8.0
    assert 0.0 < r["dynamic_bitops_ratio"] <= 1.0
    assert 0.0 <= r["dynamic_accuracy"] <= 1.0 and 0.0 <= r["fp32_accuracy"] <= 1.0
    # the fake-quant accuracies stored at export and the golden ones describe one network
    meta = load_network(out).manifest["metadata"]
    for b, a in meta["fakequant_static_accuracy"].items():
        assert abs(a - r["static_accuracy"][b]) <= 0.01


def test_test_codes_are_input_codes(art):
    out, _ = art
    x, y = digits_test_codes(out)
    assert x.shape == (360, 1, 8, 8) and x.dtype == np.int64 and y.shape == (360,)
    assert x.min() >= 0 and x.max() <= 255 and set(np.unique(x % 15)) == {0}


@pytest.mark.parametrize("argv, msg", [
    (["--B", "2,4,9"], "--B: bit-width 9 in B=[2, 4, 9] is outside the allowed range [1, n=8]"),
    (["--n", "20"], "n=20 is outside the allowed range [2, 16]"),
    (["--first-bits", "5"], "--first-bits: first_bits=5 is not in the candidate set B=[2, 4, 6, 8]"),
    (["--B", "3,5"], "--first-bits 8 (the default) is not in --B [3, 5]"),
    (["--dataset", "cifar10"], "dataset 'cifar10' needs the directory of the binary batches"),
    (["--dataset", "cifar10", "--data", "/nonexistent"], "CIFAR-10 directory '/nonexistent' does not exist"),
    (["--data", "/tmp"], "--data is only used with --dataset cifar10"),
    (["--ctrl-loss", "x"], "--ctrl-loss: ctrl_loss 'x' is not one of ['gumbel', 'expected', 'budget']"),
    (["--dataset", "digits-graded", "--budget", "0.05"],
     "--budget: budget=0.05 is outside the allowed range [0.0907, 1] for this network"),  # (8,2,2,2) BitOPs / (8,8,8,8)
    (["--dataset", "digits-graded", "--budget", "2"], "--budget: budget=2.0 is outside the allowed range (0, 1]"),
    (["--budget", "0.3"], "--budget: budget=0.3 is used by ctrl_loss 'budget' only (got 'gumbel')"),
    (["--levels", "1"], "--levels: levels=1 is outside the allowed range [2, 64]"),
    (["--device", "tpu"], "--device: device 'tpu' is not one of ['cpu', 'cuda']"),
    (["--B-prime", "2,3"], "B_prime bit-width=3 is not in the candidate set"),
    (["--target", "9"], "target=9.0 is outside the allowed range [2, 8]"),
    (["--dataset", "mnist"], "--dataset 'mnist' is not one of ['digits', 'digits-graded', 'cifar10']"),
])
def test_cli_train_rejects_bad_config(tmp_path, capsys, argv, msg):
    from dqt.cli import main
    assert main(["train", "--out", str(tmp_path / "x"), "--no-progress"] + argv) == 2
    assert msg in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_eval_rejects_missing_artifact(tmp_path, capsys):
    from dqt.cli import main
    assert main(["eval", str(tmp_path / "nothing")]) == 2
    assert "no manifest.json" in capsys.readouterr().err


def test_integer_runner_rejects_bits_outside_B(art):
    out, _ = art
    net = load_network(out)
    x, _ = _codes(out, 2)
    with pytest.raises(DQTValueError, match=r"bit-width 5 is not in the candidate set B=\[2, 4, 6, 8\]"):
        IntegerNetwork(net.manifest, net.arrays).run(x, 5)


def test_cli_train_writes_an_artifact(tmp_path, capsys):
    from dqt.cli import main
    out = tmp_path / "cli"
    rc = main(["train", "--dataset", "digits", "--out", str(out), "--no-progress", "--json",
               "--width", "4", "--fp32-epochs", "1", "--qat-epochs", "1", "--batch-size", "256",
               "--threads", "1", "--B", "2,8", "--mode", "floor"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    net = load_network(out)
    assert summary["digest"] == artifact_digest(out)
    assert net.candidate_bits == [2, 8] and net.mode == "floor"
    assert net.manifest["metadata"]["recipe"]["B_prime"] == [2, 8]


# ---- the evaluation pass is the integer network, code for code ---------------------------
@pytest.mark.parametrize("mode", [2, 4, 6, 8, "dynamic"])
def test_fakequant_eval_pass_is_bit_exact(art, mode):
    """Every code of every layer (and the chosen widths) on the whole digits test split."""
    out, _ = art
    net = load_network(out)
    x, _ = digits_test_set(out)
    r = code_agreement(load_fakequant_model(out), net, x, [mode])
    assert r["per_layer"][str(mode)] == {k: 1.0 for k in r["per_layer"][str(mode)]}
    assert set(r["per_layer"][str(mode)]) >= set(net.qlayers) | {"bits"}
    assert r["fraction"] == 1.0


def _edited(out, tmp_path, name, array, delta):
    net = load_network(out)
    man = json.loads(json.dumps(net.manifest))
    man.pop("arrays")
    arrays = dict(net.arrays)
    arrays[array] = arrays[array] + delta
    return load_network(save_network(tmp_path / name, man, arrays))


def test_a_wrong_export_fails_the_code_and_constant_checks(art, tmp_path):
    out, _ = art
    model = load_fakequant_model(out)
    x, _ = digits_test_set(out)
    assert constants_equal(model, load_network(out))
    bias = _edited(out, tmp_path, "bias", "conv2.bias", 1)   # one accumulator unit
    assert code_agreement(model, bias, x, [8])["fraction"] < 1.0
    assert not constants_equal(model, bias)
    M = _edited(out, tmp_path, "M", "conv3.M", 1)
    assert not constants_equal(model, M)
    assert code_agreement(model, M, x, [8])["fraction"] <= 1.0
