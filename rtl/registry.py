# amaranth: UnusedElaboratable=no
"""The operator catalog: one entry per operator, from which golden model, RTL, testbench
and cost are all reached.

Shaped after :mod:`amaranth.lib.crc`, where one ``Parameters`` object yields both the
software model and the hardware: an :class:`Operator` declares an operator's defaults (from
:mod:`golden.defaults`), its RTL component, its golden function, its cocotb testbench and
the parameter points the reports cost; :class:`Parameters` is one operator at one checked
parameter set and builds the component::

    from rtl.registry import parameters
    p = parameters("nested_mac", pes=1, mode=NestedMode.ROUND)
    comp = p.create()            # the verified rtl.nested_mac.NestedMac
    p.golden                     # golden.ops.nested_mac
    p.testbench                  # "test_nested_mac" (cocotb_tests/test_nested_mac.py)

The operator's name is the same everywhere: ``golden.ops.<name>``, ``rtl/<name>.py`` (the
four constant operators share ``rtl/operators.py``), ``cocotb_tests/test_<name>.py``
(likewise ``test_operators.py``), the report's design family and the registry key.
Parameters are JSON values (enums are ``str`` enums, so they serialise as their value) so
the same dictionaries serve ``--config`` files, the generated manifest, the simulation
and the report.
"""
from __future__ import annotations

import importlib
import json
from dataclasses import dataclass, field

from golden import defaults as D
from golden.formats import AddConstants, IntFormat, MulConstants

from ._common import RTLParamError

__all__ = ["Operator", "Parameters", "REGISTRY", "CATALOG", "parameters", "build", "cost_points",
           "resolve_params", "DEFAULT_INSTANCES", "COST_POINTS", "paper_constants"]


def _fmt(d, name="format"):
    if isinstance(d, IntFormat):
        return d
    if not isinstance(d, dict) or set(d) - {"n", "signed"} or "n" not in d:
        raise RTLParamError(f"{name}={d!r} must be an object {{\"n\": int, \"signed\": bool}}")
    return IntFormat(d["n"], bool(d.get("signed", False)))


def _constants(kind, keys):
    def conv(d, name="c"):
        if isinstance(d, kind):
            return d
        if not isinstance(d, dict):
            raise RTLParamError(f"{name}={d!r} must be an object with {', '.join(keys)}, out")
        extra = set(d) - {*keys, "out", "m_bits"}
        if extra:
            raise RTLParamError(f"{name}: unknown constant keys {sorted(extra)}")
        return kind(*(d[k] for k in keys), _fmt(d["out"], "out"), d.get("m_bits", 32))
    return conv


_mulc = _constants(MulConstants, ("M1", "M2", "M3", "M4", "S"))
_addc = _constants(AddConstants, ("M1", "M2", "M3", "S"))


def _json(c):
    d = {k: getattr(c, k) for k in ("M1", "M2", "M3", "M4", "S", "m_bits") if hasattr(c, k)}
    d["out"] = {"n": c.out.n, "signed": c.out.signed}
    return d


def paper_constants(n: int = D.N, m_bits: int = 16) -> MulConstants:
    """Operator constants of the paper-literal / factored comparison: scales dx = 0.02,
    dw = 0.01, dy = 0.05 and non-zero zero points (3, 2), so all four terms of the paper's
    multiply are present (the general case whose cost the reports measure)."""
    return MulConstants.from_scales(0.02, 3, 0.01, 2, 0.05, 0, IntFormat(n, False),
                                    m_bits=m_bits)


_ADD = AddConstants.from_scales(0.02, 0, 0.03, 0, 0.04, 0, IntFormat(D.N, False))
_F8U = {"n": D.N, "signed": False}
_F8S = {"n": D.N, "signed": True}


@dataclass(frozen=True)
class Operator:
    """One catalog entry.

    Attributes
    ----------
    name : str
        The operator's name everywhere (registry key, golden function, report family).
    component : str
        "module:Class" of the RTL component.
    golden : str
        Dotted path of the golden function the component is verified against.
    testbench : str
        cocotb test module in ``cocotb_tests/`` that runs the component against ``golden``.
    latency : str
        Timing contract (the built component's ``latency`` property gives the number).
    defaults : dict
        JSON parameters of the default instance.
    convert : dict
        Parameter name -> converter from JSON to the constructor's argument.
    """

    name: str
    component: str
    golden: str
    testbench: str
    latency: str
    defaults: dict
    convert: dict = field(default_factory=dict)

    @property
    def cls_path(self) -> str:
        return self.component

    def cls(self):
        mod, name = self.component.split(":")
        return getattr(importlib.import_module(mod), name)

    def golden_function(self):
        mod, name = self.golden.rsplit(".", 1)
        return getattr(importlib.import_module(mod), name)

    def parameters(self, **params) -> "Parameters":
        return Parameters(self.name, params)


