"""Integer-only layers with a run-time bit-width, in a reference and a fast implementation.

``impl="reference"``: numpy int64 (``np.matmul``/``einsum`` on int64 run plain loops, no BLAS,
so the sums are exact by construction). ``impl="fast"``: numba im2col and
:func:`golden.fast.planned_gemm` on the plan :func:`golden.fast.code_plan` proves exact. Both return identical arrays; the tests check it.
"""
from __future__ import annotations

import numpy as np

from . import fast as _fast
from .formats import AccumulatorSpec, AddConstants, DQTValueError, IntFormat
from .ops import accumulate, int_add, nested_shift, requantize

__all__ = ["prepare_weights", "PreparedWeights", "qdense_acc", "qdense", "max_pool", "avg_pool", "add", "clip", "IMPLS"]

IMPLS = ("reference", "fast")
# The fast path's conv2d uses oneDNN when torch has it (golden.fast.onednn_conv_acc); the tests
# switch this off to check the im2col + BLAS path too.
_use_onednn = True
_I64 = np.int64


def _check_impl(impl):
    if impl not in IMPLS:
        raise DQTValueError(f"impl {impl!r} is not one of {list(IMPLS)}")


def _ref_conv(x, w, stride, pad):
    N, C, H, W = x.shape
    O, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    Ho = (H + 2 * pad - kh) // stride + 1
    Wo = (W + 2 * pad - kw) // stride + 1
    out = np.zeros((N, O, Ho, Wo), dtype=_I64)
    for dy in range(kh):
        for dx in range(kw):
            patch = xp[:, :, dy:dy + stride * (Ho - 1) + 1:stride, dx:dx + stride * (Wo - 1) + 1:stride]
            out += np.einsum("nchw,oc->nohw", patch, w[:, :, dy, dx])
    return out


def qdense_acc(x, w, bias, n: int, bits: int, mode, acc: AccumulatorSpec, kind: str = "linear",
               stride: int = 1, padding: int = 0, impl: str = "fast",
               prepared: "PreparedWeights | None" = None):
    """Accumulator of a linear or conv2d layer at run-time width ``bits``, in master units.

    x: unsigned n-bit codes, [N, K] (linear) or [N, C, H, W] (conv2d); w: signed n-bit codes,
    [O, K] or [O, C, kh, kw]; bias: int64 [O] in master accumulator units.
    acc = (sum x_b * w_b) << 2(n - bits) + bias, then the overflow policy.
    Returns ``(acc, overflowed)`` with shape [N, O] or [N, O, Ho, Wo]. ``prepared`` (fast path
    only) reuses weights from :func:`prepare_weights`.
    """
    _check_impl(impl)
    if kind not in ("linear", "conv2d"):
        raise DQTValueError(f"layer kind {kind!r} is not one of ['linear', 'conv2d']")
    if impl == "fast":
        return _fast_acc(x, w, bias, n, bits, mode, acc, kind, stride, padding, prepared)
    xb = nested_shift(x, n, bits, mode, signed=False)
    wb = nested_shift(w, n, bits, mode, signed=True)
    k2 = _I64(2 * (n - bits))
    if kind == "linear":
        s = np.matmul(xb, wb.T)
        b = np.asarray(bias, dtype=_I64)[None, :]
    else:
        s = _ref_conv(xb, wb, stride, padding)
        b = np.asarray(bias, dtype=_I64)[None, :, None, None]
    return accumulate((s << k2) + b, acc)


