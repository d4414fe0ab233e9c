"""Throughput of the golden model's bit-exact nested-integer GEMM and conv.

Cases: (i) a 1024x1024x1024 GEMM and (ii) a ResNet-20 3x3 conv layer (16->16 channels, 32x32,
batch 64), each at b in {8, 4, 2}. Measured in the same run, as baselines: torch's int8
quantized linear (fbgemm), float32 torch.matmul, and a plain numpy int64 matmul (which is the
golden *reference* path). Every fast-path result is compared with the reference result.

Every function of every case is called once before any timing (numba compilation, thread
pools, first-touch page faults of the outputs), and again right before its case is timed;
within a case the functions are timed in alternation. ``--clock cpu`` times with the
process's CPU clock instead of the wall clock: on a shared machine the wall clock mostly
measures the other jobs (use it with ``--threads 1``).

The GEMM's activation codes go in as uint8, the bytes fbgemm gets (quint8); the golden path
is also timed on the same codes as int64 (the network runner's dtype, 8x the bytes to read).

Prints a table and, as its last line, one JSON object (ratio_vs_fbgemm is the worst case over
the GEMM cases, uint8 codes; ratio_vs_fbgemm_int64_codes the same on int64 codes;
ratio_vs_numpy_int64 the worst over all cases, ratio_vs_numpy_int64_gemm over the GEMM cases;
kernel: the golden fast path's GEMM kernel, golden.fast.gemm_kernel, with each case's own in
"cases").

    python bench/golden_gemm.py [--quick] [--repeat R] [--threads T] [--clock wall|cpu]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from golden.formats import AccumulatorSpec, acc_width_rule  # noqa: E402
from golden.layers import prepare_weights, qdense_acc  # noqa: E402


_CLOCK = time.perf_counter


def _best_times(fns, repeat, min_time=0.2):
    """Best seconds per call of each function, measured in alternation (round-robin over
    ``repeat`` rounds) so that drift in the machine's speed hits every function alike.
    Every function is called once first, so none is timed cold."""
    for fn in fns:
        fn()
    best = [float("inf")] * len(fns)
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            t0 = _CLOCK()
            k = 0
            while True:
                fn()
                k += 1
                dt = _CLOCK() - t0
                if dt >= min_time:
                    break
            best[i] = min(best[i], dt / k)
    return best


def _fbgemm_linear(M, K, N, rng):
    import torch
    torch.backends.quantized.engine = "fbgemm"
    lin = torch.ao.nn.quantized.Linear(K, N)
    w = torch.quantize_per_tensor(torch.randn(N, K), 0.02, 0, torch.qint8)
    lin.set_weight_bias(w, torch.zeros(N))
    lin.scale, lin.zero_point = 0.5, 0
    x = torch.quantize_per_tensor(torch.rand(M, K), 1 / 255, 0, torch.quint8)
    return lambda: lin(x)


def _torch_f32(M, K, N):
    import torch
    a = torch.randn(M, K)
    b = torch.randn(K, N)
    return lambda: torch.matmul(a, b)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller shapes, under a minute")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall")
    args = ap.parse_args(argv)
    global _CLOCK
    _CLOCK = time.perf_counter if args.clock == "wall" else time.process_time
    try:
        import torch
        torch.set_num_threads(args.threads)
    except ImportError:
        torch = None
    from golden import fast
    kernel = fast.gemm_kernel()

    rng = np.random.default_rng(0)
    n = 8
    if args.quick:
        gemm = (256, 512, 512)
        conv = dict(N=8, C=16, H=32, O=16)
    else:
        gemm = (1024, 1024, 1024)
        conv = dict(N=64, C=16, H=32, O=16)
    rows = []
    bit_exact = True

    # (i) GEMM: x [M, K] unsigned codes, w [N, K] signed codes
    M, K, N = gemm
    # the activation codes as 8-bit bytes, as fbgemm gets them (quint8); the same codes as
    # int64, the golden network runner's own dtype, are timed beside them
    x = rng.integers(0, 256, (M, K)).astype(np.uint8)
    x64 = x.astype(np.int64)
    w = rng.integers(-128, 128, (N, K))
    bias = rng.integers(-1000, 1000, N)
    acc = AccumulatorSpec(acc_width_rule(n, K) + 1)
    macs = M * K * N
    base = [_fbgemm_linear(M, K, N, rng), _torch_f32(M, K, N)] if torch else []
    # weights prepared once per width, as fbgemm's are prepacked by set_weight_bias
    preps = {b: prepare_weights(w, n, b, "round", "linear") for b in (8, 4, 2)}
    fasts = {b: (lambda b=b: qdense_acc(x, w, bias, n, b, "round", acc, "linear", impl="fast",
                                        prepared=preps[b])) for b in (8, 4, 2)}
    fasts64 = {b: (lambda b=b: qdense_acc(x64, w, bias, n, b, "round", acc, "linear",
                                          impl="fast", prepared=preps[b])) for b in (8, 4, 2)}
    for fn in list(fasts.values()) + list(fasts64.values()) + base:  # warm every case first
        fn()
    for b in (8, 4, 2):
        fast_fn = fasts[b]
        ref = lambda: qdense_acc(x64, w, bias, n, b, "round", acc, "linear", impl="reference")  # noqa: E731
        t_fast, t_fast64, *tb = _best_times([fast_fn, fasts64[b]] + base, args.repeat)
        t_fb, t_f32 = tb if tb else (float("nan"), float("nan"))
        t_ref, = _best_times([ref], 1, min_time=0.0)
        r_ref, got, got64 = ref(), fast_fn(), fasts64[b]()
        same = all(np.array_equal(g[i], r_ref[i]) for g in (got, got64) for i in (0, 1))
        bit_exact &= same
        rows.append(dict(case=f"gemm {M}x{K}x{N}", bits=b, macs=macs, golden_gmacs=macs / t_fast / 1e9,
                         golden_i64_gmacs=macs / t_fast64 / 1e9,
                         fbgemm_gmacs=macs / t_fb / 1e9, torch_f32_gmacs=macs / t_f32 / 1e9,
                         numpy_int64_gmacs=macs / t_ref / 1e9, bit_exact=same, gemm=True,
                         kernel=preps[b].kernel))

    # (ii) ResNet-20 conv 3x3, stride 1, padding 1
    Nb, C, H, O = conv["N"], conv["C"], conv["H"], conv["O"]
    xc = rng.integers(0, 256, (Nb, C, H, H))
    wc = rng.integers(-128, 128, (O, C, 3, 3))
    bc = rng.integers(-1000, 1000, O)
    accc = AccumulatorSpec(acc_width_rule(n, C * 9) + 1)
    macs_c = Nb * H * H * O * C * 9
    if torch:
        tx = torch.randn(Nb, C, H, H)
        tw = torch.randn(O, C, 3, 3)
        qconv = torch.ao.nn.quantized.Conv2d(C, O, 3, padding=1)
        qconv.set_weight_bias(torch.quantize_per_tensor(tw, 0.02, 0, torch.qint8), torch.zeros(O))
        qconv.scale, qconv.zero_point = 0.5, 0
        qx = torch.quantize_per_tensor(torch.rand(Nb, C, H, H), 1 / 255, 0, torch.quint8)
        base = [lambda: qconv(qx), lambda: torch.nn.functional.conv2d(tx, tw, padding=1)]
    else:
        base = []
    preps = {b: prepare_weights(wc, n, b, "round", "conv2d") for b in (8, 4, 2)}
    fasts = {b: (lambda b=b: qdense_acc(xc, wc, bc, n, b, "round", accc, "conv2d", 1, 1,
                                        impl="fast", prepared=preps[b])) for b in (8, 4, 2)}
    for fn in list(fasts.values()) + base:  # warm every case before timing the first
        fn()
    for b in (8, 4, 2):
        fast_fn = fasts[b]
        ref = lambda: qdense_acc(xc, wc, bc, n, b, "round", accc, "conv2d", 1, 1, impl="reference")  # noqa: E731
        t_fast, *tb = _best_times([fast_fn] + base, args.repeat)
        t_cfb, t_cf32 = tb if tb else (float("nan"), float("nan"))
        t_ref, = _best_times([ref], 1, min_time=0.0)
        r_ref, got = ref(), fast_fn()
        same = bool(np.array_equal(got[0], r_ref[0]) and np.array_equal(got[1], r_ref[1]))
        bit_exact &= same
        rows.append(dict(case=f"conv3x3 {C}->{O} {H}x{H} batch {Nb}", bits=b, macs=macs_c,
                         golden_gmacs=macs_c / t_fast / 1e9, fbgemm_gmacs=macs_c / t_cfb / 1e9,
                         torch_f32_gmacs=macs_c / t_cf32 / 1e9, numpy_int64_gmacs=macs_c / t_ref / 1e9,
                         bit_exact=same, gemm=False, kernel=preps[b].kernel))

    hdr = (f"{'case':34s} {'b':>2s} {'golden':>8s} {'g i64in':>8s} {'fbgemm':>8s} {'f32':>8s} "
           f"{'np i64':>8s} {'vs fbgemm':>9s} {'vs np':>7s} exact")
    print(f"GMAC/s (higher is better; {args.clock} clock, {args.threads} threads); golden = the "
          f"golden fast path on 8-bit activation codes (uint8, as fbgemm's quint8), g i64in = the "
          f"same on int64 codes (GEMM cases); fbgemm = torch int8 quantized linear/conv, f32 = "
          f"torch float32; golden kernel: {kernel}")
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        r["ratio_vs_fbgemm"] = r["golden_gmacs"] / r["fbgemm_gmacs"]
        r["ratio_vs_numpy_int64"] = r["golden_gmacs"] / r["numpy_int64_gmacs"]
        print(f"{r['case']:34s} {r['bits']:2d} {r['golden_gmacs']:8.2f} "
              f"{r.get('golden_i64_gmacs', float('nan')):8.2f} {r['fbgemm_gmacs']:8.2f} "
              f"{r['torch_f32_gmacs']:8.2f} {r['numpy_int64_gmacs']:8.3f} {r['ratio_vs_fbgemm']:9.2f} "
              f"{r['ratio_vs_numpy_int64']:7.1f} {r['bit_exact']}")
    g = [r for r in rows if r["gemm"]]
    out = {
        "bench": "golden_gemm",
        "quick": args.quick,
        "ratio_vs_fbgemm": round(min(r["ratio_vs_fbgemm"] for r in g), 3),
        # the same with the activation codes handed over as int64 (the network runner's dtype)
        "ratio_vs_fbgemm_int64_codes": round(min(r["golden_i64_gmacs"] / r["fbgemm_gmacs"]
                                                  for r in g), 3),
        "ratio_vs_numpy_int64": round(min(r["ratio_vs_numpy_int64"] for r in rows), 1),  # worst, conv included
        "ratio_vs_numpy_int64_gemm": round(min(r["ratio_vs_numpy_int64"] for r in g), 1),
        "bit_exact": bit_exact,
        "kernel": kernel,
        "threads": args.threads,
        "clock": args.clock,
        "loadavg": [round(v, 2) for v in os.getloadavg()],
        "cases": [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()} for r in rows],
    }
    print(json.dumps(out))
    return 0 if bit_exact else 1


if __name__ == "__main__":
    raise SystemExit(main())
