"""Quantized conv2d / linear / residual-add layers whose precision is chosen per call.

Each layer mirrors one golden layer (``golden.layers.qdense`` / ``golden.layers.add``):

* input: unsigned n-bit codes on the producer's grid (value = s_x · q), nested to ``bits``;
* weights: signed n-bit codes (:class:`training.quant.WeightQuantizer`), nested to ``bits``;
* bias: rounded to master accumulator units s_x · s_w[o] (so it does not depend on ``bits``);
* output: requantized by a PACT quantizer (:class:`training.quant.ActQuantizer`) to unsigned
  n-bit codes (ReLU implied: the code format is unsigned), or left as the accumulator
  (``requant=False``, the logits).

``bits`` is an int (static) or a ``[N, len(B)]`` one-hot gate tensor (dynamic, one choice per
input): the output is then the gate-weighted sum of the per-width outputs, so hard
straight-through gates select exactly one width in the forward pass and pass gradients to all.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from golden.formats import DQTValueError, acc_width_rule

from .quant import ActQuantizer, QuantConfig, WeightQuantizer, fake_nested, nested_codes, \
    round_half_up

__all__ = ["QConv2d", "QLinear", "QAdd", "ste_round_to", "global_avg_codes", "IntParams",
           "requant_constants", "avg_codes", "ADD_SHIFT", "M_BITS"]

#: Shift of the residual-add constants (M_i fit comfortably in the runner's 48-bit M).
ADD_SHIFT = 30
#: Requantization multipliers stay below 2^M_BITS.
M_BITS = 31


def _f64(t):
    return np.asarray(t.detach().cpu().double().numpy(), dtype=np.float64)


def requant_constants(ratio: np.ndarray, acc_width: int):
    """Dyadic form M · 2^-S of the real ratios ``ratio`` (float64, one per channel): one S,
    the largest (<= 62) that keeps every M below 2^min(M_BITS, 62 - acc_width), so that
    acc · M stays inside int64; M = round_half_even(ratio · 2^S)."""
    mbits = min(M_BITS, 62 - acc_width)
    S = 62
    while S > 0 and np.round(ratio.max() * 2.0 ** S) >= 2 ** mbits:
        S -= 1
    return np.round(ratio * 2.0 ** S).astype(np.int64), int(S)


@dataclass(frozen=True)
class IntParams:
    """The integer constants of one quantized layer, exactly as exported: master weight
    codes, bias in master accumulator units, accumulator width, requantization M and S
    (M is all zeros and S = 0 without requantization)."""

    weight: torch.Tensor   # int64, the layer's weight shape
    bias: torch.Tensor     # int64 [O]
    acc_width: int
    M: torch.Tensor        # int64 [O]
    S: int


def ste_round_to(v: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
    """``step * round_half_even(v / step)`` with an identity gradient for ``v``."""
    q = step * torch.round(v.detach() / step)
    return v + (q - v).detach()


def _check_pos(name, v):
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise DQTValueError(f"{name}={v!r} must be a positive integer")
    return v


class _QDense(nn.Module):
    kind = ""

    def __init__(self, cfg: QuantConfig, relu: bool, requant: bool, per_channel: bool):
        super().__init__()
        if not isinstance(cfg, QuantConfig):
            raise DQTValueError(f"cfg must be a QuantConfig, got {type(cfg).__name__}")
        self.cfg = cfg
        self.relu = bool(relu)
        self.requant = bool(requant)
        self.wq = WeightQuantizer(cfg, per_channel)
        self.aq = ActQuantizer(cfg) if requant else None
        if cfg.scales == "independent":
            # log of the input step per width; 0 = not initialised yet (set on first use)
            self.log_in_step = nn.Parameter(torch.zeros(len(cfg.B)))

    # subclasses: self.weight, self.bias, _op(x, w), _bshape
    def folded(self):
        """(weight, bias) as used for quantization (BN folded where the layer has BN)."""
        return self.weight, self.bias

    def acc_scale(self, x_scale) -> torch.Tensor:
        """Real value of one master accumulator unit per output channel: s_x · s_w[o]."""
        w, _ = self.folded()
        return x_scale * self.wq.scale(w)

    def _independent(self, x, x_scale, w, bits):
        """Ablation: input requantized onto its own learned b-bit step (PACT-style gradient),
        weights onto their own max-abs b-bit scale; nothing is nested."""
        j = self.cfg.B.index(bits)
        levels = (1 << bits) - 1
        if float(self.log_in_step[j].detach()) == 0.0:
            with torch.no_grad():
                self.log_in_step[j] = torch.log(x_scale.detach() * ((1 << self.cfg.n) - 1) / levels)
        step = torch.exp(self.log_in_step[j])
        q = torch.clamp(round_half_up(x.detach() / step.detach()), 0, levels)
        inside = (x >= 0) & (x < step.detach() * levels)
        xb = step * q + torch.where(inside, x - x.detach(), torch.zeros_like(x))
        a = w.detach().abs().reshape(w.shape[0], -1).amax(dim=1)
        if not self.wq.per_channel:
            a = a.amax().expand(w.shape[0])
        sw = (torch.clamp(a, min=1e-8) / max(1, (1 << (bits - 1)) - 1)).reshape(
            (-1,) + (1,) * (w.dim() - 1))
        lim = 1 << (bits - 1)
        wq = torch.clamp(torch.round(w.detach() / sw), -lim, lim - 1) * sw
        return xb, w + (wq - w).detach()

    def _forward_bits(self, x, x_scale, bits: int):
        self.cfg.check_bits(bits)
        w, b = self.folded()
        if self.cfg.scales == "independent":
            xb, wb = self._independent(x, x_scale, w, bits)
        else:
            xb = fake_nested(x, x_scale, self.cfg.n, bits, self.cfg.mode, signed=False)
            wb = self.wq(w, bits)
        bq = ste_round_to(b, self.acc_scale(x_scale).detach())
        y = self._op(xb, wb) + bq.reshape(self._bshape)
        return self.aq(y) if self.requant else y

    def forward(self, x, x_scale, bits):
        """Fake-quantized output at ``bits`` (int, or [N, len(B)] gates); see the module doc."""
        if torch.is_tensor(bits):
            if bits.dim() != 2 or bits.shape[1] != len(self.cfg.B) or bits.shape[0] != x.shape[0]:
                raise DQTValueError(f"gates have shape {tuple(bits.shape)}, expected "
                                    f"[{x.shape[0]}, {len(self.cfg.B)}]")
            out = 0
            for j, b in enumerate(self.cfg.B):
                g = bits[:, j].reshape((-1,) + (1,) * (x.dim() - 1 if self.kind == "conv2d" else 1))
                out = out + g * self._forward_bits(x, x_scale, b)
            return out
        return self._forward_bits(x, x_scale, bits)

    def out_scale(self):
        """Master step of the output codes (None without requantization)."""
        return self.aq.scale() if self.requant else None

    # ---- integer path: the exported layer, code for code -------------------------------
    @torch.no_grad()
    def int_params(self, x_scale) -> IntParams:
        """The layer's integer constants for input step ``x_scale`` (what the exporter
        writes): weight codes, bias round_half_even(b / (s_x · s_w)) in the forward pass's
        float32 arithmetic, the accumulator width of the exact sum's bound and M / 2^S of
        r = s_x · s_w / s_y."""
        n = self.cfg.n
        w, b = self.folded()
        codes = self.wq.codes(w).to(torch.int64)
        acc_s = self.acc_scale(x_scale).detach()
        bias = torch.round(b.detach() / acc_s).to(torch.int64)  # == ste_round_to's integer
        K = int(np.prod(codes.shape[1:]))
        bound = K * ((1 << n) - 1) * (1 << (n - 1)) + int(bias.abs().max())
        width = max(acc_width_rule(n, K), bound.bit_length() + 1)
        if width > 62:
            raise DQTValueError(f"accumulator needs {width} bits, more than 62 (the bias is "
                                "too large for the scales)")
        if self.requant:
            M, S = requant_constants(_f64(acc_s) / float(_f64(self.out_scale())), width)
        else:
            M, S = np.zeros(codes.shape[0], dtype=np.int64), 0
        return IntParams(codes, bias, int(width), torch.from_numpy(M), S)

    @torch.no_grad()
    def forward_codes(self, q, x_scale, bits: int, p: IntParams | None = None):
        """Integer output of the layer on unsigned master codes ``q`` (int64) at ``bits``:
        exact accumulation (binary64 holds every partial sum: |sum| < 2^53), saturation at
        the accumulator width, then clamp((acc · M + 2^(S-1)) >> S, 0, 2^n - 1); without
        requantization the accumulator itself. The golden ``qdense`` rule, term for term."""
        self.cfg.check_bits(bits)
        p = p or self.int_params(x_scale)
        n, mode = self.cfg.n, self.cfg.mode
        xb = nested_codes(q, n, bits, mode, signed=False)
        wb = nested_codes(p.weight, n, bits, mode, signed=True)
        s = torch.round(self._op(xb.double(), wb.double())).to(torch.int64)
        acc = (s << (2 * (n - bits))) + p.bias.reshape(self._bshape)
        lim = 1 << (p.acc_width - 1)
        acc = torch.clamp(acc, -lim, lim - 1)
        if not self.requant:
            return acc
        y = acc * p.M.reshape(self._bshape)
        if p.S:
            y = (y + (1 << (p.S - 1))) >> p.S
        return torch.clamp(y, 0, (1 << n) - 1)


class QConv2d(_QDense):
    """Quantized 2-d convolution (golden ``conv2d``), optional BatchNorm folded into it.

    BatchNorm trains with batch statistics in the float phase; in the quantized phase it is
    folded with its running statistics (frozen) into the weights and bias before
    quantization, as the integer network has no normalisation layer.
    """

    kind = "conv2d"

    def __init__(self, cfg, cin, cout, k, stride=1, padding=0, relu=True, requant=True,
                 per_channel=True, bn=False):
        super().__init__(cfg, relu, requant, per_channel)
        self.cin, self.cout = _check_pos("cin", cin), _check_pos("cout", cout)
        self.k, self.stride = _check_pos("k", k), _check_pos("stride", stride)
        if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
            raise DQTValueError(f"padding={padding!r} must be a non-negative integer")
        self.padding = padding
        self.weight = nn.Parameter(torch.empty(cout, cin, k, k))
        nn.init.kaiming_normal_(self.weight, nonlinearity="relu")
        self.bias = nn.Parameter(torch.zeros(cout))
        self.bn = nn.BatchNorm2d(cout) if bn else None
        self._bshape = (1, -1, 1, 1)

    def _op(self, x, w):
        return F.conv2d(x, w, None, self.stride, self.padding)

    def folded(self):
        if self.bn is None:
            return self.weight, self.bias
        bn = self.bn
        g = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        return self.weight * g.reshape(-1, 1, 1, 1), (self.bias - bn.running_mean) * g + bn.bias

    def forward_float(self, x, observe: bool = False):
        y = self._op(x, self.weight) + self.bias.reshape(self._bshape)
        if self.bn is not None:
            y = self.bn(y)
        if self.requant:
            y = F.relu(y)
            if observe:
                self.aq.observe(y)
        return y


class QLinear(_QDense):
    """Quantized fully connected layer (golden ``linear``)."""

    kind = "linear"

    def __init__(self, cfg, fin, fout, relu=True, requant=True, per_channel=True):
        super().__init__(cfg, relu, requant, per_channel)
        self.fin, self.fout = _check_pos("fin", fin), _check_pos("fout", fout)
        self.weight = nn.Parameter(torch.empty(fout, fin))
        nn.init.kaiming_normal_(self.weight, nonlinearity="relu")
        self.bias = nn.Parameter(torch.zeros(fout))
        self._bshape = (1, -1)

    def _op(self, x, w):
        return F.linear(x, w)

    def forward_float(self, x, observe: bool = False):
        y = self._op(x, self.weight) + self.bias
        if self.requant:
            y = F.relu(y)
            if observe:
                self.aq.observe(y)
        return y


class QAdd(nn.Module):
    """Residual add of two unsigned code tensors (golden ``add``), requantized by PACT.

    The integer operator computes clamp(round((M1 q1 + M2 q2 + M3) / 2^S), 0, 2^n - 1); the
    fake-quantized form adds the real values and requantizes (the unsigned output clamp is
    a ReLU after the add).
    """

    kind = "add"

    def __init__(self, cfg: QuantConfig):
        super().__init__()
        self.cfg = cfg
        self.aq = ActQuantizer(cfg)

    def forward_float(self, x1, x2, observe: bool = False):
        y = F.relu(x1 + x2)
        if observe:
            self.aq.observe(y)
        return y

    def forward(self, x1, x2):
        return self.aq(x1 + x2)

    def out_scale(self):
        return self.aq.scale()

    def int_constants(self, s1, s2):
        """(M1, M2, M3, S) of the golden add: M_i = round(s_i / s_y · 2^ADD_SHIFT), M3 = 0."""
        sy = float(_f64(self.out_scale()))
        return (int(round(float(_f64(s1)) / sy * 2 ** ADD_SHIFT)),
                int(round(float(_f64(s2)) / sy * 2 ** ADD_SHIFT)), 0, ADD_SHIFT)

    @torch.no_grad()
    def forward_codes(self, q1, s1, q2, s2):
        """clamp((M1 q1 + M2 q2 + M3 + 2^(S-1)) >> S, 0, 2^n - 1) on int64 codes."""
        M1, M2, M3, S = self.int_constants(s1, s2)
        v = (M1 * q1 + M2 * q2 + M3 + (1 << (S - 1))) >> S
        return torch.clamp(v, 0, (1 << self.cfg.n) - 1)


def avg_codes(q):
    """Global average pool of int64 codes [N, C, H, W]: (Σ + floor(HW/2)) // HW, round half
    up (golden ``avg_pool``)."""
    cnt = q.shape[2] * q.shape[3]
    return (q.sum(dim=(2, 3)) + cnt // 2) // cnt


def global_avg_codes(x, scale):
    """Global average pool on codes, round half up (golden ``avgpool`` global), STE."""
    q = torch.round(x.detach().double() / scale.detach().double())
    cnt = x.shape[2] * x.shape[3]
    v = scale.detach() * torch.floor((q.sum(dim=(2, 3)) + cnt // 2) / cnt).to(x.dtype)
    m = x.mean(dim=(2, 3))
    return m + (v - m).detach()
