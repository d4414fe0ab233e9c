# amaranth: UnusedElaboratable=no
"""The UART front end of the pin-level top (rtl.uart_bridge) in Amaranth's simulator: line
framing both ways, the status byte, unknown opcodes, and the frame sizes against the
engine's own port widths."""
from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import Shape
from amaranth.sim import Simulator

from rtl.engine import Engine
from rtl.uart_bridge import OP, STATUS_BITS, FpgaTop, FrameFormat, decode_out, encode_beat, \
    encode_chan, encode_weight

SMALL = {"lanes": 2, "pes": 3, "max_k": 12, "max_out": 4, "weight_depth": 8, "acc_max": 20,
         "m_bits": 12}
D = 4  # clocks per bit


def _width(v):
    return Shape.cast(v.shape()).width


@pytest.mark.parametrize("params", [SMALL, {"lanes": 2, "pes": 2, "max_k": 32, "max_out": 4,
                                             "weight_depth": 8, "fusion": True}])
def test_frame_sizes_cover_the_engine_ports(params):
    """The bridge slices frames with FrameFormat's widths: they must be the ports' widths
    (the precision-scalable engine's too: its bank address bits and packed beats)."""
    e = Engine(**params)
    f = FrameFormat(e.geometry)
    assert f.beat_bits == _width(e.i.payload)
    assert f.out_bits == _width(e.o.payload)
    assert f.waddr_bits == len(e.w_addr) and f.caddr_bits == len(e.c_addr)
    assert f.payload_bytes[OP["WEIGHT"]] * 8 >= len(e.w_addr) + _width(e.w_data)
    assert f.payload_bytes[OP["CHAN"]] * 8 >= len(e.c_addr) + _width(e.c_bias) + _width(e.c_m)


def test_encode_decode_fields():
    """Field packing against direct bit arithmetic (two's complement, element 0 lowest)."""
    f = FrameFormat(Engine(**SMALL).geometry)
    g = f.geom
    b = encode_beat(f, [1, 2, 255], [0, 7, 128], 6)
    v = int.from_bytes(b[1:], "little")
    assert b[0] == OP["BEAT"]
    assert [(v >> (8 * i)) & 255 for i in range(6)] == [1, 2, 255, 0, 7, 128]
    assert v >> 48 == 6
    w = encode_weight(f, 5, [[-1, 2, -128], [127, 0, -3]])
    v = int.from_bytes(w[2:], "little")
    assert w[1] == 5 and [((v >> (8 * i)) & 255) for i in range(6)] == [255, 2, 128, 127, 0, 253]
    c = encode_chan(f, 1, [-5, 6], [7, 4095])
    v = int.from_bytes(c[2:], "little")
    A = g.acc_max
    assert v & ((1 << A) - 1) == (1 << A) - 5 and (v >> A) & ((1 << A) - 1) == 6
    assert (v >> 2 * A) & 4095 == 7 and v >> (2 * A + 12) == 4095
    y = [-3, 9, -(1 << (A - 1))]
    raw = sum((yy & ((1 << A) - 1)) << (i * A) for i, yy in enumerate(y))
    raw |= 0b10 << (3 * A) | 5 << (3 * A + 2) | 1 << (3 * A + 2 + 4)
    assert decode_out(f, raw.to_bytes(f.out_bytes, "little")) == \
        {"y": y, "over": 2, "bits": 5, "last": 1}


def _run(body):
    top = FpgaTop(SMALL, family=None, divisor=D)
    sim = Simulator(top)

    async def clk(ctx):
        while True:
            ctx.set(top.clk_in, 1)
            await ctx.delay(0.5e-6)
            ctx.set(top.clk_in, 0)
            await ctx.delay(0.5e-6)

    async def send(ctx, data):
        for byte in data:
            for bit in [0] + [(byte >> i) & 1 for i in range(8)] + [1]:
                ctx.set(top.uart_rx, bit)
                await ctx.tick("por").repeat(D)

    async def recv(ctx, n, timeout=4000):
        out, t = [], 0
        while len(out) < n and t < timeout:
            if ctx.get(top.uart_tx) == 0:
                await ctx.tick("por").repeat(D // 2 + D)
                v = 0
                for i in range(8):
                    v |= ctx.get(top.uart_tx) << i
                    await ctx.tick("por").repeat(D)
                assert ctx.get(top.uart_tx) == 1, "stop bit"
                out.append(v)
            else:
                await ctx.tick("por")
                t += 1
        return out

    async def tb(ctx):
        await ctx.tick("por").repeat(40)
        await body(ctx, top, lambda d: send(ctx, d), lambda n: recv(ctx, n))

    sim.add_process(clk)
    sim.add_testbench(tb)
    sim.run()


def test_status_and_unknown_opcode():
    seen = []

    async def body(ctx, top, send, recv):
        await send(bytes([OP["STATUS"]]))
        seen.append(await recv(1))
        await send(bytes([0x77, OP["STATUS"]]))
        seen.append(await recv(1))
        seen.append(ctx.get(top.led))

    _run(body)
    assert seen[0] == [0]
    assert seen[1] == [STATUS_BITS["bad_opcode"]] and seen[2] == 1


def test_a_dense_row_over_the_line():
    """Registers, one weight row per group, the constants and one row's beats go in over
    the serial line; the output beats that come back equal golden's qdense (the whole
    networks run in cocotb_tests/test_uart_top.py under Verilator)."""
    from rtl.engine_protocol import dense_input_beats, plan_dense, reference_dense
    from golden.formats import AccumulatorSpec
    rng = np.random.default_rng(0)
    e = Engine(**SMALL)
    g, f = e.geometry, FrameFormat(e.geometry)
    K, O = 7, 4
    w = rng.integers(-128, 128, (O, K))
    x = rng.integers(0, 256, (1, K))
    bias, M = rng.integers(-200, 200, O), rng.integers(0, 4096, O)
    (tile,) = plan_dense(g, w, bias, M, 12, 20, mode="round")
    from rtl.uart_bridge import encode_cfg
    prog = b"".join([encode_cfg(a, v) for a, v in tile.cfg] +
                    [encode_weight(f, a, r) for a, r in tile.weights] +
                    [encode_chan(f, a, b, m) for a, b, m in tile.chans])
    beats = b"".join(encode_beat(f, b["x"], b["x2"], b["bits"])
                     for b in dense_input_beats(g, x, 6))
    got = []

    async def body(ctx, top, send, recv):
        await send(prog + beats)
        got.append(await recv(tile.groups * f.out_bytes))

    _run(body)
    raw = bytes(got[0])
    outs = [decode_out(f, raw[i * f.out_bytes:(i + 1) * f.out_bytes]) for i in range(tile.groups)]
    y = [o["y"][lane] for o in outs for lane in range(g.lanes)][:O]
    ref = reference_dense(x, w, bias, M, 12, 8, 6, "round", AccumulatorSpec(20))
    assert y == [int(v) for v in np.asarray(ref[0]).reshape(-1)]
    assert [o["last"] for o in outs] == [0] * (tile.groups - 1) + [1]
