"""Whole-network check on the layer engine under Verilator (``sim.network.verify_network``).

CI runs a calibrated random network (``golden.testing.random_network``: conv, residual
add, max/avg pooling, linear logits and a controller) on a few digits images in every
static precision and in dynamic mode, through both drivers: the Verilator-native batch
driver (``sim.batch``) and the cocotb testbench (``sim.network_tb``); ``dqt sim ARTIFACT
--images 360`` is the full run. The engine geometry is the one of ``test_engine.py``, so the
cocotb driver shares that build.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from golden import defaults
from golden.formats import DQTValueError
from golden.testing import random_network
from sim import runner
from sim.batch import BatchEngine, run_now
from sim.network import input_codes, verify_network
from sim.network_check import run_on_engine

#: the catalog's engine sizing, as in cocotb_tests/test_engine.py (one build serves both)
ENGINE = dict(defaults.ENGINE)
LAYERS = {"conv1", "conv2", "res", "pool", "conv3", "gap", "flat", "fc", "ctrl1", "ctrl2"}


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    d = tmp_path_factory.mktemp("net") / "random"
    random_network(d, seed=3)
    return d


def _need_verilator():
    reason = runner.missing_reason("verilator")
    if reason:
        pytest.skip(reason)


@pytest.fixture(scope="module")
def reports(artifact):
    """``reports(driver, stall) -> (verify_network result, job directories it left)`` on 6
    images, every mode; each run
    once per module (the parametrized test and the agreement test share them)."""
    cache, left = {}, {}

    def _get(driver, stall=False):
        if (driver, stall) not in cache:
            test_id = f"test_network_every_layer_matches_golden[{driver}-{stall}]"
            before = _job_dirs()
            cache[driver, stall] = verify_network(
                artifact, images=6, simulator="verilator", engine=ENGINE, driver=driver,
                stall=stall, jobs=1 if driver == "batch" else None,
                rerun=runner.rerun_command("cocotb_tests/test_network.py", test_id))
            left[driver, stall] = _job_dirs() - before
        return cache[driver, stall], left[driver, stall]
    return _get


def _job_dirs():
    """This process's job directories under the simulator builds (the builds are shared:
    another test worker's running job is not a leftover of this one; a build directory
    another worker creates or removes meanwhile is skipped, not an error)."""
    out = set()
    pid = os.getpid()
    for d in runner.BUILD_ROOT.glob("*/*"):
        try:
            out |= {p for pat in (f"network-{pid}-*", f"run-sim.network_tb-*-{pid}")
                    for p in d.glob(pat)}
        except OSError:
            continue
    return out


@pytest.mark.slow
@pytest.mark.simulator
@pytest.mark.parametrize("driver,stall", [("batch", False), ("batch", True), ("cocotb", False)])
def test_network_every_layer_matches_golden(reports, driver, stall):
    _need_verilator()
    rep, left = reports(driver, stall)
    print({k: rep[k] for k in ("driver", "images", "elements_checked", "mismatches",
                               "verified_macs", "seconds", "verified_macs_per_s")})
    assert rep["mismatches"] == 0, rep["first_mismatch"]
    assert rep["driver"] == driver
    assert rep["modes"] == ["2", "4", "6", "8", "static", "dynamic"]
    # every layer of the backbone and the controller was compared, in every mode
    assert {k.split(":", 1)[1] for k in rep["per_layer"]} >= LAYERS
    assert {k.split(":", 1)[0] for k in rep["per_layer"]} == set(rep["modes"])
    assert rep["elements_checked"] > 0 and rep["verified_macs"] > 0
    # RTL-verified elements and host steps (pooling, flatten, controller argmax) apart
    host = sum(v["elements"] for k, v in rep["per_layer"].items() if v["kind"] == "host")
    assert {v["kind"] for k, v in rep["per_layer"].items()
            if k.endswith((":pool", ":gap", ":flat"))} == {"host"}
    assert rep["host_elements"] == host > 0
    assert rep["rtl_elements"] + rep["host_elements"] == rep["elements_checked"]
    assert not left, f"the run left its job directories behind: {sorted(left)}"


@pytest.mark.slow
@pytest.mark.simulator
def test_deep_pipeline_engine_runs_the_network(artifact):
    """The engine with ``deep_pipeline`` (the ecp5-25k preset's: four more registers in the
    product path and in val x M, two more in the residual add) runs the same network, with
    random backpressure: every layer (the residual add included) in every mode, 0
    mismatches."""
    _need_verilator()
    rep = verify_network(artifact, images=6, simulator="verilator",
                         engine=dict(ENGINE, deep_pipeline=True), driver="batch", stall=True,
                         jobs=1)
    assert rep["mismatches"] == 0, rep["first_mismatch"]
    assert rep["modes"] == ["2", "4", "6", "8", "static", "dynamic"]
    assert {k.split(":", 1)[1] for k in rep["per_layer"]} >= LAYERS
    assert {k.split(":", 1)[0] for k in rep["per_layer"]} == set(rep["modes"])
    assert rep["rtl_elements"] > 0


@pytest.mark.simulator
def test_drivers_check_the_same_elements(reports):
    """Both drivers walk the same layers with the same counts (they share
    ``sim.network_check``); each compares every element with the golden traces."""
    _need_verilator()
    batch, cocotb = reports("batch")[0], reports("cocotb")[0]
    assert batch["mismatches"] == 0 and cocotb["mismatches"] == 0
    assert batch["per_layer"] == cocotb["per_layer"]
    assert batch["verified_macs"] == cocotb["verified_macs"]


@pytest.mark.simulator
def test_sharded_batch_run_equals_one_engine(artifact, reports):
    """Three worker threads (two modes each) and one engine give the same report: the same
    elements, MACs and per-layer counts, and the same engine cycles per mode (one shard per
    mode); a single mode split by images over two engines checks the same elements too."""
    _need_verilator()
    one = reports("batch")[0]
    three = verify_network(artifact, images=6, simulator="verilator", engine=ENGINE, jobs=3)
    assert three["jobs"] == 3 and three["shards"] == 6 and three["mismatches"] == 0
    for k in ("per_layer", "elements_checked", "rtl_elements", "verified_macs",
              "engine_cycles_by_mode", "verified_macs_by_mode", "modes", "images"):
        assert three[k] == one[k], k
    split = verify_network(artifact, images=6, simulator="verilator", engine=ENGINE, jobs=2,
                           modes=["dynamic"])
    assert split["shards"] == 2 and split["mismatches"] == 0
    assert split["per_layer"] == {k: v for k, v in one["per_layer"].items()
                                  if k.startswith("dynamic:")}
    assert split["verified_macs"] == one["verified_macs_by_mode"]["dynamic"]


def test_shard_plan():
    """Shards: one per mode while there are at least as many modes as workers; a mode's
    images in equal ranges otherwise."""
    from sim.network import shard_plan
    assert shard_plan(["2", "8"], 10, 1) == [("2", 0, 10), ("8", 0, 10)]
    assert shard_plan(["2", "8"], 10, 2) == [("2", 0, 10), ("8", 0, 10)]
    assert shard_plan(["8"], 10, 2) == [("8", 0, 5), ("8", 5, 10)]
    assert shard_plan(["8"], 1, 4) == [("8", 0, 1)]
    assert shard_plan(["2", "8"], 9, 4) == [("2", 0, 4), ("2", 4, 9), ("8", 0, 4), ("8", 4, 9)]


def _drop_lane3_rounding(text: str) -> str:
    """Requantizer of lane 3 only: drop the rounding constant 2^(S-1), i.e. it floors."""
    new, count = re.subn(r"= \$signed\(prod3\) \+ \$signed\(\{ 1'h0, half_r \}\);",
                         "= $signed(prod3);", text)
    assert count == 1, f"expected one rounding adder on prod3 in the Verilog, found {count}"
    return new


@pytest.mark.simulator
def test_batch_driver_locates_a_mutant(artifact):
    """A broken requantizer in one lane: the batch path reports the first bad element with
    its layer, index, operands, precision and output cycle. (A 4 x 4 engine, sized for the
    network by ``engine_params_for``: a quicker build, and a second geometry.)"""
    _need_verilator()
    from golden.network import load_network
    from sim.network import engine_params_for
    net = load_network(artifact)
    codes, _ = input_codes(artifact, 2)
    params = engine_params_for(net, {"lanes": 4, "pes": 4})
    with BatchEngine(params, mutate=_drop_lane3_rounding) as eng:
        rep = run_now(run_on_engine(eng, net, codes, [8], rerun="WAVES=1 rerun-me"))
    assert rep["mismatches"] > 0
    msg = rep["first_mismatch"]
    assert re.search(r"mode 8, layer \w+: \d+ of \d+ elements differ; first at index", msg), msg
    for part in ("precision bits=8", "x row (im2col patch) = ", "w[", "M[",
                 "engine output cycle = ", "rerun with waves: WAVES=1 rerun-me"):
        assert part in msg, msg
    # the bad element is in a channel of lane 3 (channel index mod lanes)
    idx = [int(v) for v in re.search(r"first at index \[([\d, ]+)\]", msg).group(1).split(",")]
    assert idx[1] % params["lanes"] == 3, msg
    # a shard that starts at image 1 reports the image's index in the whole set
    with BatchEngine(params, mutate=_drop_lane3_rounding) as eng:
        rep1 = run_now(run_on_engine(eng, net, codes[1:], [8], image0=1))
    idx1 = [int(v) for v in re.search(r"first at index \[([\d, ]+)\]", rep1["first_mismatch"])
            .group(1).split(",")]
    assert idx1[0] >= 1 and f"(image {idx1[0]})" in rep1["first_mismatch"]


def test_batch_driver_needs_verilator(artifact):
    with pytest.raises(DQTValueError, match="driver 'batch' runs on verilator only"):
        verify_network(artifact, images=1, simulator="icarus", driver="batch")
    with pytest.raises(DQTValueError, match="driver 'vpi' is not one of"):
        verify_network(artifact, images=1, driver="vpi")


def test_cli_rejects_batch_driver_on_icarus(artifact):
    """``dqt sim --driver batch --simulator icarus``: one line naming the values, exit 2."""
    r = subprocess.run([sys.executable, "-m", "dqt", "sim", str(artifact), "--simulator",
                        "icarus", "--driver", "batch"], capture_output=True, text=True,
                       cwd=runner.REPO_ROOT)
    assert r.returncode == 2, r.stderr
    assert "driver 'batch' runs on verilator only, not 'icarus'" in r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""


def _simulator_of(parent: int) -> int | None:
    """The pid of the simulator that ``sim.runner.run`` started from process ``parent``:
    the process whose environment names ``parent`` in ``DQT_SIM_PARENT``."""
    want = f"DQT_SIM_PARENT={parent}".encode()
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            if want in (p / "environ").read_bytes().split(b"\0"):
                return int(p.name)
        except OSError:
            continue
    return None


@pytest.mark.simulator
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl: Linux")
def test_a_killed_check_leaves_no_simulator_running(artifact, tmp_path, monkeypatch):
    """``kill -9`` of a whole-network check on the cocotb driver: the simulator it started
    dies with it (sim/__init__.py asks the kernel for SIGKILL on the parent's death) instead
    of running on as an orphan, and the next run removes the job directory the killed one
    left. Icarus, in a build tree of its own (``DQT_SIM_BUILD``): its
    build takes seconds, and the job directories a killed run leaves behind stay out of the
    shared tree that other tests inspect."""
    reason = runner.missing_reason("icarus")
    if reason:
        pytest.skip(reason)
    from sim import _alive
    code = ("import sys; from golden import defaults; from sim.network import verify_network; "
            "verify_network(sys.argv[1], images=360, simulator='icarus', "
            "engine=dict(defaults.ENGINE), driver='cocotb')")
    child = subprocess.Popen([sys.executable, "-c", code, str(artifact)],
                             cwd=runner.REPO_ROOT, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL,
                             env=dict(os.environ, DQT_SIM_BUILD=str(tmp_path)))
    sim = None
    try:
        deadline = time.monotonic() + 300
        while sim is None and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
            sim = _simulator_of(child.pid)
        assert sim is not None, f"no simulator started (check exited {child.returncode})"
        time.sleep(4)  # well into the run: cocotb and the testbench are loaded
        assert _alive(sim) and child.poll() is None, "the check ended before the kill"
        child.kill()
        child.wait()
        deadline = time.monotonic() + 20
        while _alive(sim) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _alive(sim), f"simulator {sim} still runs after its parent was killed"
        # the killed run's job directory stays behind until the next run removes it
        dead = list(tmp_path.glob(f"icarus/*/network-{child.pid}-*"))
        assert len(dead) == 1, sorted(tmp_path.glob("icarus/*/*"))
        monkeypatch.setattr(runner, "BUILD_ROOT", tmp_path)
        rep = verify_network(artifact, images=1, simulator="icarus", modes=[8],
                             engine=ENGINE, driver="cocotb")
        assert rep["mismatches"] == 0 and not dead[0].exists()
    finally:
        if child.poll() is None:
            child.kill()
        if sim is not None and _alive(sim):
            os.kill(sim, signal.SIGKILL)
