"""Fuzzing of artifacts and command lines (used by tests/test_fuzz.py and bench/fuzz_artifacts.py).

Each *family* is a hypothesis strategy of corruptions of a valid artifact (a calibrated
:func:`golden.testing.random_network` with a controller) or of a command line. A case runs
``dqt`` in this process and its outcome must be one of

* a correct result: exit 0, and the output equals an independent golden run (the reference
  implementation on the network as loaded) of the same input; for byte-level corruptions
  that are accepted, the network must also be the original one;
* a refusal: exit 2, exactly one line on stderr, nothing on stdout, no output file and no
  temporary file left beside it.

Anything else (an exception escaping ``main``, another exit status, a multi-line message, a
leftover file, a different result) is a failure, described in one line for the report.
hypothesis is a test dependency: importing this module needs it.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from hypothesis import strategies as st

__all__ = ["FAMILIES", "Base", "Case", "make_base", "run_case", "strategy"]

FAMILIES = ("npz_bytes", "manifest_bytes", "json_value", "shape", "dtype", "array_value",
            "hash", "cli_args")
BITS = [None, "dynamic", "2", "4", "8"]


@dataclass
class Base:
    """The valid artifact every corruption starts from, and its input codes."""

    art: Path
    manifest: dict
    arrays: dict
    x: np.ndarray
    x_path: Path
    paths: list = field(default_factory=list)   # every JSON path of the manifest


@dataclass
class Case:
    family: str
    what: str                                   # one line describing the corruption
    argv: list                                  # "{art}", "{x}", "{out}" are filled in
    npz: bytes | None = None                    # new weights.npz bytes (None: unchanged)
    manifest: bytes | None = None               # new manifest.json bytes
    inputs: dict = field(default_factory=dict)  # extra files to write: name -> bytes or None (dir)
    same_network: bool = False                  # accepted => the network is the original one


def _json_paths(obj, prefix=()):
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _json_paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _json_paths(v, prefix + (i,))
    return out


def _npz(path) -> dict:
    # the oracle reads files with numpy directly, independently of golden.loader
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def make_base(root) -> Base:
    from golden.network import ARRAYS, MANIFEST
    from golden.testing import random_network
    root = Path(root)
    net = random_network(root / "base", seed=11, calib=8)
    x = np.random.default_rng(1).integers(0, 256, (5, 1, 8, 8))
    np.save(root / "x.npy", x)
    man = json.loads((net.path / MANIFEST).read_text())
    return Base(net.path, man, _npz(net.path / ARRAYS), x, root / "x.npy",
                [p for p in _json_paths(man) if p])


# -- byte-level damage ---------------------------------------------------------------------

@st.composite
def _damaged(draw, raw: bytes):
    op = draw(st.sampled_from(["flip", "truncate", "zero", "insert", "duplicate"]))
    i = draw(st.integers(0, max(0, len(raw) - 1)))
    b = bytearray(raw)
    if op == "flip":
        b[i] ^= draw(st.integers(1, 255))
    elif op == "truncate":
        b = b[:i]
    elif op == "zero":
        n = draw(st.integers(1, 64))
        b[i:i + n] = bytes(len(b[i:i + n]))
    elif op == "insert":
        b[i:i] = draw(st.binary(min_size=1, max_size=16))
    else:
        n = draw(st.integers(1, 64))
        b[i:i] = b[i:i + n]
    return op, i, bytes(b)


def _npz_bytes(base, draw):
    from golden.network import ARRAYS
    op, i, raw = draw(_damaged((base.art / ARRAYS).read_bytes()))
    return Case("npz_bytes", f"weights.npz {op} at byte {i}", _run_argv(draw), npz=raw,
                same_network=True)


def _manifest_bytes(base, draw):
    from golden.network import MANIFEST
    op, i, raw = draw(_damaged((base.art / MANIFEST).read_bytes()))
    return Case("manifest_bytes", f"manifest.json {op} at byte {i}", _run_argv(draw),
                manifest=raw)


# -- JSON values ---------------------------------------------------------------------------

_EDGE_INTS = [0, 1, -1, 2, 7, 8, 9, 16, 17, 31, 32, 33, 40, 48, 61, 62, 63, 64, 2 ** 31,
              2 ** 40, 2 ** 47, 2 ** 62, 2 ** 63, 2 ** 64, -2 ** 63, 10 ** 30]
JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.sampled_from(_EDGE_INTS), st.integers(-300, 300),
              st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8)),
    lambda kids: st.one_of(st.lists(kids, max_size=4), st.dictionaries(st.text(max_size=6), kids, max_size=3)),
    max_leaves=6)


def _set_path(obj, path, value, delete=False):
    for k in path[:-1]:
        obj = obj[k]
    if delete:
        del obj[path[-1]]
    else:
        obj[path[-1]] = value


def _json_value(base, draw):
    man = json.loads(json.dumps(base.manifest))
    path = draw(st.sampled_from(base.paths))
    op = draw(st.sampled_from(["replace", "replace", "nudge", "delete", "add_key"]))
    cur = man
    for k in path:
        cur = cur[k]
    if op == "nudge" and isinstance(cur, (int, float)) and not isinstance(cur, bool):
        value = draw(st.sampled_from([cur + 1, cur - 1, cur * 2, -cur, cur * 1000, 0]))
        _set_path(man, path, value)
    elif op == "delete":
        _set_path(man, path, None, delete=True)
        value = "<deleted>"
    elif op == "add_key" and isinstance(cur, dict):
        value = draw(JSON_VALUES)
        cur[draw(st.text(min_size=1, max_size=6))] = value
    else:
        value = draw(JSON_VALUES)
        _set_path(man, path, value)
    text = json.dumps(man, allow_nan=True)
    where = ".".join(map(str, path))
    return Case("json_value", f"manifest {where}: {op} -> {str(value)[:40]}", _run_argv(draw),
                manifest=text.encode())


# -- arrays: shapes, dtypes, values, hashes -------------------------------------------------

def _npz_of(arrays) -> bytes:
    from golden.network import _write_npz
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "w.npz"
        _write_npz(p, arrays)
        return p.read_bytes()


def _with_table(base, arrays, stale=()):
    """The manifest with its ``arrays`` table describing ``arrays`` (hashes of names in
    ``stale`` left as they were)."""
    from golden.network import array_sha256
    man = json.loads(json.dumps(base.manifest))
    for k, a in arrays.items():
        old = man["arrays"].get(k, {})
        man["arrays"][k] = {"shape": list(a.shape), "dtype": str(a.dtype),
                            "sha256": old.get("sha256") if k in stale else array_sha256(a)}
    return json.dumps(man).encode()


def _shape(base, draw):
    arrays = dict(base.arrays)
    if draw(st.booleans()):
        man = json.loads(json.dumps(base.manifest))
        shape = draw(st.lists(st.integers(0, 10), min_size=0, max_size=4))
        man["input"]["shape"] = shape
        return Case("shape", f"input.shape -> {shape}", _run_argv(draw), manifest=json.dumps(man).encode())
    name = draw(st.sampled_from(sorted(arrays)))
    a = arrays[name]
    shape = tuple(draw(st.lists(st.integers(0, 10), min_size=1, max_size=4)))
    n = int(np.prod(shape))
    flat = np.resize(a.reshape(-1), n) if a.size else np.zeros(n, a.dtype)
    arrays[name] = flat.reshape(shape).astype(a.dtype)
    return Case("shape", f"{name} shape {list(a.shape)} -> {list(shape)}", _run_argv(draw),
                npz=_npz_of(arrays), manifest=_with_table(base, arrays))


_DTYPES = ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
           "float32", "float64", "bool"]


def _dtype(base, draw):
    arrays = dict(base.arrays)
    name = draw(st.sampled_from(sorted(arrays)))
    dt = draw(st.sampled_from(_DTYPES))
    with np.errstate(all="ignore"):
        arrays[name] = arrays[name].astype(dt)
    return Case("dtype", f"{name} dtype {base.arrays[name].dtype} -> {dt}", _run_argv(draw),
                npz=_npz_of(arrays), manifest=_with_table(base, arrays))


def _edit_values(base, draw):
    arrays = dict(base.arrays)
    name = draw(st.sampled_from(sorted(arrays)))
    a = arrays[name].copy()
    info = np.iinfo(a.dtype)
    k = draw(st.integers(1, 3))
    for _ in range(k):
        i = draw(st.integers(0, a.size - 1))
        a.reshape(-1)[i] = draw(st.one_of(st.sampled_from([info.min, info.max, 0, -1, 1]),
                                          st.integers(info.min, info.max)))
    arrays[name] = a
    return name, arrays


def _array_value(base, draw):
    name, arrays = _edit_values(base, draw)
    return Case("array_value", f"{name}: values edited, table updated", _run_argv(draw),
                npz=_npz_of(arrays), manifest=_with_table(base, arrays))


def _hash(base, draw):
    if draw(st.booleans()):
        name, arrays = _edit_values(base, draw)
        return Case("hash", f"{name}: values edited, hash left stale", _run_argv(draw),
                    npz=_npz_of(arrays), manifest=_with_table(base, arrays, stale={name}))
    man = json.loads(json.dumps(base.manifest))
    name = draw(st.sampled_from(sorted(man["arrays"])))
    h = man["arrays"][name]["sha256"]
    i = draw(st.integers(0, len(h) - 1))
    new = draw(st.sampled_from([h[:i] + ("0" if h[i] != "0" else "1") + h[i + 1:], h.upper(), h[:i], ""]))
    man["arrays"][name]["sha256"] = new
    return Case("hash", f"{name}.sha256 edited at {i}", _run_argv(draw),
                manifest=json.dumps(man).encode(), same_network=new.lower() == h)


# -- command lines ---------------------------------------------------------------------------

def _run_argv(draw):
    argv = ["run", "{art}", "--input", "{x}", "--out", "{out}"]
    b = draw(st.sampled_from(BITS))
    if b:
        argv += ["--bits", b]
    if draw(st.booleans()):
        argv += ["--trace"]
    if draw(st.booleans()):
        argv = ["check", "{art}"] + (["--json"] if draw(st.booleans()) else [])
    return argv


def _npy_bytes(a) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return buf.getvalue()


_INPUTS = {
    "valid": lambda x: _npy_bytes(x),
    "empty batch": lambda x: _npy_bytes(x[:0]),
    "one image": lambda x: _npy_bytes(x[:1]),
    "uint8": lambda x: _npy_bytes(x.astype(np.uint8)),
    "float": lambda x: _npy_bytes(x.astype(np.float32)),
    "code 256": lambda x: _npy_bytes(np.where(x == x.max(), 256, x)),
    "negative": lambda x: _npy_bytes(-x),
    "wrong shape": lambda x: _npy_bytes(x.reshape(5, 64)),
    "no batch axis": lambda x: _npy_bytes(x[0]),
    "scalar": lambda x: _npy_bytes(np.int64(3)),
    "bool": lambda x: _npy_bytes(x > 100),
    "truncated": lambda x: _npy_bytes(x)[:90],
    "npz": lambda x: _npz_of({"x": x}),
    "text": lambda x: b"1,2,3\n",
    "empty file": lambda x: b"",
    "directory": lambda x: None,
}


def _cli_args(base, draw):
    cmd = draw(st.sampled_from(["run", "run", "check", "sim", "junk"]))
    text = st.text(alphabet="0123456789,-=:{}[]\" .abcdlnpsy", max_size=12)
    inputs = {}
    if cmd == "run":
        kind = draw(st.sampled_from(sorted(_INPUTS)))
        inputs["in.npy"] = _INPUTS[kind](base.x)
        out = draw(st.sampled_from(["{out}", "{tmp}/sub/y.npz", "{tmp}", "{tmp}/in.npy/y.npz"]))
        argv = ["run", "{art}", "--input", "{tmp}/in.npy", "--out", out]
        bits = draw(st.one_of(st.sampled_from(BITS + ["static", "3", "0", "-2", "99", "4.0", ""]), text))
        if bits is not None:
            argv += ["--bits", bits]
        argv += draw(st.sampled_from([[], ["--impl", "reference"], ["--impl", "bogus"], ["--trace"]]))
        what = f"run input={kind} out={out} bits={bits!r} {' '.join(argv[8:])}"
    elif cmd == "check":
        target = draw(st.sampled_from(["{art}", "{art}/manifest.json", "{art}/weights.npz",
                                       "{tmp}/missing", "{tmp}"]))
        argv = ["check", target] + draw(st.sampled_from([[], ["--json"], ["--bogus"]]))
        what = f"check {target}"
    elif cmd == "sim":
        engine = draw(st.one_of(text, JSON_VALUES.map(json.dumps)))
        images = draw(st.sampled_from(["0", "-3", "x"]))  # never a valid count: nothing simulates
        argv = ["sim", "{art}", "--engine", engine, "--images", images]
        argv += draw(st.sampled_from([[], ["--modes", "2,5"], ["--batch", "0"], ["--simulator", "ghdl"]]))
        what = f"sim --engine {engine!r} --images {images}"
    else:
        argv = draw(st.lists(text, min_size=0, max_size=3))
        what = f"argv {argv!r}"
    return Case("cli_args", what, argv, inputs=inputs)


_BUILDERS = {"npz_bytes": _npz_bytes, "manifest_bytes": _manifest_bytes, "json_value": _json_value,
             "shape": _shape, "dtype": _dtype, "array_value": _array_value, "hash": _hash,
             "cli_args": _cli_args}


def strategy(base: Base, family: str):
    """hypothesis strategy of :class:`Case` for ``family``."""
    return st.composite(lambda draw: _BUILDERS[family](base, draw))()


# -- running a case --------------------------------------------------------------------------

def _materialize(base, case, work: Path):
    from golden.network import ARRAYS, MANIFEST
    if work.exists():
        shutil.rmtree(work)
    art = work / "art"
    shutil.copytree(base.art, art)
    if case.npz is not None:
        (art / ARRAYS).write_bytes(case.npz)
    if case.manifest is not None:
        (art / MANIFEST).write_bytes(case.manifest)
    for name, raw in case.inputs.items():
        if raw is None:
            (work / name).mkdir()
        else:
            (work / name).write_bytes(raw)
    subst = {"{art}": str(art), "{x}": str(base.x_path), "{out}": str(work / "y.npz"),
             "{tmp}": str(work)}
    argv = []
    for a in case.argv:
        for k, v in subst.items():
            a = a.replace(k, v)
        argv.append(a)
    return art, argv


def _files(work: Path) -> set:
    return {p.relative_to(work) for p in work.rglob("*")}


def run_case(base: Base, case: Case, work: Path) -> tuple[str, str | None]:
    """Run one case in ``work`` (replaced); returns (outcome, problem): outcome "accepted" or
    "refused"; problem None when the outcome is correct, else one line saying what was wrong."""
    from dqt.cli import main
    art, argv = _materialize(base, case, work)
    before = _files(work)
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main(argv)
    except SystemExit as e:
        rc = e.code
    except Exception as e:  # what a user would see as a traceback
        return "traceback", f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
    after = _files(work)
    new = after - before
    if rc == 2:
        lines = err.getvalue().strip().splitlines()
        if len(lines) != 1:
            return "refused", f"exit 2 with {len(lines)} lines on stderr: {err.getvalue()[:300]!r}"
        if out.getvalue().strip():
            return "refused", f"exit 2 but stdout has {out.getvalue()[:100]!r}"
        if new:
            return "refused", f"exit 2 but left {sorted(map(str, new))[:3]}"
        return "refused", None
    if rc != 0:
        return "other", f"exit status {rc}: {err.getvalue().strip()[:200]!r}"
    return "accepted", _check_result(base, case, art, argv, out.getvalue(), work)


def _check_result(base, case, art, argv, stdout, work) -> str | None:
    """None when the accepted run's result is what an independent golden run gives."""
    from golden.network import load_network, run_network
    net = load_network(art)
    if case.same_network:
        if net.manifest != base.manifest or set(net.arrays) != set(base.arrays) or any(
                not np.array_equal(net.arrays[k], base.arrays[k]) or net.arrays[k].dtype != base.arrays[k].dtype
                for k in base.arrays):
            return "a damaged artifact was accepted as a different network"
    if argv[0] == "check":
        if "--json" in argv and json.loads(stdout.strip().splitlines()[-1]).get("valid") is not True:
            return "check exit 0 without valid: true"
        # a network that passes the check runs on any input of its declared shape
        x = np.full((2, *net.manifest["input"]["shape"]), (1 << net.n) - 1)
        try:
            for bits in ("dynamic" if net.controller else None, None):
                run_network(net, x, bits=bits, impl="reference")
        except Exception as e:
            return f"check accepted a network that cannot run: {type(e).__name__}: {e}"[:200]
        return None
    if argv[0] != "run":
        return f"{argv[0]} exited 0 (every case of this command should be refused)"
    y = Path(argv[argv.index("--out") + 1])
    x = np.load(Path(argv[argv.index("--input") + 1]), allow_pickle=False)
    bits = argv[argv.index("--bits") + 1] if "--bits" in argv else None
    bits = None if bits is None else ("dynamic" if bits == "dynamic" else int(bits))
    ref = run_network(net, x, bits=bits, impl="reference", trace=True)
    got = _npz(y)
    if not np.array_equal(got["output"], ref.output) or not np.array_equal(got["bits"], ref.bits):
        return f"output differs from the reference run (bits={bits})"
    for layer, tr in ref.traces.items() if "--trace" in argv else ():
        for k, v in tr.items():
            if not np.array_equal(got[f"{layer}.{k}"], v):
                return f"trace {layer}.{k} differs from the reference run"
    problem = _exact_layers(net, ref)
    if problem:
        return problem
    if json.loads(stdout.strip().splitlines()[-1])["overflow"] != ref.totals()["overflow"]:
        return "overflow count differs from the reference run"
    return None


