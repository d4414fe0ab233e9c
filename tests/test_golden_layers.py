"""Fast path == reference path, bit for bit, for the integer layers and the exact GEMM."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from golden import fast
from golden.formats import AccumulatorSpec, DQTValueError, acc_width_rule
from golden.layers import avg_pool, max_pool, qdense
from golden.ops import nested_mac


@st.composite
def _dense_case(draw):
    n = draw(st.sampled_from([4, 8, 16]))
    bits = draw(st.integers(1, n))
    mode = draw(st.sampled_from(["floor", "round"]))
    kind = draw(st.sampled_from(["linear", "conv2d"]))
    N = draw(st.integers(1, 3))
    O = draw(st.integers(1, 5))
    seed = draw(st.integers(0, 2 ** 32 - 1))
    rng = np.random.default_rng(seed)
    extreme = draw(st.booleans())  # all-extreme codes: worst-case magnitudes for the bounds
    if kind == "linear":
        K = draw(st.integers(1, 40))
        xs, ws = (N, K), (O, K)
        geo = {}
    else:
        C = draw(st.integers(1, 3))
        kh = draw(st.integers(1, 3))
        H = draw(st.integers(kh, 7))
        xs, ws = (N, C, H, H), (O, C, kh, kh)
        K = C * kh * kh
        geo = {"stride": draw(st.integers(1, 2)), "padding": draw(st.integers(0, 1))}
    if extreme:
        x = rng.choice([0, (1 << n) - 1], xs)
        w = rng.choice([-(1 << (n - 1)), (1 << (n - 1)) - 1], ws)
    else:
        x = rng.integers(0, 1 << n, xs)
        w = rng.integers(-(1 << (n - 1)), 1 << (n - 1), ws)
    width = draw(st.integers(2 * n, acc_width_rule(n, K) + 1))
    acc = AccumulatorSpec(width, draw(st.sampled_from(["wrap", "saturate"])))
    bias = rng.integers(-(1 << (width - 2)), 1 << (width - 2), O)
    M = rng.integers(0, 1 << 16, O)
    S = draw(st.integers(8, 30))
    return dict(x=x, w=w, bias=bias, M=M, S=S, n=n, bits=bits, mode=mode, acc=acc, kind=kind,
                relu=draw(st.booleans()), requant=draw(st.booleans()), **geo)


@settings(max_examples=1000, deadline=None)
@given(_dense_case())
def test_fast_equals_reference(case):
    r, ro = qdense(**case, impl="reference")
    f, fo = qdense(**case, impl="fast")
    assert r.shape == f.shape
    assert np.array_equal(r, f)
    assert np.array_equal(ro, fo)


@settings(max_examples=300, deadline=None)
@given(_dense_case())
def test_linear_layer_equals_nested_mac_operator(case):
    """The layer is the nested MAC operator applied per output: ties layers to the spec'd operator."""
    if case["kind"] != "linear":
        return
    a, over = qdense(**{**case, "requant": False}, impl="reference")
    x, w = case["x"], case["w"]
    for o in range(w.shape[0]):
        v, ov = nested_mac(x, np.broadcast_to(w[o], x.shape), case["n"], case["bits"], case["acc"],
                           case["mode"], case["bias"][o])
        assert np.array_equal(a[:, o], v) and np.array_equal(over[:, o], ov)


@pytest.mark.parametrize("xmax,wmax,K,path", [
    (255, 128, 1024, "f32"),       # 8-bit worst case: 2^24 / 32640 = 514-wide chunks
    (15, 8, 4096, "f32"),          # 4-bit: one chunk
    (65535, 32768, 64, "f64"),     # 16-bit: too wide for binary32 chunks of >= 32
    (65535, 32768, 1 << 23, "int"),  # beyond the binary64 bound
])
def test_gemm_plan_paths(xmax, wmax, K, path):
    assert fast.gemm_plan(K, xmax, wmax)[0] == path


@pytest.mark.parametrize("n,K", [(8, 1500), (16, 40), (16, 9000)])
def test_exact_gemm_worst_case_magnitudes(n, K):
    """All-extreme operands: the partial sums sit at the exactness bound of each path."""
    rng = np.random.default_rng(K)
    x = rng.choice([0, (1 << n) - 1], (7, K))
    w = rng.choice([-(1 << (n - 1)), (1 << (n - 1)) - 1], (5, K))
    assert np.array_equal(fast.exact_gemm(x, w), np.matmul(x.astype(np.int64), w.T.astype(np.int64)))


