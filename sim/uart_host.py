# amaranth: UnusedElaboratable=no
"""Host driver of the FPGA top (:class:`rtl.uart_bridge.FpgaTop`): the layer engine over a
serial line, byte for byte the frames of :mod:`rtl.uart_bridge`.

:class:`UartEngine` has the driver interface of :mod:`sim.network_check` (``load_tile``,
``run_dense``, ``run_add``, ``geom``, ``cycles_busy``), so the one whole-network check runs
through the pin-level top unchanged. The line is a transport with ``xfer(data, n_out) ->
bytes``: :class:`SimLine` (the Verilated top, its serial pins driven from C++ by
``sim/uart_driver.cpp``) or :class:`SerialLine` (a board on a serial port, with pyserial).

Flow control: the host sends one row's beats, then reads that row's output beats before it
sends the next row, so the engine never stalls the bridge and the board's receive FIFO never
fills; the same holds for register, weight and constant writes, which only go to an idle
engine (the host reads every output first).
"""
from __future__ import annotations

import ctypes
import os
from pathlib import Path

import numpy as np

from golden.formats import DQTValueError
from rtl.engine_protocol import EngineGeometry, add_input_beats, collect_add, collect_dense, \
    dense_input_beats, plan_add
from rtl.uart_bridge import OP, STATUS_BITS, TOP, FpgaTop, FrameFormat, decode_out, encode_beat, \
    encode_cfg, encode_chan, encode_weight

from . import runner
from .network_check import SyncDriver

__all__ = ["UartEngine", "SimLine", "SerialLine", "DRIVER_SOURCE", "TOP_NAME"]

DRIVER_SOURCE = Path(__file__).resolve().with_name("uart_driver.cpp")
TOP_NAME = TOP


class SimLine:
    """The pin-level top under Verilator (no PLL: ``clk_in`` is the core clock), its serial
    line at ``divisor`` clocks per bit. ``source``: Verilog file(s) to build instead of the
    generated top (a synthesized netlist and its cell models, :func:`rtl.fpga.gate_netlist`),
    with ``defines`` and an ``include`` directory for them."""

    def __init__(self, engine_params: dict, divisor: int = 4, source=None, defines=(),
                 include=None):
        from .batch import _LIB_NAME, verilate_shared
        reason = runner.missing_reason("verilator")
        if reason:
            raise runner.SimulatorError(reason)
        self.top = FpgaTop(engine_params, family=None, divisor=divisor)
        self.divisor = divisor
        self.geom = self.top.engine.geometry
        gen = {} if source is not None else {f"{TOP_NAME}.v": self.top.verilog()}
        args = ["--cc", "--exe", "--build", "-O3", "--top-module", TOP_NAME, "-j", "2",
                "-CFLAGS", "-fPIC", "-LDFLAGS", "-shared", "-o", _LIB_NAME] + \
            [f"-Wno-{w}" for w in runner.VERILATOR_WAIVERS] + \
            (["-Wno-fatal", "-Wno-lint", "-Wno-style"] if source else []) + \
            [f"-D{d}" for d in defines] + ([f"-I{include}"] if include else [])
        sources = [] if source is None else \
            ([source] if isinstance(source, (str, Path)) else list(source))
        self.library = verilate_shared(TOP_NAME, TOP_NAME, sources, gen,
                                       DRIVER_SOURCE, args, os.environ.get("DQT_BATCH_OPT", "-O1"),
                                       "uart")
        lib = ctypes.CDLL(str(self.library))
        vp, i64 = ctypes.c_void_p, ctypes.c_int64
        lib.dqt_uart_open.restype = vp
        lib.dqt_uart_open.argtypes = [ctypes.c_int]
        lib.dqt_uart_close.argtypes = [vp]
        lib.dqt_uart_cycle.restype = ctypes.c_uint64
        lib.dqt_uart_cycle.argtypes = [vp]
        lib.dqt_uart_framing_errors.restype = i64
        lib.dqt_uart_framing_errors.argtypes = [vp]
        lib.dqt_uart_led.argtypes = [vp]
        lib.dqt_uart_xfer.restype = i64
        lib.dqt_uart_xfer.argtypes = [vp, ctypes.c_char_p, i64, ctypes.c_char_p, i64, i64]
        self._lib = lib
        self._h = lib.dqt_uart_open(divisor)

    @property
    def cycle(self) -> int:
        return int(self._lib.dqt_uart_cycle(self._h))

    @property
    def led(self) -> bool:
        return bool(self._lib.dqt_uart_led(self._h))

    def xfer(self, data: bytes, n_out: int, max_cycles: int | None = None) -> bytes:
        # generous: every byte in and out takes 10 bit times, plus the engine's own work
        if max_cycles is None:
            max_cycles = 20 * self.divisor * (len(data) + n_out) + 100_000
        buf = ctypes.create_string_buffer(max(1, n_out))
        got = self._lib.dqt_uart_xfer(self._h, bytes(data), len(data), buf, n_out, max_cycles)
        if self._lib.dqt_uart_framing_errors(self._h):
            raise AssertionError("the board sent a byte without its stop bit")
        return buf.raw[:got]

    def close(self):
        if getattr(self, "_h", None):
            self._lib.dqt_uart_close(self._h)
            self._h = None

    def __del__(self):
        self.close()