# -- exact arithmetic oracle -----------------------------------------------------------------

def _obj(a):
    return np.asarray(a).astype(object)


def _nested(q, n, b, mode, signed):
    k = n - b
    if k == 0:
        return q
    if mode == "floor":
        return q >> k
    lo, hi = (-(1 << (b - 1)), (1 << (b - 1)) - 1) if signed else (0, (1 << b) - 1)
    return np.clip((q + (1 << (k - 1))) >> k, lo, hi)


def _exact_sum(l, x, w):
    if l["type"] == "linear":
        return np.dot(x, w.T)
    s, p = l["stride"], l["padding"]
    N, C, H, W = x.shape
    O, _, kh, kw = w.shape
    xp = np.zeros((N, C, H + 2 * p, W + 2 * p), dtype=object)
    xp[:, :, p:p + H, p:p + W] = x
    Ho, Wo = (H + 2 * p - kh) // s + 1, (W + 2 * p - kw) // s + 1
    out = np.zeros((N, O, Ho, Wo), dtype=object)
    for dy in range(kh):
        for dx in range(kw):
            patch = xp[:, :, dy:dy + s * (Ho - 1) + 1:s, dx:dx + s * (Wo - 1) + 1:s]
            out += np.tensordot(patch, w[:, :, dy, dx], axes=([1], [1])).transpose(0, 3, 1, 2)
    return out


