"""Nested fake quantizers with straight-through estimators (PyTorch).

A master-width code q_n (n bits) is converted to b bits by the nested rule of
:func:`golden.ops.nested_shift` (``floor``: q >> k, ``round``: clamp((q + 2^(k-1)) >> k)),
k = n - b, and the fake-quantized value is ``scale_n * (q_b << k)``: the step at b bits is
``scale_n * 2^k``, so the scales are nested by construction (Δ_b = Δ_n · 2^(n-b)) and share
the origin 0.

Weights are signed n-bit codes with a per-output-channel (or per-tensor) max-abs scale.
Activations are unsigned n-bit codes after a PACT clip α (learnable), step α / (2^n - 1);
α starts from an exponential moving average of the observed activation range.

Gradients (docs/training.md): the rounding of a code is treated as the identity for the
quantized operand (straight-through estimator, zero outside the representable range), and as
locally constant for the scale α, where the function is piecewise differentiable: there the
gradient with respect to α is the true derivative, so finite differences confirm it.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from golden import defaults
from golden.formats import MAX_MASTER_WIDTH, DQTValueError, NestedMode

__all__ = [
    "QuantConfig",
    "round_half_up",
    "nested_codes",
    "fake_nested",
    "WeightQuantizer",
    "ActQuantizer",
]


@dataclass(frozen=True)
class QuantConfig:
    """Master width ``n``, candidate set ``B`` and nested conversion ``mode``, checked once.

    Parameters
    ----------
    n : int
        Master width, 2 <= n <= 16 (``golden.formats.MAX_MASTER_WIDTH``).
    B : tuple of int
        Candidate run-time widths, each in [1, n], no duplicates; kept sorted ascending.
    mode : str
        ``"floor"`` or ``"round"`` (see :class:`golden.formats.NestedMode`).
    scales : str
        ``"nested"`` (Δ_b = Δ_n · 2^(n-b), the DQT scheme) or ``"independent"`` (the ablation:
        every width has its own weight scale and its own learned activation step, so a
        switch of width requantizes; such a model has no integer export).
    """

    n: int = 8
    B: tuple = defaults.CANDIDATES
    mode: str = defaults.MODE.value
    scales: str = "nested"

    def __post_init__(self):
        n = self.n
        if isinstance(n, bool) or not isinstance(n, int) or not 2 <= n <= MAX_MASTER_WIDTH:
            raise DQTValueError(f"master width n={n!r} is outside the allowed range "
                                f"[2, {MAX_MASTER_WIDTH}]")
        B = tuple(self.B)
        if not B:
            raise DQTValueError("candidate set B is empty; give at least one bit-width")
        for b in B:
            if isinstance(b, bool) or not isinstance(b, int) or not 1 <= b <= n:
                raise DQTValueError(f"bit-width {b!r} in B={list(B)} is outside the allowed "
                                    f"range [1, n={n}]")
        if len(set(B)) != len(B):
            raise DQTValueError(f"candidate set B={list(B)} has duplicates")
        object.__setattr__(self, "B", tuple(sorted(B)))
        object.__setattr__(self, "mode", NestedMode.parse(self.mode).value)
        if self.scales not in ("nested", "independent"):
            raise DQTValueError(f"scales {self.scales!r} is not one of ['nested', 'independent']")

    def check_bits(self, bits, name="bits") -> int:
        """Return ``bits`` if it is one of B, else raise naming the value and B."""
        if isinstance(bits, bool) or not isinstance(bits, int) or bits not in self.B:
            raise DQTValueError(f"{name}={bits!r} is not in the candidate set B={list(self.B)} "
                                f"(n={self.n})")
        return bits

    def to_json(self) -> dict:
        return {"n": self.n, "B": list(self.B), "mode": self.mode, "scales": self.scales}


def round_half_up(v: torch.Tensor) -> torch.Tensor:
    """floor(v + 1/2): the rounding of the golden requantizer and average pool."""
    return torch.floor(v + 0.5)


def nested_codes(q: torch.Tensor, n: int, bits: int, mode: str, signed: bool) -> torch.Tensor:
    """Nested conversion of master codes ``q`` (a float or int64 tensor holding integers).

    Returns the b-bit codes (not shifted back). Float tensors are handled with ``floor`` of
    an exact power-of-two division, int64 tensors with arithmetic shifts; both equal
    :func:`golden.ops.nested_shift` for codes in the n-bit range.
    """
    k = n - bits
    if k < 0:
        raise DQTValueError(f"bits={bits} is larger than the master width n={n}")
    if k == 0:
        return q
    if q.dtype.is_floating_point:
        d = float(1 << k)
        if mode == "floor":
            return torch.floor(q / d)
        lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
        return torch.clamp(torch.floor((q + (1 << (k - 1))) / d), lo, hi)
    if mode == "floor":
        return q >> k
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    return torch.clamp((q + (1 << (k - 1))) >> k, lo, hi)


def fake_nested(x: torch.Tensor, scale, n: int, bits: int, mode: str, signed: bool
                ) -> torch.Tensor:
    """Fake-quantized value of an operand already on the n-bit grid ``scale * q_n``, seen at
    ``bits``: ``scale * (nested(q_n) << k)``. The gradient with respect to ``x`` is the
    identity (straight-through); ``scale`` receives none (it belongs to the producer).
    """
    if bits == n:
        return x
    s = scale.detach() if torch.is_tensor(scale) else scale
    q = torch.round(x.detach() / s)  # x is on the grid: this recovers the integer code
    lo, hi = (-(1 << (n - 1)), (1 << (n - 1)) - 1) if signed else (0, (1 << n) - 1)
    q = torch.clamp(q, lo, hi)
    v = nested_codes(q, n, bits, mode, signed) * float(1 << (n - bits)) * s
    return x + (v - x).detach()


class WeightQuantizer(nn.Module):
    """Signed n-bit symmetric weight quantizer, max-abs scale per output channel (axis 0).

    ``scale(w)`` = max|w| / (2^(n-1) - 1) per channel (per tensor when ``per_channel`` is
    False), detached; codes = clamp(round(w / scale)); at ``bits`` the fake weight is
    ``scale * (nested(codes) << k)`` with a straight-through gradient.
    """

    def __init__(self, cfg: QuantConfig, per_channel: bool = True):
        super().__init__()
        self.cfg = cfg
        self.per_channel = bool(per_channel)

    def scale(self, w: torch.Tensor) -> torch.Tensor:
        """Master step, shape [O] (per channel) or [1]; never zero."""
        a = w.detach().abs().reshape(w.shape[0], -1).amax(dim=1)
        if not self.per_channel:
            a = a.amax().reshape(1).expand(w.shape[0])
        a = torch.clamp(a, min=1e-8)
        return a / float((1 << (self.cfg.n - 1)) - 1)

    def scale_at(self, w: torch.Tensor, bits: int) -> torch.Tensor:
        """Step of the b-bit nested grid: scale * 2^(n - b)."""
        self.cfg.check_bits(bits)
        return self.scale(w) * float(1 << (self.cfg.n - bits))

    def codes(self, w: torch.Tensor) -> torch.Tensor:
        """Master codes (float tensor holding integers in [-2^(n-1), 2^(n-1) - 1])."""
        s = self._bshape(self.scale(w), w)
        n = self.cfg.n
        return torch.clamp(torch.round(w.detach() / s), -(1 << (n - 1)), (1 << (n - 1)) - 1)

    @staticmethod
    def _bshape(s, w):
        return s.reshape((-1,) + (1,) * (w.dim() - 1))

    def forward(self, w: torch.Tensor, bits: int) -> torch.Tensor:
        n = self.cfg.n
        s = self._bshape(self.scale(w), w)
        q = nested_codes(self.codes(w), n, bits, self.cfg.mode, True)
        v = q * float(1 << (n - bits)) * s
        return w + (v - w).detach()


class ActQuantizer(nn.Module):
    """Unsigned n-bit activation quantizer with a learnable PACT clip α.

    y = s · clamp(floor(x / s + 1/2), 0, 2^n - 1), s = α / (2^n - 1): round half up, as the
    golden requantizer. Until α is initialised (``init_from_ema``), forward passes in
    ``observe`` mode track an exponential moving average of the batch maximum.

    Gradients: d y / d x = 1 on [0, α), 0 elsewhere (straight-through); d y / d α = q / (2^n-1)
    inside the range and 1 where x >= α, which is the exact derivative wherever the rounding
    does not jump.
    """

    def __init__(self, cfg: QuantConfig, ema_decay: float = 0.9, init_alpha: float = 6.0):
        super().__init__()
        if not 0.0 < ema_decay < 1.0:
            raise DQTValueError(f"ema_decay={ema_decay} is outside the allowed range (0, 1)")
        self.cfg = cfg
        self.ema_decay = float(ema_decay)
        self.alpha = nn.Parameter(torch.tensor(float(init_alpha)))
        self.register_buffer("ema_max", torch.tensor(0.0))
        self.register_buffer("ema_steps", torch.tensor(0, dtype=torch.int64))

    @property
    def levels(self) -> int:
        return (1 << self.cfg.n) - 1

    def scale(self) -> torch.Tensor:
        """Master step s = α / (2^n - 1) (a 0-d tensor, differentiable in α)."""
        return torch.clamp(self.alpha, min=1e-4) / float(self.levels)

    @torch.no_grad()
    def observe(self, x: torch.Tensor) -> None:
        """Update the EMA of the range with a batch (99.9th percentile, robust to outliers)."""
        v = torch.quantile(x.detach().float().flatten()[:200000].clamp(min=0), 0.999)
        if int(self.ema_steps) == 0:
            self.ema_max.copy_(v)
        else:
            self.ema_max.mul_(self.ema_decay).add_((1 - self.ema_decay) * v)
        self.ema_steps += 1

    @torch.no_grad()
    def init_from_ema(self) -> None:
        if int(self.ema_steps) > 0 and float(self.ema_max) > 0:
            self.alpha.copy_(self.ema_max)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.scale()
        alpha = s * float(self.levels)
        q = torch.clamp(round_half_up(x.detach() / s.detach()), 0, self.levels)
        inside = (x >= 0) & (x < alpha.detach())
        # value: s * q. Gradient: identity for x inside the range; d/dα = q/L (q == L on top).
        return s * q + torch.where(inside, x - x.detach(), torch.zeros_like(x))
