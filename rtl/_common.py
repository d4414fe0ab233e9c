"""Shared building blocks of the RTL components: argument checks and small combinational logic.

Private to :mod:`rtl`; every public component documents its own contract.
"""
from __future__ import annotations

import operator

from amaranth.hdl import Cat, Const, Mux, Signal, Value, signed, unsigned

from golden.formats import DQTValueError, MAX_MASTER_WIDTH, NestedMode, Overflow

__all__ = [
    "RTLParamError", "check_int", "check_choice", "check_mode", "check_overflow", "check_n",
    "ceil_log2", "bits_width", "code_shape",
    "check_candidates", "nested_shift_comb", "overflow_policy", "policy_bounds", "round_half",
    "shift_or_zero", "clamp", "sum_tree",
    "rshift_round_comb", "const_width", "materialize",
]


class RTLParamError(DQTValueError):
    """A component parameter outside its allowed range (the message names value and range)."""


def check_int(name, value, lo=None, hi=None):
    """``operator.index(value)`` checked against ``[lo, hi]``; raises :class:`RTLParamError`."""
    if isinstance(value, bool):
        raise RTLParamError(f"{name} must be an integer, got {value!r}")
    try:
        value = operator.index(value)
    except TypeError:
        raise RTLParamError(f"{name} must be an integer, got {value!r}") from None
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        rng = f"[{lo if lo is not None else '-inf'}, {hi if hi is not None else 'inf'}]"
        raise RTLParamError(f"{name}={value} is outside the allowed range {rng}")
    return value


def check_choice(name, value, choices):
    if value not in choices:
        raise RTLParamError(f"{name}={value!r} is not one of {list(choices)}")
    return value


def check_mode(mode):
    try:
        return NestedMode.parse(mode)
    except DQTValueError as e:
        raise RTLParamError(str(e)) from None


def check_overflow(overflow):
    try:
        return Overflow.parse(overflow)
    except DQTValueError as e:
        raise RTLParamError(str(e)) from None


def check_n(n, name="n"):
    return check_int(name, n, 2, MAX_MASTER_WIDTH)


def ceil_log2(v: int) -> int:
    """Smallest c with 2^c >= v (0 for v <= 1)."""
    return max(0, (int(v) - 1).bit_length())


def bits_width(n: int) -> int:
    """Width of a run-time precision field able to hold the values 0..n."""
    return int(n).bit_length()


def code_shape(n: int, is_signed: bool):
    return signed(n) if is_signed else unsigned(n)


def const_width(lo: int, hi: int) -> int:
    """Signed width holding every integer in [lo, hi]."""
    w = 1
    while not (-(1 << (w - 1)) <= lo and hi <= (1 << (w - 1)) - 1):
        w += 1
    return w


def check_candidates(candidates, n):
    """The set B of supported run-time precisions (default: every width 1..n), sorted."""
    if candidates is None:
        return tuple(range(1, n + 1))
    try:
        cands = sorted({check_int("candidate bits", b, 1, n) for b in candidates})
    except TypeError:
        raise RTLParamError(f"candidates={candidates!r} must be an iterable of integers") from None
    if not cands:
        raise RTLParamError("candidates must name at least one precision in [1, n]")
    return tuple(cands)


def materialize(m, expr, name):
    """Assign an expression to a named Signal of its own shape.

    The Verilog back end inlines an expression at every use, so an expression used twice
    (e.g. in a clamp) would be built twice; a Signal is built once.
    """
    if isinstance(expr, Signal):
        return expr
    expr = Value.cast(expr)
    s = Signal(expr.shape(), name=name)
    m.d.comb += s.eq(expr)
    return s


def _shift_one(m, q, n, b, round_, is_signed, name):
    """Right-aligned nested code of q at b bits (k = n - b > 0)."""
    k = n - b
    if not round_:
        r = q >> k                       # arithmetic for signed q: floor
    else:
        # round half up; can exceed the b-bit maximum, hence the clamp
        t = materialize(m, (q + (1 << (k - 1))) >> k, f"{name}_t{b}")
        hi = (1 << (b - 1)) - 1 if is_signed else (1 << b) - 1
        r = Mux(t > hi, hi, t)           # never below the minimum: q + half >= lo_n
    return r


def nested_shift_comb(m, q, n, bits, mode, is_signed, candidates, name="qb"):
    """Combinational nested conversion of master code ``q`` at run-time width ``bits``.

    ``mode`` is a :class:`NestedMode` (elaboration-time) or a 1-bit Value (1 = round).
    Returns ``(right, msb)``: the b-bit code right-aligned in an n-bit signal, and the same
    code shifted back to the master position (low k bits zero). A ``bits`` value outside
    ``candidates`` selects full precision (k = 0).
    """
    shape = code_shape(n, is_signed)
    right = Signal(shape, name=f"{name}_r")
    msb = Signal(shape, name=f"{name}_m")
    # every candidate's result is built outside the case statement, so the case only selects
    res = {}
    for b in candidates:
        if b == n:
            continue
        if isinstance(mode, Value):
            r = Mux(mode, _shift_one(m, q, n, b, True, is_signed, name),
                    _shift_one(m, q, n, b, False, is_signed, name))
        else:
            r = _shift_one(m, q, n, b, mode is NestedMode.ROUND, is_signed, name)
        res[b] = materialize(m, r, f"{name}_b{b}")
    with m.Switch(bits):
        for b, r in res.items():
            with m.Case(b):
                m.d.comb += [right.eq(r), msb.eq(r << (n - b))]
        with m.Default():
            m.d.comb += [right.eq(q), msb.eq(q)]
    return right, msb


