"""Fast path of the golden model: numba kernels and exactness-checked float BLAS.

Every function here has a reference twin in :mod:`golden.layers` (``impl="reference"``) and
the tests require bit-for-bit equality.

Exactness of the float path (docs/arithmetic.md section 9): the products of two integer codes
and all their partial sums are integers. IEEE binary32 represents every integer of magnitude
<= 2^24 exactly, binary64 every integer <= 2^53. If a chunk of the K axis satisfies
``K_chunk * max|x| * max|w| <= 2^24`` then *every* partial sum that any summation order (and
any FMA use) in the BLAS kernel can form is such an integer, so each rounding step is exact and
the chunk's float32 result is the exact integer sum. Chunks are then added in binary64 (exact below 2^53). When no
chunk of useful size meets the binary32 bound, the binary64 bound is tried on the whole K,
and failing that a numba int64 kernel computes the sum.
"""
from __future__ import annotations

import os

import numba
import numpy as np

# The only parallel kernel is the int64 GEMM fallback. The elementwise kernels stay serial:
# parallel regions that spin-wait after returning steal the cores from the BLAS call that
# follows them (measured: 2-3x slower end to end with the OpenMP layer on 2 cores).
if numba.config.THREADING_LAYER == "default":
    numba.config.THREADING_LAYER = "workqueue"

__all__ = ["onednn_conv_acc", "onednn_conv_available", "exact_gemm", "im2col", "weights_as_cols", "gemm_plan", "code_plan", "planned_gemm", "shift_codes", "finish_acc", "KERNELS", "gemm_kernel", "int8_exact", "kernel_name", "u8_available", "u8_plan", "u8_pack", "cpu_has_vnni", "i16_plan", "vnni_plan", "vnni_layer_args", "vnni_acc", "kernel_order", "layer_plan"]

_F32_EXACT = 1 << 24
_F64_EXACT = 1 << 53
_I32_MAX = (1 << 31) - 1
_MIN_F32_CHUNK = 32


@numba.njit(parallel=True, cache=True)
def _gemm_i64(x, w):  # x [N, K], w [O, K] -> [N, O]
    N, K = x.shape
    O = w.shape[0]
    out = np.zeros((N, O), dtype=np.int64)
    for i in numba.prange(N):
        for o in range(O):
            s = np.int64(0)
            for k in range(K):
                s += x[i, k] * w[o, k]
            out[i, o] = s
    return out


_TORCH = None


def _torch():
    """torch when importable and not switched off (DQT_GOLDEN_TORCH=0), else None."""
    global _TORCH
    if _TORCH is None:
        _TORCH = False
        if os.environ.get("DQT_GOLDEN_TORCH", "1") != "0":
            try:
                import torch
                _TORCH = torch
            except ImportError:
                pass
    return _TORCH or None


def gemm_plan(K: int, xmax: int, wmax: int):
    """Which exact path :func:`exact_gemm` takes: ("f32", chunk), ("f64", K) or ("int", K)."""
    m = max(1, int(xmax)) * max(1, int(wmax))
    chunk = _F32_EXACT // m
    if chunk >= K:
        return "f32", K
    if chunk >= _MIN_F32_CHUNK and K * m <= _F64_EXACT:  # chunk sums are added in binary64
        # a multiple of 32 keeps the BLAS kernel's K-blocking aligned
        return "f32", int(chunk) // _MIN_F32_CHUNK * _MIN_F32_CHUNK
    if K * m <= _F64_EXACT:
        return "f64", K
    return "int", K


