"""The golden CLI: check/run an artifact, clear errors and exit codes on bad input."""
import json
import subprocess
import sys

import numpy as np
import pytest

from golden import run_network
from golden.testing import random_network


def _dqt(*args):
    return subprocess.run([sys.executable, "-m", "dqt", *map(str, args)], capture_output=True, text=True)


@pytest.fixture(scope="module")
def art(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli") / "net"
    random_network(d, seed=11)
    return d


def test_check_and_run(art, tmp_path):
    r = _dqt("check", art, "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.splitlines()[-1])["valid"] is True
    x = np.random.default_rng(0).integers(0, 256, (5, 1, 8, 8))
    np.save(tmp_path / "x.npy", x)
    r = _dqt("run", art, "--input", tmp_path / "x.npy", "--bits", "dynamic", "--out", tmp_path / "y.npz")
    assert r.returncode == 0, r.stderr
    from golden import load_network
    want = run_network(load_network(art), x, bits="dynamic").output
    with np.load(tmp_path / "y.npz", allow_pickle=False) as z:
        assert np.array_equal(z["output"], want)


def test_errors_exit_nonzero_without_output(art, tmp_path):
    np.save(tmp_path / "x.npy", np.full((2, 1, 8, 8), 300))
    r = _dqt("run", art, "--input", tmp_path / "x.npy", "--out", tmp_path / "y.npz")
    assert r.returncode == 2 and "300" in r.stderr and "[0, 255]" in r.stderr
    assert not (tmp_path / "y.npz").exists()
    np.save(tmp_path / "x.npy", np.zeros((2, 1, 8, 8), dtype=np.int64))
    r = _dqt("run", art, "--input", tmp_path / "x.npy", "--bits", "3", "--out", tmp_path / "y.npz")
    assert r.returncode == 2 and "B=" in r.stderr
    (art.parent / "broken").mkdir()
    r = _dqt("check", art.parent / "broken")
    assert r.returncode == 2 and "manifest.json" in r.stderr