def test_int_path_kernel_matches():
    rng = np.random.default_rng(3)
    x = rng.integers(-(1 << 20), 1 << 20, (9, 33))
    w = rng.integers(-(1 << 20), 1 << 20, (4, 33))
    assert np.array_equal(fast._gemm_i64(x, w), x @ w.T)


@pytest.mark.parametrize("k,stride", [(2, 2), (3, 1), (4, 4)])
def test_pools_against_loops(k, stride):
    rng = np.random.default_rng(k)
    x = rng.integers(0, 256, (2, 3, 8, 8))
    mp, ap = max_pool(x, k, stride), avg_pool(x, k, stride)
    for n in range(2):
        for c in range(3):
            for i in range(mp.shape[2]):
                for j in range(mp.shape[3]):
                    win = x[n, c, i * stride:i * stride + k, j * stride:j * stride + k]
                    assert mp[n, c, i, j] == win.max()
                    # round half up of the mean, in exact integer arithmetic
                    assert ap[n, c, i, j] == (2 * int(win.sum()) + k * k) // (2 * k * k)


@pytest.mark.parametrize("C,O,H,stride,padding", [(16, 16, 12, 1, 1), (64, 32, 9, 2, 1), (3, 8, 10, 1, 0)])
@pytest.mark.parametrize("bits", [8, 4, 2, 1])
@pytest.mark.parametrize("extreme", [False, True])
def test_conv_paths_at_resnet_sizes(C, O, H, stride, padding, bits, extreme, monkeypatch):
    """oneDNN conv (fast default) == im2col + GEMM (oneDNN off) == reference, at channel counts
    where oneDNN picks its blocked kernels; all-extreme codes put the sums at the bound."""
    from golden import layers
    rng = np.random.default_rng(C * 1000 + O + bits)
    n = 8
    if extreme:
        x = rng.choice([0, 255], (3, C, H, H))
        w = rng.choice([-128, 127], (O, C, 3, 3))
    else:
        x = rng.integers(0, 256, (3, C, H, H))
        w = rng.integers(-128, 128, (O, C, 3, 3))
    acc = AccumulatorSpec(2 * n + 1, "saturate" if extreme else "wrap")  # narrow: some sums overflow
    bias = rng.integers(-1000, 1000, O)
    args = (x, w, bias, n, bits, "round" if bits % 2 else "floor", acc, "conv2d", stride, padding)
    ref = layers.qdense_acc(*args, impl="reference")
    prep = layers.prepare_weights(w, n, bits, args[5], "conv2d")
    assert prep.onednn == fast.onednn_conv_available()
    got = layers.qdense_acc(*args, impl="fast", prepared=prep)
    monkeypatch.setattr(layers, "_use_onednn", False)
    via_gemm = layers.qdense_acc(*args, impl="fast")
    for a, b in ((ref, got), (ref, via_gemm)):
        assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert ref[1].any() or not (extreme and bits == 8)  # overflow flags compared where they fire


def test_prepared_weights_are_checked_and_copied():
    from golden import layers
    from golden.formats import DQTValueError
    rng = np.random.default_rng(5)
    x = rng.integers(0, 256, (4, 20))
    w = rng.integers(-128, 128, (3, 20))
    acc = AccumulatorSpec(acc_width_rule(8, 20))
    prep = layers.prepare_weights(w, 8, 4, "round", "linear")
    want = layers.qdense_acc(x, w, np.zeros(3, np.int64), 8, 4, "round", acc, impl="reference")
    w_before = w.copy()
    w[:] = 0  # the prepared copy does not see later writes; the call checks shapes and widths only
    got = layers.qdense_acc(x, w, np.zeros(3, np.int64), 8, 4, "round", acc, prepared=prep)
    assert np.array_equal(got[0], want[0])
    with pytest.raises(DQTValueError, match=r"prepared weights are for .*bits.*\(\(3, 20\), 8, 4"):
        layers.qdense_acc(x, w_before, np.zeros(3, np.int64), 8, 5, "round", acc, prepared=prep)


