"""Whole-network verification on the layer engine: the Python API behind ``dqt sim``.

``verify_network(artifact, images, simulator, driver) -> dict`` sizes an engine for the
network and runs :func:`sim.network_check.run_on_engine`, which compares every output
element of every layer with the golden model's traces in each requested precision mode,
through one of two drivers: ``batch`` (default on Verilator) Verilates the plain engine
with a C++ driver into a library that this process calls with whole arrays
(:mod:`sim.batch`); ``cocotb`` generates the harnessed engine (:mod:`sim.harness`), builds
it and runs the cocotb test :mod:`sim.network_tb`. Builds are cached. The returned dict
holds at least ``images, layers, elements_checked, mismatches, verified_macs, seconds,
verified_macs_per_s, driver, peak_rss_mib`` (seconds: wall time of the check, which
includes the golden reference computation and the host steps; the build is reported
separately; peak_rss_mib: this process's peak for ``batch``, the simulator process's for
``cocotb``).

Input images: for an artifact trained on digits, the held-out split recorded in its
metadata (``training.evaluate.digits_test_codes``); otherwise (e.g. a
``golden.testing.random_network`` artifact on 1x8x8 inputs) scikit-learn's bundled digits
images, quantized with the artifact's input scale, in a seeded order.
"""
from __future__ import annotations

import json
import os
import resource
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from golden import defaults
from golden.formats import DQTValueError
from golden.network import QUANT_TYPES, load_network, quantize_input

from . import runner

__all__ = ["engine_params_for", "input_codes", "verify_network", "shard_plan", "default_jobs",
           "DEFAULT_ENGINE", "DRIVERS"]

#: Engine geometry used for network runs unless overridden: the catalog's lanes x MACs per
#: lane and alignment; the memories are sized for the network (:func:`engine_params_for`).
DEFAULT_ENGINE = {k: defaults.ENGINE[k] for k in ("lanes", "pes", "variant")}


def _check_overrides(overrides) -> dict:
    """Engine overrides as given by a user: a dict of known engine parameters whose sizes are
    in range, checked before anything is derived from them."""
    from rtl._common import check_choice, check_int
    from rtl.registry import resolve_params
    if overrides is None:
        return {}
    if not isinstance(overrides, dict):
        raise DQTValueError(f"engine overrides {overrides!r} must be a JSON object such as "
                            '{"lanes": 4}')
    resolve_params("engine", overrides)  # unknown names
    for k, (lo, hi) in {"lanes": (1, 64), "pes": (1, 64)}.items():
        if k in overrides:
            check_int(f"engine {k}", overrides[k], lo, hi)
    if "variant" in overrides:
        check_choice("engine variant", overrides["variant"], ("right", "msb"))
    return dict(overrides)


