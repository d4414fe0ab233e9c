"""Sweep configuration: a small JSON (or TOML) file, validated before anything runs, expanded
into design points.

    {
      "target": "cmos",          # synthesis target of reports.synth (area figure)
      "bits": 4,                 # run-time precision for energy and cycles
      "K": 64,                   # dot-product length for cycles
      "designs": [
        {"component": "nested_mac", "fixed": {"n": 8},
         "grid": {"pes": [2, 4], "mode": ["floor", "round"]}}
      ]
    }

Every ``designs`` entry names a component of :data:`rtl.registry.REGISTRY`; its points are
the cross product of ``grid`` over the component's own parameters, on top of ``fixed``.
"""
from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path

from golden.formats import DQTValueError

__all__ = ["SweepConfig", "Point", "load_config", "parse_config"]

_KEYS = {"target", "bits", "K", "designs", "name"}
_DESIGN_KEYS = {"component", "fixed", "grid"}


@dataclass(frozen=True)
class Point:
    """One design point: a registry component at fixed parameters, and the settings that
    turn it into figures."""

    component: str
    params: dict
    target: str
    bits: int
    K: int

    @property
    def label(self) -> str:
        return self.component + "".join(f" {k}={v}" for k, v in sorted(self.params.items()))

    def settings(self) -> dict:
        return {"component": self.component, "params": self.params, "target": self.target,
                "bits": self.bits, "K": self.K}


@dataclass(frozen=True)
class SweepConfig:
    name: str
    points: tuple


def _fail(where, msg):
    raise DQTValueError(f"sweep config {where}: {msg}")


def _design_points(i, d, target, bits, K):
    from rtl.registry import REGISTRY, resolve_params
    where = f"designs[{i}]"
    if not isinstance(d, dict):
        _fail(where, "must be an object with component, fixed, grid")
    if set(d) - _DESIGN_KEYS:
        _fail(where, f"unknown key(s) {sorted(set(d) - _DESIGN_KEYS)}; allowed {sorted(_DESIGN_KEYS)}")
    comp = d.get("component")
    if comp not in REGISTRY:
        _fail(f"{where}.component", f"{comp!r} is not one of {sorted(REGISTRY)}")
    fixed, grid = d.get("fixed", {}), d.get("grid", {})
    if not isinstance(fixed, dict) or not isinstance(grid, dict):
        _fail(where, "fixed and grid must be objects")
    for k, v in grid.items():
        if not isinstance(v, list) or not v:
            _fail(f"{where}.grid.{k}", f"{v!r} must be a non-empty list of values")
    allowed = set(REGISTRY[comp].defaults)
    for k in list(fixed) + list(grid):
        if k not in allowed:
            _fail(where, f"{comp} has no parameter {k!r}; allowed {sorted(allowed)}")
    out = []
    for combo in itertools.product(*grid.values()):
        params = dict(fixed, **dict(zip(grid, combo)))
        resolve_params(comp, params)
        out.append(Point(comp, params, target, bits, K))
    return out


def parse_config(cfg: dict, name: str = "sweep") -> SweepConfig:
    """Validate a config dict and expand it; raises :class:`DQTValueError` naming the field."""
    from reports.synth import TARGETS
    if not isinstance(cfg, dict):
        _fail("", "must be a JSON object")
    if set(cfg) - _KEYS:
        _fail("", f"unknown key(s) {sorted(set(cfg) - _KEYS)}; allowed {sorted(_KEYS)}")
    target = cfg.get("target", "cmos")
    if target not in TARGETS or target == "sky130":
        _fail("target", f"{target!r} is not one of {[t for t in TARGETS if t != 'sky130']}")
    bits, K = cfg.get("bits", 8), cfg.get("K", 64)
    if not isinstance(bits, int) or not 1 <= bits <= 16:
        _fail("bits", f"{bits!r} is outside the allowed range [1, 16]")
    if not isinstance(K, int) or not 1 <= K <= 1 << 20:
        _fail("K", f"{K!r} is outside the allowed range [1, 1048576]")
    designs = cfg.get("designs")
    if not isinstance(designs, list) or not designs:
        _fail("designs", "must be a non-empty list")
    points = [p for i, d in enumerate(designs) for p in _design_points(i, d, target, bits, K)]
    labels = [p.label for p in points]
    dup = sorted({x for x in labels if labels.count(x) > 1})
    if dup:
        _fail("designs", f"points listed twice: {dup[:3]}")
    return SweepConfig(str(cfg.get("name", name)), tuple(points))


def load_config(path) -> SweepConfig:
    """Read a ``.json`` or ``.toml`` sweep config."""
    p = Path(path)
    if not p.is_file():
        raise DQTValueError(f"sweep config {p}: no such file")
    try:
        if p.suffix == ".toml":
            import tomllib
            cfg = tomllib.loads(p.read_text())
        else:
            cfg = json.loads(p.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise DQTValueError(f"sweep config {p}: cannot be parsed ({e})") from None
    return parse_config(cfg, p.stem)
