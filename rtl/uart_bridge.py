# amaranth: UnusedElaboratable=no
"""The layer engine behind a UART: the pin-level top an FPGA board runs, and its byte protocol.

A board has a USB-serial bridge (iCEBreaker: FTDI channel B on pins 6/9; ULX3S: the FTDI on
L4/M1), so the host interface is a UART (8N1). :class:`HostBridge` turns a byte stream into
the engine's register, weight, constant and input-beat writes and the engine's output beats
into bytes; :class:`FpgaTop` puts the PLL, a power-on reset, :class:`UartRx`,
:class:`UartTx`, the bridge and :class:`rtl.engine.Engine` between the board's pins.

Frames (host to board), every field little-endian, widths from :class:`FrameFormat`::

    0x01 CFG     addr (1 byte), data (4 bytes)                        -> cfg_we
    0x02 WEIGHT  addr (wa bytes), w_data (lanes x pes x n bits)        -> w_we
    0x03 CHAN    addr (ca bytes), c_bias (lanes x acc_max bits) then c_m -> c_we
    0x04 BEAT    the engine's input payload (x, x2, bits)              -> one i beat

The same frames carry the precision-scalable engine (``fusion=True``): its weight address is
``4 * row + bank`` (two more bits), its beats carry ``x_fields = 4 pes`` fields of packed
b-bit codes, and a row takes fewer beats at lower b (:func:`rtl.engine_protocol.
dense_beat_arrays`; the host applies the nested conversion).
    0x05 STATUS  (no payload): the board answers one status byte

Board to host: each engine output beat as its payload bytes (``out_bytes``), and the status
byte (bit 0 busy, bit 1 sticky overflow, bit 2 unknown opcode seen, bit 3 receive overrun).
The host sends a row's beats and reads its output beats before it sends the next row, so the
engine never holds the bridge (and the receive FIFO never fills): :mod:`sim.uart_host`.
"""
from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import ClockDomain, ClockSignal, Elaboratable, Instance, Module, Signal, \
    Cat, Const
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from ._common import RTLParamError, bits_width, ceil_log2, check_int
from .engine import Engine
from .engine_protocol import EngineGeometry
from .fpga import TOP

__all__ = ["OP", "FrameFormat", "UartRx", "UartTx", "HostBridge", "FpgaTop", "PLLS", "TOP",
           "encode_cfg", "encode_weight", "encode_chan", "encode_beat", "decode_out",
           "STATUS_BITS"]

#: Frame opcodes.
OP = {"CFG": 0x01, "WEIGHT": 0x02, "CHAN": 0x03, "BEAT": 0x04, "STATUS": 0x05}
#: Status byte bits.
STATUS_BITS = {"busy": 1, "overflow": 2, "bad_opcode": 4, "overrun": 8}


