"""Defaults of the toolkit, declared once: master width, candidate set, nested mode,
overflow policy, operand alignment, accumulator terms and the layer engine's sizing.

Golden model, RTL catalog, simulation, training and reports import these names; nothing
else spells a default out. The engine's register map lives with its host protocol
(:mod:`rtl.engine_protocol`).
"""
from __future__ import annotations

from .formats import Alignment, NestedMode, Overflow

__all__ = ["N", "CANDIDATES", "MODE", "OVERFLOW", "ALIGNMENT", "ACC_TERMS", "COST_TERMS",
           "ENGINE", "candidates_for"]

#: Master width n of every code (the paper's 8).
N = 8
#: Candidate run-time widths B at n = 8.
CANDIDATES = (2, 4, 6, 8)
#: Nested conversion rule: the paper's own "single logical right bit-shift".
MODE = NestedMode.FLOOR
OVERFLOW = Overflow.WRAP
ALIGNMENT = Alignment.RIGHT
#: Longest dot product (terms) whose guard bits a component's accumulator covers.
ACC_TERMS = 512
#: Terms the single-lane cost datapaths size their accumulators for: the largest fan-in of
#: the digits network is 64 and ResNet layers reach 4608, so 256 is a middle ground.
COST_TERMS = 256

#: Layer engine sizing: the geometry the engine testbench and the whole-network
#: simulation verify, and the one the reports cost.
ENGINE = {"n": N, "lanes": 8, "pes": 8, "max_k": 64, "max_out": 16, "weight_depth": 16,
          "acc_max": 32, "m_bits": 16, "variant": ALIGNMENT, "candidates": list(CANDIDATES),
          "add_bits": 32, "deep_pipeline": False, "fusion": False}


def candidates_for(n: int) -> tuple[int, ...]:
    """The candidate set scaled to master width ``n``: B itself at n = 8, every width up to
    n for n <= 4, else {2, 4, n/2, n}."""
    if n == N:
        return CANDIDATES
    if n <= 4:
        return tuple(range(1, n + 1))
    return tuple(sorted({2, 4, n // 2, n}))
