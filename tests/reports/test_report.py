"""End-to-end report on a few designs: files exist and parse; missing tools degrade."""
import json

import pytest

from dqt.cli import main
from golden.formats import DQTValueError
from reports.build import DESIGN_KEYS, SUMMARY_KEYS, build_report
from reports.render import PLOTS, conclusion, plots_for

from .conftest import need

pytestmark = [pytest.mark.tools]

DESIGNS = ["int_mac_n8", "nested_shift_floor_n8"]


def _check_files(out):
    s = json.loads((out / "summary.json").read_text())
    for k in SUMMARY_KEYS:
        assert k in s
    for d in s["designs"]:
        for k in DESIGN_KEYS:
            assert k in d
    for p in plots_for(s):
        assert (out / p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # one master width in the list: no area-vs-width plot
    assert (PLOTS[0] in plots_for(s)) == (len({d["n"] for d in s["designs"]}) > 1)
    assert (out / PLOTS[0]).exists() == (PLOTS[0] in plots_for(s))
    html = (out / "index.html").read_text()
    assert html.startswith("<!doctype html>") and "data:image/png;base64," in html
    assert "</table>" in html and html.rstrip().endswith("</html>")
    md = (out / "report.md").read_text()
    assert "## Headline" in md and "## Transition cost" in md
    # the first screen: title, the computed conclusion, then the headline table
    head = md.splitlines()
    assert head[0] == "# DQT silicon-cost report" and head[2] == conclusion(s["headline"])
    assert head[4].startswith("## Headline") and head[6].startswith("| design")
    assert "e+0" not in md.split("## Provenance")[0], "a number written with an exponent"
    for d in s["designs"]:
        assert d["source"] == "rtl" and d["catalog"] == d["family"]
    assert not list(out.parent.glob(f".{out.name}.*")), "temporary directory left behind"
    return s


@pytest.mark.slow
@need("yosys", "sta", "nextpnr-ice40", "nextpnr-ecp5")
def test_report_builds_and_parses(tiny_artifact, liberty, tmp_path):
    out = tmp_path / "rep"
    s = build_report(out, artifact=tiny_artifact, liberty=liberty, fast=True, jobs=1,
                     include_rtl=False, progress=False, designs=DESIGNS)
    s2 = _check_files(out)
    assert [d["name"] for d in s2["designs"]] == DESIGNS
    by = {d["name"]: d for d in s["designs"]}
    for name in DESIGNS:
        d = by[name]
        assert d["transistors"] > 0 and d["sky130_um2"] > 0, d["notes"]
        assert d["fmax_mhz_ice40"] > 0 and d["ice40_luts"] > 0, d["notes"]
        assert set(d["energy_pj_per_mac"]) == {"2", "4", "6", "8"}, d["notes"]
    assert s["provenance"]["liberty"] == liberty.name
    assert set(s["accuracy"]) == {"static 2", "static 4", "static 6", "static 8"}
    assert "digits" in s["transition"]["networks"]
    assert s["headline"] and s["headline"][0]["name"] == "int_mac_n8"


@need("yosys")
def test_missing_liberty_and_tools_degrade(tiny_artifact, tmp_path, monkeypatch):
    monkeypatch.delenv("DQT_LIBERTY", raising=False)
    monkeypatch.setenv("DQT_NO_LIBERTY", "1")
    monkeypatch.setenv("DQT_NO_STA", "1")
    monkeypatch.setenv("DQT_NO_NEXTPNR_ICE40", "1")
    monkeypatch.setenv("DQT_NO_NEXTPNR_ECP5", "1")
    out = tmp_path / "rep"
    s = build_report(out, artifact=tiny_artifact, liberty=None, fast=True, jobs=1,
                     include_rtl=False, progress=False, designs=["int_mac_n8"])
    _check_files(out)
    d = s["designs"][0]
    assert d["transistors"] > 0 and d["ice40_luts"] > 0          # Yosys-only parts still build
    assert d["sky130_um2"] is None and d["sta_critical_path_ns"] is None
    assert d["energy_pj_per_mac"] is None and d["fmax_mhz_ice40"] is None
    assert d["energy_pj_per_mac_model"]["8"] > 0                 # the model needs no tool
    assert any("liberty" in n and "ciel enable --pdk-family=sky130" in n for n in s["notes"])
    assert any("sta not found" in n and "apt-get install opensta" in n for n in s["notes"])
    assert any("nextpnr-ice40 not found" in n for n in d["notes"])


def test_no_yosys_still_writes_report(tmp_path, monkeypatch):
    monkeypatch.setenv("DQT_NO_YOSYS", "1")
    out = tmp_path / "rep"
    s = build_report(out, fast=True, jobs=1, include_rtl=False, progress=False,
                     designs=["int_mac_n8"])
    _check_files(out)
    assert s["designs"][0]["transistors"] is None
    assert any("yosys not found" in n for n in s["designs"][0]["notes"])
    assert any("stand-in" in n for n in s["notes"])


def test_cli_bad_inputs_exit_2(tmp_path, capsys):
    out = tmp_path / "rep"
    assert main(["report", "--out", str(out), "--liberty", str(tmp_path / "nope.lib")]) == 2
    assert "nope.lib" in capsys.readouterr().err and not out.exists()
    assert main(["report", "--out", str(out), "--artifact", str(tmp_path)]) == 2
    assert "manifest.json" in capsys.readouterr().err and not out.exists()
    assert main(["report", "--out", str(out), "--jobs", "0"]) == 2


def test_experiments_section(tmp_path, monkeypatch):
    """``dqt report --experiments DIR``: every result ``dqt experiment`` wrote there becomes a
    table (its rows as written) and an embedded plot; a malformed result is refused, by name,
    before any synthesis, with no report written."""
    import base64

    from training.experiments import run_experiment
    exp = tmp_path / "exp"
    res = run_experiment("operator-error", exp, quick=True, progress=False)
    monkeypatch.setenv("DQT_NO_YOSYS", "1")
    out = tmp_path / "rep"
    s = build_report(out, fast=True, jobs=1, include_rtl=False, progress=False,
                     designs=["int_mac_n8"], experiments=exp)
    e, = s["experiments"]
    assert e["name"] == "operator-error" and e["rows"] == res["rows"] and e["quick"]
    md = (out / "report.md").read_text()
    assert "### operator-error" in md and " | ".join(res["columns"]) in md
    png = (exp / "operator-error.png").read_bytes()
    assert (out / e["png"]).read_bytes() == png
    assert base64.b64encode(png).decode() in (out / "index.html").read_text()
    assert json.loads((out / "summary.json").read_text())["experiments"][0]["rows"] == res["rows"]
    (exp / "broken.json").write_text(json.dumps({"experiment": "x", "columns": ["a"],
                                                 "rows": [[1, 2]]}))
    with pytest.raises(DQTValueError, match="broken.json: 'rows' must be"):
        build_report(tmp_path / "rep2", fast=True, jobs=1, include_rtl=False, progress=False,
                     designs=["int_mac_n8"], experiments=exp)
    assert not (tmp_path / "rep2").exists()
    assert main(["report", "--out", str(tmp_path / "rep3"), "--experiments",
                 str(tmp_path / "none")]) == 2
    assert not (tmp_path / "rep3").exists()


def _row(name, um2, pj8, pj4):
    return {"name": name, "unit": "MAC", "sky130_um2": um2, "ice40_luts": 1, "pj_8b": pj8,
            "pj_4b": pj4, "pj_2b": None}


def test_conclusion_is_computed_from_the_numbers():
    rows = [_row("int_mac_n8", 4000.0, 10.0, 8.0), _row("nested_mac_floor_right_n8", 5000.0, 9.0, 6.0),
            _row("fp32_requant_n8", 30000.0, 80.0, 80.0), _row("requantize_n8", 9000.0, 20.0, 20.0)]
    c = conclusion(rows)
    assert "1.25x the area" in c and "0.60x the integer MAC at 8 bits" in c
    assert "0.75x the integer MAC fed 4-bit codes" in c and "4.00x the dyadic" in c
    rows[1]["sky130_um2"] = 8000.0
    assert "2.00x the area" in conclusion(rows)
    assert "no comparison" in conclusion(rows[2:])


def test_numbers_are_written_without_exponents():
    from reports.render import _fmt
    assert [_fmt(v) for v in (4321.0, 12345678.9, 0.000123, 3.14159, 0.5, 7, None)] == \
        ["4,321", "12,345,679", "0.000123", "3.14", "0.500", "7", "–"]


def test_engine_summary_reads_the_simulation(tmp_path):
    from reports.build import ENGINE_MODES, engine_summary
    from rtl.registry import COST_POINTS
    row = {"name": "engine", "family": "engine", "params": COST_POINTS["engine"][1],
           "sky130_um2": 123456.0, "memory_bits": 8192}
    sim = tmp_path / "sim.json"
    sim.write_text(json.dumps({"images": 4, "engine_cycles_by_mode": {"2": 4000, "dynamic": 4004},
                               "engine": {}}))
    e = engine_summary([row], sim)
    assert e["cycles_per_image"] == {"2": 1000, "dynamic": 1001} and e["images_sampled"] == 4
    assert set(e["energy_pj_per_mac"]) == set(ENGINE_MODES) and e["sky130_um2"] == 123456.0
    assert engine_summary([row], None)["cycles_per_image"] == {}
    assert engine_summary([], sim) is None


def test_engine_summary_takes_the_measured_energy_and_renders_it(tmp_path):
    """A gate-level energy result fills the engine object (it wins over the sim result's
    cycles) and the report's engine section shows pJ/MAC per mode with its ratio to 8 bits."""
    from reports.build import ENGINE_MODES, engine_summary
    from reports.render import _engine_section
    from rtl.registry import COST_POINTS
    row = {"name": "engine", "family": "engine", "params": COST_POINTS["engine"][1],
           "sky130_um2": 123456.0, "memory_bits": 8192}
    modes = list(ENGINE_MODES)
    energy = {"cycles_per_image": dict.fromkeys(modes, 900),
              "energy_uj_per_image": dict.fromkeys(modes, 0.5),
              "energy_pj_per_mac": {m: 10.0 + i for i, m in enumerate(modes)},
              "images_sampled": 2, "macs_per_image": dict.fromkeys(modes, 50000),
              "power_mw": dict.fromkeys(modes, 5.0), "elements_checked": 1234, "mismatches": 0,
              "seconds": 3.0, "engine_params": {"lanes": 2, "pes": 4}, "sky130_um2": 999.0,
              "memory_bits": 4096}
    sim = tmp_path / "sim.json"
    sim.write_text(json.dumps({"images": 4, "engine_cycles_by_mode": {"2": 4000}}))
    e = engine_summary([row], sim, energy)
    assert e["energy_pj_per_mac"] == energy["energy_pj_per_mac"]
    assert e["cycles_per_image"]["2"] == 900 and e["images_sampled"] == 2
    assert e["measured_on"] == {"params": {"lanes": 2, "pes": 4}, "sky130_um2": 999.0,
                                "memory_bits": 4096}
    assert "gate-level" in e["note"]
    text = "\n".join(_engine_section(e))
    pj2, pj8 = energy["energy_pj_per_mac"]["2"], energy["energy_pj_per_mac"]["8"]
    assert f"| 2 | 900 | 0.500 | {pj2:.2f} | {pj2 / pj8:.3f} |" in text, text
    assert '{"lanes": 2, "pes": 4}' in text


def test_report_notes_why_engine_energy_is_missing(tmp_path, monkeypatch):
    from reports import build
    monkeypatch.setenv("DQT_NO_STA", "1")
    notes = []
    assert build._engine_energy(tmp_path, "lib.lib", 1, False, notes) is None
    assert notes == ["engine energy not measured: no OpenSTA"]
    with pytest.raises(DQTValueError, match="engine_images=-1 is outside 0..360"):
        build_report(tmp_path / "r", engine_images=-1)
    assert not (tmp_path / "r").exists()


def test_headline_engine_row_carries_the_measured_energy():
    from reports.build import _headline
    eng = {"name": "engine", "unit": "MAC", "sky130_um2": 5.0, "ice40_luts": 7,
           "energy_pj_per_mac": None, "energy_pj_per_mac_model": None}
    energy = {"energy_pj_per_mac": {"8": 54.0, "4": 51.5, "2": 48.8, "dynamic": 51.8}}
    row, = _headline([eng], energy)
    assert (row["pj_8b"], row["pj_4b"], row["pj_2b"]) == (54.0, 51.5, 48.8)
    assert _headline([eng])[0]["pj_4b"] is None


def _measured(modes, pj, cycles, params, um2):
    """An engine_energy-shaped result with the given pJ/MAC and cycles per mode."""
    return {"cycles_per_image": dict(zip(modes, cycles)),
            "energy_uj_per_image": {m: p * 1e-6 * 50000 for m, p in zip(modes, pj)},
            "energy_pj_per_mac": dict(zip(modes, pj)), "images_sampled": 2,
            "macs_per_image": dict.fromkeys(modes, 50000), "power_mw": dict.fromkeys(modes, 5.0),
            "elements_checked": 1234, "mismatches": 0, "seconds": 3.0,
            "engine_params": params, "sky130_um2": um2, "memory_bits": 4096}


def test_engine_summary_sets_the_fusion_engine_beside_the_nested_one():
    """With both measurements the engine object is the precision-scalable engine's, with
    its ratios to 8 bits, the nested engine's figures and the ratios of the two; the
    section, the headline row and the first-screen sentence show them."""
    from reports.build import _headline, engine_summary
    from reports.engine_energy import PUBLISHED_RATIOS
    from reports.render import _engine_section, conclusion
    from rtl.registry import COST_POINTS
    row = {"name": "engine", "family": "engine", "params": COST_POINTS["engine"][1],
           "sky130_um2": 123456.0, "memory_bits": 8192}
    modes = ["2", "4", "8"]
    fus = _measured(modes, [11.0, 30.0, 100.0], [1000, 4000, 16000],
                    {"lanes": 2, "pes": 4, "fusion": True}, 3000.0)
    nes = _measured(modes, [60.0, 65.0, 70.0], [16000, 16000, 16000], {"lanes": 2, "pes": 4},
                    1000.0)
    e = engine_summary([row], None, fus, nested=nes)
    assert e["energy_vs_8bit"] == {"2": 11.0 / 100.0, "4": 30.0 / 100.0, "8": 1.0}
    assert e["cycles_8bit_over"] == {"2": 16.0, "4": 4.0, "8": 1.0}
    assert e["vs_nested"]["sky130_um2"] == 3.0
    assert e["vs_nested"]["energy_pj_per_mac"]["2"] == 11.0 / 60.0
    assert e["vs_nested"]["cycles_per_image"]["4"] == 4000 / 16000
    assert e["nested"]["cycles_per_image"] == nes["cycles_per_image"]
    assert e["published"] == PUBLISHED_RATIOS and "precision-scalable" in e["note"]
    text = "\n".join(_engine_section(e))
    assert "nested: pJ / MAC" in text and "3.00x the logic area" in text
    for name in PUBLISHED_RATIOS:
        assert name in text
    rows = _headline([], nes, fus)
    assert rows[-1]["name"] == "engine_fusion" and rows[-1]["pj_2b"] == 11.0
    base = {"name": "int_mac_n8", "sky130_um2": 1.0, "pj_8b": 2.0, "pj_4b": 1.0}
    nest = {"name": "nested_mac_floor_right_n8", "sky130_um2": 1.1, "pj_8b": 2.0, "pj_4b": 1.0}
    assert "0.30x of its 8-bit energy per MAC at 4 bits and 0.11x at 2 bits" in \
        conclusion([base, nest] + rows)
