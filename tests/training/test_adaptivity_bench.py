"""bench/adaptivity.py: its target check and its input validation (the benchmark itself
trains five networks; it is not run here)."""
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "adaptivity.py"


def _bench():
    spec = importlib.util.spec_from_file_location("adaptivity_bench", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _split(levels, entropy, saving, gain):
    return {"dynamic": {"avg_bits_by_level": {str(i): b for i, b in enumerate(levels)},
                        "assignment_entropy_bits": entropy},
            "bitops_saving_vs_static": saving, "accuracy_gain_vs_static_pts": gain}


# directed cases, one per way of missing a target (the thresholds are the issue's)
@pytest.mark.parametrize("levels, entropy, saving, gain, want", [
    ([5.5, 5.5, 6.0, 6.2], 1.1, 0.37, 6.4, {"entropy": True, "rising": True, "saving_or_gain": True}),
    ([5.5, 5.5, 6.0, 6.2], 0.9, 0.37, 6.4, {"entropy": False, "rising": True, "saving_or_gain": True}),
    ([5.5, 5.5, 5.5, 5.5], 1.1, 0.37, 6.4, {"entropy": True, "rising": False, "saving_or_gain": True}),
    ([5.5, 6.2, 6.0, 6.3], 1.1, 0.37, 6.4, {"entropy": True, "rising": False, "saving_or_gain": True}),
    ([6.2, 6.0, 5.5, 5.4], 1.1, 0.37, 6.4, {"entropy": True, "rising": False, "saving_or_gain": True}),
    ([5.5, 6.0], 1.1, 0.10, 0.5, {"entropy": True, "rising": True, "saving_or_gain": False}),
    ([5.5, 6.0], 1.1, None, 1.0, {"entropy": True, "rising": True, "saving_or_gain": True}),
    ([5.5, 6.0], 1.1, 0.15, None, {"entropy": True, "rising": True, "saving_or_gain": True}),
])
def test_targets(levels, entropy, saving, gain, want):
    assert _bench().targets(_split(levels, entropy, saving, gain)) == want


@pytest.mark.parametrize("argv, msg", [
    (["--seeds", "x"], "--seeds 'x' is not a comma-separated list of integers"),
    (["--seeds", "-1"], "give one or more non-negative integers"),
    (["--budget", "0.01"], "budget=0.01 is outside the allowed range ["),
    (["--budget", "1.5"], "budget=1.5 is outside the allowed range (0, 1]"),
    (["--jobs", "0"], "--jobs 0 must be >= 1"),
])
def test_bad_input_exits_2_before_training(argv, msg):
    r = subprocess.run([sys.executable, str(BENCH)] + argv, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2 and msg in r.stderr and "Traceback" not in r.stderr