def _exact_dense(net, l, x, bits):
    """(acc, y or None) of a linear/conv2d layer in Python integers, per row's width."""
    n, A = net.n, net.arrays
    w, bias, M = _obj(A[l["weight"]]), _obj(A[l["bias"]]), _obj(A[l["M"]])
    shp = (1, -1) + (1, 1) * (l["type"] == "conv2d")
    acc = None
    for b in sorted(set(bits.tolist())):
        rows = bits == b
        s = _exact_sum(l, _nested(_obj(x[rows]), n, b, net.mode, False),
                       _nested(w, n, b, net.mode, True))
        a = (s << (2 * (n - b))) + bias.reshape(shp)
        acc = np.zeros((len(x),) + a.shape[1:], dtype=object) if acc is None else acc
        acc[rows] = a
    lo, hi = -(1 << (l["acc_width"] - 1)), (1 << (l["acc_width"] - 1)) - 1
    acc = np.clip(acc, lo, hi) if l["overflow"] == "saturate" else (acc - lo) % (hi - lo + 1) + lo
    if not l["requant"] or l["rule"] != "dyadic":
        return acc, None
    S = l["S"]
    y = (acc * M.reshape(shp) + ((1 << S) >> 1)) >> S
    top = (1 << n) - 1 if l.get("clip") is None else min(l["clip"], (1 << n) - 1)
    return acc, np.clip(y, 0, top)


