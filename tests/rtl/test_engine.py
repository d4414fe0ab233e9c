# amaranth: UnusedElaboratable=no
"""The layer engine against the golden model in Amaranth's simulator.

Expected values come from ``golden.layers.qdense`` (via ``rtl.engine_protocol.reference_dense``),
``golden.ops.int_add`` and ``golden.network.run_network`` traces, element for element,
with the precision changing between consecutive input vectors.
"""
from __future__ import annotations

import numpy as np
import pytest

from rtl import engine_protocol as ge
from golden.formats import AccumulatorSpec, AddConstants, DQTValueError, IntFormat
from golden.network import load_network, run_network, save_network
from golden.ops import int_add
from rtl.engine import Engine

from .engine_driver import EngineRun, run_engine

# small geometry: K up to 64 in 8 beats, 8 channels resident (2 groups of 4 lanes), so
# layers with more channels exercise the host tiling
SMALL = dict(n=8, lanes=4, pes=8, max_k=64, max_out=8, weight_depth=32, acc_max=32,
             m_bits=24)
# the fusion engine: 2 lanes of 2 fusion units (2 / 8 / 32 products per lane per cycle at
# 8 / 4 / 2 bits); K = 45 is 23 beats at 8 bits, 6 weight rows per bank per group
FUSION = dict(n=8, lanes=2, pes=2, max_k=64, max_out=4, weight_depth=16, acc_max=32,
              m_bits=24, fusion=True)


def _dense_jobs(geom, tiles, beats, R):
    return [EngineRun(t.cfg, t.weights, t.chans, beats, R * t.groups) for t in tiles]


def _run_dense(dut, tiles, x_rows, bits, seed=0, **kw):
    geom = dut.geometry
    beats = ge.dense_input_beats(geom, x_rows, bits, tiles[0].mode)
    jobs = run_engine(dut, _dense_jobs(geom, tiles, beats, x_rows.shape[0]), seed=seed, **kw)
    ys, overs = [], []
    for t, j in zip(tiles, jobs):
        y, o = ge.collect_dense(geom, t, j.outs, x_rows.shape[0])
        ys.append(y)
        overs.append(o)
        # every output beat echoes its row's precision
        want_bits = np.repeat(np.broadcast_to(bits, (x_rows.shape[0],)), t.groups)
        assert [o_["bits"] for o_ in j.outs] == want_bits.tolist()
    return np.concatenate(ys, axis=1), np.concatenate(overs, axis=1), jobs


def _assert_equal(got, exp, what, x_rows, bits):
    bad = np.argwhere(got != exp)
    if bad.size:
        r, c = bad[0]
        raise AssertionError(
            f"{what}: {bad.shape[0]} mismatches; first at row {r} channel {c}: got "
            f"{got[r, c]}, expected {exp[r, c]} (bits={np.broadcast_to(bits, (len(x_rows),))[r]})")


LAYER_CASES = [
    # (mode, overflow, acc_width, requant, clip_hi): tight widths force overflow events
    ("floor", "wrap", 26, True, None),
    ("round", "saturate", 18, True, 200),
    ("round", "wrap", 17, False, None),
    ("floor", "saturate", 19, False, None),
]


# every case with both alignments; the extra product-path registers of the ecp5 preset
# (deep_pipeline) with both alignments on two cases (both modes, both policies)
ENGINE_CASES = [(v, False, *c) for v in ("right", "msb") for c in LAYER_CASES] + \
    [(v, True, *c) for v in ("right", "msb") for c in LAYER_CASES[:2]]


@pytest.mark.parametrize("variant,deep,mode,overflow,acc_width,requant,clip_hi", ENGINE_CASES)
def test_engine_linear_layer(variant, deep, mode, overflow, acc_width, requant, clip_hi,
                             record_property):
    dut = Engine(variant=variant, deep_pipeline=deep, **SMALL)
    _check_linear_layer(dut, hash((variant, mode, overflow)) & 0xFFFF, mode, overflow,
                        acc_width, requant, clip_hi, record_property)


