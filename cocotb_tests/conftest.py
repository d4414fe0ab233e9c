"""Fixtures of the cocotb testbenches: simulator selection with skip reasons, and a
``cocotb_run`` helper that builds once per (component, parameters, simulator)."""
from __future__ import annotations

import os

import pytest

from sim import runner

#: Simulators the component tests run under; DQT_SIMULATORS=verilator narrows it.
SIMS = tuple(s for s in os.environ.get("DQT_SIMULATORS", ",".join(runner.SIMULATORS)).split(",")
             if s)


@pytest.fixture
def cocotb_run(request):
    """``cocotb_run(sim, component, params, module, **kw) -> RunSummary`` that skips when the
    simulator is missing and fails with the first mismatch when a cocotb test fails."""

    def _run(sim, component, params, module, expect_fail=False, **kw):
        reason = runner.missing_reason(sim)
        if reason:
            pytest.skip(reason)
        rerun = runner.rerun_command(os.path.relpath(request.node.path, runner.REPO_ROOT),
                                     request.node.name)
        s = runner.run_component(sim, component, params, module, rerun=rerun, **kw)
        if not expect_fail:
            s.assert_ok()
        return s

    return _run


@pytest.fixture
def engine_run(request):
    """``engine_run(sim, engine_params, module, batch=64) -> RunSummary``: the harnessed
    engine (one build per geometry and simulator) running a cocotb module."""

    def _run(sim, params, module, batch=64, expect_fail=False):
        reason = runner.missing_reason(sim)
        if reason:
            pytest.skip(reason)
        info = runner.generate_harness(params, batch)
        bdir = runner.build(sim, [info.path], info.top)
        rerun = runner.rerun_command(os.path.relpath(request.node.path, runner.REPO_ROOT),
                                     request.node.name)
        s = runner.run(sim, bdir, info.top, module,
                       {"DQT_ENTRY": str(info.entry_file()), "DQT_PARAMS": "{}",
                        "DQT_RERUN": rerun}, tag=module)
        print(s.table())
        if not expect_fail:
            s.assert_ok()
        return s

    return _run
