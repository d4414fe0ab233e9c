# amaranth: UnusedElaboratable=no
"""``dqt rtl generate``: manifest contents, determinism, config validation, and (marked
``tools``) Verilator -Wall lint plus Yosys synth of every generated file."""
from __future__ import annotations

import json

import pytest

from dqt.cli import main as dqt_main
from golden.formats import DQTValueError
from rtl import registry
from rtl.generate import generate, instances_from_config, port_table

# a reduced engine keeps these tests quick; the defaults are covered by the tools test
_SMALL_ENGINE = {"name": "engine", "component": "engine",
                 "params": {"max_k": 64, "max_out": 8, "weight_depth": 16}}


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    out = tmp_path_factory.mktemp("rtl") / "out"
    man = generate(out, {"include_defaults": True, "instances": [_SMALL_ENGINE]})
    return out, man


def test_manifest_lists_every_component(generated):
    out, man = generated
    comps = {m["component"] for m in man["modules"]}
    assert comps == set(registry.REGISTRY)
    names = [m["name"] for m in man["modules"]]
    assert "nested_mac_msb" in names and "nested_shift_round_signed" in names
    for m in man["modules"]:
        text = (out / m["file"]).read_text()
        assert f"module {m['top']}(" in text
        assert m["latency"] is not None and m["clock_reset"]
        dirs = {p["name"]: p["dir"] for p in m["ports"]}
        assert dirs["clk"] == "input" and dirs["i__valid"] == "input"
        assert dirs["o__valid"] == "output" and dirs["i__ready"] == "output"
        for p in m["ports"]:   # every port of the manifest is declared with its width
            decl = f"[{p['width'] - 1}:0] {p['name']};" if p["width"] > 1 else f" {p['name']};"
            assert f"{p['dir']} {decl}".replace("  ", " ") in text.replace("  ", " "), p
    disk = json.loads((out / "manifest.json").read_text())
    assert disk == man


def test_payload_fields_are_described(generated):
    _, man = generated
    mac = next(m for m in man["modules"] if m["name"] == "nested_mac")
    payload = next(p for p in mac["ports"] if p["name"] == "i__payload")
    f = {x["name"]: x for x in payload["fields"]}
    assert f["x"]["count"] == 8 and f["x"]["elem_width"] == 8 and not f["x"]["signed"]
    assert f["w"]["signed"] and f["w"]["offset"] == 64
    assert sum(x["width"] for x in payload["fields"]) == payload["width"]


def test_generate_is_deterministic(tmp_path):
    cfg = {"include_defaults": False,
           "instances": [{"name": "mac", "component": "nested_mac", "params": {"pes": 2}},
                         {"name": "shift", "component": "nested_shift"}]}
    a = generate(tmp_path / "a", cfg)
    b = generate(tmp_path / "b", cfg)
    assert a == b
    for m in a["modules"]:
        a_bytes = (tmp_path / "a" / m["file"]).read_bytes()
        assert a_bytes == (tmp_path / "b" / m["file"]).read_bytes()
    assert (tmp_path / "a" / "manifest.json").read_bytes() == \
        (tmp_path / "b" / "manifest.json").read_bytes()


@pytest.mark.parametrize("cfg,msg", [
    ({"include_defaults": False,
      "instances": [{"component": "nested_mac", "params": {"pes": 0}}]}, "pes=0 is outside"),
    ({"instances": [{"component": "mac"}]}, "component='mac' is not one of"),
    ({"instances": [{"component": "nested_mac", "params": {"lanes": 2}}]}, "unknown parameter"),
    ({"instances": [{"component": "nested_shift", "name": "Bad-Name"}]}, "must match"),
    ({"colour": 1}, "unknown key"),
    ({"include_defaults": False}, "selects no instance"),
])
def test_config_errors(tmp_path, cfg, msg):
    with pytest.raises(DQTValueError, match=msg):
        generate(tmp_path / "x", cfg)
    assert not (tmp_path / "x").exists()   # nothing half-written