def policy_bounds(m, width, E: int, name="bounds", registered: bool = False):
    """The constants of a run-time accumulator width ``width`` (a Value, 2..E) at E bits:
    ``mask`` = 2^W - 1, ``sign`` = 2^(W-1), ``hi`` = 2^(W-1) - 1, ``lo`` = -2^(W-1).
    ``registered``: computed into registers (two cycles after ``width`` changes: E - W,
    then the shifts), so none of it is on the datapath's path (the engine's width is a
    configuration register, written only while the engine is idle)."""
    from types import SimpleNamespace
    d = m.d.sync if registered else m.d.comb
    hi = Signal(signed(E + 1), name=f"{name}_hi")
    lo = Signal(signed(E + 1), name=f"{name}_lo")
    mask = Signal(E, name=f"{name}_mask")
    sign = Signal(E, name=f"{name}_sign")
    sh = Signal(range(E + 1), name=f"{name}_sh")
    d += sh.eq(E - width)
    # Right shifts of E-bit constants only (no variable left shift, whose result Amaranth
    # sizes at E + 2^len(sh) - 1 bits: several machine words in a simulator), and no carry
    # chain: hi = (2^(E-1) - 1) >> sh and lo = -2^(W-1) = ~hi.
    h_ = Const((1 << (E - 1)) - 1, E) >> sh
    d += [mask.eq(Const((1 << E) - 1, E) >> sh), sign.eq(Const(1 << (E - 1), E) >> sh),
          hi.eq(h_), lo.eq((~Cat(h_, Const(0, 1))).as_signed())]
    return SimpleNamespace(mask=mask, sign=sign, hi=hi, lo=lo)


def overflow_policy(m, exact, width, overflow, name="pol"):
    """Apply an overflow policy to an exact signed sum (golden ``accumulate``).

    ``width`` and ``overflow`` are ints/enums (elaboration time) or Values (run time;
    ``overflow`` 1 = saturate); ``width`` may also be the :func:`policy_bounds` of a
    run-time width. Returns ``(value, over)``: value has the shape of ``exact`` and holds
    the W-bit result sign-extended; ``over`` is 1 where exact leaves the W-bit range.
    """
    E = len(exact)
    val = Signal(signed(E), name=f"{name}_val")
    over = Signal(name=f"{name}_over")
    if isinstance(width, Value):
        width = policy_bounds(m, width, E, name)
    if hasattr(width, "mask"):
        hi, lo, mask, sign = width.hi, width.lo, width.mask, width.sign
        # the low W bits of exact, sign-extended from bit W-1: (u ^ 2^(W-1)) - 2^(W-1)
        wrapped = (((exact.as_unsigned() & mask) ^ sign) - sign)[:E].as_signed()
    else:
        W = int(width)
        hi, lo = (1 << (W - 1)) - 1, -(1 << (W - 1))
        wrapped = exact[:W].as_signed() if W < E else exact
    wrapped = materialize(m, wrapped, f"{name}_wrap")
    m.d.comb += over.eq((exact > hi) | (exact < lo))
    sat = Mux(exact > hi, hi, Mux(exact < lo, lo, exact))
    if isinstance(overflow, Value):
        m.d.comb += val.eq(Mux(overflow, sat, wrapped))
    elif Overflow.parse(overflow) is Overflow.SATURATE:
        m.d.comb += val.eq(sat)
    else:
        m.d.comb += val.eq(wrapped)
    return val, over


def clamp(m, v, lo, hi, name="clamp"):
    """Clamp to [lo, hi] (hi wins if lo > hi); ``v`` is built once."""
    v = materialize(m, v, f"{name}_in")
    return Mux(v > hi, hi, Mux(v < lo, lo, v))


def sum_tree(values):
    """Balanced adder tree (Amaranth widens every addition, so no bits are lost)."""
    vals = list(values)
    if not vals:
        return Const(0, 1)
    while len(vals) > 1:
        nxt = [vals[i] + vals[i + 1] for i in range(0, len(vals) - 1, 2)]
        if len(vals) % 2:
            nxt.append(vals[-1])
        vals = nxt
    return vals[0]


def round_half(S, W: int):
    """2^(S-1) (0 for S = 0) for a run-time shift S, kept to W - 1 bits: the rounding
    constant of :func:`rshift_round_comb` for a W-bit signed value."""
    return ((Const(1, 1) << S) >> 1)[:W - 1]


def shift_or_zero(t, S, W: int):
    """``t >> S`` for a rounded W-bit value ``t`` (``v + round_half``), 0 where S >= W."""
    shifted = t >> S
    if (1 << len(S)) - 1 < W:
        return shifted
    return Mux(S >= W, 0, shifted)


def rshift_round_comb(v, S):
    """(v + 2^(S-1)) >> S with round half up; S may be an int or a Value (S = 0: identity)."""
    if isinstance(S, int):
        return v if S == 0 else (v + (1 << (S - 1))) >> S
    # Kept to len(v) + 1 bits (at most 64 for a 63-bit product: one machine word in a
    # simulator, where the textbook ``(1 << S) >> 1`` would be 65 bits wide). half holds
    # 2^(S-1) for 1 <= S <= W-1 (W = len(v)); for S >= W the exact result is 0 (shown in
    # docs/rtl.md), so that case is a mux instead of wider bits.
    v = Value.cast(v)
    if not v.shape().signed:
        v = Cat(v, Const(0, 1)).as_signed()
    W = len(v)
    return shift_or_zero(v + round_half(S, W), S, W)
