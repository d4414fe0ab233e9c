"""Fast path of the golden model: numba kernels and exactness-checked float BLAS.

Every function here has a reference twin in :mod:`golden.layers` (``impl="reference"``) and
the tests require bit-for-bit equality.

Exactness of the float path (docs/arithmetic.md section 9): the products of two integer codes
and all their partial sums are integers. IEEE binary32 represents every integer of magnitude
<= 2^24 exactly, binary64 every integer <= 2^53. If a chunk of the K axis satisfies
``K_chunk * max|x| * max|w| <= 2^24`` then *every* partial sum that any summation order (and
any FMA use) in the BLAS kernel can form is such an integer, so each rounding step is exact and
the chunk's float32 result is the exact integer sum. Chunks are then added in int64. When no
chunk of useful size meets the binary32 bound, the binary64 bound is tried on the whole K,
and failing that a numba int64 kernel computes the sum.
"""
from __future__ import annotations

import numba
import numpy as np

__all__ = ["exact_gemm", "im2col", "gemm_plan"]

_F32_EXACT = 1 << 24
_F64_EXACT = 1 << 53
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


def gemm_plan(K: int, xmax: int, wmax: int):
    """Which exact path :func:`exact_gemm` takes: ("f32", chunk), ("f64", K) or ("int", K)."""
    m = max(1, int(xmax)) * max(1, int(wmax))
    chunk = _F32_EXACT // m
    if chunk >= K:
        return "f32", K
    if chunk >= _MIN_F32_CHUNK:
        return "f32", int(chunk)
    if K * m <= _F64_EXACT:
        return "f64", K
    return "int", K


def exact_gemm(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Exact int64 result of x @ w.T for integer x [N, K] and w [O, K]."""
    N, K = x.shape
    if K == 0:
        return np.zeros((N, w.shape[0]), dtype=np.int64)
    xmax = int(np.abs(x).max()) if x.size else 0
    wmax = int(np.abs(w).max()) if w.size else 0
    path, chunk = gemm_plan(K, xmax, wmax)
    if path == "int":
        return _gemm_i64(np.ascontiguousarray(x, dtype=np.int64),
                         np.ascontiguousarray(w, dtype=np.int64))
    dt = np.float32 if path == "f32" else np.float64
    xf = x.astype(dt)
    wt = w.T.astype(dt)
    if chunk >= K:
        return (xf @ wt).astype(np.int64)
    out = np.zeros((N, w.shape[0]), dtype=np.int64)
    for k0 in range(0, K, chunk):
        out += (xf[:, k0:k0 + chunk] @ wt[k0:k0 + chunk]).astype(np.int64)
    return out


@numba.njit(parallel=True, cache=True)
def _im2col(x, kh, kw, stride, pad, Ho, Wo):
    N, C, H, W = x.shape
    cols = np.zeros((N, Ho, Wo, C * kh * kw), dtype=x.dtype)
    for n in numba.prange(N):
        for oy in range(Ho):
            for ox in range(Wo):
                j = 0
                for c in range(C):
                    for dy in range(kh):
                        iy = oy * stride + dy - pad
                        for dx in range(kw):
                            ix = ox * stride + dx - pad
                            if 0 <= iy < H and 0 <= ix < W:
                                cols[n, oy, ox, j] = x[n, c, iy, ix]
                            j += 1
    return cols


def im2col(x: np.ndarray, kh: int, kw: int, stride: int, pad: int):
    """[N, C, H, W] -> [N*Ho*Wo, C*kh*kw] patches (zero padded), row-major (n, oy, ox)."""
    N, C, H, W = x.shape
    Ho = (H + 2 * pad - kh) // stride + 1
    Wo = (W + 2 * pad - kw) // stride + 1
    cols = _im2col(np.ascontiguousarray(x), kh, kw, stride, pad, Ho, Wo)
    return cols.reshape(N * Ho * Wo, C * kh * kw), Ho, Wo
