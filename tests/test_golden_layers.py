"""Fast path == reference path, bit for bit, for the integer layers and the exact GEMM."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from golden import fast
from golden.formats import AccumulatorSpec, acc_width_rule
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
