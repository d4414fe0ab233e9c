"""Layer engine: an array of nested dot-product lanes with weight memory, per-layer
configuration registers, streaming input/output and the requantizer at the output.

The cycle-level protocol is specified in ``docs/rtl.md`` (section "Layer engine"); the
host-side convention (register values, weight rows, beats, reassembly) is modelled in
:mod:`rtl.engine_protocol`, which the tests and the cocotb testbenches share.
"""
from __future__ import annotations

from types import SimpleNamespace

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .engine_protocol import CFG, FLAG, FUSION_SIGMA, EngineGeometry, fusion_planes, \
    fusion_unit_terms

from ._common import RTLParamError, bits_width, ceil_log2, check_candidates, check_choice, \
    check_int, check_n, clamp, materialize, nested_shift_comb, overflow_policy, policy_bounds, \
    round_half, shift_or_zero, sum_tree
from .fusion_mac import fusion_dot
from .nested_mac import VARIANTS, shift_left_by_bits

__all__ = ["Engine", "CFG", "FLAG"]

class Engine(wiring.Component):
    """Array of ``lanes`` dot-product lanes, ``pes`` nested MACs each.

    One input vector of K activation codes arrives as ``K_BEATS`` beats of ``pes`` codes
    (host zero-pads K). The engine buffers it (two banks: the next vector loads while the
    current one computes) and, for each of ``GROUPS`` output groups, streams its beats
    against the weight rows of every lane, so each lane computes one output channel::

        acc[c] = bias[c] + sum_k x_b[k] * w_b[c, k] << 2(n - b)     (golden qdense_acc)
        y[c]   = clamp((acc'[c] * M[c] + 2^(S-1)) >> S, 0, CLIP_HI)  (golden requantize)

    with acc' the declared-width (``ACC_WIDTH``) wrap or saturate result and a per-channel
    overflow flag. The precision b travels with each vector (``bits`` of its first beat),
    so consecutive vectors may use different precisions at no cost in cycles.
    In ADD mode the engine is the residual add (golden ``int_add``): each beat carries
    ``pes`` code pairs (``x``, ``x2``) and yields ``pes`` results
    ``clamp(round((M1 x + M2 x2 + M3) / 2^S), 0, 2^n - 1)``, computed ``add_par =
    min(pes, lanes)`` pairs per cycle (``add_cycles_per_beat`` cycles per beat).

    Channel c of a group g is lane ``c - g * lanes``; weight row ``g * K_BEATS + j`` of a
    lane holds the ``pes`` weights of input beat j. Conv2d runs as an im2col stream built by
    the host; pooling and flatten are host steps.

    Parameters
    ----------
    n : int
        Master width (2..16).
    lanes : int
        Output channels computed in parallel (1..64).
    pes : int
        Products per lane per cycle = activation codes per input beat (1..64).
    max_k : int
        Longest input vector; the input buffer holds ``kb_max = ceil(max_k / pes)`` beats
        per bank and the accumulator guard bits cover it.
    max_out : int
        Most output channels resident at once (``groups_max = ceil(max_out / lanes)``).
    weight_depth : int
        Weight rows per lane; ``K_BEATS * GROUPS`` must not exceed it.
    acc_max : int
        Widest declared accumulator (bias and the output ``y`` fields have this width).
    m_bits : int
        Width of the unsigned per-channel multiplier M.
    variant : "right" or "msb"
        MAC organisation (see :class:`rtl.nested_mac.NestedMac`); both are bit-identical.
    candidates : iterable of int or None
        Supported precisions (default 1..n); other ``bits`` values mean full precision.
    add_bits : int
        Signed width of the residual-add constants M1..M3 (the low bits of the register).
    deep_pipeline : bool
        Four more registers in dense mode (the memories' read data, the shifted operands,
        the products, and val x M as two registered partial products: ``pipeline_latency``
        13 instead of 9) and two in add mode (the selected operand pair, the two products
        with M1 and M2), for FPGAs whose
        block RAM clock-to-out and multiplier delay fill a cycle each (the ``ecp5-25k``
        preset).
    fusion : bool
        Precision-scalable lanes (n = 8): each of a lane's ``pes`` PEs is a fusion unit, the
        grid of 2-bit bricks of :class:`rtl.fusion_mac.FusionMac`, doing
        ``fusion_unit_terms(8, b, mode)`` products per beat (1 at b in {5..8}, 4 at b in
        {3, 4}, 16 at b <= 2; 8 at b = 2 in ``round`` mode), so a vector at b takes
        ``ceil(K_BEATS / that)`` beats. The weights are stored as 2-bit digit planes in four
        banks and only the planes b needs are read; the host sends the activations as
        packed nested b-bit codes (docs/rtl.md, "The fusion engine").

    Members
    -------
    i : In(stream.Signature(StructLayout({"x": ArrayLayout(unsigned(n), pes),
        "x2": ArrayLayout(unsigned(n), pes), "bits": bits_width})))
    o : Out(stream.Signature(StructLayout({"y": ArrayLayout(signed(acc_max), out_lanes),
        "over": unsigned(lanes), "bits": bits_width, "last": 1})))
        Dense: one beat per group, ``y[l]`` is channel ``g*lanes + l`` (fields l >= lanes
        are 0); ``last`` marks the vector's last group. Add: one beat per input beat.
    cfg_we, cfg_addr, cfg_data : In(1), In(4), In(32)
        Register write (see :data:`CFG`).
    w_we, w_addr, w_data : In(1), In(range(weight_depth)), In(ArrayLayout(ArrayLayout(
        signed(n), pes), lanes))
        Weight row write: row ``w_addr`` of every lane at once (``w_data[lane][j]``).
    c_we, c_addr, c_bias, c_m : In(1), In(range(groups_max)), In(ArrayLayout(signed(acc_max),
        lanes)), In(ArrayLayout(unsigned(m_bits), lanes))
        Per-channel constants of group ``c_addr``, every lane at once.
    busy : Out(1)
        A vector is buffered or in flight; configuration and weights may change only while
        it is 0.
    overflow : Out(1)
        Sticky: any output channel overflowed its declared width since the last CLEAR.
    """

    def __init__(self, n=8, lanes=2, pes=8, max_k=512, max_out=64, weight_depth=64,
                 acc_max=32, m_bits=31, variant="right", candidates=None, add_bits=32,
                 deep_pipeline=False, fusion=False):
        self._n = check_n(n)
        self._lanes = check_int("lanes", lanes, 1, 64)
        self._pes = check_int("pes", pes, 1, 64)
        self._max_k = check_int("max_k", max_k, 1, 1 << 16)
        self._max_out = check_int("max_out", max_out, 1, 1 << 12)
        self._weight_depth = check_int("weight_depth", weight_depth, 1, 1 << 16)
        self._acc_max = check_int("acc_max", acc_max, 2, 48)
        self._m_bits = check_int("m_bits", m_bits, 1, 40)
        self._add_bits = check_int("add_bits", add_bits, 2, 32)
        self._variant = check_choice("variant", variant, VARIANTS)
        self._candidates = check_candidates(candidates, self._n)
        if not isinstance(deep_pipeline, bool):
            raise RTLParamError(f"deep_pipeline={deep_pipeline!r} must be true or false")
        self._deep = deep_pipeline
        if not isinstance(fusion, bool):
            raise RTLParamError(f"fusion={fusion!r} must be true or false")
        self._fusion = fusion
        if fusion and (self._n != 8 or self._variant != "right" or deep_pipeline):
            raise RTLParamError(f"fusion=True needs n=8 (got {self._n}), variant='right' (got "
                                f"{self._variant!r}) and deep_pipeline=False (got {deep_pipeline})")
        rows = self.geometry.chunks(self.kb_max) if fusion else self.kb_max
        if rows > self._weight_depth:
            raise RTLParamError(f"weight_depth={weight_depth} must hold at least one group of "
                                f"{rows} rows (max_k / pes" + (" / 4)" if fusion else ")"))
        n_, P, L = self._n, self._pes, self._lanes
        XF = self.geometry.x_fields
        bw = bits_width(n_)
        lay_i = data.StructLayout({"x": data.ArrayLayout(unsigned(n_), XF),
                                   "x2": data.ArrayLayout(unsigned(n_), XF),
                                   "bits": unsigned(bw)})
        lay_o = data.StructLayout({"y": data.ArrayLayout(signed(self._acc_max), self.out_lanes),
                                   "over": unsigned(L), "bits": unsigned(bw), "last": 1})
        super().__init__({
            "i": In(stream.Signature(lay_i)),
            "o": Out(stream.Signature(lay_o)),
            "cfg_we": In(1), "cfg_addr": In(4), "cfg_data": In(32),
            "w_we": In(1),
            "w_addr": In(range(max(2, self.geometry.weight_addresses))),
            "w_data": In(data.ArrayLayout(data.ArrayLayout(signed(n_), P), L)),
            "c_we": In(1), "c_addr": In(range(max(2, self.groups_max))),
            "c_bias": In(data.ArrayLayout(signed(self._acc_max), L)),
            "c_m": In(data.ArrayLayout(unsigned(self._m_bits), L)),
            "busy": Out(1), "overflow": Out(1),
        })

    n = property(lambda self: self._n)
    lanes = property(lambda self: self._lanes)
    pes = property(lambda self: self._pes)
    max_k = property(lambda self: self._max_k)
    max_out = property(lambda self: self._max_out)
    weight_depth = property(lambda self: self._weight_depth)
    acc_max = property(lambda self: self._acc_max)
    m_bits = property(lambda self: self._m_bits)
    add_bits = property(lambda self: self._add_bits, doc="signed width of ADD_M1..ADD_M3")
    variant = property(lambda self: self._variant)
    candidates = property(lambda self: self._candidates)
    kb_max = property(lambda self: -(-self._max_k // self._pes),
                      doc="input beats per vector at most (input buffer bank depth)")
    groups_max = property(lambda self: -(-self._max_out // self._lanes),
                          doc="output groups resident at once (channel memory depth)")
    out_lanes = property(lambda self: max(self._lanes, self._pes),
                         doc="``y`` fields per output beat (lanes in dense, pes in add mode)")
    exact_width = property(lambda self: max(self._acc_max, 2 * self._n + ceil_log2(self._max_k))
                           + 1, doc="internal accumulator width (declared width + guard bits)")
    macs_per_cycle = property(lambda self: self._lanes * self._pes)
    deep_pipeline = property(lambda self: self._deep)
    fusion = property(lambda self: self._fusion)
    pipeline_latency = property(lambda self: 13 if self._deep else 9,
                                doc="cycles from issuing a group's last beat to its output "
                                "beat (dense mode, no back-pressure)")
    add_par = property(lambda self: min(self._pes, self._lanes),
                       doc="element pairs the residual add computes per cycle")
    add_cycles_per_beat = property(lambda self: -(-self._pes // self.add_par) + 3
                                   + 2 * self._deep,
                                   doc="cycles one add beat occupies (accept + chunks)")
    add_latency = property(lambda self: -(-self._pes // self.add_par) + 4 + 2 * self._deep,
                           doc="cycles from an accepted add beat to its output beat")
    latency = property(lambda self: self.pipeline_latency, doc="same as pipeline_latency")

    @property
    def geometry(self) -> EngineGeometry:
        """The parameters the host convention (:mod:`rtl.engine_protocol`) depends on."""
        return EngineGeometry(self._n, self._lanes, self._pes, self._max_k, self._max_out,
                              self._weight_depth, self._acc_max, self._m_bits,
                              None if self._candidates == tuple(range(1, self._n + 1))
                              else self._candidates, self._add_bits, self._fusion)

    def elaborate(self, platform):
        """The pipeline, stage by stage (see the module docstring for the schedule): the
        configuration registers, the memories, the loader, the sequencer (S0), operand read
        and products (S1), accumulation (S2), overflow policy (S3), multiply by M (S4), the
        residual-add datapath and the output register (S5)."""
        m = Module()
        cfg = self._configuration(m)
        mem = self._memories(m)
        # global stall: every pipeline register and read port advances together
        adv = Signal()
        m.d.comb += adv.eq(~self.o.valid | self.o.ready)
        for rp in (mem.wrp if self._fusion else [mem.wrp]) + [mem.crp, mem.irp]:
            m.d.comb += rp.en.eq(adv)
        ld = self._loader(m, cfg, mem)
        sq = self._sequencer(m, cfg, mem, ld, adv)
        s2 = self._products(m, cfg, mem, ld, sq, adv)
        s3 = self._accumulate(m, mem, s2, adv)
        s5 = self._round_stages(m, cfg, self._requant_operands(m, cfg, s3, adv), adv)
        ad = self._add_mode(m, cfg, adv)
        self._output(m, cfg, ld, s2, s5, ad, adv)
        return m

    def _configuration(self, m):
        """Configuration registers (one ``cfg_we`` write per cycle) and the flags."""
        n, A, KB, G = self._n, self._acc_max, self.kb_max, self.groups_max
        k_beats = Signal(range(KB + 1), init=1)
        groups = Signal(range(G + 1), init=1)
        shift = Signal(6)
        clip_hi = Signal(n, init=(1 << n) - 1)
        flags = Signal(4, init=FLAG["REQUANT"])
        acc_w = Signal(range(A + 1), init=A)
        add_m = [Signal(signed(self._add_bits), name=f"add_m{j + 1}") for j in range(3)]
        clear = Signal()
        # plain address compares rather than a case statement: no incomplete-case latch
        for reg, addr in ((k_beats, 0), (groups, 1), (shift, 2), (clip_hi, 3), (flags, 4),
                          (acc_w, 5), (add_m[0], 6), (add_m[1], 7), (add_m[2], 8)):
            with m.If(self.cfg_we & (self.cfg_addr == addr)):
                m.d.sync += reg.eq(self.cfg_data)
        # K_BEATS - 1 and GROUPS - 1 kept beside them (written in the same cycle): the
        # sequencer's and loader's end-of-row compares then have no subtractor in front
        kb_last = Signal(range(-1, KB + 1), init=0)
        g_last = Signal(range(-1, G + 1), init=0)
        with m.If(self.cfg_we & (self.cfg_addr == 0)):
            m.d.sync += kb_last.eq(self.cfg_data[:len(k_beats)] - 1)
        with m.If(self.cfg_we & (self.cfg_addr == 1)):
            m.d.sync += g_last.eq(self.cfg_data[:len(groups)] - 1)
        m.d.comb += clear.eq(self.cfg_we & (self.cfg_addr == CFG["CLEAR"]))
        # fusion: weight rows per bank per group, ceil(K_BEATS / 4)
        chunks = Signal(range(-(-KB // 4) + 1), name="chunks", init=1)
        if self._fusion:
            with m.If(self.cfg_we & (self.cfg_addr == 0)):
                m.d.sync += chunks.eq(((self.cfg_data[:len(k_beats)] - 1) >> 2) + 1)
        return SimpleNamespace(k_beats=k_beats, groups=groups, shift=shift, clip_hi=clip_hi,
                               kb_last=kb_last, g_last=g_last, chunks=chunks,
                               acc_w=acc_w, add_m=add_m, clear=clear, f_requant=flags[0],
                               f_sat=flags[1], f_round=flags[2], f_add=flags[3])

    def _memories(self, m):
        """Weight rows (one row = one weight row for every lane, a single wide write), the
        per-channel constants and the double-buffered input rows, with their ports."""
        n, P, L, A, KB, G = (self._n, self._pes, self._lanes, self._acc_max, self.kb_max,
                             self.groups_max)
        wshape = data.ArrayLayout(data.ArrayLayout(signed(n), P), L)
        if self._fusion:
            # four banks of digit-plane rows (FUSION_SIGMA), bank = the low 2 address bits
            wrp = []
            for bank in range(4):
                wmem = Memory(shape=wshape, depth=self._weight_depth, init=[])
                m.submodules[f"wmem{bank}"] = wmem
                wwp = wmem.write_port()
                wrp.append(wmem.read_port())
                m.d.comb += [wwp.addr.eq(self.w_addr[2:]), wwp.data.eq(self.w_data),
                             wwp.en.eq(self.w_we & (self.w_addr[:2] == bank))]
        else:
            wmem = Memory(shape=wshape, depth=self._weight_depth, init=[])
            m.submodules.wmem = wmem
            wwp = wmem.write_port()
            wrp = wmem.read_port()
            m.d.comb += [wwp.addr.eq(self.w_addr), wwp.data.eq(self.w_data),
                         wwp.en.eq(self.w_we)]
        chan_shape = data.StructLayout({"bias": data.ArrayLayout(signed(A), L),
                                        "m": data.ArrayLayout(unsigned(self._m_bits), L)})
        cmem = Memory(shape=chan_shape, depth=max(2, G), init=[])
        m.submodules.cmem = cmem
        cwp = cmem.write_port()
        crp = cmem.read_port()
        m.d.comb += [cwp.addr.eq(self.c_addr), cwp.data.bias.eq(self.c_bias),
                     cwp.data.m.eq(self.c_m), cwp.en.eq(self.c_we)]
        ibuf = Memory(shape=data.ArrayLayout(unsigned(n), self.geometry.x_fields),
                      depth=2 * KB, init=[])
        m.submodules.ibuf = ibuf
        iwp = ibuf.write_port()
        irp = ibuf.read_port()
        return SimpleNamespace(wrp=wrp, crp=crp, iwp=iwp, irp=irp)

    def _loader(self, m, cfg, mem):
        """Dense-mode loader: input beats into the free input bank, with their precision."""
        n, KB = self._n, self.kb_max
        wr_bank = Signal()
        wr_beat = Signal(range(KB))
        full = [Signal(name=f"bank{b}_full") for b in range(2)]
        bank_bits = [Signal(bits_width(n), name=f"bank{b}_bits") for b in range(2)]
        wr_full = Mux(wr_bank, full[1], full[0])
        load_ok = ~cfg.f_add & ~wr_full
        load = self.i.valid & load_ok
        m.d.comb += [mem.iwp.addr.eq((wr_bank * KB) + wr_beat),
                     mem.iwp.data.eq(self.i.payload.x), mem.iwp.en.eq(load)]
        load_done = Signal()
        bank_cls = []
        kb_last = cfg.kb_last
        if self._fusion:
            # the vector's beat count follows its precision class (taken from its first beat)
            cls_in = self._class_of(m, self.i.payload.bits, cfg.f_round, "ld_cls_in")
            ld_cls = Signal.like(cls_in, name="ld_cls")
            bank_cls = [Signal.like(cls_in, name=f"bank{b}_cls") for b in range(2)]
            kb_last = self._kb_last_of(cfg, Mux(wr_beat == 0, cls_in, ld_cls))
            with m.If(load & (wr_beat == 0)):
                m.d.sync += ld_cls.eq(cls_in)
                for b in range(2):
                    with m.If(wr_bank == b):
                        m.d.sync += bank_cls[b].eq(cls_in)
        with m.If(load):
            with m.If(wr_beat == 0):
                for b in range(2):
                    with m.If(wr_bank == b):
                        m.d.sync += bank_bits[b].eq(self.i.payload.bits)
            with m.If(wr_beat == kb_last):
                m.d.comb += load_done.eq(1)
                m.d.sync += [wr_beat.eq(0), wr_bank.eq(~wr_bank)]
            with m.Else():
                m.d.sync += wr_beat.eq(wr_beat + 1)
        return SimpleNamespace(wr_bank=wr_bank, wr_beat=wr_beat, full=full,
                               bank_bits=bank_bits, bank_cls=bank_cls, load_ok=load_ok,
                               load_done=load_done)

    def _fusion_classes(self):
        """Fusion engine: the precisions it distinguishes (candidates and n, the default),
        ``{(b, round): products per unit per beat}`` and the sorted set of those values."""
        widths = sorted(set(self._candidates) | {self._n})
        table = {(b, r): fusion_unit_terms(self._n, b, "round" if r else "floor")
                 for b in widths for r in (0, 1)}
        return widths, table, sorted(set(table.values()))

    def _class_of(self, m, bits, f_round, name):
        """Index (into the sorted class list) of the class of precision ``bits``."""
        widths, table, classes = self._fusion_classes()
        idx = Signal(range(max(2, len(classes))), name=name)
        with m.Switch(bits):
            for b in widths:
                with (m.Case(b) if b != self._n else m.Default()):
                    m.d.comb += idx.eq(Mux(f_round, classes.index(table[b, 1]),
                                           classes.index(table[b, 0])))
        return idx

    def _kb_last_of(self, cfg, idx):
        """Beats - 1 of a vector of class ``idx``: ceil(K_BEATS / P) - 1 = (K_BEATS - 1) >> log2 P."""
        classes = self._fusion_classes()[2]
        out = cfg.kb_last >> (classes[0].bit_length() - 1)
        for i, P in enumerate(classes[1:], 1):
            out = Mux(idx == i, cfg.kb_last >> (P.bit_length() - 1), out)
        return out

    def _sequencer(self, m, cfg, mem, ld, adv):
        """S0: walks the beats of a full bank once per output group, weight row by row."""
        KB, G = self.kb_max, self.groups_max
        rd_bank = Signal()
        sq_beat = Signal(range(KB))
        sq_group = Signal(range(max(2, G)))
        sq_addr = Signal(range(self._weight_depth))
        full = ld.full
        rd_full = Mux(rd_bank, full[1], full[0])
        issue = Signal()
        m.d.comb += issue.eq(adv & rd_full & ~cfg.f_add)
        release = Signal()
        s_first = sq_beat == 0
        s_lastg = sq_group == cfg.g_last
        m.d.comb += mem.irp.addr.eq((rd_bank * KB) + sq_beat)
        fz = None
        if self._fusion:
            fz = self._fusion_addresses(m, cfg, mem, ld, rd_bank, sq_beat, issue, s_lastg)
            s_last = fz.s_last
        else:
            s_last = sq_beat == cfg.kb_last
            m.d.comb += mem.wrp.addr.eq(sq_addr)
        with m.If(issue):
            with m.If(s_last):
                m.d.sync += sq_beat.eq(0)
                with m.If(s_lastg):
                    m.d.comb += release.eq(1)
                    m.d.sync += [sq_group.eq(0), sq_addr.eq(0), rd_bank.eq(~rd_bank)]
                with m.Else():
                    m.d.sync += [sq_group.eq(sq_group + 1), sq_addr.eq(sq_addr + 1)]
            with m.Else():
                m.d.sync += [sq_beat.eq(sq_beat + 1), sq_addr.eq(sq_addr + 1)]
        for b in range(2):
            with m.If(ld.load_done & (ld.wr_bank == b)):
                m.d.sync += full[b].eq(1)
            with m.If(release & (rd_bank == b)):
                m.d.sync += full[b].eq(0)
        return SimpleNamespace(rd_bank=rd_bank, sq_group=sq_group, issue=issue,
                               s_first=s_first, s_last=s_last, s_lastg=s_lastg, fz=fz)

    def _fusion_addresses(self, m, cfg, mem, ld, rd_bank, sq_beat, issue, s_lastg):
        """Fusion engine S0: the vector's class, its last beat, and each weight bank's row.

        Beat j of class P (products per unit) starts at chunk ``c0 = j P / 4`` of the group
        (row ``base = g * chunks``); it reads chunks c0 .. c0 + Q - 1, Q = max(1, P / 4), and
        bank m holds chunk ``c0 + (m mod Q)`` of the planes it needs (FUSION_SIGMA). Chunks
        past the group's last are read as zeros (``wvalid``)."""
        classes = self._fusion_classes()[2]
        self._check_banks()
        rd_cls = Mux(rd_bank, ld.bank_cls[1], ld.bank_cls[0])
        s_last = sq_beat == self._kb_last_of(cfg, rd_cls)
        base = Signal(range(self._weight_depth + 1), name="wbase")
        with m.If(issue & s_last):
            m.d.sync += base.eq(Mux(s_lastg, 0, base + cfg.chunks))
        c0 = Signal(range(4 * self.kb_max + 1), name="chunk0")
        cands = [(sq_beat * P) >> 2 for P in classes]
        sel = cands[0]
        for i in range(1, len(classes)):
            sel = Mux(rd_cls == i, cands[i], sel)
        m.d.comb += c0.eq(sel)
        qmask = Signal(2, name="qmask")
        msk = Const(max(1, classes[0] // 4) - 1, 2)
        for i, P in enumerate(classes[1:], 1):
            msk = Mux(rd_cls == i, max(1, P // 4) - 1, msk)
        m.d.comb += qmask.eq(msk)
        valid = []
        for bank in range(4):
            c = Signal.like(c0, name=f"chunk_b{bank}")
            m.d.comb += [c.eq(c0 + (bank & qmask)), mem.wrp[bank].addr.eq(base + c)]
            valid.append(c < cfg.chunks)
        return SimpleNamespace(s_last=s_last, valid=Cat(*valid), rot=c0[:2],
                               quarter=sq_beat[:2], cls=rd_cls)

    def _check_banks(self):
        """Elaboration-time proof that the bank layout has no conflict: for every class and
        every chunk offset a beat can start at, the (plane, chunk) reads of the beat go to
        distinct banks, and bank m reads chunk c0 + (m mod Q)."""
        widths, table, _ = self._fusion_classes()
        for (b, r), P in table.items():
            Q = max(1, P // 4)
            planes = fusion_planes(self._n, b, "round" if r else "floor")
            for c0 in range(0, 8, Q):
                banks = {}
                for q in range(Q):
                    for p in range(planes):
                        bank = (c0 + q + FUSION_SIGMA[p]) % 4
                        if bank in banks or bank % Q != q:
                            raise RTLParamError(f"fusion bank conflict at b={b}, round={r}")
                        banks[bank] = (p, q)

    def _products(self, m, cfg, mem, ld, sq, adv):
        """S1: operands read; the shared activation row is nested-shifted once, then every
        lane's products and their sum (S1 -> S2 register ``beat``). With ``deep_pipeline``
        three registers split it: the memories' read data (S1a), the shifted operands (S1b)
        and the products (S1c), the sum and its shift back in the last cycle."""
        n, P, L, E = self._n, self._pes, self._lanes, self.exact_width
        v1, first1, last1, lastg1 = Signal(), Signal(), Signal(), Signal()
        g1 = Signal.like(sq.sq_group)
        bits1 = Signal(bits_width(n))
        with m.If(adv):
            m.d.sync += [v1.eq(sq.issue), first1.eq(sq.s_first), last1.eq(sq.s_last),
                         lastg1.eq(sq.s_lastg), g1.eq(sq.sq_group),
                         bits1.eq(Mux(sq.rd_bank, ld.bank_bits[1], ld.bank_bits[0]))]
        ctl = SimpleNamespace(v=v1, first=first1, last=last1, lastg=lastg1, g=g1, bits=bits1)
        valids = [v1]

        def stage(name, values):
            """One more register stage: the control signals and ``values`` (Value lists)."""
            nonlocal ctl
            new = SimpleNamespace(**{k: Signal.like(v, name=f"{k}_{name}")
                                     for k, v in vars(ctl).items()})
            regs = [[Signal.like(v, name=f"{name}_{i}_{j}") for j, v in enumerate(row)]
                    for i, row in enumerate(values)]
            with m.If(adv):
                m.d.sync += [getattr(new, k).eq(v) for k, v in vars(ctl).items()]
                m.d.sync += [r.eq(v) for rr, vv in zip(regs, values) for r, v in zip(rr, vv)]
            ctl = new
            valids.append(new.v)
            return regs

        if not self._deep:
            m.d.comb += mem.crp.addr.eq(g1)
        if self._fusion:
            return self._fusion_products(m, cfg, mem, sq, ctl, adv)
        x_in = [mem.irp.data[j] for j in range(P)]
        w_in = [[mem.wrp.data[lane][j] for j in range(P)] for lane in range(L)]
        if self._deep:
            x_in, *w_in = stage("s1a", [x_in] + w_in)
        right = self._variant == "right"
        xs = []
        for j in range(P):
            r_, m_ = nested_shift_comb(m, x_in[j], n, ctl.bits, cfg.f_round, False,
                                       self._candidates, name=f"x{j}")
            xs.append(r_ if right else m_)
        beat2 = [Signal(signed(E), name=f"beat{lane}") for lane in range(L)]
        v2, first2, last2, lastg2 = Signal(), Signal(), Signal(), Signal()
        bits2 = Signal.like(bits1)

        def lane_sum(lane, prods):
            s = sum_tree(prods)
            if right:
                s = shift_left_by_bits(m, s, n, ctl.bits, self._candidates, 2, E, f"bsh{lane}")
            with m.If(adv):
                m.d.sync += beat2[lane].eq(s)

        ws = []
        for lane in range(L):
            row = []
            for j in range(P):
                r_, m_ = nested_shift_comb(m, w_in[lane][j], n, ctl.bits, cfg.f_round, True,
                                           self._candidates, name=f"w{lane}_{j}")
                row.append(r_ if right else m_)
            if not self._deep:
                lane_sum(lane, [xs[j] * row[j] for j in range(P)])
            ws.append(row)
        if self._deep:
            xs, *ws = stage("s1b", [xs] + ws)
            prods = stage("s1c", [[xs[j] * ws[lane][j] for j in range(P)] for lane in range(L)])
            # the channel constants are read so that they arrive with the accumulation (S2)
            m.d.comb += mem.crp.addr.eq(ctl.g)
            for lane in range(L):
                lane_sum(lane, prods[lane])
        with m.If(adv):
            m.d.sync += [v2.eq(ctl.v), first2.eq(ctl.first), last2.eq(ctl.last),
                         lastg2.eq(ctl.lastg), bits2.eq(ctl.bits)]
        return SimpleNamespace(valids=valids, v2=v2, first2=first2, last2=last2,
                               lastg2=lastg2, bits1=bits1, bits2=bits2, beat2=beat2)

    def _fusion_products(self, m, cfg, mem, sq, ctl, adv):
        """Fusion engine S1: the beat's b-bit operands routed to every unit's 16 slots and
        each lane's dot product (the units' ``fusion_dot`` sums), shifted to master units.

        Term t of a beat of class P goes to unit ``t // P``, slot ``t % P``: its activation
        is bits b t .. b t + b - 1 of the packed input row; its weight is rebuilt from the
        digit planes it needs (chunk ``t // 4 pes`` of the beat, digit ``t % 4 pes``; at
        P = 1 digit ``(j mod 4) pes + t``), an arithmetic shift (floor) or the rounding bit
        added and clamped (round). Slots at and beyond P carry zeros."""
        n, P, L, E = self._n, self._pes, self._lanes, self.exact_width
        G2 = (n // 2) ** 2
        widths, table, _ = self._fusion_classes()
        fz = sq.fz
        valid1, rot1, quarter1 = Signal(4, name="wvalid1"), Signal(2, name="rot1"), \
            Signal(2, name="quarter1")
        with m.If(adv):
            m.d.sync += [valid1.eq(fz.valid), rot1.eq(fz.rot), quarter1.eq(fz.quarter)]
        xp = Cat(*[mem.irp.data[j] for j in range(self.geometry.x_fields)])
        rows, quarters = {}, {}

        def plane_row(lane, p, q):
            """Lane ``lane``'s row of plane p, chunk c0 + q of the beat: bank (rot + q +
            sigma(p)) mod 4, zero when that chunk is past the group's last."""
            if (lane, p, q) not in rows:
                r = Signal(8 * P, name=f"plane{lane}_{p}_{q}")
                with m.Switch(rot1):
                    for rot in range(4):
                        bank = (rot + q + FUSION_SIGMA[p]) % 4
                        data_ = Cat(*[mem.wrp[bank].data[lane][j] for j in range(P)])
                        with m.Case(rot):
                            m.d.comb += r.eq(Mux(valid1[bank], data_, 0))
                rows[lane, p, q] = r
            return rows[lane, p, q]

        def digit(lane, p, Pc, t):
            if Pc >= 4:
                i, row = t % (4 * P), plane_row(lane, p, t // (4 * P))
                return row[2 * i:2 * i + 2]
            if (lane, p, t) not in quarters:
                row = plane_row(lane, p, 0)
                d = Signal(2, name=f"dq{lane}_{p}_{t}")
                with m.Switch(quarter1):
                    for qt in range(4):
                        with m.Case(qt):
                            i = qt * P + t
                            m.d.comb += d.eq(row[2 * i:2 * i + 2])
                quarters[lane, p, t] = d
            return quarters[lane, p, t]

        def weight(lane, b, r, Pc, t):
            planes = fusion_planes(n, b, "round" if r else "floor")
            v = Cat(*[digit(lane, p, Pc, t) for p in reversed(range(planes))])
            if not r or b == n:
                return v[2 * planes - b:]
            u = v[2 * planes - b - 1:].as_signed()          # b + 1 bits: the code and bit k-1
            rr = materialize(m, (u + 1) >> 1, f"wr{lane}_{b}_{t}")
            hi = (1 << (b - 1)) - 1
            return Mux(rr > hi, hi, rr)[:b]

        # the plane rows and digits every (b, mode) uses, built before the precision switch
        # (a signal first driven inside one of its cases would be driven only there)
        for b in widths:
            for r in (1, 0):
                Pc = table[b, r]
                for p in range(fusion_planes(n, b, "round" if r else "floor")):
                    for lane in range(L):
                        for t in range(P * Pc):
                            digit(lane, p, Pc, t)
        xr = [[Signal(n, name=f"fx{u}_{s}") for s in range(G2)] for u in range(P)]
        wr = [[[Signal(n, name=f"fw{lane}_{u}_{s}") for s in range(G2)] for u in range(P)]
              for lane in range(L)]
        with m.Switch(ctl.bits):
            for b in widths:
                with (m.Case(b) if b != n else m.Default()):
                    for r in (1, 0):
                        Pc = table[b, r]
                        with (m.If(cfg.f_round) if r else m.Else()):
                            for u in range(P):
                                for s_ in range(G2):
                                    if s_ >= Pc:
                                        m.d.comb += [xr[u][s_].eq(0)] + \
                                            [wr[lane][u][s_].eq(0) for lane in range(L)]
                                        continue
                                    t = u * Pc + s_
                                    m.d.comb += xr[u][s_].eq(xp[b * t:b * t + b])
                                    for lane in range(L):
                                        m.d.comb += wr[lane][u][s_].eq(weight(lane, b, r, Pc, t))
        beat2 = [Signal(signed(E), name=f"beat{lane}") for lane in range(L)]
        for lane in range(L):
            s_ = sum_tree([fusion_dot(m, n, ctl.bits, widths, xr[u], wr[lane][u],
                                      name=f"f{lane}_{u}") for u in range(P)])
            s_ = shift_left_by_bits(m, s_, n, ctl.bits, self._candidates, 2, E, f"bsh{lane}")
            with m.If(adv):
                m.d.sync += beat2[lane].eq(s_)
        v2, first2, last2, lastg2 = Signal(), Signal(), Signal(), Signal()
        bits2 = Signal.like(ctl.bits)
        with m.If(adv):
            m.d.sync += [v2.eq(ctl.v), first2.eq(ctl.first), last2.eq(ctl.last),
                         lastg2.eq(ctl.lastg), bits2.eq(ctl.bits)]
        return SimpleNamespace(valids=[ctl.v], v2=v2, first2=first2, last2=last2,
                               lastg2=lastg2, bits1=ctl.bits, bits2=bits2, beat2=beat2,
                               xr=xr, wr=wr, valid1=valid1)

    def _accumulate(self, m, mem, s2, adv):
        """S2: per-lane accumulation from the channel bias; at the last beat the exact sum
        and the channel's M move on (S2 -> S3)."""
        L, E = self._lanes, self.exact_width
        v3, lastg3 = Signal(), Signal()
        bits3 = Signal.like(s2.bits1)
        ex3 = [Signal(signed(E), name=f"exact{lane}") for lane in range(L)]
        m3 = [Signal(unsigned(self._m_bits), name=f"m3_{lane}") for lane in range(L)]
        for lane in range(L):
            acc = Signal(signed(E), name=f"acc{lane}")
            new = Signal(signed(E), name=f"acc_new{lane}")
            m.d.comb += new.eq(Mux(s2.first2, mem.crp.data.bias[lane], acc) + s2.beat2[lane])
            with m.If(adv & s2.v2):
                m.d.sync += acc.eq(new)
                with m.If(s2.last2):
                    m.d.sync += [ex3[lane].eq(new), m3[lane].eq(mem.crp.data.m[lane])]
        with m.If(adv):
            m.d.sync += [v3.eq(s2.v2 & s2.last2), lastg3.eq(s2.lastg2), bits3.eq(s2.bits2)]
        return SimpleNamespace(v3=v3, lastg3=lastg3, bits3=bits3, ex3=ex3, m3=m3)

    def _requant_operands(self, m, cfg, s3, adv):
        """S3: overflow policy at the accumulator width; S4: the product with M."""
        L, A = self._lanes, self._acc_max
        v4, lastg4 = Signal(), Signal()
        bits4 = Signal.like(s3.bits3)
        val4 = [Signal(signed(A), name=f"val{lane}") for lane in range(L)]
        m4 = [Signal(unsigned(self._m_bits), name=f"m4_{lane}") for lane in range(L)]
        over4 = Signal(L)
        # the accumulator width's constants, registered: ACC_WIDTH changes only while the
        # engine is idle, and a vector reaches S3 several cycles after its first beat
        bounds = policy_bounds(m, cfg.acc_w, len(s3.ex3[0]), "accw", registered=True)
        for lane in range(L):
            val, over = overflow_policy(m, s3.ex3[lane], bounds, cfg.f_sat, name=f"pol{lane}")
            with m.If(adv):
                m.d.sync += [val4[lane].eq(val), over4[lane].eq(over), m4[lane].eq(s3.m3[lane])]
        with m.If(adv):
            m.d.sync += [v4.eq(s3.v3), lastg4.eq(s3.lastg3), bits4.eq(s3.bits3)]

        valids = [s3.v3, v4]
        if self._deep:
            # deep_pipeline: val x M as two registered partial products (M's low 16 bits
            # and the rest), added in the next cycle
            H = 16
            v4b, lastg4b = Signal(name="v4b"), Signal(name="lastg4b")
            over4b, bits4b = Signal(L, name="over4b"), Signal.like(bits4, name="bits4b")
            lo4 = [Signal(signed(A + H + 1), name=f"plo{lane}") for lane in range(L)]
            hi4 = [Signal(signed(A + max(1, self._m_bits - H) + 1), name=f"phi{lane}")
                   for lane in range(L)]
            vb = [Signal(signed(A), name=f"val4b_{lane}") for lane in range(L)]
            with m.If(adv):
                m.d.sync += [v4b.eq(v4), lastg4b.eq(lastg4), bits4b.eq(bits4), over4b.eq(over4)]
                for lane in range(L):
                    m_hi = m4[lane][H:] if self._m_bits > H else Const(0, 1)
                    m.d.sync += [lo4[lane].eq(val4[lane] * m4[lane][:H]),
                                 hi4[lane].eq(val4[lane] * m_hi), vb[lane].eq(val4[lane])]
            valids.append(v4b)
            v4, lastg4, bits4, over4, val4 = v4b, lastg4b, bits4b, over4b, vb
            full = [lo4[lane] + (hi4[lane] << H) for lane in range(L)]
        else:
            full = [val4[lane] * m4[lane] for lane in range(L)]
        v5, lastg5 = Signal(), Signal()
        bits5 = Signal.like(s3.bits3)
        over5 = Signal(L)
        prod5 = [Signal(signed(A + self._m_bits), name=f"prod{lane}") for lane in range(L)]
        val5 = [Signal(signed(A), name=f"val5_{lane}") for lane in range(L)]
        with m.If(adv):
            m.d.sync += [v5.eq(v4), lastg5.eq(lastg4), bits5.eq(bits4), over5.eq(over4)]
            for lane in range(L):
                m.d.sync += [prod5[lane].eq(full[lane]), val5[lane].eq(val4[lane])]
        return SimpleNamespace(valids=valids, v5=v5, lastg5=lastg5, bits5=bits5,
                               over5=over5, prod5=prod5, val5=val5)

    def _round_stages(self, m, cfg, s5, adv):
        """S6: the product plus the rounding constant 2^(S-1) (registered from SHIFT, which
        changes only while the engine is idle); S7: the shift by S; S8: the clamp's
        comparisons against 0 and CLIP_HI (CLIP_HI <= 2^n - 1, so the low n bits are kept). (Split from the output
        stage, where the add, the shifter and the clamp made the FPGA critical path.)"""
        L = self._lanes
        W = len(s5.prod5[0])
        half = Signal(W - 1, name="half_r")
        m.d.sync += half.eq(round_half(cfg.shift, W))
        prev = s5
        valids = s5.valids + [s5.v5]
        for stage in (6, 7):
            v, lastg = Signal(name=f"v{stage}"), Signal(name=f"lastg{stage}")
            bits = Signal.like(s5.bits5, name=f"bits{stage}")
            over = Signal(L, name=f"over{stage}")
            y = [Signal(signed(W + 1), name=f"t{stage}_{j}") for j in range(L)]
            val = [Signal(signed(self._acc_max), name=f"val{stage}_{j}") for j in range(L)]
            with m.If(adv):
                m.d.sync += [v.eq(prev.v5), lastg.eq(prev.lastg5), bits.eq(prev.bits5),
                             over.eq(prev.over5)]
                for j in range(L):
                    nxt = prev.prod5[j] + half if stage == 6 else \
                        shift_or_zero(prev.prod5[j], cfg.shift, W)
                    m.d.sync += [y[j].eq(nxt), val[j].eq(prev.val5[j])]
            prev = SimpleNamespace(v5=v, lastg5=lastg, bits5=bits, over5=over, prod5=y,
                                   val5=val)
            valids.append(v)
        # S8: the clamp's comparisons registered; the output stage only selects
        v, lastg = Signal(name="v8"), Signal(name="lastg8")
        bits, over = Signal.like(s5.bits5, name="bits8"), Signal(L, name="over8")
        low = [Signal(self._n, name=f"y8_{j}") for j in range(L)]
        gt = [Signal(name=f"gt8_{j}") for j in range(L)]
        lt = [Signal(name=f"lt8_{j}") for j in range(L)]
        val = [Signal(signed(self._acc_max), name=f"val8_{j}") for j in range(L)]
        with m.If(adv):
            m.d.sync += [v.eq(prev.v5), lastg.eq(prev.lastg5), bits.eq(prev.bits5),
                         over.eq(prev.over5)]
            for j in range(L):
                t = prev.prod5[j]
                m.d.sync += [low[j].eq(t[:self._n]), gt[j].eq(t > cfg.clip_hi), lt[j].eq(t < 0),
                             val[j].eq(prev.val5[j])]
        valids.append(v)
        req_y = [Mux(gt[j], cfg.clip_hi, Mux(lt[j], 0, low[j])) for j in range(L)]
        return SimpleNamespace(v5=v, lastg5=lastg, bits5=bits, over5=over, req_y=req_y,
                               val5=val, valids=valids)

    def _add_mode(self, m, cfg, adv):
        """Residual add: A = min(pes, lanes) element pairs per cycle share A multiplier
        pairs: a beat is latched, its ceil(pes / A) chunks go through the multipliers one per
        cycle into the registers add_t, their shift by S into add_s one cycle later, and the
        clamp into a_y the cycle after; the full beat is handed to the output register (av1).
        The rounding constant 2^(S-1) is folded into a registered copy of M3."""
        n, P, KB = self._n, self._pes, self.kb_max
        AP = self.add_par
        NCH = -(-P // AP)
        a_busy = Signal()
        a_chunk = Signal(range(NCH + 2 + 2 * self._deep))
        a_beat = Signal(range(KB))
        a_x = [Signal(unsigned(n), name=f"a_x{j}") for j in range(NCH * AP)]
        a_x2 = [Signal(unsigned(n), name=f"a_x2_{j}") for j in range(NCH * AP)]
        a_y = [Signal(unsigned(n), name=f"a_y{j}") for j in range(NCH * AP)]
        a_bits, a_last = Signal(bits_width(n)), Signal()
        av1, alast1 = Signal(), Signal()
        abits1 = Signal(bits_width(n))
        add_take = Signal()
        m.d.comb += add_take.eq(self.i.valid & cfg.f_add & ~a_busy)
        with m.If(add_take):
            m.d.sync += [a_busy.eq(1), a_chunk.eq(0), a_bits.eq(self.i.payload.bits),
                         a_last.eq(a_beat == cfg.kb_last),
                         a_beat.eq(Mux(a_beat == cfg.kb_last, 0, a_beat + 1))]
            for j in range(P):
                m.d.sync += [a_x[j].eq(self.i.payload.x[j]), a_x2[j].eq(self.i.payload.x2[j])]
        add_m = cfg.add_m
        # W: width of M1 x + M2 x2 + M3, the value golden rounds and shifts
        W = len(add_m[0] * a_x[0] + add_m[1] * a_x2[0] + add_m[2])
        m3h = Signal(signed(W + 1), name="add_m3h")
        m.d.sync += m3h.eq(add_m[2] + round_half(cfg.shift, W))
        chunk_y = []
        # deep_pipeline: the selected operand pair and then the two products are registered
        # before the sum (two more cycles per chunk)
        D = 2 * int(self._deep)
        for i in range(AP):
            # operand select by a compare chain (an Array index would give an incomplete case)
            xa, xb = a_x[i], a_x2[i]
            for c in range(1, NCH):
                xa = Mux(a_chunk == c, a_x[c * AP + i], xa)
                xb = Mux(a_chunk == c, a_x2[c * AP + i], xb)
            if D:
                xa_r = Signal.like(a_x[i], name=f"add_xa{i}")
                xb_r = Signal.like(a_x2[i], name=f"add_xb{i}")
                p1 = Signal(signed(len(add_m[0] * xa_r)), name=f"add_p{i}")
                p2 = Signal(signed(len(add_m[1] * xb_r)), name=f"add_q{i}")
                with m.If(adv & a_busy):
                    m.d.sync += [xa_r.eq(xa), xb_r.eq(xb), p1.eq(add_m[0] * xa_r),
                                 p2.eq(add_m[1] * xb_r)]
                t = p1 + p2 + m3h
            else:
                t = add_m[0] * xa + add_m[1] * xb + m3h
            t_r = Signal(signed(len(t)), name=f"add_t{i}")
            sh = shift_or_zero(t_r, cfg.shift, W)
            s_r = Signal(signed(len(sh)), name=f"add_s{i}")
            chunk_y.append(clamp(m, s_r, 0, (1 << n) - 1, f"add_y{i}"))
            with m.If(adv & a_busy):
                m.d.sync += [t_r.eq(t), s_r.eq(sh)]
        with m.If(adv):
            m.d.sync += av1.eq(0)
            with m.If(a_busy):
                for c in range(2 + D, NCH + 2 + D):  # compares, not a case: no incomplete case
                    with m.If(a_chunk == c):
                        m.d.sync += [a_y[(c - 2 - D) * AP + i].eq(chunk_y[i])
                                     for i in range(AP)]
                with m.If(a_chunk == NCH + 1 + D):
                    m.d.sync += [a_busy.eq(0), av1.eq(1), alast1.eq(a_last), abits1.eq(a_bits)]
                with m.Else():
                    m.d.sync += a_chunk.eq(a_chunk + 1)
        return SimpleNamespace(a_busy=a_busy, a_y=a_y, av1=av1, alast1=alast1, abits1=abits1)

    def _output(self, m, cfg, ld, s2, s5, ad, adv):
        """S5: the output register (requantized, raw or residual-add values), the sticky
        overflow flag and ``busy``."""
        P, L = self._pes, self._lanes
        m.d.comb += self.i.ready.eq(Mux(cfg.f_add, ~ad.a_busy, ld.load_ok))
        p = self.o.payload
        req_y = s5.req_y
        with m.If(adv):
            m.d.sync += self.o.valid.eq(s5.v5 | ad.av1)
            with m.If(ad.av1):
                m.d.sync += [p.bits.eq(ad.abits1), p.last.eq(ad.alast1), p.over.eq(0)]
                for j in range(self.out_lanes):
                    m.d.sync += p.y[j].eq(ad.a_y[j] if j < P else 0)
            with m.Else():
                m.d.sync += [p.bits.eq(s5.bits5), p.last.eq(s5.lastg5), p.over.eq(s5.over5)]
                for j in range(self.out_lanes):
                    m.d.sync += p.y[j].eq(Mux(cfg.f_requant, req_y[j], s5.val5[j])
                                          if j < L else 0)

        sticky = Signal()
        with m.If(self.o.valid & (p.over != 0)):
            m.d.sync += sticky.eq(1)
        with m.Elif(cfg.clear):
            m.d.sync += sticky.eq(0)
        full = ld.full
        m.d.comb += [self.overflow.eq(sticky),
                     self.busy.eq(full[0] | full[1] | (ld.wr_beat != 0)
                                  | (Cat(*s2.valids).any() if self._deep else s2.valids[0])
                                  | s2.v2
                                  | Cat(*s5.valids).any() | ad.a_busy | ad.av1
                                  | self.o.valid)]
