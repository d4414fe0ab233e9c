"""Quantized networks as explicit layer graphs that map one-to-one onto the golden manifest.

:class:`QNet` runs a list of :class:`Node` s (conv2d, linear, maxpool, avgpool, flatten, add)
in order, each reading earlier nodes by name, exactly like ``golden.network.run_network``;
:mod:`training.export` walks the same list to write the artifact. Builders:
:func:`digits_cnn` (1x8x8 inputs) and :func:`resnet20` (CIFAR-style, 3x32x32).

Three ways to run a :class:`QNet`:

* ``forward_float``: the float network (ReLU, no quantization; BatchNorm with batch stats);
* ``forward(x, bits)``: fake-quantized at static precision (None: each layer's static width;
  int: all layers; dict: per layer) or ``"dynamic"`` (the controller picks the controlled
  layers' widths per input: hard Gumbel samples in training mode, argmax in eval mode).
  In training mode this is the differentiable float pass (straight-through estimators); in
  eval mode it is ``forward_codes``;
* ``forward_codes(x, bits)``: the evaluation pass on integers: every quantized layer
  accumulates exactly and requantizes with the exported M / 2^S (round half up, clamp), so
  its codes are the exported integer network's, layer for layer (the tests compare them
  with the golden runner on every element).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from golden.formats import DQTValueError

from .controller import Controller
from .layers import QAdd, QConv2d, QLinear, avg_codes, global_avg_codes
from .quant import QuantConfig

__all__ = ["Node", "QNet", "digits_cnn", "resnet20", "build_model", "ARCHS"]

QUANT = ("conv2d", "linear")


@dataclass
class Node:
    """One layer of the graph. ``src``: input node name (None: the previous node);
    ``inputs``: the two sources of an ``add``; ``params``: k / stride / global for pools."""

    name: str
    type: str
    src: str | None = None
    inputs: tuple = ()
    params: dict = field(default_factory=dict)


class QNet(nn.Module):
    """A quantization-aware network with an optional precision controller.

    Parameters
    ----------
    cfg : QuantConfig
    nodes : list of Node
    modules : dict
        name -> QConv2d / QLinear / QAdd for the nodes that carry parameters.
    input_shape : tuple
        Shape of one input (C, H, W).
    input_scale : float
        Real value of one input code (the manifest's ``input.scale``); inputs are
        quantized to clamp(round_half_even(x / scale), 0, 2^n - 1) first.
    tap : str or None
        Node whose output feeds the controller; ``controlled`` are the quantized layers
        after it whose width the controller picks.
    """

    def __init__(self, cfg: QuantConfig, nodes, modules, input_shape, input_scale: float,
                 tap=None, controlled=(), hidden: int = 64):
        super().__init__()
        self.cfg = cfg
        self.nodes = list(nodes)
        self.layers = nn.ModuleDict(modules)
        self.input_shape = tuple(input_shape)
        if not input_scale > 0:
            raise DQTValueError(f"input_scale={input_scale!r} must be > 0")
        self.input_scale = float(input_scale)
        names = [nd.name for nd in self.nodes]
        if len(set(names)) != len(names) or "input" in names:
            raise DQTValueError(f"node names {names} must be unique and not 'input'")
        self.qlayers = [nd.name for nd in self.nodes if nd.type in QUANT]
        self.static_bits = {q: cfg.n for q in self.qlayers}
        self.tap = tap
        self.controlled = list(controlled)
        self.controller = None
        if tap is not None:
            if tap not in names:
                raise DQTValueError(f"controller tap {tap!r} is not a node {names}")
            ti = names.index(tap)
            for c in self.controlled:
                if c not in self.qlayers or names.index(c) <= ti:
                    raise DQTValueError(f"controlled layer {c!r} must be a quantized layer "
                                        f"after the tap {tap!r}")
            if not self.controlled:
                raise DQTValueError("a controller needs at least one controlled layer")
            feat = self._shapes()[tap][0]
            self.controller = Controller(cfg, feat, len(self.controlled), hidden)
        self.macs = self._count_macs()

    # ---- structure -----------------------------------------------------------------
    @torch.no_grad()
    def _shapes(self):
        out = {}
        self._run_float(torch.zeros((1,) + self.input_shape), record=out)
        return {k: tuple(v.shape[1:]) for k, v in out.items()}

    def _count_macs(self):
        shapes = self._shapes()
        macs = {}
        for nd in self.nodes:
            if nd.type in QUANT:
                m = self.layers[nd.name]
                per_out = 1
                for d in shapes[nd.name]:
                    per_out *= d
                K = m.weight[0].numel()
                macs[nd.name] = per_out * K
        return macs

    def set_static_bits(self, bits) -> None:
        """Static width per quantized layer: an int for all, or a dict layer -> width."""
        if isinstance(bits, dict):
            for k, v in bits.items():
                if k not in self.qlayers:
                    raise DQTValueError(f"{k!r} is not a quantized layer {self.qlayers}")
                self.static_bits[k] = self.cfg.check_bits(v, f"bits[{k!r}]")
        else:
            b = self.cfg.check_bits(bits)
            for k in self.qlayers:
                self.static_bits[k] = b

    # ---- float path ----------------------------------------------------------------
    def _run_float(self, x, observe=False, record=None):
        env = {"input": x}
        prev = "input"
        for nd in self.nodes:
            src = nd.src or prev
            if nd.type in QUANT:
                y = self.layers[nd.name].forward_float(env[src], observe)
            elif nd.type == "add":
                y = self.layers[nd.name].forward_float(env[nd.inputs[0]], env[nd.inputs[1]], observe)
            else:
                y = self._plain(nd, env[src])
            env[nd.name] = y
            if record is not None:
                record[nd.name] = y
            prev = nd.name
        return env, prev

    def forward_float(self, x, observe: bool = False):
        """Float logits (fp32 reference network). ``observe`` feeds the activation EMAs,
        the controller's included."""
        env, last = self._run_float(x, observe)
        if observe and self.controller is not None:
            self.controller.forward_float(self._pool(env[self.tap]), observe=True)
        return env[last]

    @staticmethod
    def _pool(v):
        return v.mean(dim=(2, 3)) if v.dim() == 4 else v.reshape(v.shape[0], -1)

    def _plain(self, nd, v):
        p = nd.params
        if nd.type == "maxpool":
            k = v.shape[-1] if p.get("global") else p["k"]
            s = v.shape[-1] if p.get("global") else p["stride"]
            return F.max_pool2d(v, k, s)
        if nd.type == "avgpool":
            k = v.shape[-1] if p.get("global") else p["k"]
            s = v.shape[-1] if p.get("global") else p["stride"]
            return F.avg_pool2d(v, k, s)
        if nd.type == "flatten":
            return v.reshape(v.shape[0], -1)
        raise DQTValueError(f"unknown node type {nd.type!r}")

    # ---- quantized path ------------------------------------------------------------
    def quantize_input(self, x):
        s = self.input_scale
        return s * torch.clamp(torch.round(x / s), 0, (1 << self.cfg.n) - 1)

    def _resolve_bits(self, bits):
        if bits is None:
            return dict(self.static_bits)
        if isinstance(bits, dict):
            out = dict(self.static_bits)
            for k, v in bits.items():
                if k not in self.qlayers:
                    raise DQTValueError(f"{k!r} is not a quantized layer {self.qlayers}")
                out[k] = self.cfg.check_bits(v, f"bits[{k!r}]")
            return out
        b = self.cfg.check_bits(bits)
        return {k: b for k in self.qlayers}

    def forward(self, x, bits=None, tau: float = 1.0, detach_gates: bool = False,
                integer: bool | None = None):
        """Fake-quantized logits and an info dict.

        info: ``gates`` [N, C, len(B)] one-hot (dynamic only), ``probs`` (softmax of the
        controller logits), ``exp_bits`` (expected mean width over all quantized layers,
        differentiable) and ``exp_bitops`` (expected BitOPs / all-n BitOPs), batch means;
        in dynamic mode also per input (``exp_bits_per_input``, ``exp_bitops_per_input``).
        ``detach_gates``: the task loss of the dynamic pass sends no gradient to the
        controller (it learns from its own loss term then). ``integer``: run
        :meth:`forward_codes` (default: in eval mode, for nested scales).
        """
        if integer is None:
            integer = not self.training and self.cfg.scales == "nested"
        if integer:
            return self._eval_forward(x, bits)
        dynamic = isinstance(bits, str)
        if dynamic:
            if bits != "dynamic":
                raise DQTValueError(f"bits={bits!r}: use None, an int, a dict or 'dynamic'")
            if self.controller is None:
                raise DQTValueError("bits='dynamic' needs a model with a controller")
            bmap = dict(self.static_bits)
        else:
            bmap = self._resolve_bits(bits)
        info = {}
        s_in = torch.tensor(self.input_scale)
        env = {"input": (self.quantize_input(x), s_in)}
        prev = "input"
        cidx = {c: i for i, c in enumerate(self.controlled)}
        gates = None
        for nd in self.nodes:
            src = nd.src or prev
            if nd.type in QUANT:
                v, s = env[src]
                m = self.layers[nd.name]
                b = gates[:, cidx[nd.name]] if (gates is not None and nd.name in cidx) \
                    else bmap[nd.name]
                env[nd.name] = (m(v, s, b), m.out_scale())
            elif nd.type == "add":
                (v1, _), (v2, _) = env[nd.inputs[0]], env[nd.inputs[1]]
                m = self.layers[nd.name]
                env[nd.name] = (m(v1, v2), m.out_scale())
            elif nd.type == "avgpool":
                v, s = env[src]
                if not nd.params.get("global"):
                    raise DQTValueError("only global average pooling is supported in training")
                env[nd.name] = (global_avg_codes(v, s)[:, :, None, None], s)
            else:
                v, s = env[src]
                env[nd.name] = (self._plain(nd, v), s)
            if dynamic and nd.name == self.tap:
                tv, ts = env[nd.name]
                feat = global_avg_codes(tv, ts) if tv.dim() == 4 else tv.reshape(tv.shape[0], -1)
                logits = self.controller.logits(feat, ts)
                gates = self.controller.gates(logits.detach() if detach_gates else logits,
                                              tau, sample=self.training)
                probs = torch.softmax(logits, dim=-1)
                info.update(gates=gates, probs=probs, logits=logits)
            prev = nd.name
        info.update(self._expected_cost(info.get("probs"), bmap))
        return env[prev][0], info

    def _eval_forward(self, x, bits):
        """Eval-mode ``forward``: :meth:`forward_codes`, logits as real values (acc · step)."""
        r = self.forward_codes(x, bits)
        info = {"codes": r["codes"], "chosen_bits": r["bits"]}
        if "ctrl_logits" in r:
            B = torch.tensor(self.cfg.B)
            ci = [self.qlayers.index(c) for c in self.controlled]
            idx = (r["bits"][:, ci, None] == B).to(torch.float32).argmax(-1)
            info["gates"] = torch.nn.functional.one_hot(idx, len(B)).to(torch.float32)
            info["probs"] = torch.softmax(r["ctrl_logits"].double(), -1).float()
        bmap = {q: int(r["bits"][0, i]) for i, q in enumerate(self.qlayers)}
        info.update(self._expected_cost(info.get("probs"), bmap))
        return (r["logits"].double() * r["logit_scale"]).float(), info

    def _bits_matrix(self, bits, N):
        if isinstance(bits, str):
            if bits != "dynamic":
                raise DQTValueError(f"bits={bits!r}: use None, an int, a dict or 'dynamic'")
            if self.controller is None:
                raise DQTValueError("bits='dynamic' needs a model with a controller")
            bits = None
        if torch.is_tensor(bits) or isinstance(bits, np.ndarray):
            m = torch.as_tensor(np.asarray(bits), dtype=torch.int64)
            if m.shape != (N, len(self.qlayers)) or not torch.isin(m, torch.tensor(self.cfg.B)).all():
                raise DQTValueError(f"per-input widths must be [{N}, {len(self.qlayers)}] "
                                    f"values in B={list(self.cfg.B)}")
            return m.clone()
        bmap = self._resolve_bits(bits)
        return torch.tensor([[bmap[q] for q in self.qlayers]], dtype=torch.int64).repeat(N, 1)

    def quantize_input_codes(self, x):
        """Input codes as the host step of the golden runner: clamp(rint(x / scale)) in
        binary64 (``golden.network.quantize_input``)."""
        q = torch.round(torch.as_tensor(x).double() / self.input_scale)
        return torch.clamp(q, 0, (1 << self.cfg.n) - 1).to(torch.int64)

    @torch.no_grad()
    def forward_codes(self, x, bits=None):
        """Integer evaluation pass (see the module doc). ``bits`` as in ``forward``, or an
        int array [N, len(qlayers)]. Returns a dict: ``logits`` (int64 accumulators of the
        last layer), ``logit_scale`` (real value of one unit), ``bits`` [N, len(qlayers)],
        ``codes`` {node: int64 output codes} and, in dynamic mode, ``ctrl_logits``."""
        if self.cfg.scales != "nested":
            raise DQTValueError("a model with independent per-width scales has no integer form")
        q0 = self.quantize_input_codes(x)
        N = q0.shape[0]
        bm = self._bits_matrix(bits, N)
        qi = {q: i for i, q in enumerate(self.qlayers)}
        env = {"input": (q0, torch.tensor(self.input_scale))}
        out = {"codes": {}}
        prev = "input"
        for nd in self.nodes:
            src = nd.src or prev
            if nd.type in QUANT:
                y = self._layer_codes(self.layers[nd.name], *env[src], bm[:, qi[nd.name]])
                env[nd.name] = (y, self.layers[nd.name].out_scale())
            elif nd.type == "add":
                (v1, s1), (v2, s2) = env[nd.inputs[0]], env[nd.inputs[1]]
                m = self.layers[nd.name]
                env[nd.name] = (m.forward_codes(v1, s1, v2, s2), m.out_scale())
            elif nd.type == "avgpool":
                v, s = env[src]
                if not nd.params.get("global"):
                    raise DQTValueError("only global average pooling is supported in training")
                env[nd.name] = (avg_codes(v)[:, :, None, None], s)
            else:
                v, s = env[src]
                env[nd.name] = (self._plain(nd, v.double()).to(torch.int64) if nd.type == "maxpool"
                                else self._plain(nd, v), s)
            out["codes"][nd.name] = env[nd.name][0]
            if isinstance(bits, str) and nd.name == self.tap:
                cb, out["ctrl_logits"] = self._controller_codes(*env[nd.name])
                for j, c in enumerate(self.controlled):
                    bm[:, qi[c]] = cb[:, j]
            prev = nd.name
        last = self.layers[self.qlayers[-1]]
        out.update(logits=env[prev][0], bits=bm, logit_scale=float(
            last.acc_scale(env[self._src_of(self.qlayers[-1])][1]).double().max()))
        return out

    def _src_of(self, name):
        prev = "input"
        for nd in self.nodes:
            if nd.name == name:
                return nd.src or prev
            prev = nd.name
        raise KeyError(name)

    @staticmethod
    def _layer_codes(m, q, s, col):
        """A quantized layer on codes with one width per input (``col`` [N])."""
        p = m.int_params(s)
        widths = torch.unique(col)
        if len(widths) == 1:
            return m.forward_codes(q, s, int(widths[0]), p)
        y = None
        for b in widths:
            rows = torch.nonzero(col == b).reshape(-1)
            yb = m.forward_codes(q[rows], s, int(b), p)
            if y is None:
                y = torch.zeros((q.shape[0],) + tuple(yb.shape[1:]), dtype=torch.int64)
            y[rows] = yb
        return y

    def _controller_codes(self, tv, ts):
        """Chosen widths [N, C] and integer logits [N, C, len(B)] (golden controller rule:
        global average of the tap codes, two integer linear layers, first argmax)."""
        c = self.controller
        f = avg_codes(tv) if tv.dim() == 4 else tv.reshape(tv.shape[0], -1)
        h = c.fc1.forward_codes(f, ts, c.bits)
        z = c.fc2.forward_codes(h, c.fc1.out_scale(), c.bits)
        z = z.reshape(f.shape[0], c.n_controlled, -1)
        return torch.tensor(self.cfg.B, dtype=torch.int64)[torch.argmax(z, dim=-1)], z

    def _expected_cost(self, probs, bmap):
        B = torch.tensor(self.cfg.B, dtype=torch.float32)
        n = self.cfg.n
        tot_macs = sum(self.macs.values())
        bits_sum, bitops = 0.0, 0.0
        for q in self.qlayers:
            if probs is not None and q in self.controlled:
                p = probs[:, self.controlled.index(q)]
                eb, eb2 = (p * B).sum(-1), (p * B * B).sum(-1)
            else:
                eb, eb2 = float(bmap[q]), float(bmap[q] ** 2)
            bits_sum = bits_sum + eb
            bitops = bitops + self.macs[q] * eb2
        exp_bits = bits_sum / len(self.qlayers)
        exp_bitops = bitops / (tot_macs * n * n)
        out = {}
        if torch.is_tensor(exp_bits):
            out = {"exp_bits_per_input": exp_bits, "exp_bitops_per_input": exp_bitops}
            exp_bits, exp_bitops = exp_bits.mean(), exp_bitops.mean()
        out.update(exp_bits=exp_bits, exp_bitops=exp_bitops)
        return out

    def act_quantizers(self):
        from .quant import ActQuantizer
        return [m for m in self.modules() if isinstance(m, ActQuantizer)]


def digits_cnn(cfg: QuantConfig, width: int = 16, hidden: int = 64, controller: bool = True,
               first_bits: int | None = None) -> QNet:
    """Small CNN for 1x8x8 digits: conv(16)-conv(32)-pool-conv(64)-pool-fc(10).

    The controller taps ``conv1``; it picks the widths of conv2, conv3 and fc. Input codes:
    pixel values 0..16 at scale 1/15 (code = 15 · pixel, exact at 8 bits).
    """
    w = width
    nodes = [
        Node("conv1", "conv2d"),
        Node("conv2", "conv2d"),
        Node("pool1", "maxpool", params={"k": 2, "stride": 2}),
        Node("conv3", "conv2d"),
        Node("pool2", "maxpool", params={"k": 2, "stride": 2}),
        Node("flat", "flatten"),
        Node("fc", "linear"),
    ]
    mods = {
        "conv1": QConv2d(cfg, 1, w, 3, 1, 1),
        "conv2": QConv2d(cfg, w, 2 * w, 3, 1, 1),
        "conv3": QConv2d(cfg, 2 * w, 4 * w, 3, 1, 1),
        "fc": QLinear(cfg, 4 * w * 4, 10, relu=False, requant=False, per_channel=False),
    }
    net = QNet(cfg, nodes, mods, (1, 8, 8), 1.0 / 15.0,
               tap="conv1" if controller else None,
               controlled=("conv2", "conv3", "fc") if controller else (), hidden=hidden)
    if first_bits is not None:
        net.set_static_bits({"conv1": first_bits})
    return net


def resnet20(cfg: QuantConfig, num_classes: int = 10, width: int = 16, blocks: int = 3,
             controller: bool = True, hidden: int = 64) -> QNet:
    """CIFAR-style ResNet (He et al. 2016; ``blocks=3`` is ResNet-20) on 3x32x32 inputs.

    Convolutions carry BatchNorm (folded for quantization). Every block is
    ``add(conv_b(conv_a(x)), shortcut)`` with the add as a golden ``add`` layer; since
    activation codes are unsigned, conv_b's output is clamped at 0 before the add (a ReLU
    before the add, then the add's unsigned output clamp). Downsampling shortcuts are 1x1
    stride-2 convolutions. Input codes: 8-bit pixels at scale 1/255.
    """
    if isinstance(blocks, bool) or not isinstance(blocks, int) or blocks < 1:
        raise DQTValueError(f"blocks={blocks!r} must be a positive integer")
    nodes = [Node("stem", "conv2d")]
    mods = {"stem": QConv2d(cfg, 3, width, 3, 1, 1, bn=True)}
    prev, cin = "stem", width
    for stage in range(3):
        cout = width << stage
        for blk in range(blocks):
            stride = 2 if stage > 0 and blk == 0 else 1
            p = f"s{stage + 1}b{blk + 1}"
            nodes.append(Node(f"{p}_a", "conv2d", src=prev))
            mods[f"{p}_a"] = QConv2d(cfg, cin, cout, 3, stride, 1, bn=True)
            nodes.append(Node(f"{p}_b", "conv2d"))
            mods[f"{p}_b"] = QConv2d(cfg, cout, cout, 3, 1, 1, relu=False, bn=True)
            short = prev
            if stride != 1 or cin != cout:
                nodes.append(Node(f"{p}_sc", "conv2d", src=prev))
                mods[f"{p}_sc"] = QConv2d(cfg, cin, cout, 1, stride, 0, relu=False, bn=True)
                short = f"{p}_sc"
            nodes.append(Node(f"{p}_add", "add", inputs=(f"{p}_b", short)))
            mods[f"{p}_add"] = QAdd(cfg)
            prev, cin = f"{p}_add", cout
    nodes += [Node("gap", "avgpool", src=prev, params={"global": True}),
              Node("flat", "flatten"), Node("fc", "linear")]
    mods["fc"] = QLinear(cfg, cin, num_classes, relu=False, requant=False, per_channel=False)
    q = [nd.name for nd in nodes if nd.type in QUANT]
    return QNet(cfg, nodes, mods, (3, 32, 32), 1.0 / 255.0,
                tap="stem" if controller else None,
                controlled=tuple(q[1:]) if controller else (), hidden=hidden)


ARCHS = {"digits_cnn": digits_cnn, "resnet20": resnet20}


def build_model(arch: str, cfg: QuantConfig, **kw) -> QNet:
    """Build a named architecture (``ARCHS``) with keyword options."""
    if arch not in ARCHS:
        raise DQTValueError(f"architecture {arch!r} is not one of {sorted(ARCHS)}")
    return ARCHS[arch](cfg, **kw)
