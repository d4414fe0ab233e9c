"""Suite-wide check: every parametrized test case that passes has asserted something.

A case that returns early (a ``continue`` past its only ``assert``, an empty loop, a branch
that is never taken) passes without checking anything, and looks exactly like a case that
checked. pytest rewrites the ``assert`` statements of the test directories (test modules,
conftests, and their helpers, registered below) and, with ``enable_assertion_pass_hook``
(pyproject.toml), reports every assert that passes to :func:`pytest_assertion_pass`; a
``numpy.testing`` or ``torch.testing`` assertion, ``pytest.raises`` / ``pytest.warns`` and
``RunSummary.assert_ok`` of a cocotb run count too. A passed case that reached none of them
fails with "asserted nothing".

Why not a trace function (this check used ``sys.settrace`` before): under Python 3.11 any
trace function puts every frame of the process in tracing mode, and the Amaranth simulations
of tests/rtl ran 3 to 10 times slower under it. The rewritten asserts cost nothing until they
run, and the explanation pytest builds for the hook is built for a case's first passing
assert only.
"""
from __future__ import annotations

import ast
import functools
import sys

import numpy.testing
import pytest

pytest_plugins = ("pytester",)   # tests/test_asserted_check.py runs a suite in a suite
#: where test code lives: test modules, conftests and helper modules (engine_driver, ...)
_TEST_PACKAGES = ("tests", "cocotb_tests")
pytest.register_assert_rewrite(*_TEST_PACKAGES)

_case = None   # while a parametrized case runs: [checks reached]


def _hook_off():
    """pytest formats an explanation for every passing assert while a pass hook is installed:
    take it off for the rest of the test (pytest puts it back for the next one)."""
    from _pytest.assertion import util
    util._assertion_pass = None


def _reached():
    if _case is None:
        return
    _case[0] += 1
    if _case[0] == 1:
        _hook_off()   # one check is all this needs


def pytest_assertion_pass(item, lineno, orig, expl):
    _reached()


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


def pytest_configure(config):
    if not config.getini("enable_assertion_pass_hook"):
        raise pytest.UsageError("the asserted-something check of conftest.py needs "
                                "'enable_assertion_pass_hook = true' in the pytest settings")


def _has_asserts(code) -> bool:
    return any(isinstance(n, ast.Assert) for n in ast.walk(ast.parse(code)))


@functools.lru_cache(maxsize=None)
def _stale(path: str, module) -> bool:
    """A test module with asserts whose code reports none: it was loaded from a .pyc that
    pytest rewrote before the hook was switched on (pytest keys those files on the source's
    time and size only)."""
    def names(co):
        yield from co.co_names
        for c in co.co_consts:
            if hasattr(c, "co_names"):
                yield from names(c)
    try:
        with open(path, encoding="utf-8") as f:
            if not _has_asserts(f.read()):
                return False
    except (OSError, SyntaxError):
        return False
    codes = [getattr(v, "__code__", None) for v in vars(module).values()]
    return not any("_call_assertion_pass" in names(c) for c in codes
                   if c is not None and c.co_filename == path)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    global _case
    if getattr(item, "callspec", None) is None:
        _hook_off()   # nothing to count
        return (yield)
    runner = sys.modules.get("sim.runner")
    if runner is not None:
        _patch(runner.RunSummary, "assert_ok")
    for mod, name in (("torch.testing", "assert_close"), ("torch.testing", "assert_allclose")):
        if sys.modules.get(mod) is not None:   # only once the tests have imported torch
            _patch(sys.modules[mod], name)
    case = _case = [0]
    try:
        result = yield
    finally:
        _case = None
    if case[0] == 0:
        if _stale(str(item.path), item.module):
            raise AssertionError(
                f"{item.path} was loaded from a .pyc that pytest rewrote without the assertion "
                f"pass hook (an older checkout): delete it with  find {item.config.rootpath} "
                "-name '*-pytest-*.pyc' -delete  and run again")
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
