"""Verification of the RTL against the golden model (cocotb on Verilator and Icarus, and a
Verilator-native batch driver for whole networks).

``sim.runner``    simulator discovery, Verilog generation, cached builds, test runs, summaries
``sim.packing``   payload packing/unpacking from the generated port table (numpy, vectorised)
``sim.coverage``  functional coverage bins (precision x operand class x overflow)
``sim.stream``    cocotb stream driver / monitor with random valid gaps and backpressure
``sim.checker``   bulk scoreboard comparison with a located first-mismatch report
``sim.harness``   batch input/output harness around the layer engine (Amaranth)
``sim.engine_tb`` cocotb driver of the harnessed engine
``sim.batch``     Verilator-native batch driver of the engine (C++ library via ctypes)
``sim.network_check`` the whole-network walk and bulk comparison, shared by both drivers
``sim.network_tb`` cocotb test: a whole network on the engine vs golden traces
``sim.network``   ``verify_network``: the Python API of the whole-network check
``sim.cli``       ``dqt sim`` subcommand

See ``docs/verification.md``.
"""
__all__ = ["runner", "packing", "coverage", "stream", "checker", "harness", "engine_tb",
           "batch", "network_check", "network_tb", "network", "cli"]


def _die_with_parent() -> None:
    """In a simulator process that :func:`sim.runner.run` started (``DQT_SIM_PARENT`` in its
    environment holds the pid of that Python process): have the kernel send SIGKILL when the
    parent dies, so a regression that is killed (a CI timeout, ``kill -9``) leaves no
    simulator running on. The cocotb test modules live in this package, so every simulator
    process imports this file before its first test. A parent that died before this line
    ran is caught by the check that follows the request. Linux only (``prctl``)."""
    import os
    import sys
    pid = os.environ.get("DQT_SIM_PARENT", "")
    if not pid.isdigit() or not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal
    PR_SET_PDEATHSIG = 1
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):
        return
    if not _alive(int(pid)):
        os._exit(1)


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie, dead but not yet reaped, does not; without
    /proc, whether a signal could reach it)."""
    import os
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        if os.path.isdir("/proc/self"):
            return False
    except OSError:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


_die_with_parent()
