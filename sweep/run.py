"""Run a sweep on Dask ``distributed`` and write its results.

A ``LocalCluster`` (one single-threaded worker process per ``workers``) by default, or an
existing scheduler's address to scale out. Each point is one task (:func:`sweep.evaluate.
evaluate_point`); a worker that dies has its tasks rescheduled by Dask on the others, a point
that fails comes back with its reason, and every finished point is cached by the hash of its
Verilog and settings under ``OUT/points/``, so an interrupted sweep resumes where it stopped.
"""
from __future__ import annotations

import csv
import html
import json
import time
from pathlib import Path

from golden.formats import DQTValueError

from .config import SweepConfig
from .evaluate import evaluate_point

__all__ = ["run_sweep", "pareto_front", "write_results", "COLUMNS"]

COLUMNS = ["label", "component", "params", "status", "resumed", "area", "area_unit",
           "energy_pj_per_op", "cycles", "pareto", "reason"]


def _client(scheduler, workers):
    from distributed import Client, LocalCluster
    if scheduler:
        try:
            return Client(scheduler, timeout=10), None
        except (OSError, TimeoutError) as e:
            raise DQTValueError(f"--scheduler {scheduler}: cannot connect ({e})") from None
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                           dashboard_address=None, silence_logs=40)
    return Client(cluster), cluster


def run_sweep(cfg: SweepConfig, out_dir, scheduler: str | None = None, workers: int = 2,
              progress: bool = True, on_result=None) -> dict:
    """Evaluate every point of ``cfg``; returns the summary dict (points, done, failed,
    resumed, seconds) and writes ``results.csv``, ``results.json``, ``pareto.png`` and
    ``index.html`` into ``out_dir``. ``on_result(n_finished, client)`` is called after each
    point (tests use it to kill a worker mid-sweep)."""
    from distributed import as_completed
    from tqdm import tqdm
    out = Path(out_dir)
    cache = (out / "points").resolve()
    cache.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    client, cluster = _client(scheduler, workers)
    rows = []
    try:
        futs = {client.submit(evaluate_point, p.settings(), str(cache), key=f"point-{i}-{p.label}",
                              pure=False): p for i, p in enumerate(cfg.points)}
        bar = tqdm(total=len(futs), desc=f"sweep {cfg.name}", unit="point", disable=not progress)
        for fut in as_completed(futs):
            p = futs[fut]
            try:
                r = fut.result()
            except Exception as e:   # e.g. KilledWorker after Dask's own retries
                r = dict(p.settings(), status="failed", resumed=False,
                         reason=f"{type(e).__name__}: {e}".splitlines()[0][:500])
            rows.append(dict(r, label=p.label))
            bar.update()
            if on_result is not None:
                on_result(len(rows), client)
        bar.close()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    order = {p.label: i for i, p in enumerate(cfg.points)}
    rows.sort(key=lambda r: order[r["label"]])
    summary = {"points": len(rows), "done": sum(r["status"] == "done" for r in rows),
               "failed": sum(r["status"] != "done" for r in rows),
               "resumed": sum(bool(r.get("resumed")) for r in rows),
               "seconds": round(time.perf_counter() - t0, 3)}
    write_results(out, cfg, rows, summary)
    return summary


def pareto_front(rows) -> list[bool]:
    """True where no other finished point is at most as large in area, energy per op and
    cycles and strictly smaller in one (all three minimised; points lacking a figure are
    never on the front)."""
    keys = ("area", "energy_pj_per_op", "cycles")
    vals = [tuple(r.get(k) for k in keys) if r["status"] == "done" and
            all(r.get(k) is not None for k in keys) else None for r in rows]
    front = []
    for v in vals:
        front.append(v is not None and not any(
            u is not None and all(a <= b for a, b in zip(u, v)) and u != v for u in vals))
    return front


def _plot(rows, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    pts = [r for r in rows if r.get("area") is not None and r.get("energy_pj_per_op") is not None]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    if pts:
        sc = ax.scatter([r["area"] for r in pts], [r["energy_pj_per_op"] for r in pts],
                        c=[r["cycles"] for r in pts], cmap="viridis", s=40)
        fig.colorbar(sc, ax=ax, label="cycles per dot product")
        for r in pts:
            if r["pareto"]:
                ax.scatter([r["area"]], [r["energy_pj_per_op"]], s=140, facecolors="none",
                           edgecolors="red")
                ax.annotate(r["label"], (r["area"], r["energy_pj_per_op"]), fontsize=7,
                            xytext=(4, 4), textcoords="offset points")
    ax.set_xlabel(f"area ({pts[0]['area_unit'] if pts else 'transistors'})")
    ax.set_ylabel("energy per op (pJ, 45 nm model)")
    ax.set_title("design points; red rings: Pareto front (area, energy, cycles)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_results(out: Path, cfg: SweepConfig, rows, summary) -> None:
    """results.json (every field), results.csv (one row per point), pareto.png, index.html."""
    from reports.cache import atomic_write_text
    for r, f in zip(rows, pareto_front(rows)):
        r["pareto"] = f
    atomic_write_text(out / "results.json", json.dumps(
        {"name": cfg.name, "summary": summary, "points": rows}, indent=1, sort_keys=True, default=str))
    with open(out / "results.csv.tmp", "w", newline="") as f:
        w = csv.DictWriter(f, COLUMNS, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow(dict(r, params=json.dumps(r.get("params"), sort_keys=True)))
    (out / "results.csv.tmp").replace(out / "results.csv")
    _plot(rows, out / "pareto.png")
    head = "".join(f"<th>{c}</th>" for c in COLUMNS)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(r.get(c, '')))}</td>" for c in COLUMNS)
                   + "</tr>" for r in rows)
    atomic_write_text(out / "index.html", (
        f"<!doctype html><meta charset=utf-8><title>sweep {html.escape(cfg.name)}</title>"
        f"<h1>Sweep {html.escape(cfg.name)}</h1><p>{html.escape(json.dumps(summary))}</p>"
        "<img src='pareto.png' alt='Pareto plot'><p><a href='results.csv'>results.csv</a> "
        "<a href='results.json'>results.json</a></p>"
        f"<table border=1 cellpadding=3><tr>{head}</tr>{body}</table>\n"))
