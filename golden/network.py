"""Integer network artifact (versioned JSON manifest + .npz) and the golden network runner.

Artifact layout (a directory)::

    manifest.json   format, format_version, n, B, mode, input, layers, output, controller,
                    arrays (name -> shape, dtype, sha256), metadata
    weights.npz     the arrays, loaded with allow_pickle=False

The manifest schema is documented in ``docs/artifact.md``. Every check failure raises
:class:`ArtifactError` naming the field and the allowed values.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import layers as L
from .atomic import atomic_write_dir
from .formats import AccumulatorSpec, AddConstants, DQTValueError, IntFormat, NestedMode, \
    Overflow, RequantRule, MAX_MASTER_WIDTH
from .loader import ArtifactError, read_arrays, read_json
from .shapes import propagate_shapes

__all__ = [
    "FORMAT", "FORMAT_VERSION", "ArtifactError", "Network", "RunResult", "array_sha256",
    "save_network", "load_network", "atomic_write_dir", "validate_network", "run_network", "quantize_input",
    "QUANT_TYPES",
]

FORMAT = "dqt-integer-network"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
ARRAYS = "weights.npz"
QUANT_TYPES = ("linear", "conv2d")
LAYER_TYPES = QUANT_TYPES + ("maxpool", "avgpool", "add", "clip", "flatten")


def array_sha256(a: np.ndarray) -> str:
    """sha256 of the array's C-order bytes (dtype and shape are checked separately)."""
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def _fail(field_, msg):
    raise ArtifactError(f"{field_}: {msg}")


