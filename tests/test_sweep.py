"""``dqt sweep`` on Dask: a 4-point sweep on a 2-worker LocalCluster survives a worker killed
mid-sweep, resumes from its cache, records a failing point, connects to a running scheduler;
config validation and the Pareto front."""
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

pytest.importorskip("distributed")

from golden.formats import DQTValueError  # noqa: E402
from sweep.config import parse_config  # noqa: E402
from sweep.evaluate import evaluate_point  # noqa: E402
from sweep.run import pareto_front, run_sweep  # noqa: E402

# four cheap points (area only matters here): the nested shifter at two widths and modes
SMALL = {"name": "t", "target": "cmos", "bits": 2, "K": 8,
         "designs": [{"component": "nested_shift", "grid": {"n": [4, 6], "mode": ["floor", "round"]}}]}


@pytest.fixture(autouse=True)
def _own_tool_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DQT_CACHE", str(tmp_path / "tool_cache"))  # workers inherit it


def _kill_a_busy_worker(state):
    def cb(n_done, client):
        if n_done != 1 or state.get("killed"):
            return
        busy = [w for w, keys in client.processing().items() if keys]
        pids = client.run(os.getpid, workers=busy[:1])
        for pid in pids.values():
            os.kill(pid, signal.SIGKILL)
            state["killed"] = pid
    return cb


@pytest.mark.slow
def test_sweep_survives_a_killed_worker_then_resumes(tmp_path):
    cfg = parse_config(SMALL)
    state = {}
    s = run_sweep(cfg, tmp_path / "out", workers=2, progress=False, on_result=_kill_a_busy_worker(state))
    assert state.get("killed"), "no worker was busy after the first point"
    assert s["points"] == 4 and s["done"] == 4 and s["failed"] == 0
    # the killed worker may have stored its point in the cache just before it died; the retry
    # on the other worker then reads it (counted as resumed). Nothing else can be cached yet.
    assert s["resumed"] <= 1
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    for f in ("results.csv", "pareto.png", "index.html"):
        assert (tmp_path / "out" / f).stat().st_size > 0
    # each point's figures are the ones a direct evaluation computes
    direct = evaluate_point(cfg.points[0].settings(), str(tmp_path / "direct"))
    first = res["points"][0]
    assert first["area"] == direct["area"] and first["cycles"] == direct["cycles"]
    assert len({p["area"] for p in res["points"]}) == 4   # four different designs
    again = run_sweep(cfg, tmp_path / "out", workers=2, progress=False)
    assert again["resumed"] == 4 and again["done"] == 4
    rows = json.loads((tmp_path / "out" / "results.json").read_text())["points"]
    assert [p["area"] for p in rows] == [p["area"] for p in res["points"]]


@pytest.mark.slow
def test_failing_point_is_recorded_and_the_rest_run(tmp_path):
    cfg = parse_config({**SMALL, "designs": [
        {"component": "nested_shift", "grid": {"n": [4]}},
        {"component": "nested_shift", "fixed": {"n": 4}, "grid": {"candidates": [[6]]}}]})
    s = run_sweep(cfg, tmp_path / "o", workers=1, progress=False)
    assert s == dict(s, points=2, done=1, failed=1)
    bad = [p for p in json.loads((tmp_path / "o" / "results.json").read_text())["points"]
           if p["status"] == "failed"]
    assert len(bad) == 1 and "6" in bad[0]["reason"]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_cli_connects_to_a_running_scheduler(tmp_path):
    port = _free_port()
    addr = f"tcp://127.0.0.1:{port}"
    bindir = os.path.dirname(sys.executable)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    procs = [subprocess.Popen([f"{bindir}/dask", "scheduler", "--host", "127.0.0.1", "--port",
                               str(port), "--no-dashboard"], env=env, stderr=subprocess.DEVNULL)]
    try:
        time.sleep(3)
        procs.append(subprocess.Popen([f"{bindir}/dask", "worker", addr, "--nthreads", "1",
                                       "--no-dashboard"], env=env, stderr=subprocess.DEVNULL))
        cfg = tmp_path / "c.json"
        cfg.write_text(json.dumps({**SMALL, "designs": [{"component": "nested_shift",
                                                         "grid": {"n": [4, 6]}}]}))
        r = subprocess.run([sys.executable, "-m", "dqt", "sweep", str(cfg), "--out",
                            str(tmp_path / "o"), "--scheduler", addr, "--json"],
                           capture_output=True, text=True, env=env, timeout=600)
        assert r.returncode == 0, r.stderr[-2000:]
        s = json.loads(r.stdout.strip().splitlines()[-1])
        assert set(s) == {"points", "done", "failed", "resumed", "seconds"}
        assert s["points"] == 2 and s["done"] == 2
    finally:
        for p in reversed(procs):
            p.terminate()
            p.wait(timeout=30)


@pytest.mark.parametrize("cfg,msg", [
    ({"designs": []}, "designs: must be a non-empty list"),
    ({"designs": [{"component": "nope"}]}, "'nope' is not one of"),
    ({"designs": [{"component": "nested_shift", "grid": {"width": [1]}}]}, "no parameter 'width'"),
    ({"target": "sky130", "designs": [{"component": "nested_shift"}]}, "target: 'sky130'"),
    ({"bits": 0, "designs": [{"component": "nested_shift"}]}, "bits: 0 is outside"),
    ({"speed": 1, "designs": [{"component": "nested_shift"}]}, "unknown key"),
])
def test_config_errors(cfg, msg):
    with pytest.raises(DQTValueError, match=msg):
        parse_config(cfg)


def test_cli_bad_config_exits_2(tmp_path, capsys):
    from dqt.cli import main
    p = tmp_path / "c.json"
    p.write_text(json.dumps({"designs": [{"component": "nope"}]}))
    assert main(["sweep", str(p), "--out", str(tmp_path / "o")]) == 2
    assert "'nope' is not one of" in capsys.readouterr().err and not (tmp_path / "o").exists()


def test_pareto_front():
    def row(a, e, c, status="done"):
        return {"status": status, "area": a, "energy_pj_per_op": e, "cycles": c}
    rows = [row(1, 5, 9), row(2, 4, 9), row(2, 5, 9), row(1, 5, 9), row(0, 0, 0, "failed"),
            row(3, 1, 1), row(None, 1, 1)]
    # (2,5,9) is dominated by (1,5,9); equal points do not dominate each other
    assert pareto_front(rows) == [True, True, False, True, False, True, False]


def test_shipped_example_configs_name_catalog_components():
    """Every config under examples/ parses: its components are catalog names (a renamed
    operator must be renamed there too)."""
    from pathlib import Path

    from sweep.config import load_config
    paths = sorted((Path(__file__).resolve().parents[1] / "examples").glob("sweep*.json"))
    assert paths
    for p in paths:
        assert load_config(p).points, p
