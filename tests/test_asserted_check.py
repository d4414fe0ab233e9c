"""The suite-wide check of conftest.py: a parametrized case that passes without asserting
anything fails; cases that assert (plainly, through numpy.testing or pytest.raises) pass, and
run untraced after their first check."""
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_a_case_that_asserts_nothing_fails(pytester):
    pytester.makeconftest((ROOT / "conftest.py").read_text().replace(
        'pytest_plugins = ("pytester",)', ""))
    pytester.makepyfile(test_cases='''
import sys

import numpy as np
import pytest

@pytest.mark.parametrize("x", [1, 2])
def test_skips_past_its_assert(x):
    for v in [x]:
        if v == 2:
            continue          # the vacuous case
        assert v == 1

@pytest.mark.parametrize("x", [1])
def test_numpy_testing(x):
    np.testing.assert_array_equal(np.array([x]), np.array([1]))

@pytest.mark.parametrize("x", [1])
def test_raises(x):
    with pytest.raises(ZeroDivisionError):
        x / 0

def test_not_parametrized():
    pass

@pytest.mark.parametrize("x", [1])
def test_runs_untraced_after_its_first_check(x):
    np.testing.assert_equal(x, 1)
    assert sys.gettrace() is None   # the rest of a case (a simulation) pays no trace calls
''')
    r = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    r.assert_outcomes(passed=5, failed=1)
    r.stdout.fnmatch_lines(["*test_skips_past_its_assert?2?*asserted nothing*"])