def _nbytes(bits: int) -> int:
    return -(-int(bits) // 8)


@dataclass(frozen=True)
class FrameFormat:
    """Byte sizes of the frames for one engine geometry (host and bridge share it)."""
    geom: EngineGeometry

    @property
    def waddr_bits(self):
        return ceil_log2(max(2, self.geom.weight_addresses))

    @property
    def caddr_bits(self):
        return ceil_log2(max(2, self.geom.groups_max))

    @property
    def beat_bits(self):
        g = self.geom
        return 2 * g.x_fields * g.n + bits_width(g.n)

    @property
    def out_bits(self):
        g = self.geom
        return g.out_lanes * g.acc_max + g.lanes + bits_width(g.n) + 1

    @property
    def payload_bytes(self) -> dict:
        """Payload bytes per opcode (after the opcode byte)."""
        g = self.geom
        return {OP["CFG"]: 5,
                OP["WEIGHT"]: _nbytes(self.waddr_bits) + _nbytes(g.lanes * g.pes * g.n),
                OP["CHAN"]: _nbytes(self.caddr_bits) +
                _nbytes(g.lanes * (g.acc_max + g.m_bits)),
                OP["BEAT"]: _nbytes(self.beat_bits), OP["STATUS"]: 0}

    @property
    def out_bytes(self) -> int:
        return _nbytes(self.out_bits)


def _le(v: int, nbytes: int) -> bytes:
    return (int(v) & ((1 << (8 * nbytes)) - 1)).to_bytes(nbytes, "little")


def _pack(vals, width: int) -> int:
    """Elements (two's complement, ``width`` bits each) packed element 0 lowest."""
    out, mask = 0, (1 << width) - 1
    for i, v in enumerate(vals):
        out |= (int(v) & mask) << (i * width)
    return out


def encode_cfg(addr: int, data: int) -> bytes:
    return bytes([OP["CFG"], addr & 0xF]) + _le(data, 4)


def encode_weight(fmt: FrameFormat, addr: int, row) -> bytes:
    """``row[lane][j]``: the signed weights of weight row ``addr`` of every lane."""
    g = fmt.geom
    flat = [w for lane in row for w in lane]
    return bytes([OP["WEIGHT"]]) + _le(addr, _nbytes(fmt.waddr_bits)) + \
        _le(_pack(flat, g.n), _nbytes(g.lanes * g.pes * g.n))


def encode_chan(fmt: FrameFormat, addr: int, bias, m) -> bytes:
    """Per-channel constants of group ``addr``: ``bias[lane]``, ``m[lane]``."""
    g = fmt.geom
    v = _pack(bias, g.acc_max) | (_pack(m, g.m_bits) << (g.lanes * g.acc_max))
    return bytes([OP["CHAN"]]) + _le(addr, _nbytes(fmt.caddr_bits)) + \
        _le(v, _nbytes(g.lanes * (g.acc_max + g.m_bits)))


def encode_beat(fmt: FrameFormat, x, x2, bits: int) -> bytes:
    g = fmt.geom
    F = g.x_fields * g.n
    v = _pack(x, g.n) | (_pack(x2, g.n) << F) | (int(bits) << (2 * F))
    return bytes([OP["BEAT"]]) + _le(v, _nbytes(fmt.beat_bits))


def decode_out(fmt: FrameFormat, data: bytes) -> dict:
    """One output beat's bytes -> ``{"y": [out_lanes], "over", "bits", "last"}``."""
    g = fmt.geom
    v = int.from_bytes(data, "little")
    A = g.acc_max
    y = []
    for i in range(g.out_lanes):
        e = (v >> (i * A)) & ((1 << A) - 1)
        y.append(e - (1 << A) if e >> (A - 1) else e)
    p = g.out_lanes * A
    bw = bits_width(g.n)
    return {"y": y, "over": (v >> p) & ((1 << g.lanes) - 1),
            "bits": (v >> (p + g.lanes)) & ((1 << bw) - 1),
            "last": (v >> (p + g.lanes + bw)) & 1}


class UartRx(wiring.Component):
    """8N1 receiver: ``divisor`` clocks per bit, the line synchronised by two flip-flops,
    each bit sampled in its middle. ``o`` carries each received byte for one cycle (no
    back-pressure: the consumer is a FIFO); a byte whose stop bit is 0 is dropped."""

    def __init__(self, divisor: int):
        self._div = check_int("divisor", divisor, 4, 1 << 20)
        super().__init__({"rx": In(1, init=1), "o": Out(stream.Signature(8))})

    def elaborate(self, platform):
        m = Module()
        D = self._div
        s1, s2 = Signal(init=1), Signal(init=1)
        m.d.sync += [s1.eq(self.rx), s2.eq(s1)]
        timer = Signal(range(D))
        nbit = Signal(range(8))
        sh = Signal(8)
        m.d.sync += self.o.valid.eq(0)
        with m.FSM():
            with m.State("IDLE"):
                with m.If(~s2):
                    m.d.sync += timer.eq(D // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    m.d.sync += [timer.eq(D - 1), nbit.eq(0)]
                    m.next = "DATA"
                    with m.If(s2):          # a glitch, not a start bit
                        m.next = "IDLE"
            with m.State("DATA"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    m.d.sync += [sh.eq(Cat(sh[1:], s2)), timer.eq(D - 1), nbit.eq(nbit + 1)]
                    with m.If(nbit == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    m.d.sync += [self.o.payload.eq(sh), self.o.valid.eq(s2)]
                    m.next = "IDLE"
        return m


class UartTx(wiring.Component):
    """8N1 transmitter: ``divisor`` clocks per bit; ``i.ready`` while idle."""

    def __init__(self, divisor: int):
        self._div = check_int("divisor", divisor, 4, 1 << 20)
        super().__init__({"i": In(stream.Signature(8)), "tx": Out(1, init=1)})

    def elaborate(self, platform):
        m = Module()
        D = self._div
        sh = Signal(10, init=0x3FF)
        left = Signal(range(11))
        timer = Signal(range(D))
        m.d.comb += [self.tx.eq(sh[0]), self.i.ready.eq(left == 0)]
        with m.If(left == 0):
            with m.If(self.i.valid):
                m.d.sync += [sh.eq(Cat(Const(0, 1), self.i.payload, Const(1, 1))),
                             left.eq(10), timer.eq(D - 1)]
        with m.Else():
            m.d.sync += timer.eq(timer - 1)
            with m.If(timer == 0):
                m.d.sync += [sh.eq(Cat(sh[1:], Const(1, 1))), left.eq(left - 1),
                             timer.eq(D - 1)]
        return m


class HostBridge(wiring.Component):
    """Bytes in (``rx``, a FIFO's read side) and out (``tx``) <-> the engine's write ports,
    input stream and output stream (see the module docstring for the frames)."""

    def __init__(self, engine: Engine):
        self._eng = engine
        self.fmt = FrameFormat(engine.geometry)
        super().__init__({"rx": In(stream.Signature(8)), "tx": Out(stream.Signature(8)),
                          "overrun": In(1), "error": Out(1)})

    def elaborate(self, platform):
        m = Module()
        e, fmt = self._eng, self.fmt
        lens = fmt.payload_bytes
        maxlen = max(lens.values())
        # payload bytes shift in from the top: after L bytes they sit in the top 8L bits
        buf = Signal(8 * maxlen)
        op = Signal(8)
        cnt = Signal(range(maxlen + 1))
        need = Signal(range(maxlen + 1))
        bad = Signal()
        status_req = Signal()

        def payload(code):
            return buf[8 * (maxlen - lens[code]):]

        pc, pw, pch, pb = (payload(OP[k]) for k in ("CFG", "WEIGHT", "CHAN", "BEAT"))
        wa = 8 * _nbytes(fmt.waddr_bits)
        ca = 8 * _nbytes(fmt.caddr_bits)
        g = e.geometry
        m.d.comb += [
            e.cfg_addr.eq(pc[:4]), e.cfg_data.eq(pc[8:40]),
            e.w_addr.eq(pw[:wa]), e.w_data.as_value().eq(pw[wa:wa + g.lanes * g.pes * g.n]),
            e.c_addr.eq(pch[:ca]),
            e.c_bias.as_value().eq(pch[ca:ca + g.lanes * g.acc_max]),
            e.c_m.as_value().eq(pch[ca + g.lanes * g.acc_max:
                                    ca + g.lanes * (g.acc_max + g.m_bits)]),
            e.i.payload.as_value().eq(pb[:fmt.beat_bits]),
        ]
        with m.FSM(name="rxf"):
            with m.State("OP"):
                m.d.comb += self.rx.ready.eq(1)
                with m.If(self.rx.valid):
                    m.d.sync += [op.eq(self.rx.payload), cnt.eq(0)]
                    with m.Switch(self.rx.payload):
                        for code, n in lens.items():
                            with m.Case(code):
                                m.d.sync += need.eq(n)
                                m.next = "PAYLOAD" if n else "EXEC"
                        with m.Default():
                            m.d.sync += bad.eq(1)
            with m.State("PAYLOAD"):
                m.d.comb += self.rx.ready.eq(1)
                with m.If(self.rx.valid):
                    m.d.sync += [buf.eq(Cat(buf[8:], self.rx.payload)), cnt.eq(cnt + 1)]
                    with m.If(cnt == need - 1):
                        m.next = "EXEC"
            with m.State("EXEC"):
                m.next = "OP"
                with m.Switch(op):
                    with m.Case(OP["CFG"]):
                        m.d.comb += e.cfg_we.eq(1)
                    with m.Case(OP["WEIGHT"]):
                        m.d.comb += e.w_we.eq(1)
                    with m.Case(OP["CHAN"]):
                        m.d.comb += e.c_we.eq(1)
                    with m.Case(OP["BEAT"]):
                        m.d.comb += e.i.valid.eq(1)
                        with m.If(~e.i.ready):
                            m.next = "EXEC"
                    with m.Case(OP["STATUS"]):
                        m.d.sync += status_req.eq(1)
        # transmit: the status byte when asked, else the engine's output beats
        obuf = Signal(8 * fmt.out_bytes)
        ocnt = Signal(range(fmt.out_bytes + 1))
        overrun = Signal()
        with m.If(self.overrun):
            m.d.sync += overrun.eq(1)
        m.d.comb += self.error.eq(bad | overrun)
        with m.FSM(name="txf"):
            with m.State("IDLE"):
                with m.If(status_req):
                    m.d.comb += [self.tx.valid.eq(1),
                                 self.tx.payload.eq(Cat(e.busy, e.overflow, bad, overrun))]
                    with m.If(self.tx.ready):
                        m.d.sync += status_req.eq(0)
                with m.Elif(e.o.valid):
                    m.d.comb += e.o.ready.eq(1)
                    m.d.sync += [obuf.eq(e.o.payload.as_value()), ocnt.eq(0)]
                    m.next = "SEND"
            with m.State("SEND"):
                m.d.comb += [self.tx.valid.eq(1), self.tx.payload.eq(obuf[:8])]
                with m.If(self.tx.ready):
                    m.d.sync += [obuf.eq(obuf >> 8), ocnt.eq(ocnt + 1)]
                    with m.If(ocnt == fmt.out_bytes - 1):
                        m.next = "IDLE"
        return m


#: PLL settings per FPGA family: (input MHz, output MHz) -> primitive parameters.
PLLS = {
    # iCE40 SB_PLL40_PAD, 12 MHz -> 30 MHz: F_vco = 12 * (DIVF + 1) / (DIVR + 1) = 960 MHz
    # (533..1066), F_out = F_vco / 2^DIVQ = 30 MHz (icepll's choice for these clocks)
    "ice40": {"in_mhz": 12.0, "out_mhz": 30.0,
              "params": {"p_FEEDBACK_PATH": "SIMPLE", "p_DIVR": 0, "p_DIVF": 79, "p_DIVQ": 5,
                         "p_FILTER_RANGE": 1}},
    # ECP5 EHXPLLL, 25 MHz -> 80 MHz: F_out = 25 / CLKI_DIV * CLKFB_DIV = 80 MHz,
    # F_vco = F_out * CLKOP_DIV = 560 MHz (400..800)
    "ecp5": {"in_mhz": 25.0, "out_mhz": 80.0,
             "params": {"p_CLKI_DIV": 5, "p_CLKFB_DIV": 16, "p_CLKOP_DIV": 7,
                        "p_CLKOP_CPHASE": 3, "p_CLKOP_FPHASE": 0, "p_FEEDBK_PATH": "CLKOP",
                        "p_CLKOP_ENABLE": "ENABLED", "p_OUTDIVIDER_MUXA": "DIVA",
                        "p_PLLRST_ENA": "DISABLED", "p_INTFB_WAKE": "DISABLED",
                        "p_STDBY_ENABLE": "DISABLED", "p_DPHASE_SOURCE": "DISABLED"}},
}


class FpgaTop(Elaboratable):
    """Pins: ``clk_in`` (the board oscillator), ``uart_rx``, ``uart_tx``, ``led`` (error:
    an unknown opcode or a receive overrun). ``family``: "ice40" or "ecp5" puts that
    family's PLL between ``clk_in`` and the core clock; None runs the core on ``clk_in``
    (simulation, or a board whose oscillator is the core clock). ``baud``: line rate; the
    bit divisor is computed from the core clock: the PLL's output, else ``clock_mhz`` (the
    oscillator's); ``divisor`` overrides it (simulation: a few clocks)."""

    def __init__(self, engine_params: dict, family: str | None = None, baud: int = 115200,
                 divisor: int | None = None, rx_fifo: int = 64, clock_mhz: float = 12.0):
        if family is not None and family not in PLLS:
            raise RTLParamError(f"family={family!r} is not one of {sorted(PLLS)} or None")
        self.engine = Engine(**engine_params)
        self.family = family
        core_hz = (PLLS[family]["out_mhz"] if family else float(clock_mhz)) * 1e6
        self.divisor = int(divisor) if divisor is not None else round(core_hz / baud)
        check_int("divisor", self.divisor, 4, 1 << 20)
        self.rx_fifo = check_int("rx_fifo", rx_fifo, 2, 4096)
        self.fmt = FrameFormat(self.engine.geometry)
        self.clk_in = Signal()
        self.uart_rx = Signal(init=1)
        self.uart_tx = Signal(init=1)
        self.led = Signal()

    @property
    def ports(self):
        return [self.clk_in, self.uart_rx, self.uart_tx, self.led]

    def verilog(self) -> str:
        """Verilog of this top as module :data:`TOP` (no source locations: reproducible)."""
        from .generate import to_verilog
        return to_verilog(self, TOP, ports=self.ports)

    def elaborate(self, platform):
        m = Module()
        core_clk, lock = Signal(), Signal()
        if self.family == "ice40":
            m.submodules.pll = Instance("SB_PLL40_PAD", **PLLS["ice40"]["params"],
                                        i_PACKAGEPIN=self.clk_in, o_PLLOUTGLOBAL=core_clk,
                                        i_RESETB=Const(1), i_BYPASS=Const(0), o_LOCK=lock)
        elif self.family == "ecp5":
            m.submodules.pll = Instance("EHXPLLL", **PLLS["ecp5"]["params"],
                                        i_CLKI=self.clk_in, o_CLKOP=core_clk,
                                        i_CLKFB=core_clk, i_RST=Const(0), i_STDBY=Const(0),
                                        i_PHASESEL0=Const(0), i_PHASESEL1=Const(0),
                                        i_PHASEDIR=Const(0), i_PHASESTEP=Const(0),
                                        i_PHASELOADREG=Const(0), i_PLLWAKESYNC=Const(0),
                                        i_ENCLKOP=Const(0), o_LOCK=lock)
        else:
            m.d.comb += [core_clk.eq(self.clk_in), lock.eq(1)]
        # power-on reset: held until the PLL locks and 15 more cycles have passed
        m.domains.por = ClockDomain(reset_less=True)
        m.domains.sync = sync = ClockDomain()
        por = Signal(4)
        m.d.comb += [ClockSignal("por").eq(core_clk), ClockSignal("sync").eq(core_clk)]
        with m.If(~lock):
            m.d.por += por.eq(0)
        with m.Elif(~por.all()):
            m.d.por += por.eq(por + 1)
        m.d.comb += sync.rst.eq(~por.all())
        m.submodules.engine = e = self.engine
        m.submodules.rx = rx = UartRx(self.divisor)
        m.submodules.tx = tx = UartTx(self.divisor)
        m.submodules.fifo = fifo = SyncFIFOBuffered(width=8, depth=self.rx_fifo)
        m.submodules.bridge = br = HostBridge(e)
        m.d.comb += [
            rx.rx.eq(self.uart_rx), self.uart_tx.eq(tx.tx),
            fifo.w_data.eq(rx.o.payload), fifo.w_en.eq(rx.o.valid),
            br.overrun.eq(rx.o.valid & ~fifo.w_rdy),
            br.rx.valid.eq(fifo.r_rdy), br.rx.payload.eq(fifo.r_data),
            fifo.r_en.eq(br.rx.ready),
            tx.i.valid.eq(br.tx.valid), tx.i.payload.eq(br.tx.payload),
            br.tx.ready.eq(tx.i.ready),
            self.led.eq(br.error),
        ]
        return m