@pytest.mark.parametrize("kind", ["linear", "conv2d"])
def test_fast_path_without_torch(kind, monkeypatch):
    """DQT_GOLDEN_TORCH=0 / no torch: numpy BLAS and im2col give the same bits."""
    from golden import layers
    monkeypatch.setattr(fast, "_TORCH", False)
    assert not fast.onednn_conv_available()
    rng = np.random.default_rng(11)
    if kind == "linear":
        x, w, geo = rng.integers(0, 256, (33, 700)), rng.integers(-128, 128, (9, 700)), ()
    else:
        x, w, geo = rng.integers(0, 256, (2, 16, 9, 9)), rng.integers(-128, 128, (8, 16, 3, 3)), (1, 1)
    acc = AccumulatorSpec(acc_width_rule(8, int(np.prod(w.shape[1:]))))
    for bits in (8, 3):
        args = (x, w, np.zeros(w.shape[0], np.int64), 8, bits, "round", acc, kind, *geo)
        r = layers.qdense_acc(*args, impl="reference")
        f = layers.qdense_acc(*args, impl="fast")
        assert np.array_equal(r[0], f[0]) and np.array_equal(r[1], f[1])


def test_torch_switched_off_after_the_kernel_probe(monkeypatch):
    """The kernel order is probed once per process with torch; a layer prepared after torch
    is switched off takes no torch-backed kernel (the fast path without torch above ran
    into fbgemm when another test had probed first)."""
    fast.kernel_order()
    test_fast_path_without_torch("linear", monkeypatch)
    from golden import layers
    p = layers.prepare_weights(np.ones((2, 16), np.int64), 8, 4, "round", "linear")
    assert p.plan[0] not in ("u8", "i8")


# --- the int8 kernel (torch._int_mm, int32 sums) ----------------------------------------------

def _need_int_mm():
    torch = fast._torch()
    if torch is None or not hasattr(torch, "_int_mm"):
        pytest.skip("torch with torch._int_mm is not installed")


@pytest.mark.parametrize("bits,K,exact", [
    (8, 131071, True),        # K * 4^7 = 2^31 - 2^14: fits int32
    (8, 131072, False),       # K * 4^7 = 2^31: an all-(-128 x -128) sum would wrap
    (4, (1 << 25) - 1, True),  # K * 4^3 = 2^31 - 64
    (4, 1 << 25, False),
    (9, 8, False),            # 9-bit codes do not fit s8
])
def test_int8_exactness_bound(bits, K, exact):
    """Directed corner cases of K * 4^(b-1) <= 2^31 - 1 (docs/arithmetic.md section 9)."""
    assert fast.int8_exact(K, bits) is exact


@pytest.mark.parametrize("shape", [(3, 1, 4), (1, 1, 1), (1, 5, 1), (4, 7, 1), (1, 1, 9)])
def test_int8_kernel_with_a_length_1_axis(shape, monkeypatch):
    """K = 1 or a single row/output: numpy gives such arrays non-canonical strides, which
    torch._int_mm (oneDNN, AVX-512 VNNI) misreads; the kernel hands it canonical copies."""
    _need_int_mm()
    from golden import layers
    monkeypatch.setattr(fast, "_KERNEL", "int8")
    N, K, O = shape
    rng = np.random.default_rng(K * 10 + O)
    for bits in (1, 4, 8):
        x, w = rng.integers(0, 256, (N, K)), rng.integers(-128, 128, (O, K))
        args = (x, w, rng.integers(-50, 50, O), 8, bits, "floor", AccumulatorSpec(24))
        prep = layers.prepare_weights(w, 8, bits, "floor", "linear")
        assert prep.plan[0] == "i8"
        for _ in range(3):   # garbage from unwritten memory differs from call to call
            f = layers.qdense_acc(*args, impl="fast", prepared=prep)
            r = layers.qdense_acc(*args, impl="reference")
            assert np.array_equal(r[0], f[0]) and np.array_equal(r[1], f[1])