class PreparedWeights:
    """A layer's weights made ready for the fast path at one width: the shifted codes in the
    exact GEMM plan's dtype (transposed for the GEMM, or channels-last float32 for oneDNN) and
    sum_k w_b. The analogue of fbgemm's prepacked weights: build it once per (layer, bits) with
    :func:`prepare_weights` and pass it to :func:`qdense_acc`; it holds a copy, so later writes
    to ``w`` do not reach it."""

    __slots__ = ("n", "bits", "mode", "kind", "shape", "plan", "dtype", "wb", "wmat", "wsum", "onednn",
                 "native_args")

    @property
    def kernel(self) -> str:
        """What computes this layer's sums (:func:`golden.fast.kernel_name`)."""
        return _fast.kernel_name(self.plan, int(np.prod(self.shape[1:])), self.onednn)

    def __init__(self, w, n, bits, mode, kind):
        w = np.asarray(w)
        self.n, self.bits, self.mode, self.kind = n, bits, str(mode), kind
        self.shape = tuple(w.shape)
        K = int(np.prod(w.shape[1:]))
        self.plan = _fast.layer_plan(K, bits, kind)
        int8, u8, i16 = (self.plan[0] == k for k in ("i8", "u8", "i16"))
        vnni = self.plan[0] in ("vnni", "amx")  # one fused kernel, two instruction sets
        self.dtype = dt = {"i8": np.int8, "f32": np.float32, "u8": np.float32, "i16": np.int16,
                           "vnni": np.int8, "amx": np.int8, "f64": np.float64,
                           "int": np.int64}[self.plan[0]]
        wb = _fast.shift_codes(w, n, bits, mode, True, dt)
        O = wb.shape[0]
        # sum_k w_b: exact in binary64 (|sum| <= K * 2^(b-1) << 2^53)
        self.wsum = wb.reshape(O, -1).sum(axis=1, dtype=_I64 if dt is _I64 else np.float64).astype(_I64)
        self.onednn = (kind == "conv2d" and _use_onednn and self.plan == ("f32", K)
                       and _fast.onednn_conv_available())
        self.wb = wb
        if kind == "linear":
            self.wmat = wb
        elif self.onednn:
            self.wmat = None
        else:
            self.wmat = _fast.weights_as_cols(wb)
        if int8:  # torch._int_mm takes the weights as [K, O]
            self.wmat = _fast._torch().from_numpy(_fast.row_major(self.wmat.T))
        elif u8:  # fbgemm's packed weights, one per K chunk
            self.wmat = _fast.u8_pack(self.wmat, self.plan[1])
        elif i16 or vnni:  # the native kernel's panels
            from . import native
            self.wmat = native.i16_pack(self.wmat) if i16 else \
                native.vnni_pack(self.wmat, self.plan[0])
        # the fused vnni kernel's per-layer arguments (golden.fast.vnni_acc), built once
        self.native_args = _fast.vnni_layer_args(n, bits, mode) if vnni else None

    def check(self, w, n, bits, mode, kind):
        got = (tuple(np.shape(w)), n, bits, str(mode), kind)
        want = (self.shape, self.n, self.bits, self.mode, self.kind)
        if got != want:
            raise DQTValueError(f"prepared weights are for (shape, n, bits, mode, kind) = {want}, "
                                f"the call has {got}")


def prepare_weights(w, n: int, bits: int, mode, kind: str = "linear") -> PreparedWeights:
    """Shift and lay out a layer's weights once for repeated :func:`qdense_acc` calls."""
    if kind not in ("linear", "conv2d"):
        raise DQTValueError(f"layer kind {kind!r} is not one of ['linear', 'conv2d']")
    return PreparedWeights(w, n, bits, mode, kind)