def _exact_layers(net, ref) -> str | None:
    """Every traced linear, conv2d and add layer recomputed from its traced input in Python
    integers (no int64 anywhere): a silent int64 wrap would differ here."""
    from golden.network import QUANT_TYPES
    q = {name: i for i, name in enumerate(net.qlayers)}
    ctrl = {l["name"] for l in (net.controller or {}).get("layers", [])}
    for l in net.layers + list((net.controller or {}).get("layers", [])):
        tr = ref.traces.get(l["name"])
        if tr is None or not len(tr["output"]):
            continue
        if l["type"] in QUANT_TYPES:
            bits = np.full(len(tr["input"]), l["bits"]) if l["name"] in ctrl else ref.bits[:, q[l["name"]]]
            acc, y = _exact_dense(net, l, tr["input"], bits)
            if not np.array_equal(acc, _obj(tr["acc"])) or (y is not None and not np.array_equal(y, _obj(tr["output"]))):
                return f"layer {l['name']}: golden differs from exact integer arithmetic"
        elif l["type"] == "add":
            S = l["S"]
            t = l["M1"] * _obj(tr["input"]) + l["M2"] * _obj(tr["input1"]) + l["M3"] + ((1 << S) >> 1)
            if not np.array_equal(np.clip(t >> S, 0, (1 << net.n) - 1), _obj(tr["output"])):
                return f"layer {l['name']}: golden add differs from exact integer arithmetic"
    return None


def digest(case: Case) -> str:
    """Short identity of a case (to count distinct corruptions)."""
    h = hashlib.sha256(json.dumps([case.family, case.what, case.argv]).encode())
    for b in (case.npz, case.manifest, *case.inputs.values()):
        h.update(b or b"-")
    return h.hexdigest()[:16]
