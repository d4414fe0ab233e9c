"""Suite-wide check: every parametrized test case that passes has asserted something.

A case that returns early (a ``continue`` past its only ``assert``, an empty loop, a branch
that is never taken) passes without checking anything, and looks exactly like a case that
checked. While a parametrized case runs, the lines of ``assert`` statements in the test
directories are traced (only frames of files there get a local trace function, so library
code runs without line events), until the case's first check: one is all this needs, and
every Python call of a traced case pays for the trace function. A ``numpy.testing`` or
``torch.testing`` assertion, ``pytest.raises`` / ``pytest.warns`` and
``RunSummary.assert_ok`` of a cocotb run count too. A passed case that reached none of them
fails with "asserted nothing".
"""
from __future__ import annotations

import ast
import functools
import sys

import numpy.testing
import pytest

pytest_plugins = ("pytester",)   # tests/test_asserted_check.py runs a suite in a suite

_case = None   # while a parametrized case runs: [checks reached, the trace function to restore]
#: where test code (test modules and their helpers) lives; only frames there are traced
_TEST_DIRS = ("tests", "cocotb_tests")


def _reached():
    """A check was reached: count it, and stop tracing the case at the first one, which is all
    the check needs (tracing costs every Python call of the case: an Amaranth simulation ran
    3x slower under it)."""
    if _case is not None:
        if _case[0] == 0:
            sys.settrace(_case[1])
        _case[0] += 1


def _counting(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        _reached()
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


@functools.lru_cache(maxsize=None)
def _assert_lines(path: str) -> frozenset:
    """Every source line an ``assert`` statement of the file spans."""
    try:
        tree = ast.parse(open(path, encoding="utf-8").read())
    except (OSError, SyntaxError):
        return frozenset()
    return frozenset(line for node in ast.walk(tree) if isinstance(node, ast.Assert)
                     for line in range(node.lineno, (node.end_lineno or node.lineno) + 1))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    global _case
    if getattr(item, "callspec", None) is None:
        return (yield)
    runner = sys.modules.get("sim.runner")
    if runner is not None:
        _patch(runner.RunSummary, "assert_ok")
    for mod, name in (("torch.testing", "assert_close"), ("torch.testing", "assert_allclose")):
        if sys.modules.get(mod) is not None:   # only once the tests have imported torch
            _patch(sys.modules[mod], name)
    roots = (str(item.path),) + tuple(str(item.config.rootpath / d) + "/" for d in _TEST_DIRS)
    case = _case = [0, sys.gettrace()]

    def local(frame, event, arg):
        if event == "line" and (case[0] or frame.f_lineno in _assert_lines(frame.f_code.co_filename)):
            frame.f_trace_lines = False   # one assert per frame is enough
            _reached()
        return local

    def calls(frame, event, arg):
        return local if frame.f_code.co_filename.startswith(roots) else None

    sys.settrace(calls)
    try:
        result = yield
    finally:
        sys.settrace(case[1])
        _case = None
    if case[0] == 0:
        raise AssertionError(f"{item.nodeid} passed but asserted nothing: a parametrized case "
                             "must check something (did it 'continue' past its assert?)")
    return result


def pytest_collection_modifyitems(config, items):
    """Tests marked ``slow`` (a minute or more each: place and route, gate-level runs, the
    flow) run first. The suite runs on two workers (``make test``: ``-n auto`` with small
    scheduling chunks), so a long test that started last would leave one worker idle for its
    whole length; started first, the short ones fill in around it. The sort is stable, so
    every worker collects the same order."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
