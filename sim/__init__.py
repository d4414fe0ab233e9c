"""Verification of the RTL against the golden model with cocotb (Verilator and Icarus).

``sim.runner``    simulator discovery, Verilog generation, cached builds, test runs, summaries
``sim.packing``   payload packing/unpacking from the generated port table (numpy, vectorised)
``sim.coverage``  functional coverage bins (precision x operand class x overflow)
``sim.stream``    cocotb stream driver / monitor with random valid gaps and backpressure
``sim.network``   whole-network check: every layer on the layer engine vs golden traces
``sim.cli``       ``dqt sim`` subcommand
"""
__all__ = ["runner", "packing", "coverage", "stream", "network"]
