"""The mapped sky130 netlists of the costed catalog designs, simulated by reports.gatesim,
against golden."""
import itertools

import pytest

from golden.formats import DQTValueError
from reports.gatesim import GateSim, LibertyCells, Netlist, function_to_python
from reports.synth import synth
from reports.tools import prepare_liberty

from .conftest import need

pytestmark = [pytest.mark.tools]


# (liberty function, the same function as a Python boolean expression): the reference is
# Python's own boolean evaluation; juxtaposition ("A B") is AND and postfix ' is NOT.
FUNCTIONS = [("!A", "not A"), ("(A&B) | C", "(A and B) or C"), ("A'", "not A"),
             ("A B + !C", "(A and B) or not C"), ("(A^B)&!(C|D)", "(A != B) and not (C or D)"),
             ("(!A1&!A2) | (!B1)", "(not A1 and not A2) or (not B1)"),
             ("A*B+C'", "(A and B) or not C"), ("1", "True"), ("0", "False")]


@pytest.mark.parametrize("expr, ref", FUNCTIONS)
def test_function_translation_matches_truth_table(expr, ref):
    names = sorted(set(__import__("re").findall(r"[A-Z][A-Z0-9]*", expr)))
    py = function_to_python(expr, "v", "M")
    for vals in itertools.product([0, 1], repeat=len(names)):
        env = dict(zip(names, vals))
        got = eval(py, {"v": env, "M": 1}) & 1
        want = int(bool(eval(ref, {}, {k: bool(v) for k, v in env.items()})))
        assert got == want, (expr, env)


def test_postfix_and_juxtaposition():
    f = eval("lambda v, M: " + function_to_python("A B + C'", "v", "M"))
    for a, b, c in itertools.product([0, 1], repeat=3):
        assert f({"A": a, "B": b, "C": c}, 1) & 1 == int((a and b) or not c)


def test_bad_function_raises():
    with pytest.raises(DQTValueError, match="liberty function"):
        function_to_python("(A&B")


@pytest.fixture(scope="module")
def lib(liberty):
    return LibertyCells(prepare_liberty(liberty).read_text())


def _outputs(r, port_entry):
    """Per lane: the output payloads the netlist produced (cycles where ``o__valid``)."""
    from sim.packing import unpack
    valid = r.outputs["o__valid"].astype(bool)
    pay = r.outputs["o__payload"]
    out = []
    for lane in range(r.lanes):
        words = [int(v) for v in pay[valid[:, lane], lane]]
        f = unpack(port_entry, words) if words else {}
        vals = f["acc"] if "acc" in f else f.get("", [])
        out.append([int(v) for v in vals])
    return out


#: One design per operator family (n = 8), so every driver and every family's netlist is
#: checked against the golden model; the whole sweep shares these drivers.
FAMILY_DESIGNS = ["int_mac_n8", "nested_mac_floor_right_n8", "nested_mac_round_msb_n8",
                  "bitserial_mac_n8", "paper_dot_n8", "factored_dot_n8", "requantize_n8",
                  "fp32_requant_n8", "nested_shift_round_n8", "fusion_mac_n8",
                  "fusion_mac_nested_n8"]


@need("yosys")
@pytest.mark.parametrize("name", FAMILY_DESIGNS)
def test_catalog_netlist_matches_golden(name, liberty, lib, tiny_artifact):
    """The mapped netlist of each costed design, driven by the report's own workload
    stimulus, reproduces the golden outputs (every output of every lane)."""
    from golden.network import load_network
    from rtl.generate import port_table
    from reports.designs import design_by_name
    from reports.workload import build_workload
    d = design_by_name(name)
    wl = build_workload(load_network(tiny_artifact), cycles=96, lanes=8, images=8,
                        requant_len=12)
    v, top = d.verilog()
    s = synth(v, top, "sky130", liberty=liberty)
    sim = GateSim(Netlist.from_blif(s["netlist_blif"]), lib)
    ports = {p["name"]: p for p in port_table(d.make())}
    in_flight = max(1, d.parameters().latency)
    for b in (2, 4):
        stim, _, _ = d.driver(wl, b, ports)
        got = _outputs(sim.run(stim), ports["o__payload"])
        want = d.expect(wl, b)
        assert sum(map(len, got)) > 0, f"{name} b={b}: the netlist produced no output"
        for lane, (g, w) in enumerate(zip(got, want)):
            # results whose last input arrives within the latency of the window's end are
            # still in flight when the simulation stops
            assert len(w) - in_flight <= len(g) <= len(w), f"{name} b={b} lane {lane}"
            assert g == w[:len(g)], f"{name} b={b} lane {lane}: netlist {g} golden {w}"