def _check_finite(obj, path="manifest"):
    if isinstance(obj, float) and not math.isfinite(obj):
        _fail(path, f"{obj!r} is not a finite number (NaN and inf are not allowed)")
    if isinstance(obj, dict):
        for k, v in obj.items():
            _check_finite(v, f"{path}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            _check_finite(v, f"{path}[{i}]")


def _range_text(lo, hi) -> str:
    """'[lo, hi]' with an open end written as -inf / inf: '[1e-30, inf)'."""
    return f"{'(-inf' if lo is None else f'[{lo}'}, {'inf)' if hi is None else f'{hi}]'}"


def _type_names(types) -> str:
    ts = types if isinstance(types, tuple) else (types,)
    names = {dict: "object", list: "list", str: "string", int: "integer", float: "number",
             bool: "boolean"}
    return " or ".join(names.get(t, t.__name__) for t in ts)


def _req(d, key, where, types=None, choices=None, lo=None, hi=None):
    if not isinstance(d, dict):
        _fail(where, f"must be a JSON object, got {type(d).__name__}")
    if key not in d:
        _fail(f"{where}.{key}", "missing")
    v = d[key]
    ts = types if isinstance(types, tuple) else (types,)
    if types is not None and (not isinstance(v, types) or isinstance(v, bool) and bool not in ts):
        _fail(f"{where}.{key}", f"{v!r} has type {type(v).__name__}, expected {_type_names(types)}")
    if choices is not None and v not in choices:
        _fail(f"{where}.{key}", f"{v!r} is not one of {list(choices)}")
    if lo is not None and v < lo or hi is not None and v > hi:
        _fail(f"{where}.{key}", f"{v!r} is outside the allowed range {_range_text(lo, hi)}")
    return v


@dataclass
class Network:
    """A loaded, validated integer network: the manifest dict and its arrays."""

    manifest: dict
    arrays: dict
    path: Path | None = None

    @property
    def n(self) -> int:
        return self.manifest["n"]

    @property
    def candidate_bits(self) -> list[int]:
        return list(self.manifest["candidate_bits"])

    @property
    def mode(self) -> str:
        return self.manifest["mode"]

    @property
    def layers(self) -> list[dict]:
        return self.manifest["layers"]

    @property
    def qlayers(self) -> list[str]:
        """Names of the quantized (precision-switchable) backbone layers, in order."""
        return [l["name"] for l in self.layers if l["type"] in QUANT_TYPES]

    @property
    def controller(self) -> dict | None:
        return self.manifest.get("controller")

    @property
    def shapes(self) -> dict:
        """Input and output shape of every layer (:func:`golden.shapes.propagate_shapes`)."""
        s = self.__dict__.get("_shapes")
        if s is None:
            s = self.__dict__["_shapes"] = propagate_shapes(self.manifest, self.arrays)
        return s

    def layer(self, name) -> dict:
        for l in self.layers + (self.controller["layers"] if self.controller else []):
            if l["name"] == name:
                return l
        raise KeyError(name)


#: Every exact accumulator stays at or below this in magnitude (docs/arithmetic.md section 6,
#: "Exactness bound"): K * 2^(2n-1) + max|bias| <= 2^62. The margin to int64 covers the fast
#: path's centred operands and the wrap policy's offset of 2^(W-1) <= 2^61.
ACC_BOUND = 1 << 62
#: acc * M + 2^(S-1) and the add operator's sum must stay at or below int64's largest value.
INT64_MAX = (1 << 63) - 1
#: The add operator's constants are signed 48-bit (golden.formats.AddConstants, m_bits=48).
ADD_M_BITS = 48


def _check_accumulator(l, where, K, n, bias, M):
    """Exact-or-refused: admit a layer only when int64 holds every value the golden model
    computes for it (docs/arithmetic.md section 6)."""
    W = l["acc_width"]
    lim = 1 << (W - 1)
    room = ACC_BOUND - K * (1 << (2 * n - 1))
    top = max(abs(int(bias.min())), abs(int(bias.max()))) if bias.size else 0
    if room < 0 or top > room:
        _fail(f"{where}.bias", f"K={K} sums of n={n}-bit products plus a bias of magnitude {top} "
              f"can exceed 2^62 (need K * 2^(2n-1) + max|bias| <= 2^62)")
    if not l["requant"]:
        return
    if l["rule"] == "gemmlowp":
        if W > 32:
            _fail(f"{where}.acc_width", f"{W} is outside [2, 32]: rule 'gemmlowp' needs int32 "
                  "accumulators")
        if M.size and (M.min() < (1 << 30) or M.max() >= 1 << 31):
            _fail(f"{where}.M", "gemmlowp multipliers must lie in [2^30, 2^31 - 1]")
        return
    m = int(M.max(initial=0))
    if m * lim + (1 << l["S"] >> 1) > INT64_MAX:
        _fail(f"{where}.M", f"max multiplier {m} times the {W}-bit accumulator range exceeds "
              f"int64 (need max(M) * 2^(W-1) + 2^(S-1) < 2^63; lower acc_width or M)")


def _validate_qlayer(l, where, arrays, n, B, expected_arrays):
    kind = l["type"]
    for key in ("weight", "bias", "M"):
        name = _req(l, key, where, str)
        if name not in arrays:
            _fail(f"{where}.{key}", f"array {name!r} is not in {ARRAYS}")
        expected_arrays.add(name)
    w = arrays[l["weight"]]
    want_dim = 2 if kind == "linear" else 4
    if w.ndim != want_dim or 0 in w.shape:
        _fail(f"{where}.weight", f"shape {list(w.shape)} must have {want_dim} non-zero "
              f"dimensions for {kind}")
    if w.dtype.kind != "i":
        _fail(f"{where}.weight", f"dtype {w.dtype} must be a signed integer type")
    fmt = IntFormat(n, True)
    if w.min() < fmt.lo or w.max() > fmt.hi:
        _fail(f"{where}.weight", f"codes must lie in [{fmt.lo}, {fmt.hi}] for n={n}")
    O = w.shape[0]
    for key in ("bias", "M"):
        a = arrays[l[key]]
        if a.shape != (O,):
            _fail(f"{where}.{key}", f"shape {list(a.shape)} must be [{O}] (one per output channel)")
        if a.dtype != np.int64:
            _fail(f"{where}.{key}", f"dtype {a.dtype} must be int64")
    _req(l, "bits", where, int, choices=B)
    _req(l, "S", where, int, lo=0, hi=62)
    _req(l, "acc_width", where, int, lo=2, hi=62)
    _req(l, "overflow", where, str, choices=[o.value for o in Overflow])
    _req(l, "rule", where, str, choices=[r.value for r in RequantRule])
    _req(l, "relu", where, bool)
    _req(l, "requant", where, bool)
    if l.get("clip") is not None:
        _req(l, "clip", where, int, lo=0, hi=(1 << n) - 1)
    if kind == "conv2d":
        _req(l, "stride", where, int, lo=1, hi=64)
        _req(l, "padding", where, int, lo=0, hi=64)
    M = arrays[l["M"]]
    if M.min() < 0 or M.max() >= 1 << 40:
        _fail(f"{where}.M", "multipliers must lie in [0, 2^40)")
    _check_accumulator(l, where, int(np.prod(w.shape[1:])), n, arrays[l["bias"]], M)


def _validate_add(l, where, names, n):
    ins = _req(l, "inputs", where, list)
    if len(ins) != 2 or any(not isinstance(x, str) or x not in names for x in ins):
        _fail(f"{where}.inputs", f"{ins!r} must name two earlier layers")
    lim = 1 << (ADD_M_BITS - 1)
    Ms = [_req(l, key, where, int, lo=-lim, hi=lim - 1) for key in ("M1", "M2", "M3")]
    S = _req(l, "S", where, int, lo=0, hi=62)
    top = (1 << n) - 1
    if (abs(Ms[0]) + abs(Ms[1])) * top + abs(Ms[2]) + (1 << S >> 1) > INT64_MAX:
        _fail(f"{where}.M1", f"M1 * q1 + M2 * q2 + M3 + 2^(S-1) can exceed int64 for {n}-bit "
              "codes (need (|M1| + |M2|) * (2^n - 1) + |M3| + 2^(S-1) < 2^63)")


def _validate_header(manifest):
    if not isinstance(manifest, dict):
        _fail("manifest", "must be a JSON object")
    _check_finite(manifest)
    fmt = manifest.get("format")
    if fmt != FORMAT:
        hint = " (this looks like the manifest of 'dqt rtl generate')" if "modules" in manifest else ""
        _fail("manifest.format", f"{fmt!r}: not a DQT network artifact, expected {FORMAT!r}{hint}")
    _req(manifest, "format_version", "manifest", int, choices=[FORMAT_VERSION])
    n = _req(manifest, "n", "manifest", int, lo=2, hi=MAX_MASTER_WIDTH)
    B = _req(manifest, "candidate_bits", "manifest", list)
    if not B or any(not isinstance(b, int) or isinstance(b, bool) or b < 1 or b > n for b in B):
        _fail("manifest.candidate_bits", f"{B!r} must be a non-empty list of integers in [1, n={n}]")
    if len(set(B)) != len(B):
        _fail("manifest.candidate_bits", f"{B!r} has duplicates")
    _req(manifest, "mode", "manifest", str, choices=[m.value for m in NestedMode])
    inp = _req(manifest, "input", "manifest", dict)
    shape = _req(inp, "shape", "manifest.input", list)
    if not shape or any(not isinstance(s, int) or isinstance(s, bool) or s < 1 for s in shape):
        _fail("manifest.input.shape", f"{shape!r} must be a list of positive integers")
    _req(inp, "scale", "manifest.input", (float, int), lo=1e-30)
    _req(inp, "zero_point", "manifest.input", int, choices=[0])
    if "metadata" in manifest:
        _req(manifest, "metadata", "manifest", dict)
    return n, B


def _validate_arrays_table(manifest, arrays, check_hashes):
    decl = _req(manifest, "arrays", "manifest", dict)
    for name in arrays:
        if name not in decl:
            _fail(f"manifest.arrays.{name}", f"array present in {ARRAYS} but not declared")
    for name, meta in decl.items():
        where = f"manifest.arrays.{name}"
        if name not in arrays:
            _fail(where, f"declared but missing from {ARRAYS}")
        a = arrays[name]
        if list(a.shape) != _req(meta, "shape", where, list):
            _fail(f"{where}.shape", f"declared {meta['shape']} but the array has {list(a.shape)}")
        if str(a.dtype) != _req(meta, "dtype", where, str):
            _fail(f"{where}.dtype", f"declared {meta['dtype']} but the array has {a.dtype}")
        if check_hashes and array_sha256(a) != _req(meta, "sha256", where, str):
            _fail(f"{where}.sha256", "hash mismatch: the array does not match the manifest")
    return decl


def _validate_layers(seq, prefix, names, arrays, n, B, expected):
    """Field checks of a layer list; ``names`` (earlier layer names) grows as it goes."""
    prev = "input" if prefix == "layers" else "_tap"
    chain = {prev}  # controller layers read the pooled tap or an earlier controller layer
    for i, l in enumerate(seq):
        where = f"manifest.{prefix}[{i}]"
        if not isinstance(l, dict):
            _fail(where, "must be an object")
        name = _req(l, "name", where, str)
        if name in names or name in ("input", "_tap"):
            _fail(f"{where}.name", f"{name!r} is used twice or reserved")
        t = _req(l, "type", where, str, choices=LAYER_TYPES)
        if t == "add":
            _validate_add(l, where, names, n)
        else:
            src = l.get("input", prev)
            ok = names if prefix == "layers" else chain
            if not isinstance(src, str) or src not in ok:
                _fail(f"{where}.input", f"{src!r} does not name an earlier layer"
                      + (" or 'input'" if prefix == "layers" else " (controller layers chain)"))
        if t in QUANT_TYPES:
            _validate_qlayer(l, where, arrays, n, B, expected)
        elif t in ("maxpool", "avgpool"):
            is_global = l.get("global", False)
            if not isinstance(is_global, bool):
                _fail(f"{where}.global", f"{is_global!r} must be true or false")
            if not is_global:
                _req(l, "k", where, int, lo=1, hi=64)
                _req(l, "stride", where, int, lo=1, hi=64)
        elif t == "clip":
            lo = _req(l, "lo", where, int, lo=0, hi=(1 << n) - 1)
            _req(l, "hi", where, int, lo=lo, hi=(1 << n) - 1)
        names.add(name)
        chain.add(name)
        prev = name


def _validate_controller(ctrl, layers, names, arrays, n, B, expected):
    _req(ctrl, "tap", "manifest.controller", str, choices=sorted(names - {"input"}))
    cl = _req(ctrl, "layers", "manifest.controller", list)
    if not cl or any(not isinstance(l, dict) or l.get("type") != "linear" for l in cl):
        _fail("manifest.controller.layers", "must be a non-empty list of linear layers")
    _validate_layers(cl, "controller.layers", set(names), arrays, n, B, expected)
    controlled = _req(ctrl, "controlled", "manifest.controller", list)
    qnames = [l["name"] for l in layers if l["type"] in QUANT_TYPES]
    order = [l["name"] for l in layers]
    tap_i = order.index(ctrl["tap"])
    for c in controlled:
        if not isinstance(c, str) or c not in qnames:
            _fail("manifest.controller.controlled", f"{c!r} is not a quantized layer {qnames}")
        if order.index(c) <= tap_i:
            _fail("manifest.controller.controlled",
                  f"{c!r} runs before the controller's tap {ctrl['tap']!r}")
    if len(set(controlled)) != len(controlled):
        _fail("manifest.controller.controlled", f"{controlled!r} names a layer twice")
    last = cl[-1]
    O = arrays[last["weight"]].shape[0]
    if O != len(controlled) * len(B):
        _fail("manifest.controller.layers", f"last layer has {O} outputs, expected "
              f"len(controlled) * len(B) = {len(controlled) * len(B)}")


def validate_network(manifest: dict, arrays: dict, check_hashes: bool = True) -> dict:
    """Check a manifest and its arrays; raise :class:`ArtifactError` naming the first problem.
    Returns the shapes of every layer (:func:`golden.shapes.propagate_shapes`)."""
    n, B = _validate_header(manifest)
    decl = _validate_arrays_table(manifest, arrays, check_hashes)
    expected = set()
    names = {"input"}
    layers = _req(manifest, "layers", "manifest", list)
    if not layers:
        _fail("manifest.layers", "must hold at least one layer")
    _validate_layers(layers, "layers", names, arrays, n, B, expected)
    out = manifest.get("output", layers[-1]["name"])
    if not isinstance(out, str) or out not in names - {"input"}:
        _fail("manifest.output", f"{out!r} does not name a layer")
    ctrl = manifest.get("controller")
    if ctrl is not None:
        _validate_controller(ctrl, layers, names, arrays, n, B, expected)
    unused = set(decl) - expected
    if unused:
        _fail("manifest.arrays", f"arrays {sorted(unused)} are not used by any layer")
    return propagate_shapes(manifest, arrays)


def _write_npz(path: Path, arrays: dict) -> None:
    """An .npz numpy reads back with allow_pickle=False, byte-reproducible: sorted members
    with a fixed timestamp (np.savez stamps the current time into the zip)."""
    import io
    import zipfile
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as z:
        for k in sorted(arrays):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, arrays[k], allow_pickle=False)
            info = zipfile.ZipInfo(f"{k}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            z.writestr(info, buf.getvalue())


def save_network(out_dir, manifest: dict, arrays: dict) -> Path:
    """Fill in ``arrays`` metadata and hashes, validate, and write the artifact atomically."""
    manifest = json.loads(json.dumps(manifest))  # deep copy, JSON types only
    arrays = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
    manifest["format"] = FORMAT
    manifest["format_version"] = FORMAT_VERSION
    manifest["arrays"] = {k: {"shape": list(a.shape), "dtype": str(a.dtype), "sha256": array_sha256(a)}
                          for k, a in sorted(arrays.items())}
    validate_network(manifest, arrays)

    def writer(tmp: Path):
        _write_npz(tmp / ARRAYS, arrays)
        with open(tmp / MANIFEST, "w") as f:
            json.dump(manifest, f, indent=1, sort_keys=True, allow_nan=False)
            f.write("\n")

    atomic_write_dir(Path(out_dir), writer)
    return Path(out_dir)


def load_network(path) -> Network:
    """Load and validate an artifact directory (or its manifest.json). Every failure, from a
    missing or damaged file to a field out of range, raises :class:`ArtifactError`."""
    p = Path(path)
    if p.is_file() and p.name == MANIFEST:
        p = p.parent
    if not (p / MANIFEST).is_file():
        raise ArtifactError(f"{p}: no {MANIFEST} here (expected an artifact directory)")
    manifest = read_json(p / MANIFEST, MANIFEST)
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        _validate_header(manifest)  # names what the file is instead of a missing weights.npz
    arrays = read_arrays(p / ARRAYS, ARRAYS)
    shapes = validate_network(manifest, arrays)
    for a in arrays.values():  # a loaded network is immutable (lets the runner cache weights)
        while isinstance(a, np.ndarray):
            a.setflags(write=False)
            a = a.base
    net = Network(manifest, arrays, p)
    net.__dict__["_shapes"] = shapes
    return net


def quantize_input(net: Network, x: np.ndarray) -> np.ndarray:
    """Host step: float input -> unsigned n-bit codes, clamp(round_half_even(x / scale))."""
    s = net.manifest["input"]["scale"]
    q = np.rint(np.asarray(x, dtype=np.float64) / s)
    return np.clip(q, 0, (1 << net.n) - 1).astype(np.int64)


@dataclass
class RunResult:
    """What :func:`run_network` returns. Arrays are batch-first."""

    output: np.ndarray
    bits: np.ndarray                     # [N, len(qlayers)] precision used per input
    qlayers: list
    overflow: dict = field(default_factory=dict)   # layer -> overflow event count
    ops: dict = field(default_factory=dict)        # layer -> {macs, bitops, shifts}
    traces: dict = field(default_factory=dict)     # layer -> {input, output[, acc]}
    controller_logits: np.ndarray | None = None

    def totals(self) -> dict:
        t = {"macs": 0, "bitops": 0, "shifts": 0}
        for v in self.ops.values():
            for k in t:
                t[k] += v[k]
        t["overflow"] = int(sum(self.overflow.values()))
        return t


def _read_only(a) -> bool:
    while isinstance(a, np.ndarray):
        if a.flags.writeable:
            return False
        a = a.base
    return True


def _prepared(net, l, w, bits, kind):
    """Prepared weights of layer ``l`` at ``bits``, cached on the network while its weight
    array (and every array it views) is read-only, as after :func:`load_network`."""
    if not _read_only(w):
        return None
    cache = net.__dict__.setdefault("_prepared", {})
    key = (l["name"], bits)
    hit = cache.get(key)
    if hit is None or hit[0] is not w:
        hit = cache[key] = (w, L.prepare_weights(w, net.n, bits, net.mode, kind))
    return hit[1]


def _run_layer(net, l, env, bits, impl, want_acc):
    """Run one layer on env values; returns (output, overflow_count, ops, acc or None)."""
    n, t = net.n, l["type"]
    if t == "add":
        c = AddConstants(l["M1"], l["M2"], l["M3"], l["S"], IntFormat(n, False), m_bits=48)
        return L.add(env[l["inputs"][0]], env[l["inputs"][1]], c), 0, None, None
    x = env[l["_src"]]
    if t in QUANT_TYPES:
        A = net.arrays
        w = A[l["weight"]]
        acc = AccumulatorSpec(l["acc_width"], l["overflow"])
        a, over = L.qdense_acc(x, w, A[l["bias"]], n, bits, net.mode, acc, t,
                               l.get("stride", 1), l.get("padding", 0), impl,
                               _prepared(net, l, w, bits, t) if impl == "fast" else None)
        if l["requant"]:
            M = A[l["M"]][:, None, None] if t == "conv2d" else A[l["M"]]
            y = L.requantize(a, M, l["S"], IntFormat(n, False), 0, l["rule"],
                             lo=0 if l["relu"] else None, hi=l.get("clip"))
        else:
            y = a
        N = x.shape[0]
        per_out = int(np.prod(a.shape[2:])) if a.ndim == 4 else 1
        K = int(np.prod(w.shape[1:]))
        macs = N * w.shape[0] * per_out * K
        shifts = 0 if bits == n else N * (w.size + int(np.prod(x.shape[1:])))
        ops = {"macs": macs, "bitops": macs * bits * bits, "shifts": shifts}
        return y, int(over.sum()), ops, (a if want_acc else None)
    if t == "maxpool":
        k = x.shape[-1] if l.get("global") else l["k"]
        return L.max_pool(x, k, x.shape[-1] if l.get("global") else l["stride"]), 0, None, None
    if t == "avgpool":
        if l.get("global"):
            if x.shape[-1] != x.shape[-2]:
                raise DQTValueError(f"global avgpool needs a square input, got {x.shape}")
            return L.avg_pool(x, x.shape[-1], x.shape[-1]), 0, None, None
        return L.avg_pool(x, l["k"], l["stride"]), 0, None, None
    if t == "clip":
        return L.clip(x, l["lo"], l["hi"]), 0, None, None
    if t == "flatten":
        return x.reshape(x.shape[0], -1), 0, None, None
    raise DQTValueError(f"unknown layer type {t!r}")


def _resolve_sources(seq, first):
    prev = first
    for l in seq:
        if l["type"] != "add":
            l.setdefault("_src", l.get("input", prev))
        prev = l["name"]


def _bits_matrix(net, bits, N):
    q = net.qlayers
    B = net.candidate_bits
    static = [net.layer(name)["bits"] for name in q]
    if bits is None:
        m = np.tile(np.array(static, dtype=np.int64), (N, 1))
    elif isinstance(bits, (int, np.integer)):
        m = np.full((N, len(q)), int(bits), dtype=np.int64)
    elif isinstance(bits, dict):
        for k in bits:
            if k not in q:
                raise DQTValueError(f"precision given for {k!r}, which is not a quantized layer {q}")
        m = np.tile(np.array([bits.get(name, s) for name, s in zip(q, static)], dtype=np.int64), (N, 1))
    else:
        m = np.asarray(bits, dtype=np.int64)
        if m.ndim == 1:
            m = np.tile(m, (N, 1))
        if m.shape != (N, len(q)):
            raise DQTValueError(f"per-input precision array has shape {m.shape}, expected {(N, len(q))}")
    bad = ~np.isin(m, B)
    if bad.any():
        raise DQTValueError(f"bit-width {int(m[bad][0])} is not in the candidate set B={B} (n={net.n})")
    return m


def _controller_bits(net, tap_value, impl, overflow, traces=None):
    ctrl = net.controller
    f = tap_value
    if f.ndim == 4:
        if f.shape[-1] != f.shape[-2]:
            raise DQTValueError("controller tap must be square for global average pooling")
        f = L.avg_pool(f, f.shape[-1], f.shape[-1])
    f = f.reshape(f.shape[0], -1)
    env = {"_tap": f}
    seq = [dict(l) for l in ctrl["layers"]]
    _resolve_sources(seq, "_tap")
    for l in seq:
        y, over, _, acc = _run_layer(net, l, env, l["bits"], impl, traces is not None)
        overflow[l["name"]] = overflow.get(l["name"], 0) + over
        if traces is not None:
            traces[l["name"]] = {"input": env[l["_src"]], "output": y, "acc": acc}
        env[l["name"]] = y
    logits = env[seq[-1]["name"]].reshape(f.shape[0], len(ctrl["controlled"]), -1)
    idx = np.argmax(logits, axis=-1)  # ties: first (lowest) candidate index
    B = np.array(net.candidate_bits, dtype=np.int64)
    return B[idx], logits


def run_network(net: Network, x, bits=None, impl: str = "fast", trace: bool = False) -> RunResult:
    """Run the integer network on input codes ``x`` ([N, *input.shape], unsigned n-bit).

    bits: None (each layer's static ``bits``), an int (all quantized layers), a dict
    (layer -> bits), an array [N, len(qlayers)] (one assignment per input), or ``"dynamic"``
    (the artifact's controller chooses per input). Inputs sharing an assignment run together.
    """
    x = np.asarray(x)
    shape = tuple(net.manifest["input"]["shape"])
    if x.ndim != len(shape) + 1 or tuple(x.shape[1:]) != shape:
        raise DQTValueError(f"input has shape {tuple(x.shape)}, expected [N, {', '.join(map(str, shape))}]")
    IntFormat(net.n, False).check(x, "input codes")
    x = x.astype(np.int64)
    N = x.shape[0]
    seq = [dict(l) for l in net.layers]
    _resolve_sources(seq, "input")
    qidx = {name: i for i, name in enumerate(net.qlayers)}
    out_name = net.manifest.get("output", seq[-1]["name"])

    ctrl_logits = None
    split = 0
    if isinstance(bits, str):
        if bits != "dynamic":
            raise DQTValueError(f"bits={bits!r}: use an int, a dict, an array or 'dynamic'")
        if net.controller is None:
            raise DQTValueError("bits='dynamic' needs an artifact with a controller")
        m = _bits_matrix(net, None, N)
        split = [l["name"] for l in seq].index(net.controller["tap"]) + 1
    else:
        m = _bits_matrix(net, bits, N)

    res = RunResult(output=None, bits=m, qlayers=net.qlayers)
    for l in seq:
        res.overflow[l["name"]] = 0
        if l["type"] in QUANT_TYPES:
            res.ops[l["name"]] = {"macs": 0, "bitops": 0, "shifts": 0}

    def run_seq(layers_, env, rows, brow):
        for l in layers_:
            name = l["name"]
            b = int(brow[qidx[name]]) if name in qidx else None
            y, over, ops, acc = _run_layer(net, l, env, b, impl, trace)
            env[name] = y
            res.overflow[name] += over
            if ops:
                for k in ops:
                    res.ops[name][k] += ops[k]
            if trace:
                tr = res.traces.setdefault(name, {})
                src = [env[s] for s in l["inputs"]] if l["type"] == "add" else [env[l["_src"]]]
                items = [("output", y)] + [("input" if i == 0 else f"input{i}", s) for i, s in enumerate(src)]
                if acc is not None:
                    items.append(("acc", acc))
                for key, v in items:
                    if key not in tr:
                        tr[key] = np.zeros((N,) + v.shape[1:], dtype=np.int64)
                    tr[key][rows] = v

    if N == 0:  # nothing to run: empty outputs (and traces) of the right shapes
        res.output = np.zeros((0,) + net.shapes[out_name].output, dtype=np.int64)
        if trace:
            _empty_traces(net, res, seq)
        return res
    env0 = {"input": x}
    if split:
        run_seq(seq[:split], env0, slice(None), m[0])
        cbits, ctrl_logits = _controller_bits(net, env0[net.controller["tap"]], impl,
                                              res.overflow, res.traces if trace else None)
        for j, name in enumerate(net.controller["controlled"]):
            m[:, qidx[name]] = cbits[:, j]
    rest = seq[split:]
    uniq, inv = np.unique(m, axis=0, return_inverse=True)
    inv = np.asarray(inv).reshape(-1)
    out = None
    for g in range(len(uniq)):
        rows = np.nonzero(inv == g)[0]
        env = {k: v[rows] for k, v in env0.items()}
        run_seq(rest, env, rows, uniq[g])
        y = env[out_name]
        if out is None:
            out = np.zeros((N,) + y.shape[1:], dtype=np.int64)
        out[rows] = y
    res.output = out
    res.controller_logits = ctrl_logits
    return res


def _empty_traces(net, res, seq):
    for l in seq:
        sh = net.shapes[l["name"]]
        tr = {"output": sh.output, "input": sh.input}
        if l["type"] == "add":
            tr["input1"] = sh.input
        if l["type"] in QUANT_TYPES:
            tr["acc"] = sh.output
        res.traces[l["name"]] = {k: np.zeros((0,) + v, dtype=np.int64) for k, v in tr.items()}
