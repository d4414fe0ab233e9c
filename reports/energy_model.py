"""Analytical per-operation energy model anchored to published 45 nm figures.

Anchors (M. Horowitz, "Computing's energy problem (and what we can do about it)", ISSCC 2014,
Fig. 1.1.9, 45 nm, 0.9 V), each cited where it is used:

====================  =========
operation             energy
====================  =========
8-bit integer add     0.03 pJ
32-bit integer add    0.1 pJ
8-bit integer mult    0.2 pJ
32-bit integer mult   3.1 pJ
fp32 add              0.9 pJ
fp32 mult             3.7 pJ
====================  =========

Scaling with width (the brief's rule, checked against the anchors): an integer add costs
~n (interpolated linearly between the 8- and 32-bit anchors in log-log, so both are hit
exactly), an integer multiply ~n² (a·b bits: ~a·b, again through both anchors). Converting
int32 <-> fp32 is modelled as one fp32 add each (normalise, round: the adder's datapath) and
a run-time shifter of n bits as one n-bit add (a log2(n)-level mux tree switches about as
much as a ripple adder of the same width). These two are modelling choices, stated in the
report, not published figures.
"""
from __future__ import annotations

import math

from golden.formats import DQTValueError, acc_width_rule

__all__ = ["HOROWITZ_45NM", "add_pj", "mult_pj", "mac_model", "per_op_model", "MODEL_NOTES",
           "MODEL_FAMILIES"]

#: ISSCC 2014 (Horowitz) 45 nm anchors, pJ per operation
HOROWITZ_45NM = {
    "add8": 0.03,     # Horowitz ISSCC 2014: 8b add 0.03 pJ
    "add32": 0.1,     # Horowitz ISSCC 2014: 32b add 0.1 pJ
    "mult8": 0.2,     # Horowitz ISSCC 2014: 8b mult 0.2 pJ
    "mult32": 3.1,    # Horowitz ISSCC 2014: 32b mult 3.1 pJ
    "fadd32": 0.9,    # Horowitz ISSCC 2014: fp32 add 0.9 pJ
    "fmult32": 3.7,   # Horowitz ISSCC 2014: fp32 mult 3.7 pJ
}

MODEL_NOTES = [
    "Anchors: Horowitz, ISSCC 2014, 45 nm: 8b add 0.03 pJ, 32b add 0.1 pJ, 8b mult 0.2 pJ, "
    "32b mult 3.1 pJ, fp32 add 0.9 pJ, fp32 mult 3.7 pJ.",
    "Integer add ~ n and multiply ~ n^2 (a x b bits ~ a*b), interpolated in log-log "
    "through the 8- and 32-bit anchors.",
    "Modelling choices (not published figures): int32<->fp32 conversion = one fp32 add; a "
    "run-time nested shifter of n bits = one n-bit add; a floor shift by a fixed amount = 0.",
]


def _loglog(v8, v32, x):
    e = math.log(v32 / v8) / math.log(4.0)
    return v8 * (x / 8.0) ** e


def add_pj(n: float) -> float:
    """Energy of an n-bit integer add (pJ)."""
    if n <= 0:
        raise DQTValueError(f"add width n={n} must be > 0")
    return _loglog(HOROWITZ_45NM["add8"], HOROWITZ_45NM["add32"], n)


def mult_pj(a: float, b: float | None = None) -> float:
    """Energy of an a x b bit integer multiply (pJ); b defaults to a."""
    b = a if b is None else b
    if a <= 0 or b <= 0:
        raise DQTValueError(f"multiplier widths {a}x{b} must be > 0")
    # ~ a*b: evaluate the square law at the geometric-mean width
    return _loglog(HOROWITZ_45NM["mult8"], HOROWITZ_45NM["mult32"], math.sqrt(a * b))


def mac_model(family: str, n: int, b: int, K: int = 256, m_bits: int = 16) -> float:
    """Modelled energy (pJ) of one MAC of ``family`` at master width n, precision b.

    int_mac: an n x n multiply (fed b-bit codes, its energy is modelled as b x b, the
    ideal data-gated case) + an accumulator add; nested_mac floor: b x b multiply + add
    (the shift is a run-time mux: one n-bit add each for x and w); round: + one (n+1)-bit add
    per operand; bitserial: b cycles of an (n + b)-bit shift-add + the accumulator add;
    paper_dot: 3 multiplies (n x n, m x 2n, two m x n) + 4 adds per term; factored_dot: one
    n x n multiply + 3 adds per term + the per-output correction amortised over K.
    """
    W = acc_width_rule(n, K)
    if family == "int_mac":
        return mult_pj(b) + add_pj(W)
    if family in ("nested_mac", "nested_mac_floor"):
        return mult_pj(b) + add_pj(W) + 2 * add_pj(n)
    if family == "nested_mac_round":
        return mult_pj(b) + add_pj(W) + 2 * add_pj(n) + 2 * add_pj(n + 1)
    if family == "bitserial_mac":
        return b * add_pj(n + b) + add_pj(W) + add_pj(n)
    if family == "paper_dot":
        return (mult_pj(n) + mult_pj(m_bits, 2 * n) + 2 * mult_pj(m_bits, n)
                + 4 * add_pj(m_bits + 2 * n) + add_pj(W))
    if family == "factored_dot":
        corr = 3 * mult_pj(m_bits, W) + 3 * add_pj(m_bits + W)
        return mult_pj(n) + add_pj(W) + 2 * add_pj(n + 8) + corr / K
    raise DQTValueError(f"no MAC model for family {family!r}")


#: Design families the analytical model covers (the catalog's operator names).
MODEL_FAMILIES = ("int_mac", "nested_mac", "bitserial_mac", "paper_dot", "factored_dot",
                  "requantize", "fp32_requant", "nested_shift")


def per_op_model(family: str, n: int, b: int, params: dict | None = None) -> float | None:
    """Modelled energy (pJ) per operation of a design family (None when not modelled).

    Units follow the design: per MAC for MACs, per output value for requantizers, per
    element for the nested shifter.
    """
    params = params or {}
    mode = params.get("mode", "floor")
    if family == "nested_mac":
        return mac_model("nested_mac_round" if mode == "round" else "nested_mac", n, b)
    if family in ("int_mac", "bitserial_mac", "paper_dot", "factored_dot"):
        return mac_model(family, n, b)
    if family == "requantize":
        # 32 x 32 multiply (acc * M) + 64-bit rounding add + 64-bit shifter + clamp compare
        return mult_pj(32, 32) + 2 * add_pj(64) + add_pj(n)
    if family == "fp32_requant":
        # int -> fp32 (~fp add) + fp32 mult (3.7 pJ, Horowitz) + fp32 -> int (~fp add)
        return 2 * HOROWITZ_45NM["fadd32"] + HOROWITZ_45NM["fmult32"]
    if family == "nested_shift":
        return add_pj(n) + (add_pj(n + 1) if mode == "round" else 0.0)
    return None