class SerialLine:
    """A board on a serial port (pyserial): ``port`` e.g. /dev/ttyUSB1, ``baud`` the rate the
    bitstream was built for."""

    def __init__(self, port: str, baud: int = 115200, timeout: float = 5.0):
        try:
            import serial
        except ImportError:
            raise DQTValueError("talking to a board needs pyserial: pip install pyserial") from None
        self._s = serial.Serial(port, baud, timeout=timeout)

    def xfer(self, data: bytes, n_out: int) -> bytes:
        self._s.write(bytes(data))
        return self._s.read(n_out)

    def close(self):
        self._s.close()


class UartEngine(SyncDriver):
    """The layer engine behind the pin-level top, driven through ``line`` (``geom``: the
    engine's :class:`EngineGeometry`)."""

    def __init__(self, geom: EngineGeometry, line):
        self.geom = geom
        self.fmt = FrameFormat(geom)
        self.line = line
        self._busy = 0

    @property
    def cycles_busy(self) -> int:
        """Line clock cycles spent streaming rows (a simulated line), else 0."""
        return self._busy

    def _xfer(self, data: bytes, n_out: int) -> bytes:
        got = self.line.xfer(data, n_out)
        if len(got) != n_out:
            raise AssertionError(f"the board answered {len(got)} of {n_out} bytes "
                                 f"(status {self.status()})")
        return got

    def status(self) -> dict:
        b = self.line.xfer(bytes([OP["STATUS"]]), 1)
        if len(b) != 1:
            raise AssertionError("the board did not answer the status request")
        return {k: bool(b[0] & v) for k, v in STATUS_BITS.items()}

    def configure(self, cfg) -> None:
        self._xfer(b"".join(encode_cfg(a, v) for a, v in cfg), 0)

    def load(self, tile) -> None:
        data = [encode_cfg(a, v) for a, v in tile.cfg]
        data += [encode_weight(self.fmt, a, row) for a, row in tile.weights]
        data += [encode_chan(self.fmt, g, b, m) for g, b, m in tile.chans]
        self._xfer(b"".join(data), 0)

    def _stream(self, beats, n_out_per, counts):
        """Send ``beats`` row by row (``counts``: each row's beats), reading ``n_out_per``
        output beats after each: the decoded output beats."""
        outs = []
        ob = self.fmt.out_bytes
        c0 = getattr(self.line, "cycle", 0)
        i = 0
        for c in counts:
            data = b"".join(encode_beat(self.fmt, b["x"], b["x2"], b["bits"])
                            for b in beats[i:i + c])
            i += c
            raw = self._xfer(data, n_out_per * ob)
            outs += [decode_out(self.fmt, raw[k * ob:(k + 1) * ob]) for k in range(n_out_per)]
        self._busy += getattr(self.line, "cycle", 0) - c0
        return outs

    def dense(self, tile, rows, bits):
        rows = np.asarray(rows, dtype=np.int64)
        beats = dense_input_beats(self.geom, rows, bits, tile.mode)
        # a row's beats: k_beats, or fewer at lower b in the fusion engine
        counts = [self.geom.beats(tile.k_beats, int(b), tile.mode)
                  for b in np.broadcast_to(np.asarray(bits), (len(rows),))]
        outs = self._stream(beats, tile.groups, counts)
        y, over = collect_dense(self.geom, tile, outs, len(rows))
        return y, over, np.zeros_like(y)

    def add(self, constants, q1, q2):
        g = self.geom
        q1 = np.asarray(q1, dtype=np.int64)
        a, b = q1.reshape(-1), np.asarray(q2, dtype=np.int64).reshape(-1)
        K = g.pes * g.kb_max
        R = -(-a.size // K)
        A = np.zeros((R, K), dtype=np.int64)
        Bv = np.zeros((R, K), dtype=np.int64)
        A.reshape(-1)[:a.size], Bv.reshape(-1)[:b.size] = a, b
        self.configure(plan_add(g, constants, K))
        beats = add_input_beats(g, A, Bv)
        outs = self._stream(beats, 1, [1] * len(beats))
        y = collect_add(g, outs, R, K).reshape(-1)[:a.size].reshape(q1.shape)
        return y, np.zeros_like(y)