@pytest.mark.parametrize("kernel", ["int8", "u8", "i16"])
def test_conv_layers_keep_the_float_plan_under_every_kernel(kernel, monkeypatch):
    """Conv layers run oneDNN's float convolution (or im2col + the float GEMM), whichever
    kernel linear layers prefer (docs/arithmetic.md, "Which kernel runs")."""
    from golden import layers
    monkeypatch.setattr(fast, "_KERNEL", kernel)
    prep = layers.prepare_weights(np.ones((4, 3, 3, 3), np.int64), 8, 4, "floor", "conv2d")
    assert prep.plan[0] == "f32"
    assert prep.onednn == fast.onednn_conv_available()


@pytest.mark.parametrize("bits", [2, 4, 6, 8])
@pytest.mark.parametrize("pattern", ["max", "min", "mixed"])
@pytest.mark.parametrize("overflow", ["wrap", "saturate"])
def test_int8_kernel_equals_reference_at_extremes(bits, pattern, overflow, monkeypatch):
    """All-extreme codes through the int8 kernel: every product at its largest magnitude, sums
    at the int32 bound's scale, accumulators narrow enough to wrap or saturate."""
    _need_int_mm()
    from golden import layers
    monkeypatch.setattr(fast, "_KERNEL", "int8")
    rng = np.random.default_rng(bits)
    xs, ws = (5, 3000), (6, 3000)
    if pattern == "max":      # centred codes -2^(b-1) x -2^(b-1): the largest product
        x, w = np.zeros(xs, np.int64), np.full(ws, -128)
    elif pattern == "min":    # 255 (centred 2^(b-1) - 1 after the shift) x -128
        x, w = np.full(xs, 255), np.full(ws, -128)
    else:
        x, w = rng.choice([0, 255], xs), rng.choice([-128, 127], ws)
    K = int(np.prod(ws[1:]))
    for width in (acc_width_rule(8, K) + 1, 12):   # the exact width, and one that overflows
        acc = AccumulatorSpec(width, overflow)
        args = (x, w, rng.integers(-50, 50, ws[0]), 8, bits, "round", acc, "linear")
        prep = layers.prepare_weights(w, 8, bits, "round", "linear")
        assert prep.plan[0] == "i8" and prep.kernel == "torch-int_mm-s8s8s32"
        f = layers.qdense_acc(*args, impl="fast", prepared=prep)
        r = layers.qdense_acc(*args, impl="reference")
        assert np.array_equal(r[0], f[0]) and np.array_equal(r[1], f[1])
        if width == 12 and pattern != "max":  # ("max": the uncentred sum is 0 + bias)
            assert f[1].any()  # the narrow accumulator did overflow: the policy was exercised


def test_int8_kernel_falls_back_beyond_its_bound(monkeypatch):
    """Past K * 4^(b-1) <= 2^31 - 1 the layer takes the float plan, not a wrapping int32 sum."""
    _need_int_mm()
    from golden import layers
    monkeypatch.setattr(fast, "_KERNEL", "int8")
    K = 131072
    w = np.full((1, K), -128)
    prep = layers.prepare_weights(w, 8, 8, "floor", "linear")
    assert prep.plan[0] != "i8"
    x = np.zeros((2, K), np.int64)   # centred: -128 x -128 on every term, sum 2^31
    acc = AccumulatorSpec(acc_width_rule(8, K) + 1)
    f = layers.qdense_acc(x, w, np.zeros(1, np.int64), 8, 8, "floor", acc, prepared=prep)
    r = layers.qdense_acc(x, w, np.zeros(1, np.int64), 8, 8, "floor", acc, impl="reference")
    assert np.array_equal(f[0], r[0])


def test_kernel_choice_is_validated(monkeypatch):
    monkeypatch.setattr(fast, "_KERNEL", None)
    monkeypatch.setattr(fast, "_ORDER", None)
    monkeypatch.setenv("DQT_GOLDEN_KERNEL", "vnni512")
    with pytest.raises(DQTValueError, match=r"DQT_GOLDEN_KERNEL='vnni512' is not one of"):
        fast.gemm_kernel()


# --- the u8 kernel (fbgemm u8 x s8, int16 pair sums on AVX2) ------------------------------------

def _need_fbgemm():
    if not fast.u8_available():
        pytest.skip("torch with the fbgemm quantized engine is not installed")


