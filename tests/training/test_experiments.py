"""``dqt experiment``: every experiment's reduced version writes its table, plot and JSON,
and the figures follow from the golden model / exact arithmetic they are computed from."""
import json

import numpy as np
import pytest

from training.experiments import EXPERIMENTS, _conversions, run_experiment


def test_list_names_the_experiments(capsys):
    from dqt.cli import main
    assert main(["experiment", "--list"]) == 0
    out = capsys.readouterr().out
    names = ["shift-vs-requant", "operator-error", "alpha-sweep", "scale-ablation",
             "bitops-vs-energy", "budget-sweep"]
    assert sorted(EXPERIMENTS) == sorted(names)
    for n in names:
        assert n in out


def _run_quick(name, tmp_path, capsys):
    from dqt.cli import main
    assert main(["experiment", name, "--out", str(tmp_path), "--quick", "--json"]) == 0
    obj = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for suffix in (".json", ".md", ".png"):
        assert (tmp_path / f"{name}{suffix}").stat().st_size > 0
    assert obj == json.loads((tmp_path / f"{name}.json").read_text())
    assert obj["rows"] and all(len(r) == len(obj["columns"]) for r in obj["rows"])
    assert obj["quick"] is True
    return obj


# budget-sweep runs in test_budget_sweep_rows_are_the_adaptivity_figures
@pytest.mark.parametrize("name", sorted(set(EXPERIMENTS) - {"budget-sweep"}))
def test_reduced_experiment_writes_table_plot_and_json(name, tmp_path, capsys):
    _run_quick(name, tmp_path, capsys)


def test_experiment_errors(tmp_path, capsys):
    from dqt.cli import main
    assert main(["experiment", "nope", "--out", str(tmp_path)]) == 2
    assert "experiment 'nope' is not one of" in capsys.readouterr().err
    assert main(["experiment", "bitops-vs-energy", "--out", str(tmp_path / "o"),
                 "--report", str(tmp_path)]) == 2
    assert "no summary.json there" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_bitops_vs_energy_uses_the_reports_measured_engine(tmp_path, capsys):
    """With --report, each static mode's energy per image is the report's measured pJ/MAC at
    that width times the MACs (BitOPs / b^2); a report without measured engine energy is
    refused before any training."""
    rep = tmp_path / "rep"
    rep.mkdir()
    pj = {"2": 1.5, "4": 4.25, "6": 9.0, "8": 16.5, "dynamic": 5.0}
    (rep / "summary.json").write_text(json.dumps({"engine": {"name": "engine_fusion",
                                                             "energy_pj_per_mac": pj}}))
    obj = run_experiment("bitops-vs-energy", tmp_path / "o", quick=True, progress=False,
                         report=str(rep))
    assert obj["data"]["energy_source"] == "measured (engine_fusion, report)"
    for mode, m in obj["data"]["modes"].items():
        if mode != "dynamic":
            b = int(mode)
            assert m["energy_pj"] == pytest.approx(pj[mode] * m["bitops"] / (b * b))
    (rep / "summary.json").write_text(json.dumps({"designs": []}))
    from dqt.cli import main
    assert main(["experiment", "bitops-vs-energy", "--out", str(tmp_path / "p"),
                 "--report", str(rep)]) == 2
    assert "summary.json has no measured engine energy per MAC" in capsys.readouterr().err
    assert not (tmp_path / "p").exists()


def test_shift_conversions_are_the_nested_codes():
    """At b = n every method reproduces the n-bit grid; floor is biased by about half a
    coarse step, the bin-centre reading removes it."""
    import torch
    torch.manual_seed(0)
    w = torch.randn(64, 9)
    c8 = _conversions(w, 8, 8, True)
    for v in c8.values():
        assert (v - c8["nested round"]).abs().max() < 1e-6 or v is c8["nested floor, bin centre"]
    c4 = _conversions(w, 8, 4, True)
    s = w.abs().max() / 127 * 16
    assert float((c4["nested floor"] - w).mean()) == pytest.approx(-s / 2, rel=0.25)
    assert abs(float((c4["nested floor, bin centre"] - w).mean())) < float(s) / 8


def test_operator_error_bounds(tmp_path):
    """Wide constants round like FP32: |eps| <= 0.5 LSB (+ the constant's own error)."""
    obj = run_experiment("operator-error", tmp_path, quick=True, progress=False)
    d = obj["data"]
    for op in ("add", "multiply"):
        assert d[f"{op}/int32"]["max"] <= 0.5 + 1e-6
        assert d[f"{op}/fp32"]["max"] <= 0.5 + 1e-3
        assert d[f"{op}/int8"]["mean"] > d[f"{op}/int16"]["mean"]


def test_budget_sweep_rows_are_the_adaptivity_figures(tmp_path, capsys):
    """The reduced sweep writes its files, and each row repeats the adaptivity figures of
    its network (the golden static frontier and dynamic run)."""
    obj = _run_quick("budget-sweep", tmp_path, capsys)
    cols = obj["columns"]
    assert [r[0] for r in obj["rows"]] == [0.3, 0.5]
    for row, p in zip(obj["rows"], obj["data"]["points"]):
        d = dict(zip(cols, row))
        assert d["accuracy"] == p["dynamic"]["accuracy"]
        assert d["BitOPs / image"] == p["dynamic"]["bitops_per_image"]
        best = max(r["accuracy"] for r in p["pareto"]
                   if r["bitops_per_image"] <= d["BitOPs / image"])
        assert d["best static at <= BitOPs"] == best
        assert d["accuracy gain vs static (pts)"] == pytest.approx(100 * (d["accuracy"] - best))
