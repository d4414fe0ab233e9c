"""Host protocol of the layer engine (``rtl.engine.Engine``): register map, tiling, beat
packing, and the golden reference of what a programmed engine computes.

Built only from :mod:`golden.ops`, :mod:`golden.layers` and :mod:`golden.fast`. It states
which register writes, weight rows, per-channel constants and input beats run a layer on
the engine, how output beats map back to ``[rows, O]``, and what the engine must produce
(:func:`reference_dense`, i.e. ``golden.layers.qdense`` row by row with each row's
precision). The Amaranth tests and the cocotb testbenches share it, so the convention is
written once. ``docs/rtl.md`` describes the cycle-level protocol.

Vocabulary: a *row* is one input vector of K activation codes (a linear layer's input
sample, or one im2col patch of a conv layer); it enters as ``ceil(K / pes)`` *beats* of
``pes`` codes (zero-padded). Output channels are computed ``lanes`` at a time (a *group*);
channels beyond what the weight memory holds at once are split into *tiles* that the host
runs one after another (reload weights, stream the rows again).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from golden import fast as _fast
from golden import layers as L
from golden.formats import AccumulatorSpec, AddConstants, DQTValueError, IntFormat, NestedMode, \
    Overflow, check_bits
from golden.ops import fusion_products_per_beat, nested_shift

__all__ = [
    "CFG", "FLAG", "EngineGeometry", "LayerTile", "plan_dense", "dense_input_beats",
    "collect_dense", "reference_dense", "plan_add", "add_input_beats", "collect_add",
    "conv_rows", "conv_from_rows", "plan_network_layer", "dense_beat_arrays",
    "fusion_planes", "fusion_unit_terms", "FUSION_SIGMA",
]

#: Configuration register addresses of the engine (``cfg_addr``).
CFG = {
    "K_BEATS": 0,    # input beats per row, 1..kb_max
    "GROUPS": 1,     # output groups per row in this tile, 1..groups_max
    "SHIFT": 2,      # S of the requantizer (dense) or of the add operator, 0..62
    "CLIP_HI": 3,    # upper clamp code of the requantizer (2^n - 1: none)
    "FLAGS": 4,      # FLAG bits
    "ACC_WIDTH": 5,  # declared accumulator width W, 2..acc_max
    "ADD_M1": 6,     # residual-add constants, signed add_bits (low bits of the word)
    "ADD_M2": 7,
    "ADD_M3": 8,
    "CLEAR": 9,      # any write clears the sticky overflow flag
}
#: FLAGS register bits.
FLAG = {"REQUANT": 1, "SATURATE": 2, "ROUND": 4, "ADD": 8}


#: Fusion engine (``Engine(fusion=True)``): weight digit plane p (p = 0 the top 2 bits) of
#: chunk c lives in weight bank ``(c + FUSION_SIGMA[p]) % 4``. A beat then reads each bank
#: at most once: four consecutive chunks of plane 0 (b <= 2, floor), two of planes 0 and 1
#: (b = 2, round), or up to four planes of one chunk (docs/rtl.md, "Bit-plane weights").
FUSION_SIGMA = (0, 2, 1, 3)


def fusion_planes(n: int, bits: int, mode) -> int:
    """Weight digit planes (2 bits each, from the top) a b-bit nested weight needs: the
    ceil(b/2) that hold its bits in ``floor`` mode; in ``round`` mode also the bit below
    them, k - 1 (``bits // 2 + 1`` planes), except at full width."""
    check_bits(bits, n)
    if NestedMode.parse(mode) is NestedMode.ROUND and bits < n:
        return min(n // 2, bits // 2 + 1)
    return -(-bits // 2)


def fusion_unit_terms(n: int, bits: int, mode) -> int:
    """Products per fusion unit per beat in the fusion engine: the fusion MAC's
    ``fusion_products_per_beat``, halved while the beat's weight reads (a chunk is 4 terms
    per unit; chunks x planes) exceed the n/2 banks: only b = 2 in ``round`` mode (8, not
    16: it needs planes 0 and 1)."""
    P, planes, banks = fusion_products_per_beat(n, bits), fusion_planes(n, bits, mode), n // 2
    while max(1, P // banks) * planes > banks:
        P //= 2
    return P


def _u32(v: int) -> int:
    """A signed 32-bit register value as the unsigned bus word."""
    return int(v) & 0xFFFFFFFF


@dataclass(frozen=True)
class EngineGeometry:
    """Elaboration parameters of an engine that the host convention depends on."""

    n: int = 8
    lanes: int = 2
    pes: int = 8
    max_k: int = 512
    max_out: int = 64
    weight_depth: int = 64
    acc_max: int = 32
    m_bits: int = 31
    candidates: tuple | None = None
    add_bits: int = 32
    fusion: bool = False

    @classmethod
    def from_derived(cls, d: dict) -> "EngineGeometry":
        """The geometry of an engine from its derived properties (``component_info``)."""
        cands = d.get("candidates")
        full = list(range(1, d["n"] + 1))
        return cls(d["n"], d["lanes"], d["pes"], d["max_k"], d["max_out"], d["weight_depth"],
                   d["acc_max"], d["m_bits"],
                   None if cands is None or list(cands) == full else tuple(cands),
                   d.get("add_bits", 32), bool(d.get("fusion", False)))

    @property
    def x_fields(self) -> int:
        """n-bit fields of the input payload's ``x`` (and ``x2``): ``pes``; 4 pes in the
        fusion engine, whose dense beats carry up to 16 pes packed 2-bit codes."""
        return 4 * self.pes if self.fusion else self.pes

    @property
    def weight_addresses(self) -> int:
        """Addresses of the weight write port: ``weight_depth`` rows, or ``4 * row + bank``
        over the fusion engine's four banks."""
        return self.weight_depth * (4 if self.fusion else 1)

    def unit_terms(self, bits: int, mode="floor") -> int:
        """Terms per PE per beat at ``bits`` (1 unless fusion: :func:`fusion_unit_terms`)."""
        if not self.fusion:
            return 1
        b = self.n if self.candidates is not None and bits not in self.candidates else bits
        return fusion_unit_terms(self.n, b, mode)

    def beats(self, k_beats: int, bits: int, mode="floor") -> int:
        """Input beats of a vector of ``k_beats`` full-width beats at ``bits``."""
        return -(-int(k_beats) // self.unit_terms(bits, mode))

    def chunks(self, k_beats: int) -> int:
        """Fusion engine: weight rows (chunks of 4 pes terms) per bank per output group."""
        return -(-int(k_beats) // 4)

    @property
    def kb_max(self) -> int:
        return -(-self.max_k // self.pes)

    @property
    def groups_max(self) -> int:
        return -(-self.max_out // self.lanes)

    @property
    def out_lanes(self) -> int:
        return max(self.lanes, self.pes)

    def k_beats(self, K: int) -> int:
        kb = -(-int(K) // self.pes)
        if not 1 <= kb <= self.kb_max:
            raise DQTValueError(f"K={K} needs {kb} beats of {self.pes}; the engine holds "
                                f"1..{self.kb_max} (max_k={self.max_k})")
        return kb

    def effective_bits(self, bits: int) -> int:
        """What the hardware does with a precision outside its candidate set: full width."""
        if self.candidates is not None and bits not in self.candidates:
            raise DQTValueError(f"bits={bits} is not in the engine's candidate set "
                                f"{sorted(self.candidates)}")
        return bits


@dataclass
class LayerTile:
    """What the host writes for one tile of output channels ``[c0, c1)``.

    ``cfg``: (address, value) register writes; ``weights``: (row address, [lanes][pes]
    codes), one ``w_we`` write each (fusion engine: address ``4 * row + bank`` and the
    bank row's digits packed into the pes codes, :func:`_fusion_weight_rows`); ``chans``: (group, [bias per lane], [M per lane]), one
    ``c_we`` write each. Apply them in order while the engine is idle (``busy`` low).
    """

    c0: int
    c1: int
    k_beats: int
    groups: int
    mode: str = "floor"
    cfg: list = field(default_factory=list)
    weights: list = field(default_factory=list)
    chans: list = field(default_factory=list)


def plan_dense(geom: EngineGeometry, w2d, bias, M, S: int, acc_width: int, overflow="wrap",
               requant: bool = True, clip_hi: int | None = None, mode="floor") -> list[LayerTile]:
    """Tiles that run a linear layer (or an im2col'd conv2d) ``w2d`` [O, K] on the engine.

    Checks every value against the engine's widths and raises :class:`DQTValueError`
    naming the value and the allowed range.
    """
    n = geom.n
    w2d = IntFormat(n, True).check(np.asarray(w2d), "weights")
    if w2d.ndim != 2:
        raise DQTValueError(f"weights must be [O, K], got shape {w2d.shape}")
    O, K = w2d.shape
    kb = geom.k_beats(K)
    bias = np.asarray(bias, dtype=np.int64).reshape(-1)
    if bias.shape != (O,):
        raise DQTValueError(f"bias has shape {bias.shape}, expected ({O},)")
    lim = 1 << (geom.acc_max - 1)
    if bias.size and (bias.min() < -lim or bias.max() >= lim):
        raise DQTValueError(f"bias values must lie in [{-lim}, {lim - 1}] (acc_max={geom.acc_max})")
    if M is None:
        M = np.zeros(O, dtype=np.int64)
    M = np.asarray(M, dtype=np.int64).reshape(-1)
    if M.shape != (O,):
        raise DQTValueError(f"M has shape {M.shape}, expected ({O},)")
    if M.size and (M.min() < 0 or M.max() >= 1 << geom.m_bits):
        raise DQTValueError(f"multipliers M must lie in [0, 2^{geom.m_bits} - 1] (m_bits)")
    if not 0 <= int(S) <= 62:
        raise DQTValueError(f"S={S} is outside the allowed range [0, 62]")
    if not 2 <= int(acc_width) <= geom.acc_max:
        raise DQTValueError(f"acc_width={acc_width} is outside the engine's range "
                            f"[2, {geom.acc_max}]")
    clip = (1 << n) - 1 if clip_hi is None else int(clip_hi)
    if not 0 <= clip <= (1 << n) - 1:
        raise DQTValueError(f"clip_hi={clip} is outside [0, {(1 << n) - 1}]")
    flags = (FLAG["REQUANT"] if requant else 0) \
        | (FLAG["SATURATE"] if Overflow.parse(overflow) is Overflow.SATURATE else 0) \
        | (FLAG["ROUND"] if NestedMode.parse(mode) is NestedMode.ROUND else 0)
    rows = geom.chunks(kb) if geom.fusion else kb     # weight rows (per bank) per group
    groups_per_tile = min(geom.groups_max, geom.weight_depth // rows)
    per_tile = groups_per_tile * geom.lanes
    wpad = np.zeros((O, rows * (4 if geom.fusion else 1) * geom.pes), dtype=np.int64)
    wpad[:, :K] = w2d
    tiles = []
    for c0 in range(0, O, per_tile):
        c1 = min(O, c0 + per_tile)
        groups = -(-(c1 - c0) // geom.lanes)
        t = LayerTile(c0, c1, kb, groups, NestedMode.parse(mode).value)
        t.cfg = [(CFG["K_BEATS"], kb), (CFG["GROUPS"], groups), (CFG["SHIFT"], int(S)),
                 (CFG["CLIP_HI"], clip), (CFG["FLAGS"], flags),
                 (CFG["ACC_WIDTH"], int(acc_width)), (CFG["CLEAR"], 0)]
        for g in range(groups):
            lanes = [c0 + g * geom.lanes + lane for lane in range(geom.lanes)]
            # lanes past the last channel get zeros, so stale rows of an earlier tile
            # cannot raise the overflow flag
            wl = np.stack([wpad[c] if c < c1 else np.zeros_like(wpad[0]) for c in lanes])
            if geom.fusion:
                t.weights += _fusion_weight_rows(geom, wl, g * rows)
            else:
                t.weights += [(g * kb + j, wl[:, j * geom.pes:(j + 1) * geom.pes].tolist())
                              for j in range(kb)]
            t.chans.append((g, [int(bias[c]) if c < c1 else 0 for c in lanes],
                            [int(M[c]) if c < c1 else 0 for c in lanes]))
        tiles.append(t)
    return tiles


def _fusion_weight_rows(geom: EngineGeometry, wl, row0: int) -> list:
    """Bank rows of one group's weights ``wl`` [lanes, chunks * 4 pes] (fusion engine).

    Digit plane p of weight w is ``(w >> (n - 2 - 2p)) & 3`` (p = 0: the top two bits, the
    sign's digit). Chunk c (terms 4 pes c .. 4 pes (c + 1) - 1) of plane p goes to bank
    ``(c + FUSION_SIGMA[p]) % 4``, row ``row0 + c``, digit i at bits 2i..2i+1 of the lane's
    8 pes-bit row, written as pes signed n-bit codes at ``w_addr = 4 * row + bank``."""
    n, P = geom.n, geom.pes
    L_, width = wl.shape
    u = np.asarray(wl, dtype=np.int64) & ((1 << n) - 1)
    chunks = width // (4 * P)
    out = []
    for c in range(chunks):
        blk = u[:, c * 4 * P:(c + 1) * 4 * P]
        for p in range(n // 2):
            d = (blk >> (n - 2 - 2 * p)) & 3                    # [lanes, 4P] digits
            byte = (d.reshape(L_, P, 4) << (2 * np.arange(4))).sum(axis=2)
            codes = np.where(byte >= 1 << (n - 1), byte - (1 << n), byte)
            out.append((4 * (row0 + c) + (c + FUSION_SIGMA[p]) % 4, codes.tolist()))
    return out


def dense_beat_arrays(geom: EngineGeometry, k_beats: int, rows, bits, mode="floor"):
    """Rows [R, K] of master codes as input beats: ``(x [nb, x_fields], bits per beat
    [nb])``; ``bits`` is an int or one per row. Plain engine: ``k_beats`` beats of ``pes``
    codes per row (zero-padded). Fusion engine: the host's nested conversion (``mode``) to
    b-bit codes, ``geom.unit_terms(b) * pes`` of them per beat packed from bit 0 (code t at
    bits b t .. b t + b - 1 of the beat's ``x`` fields), ``geom.beats(k_beats, b)`` beats.
    The array form of :func:`dense_input_beats`, for drivers that stream whole arrays."""
    rows = np.asarray(rows, dtype=np.int64)
    R, K = rows.shape
    P = geom.pes
    if k_beats * P < K:
        raise DQTValueError(f"tile has {k_beats} beats of {P} for K={K}")
    b = np.broadcast_to(np.asarray(bits, dtype=np.int64), (R,))
    if not geom.fusion:
        xp = np.zeros((R, k_beats * P), dtype=np.int64)
        xp[:, :K] = rows
        return xp.reshape(R * k_beats, P), np.repeat(b, k_beats)
    n, XF = geom.n, geom.x_fields
    nbs = np.array([geom.beats(k_beats, int(v), mode) for v in b])
    x = np.zeros((int(nbs.sum()), XF), dtype=np.int64)
    first = np.concatenate([[0], np.cumsum(nbs)[:-1]])
    for v in np.unique(b):
        v = int(v)
        idx = np.nonzero(b == v)[0]
        T = geom.unit_terms(v, mode) * P
        nb = geom.beats(k_beats, v, mode)
        q = np.zeros((len(idx), nb * T), dtype=np.int64)
        q[:, :K] = nested_shift(rows[idx], n, v, mode)
        bitv = (q.reshape(len(idx), nb, T, 1) >> np.arange(v)) & 1   # LSB first per code
        flat = bitv.reshape(len(idx), nb, T * v)
        pad = np.zeros((len(idx), nb, XF * n), dtype=np.int64)
        pad[:, :, :T * v] = flat
        fields = (pad.reshape(len(idx), nb, XF, n) << np.arange(n)).sum(axis=3)
        for r, f in zip(idx, fields):
            x[first[r]:first[r] + nb] = f
    return x, np.repeat(b, nbs)


def dense_input_beats(geom: EngineGeometry, x_rows, bits, mode="floor") -> list[dict]:
    """Input beats for rows [R, K] of unsigned codes; ``bits`` is an int or one per row
    (``mode``: the nested conversion, which the fusion engine's host applies)."""
    x_rows = IntFormat(geom.n, False).check(np.asarray(x_rows), "input codes")
    R, K = x_rows.shape
    kb = geom.k_beats(K)
    b = np.broadcast_to(np.asarray(bits, dtype=np.int64), (R,))
    for v in np.unique(b):
        check_bits(int(v), geom.n)
        geom.effective_bits(int(v))
    beats, bb = dense_beat_arrays(geom, kb, x_rows, b, mode)
    zeros = [0] * geom.x_fields
    return [{"x": [int(v) for v in x], "x2": zeros, "bits": int(bt)}
            for x, bt in zip(beats, bb)]


def collect_dense(geom: EngineGeometry, tile: LayerTile, outs: list[dict], R: int):
    """Map output beats (dicts with ``y``, ``over``, ``last``) of one tile to
    ``(y [R, c1 - c0], over [R, c1 - c0])``; checks the beat count and ``last`` marks."""
    want = R * tile.groups
    if len(outs) != want:
        raise DQTValueError(f"tile [{tile.c0}, {tile.c1}): got {len(outs)} output beats, "
                            f"expected {want} (rows x groups)")
    C = tile.c1 - tile.c0
    y = np.zeros((R, C), dtype=np.int64)
    over = np.zeros((R, C), dtype=bool)
    for i, o in enumerate(outs):
        r, g = divmod(i, tile.groups)
        if int(o["last"]) != int(g == tile.groups - 1):
            raise DQTValueError(f"output beat {i}: last={o['last']} but group {g} of {tile.groups}")
        for lane in range(geom.lanes):
            c = g * geom.lanes + lane
            if c < C:
                y[r, c] = int(o["y"][lane])
                over[r, c] = bool((int(o["over"]) >> lane) & 1)
    return y, over


def reference_dense(x_rows, w2d, bias, M, S, n, bits, mode, acc: AccumulatorSpec,
                    requant=True, clip_hi=None):
    """What the engine must output for rows [R, K]: golden ``qdense`` with each row's bits.

    Returns ``(y [R, O], over [R, O])``; without ``requant`` y is the accumulator.
    """
    x_rows = np.asarray(x_rows, dtype=np.int64)
    R = x_rows.shape[0]
    b = np.broadcast_to(np.asarray(bits, dtype=np.int64), (R,))
    O = np.asarray(w2d).shape[0]
    y = np.zeros((R, O), dtype=np.int64)
    over = np.zeros((R, O), dtype=bool)
    for v in np.unique(b):
        rows = np.nonzero(b == v)[0]
        yy, oo = L.qdense(x_rows[rows], np.asarray(w2d), bias, M, S, n, int(v), mode, acc,
                          "linear", relu=True, clip_hi=clip_hi, requant=requant,
                          impl="reference")
        y[rows] = yy
        over[rows] = oo
    return y, over


def plan_add(geom: EngineGeometry, c: AddConstants, K: int) -> list[tuple]:
    """Register writes for the residual add of rows of K element pairs (golden ``int_add``)."""
    if c.out != IntFormat(geom.n, False):
        raise DQTValueError(f"the engine's add writes unsigned {geom.n}-bit codes, "
                            f"constants target {c.out}")
    lim = 1 << (geom.add_bits - 1)
    for name in ("M1", "M2", "M3"):
        v = getattr(c, name)
        if not -lim <= v < lim:
            raise DQTValueError(f"add constant {name}={v} is outside the signed "
                                f"{geom.add_bits}-bit range [{-lim}, {lim - 1}] (add_bits)")
    if not 0 <= c.S <= 62:
        raise DQTValueError(f"add shift S={c.S} is outside [0, 62]")
    return [(CFG["FLAGS"], FLAG["ADD"]), (CFG["SHIFT"], c.S), (CFG["K_BEATS"], geom.k_beats(K)),
            (CFG["ADD_M1"], _u32(c.M1)), (CFG["ADD_M2"], _u32(c.M2)),
            (CFG["ADD_M3"], _u32(c.M3))]


def add_input_beats(geom: EngineGeometry, q1_rows, q2_rows, bits=None) -> list[dict]:
    """Beats of element pairs for rows [R, K] (``bits`` is carried through, default n)."""
    fmt = IntFormat(geom.n, False)
    q1 = fmt.check(np.asarray(q1_rows), "q1")
    q2 = fmt.check(np.asarray(q2_rows), "q2")
    if q1.shape != q2.shape or q1.ndim != 2:
        raise DQTValueError(f"add operands must be two [R, K] arrays, got {q1.shape}, {q2.shape}")
    R, K = q1.shape
    kb = geom.k_beats(K)
    P = geom.pes
    a = np.zeros((R, kb * P), dtype=np.int64)
    b = np.zeros((R, kb * P), dtype=np.int64)
    a[:, :K], b[:, :K] = q1, q2
    bb = geom.n if bits is None else int(bits)
    pad = [0] * (geom.x_fields - P)
    return [{"x": [int(v) for v in a[r, j * P:(j + 1) * P]] + pad,
             "x2": [int(v) for v in b[r, j * P:(j + 1) * P]] + pad, "bits": bb}
            for r in range(R) for j in range(kb)]


def collect_add(geom: EngineGeometry, outs: list[dict], R: int, K: int) -> np.ndarray:
    """Output beats of the add mode back to [R, K]."""
    kb = geom.k_beats(K)
    if len(outs) != R * kb:
        raise DQTValueError(f"got {len(outs)} add output beats, expected {R * kb}")
    y = np.zeros((R, kb * geom.pes), dtype=np.int64)
    for i, o in enumerate(outs):
        r, j = divmod(i, kb)
        if int(o["last"]) != int(j == kb - 1):
            raise DQTValueError(f"add output beat {i}: last={o['last']}, "
                                f"expected {int(j == kb - 1)}")
        y[r, j * geom.pes:(j + 1) * geom.pes] = [int(v) for v in o["y"][:geom.pes]]
    return y[:, :K]


def conv_rows(x, kh: int, kw: int, stride: int, padding: int):
    """Host im2col: [N, C, H, W] codes -> rows [N*Ho*Wo, C*kh*kw] (order matches
    ``w.reshape(O, -1)``), plus (N, Ho, Wo)."""
    x = np.asarray(x, dtype=np.int64)
    cols, Ho, Wo = _fast.im2col(x, kh, kw, stride, padding)  # columns in (dy, dx, c) order
    C = x.shape[1]
    cols = cols.reshape(-1, kh, kw, C).transpose(0, 3, 1, 2).reshape(len(cols), C * kh * kw)
    return cols, (x.shape[0], Ho, Wo)


def conv_from_rows(y_rows, shape):
    """Rows [N*Ho*Wo, O] back to [N, O, Ho, Wo]."""
    N, Ho, Wo = shape
    y = np.asarray(y_rows)
    return y.reshape(N, Ho, Wo, -1).transpose(0, 3, 1, 2)


def plan_network_layer(geom: EngineGeometry, net, name: str):
    """Tiles for a quantized layer of a loaded :class:`golden.network.Network`.

    Returns ``(tiles, w2d)``; conv2d weights are flattened in im2col order.
    """
    l = net.layer(name)
    if l["type"] not in ("linear", "conv2d"):
        raise DQTValueError(f"layer {name!r} has type {l['type']!r}; the engine runs linear "
                            "and conv2d layers (add through plan_add, pooling on the host)")
    if l["rule"] != "dyadic":
        raise DQTValueError(f"layer {name!r} uses the {l['rule']!r} rule; the engine's "
                            "requantizer implements 'dyadic'")
    A = net.arrays
    w = A[l["weight"]]
    w2d = w.reshape(w.shape[0], -1)
    tiles = plan_dense(geom, w2d, A[l["bias"]], A[l["M"]], l["S"], l["acc_width"],
                       l["overflow"], l["requant"], l.get("clip"), net.mode)
    return tiles, w2d