def test_cli_generate_and_bad_config(tmp_path, capsys):
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"include_defaults": False,
                               "instances": [{"name": "acc", "component": "accumulate"}]}))
    assert dqt_main(["rtl", "generate", "--out", str(tmp_path / "o"), "--config", str(cfg),
                     "--quiet"]) == 0
    assert (tmp_path / "o" / "dqt_acc.v").exists()
    cfg.write_text("{not json")
    assert dqt_main(["rtl", "generate", "--out", str(tmp_path / "p"), "--config", str(cfg)]) == 2
    assert "not valid JSON" in capsys.readouterr().err
    assert not (tmp_path / "p").exists()


def test_registry_build_and_port_table():
    comp = registry.build("requantize", {"acc_width": 20})
    assert comp.acc_width == 20 and comp.latency == 3
    names = [p["name"] for p in port_table(comp)]
    assert names[:2] == ["clk", "rst"] and "o__payload" in names
    assert len(instances_from_config(None)) == len(registry.DEFAULT_INSTANCES)


@pytest.mark.slow
@pytest.mark.tools
def test_lint_and_yosys_synth_every_default_file(tmp_path):
    """Verilator --lint-only -Wall (documented waivers only) and Yosys ``synth -noabc`` of
    the default output, every file, the engine at its default size included. ABC (gate-level
    optimisation of an already elaborated, mapped netlist) takes two thirds of the synthesis
    time here and finds no problem in the Verilog; the report's designs run it (with the
    liberty mapping) in tests/reports, and ``dqt rtl lint --full-synth`` runs it on every file."""
    from rtl.lint import check_dir, verilator_path
    from rtl.registry import REGISTRY
    if verilator_path() is None:
        pytest.skip("verilator is not installed")
    generate(tmp_path / "v")
    res = check_dir(tmp_path / "v", log_dir=tmp_path / "logs",
                    noabc_components=tuple(REGISTRY))
    bad = {k: v["lint_output"][-2000:] for k, v in res.items() if k != "_yosys" and not v["lint"]}
    assert not bad, bad
    assert res["_yosys"]["ok"], res["_yosys"]["log"][-3000:]


@pytest.mark.tools
def test_lint_verdicts_are_cached_by_content_and_failures_are_not(tmp_path, monkeypatch):
    """An unchanged file's clean verdict comes from the cache (no tool runs, the Yosys stat
    files still land in the log directory); changed bytes run the tools again, and a failing
    verdict is never cached."""
    import subprocess

    from rtl import lint
    if lint.verilator_path() is None:
        pytest.skip("verilator is not installed")
    monkeypatch.setenv("DQT_CACHE", str(tmp_path / "cache"))
    v = tmp_path / "t.v"
    v.write_text("module t(input wire a, output wire b);\n  assign b = ~a;\nendmodule\n")
    first = (lint.verilator_lint(v, "t"), lint.slang_check(v, "t"),
             lint.yosys_synth_check([(str(v), "t")], tmp_path / "l1"))
    assert all(ok for ok, _ in first)
    calls = []
    real = subprocess.run
    monkeypatch.setattr(lint.subprocess, "run", lambda *a, **k: calls.append(a) or real(*a, **k))
    monkeypatch.setattr(lint, "_slang_run", lambda *a: calls.append(a) or (False, "ran"))
    again = (lint.verilator_lint(v, "t"), lint.slang_check(v, "t"),
             lint.yosys_synth_check([(str(v), "t")], tmp_path / "l2"))
    assert again == first and calls == []
    assert (tmp_path / "l2" / "t.stat").read_text() == (tmp_path / "l1" / "t.stat").read_text()
    v.write_text("module t(input wire a, output wire b);\n  assign b = c;\nendmodule\n")
    for _ in range(2):
        ok, out = lint.verilator_lint(v, "t")
        assert not ok and "c" in out and len(calls) == 1
        calls.clear()