@pytest.mark.parametrize("mode,overflow,acc_width,requant,clip_hi", LAYER_CASES)
def test_fusion_engine_linear_layer(mode, overflow, acc_width, requant, clip_hi,
                                    record_property):
    """The fusion engine: every precision 1..8, changing on every row, both nested modes
    (the host's activation conversion and the engine's weight rebuild from digit planes),
    three tiles of channels, against golden qdense."""
    _check_linear_layer(Engine(**FUSION), hash(("fusion", mode, overflow)) & 0xFFFF, mode,
                        overflow, acc_width, requant, clip_hi, record_property)


def _check_linear_layer(dut, seed, mode, overflow, acc_width, requant, clip_hi,
                        record_property):
    rng = np.random.default_rng(seed)
    R, K, O = 12, 45, 10                      # K padded to whole beats; O needs >= 2 tiles
    x = rng.integers(0, 256, (R, K))
    w = rng.integers(-128, 128, (O, K))
    x[0], w[0] = 255, -128                    # extreme row/channel (largest |products|)
    w[1] = 127                                # the round mode's clamp of a weight at every b
    lim = 1 << (acc_width - 2)
    bias = rng.integers(-lim, lim, O)
    M = rng.integers(1, 1 << 16, O)
    S = 20
    bits = np.array([8, 4, 2, 6, 1, 8, 3, 5, 7, 2, 8, 4])   # changes on every row
    tiles = ge.plan_dense(dut.geometry, w, bias, M, S, acc_width, overflow, requant, clip_hi,
                          mode)
    assert len(tiles) >= 2
    y, over, jobs = _run_dense(dut, tiles, x, bits, seed=R)
    ey, eo = ge.reference_dense(x, w, bias, M, S, 8, bits, mode,
                                AccumulatorSpec(acc_width, overflow), requant, clip_hi)
    _assert_equal(y, ey, "y", x, bits)
    _assert_equal(over, eo, "overflow", x, bits)
    if acc_width < 20:
        assert eo.any()   # the case really exercises the policy
    # the sticky flag (cleared by each tile's CLEAR write) is the OR of the tile's flags
    for t, j in zip(tiles, jobs):
        assert j.sticky == int(eo[:, t.c0:t.c1].any()), (t.c0, t.c1, j.sticky)
    record_property("vectors", int(R * O))


@pytest.mark.parametrize("deep", [False, True])
def test_engine_precision_change_costs_zero_cycles(deep, record_property):
    """Alternating precisions take exactly the cycles of a constant precision."""
    # (deep: M of at most 16 bits, the product with M needs no high partial product)
    dut_geom = dict(SMALL, max_out=4, deep_pipeline=deep, m_bits=16 if deep else 24)
    rng = np.random.default_rng(2)
    R, K, O = 10, 64, 4
    x = rng.integers(0, 256, (R, K))
    w = rng.integers(-128, 128, (O, K))
    bias = rng.integers(-1000, 1000, O)
    M = rng.integers(1, 1 << 12, O)
    cycles = {}
    for name, bits in [("constant", np.full(R, 8)), ("alternating", np.array([8, 2] * 5)),
                       ("every", np.array([1, 2, 3, 4, 5, 6, 7, 8, 4, 6]))]:
        dut = Engine(**dut_geom)
        tiles = ge.plan_dense(dut.geometry, w, bias, M, 14, 26)
        y, _, jobs = _run_dense(dut, tiles, x, bits, p_valid=1.0, p_ready=1.0)
        ey, _ = ge.reference_dense(x, w, bias, M, 14, 8, bits, "floor", AccumulatorSpec(26))
        _assert_equal(y, ey, name, x, bits)
        cycles[name] = jobs[0].stream_cycles
    assert len(set(cycles.values())) == 1, cycles
    # one group, 8 beats per row: the double-buffered input keeps the lanes busy, so the
    # stream takes the first load, R * 8 compute cycles and the pipeline latency (docs/rtl.md)
    kb = 8
    assert cycles["constant"] == kb + R * kb + Engine(**dut_geom).pipeline_latency, cycles
    record_property("vectors", 3 * R * O)


