"""``dqt export qonnx``: write a QONNX model and check it against the golden model."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from golden.formats import DQTValueError

__all__ = ["register"]


def _int_list(text):
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise DQTValueError(f"--assignment {text!r} is not a comma-separated list of integers") from None


def _check_images(net, args):
    """Input codes for the comparison: ``--input X.npy``, else the artifact's digits test split."""
    if args.input is not None:
        p = Path(args.input)
        if not p.is_file():
            raise DQTValueError(f"--input {p}: no such file (expected a .npy of unsigned {net.n}-bit codes)")
        x = np.load(p, allow_pickle=False)
        shape = tuple(net.manifest["input"]["shape"])
        if x.ndim != len(shape) + 1 or tuple(x.shape[1:]) != shape:
            raise DQTValueError(f"--input holds shape {x.shape}, expected [N, {', '.join(map(str, shape))}]")
        if x.dtype.kind not in "iu" or x.size and (x.min() < 0 or x.max() > (1 << net.n) - 1):
            raise DQTValueError(f"--input must hold unsigned {net.n}-bit integer codes in [0, {(1 << net.n) - 1}]")
        return x.astype(np.int64)
    from training.evaluate import digits_test_codes
    return digits_test_codes(net.path)[0]


def _cmd_qonnx(args) -> int:
    from golden.network import load_network

    from .qonnx_export import compare_with_golden, export_qonnx, parse_assignment, qonnx_bops, save_qonnx
    out = Path(args.out)
    if out.is_dir():
        raise DQTValueError(f"--out {out} is a directory; give a file name such as model.onnx")
    net = load_network(args.artifact)
    assignment = parse_assignment(net, args.bits,
                                  _int_list(args.assignment) if args.assignment is not None else None)
    x = _check_images(net, args)
    if args.images is not None:
        if args.images < 1:
            raise DQTValueError(f"--images {args.images} must be >= 1")
        x = x[:args.images]
    model = export_qonnx(net, assignment)
    save_qonnx(model, out)
    cmp = compare_with_golden(model, net, x, assignment)
    cost = qonnx_bops(model)
    nodes = list(model.graph.node)
    res = {"out": str(out), "assignment": assignment, "nodes": len(nodes),
           "quant_nodes": sum(nd.op_type == "Quant" for nd in nodes), **cmp, **cost}
    if not args.json:
        print(f"wrote {out}: {res['nodes']} nodes, {res['quant_nodes']} Quant")
        print("precision  " + ", ".join(f"{k}={v}" for k, v in assignment.items()))
        print(f"qonnx executor vs golden  {cmp['differences']} differing output elements of "
              f"{cmp['elements']} ({cmp['images']} images)")
        print(f"BOPs per image  qonnx {cost['bops']:.0f} (zero weights discounted "
              f"{cost['bops_sparse']:.0f}), golden BitOPs {cmp['bitops']}")
    print(json.dumps(res, sort_keys=True))
    return 0 if cmp["outputs_identical"] else 1


def register(sub) -> None:
    """Add ``export`` (with ``qonnx``) to the ``dqt`` subparsers."""
    p = sub.add_parser("export", help="export the integer network to other tool flows")
    s = p.add_subparsers(dest="export_command", metavar="FORMAT")
    q = s.add_parser("qonnx", help="QONNX model at a static precision, checked with qonnx's executor",
                     description="Write a QONNX model of the integer network (Quant nodes with the "
                     "nested bit widths and steps; docs/interop.md), run it with "
                     "qonnx.core.onnx_exec on the digits test split (or --input) and compare every "
                     "output element with the golden model; report qonnx's inference_cost BOPs.")
    q.add_argument("artifact", help="artifact directory")
    q.add_argument("--out", required=True, help="ONNX file to write")
    g = q.add_mutually_exclusive_group()
    g.add_argument("--bits", type=int, help="one width in B for every quantized layer")
    g.add_argument("--assignment", help="comma-separated widths, one per quantized layer in order")
    q.add_argument("--input", help=".npy of input codes to compare on (default: the digits test split)")
    q.add_argument("--images", type=int, help="compare on the first N images only")
    q.add_argument("--json", action="store_true", help="print only the JSON line")
    q.set_defaults(func=_cmd_qonnx)
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])
