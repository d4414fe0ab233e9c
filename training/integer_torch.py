"""Integer-only execution of an exported artifact in PyTorch int64 tensors.

This is an independent second implementation of the arithmetic in ``docs/arithmetic.md``
(it imports nothing from ``golden`` beyond the error type): the evaluation compares its
logits with ``golden.network.run_network`` element by element. Every operation is exact
int64 arithmetic:

* nested conversion: ``floor``: q >> k; ``round``: clamp((q + 2^(k-1)) >> k, b-bit range);
* layer accumulator: (Σ x_b · w_b) << 2k + bias, then ``wrap`` (mod 2^W into the signed
  range) or ``saturate`` (clamp) on the exact sum;
* requantization: ``dyadic`` clamp((acc · M + 2^(S-1)) >> S, lo, hi) or ``gemmlowp``
  (saturating rounding doubling high multiply, then rounding divide by 2^S);
* add: clamp((M1 q1 + M2 q2 + M3 + 2^(S-1)) >> S, 0, 2^n - 1);
* average pool: (Σ + floor(k²/2)) // k² ; the controller pools its tap globally the same way
  and picks B[argmax] per controlled layer (first index on ties).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from golden.formats import DQTValueError

__all__ = ["IntegerNetwork"]

_QUANT = ("linear", "conv2d")


def _shift_round(v, S):
    return v if S == 0 else (v + (1 << (S - 1))) >> S


class IntegerNetwork:
    """Run an artifact (``manifest`` dict + ``arrays`` dict of numpy arrays) on input codes.

    Parameters
    ----------
    manifest : dict
        A validated manifest (``golden.network.load_network(...).manifest``).
    arrays : dict
        name -> numpy integer array.
    """

    def __init__(self, manifest: dict, arrays: dict):
        self.m = manifest
        self.n = int(manifest["n"])
        self.B = [int(b) for b in manifest["candidate_bits"]]
        self.mode = manifest["mode"]
        self.t = {k: torch.from_numpy(np.asarray(v).astype(np.int64)) for k, v in arrays.items()}
        self.layers = manifest["layers"]
        self.qlayers = [l["name"] for l in self.layers if l["type"] in _QUANT]
        self.ctrl = manifest.get("controller")

    @classmethod
    def from_dir(cls, path):
        """Load with the golden loader's validation (hash check included)."""
        from golden.network import load_network
        net = load_network(path)
        return cls(net.manifest, net.arrays)

    # ---- operators -------------------------------------------------------------------
    def _nested(self, q, bits, signed):
        k = self.n - bits
        if k == 0:
            return q
        if self.mode == "floor":
            return q >> k
        lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
        return torch.clamp((q + (1 << (k - 1))) >> k, lo, hi)

    @staticmethod
    def _conv(x, w, stride, pad):
        N = x.shape[0]
        O, C, kh, kw = w.shape
        xp = F.pad(x, (pad, pad, pad, pad))
        p = xp.unfold(2, kh, stride).unfold(3, kw, stride)  # N, C, Ho, Wo, kh, kw
        Ho, Wo = p.shape[2], p.shape[3]
        cols = p.permute(0, 2, 3, 1, 4, 5).reshape(N * Ho * Wo, C * kh * kw)
        s = cols @ w.reshape(O, -1).T
        return s.reshape(N, Ho, Wo, O).permute(0, 3, 1, 2)

    def _accumulate(self, s, l):
        W = int(l["acc_width"])
        lo, hi = -(1 << (W - 1)), (1 << (W - 1)) - 1
        over = int(((s < lo) | (s > hi)).sum())
        if l["overflow"] == "saturate":
            return torch.clamp(s, lo, hi), over
        return ((s - lo) & ((1 << W) - 1)) + lo, over

    @staticmethod
    def _srdhm(a, b):
        ab = a * b
        nudge = torch.where(ab >= 0, torch.full_like(ab, 1 << 30), torch.full_like(ab, 1 - (1 << 30)))
        t = ab + nudge
        q = torch.where(t >= 0, t >> 31, -((-t) >> 31))  # C division truncates toward zero
        i32min = -(1 << 31)
        return torch.where((a == i32min) & (b == i32min), torch.full_like(q, (1 << 31) - 1), q)

    @staticmethod
    def _rdbp(x, e):
        mask = (1 << e) - 1
        rem = x & mask
        thr = (mask >> 1) + (x < 0).to(torch.int64)
        return (x >> e) + (rem > thr).to(torch.int64)

    def _qlayer(self, l, x, bits):
        w = self.t[l["weight"]]
        xb = self._nested(x, bits, False)
        wb = self._nested(w, bits, True)
        k2 = 2 * (self.n - bits)
        if l["type"] == "linear":
            s = xb @ wb.T
            bias = self.t[l["bias"]][None, :]
            M = self.t[l["M"]][None, :]
        else:
            s = self._conv(xb, wb, int(l.get("stride", 1)), int(l.get("padding", 0)))
            bias = self.t[l["bias"]][None, :, None, None]
            M = self.t[l["M"]][None, :, None, None]
        acc, over = self._accumulate((s << k2) + bias, l)
        if not l["requant"]:
            return acc, acc, over
        S = int(l["S"])
        lo = 0
        hi = (1 << self.n) - 1
        if l.get("clip") is not None:
            hi = min(hi, int(l["clip"]))
        if l["rule"] == "dyadic":
            y = _shift_round(acc * M, S)
        else:
            y = self._rdbp(self._srdhm(acc, M.expand_as(acc)), S)
        return torch.clamp(y, lo, hi), acc, over

    @staticmethod
    def _avg(x, k, stride):
        N, C, H, W = x.shape
        p = x.unfold(2, k, stride).unfold(3, k, stride)
        s = p.sum(dim=(-1, -2))
        return (s + (k * k) // 2) // (k * k)

    def _layer(self, l, env, bits):
        t = l["type"]
        if t == "add":
            q1, q2 = env[l["inputs"][0]], env[l["inputs"][1]]
            v = _shift_round(int(l["M1"]) * q1 + int(l["M2"]) * q2 + int(l["M3"]), int(l["S"]))
            return torch.clamp(v, 0, (1 << self.n) - 1), None
        x = env[l["_src"]]
        if t in _QUANT:
            y, acc, _ = self._qlayer(l, x, bits)
            return y, acc
        if t == "maxpool":
            if l.get("global"):
                return x.amax(dim=(2, 3), keepdim=True), None
            p = x.unfold(2, l["k"], l["stride"]).unfold(3, l["k"], l["stride"])
            return p.amax(dim=(-1, -2)), None
        if t == "avgpool":
            if l.get("global"):
                return self._avg(x, x.shape[-1], x.shape[-1]), None
            return self._avg(x, l["k"], l["stride"]), None
        if t == "clip":
            return torch.clamp(x, int(l["lo"]), int(l["hi"])), None
        if t == "flatten":
            return x.reshape(x.shape[0], -1), None
        raise DQTValueError(f"layer type {t!r} is not supported")

    @staticmethod
    def _chain(seq, first):
        out, prev = [], first
        for l in seq:
            l = dict(l)
            if l["type"] != "add":
                l["_src"] = l.get("input", prev)
            out.append(l)
            prev = l["name"]
        return out

    # ---- runner ----------------------------------------------------------------------
    def _bits_matrix(self, bits, N):
        static = [next(l for l in self.layers if l["name"] == q)["bits"] for q in self.qlayers]
        if bits is None:
            m = torch.tensor(static, dtype=torch.int64).repeat(N, 1)
        elif isinstance(bits, (int, np.integer)):
            m = torch.full((N, len(self.qlayers)), int(bits), dtype=torch.int64)
        elif isinstance(bits, dict):
            m = torch.tensor([int(bits.get(q, s)) for q, s in zip(self.qlayers, static)],
                             dtype=torch.int64).repeat(N, 1)
        else:
            m = torch.as_tensor(np.asarray(bits), dtype=torch.int64)
            if m.dim() == 1:
                m = m.repeat(N, 1)
        if m.shape != (N, len(self.qlayers)):
            raise DQTValueError(f"precision matrix has shape {tuple(m.shape)}, expected "
                                f"{(N, len(self.qlayers))}")
        bad = ~torch.isin(m, torch.tensor(self.B))
        if bad.any():
            raise DQTValueError(f"bit-width {int(m[bad][0])} is not in the candidate set B={self.B}")
        return m

    def _controller(self, tap):
        f = tap
        if f.dim() == 4:
            f = self._avg(f, f.shape[-1], f.shape[-1])
        f = f.reshape(f.shape[0], -1)
        env = {"_tap": f}
        for l in self._chain(self.ctrl["layers"], "_tap"):
            env[l["name"]], _ = self._layer(l, env, int(l["bits"]))
        logits = env[l["name"]].reshape(f.shape[0], len(self.ctrl["controlled"]), -1)
        idx = torch.argmax(logits, dim=-1)  # first maximal index, as numpy.argmax
        return torch.tensor(self.B, dtype=torch.int64)[idx], logits

    @torch.no_grad()
    def run(self, x, bits=None, want_acc: bool = False):
        """Run on unsigned input codes ``x`` [N, *input.shape].

        ``bits``: None (static widths), an int, a dict layer -> width, an array
        [N, len(qlayers)] or ``"dynamic"``. Returns ``(output, bits)``: int64 tensors, the
        output layer's values (logits: its accumulators) and the width per input and layer;
        with ``want_acc`` a third item maps layer name -> accumulator tensor.
        """
        x = torch.as_tensor(np.asarray(x)).to(torch.int64)
        shape = tuple(self.m["input"]["shape"])
        if tuple(x.shape[1:]) != shape:
            raise DQTValueError(f"input has shape {tuple(x.shape)}, expected [N, *{list(shape)}]")
        if x.numel() and (x.min() < 0 or x.max() > (1 << self.n) - 1):
            raise DQTValueError(f"input codes must lie in [0, {(1 << self.n) - 1}]")
        N = x.shape[0]
        seq = self._chain(self.layers, "input")
        qidx = {q: i for i, q in enumerate(self.qlayers)}
        out_name = self.m.get("output", seq[-1]["name"])
        split = 0
        if isinstance(bits, str):
            if bits != "dynamic" or self.ctrl is None:
                raise DQTValueError(f"bits={bits!r} needs 'dynamic' and an artifact with a controller")
            m = self._bits_matrix(None, N)
            split = [l["name"] for l in seq].index(self.ctrl["tap"]) + 1
        else:
            m = self._bits_matrix(bits, N)
        accs = {}
        env0 = {"input": x}

        def run_seq(layers_, env, brow, rows):
            for l in layers_:
                b = int(brow[qidx[l["name"]]]) if l["name"] in qidx else None
                env[l["name"]], acc = self._layer(l, env, b)
                if want_acc and acc is not None:
                    if l["name"] not in accs:
                        accs[l["name"]] = torch.zeros((N,) + tuple(acc.shape[1:]), dtype=torch.int64)
                    accs[l["name"]][rows] = acc

        if split:
            run_seq(seq[:split], env0, m[0], slice(None))
            cb, _ = self._controller(env0[self.ctrl["tap"]])
            for j, name in enumerate(self.ctrl["controlled"]):
                m[:, qidx[name]] = cb[:, j]
        uniq, inv = torch.unique(m, dim=0, return_inverse=True)
        out = None
        for g in range(uniq.shape[0]):
            rows = torch.nonzero(inv == g).reshape(-1)
            env = {k: v[rows] for k, v in env0.items()}
            run_seq(seq[split:], env, uniq[g], rows)
            y = env[out_name]
            if out is None:
                out = torch.zeros((N,) + tuple(y.shape[1:]), dtype=torch.int64)
            out[rows] = y
        return (out, m, accs) if want_acc else (out, m)
