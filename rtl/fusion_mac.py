"""Precision-scalable nested MAC of 2-bit bricks, Bit Fusion style (golden ``fusion_mac``).

See docs/rtl.md, "The fusion MAC", for the organisation and why bricks of 2 bits.
"""
from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed

from golden import defaults as D
from golden.ops import FUSION_INPUTS, fusion_group

from ._common import RTLParamError, check_candidates, check_choice, check_mode, \
    materialize, nested_shift_comb, sum_tree
from .nested_mac import DotMac, shift_left_by_bits

__all__ = ["FusionMac"]


def _digits(v, width):
    """2-bit digits of a signal, least significant first (``width`` even)."""
    return [v[2 * t:2 * t + 2] for t in range(width // 2)]


class FusionMac(DotMac):
    """Nested multiply-accumulate that does more products per cycle at lower precision.

    An n/2 x n/2 grid of 2-bit x 2-bit bricks (16 at n = 8, as many as input lanes) forms, at
    run-time precision b, ``fusion_products_per_beat(n, b)`` products per beat: every brick of the
    grid works on one product at b > n/2 (1 per beat at n = 8), square groups of 2 x 2
    bricks on one product each at n/4 < b <= n/2 (4 per beat), and each brick on its own
    product at b <= 2 (16 per beat). A product of two b-bit codes uses ceil(b/2) digits of
    each operand: the activation's digits are unsigned, the weight's are unsigned except its
    top one, which is signed (the code sign-extended to an even width). Bricks whose digits
    a product does not use get zeros (operand isolation: at b = 6 seven of the 16 bricks of
    the single product hold still). Each brick's 3 x 3-bit signed product is shifted by
    2(i + j) within its product (i, j: the digits' positions), and every shifted product of
    the beat is summed: the beat's dot product of b-bit codes. That sum is shifted by
    2(n - b) into master units and accumulated exactly as :class:`NestedMac` does::

        acc = bias + sum over the packet of  sum_{j < P(b)} x_b[j] w_b[j] << 2(n - b)

    Lanes at and beyond P(b) are ignored. Golden ``fusion_mac`` of the packet's first P(b)
    pairs per beat gives the same value bit for bit, in both nested modes.

    Parameters
    ----------
    n : int
        Master width: 4 or 8 (an n/2 x n/2 grid of 2-bit bricks, a power-of-two side).
    acc_width, max_terms, overflow :
        As :class:`NestedMac`.
    mode : "floor" or "round"
        Nested conversion of both operands.
    candidates : iterable of int or None
        Supported precisions (default 1..n); other ``bits`` values mean full precision.
    inputs : "master" or "nested"
        "master": the lanes carry n-bit master codes and the MAC nested-shifts them (32
        shifters at n = 8); "nested": they carry the right-aligned b-bit codes, as bit-plane
        weight and activation storage would deliver them (x in [0, 2^b - 1], w in
        [-2^(b-1), 2^(b-1) - 1]; other values are outside the contract).

    Members
    -------
    i : In(stream.Signature(StructLayout({"x": ArrayLayout(unsigned(n), (n/2)^2),
        "w": ArrayLayout(signed(n), (n/2)^2), "bits", "bias", "first", "last"})))
    o : Out(stream.Signature(StructLayout({"acc": signed(W), "overflow": 1})))
    sticky_overflow : Out(1)
    clear_overflow : In(1)

    Latency: 2 cycles from the ``last`` beat to the result; one beat per cycle.
    """

    def __init__(self, n=D.N, acc_width=None, max_terms=D.ACC_TERMS, mode=D.MODE,
                 overflow=D.OVERFLOW, candidates=None, inputs="master"):
        if n not in (4, 8):
            raise RTLParamError(f"fusion_mac n={n!r} is outside the allowed values [4, 8] "
                                "(an n/2 x n/2 grid of 2-bit bricks)")
        self._mode = check_mode(mode)
        self._inputs = check_choice("inputs", inputs, FUSION_INPUTS)
        super().__init__(n, (n // 2) ** 2, acc_width, max_terms, overflow)
        self._candidates = check_candidates(candidates, self._n)

    mode = property(lambda self: self._mode.value)
    inputs = property(lambda self: self._inputs)
    candidates = property(lambda self: self._candidates)
    latency = property(lambda self: 2, doc="cycles from the ``last`` beat to the result")

    def elaborate(self, platform):
        m = Module()
        n, p = self._n, self.i.payload
        G = n // 2                                   # grid side, in digits
        E = self.exact_width
        en = ~self.o.valid | self.o.ready
        m.d.comb += self.i.ready.eq(en)

        # the precisions the grid distinguishes: every candidate, and full precision
        widths = sorted(set(self._candidates) | {n})
        # right-aligned b-bit codes of every lane: as they come ("nested" inputs), or the
        # master codes' nested shift
        if self._inputs == "nested":
            xr, wr = list(p.x), list(p.w)
        else:
            xr = [nested_shift_comb(m, p.x[j], n, p.bits, self._mode, False, self._candidates,
                                    name=f"x{j}")[0] for j in range(self._pes)]
            wr = [nested_shift_comb(m, p.w[j], n, p.bits, self._mode, True, self._candidates,
                                    name=f"w{j}")[0] for j in range(self._pes)]

        beat = fusion_dot(m, n, p.bits, widths, xr, wr)
        beat = shift_left_by_bits(m, beat, n, p.bits, self._candidates, 2, E, "beat_sh")
        return self.accumulate_beats(m, en, beat)


def fusion_dot(m, n, bits, widths, xr, wr, name="b"):
    """The fusion grid's dot product of one beat: the (n/2)^2 lanes' right-aligned b-bit
    codes ``xr`` (unsigned) and ``wr`` (two's complement in the low b bits), b = ``bits``
    (a signal; ``widths``: the precisions it distinguishes, the last one, n, the default),
    formed from 2-bit x 2-bit brick products shifted to their places and summed. Lanes at
    and beyond ``fusion_products_per_beat(n, b)`` are ignored. Shared by :class:`FusionMac`
    and the fusion engine (``rtl.engine.Engine(fusion=True)``)."""
    G = n // 2                                   # grid side, in digits
    # per brick (r, c) of the grid: its x digit, w digit (3-bit signed) and shift
    xd = [[Signal(signed(3), name=f"{name}x{r}_{c}") for c in range(G)] for r in range(G)]
    wd = [[Signal(signed(3), name=f"{name}w{r}_{c}") for c in range(G)] for r in range(G)]
    sh = [[Signal(range(2 * (2 * G - 1) + 1), name=f"{name}s{r}_{c}") for c in range(G)]
          for r in range(G)]
    with m.Switch(bits):
        for b in widths:
            with (m.Case(b) if b != n else m.Default()):
                _route(m, n, b, xr, wr, xd, wd, sh)
    prods = []
    for r in range(G):
        for c in range(G):
            # the x digit is 0..3: its two bits select w and 2w (written out, not as a
            # product: FPGA synthesis would put each 2 x 3-bit `*` on a DSP block)
            x, w = xd[r][c], wd[r][c]
            prod = materialize(m, Mux(x[0], w, 0) + Mux(x[1], w << 1, 0), f"{name}p{r}_{c}")
            prods.append(prod << sh[r][c])
    return sum_tree(prods)


def _route(m, n, b, xr, wr, xd, wd, sh):
    """Brick inputs and shifts at precision ``b`` (elaboration-time)."""
    G = n // 2
    g = fusion_group(n, b)                       # digits per operand in a product group
    act = -(-b // 2)                             # digits a b-bit code uses (<= g)
    per_row = G // g
    for r in range(G):
        for c in range(G):
            prod = (r // g) * per_row + (c // g)
            i, j = r % g, c % g
            if i >= act or j >= act:             # operand isolation: an unused brick
                m.d.comb += [xd[r][c].eq(0), wd[r][c].eq(0), sh[r][c].eq(0)]
                continue
            xdig = _digits(Cat(xr[prod][:b], Const(0, 2 * act - b)), 2 * act)[i]
            wext = wr[prod][:b].as_signed()      # the b-bit code, sign-extended below
            wfull = Cat(wext, *([wext[-1]] * (2 * act - b)))
            wdig = _digits(wfull, 2 * act)[j]
            m.d.comb += [xd[r][c].eq(Cat(xdig, Const(0, 1)).as_signed()),
                         wd[r][c].eq(wdig.as_signed() if j == act - 1
                                     else Cat(wdig, Const(0, 1)).as_signed()),
                         sh[r][c].eq(2 * (i + j))]
