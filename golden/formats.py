"""Number formats and operator configurations, declared once and shared by golden, rtl,
training and reports.

Every dataclass is frozen and validates itself in ``__post_init__``; errors name the value
and the allowed range. See ``docs/arithmetic.md`` for the normative definitions.
"""
from __future__ import annotations

import enum
import math
import operator
from dataclasses import dataclass

__all__ = [
    "DQTValueError",
    "NestedMode",
    "Overflow",
    "RequantRule",
    "Alignment",
    "IntFormat",
    "Dyadic",
    "AccumulatorSpec",
    "MulConstants",
    "AddConstants",
    "MAX_MASTER_WIDTH",
    "check_bits",
    "acc_width_rule",
]

#: Largest master width the golden model supports (products of two 16-bit codes and
#: accumulators of up to 62 bits still fit int64 without loss).
MAX_MASTER_WIDTH = 16


class DQTValueError(ValueError):
    """A configuration or input value outside its allowed range."""


def _check_int(name, value, lo=None, hi=None):
    try:
        value = operator.index(value)
    except TypeError:
        raise DQTValueError(f"{name} must be an integer, got {value!r}") from None
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        rng = f"[{lo if lo is not None else '-inf'}, {hi if hi is not None else 'inf'}]"
        raise DQTValueError(f"{name}={value} is outside the allowed range {rng}")
    return value


class NestedMode(str, enum.Enum):
    """How a master-width code is converted to b bits (docs/arithmetic.md section 2)."""

    FLOOR = "floor"   # q_b = q_n >> k (arithmetic): a wire selection in hardware
    ROUND = "round"   # q_b = clamp((q_n + 2^(k-1)) >> k): paper Eq. 4, one adder + saturation

    @classmethod
    def parse(cls, value) -> "NestedMode":
        try:
            return cls(value.value if isinstance(value, enum.Enum) else value)
        except ValueError:
            raise DQTValueError(
                f"nested mode {value!r} is not one of {[m.value for m in cls]}") from None


class Overflow(str, enum.Enum):
    """Accumulator overflow policy; overflow is always counted, whichever policy applies."""

    WRAP = "wrap"
    SATURATE = "saturate"

    @classmethod
    def parse(cls, value) -> "Overflow":
        try:
            return cls(value.value if isinstance(value, enum.Enum) else value)
        except ValueError:
            raise DQTValueError(
                f"overflow policy {value!r} is not one of {[m.value for m in cls]}") from None


class Alignment(str, enum.Enum):
    """Where a nested b-bit operand sits in the multiplier (docs/rtl.md): right-aligned
    (b-bit code, product re-scaled by 2k) or MSB-aligned (master word, low k bits zero)."""

    RIGHT = "right"
    MSB = "msb"

    @classmethod
    def parse(cls, value) -> "Alignment":
        try:
            return cls(value.value if isinstance(value, enum.Enum) else value)
        except ValueError:
            raise DQTValueError(
                f"alignment {value!r} is not one of {[m.value for m in cls]}") from None


class RequantRule(str, enum.Enum):
    """Requantization rounding rule (docs/arithmetic.md section 6)."""

    DYADIC = "dyadic"       # (acc*M + 2^(S-1)) >> S, round half up
    GEMMLOWP = "gemmlowp"   # SaturatingRoundingDoublingHighMul + RoundingDivideByPOT

    @classmethod
    def parse(cls, value) -> "RequantRule":
        try:
            return cls(value.value if isinstance(value, enum.Enum) else value)
        except ValueError:
            raise DQTValueError(
                f"requantization rule {value!r} is not one of {[m.value for m in cls]}") from None


def check_bits(bits, n, candidates=None, name="bits"):
    """Check a run-time precision ``bits`` against the master width ``n`` and the set B."""
    bits = _check_int(name, bits, 1, n)
    if candidates is not None and bits not in candidates:
        raise DQTValueError(f"{name}={bits} is not in the candidate set B={sorted(candidates)}")
    return bits


@dataclass(frozen=True)
class IntFormat:
    """An n-bit integer code, signed (two's complement) or unsigned.

    Members
    -------
    lo, hi : int
        Smallest and largest code.
    """

    n: int
    signed: bool

    def __post_init__(self):
        object.__setattr__(self, "n", _check_int("n", self.n, 1, MAX_MASTER_WIDTH))
        object.__setattr__(self, "signed", bool(self.signed))

    @property
    def lo(self) -> int:
        return -(1 << (self.n - 1)) if self.signed else 0

    @property
    def hi(self) -> int:
        return (1 << (self.n - 1)) - 1 if self.signed else (1 << self.n) - 1

    def at(self, bits: int) -> "IntFormat":
        """The nested format at run-time width ``bits`` (same signedness)."""
        check_bits(bits, self.n)
        return IntFormat(bits, self.signed)

    def contains(self, q) -> bool:
        import numpy as np
        q = np.asarray(q)
        return bool(q.size == 0 or (q.min() >= self.lo and q.max() <= self.hi))

    def check(self, q, name="codes"):
        """Raise if any element of ``q`` is outside the format's range."""
        import numpy as np
        q = np.asarray(q)
        if q.size and not np.issubdtype(q.dtype, np.integer):
            raise DQTValueError(f"{name} must be integer codes, got dtype {q.dtype}")
        if q.size and (q.min() < self.lo or q.max() > self.hi):
            bad = q.min() if q.min() < self.lo else q.max()
            raise DQTValueError(
                f"{name} holds {int(bad)}, outside the {'signed' if self.signed else 'unsigned'} "
                f"{self.n}-bit range [{self.lo}, {self.hi}]")
        return q


