"""End-to-end smoke test: `dqt flow --fast` in a temporary directory, then a re-run that skips."""
import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def test_flow_fast(tmp_path):
    out = tmp_path / "flow"
    r = subprocess.run([sys.executable, "-m", "dqt", "flow", "--out", str(out), "--fast"],
                       capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    s = json.loads(r.stdout.strip().splitlines()[-1])
    assert s == json.loads((out / "summary.json").read_text())
    assert s["rtl_mismatches"] == 0 and s["rtl_elements_checked"] > 0
    assert set(s["static_accuracy"]) == {"2", "4", "6", "8"}
    assert all(0.0 <= a <= 1.0 for a in s["static_accuracy"].values())
    assert 0.0 <= s["dynamic_accuracy"] <= 1.0 and 2 <= s["dynamic_avg_bits"] <= 8
    for f in ("index.html", "report.md", "summary.json"):
        assert (out / "report" / f).is_file()
    json.loads((out / "report" / "summary.json").read_text())
    # second run: every stage's inputs are unchanged, so every stage is skipped
    r2 = subprocess.run([sys.executable, "-m", "dqt", "flow", "--out", str(out), "--fast"],
                        capture_output=True, text=True, timeout=600)
    assert r2.returncode == 0, r2.stderr[-3000:]
    assert r2.stdout.count("skipped") == 5