@pytest.mark.parametrize("bits,K,plan", [
    (7, 2064, ("u8", 2064)),   # 2064 * 127 * 64 = 16,776,192 <= 2^24: one chunk
    (7, 2065, ("u8", 2064)),   # one term more: two chunks
    (4, 100, ("u8", 100)),
])
def test_u8_plan_bounds(bits, K, plan):
    """Directed corner cases of the u8 kernel's two bounds (docs/arithmetic.md section 9)."""
    assert fast.u8_plan(K, bits) == plan


def test_u8_plan_at_8_bits_only_with_vnni(monkeypatch):
    """8-bit activations: 2 * 255 * 128 > 32767 saturates AVX2's vpmaddubsw, so b = 8 takes
    the u8 kernel only where vpdpbusd sums straight into int32."""
    monkeypatch.setattr(fast, "cpu_has_vnni", lambda: False)
    assert fast.u8_plan(16, 8) is None
    monkeypatch.setattr(fast, "cpu_has_vnni", lambda: True)
    assert fast.u8_plan(16, 8) == ("u8", 16)
    assert fast.u8_plan(1032, 8) == ("u8", 514)   # 2^24 // (255 * 128) = 514 per chunk


@pytest.mark.parametrize("bits", [2, 4, 6, 7, 8])
@pytest.mark.parametrize("pattern", ["max", "mixed", "random"])
@pytest.mark.parametrize("mode", ["round", "floor"])
def test_u8_kernel_equals_reference_at_extremes(bits, pattern, mode, monkeypatch):
    """The largest activation code against the most negative weight on every term (every
    vpmaddubsw pair at 2 * 127 * 128 at b = 7, sums chunked at the binary32 bound), and
    random codes, through fbgemm: equal to the int64 reference, values and overflow flags."""
    _need_fbgemm()
    # 8-bit activations take the u8 kernel only on an AVX-512 VNNI CPU, the float plan else
    u8 = bits <= 7 or fast.cpu_has_vnni()
    from golden import layers
    monkeypatch.setattr(fast, "_KERNEL", "u8")
    rng = np.random.default_rng(bits)
    xs, ws = (7, 5000), (6, 5000)
    if pattern == "max":
        x, w = np.full(xs, 255), np.full(ws, -128)
    elif pattern == "mixed":
        x, w = rng.choice([0, 255], xs), rng.choice([-128, 127], ws)
    else:
        x, w = rng.integers(0, 256, xs), rng.integers(-128, 128, ws)
    for width in (acc_width_rule(8, ws[1]) + 1, 14):
        acc = AccumulatorSpec(width)
        args = (x, w, rng.integers(-50, 50, ws[0]), 8, bits, mode, acc, "linear")
        prep = layers.prepare_weights(w, 8, bits, mode, "linear")
        assert (prep.plan[0] == "u8" and prep.kernel.startswith("fbgemm-u8s8s32")) == u8
        f = layers.qdense_acc(*args, impl="fast", prepared=prep)
        r = layers.qdense_acc(*args, impl="reference")
        assert np.array_equal(r[0], f[0]) and np.array_equal(r[1], f[1])


@pytest.mark.parametrize("vnni", [False, True])
def test_u8_kernel_leaves_8_bit_layers_to_the_float_plan(vnni, monkeypatch):
    """At b = 8 the u8 preference falls back to the exact float plan unless the CPU has
    AVX-512 VNNI (no int16 pair sums); conv layers never take it."""
    _need_fbgemm()
    from golden import layers
    monkeypatch.setattr(fast, "_KERNEL", "u8")
    monkeypatch.setattr(fast, "cpu_has_vnni", lambda: vnni)
    assert layers.prepare_weights(np.ones((2, 8)), 8, 8, "round", "linear").plan[0] == \
        ("u8" if vnni else "f32")
    assert layers.prepare_weights(np.ones((2, 8)), 8, 7, "round", "linear").plan[0] == "u8"
    assert layers.prepare_weights(np.ones((2, 1, 3, 3)), 8, 4, "round", "conv2d").plan[0] != "u8"


# --- the i16 kernel (native vpmaddwd, int32 sums) ------------------------------------------------

def _need_native(kernel: str):
    from golden import native
    ok, cpu = {"i16": (native.i16_available, "AVX2"),
               "vnni": (native.vnni_available, "AVX-512 VNNI"),
               "amx": (lambda: native.vnni_available("amx"),
                       "AMX-INT8 (or Linux refused the tile state)")}[kernel]
    if not ok():
        pytest.skip(f"no C compiler or no {cpu}: the native {kernel} kernel is not built")


