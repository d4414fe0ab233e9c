"""The suite-wide check of conftest.py: a parametrized case that passes without asserting
anything fails; cases that assert (plainly, in a helper module of the test package, through
numpy.testing or pytest.raises) pass; without the assertion pass hook the check refuses to
run rather than fail every case."""
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CASES = '''
import numpy as np
import pytest

from tests.helper import check_positive

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

@pytest.mark.parametrize("x", [3])
def test_asserts_in_a_helper(x):
    check_positive(x)

@pytest.mark.parametrize("x", [1])
def test_many_asserts(x):
    for i in range(3):
        assert i < 3

def test_not_parametrized():
    pass
'''


def _suite(pytester, ini=True):
    pytester.makeconftest((ROOT / "conftest.py").read_text().replace(
        'pytest_plugins = ("pytester",)', ""))
    if ini:
        pytester.makeini("[pytest]\nenable_assertion_pass_hook = true\n")
    pkg = pytester.mkpydir("tests")
    (pkg / "helper.py").write_text("def check_positive(v):\n    assert v > 0\n")
    (pkg / "test_cases.py").write_text(CASES)


def test_a_case_that_asserts_nothing_fails(pytester):
    _suite(pytester)
    r = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    r.assert_outcomes(passed=6, failed=1)
    r.stdout.fnmatch_lines(["*test_skips_past_its_assert?2?*asserted nothing*"])


def test_without_the_pass_hook_the_check_refuses_to_run(pytester):
    _suite(pytester, ini=False)
    r = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    assert r.ret == 4   # pytest's usage error
    r.stderr.fnmatch_lines(["*needs 'enable_assertion_pass_hook = true'*"])


def test_a_pyc_rewritten_without_the_hook_is_named(pytester, monkeypatch):
    """pytest reuses a rewritten .pyc while the source's time and size match, so one written
    before the hook was switched on reports no asserts: the failure says so and how to fix it."""
    _suite(pytester)
    monkeypatch.delenv("PYTHONDONTWRITEBYTECODE", raising=False)
    first = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q", "--noconftest",
                                          "-o", "enable_assertion_pass_hook=false")
    first.assert_outcomes(passed=7)
    r = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    r.stdout.fnmatch_lines(["*loaded from a .pyc that pytest rewrote without the assertion pass "
                            "hook*-pytest-*.pyc*"])
