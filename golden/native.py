"""The golden fast path's native kernels, C files under ``golden/native/`` built at run time.

- ``i16gemm.c``: an exact int16 x int16 -> int32 GEMM on AVX2's ``vpmaddwd``
  (docs/arithmetic.md §9, "The i16 kernel"). No maintained library here exposes one: fbgemm
  and oneDNN's int8 GEMMs use ``vpmaddubsw``, which saturates pairs of 8-bit products on AVX2,
  and MKL's ``cblas_gemm_s16s16s32`` is not exported by the torch wheel.
- ``vnni_linear.c``: a whole linear layer on AVX-512 VNNI's ``vpdpbusd`` (u8 x s8 into int32,
  no pair saturation), fused: nested shift of the activations, GEMM, shift back, bias and the
  accumulator's overflow policy in one pass (§9, "The vnni kernel"). fbgemm runs the same
  instruction, but only behind a float-in/float-out operator that costs a conversion on each
  side, and the shift and the finish would each be another pass over memory.
- the same file built with ``-DDQT_AMX``: the amx kernel, the same fused layer with its
  products on Intel AMX ``tdpbusd`` tiles (the same u8 x s8 dot products of four into int32,
  no saturation; §9, "The amx kernel"). Linux hands a process the tile state on request
  (``arch_prctl``); where it does not, the kernel is not available.

Each C file is compiled once per machine (``cc -O3`` with its flags) into
``build/native/<hash>/`` (hash of the source, the compiler and its flags) and loaded with
ctypes; without a C compiler or the CPU feature the kernel is simply not available and the
next plan runs. The i16 kernel's rows are split between Python threads (a ctypes call
releases the GIL); the vnni kernel splits them between OpenMP threads itself.
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

__all__ = ["i16_available", "i16_pack", "i16_gemm", "vnni_available", "vnni_pack", "vnni_linear",
           "cpu_flags", "NR", "VNNI_NR"]

_DIR = Path(__file__).resolve().with_name("native")
SOURCE = _DIR / "i16gemm.c"
VNNI_SOURCE = _DIR / "vnni_linear.c"
FLAGS = ["-O3", "-mavx2", "-shared", "-fPIC"]
VNNI_FLAGS = ["-O3", "-mavx2", "-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512vnni",
              "-fopenmp", "-shared", "-fPIC"]
NR = 16  # columns per packed panel (i16gemm.c)
AMX_FLAGS = VNNI_FLAGS + ["-mamx-tile", "-mamx-int8", "-DDQT_AMX"]
VNNI_NR = 64  # columns per packed panel (vnni_linear.c)

_LIBS = {}  # library name -> loaded CDLL or None (not available)
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


def _compile(name: str, source: Path, flags: list, needs: tuple):
    """``source`` compiled with ``flags`` into lib<name>.so (cached), or None: switched off
    (DQT_GOLDEN_NATIVE=0), no C compiler, a CPU flag of ``needs`` missing, or the build
    failed."""
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if os.environ.get("DQT_GOLDEN_NATIVE", "1") == "0" or not cc or \
            not set(needs) <= cpu_flags():
        return None
    h = hashlib.sha256(source.read_bytes())
    h.update(" ".join([cc, *flags]).encode())
    h.update(str(Path(cc).resolve().stat().st_mtime_ns).encode())
    d = _build_dir() / h.hexdigest()[:16]
    lib = d / f"lib{name}.so"
    if not lib.is_file():
        d.mkdir(parents=True, exist_ok=True)
        tmp = d / f"lib.tmp{os.getpid()}.so"
        r = subprocess.run([cc, *flags, "-o", str(tmp), str(source)], capture_output=True,
                           text=True)
        if r.returncode or not tmp.is_file():
            return None
        os.replace(tmp, lib)
    try:
        return ctypes.CDLL(str(lib))
    except OSError:  # e.g. built, but a library it needs (libgomp) cannot be loaded
        return None


P8 = ctypes.POINTER(ctypes.c_int8)
P16, P32 = ctypes.POINTER(ctypes.c_int16), ctypes.POINTER(ctypes.c_int32)
I64, INT = ctypes.c_int64, ctypes.c_int


def _load():
    """The i16 library, or None (no AVX2, no compiler, or the build failed)."""
    if "i16" not in _LIBS:
        L = _compile("dqt_i16gemm", SOURCE, FLAGS, ("avx2",))
        if L is not None:
            L.dqt_i16_pack.argtypes = [P16, I64, I64, P16]
            L.dqt_i16_pack.restype = None
            L.dqt_i16_gemm.argtypes = [P16, I64, I64, I64, I64, P16, I64, P32]
            L.dqt_i16_gemm.restype = None
        _LIBS["i16"] = L
    return _LIBS["i16"]


def _load_vnni(kind: str = "vnni"):
    """The vnni library (``kind`` "vnni") or its AMX build ("amx"), or None (the CPU lacks
    the instructions, no compiler, the build failed, or Linux refused the AMX tile state)."""
    if kind not in _LIBS:
        need = ("avx2", "avx512f", "avx512bw", "avx512vl", "avx512_vnni")
        if kind == "amx":
            L = _compile("dqt_amx_linear", VNNI_SOURCE, AMX_FLAGS,
                         need + ("amx_tile", "amx_int8"))
            if L is not None and L.dqt_amx_init() != 0:
                L = None
        else:
            L = _compile("dqt_vnni_linear", VNNI_SOURCE, VNNI_FLAGS, need)
        if L is not None:
            L.dqt_vnni_quads.argtypes = [I64]
            L.dqt_vnni_quads.restype = I64
            L.dqt_vnni_pack.argtypes = [P8, I64, I64, P8]
            L.dqt_vnni_pack.restype = None
            VP = ctypes.c_void_p  # arrays go in as their addresses (.ctypes.data): cheaper
            L.dqt_vnni_linear.argtypes = [VP, INT, I64, I64, I64, INT, INT, I64, I64, I64, I64,
                                          VP, VP, VP, I64, VP, I64, I64, I64, INT, VP, VP, INT]
            L.dqt_vnni_linear.restype = I64
        _LIBS[kind] = L
    return _LIBS[kind]


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


def _run_rows(fn, M: int, align: int, head: tuple, tail: tuple) -> None:
    """``fn(*head, m0, m1, *tail)`` over rows [0, M), split between this process's threads at
    multiples of ``align`` (at least 64 rows each); the calling thread takes the last share."""
    global _POOL
    th = min(_threads(), max(1, M // 64))
    if th == 1:
        fn(*head, 0, M, *tail)
        return
    if _POOL is None or _POOL[1] < th - 1:
        _POOL = (ThreadPoolExecutor(th - 1, thread_name_prefix="dqt-native"), th - 1)
    cuts = [min(M, (M * i // th + align - 1) // align * align) for i in range(th + 1)]
    cuts[-1] = M
    spans = [(a, b) for a, b in zip(cuts, cuts[1:]) if a < b]
    futs = [_POOL[0].submit(fn, *head, a, b, *tail) for a, b in spans[:-1]]
    fn(*head, *spans[-1], *tail)
    for f in futs:
        f.result()


def i16_gemm(x, pack) -> np.ndarray:
    """x [M, K] (int16 values; padded here to even K) @ w.T -> int32 [M, N], rows split
    between this process's threads."""
    packed, N, K = pack
    x = np.asarray(x)
    M = x.shape[0]
    if K % 2 or x.dtype != np.int16 or not x.flags.c_contiguous:
        xa = np.zeros((M, K + K % 2), dtype=np.int16)
        xa[:, :K] = x
    else:
        xa = x
    c = np.empty((M, N), dtype=np.int32)
    _run_rows(_load().dqt_i16_gemm, M, 4, (_p(xa, ctypes.c_int16), xa.shape[1]),
              (K, _p(packed, ctypes.c_int16), N, _p(c, ctypes.c_int32)))
    return c


