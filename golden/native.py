"""The golden fast path's native i16 kernel: ``golden/native/i16gemm.c`` built at run time.

An exact int16 x int16 -> int32 GEMM on AVX2's ``vpmaddwd`` (docs/arithmetic.md §9, "The
i16 kernel"). No maintained library here exposes one: fbgemm and oneDNN's int8 GEMMs use
``vpmaddubsw``, which saturates pairs of 8-bit products on AVX2, and MKL's
``cblas_gemm_s16s16s32`` is not exported by the torch wheel. The C file is compiled once per
machine (``cc -O3 -mavx2``) into ``build/native/<hash>/`` (hash of the source, the compiler
and its flags) and loaded with ctypes; without a C compiler or AVX2 the kernel is simply not
available and the float plan runs. Rows are split between threads of this process (a ctypes
call releases the GIL).
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

__all__ = ["i16_available", "i16_pack", "i16_gemm", "cpu_flags", "NR"]

SOURCE = Path(__file__).resolve().with_name("native") / "i16gemm.c"
FLAGS = ["-O3", "-mavx2", "-shared", "-fPIC"]
NR = 16  # columns per packed panel (i16gemm.c)

_LIB = None
_TRIED = False
_POOL = None  # (executor, its worker count)


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset:
    """The CPU's feature flags (``/proc/cpuinfo``; empty where there is none)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def _build_dir() -> Path:
    root = Path(__file__).resolve().parents[1] / "build" / "native"
    try:
        root.mkdir(parents=True, exist_ok=True)
        return root
    except OSError:
        return Path(tempfile.gettempdir()) / "dqt-native"


def _load():
    """The compiled library, or None (no AVX2, no compiler, or the build failed)."""
    global _LIB, _TRIED
    if _TRIED:
        return _LIB
    _TRIED = True
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if os.environ.get("DQT_GOLDEN_NATIVE", "1") == "0" or not cc or "avx2" not in cpu_flags():
        return None
    h = hashlib.sha256(SOURCE.read_bytes())
    h.update(" ".join([cc, *FLAGS]).encode())
    h.update(str(Path(cc).resolve().stat().st_mtime_ns).encode())
    d = _build_dir() / h.hexdigest()[:16]
    lib = d / "libdqt_i16gemm.so"
    if not lib.is_file():
        d.mkdir(parents=True, exist_ok=True)
        tmp = d / f"lib.tmp{os.getpid()}.so"
        r = subprocess.run([cc, *FLAGS, "-o", str(tmp), str(SOURCE)], capture_output=True,
                           text=True)
        if r.returncode or not tmp.is_file():
            return None
        os.replace(tmp, lib)
    L = ctypes.CDLL(str(lib))
    P16, P32, i64 = ctypes.POINTER(ctypes.c_int16), ctypes.POINTER(ctypes.c_int32), ctypes.c_int64
    L.dqt_i16_pack.argtypes = [P16, i64, i64, P16]
    L.dqt_i16_pack.restype = None
    L.dqt_i16_gemm.argtypes = [P16, i64, i64, i64, i64, P16, i64, P32]
    L.dqt_i16_gemm.restype = None
    _LIB = L
    return _LIB


def i16_available() -> bool:
    return _load() is not None


def _p(a, t):
    return a.ctypes.data_as(ctypes.POINTER(t))


def i16_pack(w) -> tuple:
    """Weights [N, K] (int16 values) packed for :func:`i16_gemm`: ``(packed, N, K)``."""
    w = np.ascontiguousarray(w, dtype=np.int16)
    N, K = w.shape
    packed = np.zeros(((N + NR - 1) // NR) * ((K + 1) // 2) * NR * 2, dtype=np.int16)
    _load().dqt_i16_pack(_p(w, ctypes.c_int16), N, K, _p(packed, ctypes.c_int16))
    return packed, N, K


def _threads() -> int:
    try:
        import torch
        return max(1, torch.get_num_threads())
    except ImportError:
        return max(1, os.cpu_count() or 1)


def i16_gemm(x, pack) -> np.ndarray:
    """x [M, K] (int16 values; padded here to even K) @ w.T -> int32 [M, N], rows split
    between this process's threads."""
    global _POOL
    packed, N, K = pack
    x = np.asarray(x)
    M = x.shape[0]
    if K % 2 or x.dtype != np.int16 or not x.flags.c_contiguous:
        xa = np.zeros((M, K + K % 2), dtype=np.int16)
        xa[:, :K] = x
    else:
        xa = x
    c = np.empty((M, N), dtype=np.int32)
    lib = _load()
    args = (_p(xa, ctypes.c_int16), xa.shape[1])
    tail = (K, _p(packed, ctypes.c_int16), N, _p(c, ctypes.c_int32))
    th = min(_threads(), max(1, M // 64))
    if th == 1:
        lib.dqt_i16_gemm(*args, 0, M, *tail)
        return c
    if _POOL is None or _POOL[1] < th:
        _POOL = (ThreadPoolExecutor(th, thread_name_prefix="dqt-i16"), th)
    cuts = [min(M, (M * i // th + 3) // 4 * 4) for i in range(th + 1)]
    cuts[-1] = M
    futs = [_POOL[0].submit(lib.dqt_i16_gemm, *args, cuts[i], cuts[i + 1], *tail)
            for i in range(th) if cuts[i] < cuts[i + 1]]
    for f in futs:
        f.result()
    return c
