"""``dqt sim`` arguments are checked before anything is generated or simulated, and the
element counts keep RTL-verified elements apart from host steps."""
from __future__ import annotations

import json

import numpy as np
import pytest

from dqt.cli import main
from golden.testing import random_network


@pytest.fixture(scope="module")
def art(tmp_path_factory):
    d = tmp_path_factory.mktemp("net") / "random"
    random_network(d, seed=5, calib=8)
    return d


@pytest.mark.parametrize("engine, words", [
    ('{"lanes": 0}', ["lanes", "[1, 64]"]),
    ('{"pes": 0}', ["pes", "[1, 64]"]),
    ('{"lanes": 4.5}', ["lanes", "integer"]),
    ('{"variant": "diagonal"}', ["variant"]),
    ('{"bogus": 1}', ["bogus"]),
    ("lanes=4", ["--engine", "not valid JSON"]),
    ("[4]", ["--engine", "JSON object"]),
])
def test_bad_engine_is_a_one_line_error(art, capsys, engine, words):
    rc = main(["sim", str(art), "--engine", engine, "--images", "1"])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert len(err.strip().splitlines()) == 1, err
    for w in words:
        assert w in err, err


@pytest.mark.parametrize("jobs", ["0", "257"])
def test_bad_jobs_is_a_one_line_error(art, capsys, jobs):
    rc = main(["sim", str(art), "--jobs", jobs, "--images", "1"])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert len(err.strip().splitlines()) == 1 and f"jobs={jobs}" in err and "[1, 256]" in err


def test_sim_on_rtl_manifest_says_not_an_artifact(tmp_path, capsys):
    (tmp_path / "manifest.json").write_text(json.dumps({"modules": [{"top": "x"}]}))
    rc = main(["sim", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2
    assert "not a DQT network artifact" in err and "missing" not in err


def test_checker_counts_rtl_and_host_elements_apart():
    from sim.network_check import _Checker
    chk = _Checker(None)
    chk.layer("8", "conv1", np.zeros((2, 4, 8, 8)), np.zeros((2, 4, 8, 8)), None, "rtl")
    chk.layer("8", "pool", np.zeros((2, 4, 4, 4)), np.zeros((2, 4, 4, 4)), None, "host")
    assert chk.by_kind == {"rtl": 2 * 4 * 64, "host": 2 * 4 * 16}
    assert chk.elements == chk.by_kind["rtl"] + chk.by_kind["host"]
    assert chk.layers["8:pool"]["kind"] == "host"


def test_mismatch_report_shows_ragged_operands():
    """Packets of different lengths (the MAC testbenches' operands): the first mismatch's
    report lists that packet's operands instead of failing to build an array of them."""
    from sim.checker import Mismatch, compare
    ctx = {"bits": [8, 2], "x": [np.array([1, 2]), np.array([3, 4, 5, 6])]}
    with pytest.raises(Mismatch) as e:
        compare("mac value", [10, 20], [10, 21], ctx, cycles=[5, 9])
    msg = str(e.value)
    assert "first at index [1]" in msg and "output cycle: 9" in msg
    assert "bits: 2" in msg and "3, 4, 5, 6" in msg.replace(",", ", ").replace("  ", " ")
