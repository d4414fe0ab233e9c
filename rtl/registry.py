# amaranth: UnusedElaboratable=no
"""Registry of the RTL components: name -> constructor, default parameters, golden function.

Parameters are plain JSON values so the same dictionaries serve the ``--config`` file, the
generated manifest and the report/simulation stages::

    from rtl.registry import REGISTRY, build
    comp = build("nested_mac", {"variant": "msb", "pes": 4})
"""
from __future__ import annotations

from dataclasses import dataclass, field

from golden.formats import AddConstants, IntFormat, MulConstants

from ._common import RTLParamError

__all__ = ["ComponentSpec", "REGISTRY", "build", "resolve_params", "DEFAULT_INSTANCES"]


def _fmt(d, name):
    if isinstance(d, IntFormat):
        return d
    if not isinstance(d, dict) or set(d) - {"n", "signed"} or "n" not in d:
        raise RTLParamError(f"{name}={d!r} must be an object {{\"n\": int, \"signed\": bool}}")
    return IntFormat(d["n"], bool(d.get("signed", False)))


# Default operator constants: scales dx = 0.02, dw = 0.01, dy = 0.05 with non-zero zero
# points, so all four terms of the paper's multiply are present (the general case whose
# cost the reports measure).
_MUL = MulConstants.from_scales(0.02, 3, 0.01, 2, 0.05, 0, IntFormat(8, False))
_ADD = AddConstants.from_scales(0.02, 0, 0.03, 0, 0.04, 0, IntFormat(8, False))
_MUL_DEFAULT = {"M1": _MUL.M1, "M2": _MUL.M2, "M3": _MUL.M3, "M4": _MUL.M4, "S": _MUL.S,
                "out": {"n": 8, "signed": False}, "m_bits": _MUL.m_bits}
_ADD_DEFAULT = {"M1": _ADD.M1, "M2": _ADD.M2, "M3": _ADD.M3, "S": _ADD.S,
                "out": {"n": 8, "signed": False}, "m_bits": _ADD.m_bits}


def _mulc(d):
    if isinstance(d, MulConstants):
        return d
    if not isinstance(d, dict):
        raise RTLParamError(f"constants {d!r} must be an object with M1, M2, M3, M4, S, out")
    extra = set(d) - {"M1", "M2", "M3", "M4", "S", "out", "m_bits"}
    if extra:
        raise RTLParamError(f"unknown multiply-constant keys {sorted(extra)}")
    return MulConstants(d["M1"], d["M2"], d["M3"], d["M4"], d["S"], _fmt(d["out"], "out"),
                        d.get("m_bits", 32))


def _addc(d):
    if isinstance(d, AddConstants):
        return d
    if not isinstance(d, dict):
        raise RTLParamError(f"constants {d!r} must be an object with M1, M2, M3, S, out")
    extra = set(d) - {"M1", "M2", "M3", "S", "out", "m_bits"}
    if extra:
        raise RTLParamError(f"unknown add-constant keys {sorted(extra)}")
    return AddConstants(d["M1"], d["M2"], d["M3"], d["S"], _fmt(d["out"], "out"),
                        d.get("m_bits", 32))


@dataclass(frozen=True)
class ComponentSpec:
    """One registry entry.

    ``cls_path`` is "module:Class"; ``defaults`` the JSON parameters; ``convert`` maps JSON
    values to constructor arguments (formats and constants); ``golden`` names the golden
    function the component is tested against; ``latency_note`` describes the timing.
    """

    cls_path: str
    defaults: dict
    golden: str
    latency_note: str
    convert: dict = field(default_factory=dict)

    def cls(self):
        import importlib
        mod, name = self.cls_path.split(":")
        return getattr(importlib.import_module(mod), name)


_F8U = {"n": 8, "signed": False}
_F8S = {"n": 8, "signed": True}