def _need_i16():
    _need_native("i16")


def _codes(pattern, rng, M, K, N):
    """Activation codes [M, K] and weight codes [N, K]: "max", the largest activation code
    against the most negative weight on every term (the largest |sum|); "mixed", those
    extremes at random; else random codes."""
    if pattern == "max":
        return np.full((M, K), 255), np.full((N, K), -128)
    if pattern == "mixed":
        return rng.choice([0, 255], (M, K)), rng.choice([-128, 127], (N, K))
    return rng.integers(0, 256, (M, K)), rng.integers(-128, 128, (N, K))


@pytest.mark.parametrize("bits,K,plan", [
    (8, 65793, ("i16", 65793)),   # 65793 * 255 * 128 = 2^31 - 128: fits int32
    (8, 65794, None),             # one term more could leave int32
    (15, 1, ("i16", 1)),          # 15-bit codes still fit int16
    (16, 1, None),
])
def test_i16_plan_bounds(bits, K, plan):
    """Directed corner cases of K (2^b - 1) 2^(b-1) <= 2^31 - 1 and b <= 15."""
    assert fast.i16_plan(K, bits) == plan


@pytest.mark.parametrize("bits", [2, 4, 6, 8])
@pytest.mark.parametrize("pattern", ["max", "mixed", "random"])
@pytest.mark.parametrize("shape", [(7, 5000, 6), (130, 301, 50)])
def test_i16_kernel_equals_reference_at_extremes(bits, pattern, shape, monkeypatch):
    """The largest activation code against the most negative weight on every term, extremes
    mixed, and random codes, through the native kernel (row tiles of 4 and panels of 24 with
    remainders, odd K, rows split between threads): equal to the int64 reference."""
    _need_i16()
    from golden import layers
    monkeypatch.setattr(fast, "_KERNEL", "i16")
    rng = np.random.default_rng(bits)
    M, K, N = shape
    x, w = _codes(pattern, rng, M, K, N)
    for width in (acc_width_rule(8, K) + 1, 14):
        acc = AccumulatorSpec(width, "saturate")
        args = (x, w, rng.integers(-50, 50, N), 8, bits, "floor", acc, "linear")
        prep = layers.prepare_weights(w, 8, bits, "floor", "linear")
        assert prep.plan[0] == "i16" and prep.kernel == "native-i16-vpmaddwd"
        f = layers.qdense_acc(*args, impl="fast", prepared=prep)
        r = layers.qdense_acc(*args, impl="reference")
        assert np.array_equal(r[0], f[0]) and np.array_equal(r[1], f[1])


# --- the vnni kernel (native vpdpbusd, the whole linear layer fused) ------------------------------

# the fused kernel's two builds: vpdpbusd (AVX-512 VNNI) and tdpbusd tiles (AMX)
FUSED = pytest.mark.parametrize("kernel", ["vnni", "amx"])


@pytest.mark.parametrize("bits,K,plan", [
    (8, 65793, ("vnni", 65793)),  # 65793 * 255 * 128 = 2^31 - 128: fits int32
    (8, 65794, None),             # one term more could leave int32
    (1, 1, ("vnni", 1)),
    (9, 1, None),                 # 9-bit activation codes do not fit u8
])
def test_vnni_plan_bounds(bits, K, plan):
    """Directed corner cases of K (2^b - 1) 2^(b-1) <= 2^31 - 1 and b <= 8."""
    assert fast.vnni_plan(K, bits) == plan


@FUSED
@pytest.mark.parametrize("bits", [1, 2, 4, 6, 7, 8])
@pytest.mark.parametrize("pattern", ["max", "mixed", "random"])
@pytest.mark.parametrize("shape", [(7, 5000, 6), (130, 301, 50), (1, 1, 1), (13, 7, 65),
                                   (11, 33, 130), (100, 64, 33)])
