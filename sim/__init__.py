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