REGISTRY: dict[str, ComponentSpec] = {
    "nested_shift": ComponentSpec(
        "rtl.shifter:NestedShift",
        {"n": 8, "mode": "floor", "signed": False, "candidates": None},
        "golden.ops.nested_shift", "1 cycle, one code per cycle"),
    "accumulate": ComponentSpec(
        "rtl.accumulator:Accumulate",
        {"width": 26, "overflow": "wrap", "addend_width": 17, "max_terms": 512},
        "golden.ops.accumulate", "1 cycle from the last addend of a packet"),
    "nested_mac": ComponentSpec(
        "rtl.mac:NestedMac",
        {"n": 8, "pes": 8, "acc_width": None, "max_terms": 512, "mode": "floor",
         "variant": "right", "overflow": "wrap", "candidates": None},
        "golden.ops.nested_mac", "2 cycles from the last beat of a packet, one beat per cycle"),
    "bitserial_mac": ComponentSpec(
        "rtl.bitserial:BitserialMac",
        {"n": 8, "pes": 8, "acc_width": None, "max_terms": 512, "mode": "floor",
         "overflow": "wrap", "candidates": None},
        "golden.ops.bitserial_mac",
        "a beat at precision b takes b cycles; result 1 cycle after the last bit cycle"),
    "int8_mac": ComponentSpec(
        "rtl.int8mac:Int8Mac",
        {"n": 8, "pes": 8, "acc_width": None, "max_terms": 512, "overflow": "wrap"},
        "golden.ops.int8_mac", "2 cycles from the last beat of a packet, one beat per cycle"),
    "requantize": ComponentSpec(
        "rtl.requant:Requantize",
        {"acc_width": 32, "m_bits": 32, "n": 8, "signed": False},
        "golden.ops.requantize", "3 cycles, one value per cycle"),
    "int_mul": ComponentSpec(
        "rtl.operators:IntMul", {"c": _MUL_DEFAULT, "f1": _F8U, "f2": _F8S},
        "golden.ops.int_mul", "2 cycles, one value per cycle",
        {"c": _mulc, "f1": _fmt, "f2": _fmt}),
    "int_add": ComponentSpec(
        "rtl.operators:IntAdd", {"c": _ADD_DEFAULT, "f1": _F8U, "f2": _F8U},
        "golden.ops.int_add", "2 cycles, one value per cycle",
        {"c": _addc, "f1": _fmt, "f2": _fmt}),
    "paper_dot": ComponentSpec(
        "rtl.operators:PaperDot",
        {"c": _MUL_DEFAULT, "pes": 8, "max_terms": 512, "fx": _F8U, "fw": _F8S, "zy": 0},
        "golden.ops.paper_dot", "3 cycles from the last beat of a packet",
        {"c": _mulc, "fx": _fmt, "fw": _fmt}),
    "factored_dot": ComponentSpec(
        "rtl.operators:FactoredDot",
        {"c": _MUL_DEFAULT, "pes": 8, "max_terms": 512, "fx": _F8U, "fw": _F8S, "zy": 0},
        "golden.ops.factored_dot", "3 cycles from the last beat of a packet",
        {"c": _mulc, "fx": _fmt, "fw": _fmt}),
    "fp32_requant": ComponentSpec(
        "rtl.fp32:Fp32Requant", {"acc_width": 32, "n": 8, "signed": False},
        "golden.ops.fp32_requant", "3 cycles, one value per cycle"),
    "engine": ComponentSpec(
        "rtl.engine:Engine",
        {"n": 8, "lanes": 2, "pes": 8, "max_k": 512, "max_out": 64, "weight_depth": 64,
         "acc_max": 32, "m_bits": 31, "variant": "right", "candidates": [2, 4, 6, 8],
         "add_bits": 32},
        "golden.layers.qdense / golden.ops.int_add (see golden.engine)",
        "see docs/rtl.md: per vector ceil(K/pes) input beats, ceil(O/lanes)*ceil(K/pes) "
        "compute cycles, pipeline latency Engine.pipeline_latency"),
}

#: Instances written by ``dqt rtl generate`` without a config: every component at its
#: defaults, plus the variants the reports compare (round/signed shifter, MSB-aligned MAC).
DEFAULT_INSTANCES = [{"name": k, "component": k, "params": {}} for k in REGISTRY] + [
    {"name": "nested_shift_round_signed", "component": "nested_shift",
     "params": {"mode": "round", "signed": True}},
    {"name": "nested_mac_msb", "component": "nested_mac", "params": {"variant": "msb"}},
]


def resolve_params(component: str, params: dict | None = None) -> dict:
    """Defaults overlaid with ``params``; unknown names raise :class:`RTLParamError`."""
    if component not in REGISTRY:
        raise RTLParamError(f"component {component!r} is not one of {sorted(REGISTRY)}")
    spec = REGISTRY[component]
    params = dict(params or {})
    extra = set(params) - set(spec.defaults)
    if extra:
        raise RTLParamError(f"{component}: unknown parameter(s) {sorted(extra)}; "
                            f"allowed: {sorted(spec.defaults)}")
    out = dict(spec.defaults)
    out.update(params)
    return out


def build(component: str, params: dict | None = None):
    """Construct one component at the given parameters (JSON values or Python objects)."""
    spec = REGISTRY.get(component)
    p = resolve_params(component, params)
    kwargs = {k: (spec.convert[k](v, k) if k in spec.convert and spec.convert[k] is _fmt
                  else spec.convert[k](v) if k in spec.convert else v)
              for k, v in p.items()}
    try:
        return spec.cls()(**kwargs)
    except (TypeError, KeyError) as e:
        raise RTLParamError(f"{component}: bad parameters {p!r} ({e})") from None