def test_generate_is_deterministic_across_processes(tmp_path):
    """Different hash seeds (dict/set iteration order) give the same bytes."""
    import os
    import subprocess
    import sys
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"include_defaults": False, "instances": [
        {"name": "mac", "component": "nested_mac", "params": {"pes": 2, "variant": "msb"}},
        {"name": "eng", "component": "engine",
         "params": {"max_k": 16, "max_out": 4, "weight_depth": 4}}]}))
    outs = []
    for seed in ("1", "4242"):
        out = tmp_path / f"o{seed}"
        # both processes convert (no cached Verilog), so Yosys's side is compared too
        env = dict(os.environ, PYTHONHASHSEED=seed, DQT_VERILOG_CACHE="0")
        subprocess.run([sys.executable, "-m", "dqt", "rtl", "generate", "--out", str(out),
                        "--config", str(cfg), "--quiet"], check=True, env=env)
        outs.append({p.name: p.read_bytes() for p in sorted(out.iterdir())})
    assert outs[0] == outs[1]


def test_cached_verilog_is_the_conversion_of_the_same_design(monkeypatch, tmp_path):
    """to_verilog keeps Yosys's output under the hash of the RTLIL: a hit gives the bytes of
    a fresh conversion without converting, and a changed design is converted anew."""
    from amaranth.back import verilog

    import rtl.generate as g
    monkeypatch.setattr(g, "_verilog_cache_dir", lambda: tmp_path)
    real = verilog._convert_rtlil_text
    calls = []
    monkeypatch.setattr(verilog, "_convert_rtlil_text",
                        lambda text, **kw: calls.append(text) or real(text, **kw))
    for n, pes in enumerate((2, 3, 2)):
        make = lambda: g.build("nested_mac", g.resolve_params("nested_mac", {"pes": pes}))  # noqa: E731
        fresh = verilog.convert(make(), name="dqt_m", emit_src=False, strip_internal_attrs=True)
        got = g.to_verilog(make(), "dqt_m")
        assert got == fresh
    # three fresh conversions by verilog.convert, two by to_verilog: pes=2 a second time hit
    assert len(calls) == 5 and len(list(tmp_path.glob("*.v"))) == 2


def test_an_unchanged_instance_is_not_elaborated_again(monkeypatch, tmp_path):
    """generate keeps each instance's Verilog and manifest facts under its component,
    parameters, top, the rtl/golden sources and the tool versions: a second run elaborates
    nothing and writes the bytes and manifest of an uncached run; a changed parameter or a
    changed source elaborates anew."""
    import rtl.generate as g
    cfg = lambda pes: {"include_defaults": False, "instances": [  # noqa: E731
        {"name": "m", "component": "nested_mac", "params": {"pes": pes}},
        {"name": "s", "component": "nested_shift", "params": {}}]}

    def run(out, pes=2):
        built.clear()
        man = g.generate(tmp_path / out, cfg(pes))
        return man, {p.name: p.read_bytes() for p in (tmp_path / out).iterdir()}, len(built)

    monkeypatch.setenv("DQT_VERILOG_CACHE", "0")
    built = []
    real = g.build
    monkeypatch.setattr(g, "build", lambda *a: built.append(a) or real(*a))
    uncached = run("plain")
    monkeypatch.setenv("DQT_VERILOG_CACHE", "1")
    monkeypatch.setattr(g, "_verilog_cache_dir", lambda: tmp_path / "cache")
    (tmp_path / "cache").mkdir()
    first, second = run("a"), run("b")
    assert first[2] == 2 and second[2] == 0
    assert uncached[:2] == first[:2] == second[:2]
    assert run("c", pes=3)[2] == 1                          # the changed instance only
    monkeypatch.setattr(g, "sources_digest", lambda: "other sources")
    assert run("d")[2] == 2


def test_regenerating_removes_the_modules_it_no_longer_writes(tmp_path):
    """A second run into the same directory leaves exactly its own modules: the files an
    earlier manifest listed and this one does not are removed; other files are left."""
    out = tmp_path / "v"
    generate(out, {"include_defaults": False, "instances": [
        {"name": "a", "component": "int_mac", "params": {}},
        {"name": "b", "component": "nested_shift", "params": {}}]})
    (out / "notes.txt").write_text("mine")
    man = generate(out, {"include_defaults": False,
                         "instances": [{"name": "b", "component": "nested_shift", "params": {}}]})
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [m["file"] for m in man["modules"]] + ["manifest.json", "notes.txt"])
