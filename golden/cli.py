"""``dqt check`` and ``dqt run``: validate an integer network artifact and run it on codes."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from .formats import DQTValueError
from .loader import read_npy
from .network import load_network, run_network

__all__ = ["register"]


def _parse_bits(text, net):
    if text is None:
        return None
    if text == "dynamic":
        return "dynamic"
    try:
        return int(text)
    except ValueError:
        raise DQTValueError(f"--bits {text!r}: use an integer in B={net.candidate_bits} or 'dynamic'") from None


def _check(args):
    net = load_network(args.artifact)
    info = {
        "artifact": str(net.path), "n": net.n, "candidate_bits": net.candidate_bits, "mode": net.mode,
        "input_shape": net.manifest["input"]["shape"], "layers": [l["name"] + ":" + l["type"] for l in net.layers],
        "quantized_layers": net.qlayers, "controller": bool(net.controller),
        "arrays": len(net.arrays), "valid": True,
    }
    print(json.dumps(info) if args.json else "\n".join(f"{k}: {v}" for k, v in info.items()))
    return 0


def _check_out(out: Path) -> None:
    """--out must be a file path whose directory can exist (checked before any work)."""
    if out.is_dir():
        raise DQTValueError(f"--out {out}: is a directory (expected a .npz file path)")
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise DQTValueError(f"--out {out}: {parent} is a file, not a directory")
            break


def _run(args):
    out = Path(args.out)
    _check_out(out)
    net = load_network(args.artifact)
    p = Path(args.input)
    if not p.is_file():
        raise DQTValueError(f"--input {p}: no such file (expected a .npy of unsigned {net.n}-bit codes)")
    x = read_npy(p, "--input")
    if x.dtype.kind not in "iu":
        raise DQTValueError(f"--input {p}: dtype {x.dtype} must be an integer type "
                            f"(unsigned {net.n}-bit codes)")
    r = run_network(net, x, bits=_parse_bits(args.bits, net), impl=args.impl, trace=args.trace)
    arrays = {"output": r.output, "bits": r.bits}
    for layer, tr in r.traces.items():
        for k, v in tr.items():
            if v is not None:
                arrays[f"{layer}.{k}"] = v
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".npz", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, out)
    except BaseException:
        os.unlink(tmp)
        raise
    summary = {"images": int(len(x)), "output": str(out), **r.totals()}
    if r.output.ndim == 2:
        summary["top1"] = np.argmax(r.output, axis=1)[:20].tolist()
    print(json.dumps(summary))
    return 0


def register(sub):
    p = sub.add_parser("check", help="validate an integer network artifact and summarize it")
    p.add_argument("artifact", help="artifact directory (manifest.json + weights.npz)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_check)

    p = sub.add_parser("run", help="run the golden model on input codes (.npy) and save outputs/traces (.npz)")
    p.add_argument("artifact")
    p.add_argument("--input", required=True, help=".npy of shape [N, *input_shape], unsigned n-bit codes")
    p.add_argument("--bits", default=None, help="an integer in B for every layer, or 'dynamic' (default: static)")
    p.add_argument("--impl", choices=["fast", "reference"], default="fast")
    p.add_argument("--trace", action="store_true", help="also save every layer's input/output/acc")
    p.add_argument("--out", required=True, help="output .npz (written atomically)")
    p.set_defaults(func=_run)