def exact_gemm(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Exact int64 result of x @ w.T for integer x [N, K] and w [O, K], planned from the
    operands' actual magnitudes (the layers plan from the format bounds instead)."""
    N, K = x.shape
    if K == 0:
        return np.zeros((N, w.shape[0]), dtype=np.int64)
    xmax = int(np.abs(x).max()) if x.size else 0
    wmax = int(np.abs(w).max()) if w.size else 0
    plan = gemm_plan(K, xmax, wmax)
    dt = {"f32": np.float32, "f64": np.float64, "int": np.int64}[plan[0]]
    return planned_gemm(x.astype(dt), w.astype(dt), plan).astype(np.int64)


def im2col(x: np.ndarray, kh: int, kw: int, stride: int, pad: int, fill=0):
    """[N, C, H, W] -> ([N*Ho*Wo, kh*kw*C] patches, Ho, Wo), zero padded.

    Rows are ordered (n, oy, ox) and columns (dy, dx, c): pair it with weights reshaped by
    :func:`weights_as_cols`. ``fill`` is the padding value (the code 0, offset if centred). Built from nine strided copies in NHWC order (memcpy speed).
    """
    N, C, H, W = x.shape
    Ho = (H + 2 * pad - kh) // stride + 1
    Wo = (W + 2 * pad - kw) // stride + 1
    xp = np.full((N, H + 2 * pad, W + 2 * pad, C), fill, dtype=x.dtype)
    xp[:, pad:pad + H, pad:pad + W, :] = x.transpose(0, 2, 3, 1)
    cols = np.empty((N, Ho, Wo, kh, kw, C), dtype=x.dtype)
    for dy in range(kh):
        for dx in range(kw):
            cols[:, :, :, dy, dx, :] = xp[:, dy:dy + stride * (Ho - 1) + 1:stride,
                                          dx:dx + stride * (Wo - 1) + 1:stride, :]
    return cols.reshape(N * Ho * Wo, kh * kw * C), Ho, Wo


def weights_as_cols(w: np.ndarray) -> np.ndarray:
    """[O, C, kh, kw] -> [O, kh*kw*C], the column order of :func:`im2col`."""
    return np.ascontiguousarray(w.transpose(0, 2, 3, 1)).reshape(w.shape[0], -1)


@numba.njit(cache=True)
def _shift_codes(q, k, rnd, lo_in, hi_in, lo, hi, offset, out):
    # Branch-free in the loop so that it vectorizes; codes are checked against [lo_in,
    # hi_in] first, so v + offset fits int32, and int32 -> float is one vector instruction
    # on AVX2 where int64 -> float is not.
    bad = 0
    half = (1 << (k - 1)) if k > 0 else 0
    if rnd and k > 0:
        for i in range(q.size):
            v = np.int64(q[i])
            bad += (v < lo_in) | (v > hi_in)
            out[i] = np.int32(min(max((v + half) >> k, lo), hi) + offset)
    else:
        for i in range(q.size):
            v = np.int64(q[i])
            bad += (v < lo_in) | (v > hi_in)
            out[i] = np.int32((v >> k) + offset)
    return bad


def shift_codes(q, n: int, bits: int, mode: str, signed: bool, dtype=np.int64, offset: int = 0):
    """Fused nested shift (see :func:`golden.ops.nested_shift`), range check, + offset, cast."""
    from .formats import DQTValueError, IntFormat, NestedMode
    fmt = IntFormat(n, signed)
    out_fmt = fmt.at(bits)
    rnd = NestedMode.parse(mode) is NestedMode.ROUND
    q = np.ascontiguousarray(q)
    out = np.empty(q.shape, dtype=dtype)
    bad = _shift_codes(q.reshape(-1), n - bits, rnd, fmt.lo, fmt.hi, out_fmt.lo, out_fmt.hi, offset,
                       out.reshape(-1))
    if bad:
        fmt.check(q, "q")  # raises with the offending value and the range
        raise DQTValueError("codes outside the format range")
    return out


@numba.njit(cache=True)
def _finish(s, k2, bias, lo, hi, sat, via_i32, acc, over):
    # Branch-free inner loops so that they vectorize: for an in-range v both the clamp and
    # the wrap ((v - lo) mod 2^W) + lo give v back. ``via_i32``: s is a binary32 GEMM result,
    # an exact integer of magnitude <= 2^24, converted through int32 (float -> int32 is one
    # vector instruction on AVX2, float -> int64 is not).
    N, O = s.shape
    mod_mask = np.int64(hi) - np.int64(lo)  # 2^W - 1
    for i in range(N):
        if sat:
            for o in range(O):
                v = ((np.int64(np.int32(s[i, o])) if via_i32 else np.int64(s[i, o])) << k2) \
                    + bias[o]
                over[i, o] = (v < lo) | (v > hi)
                acc[i, o] = min(max(v, lo), hi)
        else:
            for o in range(O):
                v = ((np.int64(np.int32(s[i, o])) if via_i32 else np.int64(s[i, o])) << k2) \
                    + bias[o]
                over[i, o] = (v < lo) | (v > hi)
                acc[i, o] = ((v - lo) & mod_mask) + lo


def finish_acc(s, k2: int, bias, acc_spec):
    """Fused (s << k2) + bias and the accumulator's overflow policy; s is [N, O], integer
    valued (an exact float GEMM result converts without loss)."""
    from .formats import Overflow
    N, O = s.shape
    acc = np.empty((N, O), dtype=np.int64)
    over = np.empty((N, O), dtype=np.bool_)
    _finish(np.ascontiguousarray(s), k2, np.ascontiguousarray(bias, dtype=np.int64),
            acc_spec.lo, acc_spec.hi, acc_spec.overflow is Overflow.SATURATE,
            s.dtype == np.float32, acc, over)
    return acc, over


def code_plan(K: int, bits: int):
    """Exact GEMM plan from the format bounds of *centred* operands: the unsigned activation
    codes are offset by -2^(b-1) (``shift_codes(..., offset=...)``), so |x_b - 2^(b-1)| <=
    2^(b-1) and |w_b| <= 2^(b-1); the offset's contribution 2^(b-1) * sum_k w is added back in
    int64. This halves the product bound, so e.g. an 8-bit K = 1024 GEMM is one binary32 call."""
    return gemm_plan(K, 1 << (bits - 1), 1 << (bits - 1))


# --- int8 kernel -----------------------------------------------------------------------------
# torch._int_mm: s8 x s8 -> s32, products summed in int32 (docs/arithmetic.md section 9).
# Exact when both centred operands fit s8 and no partial sum can leave int32 (int8_exact).
# Whether it beats the binary32 path depends on the machine: with AVX512-VNNI / AMX kernels
# behind it, it may; on this project's AVX2 machines it is a plain loop (0.6 GMAC/s per core
# against 23 for sgemm). "auto" therefore measures both once per process (gemm_kernel).

KERNELS = ("auto", "f32", "int8", "u8", "i16", "vnni", "amx")
_KERNEL = None
_ORDER = None


# --- i16 kernel (golden/native/i16gemm.c, AVX2 vpmaddwd) ---------------------------------------
# int16 x int16 products added in pairs into int32 lanes (vpmaddwd), then int32 sums. The
# nested codes go in uncentred: x_b in [0, 2^b - 1], w_b in [-2^(b-1), 2^(b-1) - 1], both
# int16 for b <= 15; a pair never reaches the one saturating case (-2^15)^2 + (-2^15)^2, and
# the int32 sums are exact when K (2^b - 1) 2^(b-1) <= 2^31 - 1.

def _uncentred_i32_exact(K: int, bits: int) -> bool:
    """Every partial sum of K products of uncentred codes, x_b in [0, 2^b - 1] by w_b in
    [-2^(b-1), 2^(b-1) - 1], fits int32: K (2^b - 1) 2^(b-1) <= 2^31 - 1 (the native
    kernels' bound)."""
    return K * ((1 << bits) - 1) * (1 << (bits - 1)) <= _I32_MAX


def i16_plan(K: int, bits: int):
    """("i16", K) when the native i16 kernel's int32 sums are exact, else None."""
    if not 1 <= bits <= 15 or not _uncentred_i32_exact(K, bits):
        return None
    return "i16", K


# --- vnni kernel (golden/native/vnni_linear.c, AVX-512 VNNI vpdpbusd, whole layer fused) -------
# Four u8 x s8 products added in full precision into an int32 lane (the non-saturating
# vpdpbusd), then int32 sums. Codes go in uncentred: x_b in [0, 2^b - 1] (u8), w_b in
# [-2^(b-1), 2^(b-1) - 1] (s8), so b <= 8; exact when K (2^b - 1) 2^(b-1) <= 2^31 - 1. The
# kernel also does the activations' nested shift and the finish (s << k2) + bias with the
# accumulator's overflow policy, so a linear layer is one pass (golden.layers._fast_acc).

def vnni_plan(K: int, bits: int, kernel: str = "vnni"):
    """(kernel, K) when the native vnni kernel's int32 sums are exact, else None; ``kernel``
    "amx" (the same fused kernel on AMX tdpbusd tiles) has the same bound."""
    if not 1 <= bits <= 8 or not _uncentred_i32_exact(K, bits):
        return None
    return kernel, K


def vnni_layer_args(n: int, bits: int, mode) -> tuple:
    """The fused kernel's arguments that depend on the layer's width and mode only:
    ``(k, round?, input code range, shifted code range, 2k)`` with k = n - bits."""
    from .formats import IntFormat, NestedMode
    fmt = IntFormat(n, False)
    out = fmt.at(bits)
    return (n - bits, NestedMode.parse(mode) is NestedMode.ROUND, (fmt.lo, fmt.hi),
            (out.lo, out.hi), 2 * (n - bits))


def vnni_acc(x, p, bias_eff, acc_spec):
    """A linear layer's ``(acc, overflowed)`` through the fused vnni kernel: ``x`` [N, K]
    unsigned n-bit codes, ``p`` prepared weights with the vnni plan, ``bias_eff`` in master
    units. Codes outside the n-bit range raise, naming the value and the range."""
    from . import native
    from .formats import Overflow
    k, rnd, in_range, out_range, k2 = p.native_args
    acc, over, bad = native.vnni_linear(x, p.wmat, k, rnd, in_range, out_range, bias_eff, k2,
                                        (acc_spec.lo, acc_spec.hi),
                                        acc_spec.overflow is Overflow.SATURATE)
    if bad:
        from .formats import DQTValueError, IntFormat
        IntFormat(p.n, False).check(np.asarray(x), "q")  # raises: the value and the range
        raise DQTValueError("codes outside the format range")
    return acc, over


# --- u8 x s8 kernel (fbgemm) -------------------------------------------------------------------
# fbgemm's int8 GEMM (torch's "fbgemm" quantized engine) multiplies unsigned 8-bit
# activations by signed 8-bit weights: on AVX2 with vpmaddubsw, which adds two adjacent
# u8 x s8 products into a *saturating* int16, then vpmaddwd/vpaddd into int32; on AVX-512
# VNNI with vpdpbusd, straight into int32. Exact (docs/arithmetic.md section 9) when
# (a) every pair sum fits int16: activations <= 127 and |w| <= 128 give
#     |x1 w1 + x2 w2| <= 2 * 127 * 128 = 32512 <= 32767, so at most 7-bit activation codes
#     (nested b <= 7: codes in [0, 2^b - 1], not centred);
# (b) the int32 sum, returned as binary32 by the fp32-output operator with both scales 1.0
#     and zero points 0, is an integer of magnitude <= 2^24: K_chunk (2^b - 1) 2^(b-1) <= 2^24
#     (longer K is cut into chunks, added in binary64 like the f32 path's).
# The operator quantizes its float input with scale 1 and zero point 0, which maps integer
# codes in [0, 255] to themselves.

def u8_available() -> bool:
    """torch with the fbgemm engine and its fp32-output linear operator."""
    torch = _torch()
    if torch is None or "fbgemm" not in torch.backends.quantized.supported_engines:
        return False
    try:
        return hasattr(torch.ops.quantized, "linear_with_input_q_dq_qweight_dq_output_fp32")
    except (AttributeError, RuntimeError):
        return False


def cpu_has_vnni() -> bool:
    """True when the CPU has AVX-512 VNNI (``vpdpbusd``: u8 x s8 straight into int32), the
    instruction fbgemm's kernels use where present (``/proc/cpuinfo`` flag avx512_vnni)."""
    from .native import cpu_flags
    return "avx512_vnni" in cpu_flags()


def u8_plan(K: int, bits: int):
    """("u8", chunk) when fbgemm's u8 x s8 sums are exact at width ``bits``: b <= 7, or
    b = 8 on a CPU with AVX-512 VNNI (no int16 pair sums); else None."""
    if not 1 <= bits <= (8 if cpu_has_vnni() else 7):
        return None
    m = ((1 << bits) - 1) * (1 << (bits - 1))
    return "u8", max(1, min(K, _F32_EXACT // m))


def u8_pack(wb, chunk: int) -> list:
    """Signed weight codes [O, K] (|w| <= 128) as fbgemm packed weights, one per K chunk:
    ``[(packed, k0, k1), ...]`` (the analogue of the f32 path's transposed weights)."""
    import warnings
    torch = _torch()
    w = torch.from_numpy(np.ascontiguousarray(wb, dtype=np.float32))
    packs = []
    engine = torch.backends.quantized.engine
    try:
        torch.backends.quantized.engine = "fbgemm"
        with warnings.catch_warnings():  # quantized tensor creation is marked deprecated
            warnings.simplefilter("ignore")
            for k0 in range(0, w.shape[1], chunk):
                k1 = min(w.shape[1], k0 + chunk)
                qw = torch.quantize_per_tensor(w[:, k0:k1].contiguous(), 1.0, 0, torch.qint8)
                packs.append((torch.ops.quantized.linear_prepack(qw, None), k0, k1))
    finally:
        torch.backends.quantized.engine = engine
    return packs


def _u8_gemm(xb, packs):
    """Exact x @ w.T (as float32, or float64 over several chunks) for u8 codes x [N, K] in
    float32 and the packs of :func:`u8_pack`."""
    torch = _torch()
    op = torch.ops.quantized.linear_with_input_q_dq_qweight_dq_output_fp32
    xt = torch.from_numpy(np.ascontiguousarray(xb, dtype=np.float32))
    with torch.no_grad():
        if len(packs) == 1:
            return op(xt, 1.0, 0, packs[0][0]).numpy()
        out = None
        for pk, k0, k1 in packs:
            part = op(xt[:, k0:k1].contiguous(), 1.0, 0, pk).numpy().astype(np.float64)
            out = part if out is None else out + part
        return out


def row_major(a):
    """``a`` (2-D) with the canonical C strides (row stride = columns x item size).

    numpy calls a [1, N] or [M, 1] array C-contiguous whatever the stride of its length-1
    axis (a transposed [N, 1] array keeps strides (1, 1)); ``torch._int_mm`` (torch 2.13,
    oneDNN on AVX-512 VNNI) reads such an operand as column-major and returns garbage (K = 1
    layers). A fresh copy has the canonical strides."""
    a = np.ascontiguousarray(a)
    if a.ndim == 2 and a.strides != (a.shape[1] * a.itemsize, a.itemsize):
        a = a.copy(order="C")
    return a


def int8_exact(K: int, bits: int) -> bool:
    """True when the int8 kernel's int32 sums are exact for K terms at width ``bits``:
    centred codes lie in [-2^(b-1), 2^(b-1) - 1], so every product lies in
    (-4^(b-1), 4^(b-1)] and every partial sum in [-K 4^(b-1), K 4^(b-1)]; that must fit
    int32 (K 4^(b-1) <= 2^31 - 1) and the codes must fit s8 (b <= 8)."""
    return 1 <= bits <= 8 and K * (1 << (2 * (bits - 1))) <= _I32_MAX


def _probe_fastest(torch, candidates) -> list:
    """Time one 128x512x512 product with each candidate kernel (after a warm call, best of
    three); their names, fastest first."""
    import time
    g = torch.Generator().manual_seed(0)
    a = torch.randint(-64, 64, (128, 512), dtype=torch.int8, generator=g)
    b = torch.randint(-64, 64, (512, 512), dtype=torch.int8, generator=g)
    af, bf = a.float(), b.float()
    fns = {"f32": lambda: torch.mm(af, bf)}
    if "i16" in candidates:
        from . import native
        x16 = (af + 64).numpy().astype(np.int16)
        pack16 = native.i16_pack(bf.T.numpy().astype(np.int16))
        fns["i16"] = lambda: native.i16_gemm(x16, pack16)
    if "int8" in candidates:
        fns["int8"] = lambda: torch._int_mm(a, b)
    if "u8" in candidates:
        xu = (af + 64).numpy()
        packs = u8_pack(bf.T.numpy(), 512)
        fns["u8"] = lambda: _u8_gemm(xu, packs)
    best = {}
    with torch.no_grad():
        for name, fn in fns.items():
            fn()
            best[name] = float("inf")
            for _ in range(3):
                t0 = time.perf_counter()
                fn()
                best[name] = min(best[name], time.perf_counter() - t0)
    return sorted(best, key=best.get)


def kernel_order() -> list:
    """Exact GEMM kernels for linear layers, preferred first: a layer takes the first whose
    bound holds for its (K, b), and "f32" (always exact, chunked if need be) is last.

    ``DQT_GOLDEN_KERNEL`` = auto (default: amx, then vnni, where built, then every other
    available kernel fastest first, measured once per process), or f32, int8, u8, i16, vnni
    or amx (that one, then f32)."""
    global _ORDER
    if _ORDER is None:
        from .formats import DQTValueError
        want = os.environ.get("DQT_GOLDEN_KERNEL", "auto").strip().lower()
        if want not in KERNELS:
            raise DQTValueError(f"DQT_GOLDEN_KERNEL={want!r} is not one of {list(KERNELS)}")
        torch = _torch()
        from . import native
        have = {"f32": True, "int8": torch is not None and hasattr(torch, "_int_mm"),
                "u8": torch is not None and u8_available(), "i16": native.i16_available(),
                "vnni": native.vnni_available(), "amx": native.vnni_available("amx")}
        if want != "auto" and not have[want]:
            need = {"int8": "torch with torch._int_mm", "u8": "torch with the fbgemm engine",
                    "i16": "a C compiler and an AVX2 CPU",
                    "vnni": "a C compiler and an AVX-512 VNNI CPU",
                    "amx": "a C compiler, an AMX-INT8 CPU and a Linux that grants the tile "
                           "state"}.get(want, "")
            raise DQTValueError(f"DQT_GOLDEN_KERNEL={want} needs {need}")
        if want != "auto":
            _ORDER = [want] + (["f32"] if want != "f32" else [])
        elif torch is None:  # not kept: torch may be switched back on (DQT_GOLDEN_TORCH)
            return [k for k in ("amx", "vnni", "i16") if have[k]] + ["f32"]
        else:
            # vnni first where it is built: it runs the same vpdpbusd products as oneDNN's
            # and fbgemm's int8 GEMMs (at parity, docs/arithmetic.md section 9) and fuses
            # the shift and the finish those leave to two more passes; a timed probe of the
            # bare products is too noisy on a shared machine to rank them (it put int8 first
            # in one run of three, and that run's layers were 20 % slower)
            # amx before it where the CPU has tiles: the same exact products, 16 x 64 at a
            # time (docs/arithmetic.md section 9, "The amx kernel")
            first = [k for k in ("amx", "vnni") if have[k]]
            ranked = first + _probe_fastest(torch, [k for k, ok in have.items()
                                                    if ok and k not in first])
            _ORDER = ranked[:ranked.index("f32") + 1]  # f32 is exact everywhere: stop there
    return _ORDER


def gemm_kernel() -> str:
    """The preferred exact GEMM kernel for linear layers (the first of :func:`kernel_order`):
    "amx" (native AMX tdpbusd, the whole layer fused), "vnni" (the same on vpdpbusd), "u8"
    (fbgemm u8 x s8, b <= 7), "i16" (native vpmaddwd), "int8" (torch._int_mm) or "f32"
    (sgemm)."""
    if _KERNEL is not None:  # set by tests to force one kernel
        return _KERNEL
    return kernel_order()[0]


def layer_plan(K: int, bits: int, kind: str):
    """The exact plan of a layer's GEMM: the first kernel of :func:`kernel_order` whose bound
    holds (conv layers: the float plan, for oneDNN's convolution)."""
    order = [_KERNEL, "f32"] if _KERNEL is not None else kernel_order()
    for k in order:
        if k == "f32":
            break
        if k in ("u8", "int8") and _torch() is None:  # torch switched off since the probe
            continue
        plan = {"u8": lambda: kind == "linear" and u8_plan(K, bits),
                "i16": lambda: kind == "linear" and i16_plan(K, bits),
                "vnni": lambda: kind == "linear" and vnni_plan(K, bits),
                "amx": lambda: kind == "linear" and vnni_plan(K, bits, "amx"),
                "int8": lambda: kind == "linear" and int8_exact(K, bits) and ("i8", K)}[k]()
        if plan:
            return plan
    return code_plan(K, bits)


def kernel_name(plan, K: int, onednn: bool = False) -> str:
    """What computes a planned GEMM over K terms, in words (benchmarks report it)."""
    path, chunk = plan
    if onednn:
        return "onednn-conv-f32"
    if path == "i8":
        return "torch-int_mm-s8s8s32"
    if path == "u8":
        return "fbgemm-u8s8s32" + ("" if chunk >= K else f"-chunked{chunk}")
    if path == "i16":
        return "native-i16-vpmaddwd"
    if path == "vnni":
        return "native-vnni-vpdpbusd"
    if path == "amx":
        return "native-amx-tdpbusd"
    if path == "f32":
        return ("torch-sgemm-f32" if _torch() is not None else "blas-sgemm-f32") + \
            ("" if chunk >= K else f"-chunked{chunk}")
    return {"f64": "blas-dgemm-f64", "int": "numba-int64"}[path]


def planned_gemm(xb, wb, plan):
    """x @ w.T for operands already in the plan's dtype; int64, int32 or exact float result.

    Plan ("i8", K): ``xb`` int8 [N, K], ``wb`` a torch int8 tensor [K, O] (prepared).
    Plan ("u8", chunk): ``xb`` float32 codes in [0, 127], ``wb`` the packs of :func:`u8_pack`."""
    path, chunk = plan
    if path == "u8":
        return _u8_gemm(xb, wb)
    if path == "i16":
        from . import native
        return native.i16_gemm(xb, wb)
    if path == "i8":
        torch = _torch()
        with torch.no_grad():
            return torch._int_mm(torch.from_numpy(row_major(xb)), wb).numpy()
    if path == "int":
        return _gemm_i64(np.ascontiguousarray(xb), np.ascontiguousarray(wb))
    wt = wb.T
    K = xb.shape[1]
    if chunk >= K:
        torch = _torch()
        if torch is not None and xb.dtype == np.float32 and xb.size and wb.size:
            # same exactness argument as numpy's BLAS; torch's sgemm shares its thread pool
            # with the oneDNN conv below (two spinning pools on a small machine cost more)
            with torch.no_grad():
                return torch.mm(torch.from_numpy(np.ascontiguousarray(xb)),
                                torch.from_numpy(np.ascontiguousarray(wb)).T).numpy()
        return xb @ wt
    # Each chunk's float32 result is an exact integer below 2^24; their sum stays far below
    # 2^53, so adding the chunks in binary64 is exact too.
    out = np.zeros((xb.shape[0], wb.shape[0]), dtype=np.float64)
    for k0 in range(0, K, chunk):
        out += xb[:, k0:k0 + chunk] @ wt[k0:k0 + chunk]
    return out



# --- convolution on oneDNN -----------------------------------------------------------------
# A conv layer's GEMM is skinny (K = C*kh*kw, e.g. 144 x 16 output channels): BLAS runs it
# slowly and im2col costs more than the products. When torch with oneDNN (mkldnn) is present,
# the fast path calls ``aten.mkldnn_convolution`` on float32 codes in channels-last layout
# instead. oneDNN's direct and GEMM-based convolutions form sums of the same integer products,
# so the binary32 bound of :func:`code_plan` proves the result exact just as for BLAS. The
# backend is named explicitly (never ``conv2d``'s dispatcher) because the NNPACK backend it may
# pick uses Winograd transforms, which are not sums of products. Without torch/oneDNN, or when
# the bound fails, the im2col path runs.

def onednn_conv_available() -> bool:
    torch = _torch()
    return torch is not None and bool(torch.backends.mkldnn.is_available())


@numba.njit(cache=True)
def _shift_pad_nhwc(x, k, rnd, lo_in, hi_in, lo, hi, pad, offset, out):
    # x [N, C, H, W] integer codes -> out [N, H+2p, W+2p, C] float32: shifted codes + offset,
    # border = offset (the code 0, centred)
    N, C, H, W = x.shape
    Hp = out.shape[1]
    Wp = out.shape[2]
    half = (1 << (k - 1)) if k > 0 else 0
    bad = 0
    for n in range(N):
        for y in range(Hp):
            for xx in range(Wp):
                if y < pad or y >= pad + H or xx < pad or xx >= pad + W:
                    for c in range(C):
                        out[n, y, xx, c] = offset
        for c in range(C):
            for y in range(H):
                for xx in range(W):
                    v = np.int64(x[n, c, y, xx])
                    if v < lo_in or v > hi_in:
                        bad += 1
                    if rnd and k > 0:
                        v = min(max((v + half) >> k, lo), hi)
                    else:
                        v = v >> k
                    out[n, y + pad, xx + pad, c] = v + offset
    return bad


def onednn_conv_acc(x, wb, bias_eff, n: int, bits: int, mode: str, stride: int, pad: int, acc_spec):
    """Accumulator and overflow flags of a conv2d layer through oneDNN. ``wb`` holds the
    shifted weight codes as float32 [O, C, kh, kw]; the activations are shifted and centred by
    -2^(bits-1) here, and ``bias_eff`` already carries 2^(bits-1) * sum w back (master units).
    Callers check ``code_plan(K, bits) == ("f32", K)`` first."""
    from .formats import DQTValueError, IntFormat, NestedMode
    torch = _torch()
    x = np.ascontiguousarray(x)
    N, C, H, W = x.shape
    O, _, kh, kw = wb.shape
    fmt = IntFormat(n, False)
    ofmt = fmt.at(bits)
    rnd = NestedMode.parse(mode) is NestedMode.ROUND
    xp = np.empty((N, H + 2 * pad, W + 2 * pad, C), dtype=np.float32)
    if _shift_pad_nhwc(x, n - bits, rnd, fmt.lo, fmt.hi, ofmt.lo, ofmt.hi, pad, -(1 << (bits - 1)), xp):
        fmt.check(x, "q")  # raises with the offending value and the range
        raise DQTValueError("codes outside the format range")
    tx = torch.from_numpy(xp).permute(0, 3, 1, 2)  # NCHW view of channels-last memory
    tw = torch.from_numpy(np.ascontiguousarray(wb, dtype=np.float32)).contiguous(
        memory_format=torch.channels_last)
    with torch.no_grad():
        s = torch.ops.aten.mkldnn_convolution(tx, tw, None, [0, 0], [stride, stride], [1, 1], 1)
    s = s.permute(0, 2, 3, 1).contiguous().numpy()  # [N, Ho, Wo, O] (no copy when channels-last)
    _, Ho, Wo, _ = s.shape
    acc, over = finish_acc(s.reshape(-1, O), 2 * (n - bits), bias_eff, acc_spec)
    return (acc.reshape(N, Ho, Wo, O).transpose(0, 3, 1, 2),
            over.reshape(N, Ho, Wo, O).transpose(0, 3, 1, 2))
