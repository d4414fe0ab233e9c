"""Precision controller: the paper's two-layer MLP choosing a bit-width per layer per input.

Input: the tap layer's output codes, globally average-pooled (integer, round half up, the
golden runner's rule). ``fc1`` (hidden 64, ReLU, requantized) and ``fc2`` (no requantization,
``len(controlled) * len(B)`` logits, per-tensor weight scale so that the integer logits are
proportional to the real ones) run at the controller width (the largest candidate).

Training draws hard one-hot Gumbel-Softmax samples (straight-through gradients) at a
temperature given by :class:`TauSchedule`; inference takes the argmax (first index on ties,
as ``numpy.argmax`` in the golden runner).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from golden.formats import DQTValueError

from .layers import QLinear
from .quant import QuantConfig

__all__ = ["Controller", "TauSchedule"]


@dataclass(frozen=True)
class TauSchedule:
    """Gumbel-Softmax temperature over training progress t in [0, 1].

    ``kind="exp"``: tau = start · (end / start)^t; ``"linear"``: start + (end - start) · t;
    ``"constant"``: start.
    """

    start: float = 2.0
    end: float = 0.5
    kind: str = "exp"

    def __post_init__(self):
        for name in ("start", "end"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise DQTValueError(f"tau {name}={v!r} must be a finite number > 0")
        if self.kind not in ("exp", "linear", "constant"):
            raise DQTValueError(f"tau schedule kind {self.kind!r} is not one of "
                                "['exp', 'linear', 'constant']")

    def __call__(self, t: float) -> float:
        t = min(1.0, max(0.0, float(t)))
        if self.kind == "exp":
            return self.start * (self.end / self.start) ** t
        if self.kind == "linear":
            return self.start + (self.end - self.start) * t
        return self.start


class Controller(nn.Module):
    """Two-layer MLP over pooled tap features; one categorical choice over B per controlled
    layer.

    Parameters
    ----------
    cfg : QuantConfig
    in_features : int
        Channels of the tap layer (features after global pooling).
    n_controlled : int
        Number of controlled layers C; the output has C · len(B) logits.
    hidden : int
        Hidden width (the paper uses 64).
    """

    def __init__(self, cfg: QuantConfig, in_features: int, n_controlled: int, hidden: int = 64):
        super().__init__()
        if isinstance(n_controlled, bool) or not isinstance(n_controlled, int) or n_controlled < 1:
            raise DQTValueError(f"n_controlled={n_controlled!r} must be a positive integer")
        self.cfg = cfg
        self.n_controlled = n_controlled
        self.fc1 = QLinear(cfg, in_features, hidden, relu=True, requant=True)
        self.fc2 = QLinear(cfg, hidden, n_controlled * len(cfg.B), relu=False, requant=False,
                           per_channel=False)
        nn.init.normal_(self.fc2.weight, std=0.01)
        # Start from a preference for the widest candidate; the cost term moves it down.
        with torch.no_grad():
            self.fc2.bias.copy_(torch.linspace(-0.5, 0.5, len(cfg.B)).repeat(n_controlled))

    @property
    def bits(self) -> int:
        """Width the controller's own layers run at (the largest candidate)."""
        return self.cfg.B[-1]

    def forward_float(self, feat, observe: bool = False):
        h = self.fc1.forward_float(feat, observe)
        return self.fc2.forward_float(h).reshape(feat.shape[0], self.n_controlled, -1)

    def logits(self, feat, feat_scale):
        """Fake-quantized logits [N, C, len(B)] from pooled features on the tap's grid."""
        h = self.fc1(feat, feat_scale, self.bits)
        z = self.fc2(h, self.fc1.out_scale(), self.bits)
        return z.reshape(feat.shape[0], self.n_controlled, -1)

    def gates(self, logits, tau: float = 1.0, sample: bool = True):
        """One-hot gates [N, C, len(B)]: hard Gumbel-Softmax (straight-through) when
        ``sample``, else the argmax."""
        if sample:
            return F.gumbel_softmax(logits, tau=tau, hard=True, dim=-1)
        idx = torch.argmax(logits, dim=-1)
        return F.one_hot(idx, logits.shape[-1]).to(logits.dtype)