def engine_params_for(net, overrides: dict | None = None) -> dict:
    """Engine parameters large enough for every quantized layer of ``net`` (K and output
    counts from :attr:`golden.network.Network.shapes`); bad overrides raise
    :class:`DQTValueError` naming the value and its range."""
    p = dict(DEFAULT_ENGINE)
    p.update(_check_overrides(overrides))
    qls = [l for l in net.layers if l["type"] in QUANT_TYPES]
    if net.controller:
        qls += net.controller["layers"]
    shapes = net.shapes
    Ks = [shapes[l["name"]].K for l in qls]
    Os = [shapes[l["name"]].output[0] for l in qls]
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
    # weight rows per group: K_BEATS rows, or ceil(K_BEATS / 4) per bank in the fusion engine
    p.setdefault("weight_depth", (-(-kb // 4) if p.get("fusion") else kb) * (max_out // lanes))
    p.setdefault("acc_max", acc)
    p.setdefault("m_bits", mb)
    p.setdefault("candidates", sorted(net.candidate_bits))
    from rtl.registry import build
    build("engine", p)  # every parameter in range before the first (slow) generate step
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


DRIVERS = ("batch", "cocotb")


def _peak_rss_mib(who) -> float:
    """Peak resident set size (MiB) of this process or of its largest waited-for child."""
    return round(resource.getrusage(who).ru_maxrss / 1024, 1)


def _cpu_seconds() -> float:
    """CPU time of this process and of its waited-for children (user + system)."""
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def verify_network(artifact, images: int | None = None, simulator: str = "verilator",
                   modes=None, batch: int = 64, stall: bool = False,
                   engine: dict | None = None, rerun: str | None = None,
                   verbose: bool = False, driver: str | None = None,
                   jobs: int | None = None) -> dict:
    """Run the whole-network check on the engine; returns the result dict (see module doc).

    ``driver``: ``"batch"`` (Verilator only; the default there) runs the engine in this
    process through :mod:`sim.batch`; ``"cocotb"`` (the default for Icarus) runs the cocotb
    test :mod:`sim.network_tb` on the harnessed engine (``batch``: its beats per batch).
    ``jobs``: worker threads of the batch driver, each with its own engine (default: the
    CPUs this process may use; see :func:`shard_plan`).
    Raises :class:`golden.formats.DQTValueError` for bad arguments and
    :class:`sim.runner.SimulatorError` when the simulator is missing. Mismatches do not
    raise: they are counted in the result, with ``first_mismatch`` describing the first.
    """
    runner.check_simulator(simulator)
    driver = driver or ("batch" if simulator == "verilator" else "cocotb")
    if driver not in DRIVERS:
        raise DQTValueError(f"driver {driver!r} is not one of {list(DRIVERS)}")
    if driver == "batch" and simulator != "verilator":
        raise DQTValueError(f"driver 'batch' runs on verilator only, not {simulator!r} "
                            "(use --driver cocotb)")
    if jobs is not None:
        from rtl._common import check_int
        check_int("jobs", jobs, 1, 256)
    net = load_network(artifact)
    modes = _parse_modes(modes, net)
    codes, src = input_codes(artifact, images)
    params = engine_params_for(net, engine)
    reason = runner.missing_reason(simulator)
    if reason:
        raise runner.SimulatorError(reason)
    if driver == "batch":
        rep = _verify_batch(net, codes, modes, params, stall, rerun, verbose, jobs)
    else:
        rep = _verify_cocotb(artifact, codes, modes, params, simulator, batch, stall, rerun,
                             verbose)
    rep.update({"artifact": str(artifact), "simulator": simulator, "driver": driver,
                "input_source": src, "engine": params,
                "verified_macs_per_s": round(rep["verified_macs"] / rep["seconds"])
                if rep["seconds"] > 0 else None,
                # on a shared machine wall time mostly measures the other jobs
                "verified_macs_per_cpu_s": round(rep["verified_macs"] / rep["cpu_seconds"])
                if rep["cpu_seconds"] > 0 else None})
    return rep


def default_jobs() -> int:
    """Worker threads of the batch driver: the CPUs this process may run on."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
               else (os.cpu_count() or 1))


def shard_plan(modes, n_images: int, jobs: int) -> list:
    """``(mode, first image, end)`` shards of a whole-network check for ``jobs`` workers:
    one per mode, and a mode's images split in equal ranges only when there are fewer
    modes than workers (each range then pays its own pipeline fill and drain, so a mode's
    cycle count depends on the split; with one range per mode it does not)."""
    per_mode = min(max(1, -(-jobs // len(modes))), max(1, n_images))
    cuts = np.linspace(0, n_images, per_mode + 1).round().astype(int)
    return [(m, int(a), int(b)) for m in modes for a, b in zip(cuts[:-1], cuts[1:])]


def _verify_batch(net, codes, modes, params, stall, rerun, verbose, jobs=None) -> dict:
    """The batch driver: shards (:func:`shard_plan`) run on ``jobs`` engines of one build,
    one per worker thread (the simulation runs in the library with the GIL released), and
    their reports merge into one (:func:`sim.network_check.merge_reports`)."""
    from concurrent.futures import ThreadPoolExecutor
    from .batch import BatchEngine, run_now
    from .network_check import merge_reports, run_on_engine
    jobs = default_jobs() if jobs is None else jobs
    t0 = time.monotonic()
    first = BatchEngine(params, stall=stall)
    t_build = time.monotonic() - t0
    if first.vcd_path is not None:
        jobs = 1  # one waveform file
    shards = shard_plan(modes, len(codes), jobs)
    jobs = min(jobs, len(shards))
    log = (lambda msg: print(msg, file=sys.stderr)) if verbose else None
    engines = [first] + [first.twin() for _ in range(jobs - 1)]
    free = list(engines)  # one engine per worker thread: a thread takes one and keeps it
    mine = threading.local()
    lock = threading.Lock()

    def run(shard):
        if not hasattr(mine, "eng"):
            with lock:
                mine.eng = free.pop()
        mode, a, b = shard
        return run_now(run_on_engine(mine.eng, net, codes[a:b], [mode], rerun, log=log,
                                     image0=a))

    t1, c1 = time.monotonic(), _cpu_seconds()
    try:
        if jobs == 1:
            reps = [run(s) for s in shards]
        else:
            with ThreadPoolExecutor(jobs, thread_name_prefix="dqt-batch") as pool:
                reps = list(pool.map(run, shards))
    finally:
        for e in engines:
            e.close()
    secs, cpu = time.monotonic() - t1, _cpu_seconds() - c1
    rep = merge_reports(reps, modes, len(codes))
    rep.update({"library": str(first.library),
                "vcd": str(first.vcd_path) if first.vcd_path else None,
                "jobs": jobs, "shards": len(shards),
                "seconds": round(secs, 3), "cpu_seconds": round(cpu, 3),
                "build_seconds": round(t_build, 3),
                "peak_rss_mib": _peak_rss_mib(resource.RUSAGE_SELF)})
    return rep


def _remove_dead_jobs(bdir: Path) -> None:
    """Remove the job directories (``network-<pid>-*``) of processes that no longer run."""
    from . import _alive
    for d in bdir.glob("network-*-*"):
        pid = d.name.split("-")[1]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            shutil.rmtree(d, ignore_errors=True)


def _verify_cocotb(artifact, codes, modes, params, simulator, batch, stall, rerun,
                   verbose) -> dict:
    t0 = time.monotonic()
    info = runner.generate_harness(params, batch)
    bdir = runner.build(simulator, [info.path], info.top, public="ports")
    t_build = time.monotonic() - t0
    # the pid in the name tells whose job a directory is (a build is shared between
    # processes); those of processes that are gone (a killed run) are removed here
    _remove_dead_jobs(bdir)
    jobdir = Path(tempfile.mkdtemp(prefix=f"network-{os.getpid()}-", dir=bdir))
    job = {"artifact": str(Path(artifact).resolve()), "modes": modes, "stall": bool(stall)}
    try:
        rep, secs, cpu, kept = _run_job(jobdir, bdir, info, simulator, job, codes, rerun,
                                        verbose)
    finally:
        shutil.rmtree(jobdir, ignore_errors=True)
    rep.update({"batch": batch, "seconds": round(secs, 3), "cpu_seconds": round(cpu, 3),
                "build_seconds": round(t_build, 3),
                "peak_rss_mib": _peak_rss_mib(resource.RUSAGE_CHILDREN),
                "log": str(kept / "sim.log") if kept else None})
    return rep


def _keep_failed(summary, bdir) -> Path:
    kept = Path(bdir) / "failed-network"
    shutil.rmtree(kept, ignore_errors=True)
    os.replace(summary.test_dir, kept)
    return kept


def _run_job(jobdir, bdir, info, simulator, job, codes, rerun, verbose):
    """One simulation run in ``jobdir`` (removed by the caller); returns (result, seconds,
    CPU seconds, kept run directory or None). The simulator's run directory is removed after a clean run;
    after a failed one it is kept as ``failed-network`` in the build directory (replacing the
    previous failure), so failures never pile up."""
    inputs = jobdir / "inputs.npy"
    np.save(inputs, codes, allow_pickle=False)
    result = jobdir / "result.json"
    job = dict(job, inputs=str(inputs), result=str(result))
    env = {"DQT_ENTRY": str(info.entry_file()), "DQT_PARAMS": json.dumps(job)}
    if rerun:
        env["DQT_RERUN"] = rerun
    t1, c1 = time.monotonic(), _cpu_seconds()
    summary = runner.run(simulator, bdir, info.top, "sim.network_tb", env, verbose=verbose,
                         tag="network")
    secs, cpu = time.monotonic() - t1, _cpu_seconds() - c1
    if not result.is_file():
        kept = _keep_failed(summary, bdir)
        raise RuntimeError(f"the network testbench wrote no result:\n{summary.table()}\n"
                           + "\n".join(r.message for r in summary.failed)
                           + f"\nsimulator log: {kept / 'sim.log'}")
    rep = json.loads(result.read_text())
    kept = None
    if rep["mismatches"]:
        kept = _keep_failed(summary, bdir)
    else:
        shutil.rmtree(summary.test_dir, ignore_errors=True)
    return rep, secs, cpu, kept