# --- the vnni kernel (vnni_linear.c) ------------------------------------------------------------

def vnni_available(kind: str = "vnni") -> bool:
    return _load_vnni(kind) is not None


def vnni_pack(w, kind: str = "vnni") -> tuple:
    """Signed weight codes [N, K] (int8 values) packed for :func:`vnni_linear` with the
    ``kind`` ("vnni" or "amx") kernel: ``(packed, N, K, kind, wpos, wneg)``, wpos / wneg the
    sums of each column's positive / negative weights (int64 [N]; the kernel's overflow
    bound)."""
    L = _load_vnni(kind)
    w = np.ascontiguousarray(w, dtype=np.int8)
    N, K = w.shape
    packed = np.zeros(((N + VNNI_NR - 1) // VNNI_NR) * L.dqt_vnni_quads(K) * VNNI_NR * 4,
                      dtype=np.int8)
    L.dqt_vnni_pack(_p(w, ctypes.c_int8), N, K, _p(packed, ctypes.c_int8))
    wi = w.astype(np.int64)
    wpos = np.ascontiguousarray(np.where(wi > 0, wi, 0).sum(axis=1))
    wneg = np.ascontiguousarray(np.where(wi < 0, wi, 0).sum(axis=1))
    return packed, N, K, kind, wpos, wneg


# the activation dtypes the kernel reads as they are (others are converted to int64 first)
_VNNI_XSIZE = {np.dtype(np.int64): 8, np.dtype(np.int32): 4, np.dtype(np.int16): 2,
               np.dtype(np.int8): 1, np.dtype(np.uint8): -1}


def vnni_linear(x, pack, k: int, rnd: bool, in_range: tuple, out_range: tuple, bias, k2: int,
                acc_range: tuple, saturate: bool):
    """A linear layer's accumulator in one pass: the activation codes x [M, K] shifted by k
    (floor, or round with the clamp to ``out_range``), the int32 sums with the packed weights,
    then ``(s << k2) + bias`` under the accumulator's policy (clamp to ``acc_range`` when
    ``saturate``, else wrap). Returns ``(acc int64 [M, N], overflowed bool [M, N], bad)``,
    ``bad`` the number of codes of x outside ``in_range`` (the outputs are then garbage)."""
    packed, N, K, kind, wpos, wneg = pack
    x = np.asarray(x)
    if x.dtype not in _VNNI_XSIZE:
        x = x.astype(np.int64)
    x = np.ascontiguousarray(x)
    M = x.shape[0]
    bias = np.ascontiguousarray(bias, dtype=np.int64)
    acc = np.empty((M, N), dtype=np.int64)
    over = np.zeros((M, N), dtype=np.bool_)  # the kernel writes only the overflowed flags
    if M == 0 or N == 0:
        return acc, over, 0
    # the kernel splits the rows between its own threads (vnni_linear.c, "threads")
    bad = _load_vnni(kind).dqt_vnni_linear(
        x.ctypes.data, _VNNI_XSIZE[x.dtype], K, M, K, k, int(rnd), *in_range, *out_range,
        packed.ctypes.data, wpos.ctypes.data, wneg.ctypes.data, N, bias.ctypes.data, k2,
        *acc_range, int(saturate),
        acc.ctypes.data, over.ctypes.data, _threads())
    if bad < 0:
        raise MemoryError("vnni_linear: no memory for the activation buffer")
    return acc, over, int(bad)