def test_fusion_engine_cycles_scale_with_precision(record_property):
    """A vector at b takes ceil(K_BEATS / P(b)) beats (P = 1, 4, 16, and 8 at b = 2 in
    round mode): a constant-precision stream takes exactly the first load, R * beats(b)
    compute cycles and the pipeline latency, so 8-bit streams take 4x / 16x the cycles of
    4- / 2-bit ones when K fills the beats."""
    dut_geom = dict(FUSION, max_out=2)
    rng = np.random.default_rng(5)
    R, K, O = 6, 64, 2
    x = rng.integers(0, 256, (R, K))
    w = rng.integers(-128, 128, (O, K))
    bias = rng.integers(-1000, 1000, O)
    M = rng.integers(1, 1 << 12, O)
    cycles = {}
    for mode, b in [("floor", 8), ("floor", 4), ("floor", 2), ("round", 2), ("round", 4)]:
        dut = Engine(**dut_geom)
        geom = dut.geometry
        tiles = ge.plan_dense(geom, w, bias, M, 14, 26, mode=mode)
        assert len(tiles) == 1 and tiles[0].groups == 1
        y, _, jobs = _run_dense(dut, tiles, x, np.full(R, b), p_valid=1.0, p_ready=1.0)
        ey, _ = ge.reference_dense(x, w, bias, M, 14, 8, b, mode, AccumulatorSpec(26))
        _assert_equal(y, ey, f"{mode} {b}", x, b)
        nb = geom.beats(geom.k_beats(K), b, mode)
        assert nb == -(-K // (geom.pes * geom.unit_terms(b, mode)))
        cycles[mode, b] = jobs[0].stream_cycles
        assert cycles[mode, b] == nb + R * nb + dut.pipeline_latency, (mode, b, cycles)
    lat = Engine(**dut_geom).pipeline_latency
    compute = {k: v - lat for k, v in cycles.items()}
    assert compute["floor", 8] == 4 * compute["floor", 4] == 16 * compute["floor", 2]
    assert compute["round", 2] == 2 * compute["floor", 2]
    record_property("vectors", 5 * R * O)


@pytest.mark.parametrize("geom", [SMALL, dict(SMALL, lanes=8, pes=4, max_out=16),
                                  dict(SMALL, deep_pipeline=True), FUSION],
                         ids=["chunked", "one-chunk", "chunked-deep", "fusion"])
def test_engine_residual_add(geom, record_property):
    dut = Engine(**geom)
    geom = dut.geometry
    rng = np.random.default_rng(4)
    R, K = 6, 20
    q1 = rng.integers(0, 256, (R, K))
    q2 = rng.integers(0, 256, (R, K))
    q1[0], q2[0] = 255, 255
    total = 0
    jobs = []
    consts = [AddConstants.from_scales(0.02, 0, 0.03, 0, 0.04, 0, IntFormat(8, False)),
              AddConstants(40000, -30000, 1 << 18, 16, IntFormat(8, False))]
    for c in consts:
        jobs.append(EngineRun(ge.plan_add(geom, c, K), beats=ge.add_input_beats(geom, q1, q2),
                              n_out=R * geom.k_beats(K)))
    run_engine(dut, jobs, seed=3)
    for c, j in zip(consts, jobs):
        got = ge.collect_add(geom, j.outs, R, K)
        np.testing.assert_array_equal(got, int_add(q1, q2, c))
        total += R * K
    record_property("vectors", total)


def _tiny_cnn(tmp_path):
    """A conv2d -> maxpool -> flatten -> linear network artifact (golden format)."""
    rng = np.random.default_rng(8)
    arrays = {
        "c1.w": rng.integers(-128, 128, (6, 1, 3, 3)).astype(np.int64),
        "c1.b": rng.integers(-2000, 2000, 6).astype(np.int64),
        "c1.M": rng.integers(1 << 10, 1 << 14, 6).astype(np.int64),
        "fc.w": rng.integers(-128, 128, (5, 6 * 2 * 2)).astype(np.int64),
        "fc.b": rng.integers(-5000, 5000, 5).astype(np.int64),
        "fc.M": np.ones(5, dtype=np.int64),
    }
    q = dict(bits=8, acc_width=26, overflow="wrap", rule="dyadic", relu=True)
    manifest = {
        "n": 8, "candidate_bits": [2, 4, 6, 8], "mode": "round",
        "input": {"shape": [1, 5, 5], "scale": 1.0 / 255, "zero_point": 0},
        "layers": [
            dict(name="conv1", type="conv2d", weight="c1.w", bias="c1.b", M="c1.M", S=18,
                 stride=1, padding=1, requant=True, clip=240, **q),
            dict(name="pool1", type="maxpool", k=2, stride=2),
            dict(name="flat", type="flatten"),
            dict(name="fc", type="linear", weight="fc.w", bias="fc.b", M="fc.M", S=0,
                 requant=False, **q),
        ],
    }
    save_network(tmp_path / "net", manifest, arrays)
    return load_network(tmp_path / "net")


@pytest.mark.parametrize("kind", [SMALL, FUSION], ids=["nested", "fusion"])
def test_engine_runs_network_layers_against_traces(kind, tmp_path, record_property):
    """conv2d (host im2col) and the final linear layer of a network, per-input precisions
    from run_network's bits matrix, compared with its "acc"/"output" traces."""
    net = _tiny_cnn(tmp_path)
    rng = np.random.default_rng(9)
    N = 4
    x = rng.integers(0, 256, (N, 1, 5, 5))
    bits = np.array([[8, 4], [2, 8], [6, 2], [4, 6]])   # [N, qlayers]: differs per input
    res = run_network(net, x, bits=bits, trace=True, impl="reference")
    # the engine supports exactly the network's B, as the generated dqt_engine does
    geo = dict(kind, max_out=8, candidates=(2, 4, 6, 8))
    dut = Engine(**geo)
    geom = dut.geometry
    count = 0
    # conv1: rows are im2col patches; every patch of input i carries bits[i, 0]
    tiles, w2d = ge.plan_network_layer(geom, net, "conv1")
    rows, shape = ge.conv_rows(res.traces["conv1"]["input"], 3, 3, 1, 1)
    row_bits = np.repeat(bits[:, 0], shape[1] * shape[2])
    y, _, _ = _run_dense(dut, tiles, rows, row_bits, seed=1)
    np.testing.assert_array_equal(ge.conv_from_rows(y, shape), res.traces["conv1"]["output"])
    count += y.size
    # fc: logits (requant off) equal the accumulator trace
    dut = Engine(**geo)
    tiles, _ = ge.plan_network_layer(geom, net, "fc")
    y, _, _ = _run_dense(dut, tiles, res.traces["fc"]["input"], bits[:, 1], seed=2)
    np.testing.assert_array_equal(y, res.traces["fc"]["acc"])
    np.testing.assert_array_equal(y, res.output)
    count += y.size
    record_property("vectors", count)


def test_engine_parameter_checks():
    with pytest.raises(DQTValueError, match="lanes=0 is outside"):
        Engine(lanes=0)
    with pytest.raises(DQTValueError, match="fusion=True needs n=8"):
        Engine(n=4, fusion=True)
    with pytest.raises(DQTValueError, match="deep_pipeline=False"):
        Engine(fusion=True, deep_pipeline=True)
    with pytest.raises(DQTValueError, match="fusion=1 must be true or false"):
        Engine(fusion=1)
    with pytest.raises(DQTValueError, match="weight_depth=4 must hold"):
        Engine(max_k=512, pes=8, weight_depth=4)
    with pytest.raises(DQTValueError, match="variant='mid'"):
        Engine(variant="mid")
    geom = Engine(**SMALL).geometry
    w = np.zeros((4, 100), dtype=np.int64)
    with pytest.raises(DQTValueError, match="K=100 needs 13 beats"):
        ge.plan_dense(geom, w, np.zeros(4), np.ones(4), 0, 20)
    w = np.zeros((4, 10), dtype=np.int64)
    with pytest.raises(DQTValueError, match="acc_width=40 is outside"):
        ge.plan_dense(geom, w, np.zeros(4), np.ones(4), 0, 40)
    with pytest.raises(DQTValueError, match="multipliers M must lie"):
        ge.plan_dense(geom, w, np.zeros(4), np.full(4, 1 << 30), 0, 20)