def test_vnni_kernel_equals_reference_at_extremes(kernel, bits, pattern, shape, monkeypatch):
    """The largest activation code against the most negative weight on every term, extremes
    mixed, and random codes, through the fused native kernel (vnni: micro-tiles of 6 rows and
    panels of 64 columns with remainders; amx: 32-row blocks and 64-term tiles with
    remainders, K a whole tile; both: K not a multiple of 4, row blocks over threads),
    both nested modes, both overflow policies with an accumulator narrow enough to hit them:
    equal to the int64 reference, values and overflow flags."""
    _need_native(kernel)
    from golden import layers
    monkeypatch.setattr(fast, "_KERNEL", kernel)
    rng = np.random.default_rng(bits * 7 + shape[0])
    M, K, N = shape
    x, w = _codes(pattern, rng, M, K, N)
    for mode in ("round", "floor"):
        prep = layers.prepare_weights(w, 8, bits, mode, "linear")
        assert prep.plan[0] == kernel and prep.kernel == {
            "vnni": "native-vnni-vpdpbusd", "amx": "native-amx-tdpbusd"}[kernel]
        for width, policy in ((acc_width_rule(8, K) + 1, "wrap"), (12, "wrap"), (12, "saturate")):
            acc = AccumulatorSpec(width, policy)
            args = (x, w, rng.integers(-3000, 3000, N), 8, bits, mode, acc, "linear")
            f = layers.qdense_acc(*args, impl="fast", prepared=prep)
            r = layers.qdense_acc(*args, impl="reference")
            assert np.array_equal(r[0], f[0]) and np.array_equal(r[1], f[1])


@FUSED
@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.int16, np.uint8, np.int8, np.uint16])
def test_vnni_kernel_reads_every_activation_dtype(kernel, dtype, monkeypatch):
    """Codes arrive as int64 from the network and as narrower arrays from users: the kernel
    reads each width as it is (uint16 is widened first)."""
    _need_native(kernel)
    from golden import layers
    monkeypatch.setattr(fast, "_KERNEL", kernel)
    rng = np.random.default_rng(3)
    hi = 128 if dtype is np.int8 else 256
    x, w = rng.integers(0, hi, (40, 77)).astype(dtype), rng.integers(-128, 128, (9, 77))
    args = (x, w, rng.integers(-50, 50, 9), 8, 4, "round", AccumulatorSpec(20), "linear")
    f = layers.qdense_acc(*args, impl="fast")
    r = layers.qdense_acc(*args, impl="reference")
    assert np.array_equal(r[0], f[0]) and np.array_equal(r[1], f[1])


@FUSED
@pytest.mark.parametrize("bad", [-1, 256])
def test_vnni_kernel_rejects_codes_outside_the_format(kernel, bad, monkeypatch):
    """An activation code outside [0, 255] raises, naming the value and the range, as the
    other paths do (the kernel counts them; nothing it wrote is returned)."""
    _need_native(kernel)
    from golden import layers
    monkeypatch.setattr(fast, "_KERNEL", kernel)
    x = np.zeros((50, 16), np.int64)
    x[37, 5] = bad
    with pytest.raises(DQTValueError, match=rf"{bad}.*\[0, 255\]"):
        layers.qdense_acc(x, np.ones((3, 16), np.int64), np.zeros(3, np.int64), 8, 4, "floor",
                          AccumulatorSpec(20), "linear", impl="fast")


@FUSED
def test_vnni_kernel_runs_in_a_forked_child(kernel, monkeypatch):
    """libgomp is not fork-safe: a child forked after a parallel region hangs in its next one.
    The kernel runs single-threaded in a forked child (e.g. the report's process pool) and
    still gives the reference result."""
    _need_native(kernel)
    import multiprocessing as mp
    from golden import layers
    monkeypatch.setattr(fast, "_KERNEL", kernel)
    rng = np.random.default_rng(5)
    x, w = rng.integers(0, 256, (400, 300)), rng.integers(-128, 128, (70, 300))
    args = (x, w, np.zeros(70, np.int64), 8, 4, "floor", AccumulatorSpec(30), "linear")
    ref = layers.qdense_acc(*args, impl="reference")[0]
    assert np.array_equal(layers.qdense_acc(*args, impl="fast")[0], ref)  # parallel region
    with mp.get_context("fork").Pool(1) as pool:
        got = pool.apply_async(layers.qdense_acc, args, {"impl": "fast"}).get(timeout=60)[0]
    assert np.array_equal(got, ref)
