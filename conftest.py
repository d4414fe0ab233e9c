"""Suite-wide check: every parametrized test case that passes has asserted something.

A case that returns early (a ``continue`` past its only ``assert``, an empty loop, a branch
that is never taken) passes without checking anything, and looks exactly like a case that
checked. Each passed parametrized case must have run at least one ``assert`` (counted through
pytest's ``pytest_assertion_pass`` hook, enabled in pyproject.toml), a ``numpy.testing``
assertion, ``pytest.raises`` / ``pytest.warns``, or ``RunSummary.assert_ok`` of a cocotb run;
otherwise it fails with "asserted nothing".
"""
from __future__ import annotations

import functools
import sys

import numpy.testing
import pytest

pytest_plugins = ("pytester",)   # tests/test_asserted_check.py runs a suite in a suite

_ASSERTED = pytest.StashKey[int]()
_current = None


def _count():
    if _current is not None:
        _current.stash[_ASSERTED] = _current.stash.get(_ASSERTED, 0) + 1


def _counting(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        _count()
        return fn(*args, **kwargs)
    wrapper.__dqt_counting__ = True
    return wrapper


def _patch(owner, name):
    fn = getattr(owner, name, None)
    if callable(fn) and not getattr(fn, "__dqt_counting__", False):
        setattr(owner, name, _counting(fn))


for _name in dir(numpy.testing):
    if _name.startswith("assert_"):
        _patch(numpy.testing, _name)
_patch(pytest, "raises")
_patch(pytest, "warns")


def pytest_assertion_pass(item, lineno, orig, expl):
    item.stash[_ASSERTED] = item.stash.get(_ASSERTED, 0) + 1


def _hook_live(module) -> bool:
    """False when the module's asserts were rewritten without the pass hook (a rewritten .pyc
    cached before the hook was enabled): its asserts cannot be counted, so do not judge it."""
    codes = [f.__code__ for f in vars(module).values() if hasattr(f, "__code__")]
    has_assert = any("@py_assert" in " ".join(c.co_varnames) or "AssertionError" in c.co_names
                     or "_format_explanation" in c.co_names for c in codes)
    return not has_assert or any("_call_assertion_pass" in c.co_names for c in codes)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    global _current
    runner = sys.modules.get("sim.runner")
    if runner is not None:
        _patch(runner.RunSummary, "assert_ok")
    item.stash[_ASSERTED] = 0
    _current = item
    try:
        result = yield
    finally:
        _current = None
    if (getattr(item, "callspec", None) is not None and item.stash[_ASSERTED] == 0
            and _hook_live(item.module)):
        raise AssertionError(f"{item.nodeid} passed but asserted nothing: a parametrized case "
                             "must check something (did it 'continue' past its assert?)")
    return result