def _op(name, component, golden, latency, defaults, convert=None, testbench=None):
    return Operator(name, component, golden, testbench or f"test_{name}", latency, defaults,
                    convert or {})


_MAC = {"n": D.N, "pes": 8, "acc_width": None, "max_terms": D.ACC_TERMS, "mode": D.MODE,
        "overflow": D.OVERFLOW, "candidates": None}
_BEAT = "2 cycles from the last beat of a packet, one beat per cycle"

CATALOG: dict[str, Operator] = {o.name: o for o in [
    _op("nested_shift", "rtl.nested_shift:NestedShift", "golden.ops.nested_shift",
        "1 cycle, one code per cycle",
        {"n": D.N, "mode": D.MODE, "signed": False, "candidates": None}),
    _op("accumulate", "rtl.accumulate:Accumulate", "golden.ops.accumulate",
        "1 cycle from the last addend of a packet",
        {"width": 26, "overflow": D.OVERFLOW, "addend_width": 17, "max_terms": D.ACC_TERMS}),
    _op("nested_mac", "rtl.nested_mac:NestedMac", "golden.ops.nested_mac", _BEAT,
        {**_MAC, "variant": D.ALIGNMENT}),
    _op("fusion_mac", "rtl.fusion_mac:FusionMac", "golden.ops.fusion_mac",
        "2 cycles from the last beat of a packet, one beat per cycle (16 products per beat "
        "at b <= 2, 4 at b <= 4, 1 above, n = 8)",
        {**{k: v for k, v in _MAC.items() if k != "pes"}, "inputs": "master"}),
    _op("bitserial_mac", "rtl.bitserial_mac:BitserialMac", "golden.ops.bitserial_mac",
        "a beat at precision b takes b cycles; result 1 cycle after the last bit cycle", _MAC),
    _op("int_mac", "rtl.int_mac:IntMac", "golden.ops.int_mac", _BEAT,
        {k: v for k, v in _MAC.items() if k not in ("mode", "candidates")}),
    _op("requantize", "rtl.requantize:Requantize", "golden.ops.requantize",
        "3 cycles, one value per cycle", {"acc_width": 32, "m_bits": 32, "n": D.N,
                                          "signed": False}),
    _op("int_mul", "rtl.operators:IntMul", "golden.ops.int_mul", "2 cycles, one value per cycle",
        {"c": _json(paper_constants(D.N, 32)), "f1": _F8U, "f2": _F8S},
        {"c": _mulc, "f1": _fmt, "f2": _fmt}, "test_operators"),
    _op("int_add", "rtl.operators:IntAdd", "golden.ops.int_add", "2 cycles, one value per cycle",
        {"c": _json(_ADD), "f1": _F8U, "f2": _F8U}, {"c": _addc, "f1": _fmt, "f2": _fmt},
        "test_operators"),
    _op("paper_dot", "rtl.operators:PaperDot", "golden.ops.paper_dot",
        "3 cycles from the last beat of a packet",
        {"c": _json(paper_constants(D.N, 32)), "pes": 8, "max_terms": D.ACC_TERMS,
         "fx": _F8U, "fw": _F8S, "zy": 0}, {"c": _mulc, "fx": _fmt, "fw": _fmt},
        "test_operators"),
    _op("factored_dot", "rtl.operators:FactoredDot", "golden.ops.factored_dot",
        "3 cycles from the last beat of a packet",
        {"c": _json(paper_constants(D.N, 32)), "pes": 8, "max_terms": D.ACC_TERMS,
         "fx": _F8U, "fw": _F8S, "zy": 0}, {"c": _mulc, "fx": _fmt, "fw": _fmt},
        "test_operators"),
    _op("fp32_requant", "rtl.fp32_requant:Fp32Requant", "golden.ops.fp32_requant",
        "3 cycles, one value per cycle", {"acc_width": 32, "n": D.N, "signed": False}),
    _op("engine", "rtl.engine:Engine", "golden.layers.qdense",
        "see docs/rtl.md: per vector ceil(K/pes) input beats, ceil(O/lanes)*ceil(K/pes) "
        "compute cycles, pipeline latency Engine.pipeline_latency", dict(D.ENGINE)),
]}

#: The name the rest of the toolkit has always used for the catalog.
REGISTRY = CATALOG


def resolve_params(component: str, params: dict | None = None) -> dict:
    """Defaults overlaid with ``params``; unknown names raise :class:`RTLParamError`."""
    if component not in CATALOG:
        raise RTLParamError(f"component {component!r} is not one of {sorted(CATALOG)}")
    spec = CATALOG[component]
    params = dict(params or {})
    extra = set(params) - set(spec.defaults)
    if extra:
        raise RTLParamError(f"{component}: unknown parameter(s) {sorted(extra)}; "
                            f"allowed: {sorted(spec.defaults)}")
    out = dict(spec.defaults)
    out.update(params)
    return out


