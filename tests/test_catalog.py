"""The operator catalog drives golden, rtl, cocotb and reports: one name per operator, and
every design the report costs is a catalog component that the cocotb suite runs."""
from __future__ import annotations

import importlib.util
import inspect
import sys
from pathlib import Path

import pytest

from rtl.registry import CATALOG, COST_POINTS, DEFAULT_INSTANCES, Parameters

REPO = Path(__file__).resolve().parents[1]
COCOTB = REPO / "cocotb_tests"


def _testbench(name):
    """A cocotb test module, loaded from its file under a private name (no sys.path change:
    a test directory on sys.path would shadow the project's packages for later imports)."""
    key = f"_catalog_tb_{name}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, COCOTB / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        spec.loader.exec_module(module)
    return sys.modules[key]


def _exercised(module) -> set[Parameters]:
    """Parameter sets the pytest functions of a cocotb test module run: every value of a
    ``params`` parametrization, resolved against the operator's catalog entry."""
    out = set()
    for name, fn in vars(module).items():
        if not (name.startswith("test_") and inspect.isfunction(fn)):
            continue
        for mark in getattr(fn, "pytestmark", []):
            if mark.name == "parametrize" and mark.args[0] == "params":
                op = name[len("test_"):].removesuffix("_cost_points")
                out |= {Parameters(op, p) for p in mark.args[1]}
    return out


@pytest.mark.parametrize("op", sorted(CATALOG))
def test_one_name_everywhere(op):
    spec = CATALOG[op]
    assert callable(spec.golden_function())
    if op != "engine":
        assert spec.golden == f"golden.ops.{op}"
    module, cls = spec.component.split(":")
    assert module in (f"rtl.{op}", "rtl.operators"), module
    assert cls.lower() == op.replace("_", ""), cls
    assert (COCOTB / f"{spec.testbench}.py").is_file()
    assert spec.testbench in (f"test_{op}", "test_operators")


def _unverified(designs) -> list[str]:
    """Names of designs whose parameter set no cocotb test of their operator runs."""
    exercised, missing = {}, []
    for d in designs:
        p = d.parameters()
        tb = p.testbench
        if tb not in exercised:
            exercised[tb] = _exercised(_testbench(tb))
        if p not in exercised[tb] and not (d.catalog == "engine" and _engine_verified(p)):
            missing.append(d.name)
    return missing


def _engine_verified(p):
    """The engine testbench runs through a harness at the geometry ``ENGINE`` it names."""
    return Parameters("engine", _testbench("test_engine").ENGINE) == p


def test_every_reported_design_is_a_cocotb_verified_catalog_component():
    from reports.designs import cost_designs
    designs = cost_designs()
    assert {d.name for d in designs} == set(COST_POINTS)
    generated = {i["name"]: Parameters(i["component"], i["params"]) for i in DEFAULT_INSTANCES}
    for d in designs:
        assert d.catalog in CATALOG and d.source == "rtl"
        assert generated.get(d.name) == d.parameters(), f"{d.name}: not in `dqt rtl generate`"
    assert _unverified(designs) == []


def test_a_design_the_suite_does_not_run_is_caught():
    from reports.designs import Design, design_by_name
    ok = design_by_name("int_mac_n8")
    odd = Design("int_mac_n5", "int_mac", 5, {"n": 5, "pes": 1})
    assert _unverified([ok, odd]) == ["int_mac_n5"]


def test_parameters_check_and_compare():
    from golden.formats import NestedMode
    a = Parameters("nested_mac", {"mode": NestedMode.ROUND, "pes": 1})
    b = Parameters("nested_mac", {"mode": "round", "pes": 1, "n": 8})
    assert a == b and hash(a) == hash(b)
    assert a.golden.__name__ == "nested_mac" and a.latency == 2
    from rtl._common import RTLParamError
    with pytest.raises(RTLParamError, match="pes=0 is outside"):
        Parameters("nested_mac", {"pes": 0})