def _fast_acc(x, w, bias, n, bits, mode, acc, kind, stride, padding, prepared=None):
    if prepared is None:
        prepared = PreparedWeights(w, n, bits, mode, kind)
    else:
        prepared.check(w, n, bits, mode, kind)
    p = prepared
    plan, dt = p.plan, p.dtype
    # Activations are shifted straight into the GEMM's dtype and centred by -c (the plan's
    # bound assumes it); c * sum_k w_b goes back in through the bias, in master units.
    # fbgemm's u8 operand and the native kernels take them as they are (c = 0).
    c = 0 if plan[0] in ("u8", "i16", "vnni", "amx") else 1 << (bits - 1)
    k2 = 2 * (n - bits)
    bias_eff = np.asarray(bias, dtype=_I64)
    if c:
        bias_eff = bias_eff + ((c * p.wsum) << k2)
    if p.onednn:
        return _fast.onednn_conv_acc(x, p.wb, bias_eff, n, bits, mode, stride, padding, acc)
    if plan[0] in ("vnni", "amx"):  # shift, GEMM and finish in one native pass
        return _fast.vnni_acc(x, p, bias_eff, acc)
    xb = _fast.shift_codes(x, n, bits, mode, False, dt, offset=-c)
    if kind == "linear":
        s = _fast.planned_gemm(xb, p.wmat, plan)
        return _fast.finish_acc(s, k2, bias_eff, acc)
    N = xb.shape[0]
    O, _, kh, kw = p.shape
    cols, Ho, Wo = _fast.im2col(xb, kh, kw, stride, padding, fill=-c)
    s = _fast.planned_gemm(cols, p.wmat, plan)
    a, over = _fast.finish_acc(s, k2, bias_eff, acc)
    return (a.reshape(N, Ho, Wo, O).transpose(0, 3, 1, 2),
            over.reshape(N, Ho, Wo, O).transpose(0, 3, 1, 2))


def qdense(x, w, bias, M, S, n, bits, mode, acc: AccumulatorSpec, kind="linear", stride=1,
           padding=0, relu=True, clip_hi=None, rule="dyadic", requant=True, impl="fast"):
    """A quantized layer: accumulator, then (when ``requant``) requantization to n-bit codes.

    Returns ``(y, overflowed)``; without ``requant`` y is the accumulator itself (logits).
    """
    a, over = qdense_acc(x, w, bias, n, bits, mode, acc, kind, stride, padding, impl)
    if not requant:
        return a, over
    Mb = np.asarray(M, dtype=_I64)
    if kind == "conv2d":
        Mb = Mb[:, None, None]
    out = IntFormat(n, False)
    y = requantize(a, Mb, S, out, 0, rule, lo=0 if relu else None, hi=clip_hi)
    return y, over


def _windows(x, k, stride):
    N, C, H, W = x.shape
    Ho = (H - k) // stride + 1
    Wo = (W - k) // stride + 1
    if Ho < 1 or Wo < 1:
        raise DQTValueError(f"pool window {k} larger than the input {H}x{W}")
    for dy in range(k):
        for dx in range(k):
            yield x[:, :, dy:dy + stride * (Ho - 1) + 1:stride, dx:dx + stride * (Wo - 1) + 1:stride]


def max_pool(x, k: int, stride: int):
    """Max over k x k windows (no padding)."""
    x = np.asarray(x, dtype=_I64)
    out = None
    for win in _windows(x, k, stride):
        out = win.copy() if out is None else np.maximum(out, win)
    return out


def avg_pool(x, k: int, stride: int):
    """Integer average over k x k windows: floor((sum + floor(k*k/2)) / (k*k)) (codes >= 0,
    so this is round half up)."""
    x = np.asarray(x, dtype=_I64)
    if x.size and x.min() < 0:
        raise DQTValueError("avg_pool expects unsigned activation codes")
    s = None
    for win in _windows(x, k, stride):
        s = win.copy() if s is None else s + win
    cnt = k * k
    return (s + cnt // 2) // cnt


def add(q1, q2, c: AddConstants):
    """Residual add through the integer add operator (shapes must match)."""
    q1 = np.asarray(q1)
    q2 = np.asarray(q2)
    if q1.shape != q2.shape:
        raise DQTValueError(f"add inputs differ in shape: {q1.shape} vs {q2.shape}")
    return int_add(q1, q2, c)


def clip(x, lo: int, hi: int):
    """ReLU (lo = zero point) or PACT clip (hi = clip code) on codes."""
    return np.clip(np.asarray(x, dtype=_I64), lo, hi)