@dataclass(frozen=True)
class Dyadic:
    """A real constant represented as M * 2^-S with M an integer of declared width.

    ``m_bits`` is the width of the signed integer M (sign included).
    """

    M: int
    S: int
    m_bits: int = 32

    def __post_init__(self):
        object.__setattr__(self, "m_bits", _check_int("m_bits", self.m_bits, 2, 48))
        lim = 1 << (self.m_bits - 1)
        object.__setattr__(self, "M", _check_int("M", self.M, -lim, lim - 1))
        object.__setattr__(self, "S", _check_int("S", self.S, 0, 62))

    @property
    def value(self) -> float:
        return self.M / float(1 << self.S)

    @classmethod
    def from_real(cls, r: float, m_bits: int = 16, max_shift: int = 48) -> "Dyadic":
        """Nearest dyadic with |M| < 2^(m_bits-1) and the largest S <= max_shift."""
        r = float(r)
        if not math.isfinite(r):
            raise DQTValueError(f"dyadic constant must be finite, got {r!r}")
        lim = (1 << (m_bits - 1)) - 1
        if r == 0.0:
            return cls(0, 0, m_bits)
        S = 0
        while S < max_shift and abs(round(r * (1 << (S + 1)))) <= lim:
            S += 1
        M = int(round(r * (1 << S)))
        if abs(M) > lim:
            raise DQTValueError(
                f"constant {r!r} does not fit a {m_bits}-bit multiplier even with shift 0")
        return cls(M, S, m_bits)


def acc_width_rule(n: int, K: int, signed: bool = True) -> int:
    """Default accumulator width: 2n + ceil(log2 K) (+1 when the sum is signed)."""
    n = _check_int("n", n, 1, MAX_MASTER_WIDTH)
    K = _check_int("K", K, 1)
    return 2 * n + max(0, math.ceil(math.log2(K))) + (1 if signed else 0)


@dataclass(frozen=True)
class AccumulatorSpec:
    """Declared accumulator: signed two's complement, ``width`` bits, overflow policy."""

    width: int
    overflow: Overflow = Overflow.WRAP

    def __post_init__(self):
        object.__setattr__(self, "width", _check_int("accumulator width", self.width, 2, 62))
        object.__setattr__(self, "overflow", Overflow.parse(self.overflow))

    @property
    def lo(self) -> int:
        return -(1 << (self.width - 1))

    @property
    def hi(self) -> int:
        return (1 << (self.width - 1)) - 1


@dataclass(frozen=True)
class MulConstants:
    """Constants of the integer multiply operator y = k1 q1 q2 + k2 q1 + k3 q2 + k4.

    k_i = M_i * 2^-S, all four sharing the shift S; y is clamped to ``out``.
    """

    M1: int
    M2: int
    M3: int
    M4: int
    S: int
    out: IntFormat
    m_bits: int = 32

    def __post_init__(self):
        lim = 1 << (self.m_bits - 1)
        for name in ("M1", "M2", "M3", "M4"):
            _check_int(name, getattr(self, name), -lim, lim - 1)
        object.__setattr__(self, "S", _check_int("S", self.S, 0, 62))

    @classmethod
    def from_scales(cls, dx, zx, dw, zw, dy, zy, out: IntFormat, m_bits=24, S=None):
        """Constants for y = x*w with x = dx(qx-zx), w = dw(qw-zw), y = dy(qy-zy)."""
        k1 = dx * dw / dy
        lim = (1 << (m_bits - 1)) - 1
        S = Dyadic.from_real(k1, m_bits, max_shift=40).S if S is None else S
        # k2 = -zw*k1, k3 = -zx*k1, k4 = zx*zw*k1 + zy: exact multiples of M1 so the
        # factored and per-element forms share their rounding points (docs section 3).
        # Lower S until every constant fits m_bits.
        while True:
            M1 = int(round(k1 * (1 << S)))
            Ms = (M1, -zw * M1, -zx * M1, zx * zw * M1 + (zy << S))
            if all(abs(m) <= lim for m in Ms) or S == 0:
                return cls(*Ms, S, out, m_bits)
            S -= 1


@dataclass(frozen=True)
class AddConstants:
    """Constants of the integer add operator y = k1 q1 + k2 q2 + k3, k_i = M_i 2^-S."""

    M1: int
    M2: int
    M3: int
    S: int
    out: IntFormat
    m_bits: int = 32

    def __post_init__(self):
        lim = 1 << (self.m_bits - 1)
        for name in ("M1", "M2", "M3"):
            _check_int(name, getattr(self, name), -lim, lim - 1)
        object.__setattr__(self, "S", _check_int("S", self.S, 0, 62))

    @classmethod
    def from_scales(cls, d1, z1, d2, z2, dy, zy, out: IntFormat, m_bits=24, S=16):
        """Constants for y = x1 + x2 with x_i = d_i(q_i - z_i), y = dy(qy - zy)."""
        M1 = int(round(d1 / dy * (1 << S)))
        M2 = int(round(d2 / dy * (1 << S)))
        M3 = -z1 * M1 - z2 * M2 + (zy << S)
        return cls(M1, M2, M3, S, out, m_bits)
