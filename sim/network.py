"""Whole-network verification on the layer engine: the Python API behind ``dqt sim``.

``verify_network(artifact, images, simulator) -> dict`` sizes an engine for the network,
generates the harnessed engine (:mod:`sim.harness`), builds it (cached), and runs the
cocotb test :mod:`sim.network_tb`, which compares every output element of every layer
with the golden model's traces in each requested precision mode. The returned dict holds
at least ``images, layers, elements_checked, mismatches, verified_macs, seconds,
verified_macs_per_s`` (seconds: wall time of the simulation run, which includes the golden
reference computation and the host steps; the build is reported separately).

Input images: for an artifact trained on digits, the held-out split recorded in its
metadata (``training.evaluate.digits_test_codes``); otherwise (e.g. a
``golden.testing.random_network`` artifact on 1x8x8 inputs) scikit-learn's bundled digits
images, quantized with the artifact's input scale, in a seeded order.
"""
from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np

from golden import defaults
from golden.formats import DQTValueError
from golden.network import QUANT_TYPES, load_network, quantize_input

from . import runner

__all__ = ["engine_params_for", "input_codes", "verify_network", "DEFAULT_ENGINE"]

#: Engine geometry used for network runs unless overridden: the catalog's lanes x MACs per
#: lane and alignment; the memories are sized for the network (:func:`engine_params_for`).
DEFAULT_ENGINE = {k: defaults.ENGINE[k] for k in ("lanes", "pes", "variant")}


def engine_params_for(net, overrides: dict | None = None) -> dict:
    """Engine parameters large enough for every quantized layer of ``net``."""
    p = dict(DEFAULT_ENGINE)
    p.update(overrides or {})
    qls = [l for l in net.layers if l["type"] in QUANT_TYPES]
    if net.controller:
        qls += net.controller["layers"]
    Ks = [int(np.prod(net.arrays[l["weight"]].shape[1:])) for l in qls]
    Os = [int(net.arrays[l["weight"]].shape[0]) for l in qls]
    pes, lanes = p["pes"], p["lanes"]
    max_k = max(max(Ks), pes * 8)           # the residual add streams rows of >= 8 beats
    max_k = -(-max_k // pes) * pes
    max_out = -(-max(Os) // lanes) * lanes
    kb = max_k // pes
    acc = max(32, max(l["acc_width"] for l in qls))
    mb = max(16, max(int(net.arrays[l["M"]].max(initial=0)).bit_length() for l in qls))
    if acc > 48 or mb > 40:
        raise DQTValueError(f"the network needs acc_width {acc} and {mb}-bit multipliers; "
                            "the engine supports at most 48 and 40")
    p.setdefault("n", net.n)
    p.setdefault("max_k", max_k)
    p.setdefault("max_out", max_out)
    p.setdefault("weight_depth", kb * (max_out // lanes))
    p.setdefault("acc_max", acc)
    p.setdefault("m_bits", mb)
    p.setdefault("candidates", sorted(net.candidate_bits))
    return p


def input_codes(artifact, images: int | None = None):
    """(codes [N, *shape], description) of the images to verify with."""
    net = load_network(artifact)
    meta = net.manifest.get("metadata") or {}
    ds = meta.get("dataset")
    if isinstance(ds, dict) and ds.get("dataset") == "digits":
        from training.evaluate import digits_test_codes
        codes, _ = digits_test_codes(artifact)
        src = f"held-out digits split (seed {ds.get('split_seed')}, {len(codes)} images)"
    elif list(net.manifest["input"]["shape"]) == [1, 8, 8]:
        from sklearn.datasets import load_digits
        d = load_digits()
        order = np.random.default_rng(0).permutation(len(d.images))
        codes = quantize_input(net, d.images[order][:, None].astype(np.float64))
        src = "scikit-learn digits images (seeded order), quantized with the input scale"
    else:
        shape = net.manifest["input"]["shape"]
        codes = np.random.default_rng(0).integers(0, 1 << net.n, (512, *shape))
        src = "seeded uniform random input codes"
    if images is not None:
        if not 1 <= int(images) <= len(codes):
            raise DQTValueError(f"images={images} is outside the allowed range [1, {len(codes)}] "
                                f"for this artifact ({src})")
        codes = codes[:int(images)]
    return np.ascontiguousarray(codes, dtype=np.int64), src


def _parse_modes(modes, net):
    if modes is None:
        modes = [int(b) for b in sorted(net.candidate_bits)] + ["static"] + \
            (["dynamic"] if net.controller else [])
    out = []
    for m in modes:
        if m in ("static", "dynamic"):
            if m == "dynamic" and not net.controller:
                raise DQTValueError("mode 'dynamic' needs an artifact with a controller")
            out.append(m)
            continue
        try:
            b = int(m)
        except (TypeError, ValueError):
            raise DQTValueError(f"mode {m!r} is not 'static', 'dynamic' or a bit-width in "
                                f"{sorted(net.candidate_bits)}") from None
        if b not in net.candidate_bits:
            raise DQTValueError(f"mode bits={b} is not in the candidate set "
                                f"{sorted(net.candidate_bits)}")
        out.append(b)
    return out


def verify_network(artifact, images: int | None = None, simulator: str = "verilator",
                   modes=None, batch: int = 64, stall: bool = False,
                   engine: dict | None = None, rerun: str | None = None,
                   verbose: bool = False) -> dict:
    """Run the whole-network check on the engine; returns the result dict (see module doc).

    Raises :class:`golden.formats.DQTValueError` for bad arguments and
    :class:`sim.runner.SimulatorError` when the simulator is missing. Mismatches do not
    raise: they are counted in the result, with ``first_mismatch`` describing the first.
    """
    runner.check_simulator(simulator)
    net = load_network(artifact)
    modes = _parse_modes(modes, net)
    codes, src = input_codes(artifact, images)
    params = engine_params_for(net, engine)
    reason = runner.missing_reason(simulator)
    if reason:
        raise runner.SimulatorError(reason)
    t0 = time.monotonic()
    info = runner.generate_harness(params, batch)
    bdir = runner.build(simulator, [info.path], info.top, public="ports")
    t_build = time.monotonic() - t0
    jobdir = Path(tempfile.mkdtemp(prefix="network-", dir=bdir))
    inputs = jobdir / "inputs.npy"
    np.save(inputs, codes, allow_pickle=False)
    result = jobdir / "result.json"
    job = {"artifact": str(Path(artifact).resolve()), "inputs": str(inputs),
           "modes": modes, "result": str(result), "stall": bool(stall)}
    env = {"DQT_ENTRY": str(info.entry_file()), "DQT_PARAMS": json.dumps(job)}
    if rerun:
        env["DQT_RERUN"] = rerun
    t1 = time.monotonic()
    summary = runner.run(simulator, bdir, info.top, "sim.network_tb", env, verbose=verbose,
                         tag="network")
    secs = time.monotonic() - t1
    if not result.is_file():
        raise RuntimeError(f"the network testbench wrote no result:\n{summary.table()}\n"
                           + "\n".join(r.message for r in summary.failed)
                           + f"\nsimulator log: {summary.test_dir / 'sim.log'}")
    rep = json.loads(result.read_text())
    rep.update({"artifact": str(artifact), "simulator": simulator, "input_source": src,
                "engine": params, "batch": batch, "seconds": round(secs, 3),
                "build_seconds": round(t_build, 3),
                "verified_macs_per_s": round(rep["verified_macs"] / secs) if secs > 0 else None,
                "results_xml": str(summary.results_xml), "log": str(summary.test_dir / "sim.log")})
    return rep