def _canonical(params: dict) -> str:
    return json.dumps(params, sort_keys=True, default=lambda v: getattr(v, "value", str(v)))


@dataclass(frozen=True, init=False)
class Parameters:
    """One operator at one parameter set, checked on construction (the component's own
    constructor is the check, so a bad value fails here with its allowed range).

    Equal parameter sets compare equal whatever their spelling (defaults filled in, enums
    or their values).
    """

    operator: str
    key: str

    def __init__(self, operator: str, params: dict | None = None):
        resolved = resolve_params(operator, params)
        object.__setattr__(self, "operator", operator)
        object.__setattr__(self, "key", _canonical(resolved))
        self.create()          # the constructor's checks

    @property
    def spec(self) -> Operator:
        return CATALOG[self.operator]

    @property
    def params(self) -> dict:
        """Resolved JSON parameters."""
        return json.loads(self.key)

    @property
    def golden(self):
        """The golden function this component is verified against."""
        return self.spec.golden_function()

    @property
    def testbench(self) -> str:
        return self.spec.testbench

    def create(self):
        """A fresh RTL component (an Amaranth elaboratable)."""
        spec, p = self.spec, self.params
        kwargs = {k: spec.convert[k](v, k) if k in spec.convert else v for k, v in p.items()}
        try:
            return spec.cls()(**kwargs)
        except (TypeError, KeyError) as e:
            raise RTLParamError(f"{self.operator}: bad parameters {p!r} ({e})") from None

    @property
    def latency(self):
        return getattr(self.create(), "latency", None)


def parameters(operator: str, **params) -> Parameters:
    return Parameters(operator, params)


def build(component: str, params: dict | None = None):
    """Construct one component at the given parameters (JSON values or Python objects)."""
    return Parameters(component, params).create()


def _cost_points() -> dict[str, tuple[str, dict]]:
    """Instance name -> (operator, params) of every design the reports cost: single-lane
    (``pes=1``: one MAC per cycle) parameterisations of the verified components, swept over
    the master width, plus the layer engine at its verified geometry."""
    pts = {}
    for n in (4, 8, 16):
        mac = {"n": n, "pes": 1, "max_terms": D.COST_TERMS}
        cands = list(D.candidates_for(n))
        pts[f"int_mac_n{n}"] = ("int_mac", dict(mac))
        for mode in ("floor", "round"):
            for var in (("right", "msb") if n == D.N else ("right",)):
                pts[f"nested_mac_{mode}_{var}_n{n}"] = (
                    "nested_mac", {**mac, "mode": mode, "variant": var, "candidates": cands})
        pts[f"bitserial_mac_n{n}"] = ("bitserial_mac", {**mac, "candidates": cands})
    for inputs, tag in (("master", ""), ("nested", "_nested")):
        pts[f"fusion_mac{tag}_n8"] = ("fusion_mac", {
            "n": D.N, "max_terms": D.COST_TERMS, "candidates": list(D.candidates_for(D.N)),
            "inputs": inputs})
    dot = {"c": _json(paper_constants(D.N)), "pes": 1, "max_terms": D.COST_TERMS}
    pts["paper_dot_n8"] = ("paper_dot", dict(dot))
    pts["factored_dot_n8"] = ("factored_dot", dict(dot))
    pts["requantize_n8"] = ("requantize", {"acc_width": 32, "m_bits": 32, "n": D.N})
    pts["fp32_requant_n8"] = ("fp32_requant", {"acc_width": 32, "n": D.N})
    for mode in ("floor", "round"):
        pts[f"nested_shift_{mode}_n8"] = ("nested_shift", {"n": D.N, "mode": mode,
                                                            "candidates": list(D.CANDIDATES)})
    pts["engine"] = ("engine", {})
    return pts


#: Instance name -> (operator, params) of every design the reports cost.
COST_POINTS = _cost_points()


def cost_points(operator: str) -> list[dict]:
    """The parameter sets of ``operator`` that the reports cost (the cocotb testbench of the
    operator runs each of them)."""
    return [p for op, p in COST_POINTS.values() if op == operator]


#: Instances written by ``dqt rtl generate`` without a config: every operator at its
#: defaults, the variants the reports compare (round/signed shifter, MSB-aligned MAC), and
#: every design the reports cost, under the name the report uses.
DEFAULT_INSTANCES = [{"name": k, "component": k, "params": {}} for k in CATALOG] + [
    {"name": "nested_shift_round_signed", "component": "nested_shift",
     "params": {"mode": "round", "signed": True}},
    {"name": "nested_mac_msb", "component": "nested_mac", "params": {"variant": "msb"}},
] + [{"name": k, "component": op, "params": p} for k, (op, p) in COST_POINTS.items()
     if k not in CATALOG]
