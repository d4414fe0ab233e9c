"""OpenSTA on the sky130 gate netlist: critical path and power with annotated activity.

This machine's OpenSTA (2.0.17) has ``report_checks``, ``report_power`` and
``set_power_activity`` but no ``read_vcd``/``read_saif`` and no gzip; its ``-pins`` option
of ``set_power_activity`` is broken, and activity annotated on a combinational output pin is
ignored (combinational activity is always propagated from the cell inputs). So the measured
activity is annotated where OpenSTA honours it: every input port bit
(``sta::set_power_input_port_activity``, before the first analysis, propagated through the
combinational cells by OpenSTA's probabilistic model) and every flip-flop output
(``sta::set_power_pin_activity``, after a first analysis, which is when it takes effect; it
sets the flip-flop's own internal and output switching power, while the combinational cells
behind a register keep OpenSTA's propagated estimate). Units: transitions per clock cycle
and duty (fraction of time at 1). The per-net toggle rates of the whole netlist are reported
beside the power (``mean_activity``) so the workload's effect on every net stays visible.

Clock: one ideal clock on ``clk``, all other inputs and all outputs constrained to it with
zero external delay. ``critical_path_ns`` is the clock period minus the worst setup slack
(clock-to-Q + logic + setup), i.e. the minimum period of the netlist.
"""
from __future__ import annotations

import re
import tempfile
from pathlib import Path

from .cache import cache_dir, cache_get, cache_key, cache_put
from .tools import ToolError, find_tool, prepare_liberty, run_tool, tool_version

__all__ = ["sta_timing", "sta_power", "PERIOD_NS"]

#: clock period used for timing and power (energy per cycle does not depend on it apart from
#: leakage, which is below 0.1 % here)
PERIOD_NS = 10.0


def _preamble(lib, top, period):
    return f"""read_liberty {{{lib}}}
read_verilog netlist.v
link_design {top}
create_clock -name clk -period {period} [get_ports clk]
set_input_delay 0 -clock clk [delete_from_list [all_inputs] [get_ports clk]]
set_output_delay 0 -clock clk [all_outputs]
"""


def _run_sta(script, netlist_v):
    sta = find_tool("sta")
    if sta is None:
        raise ToolError("OpenSTA (sta) not found")
    work = Path(tempfile.mkdtemp(prefix="sta-", dir=cache_dir()))
    try:
        (work / "netlist.v").write_text(netlist_v)
        (work / "run.tcl").write_text(script + "\nexit\n")
        out = run_tool([sta, "-no_init", "-exit", "run.tcl"], work, log_name="sta.log")
    finally:
        import shutil
        shutil.rmtree(work, ignore_errors=True)
    if re.search(r"^Error", out, re.M):
        raise ToolError("OpenSTA reported an error:\n" + "\n".join(
            l for l in out.splitlines() if l.startswith(("Error", "Warning")))[:2000])
    return out


def sta_timing(netlist_v: str, top: str, liberty, period: float = PERIOD_NS) -> dict:
    """Critical path of a sky130 netlist: ``{"critical_path_ns", "slack_ns", "path"}``."""
    lib = prepare_liberty(liberty)
    key = cache_key("sta_timing", 1, tool_version("sta"), lib.name, top, period, netlist_v)
    hit = cache_get("sta", key)
    if hit is not None:
        return hit
    out = _run_sta(_preamble(lib, top, period) + "report_checks -path_delay max -digits 4\n",
                   netlist_v)
    m = re.search(r"^\s*(-?[0-9.]+)\s+slack \((MET|VIOLATED)\)", out, re.M)
    if not m:
        raise ToolError("OpenSTA printed no setup slack (is there a register-to-register path?)")
    slack = float(m.group(1))
    sp = re.search(r"^Startpoint:\s*(\S+)", out, re.M)
    ep = re.search(r"^Endpoint:\s*(\S+)", out, re.M)
    res = {"critical_path_ns": round(period - slack, 4), "slack_ns": slack, "period_ns": period,
           "path": [sp.group(1) if sp else None, ep.group(1) if ep else None]}
    cache_put("sta", key, res)
    return res


_POWER_ROW = re.compile(r"^(Sequential|Combinational|Macro|Pad|Total)\s+([-0-9.e+]+)\s+"
                        r"([-0-9.e+]+)\s+([-0-9.e+]+)\s+([-0-9.e+]+)", re.M)


def sta_power(netlist_v: str, top: str, liberty, input_activity: dict, reg_activity: dict,
              period: float = PERIOD_NS, pin_activity: dict | None = None) -> dict:
    """Power (W) of the netlist with annotated activity.

    ``input_activity``: port bit name (``x[3]``) -> (transitions per cycle, duty);
    ``reg_activity``: flip-flop instance name -> (transitions per cycle, duty) of its Q;
    ``pin_activity``: instance pin (``n12_/A``) -> (transitions per cycle, duty), e.g. the
    loads of a net whose driver is outside the netlist (a memory macro's read data).
    Returns ``{"total_w", "internal_w", "switching_w", "leakage_w", "sequential_w",
    "combinational_w", "energy_per_cycle_pj"}``.
    """
    lib = prepare_liberty(liberty)
    lines = [_preamble(lib, top, period)]
    for net, (a, d) in sorted(input_activity.items()):
        lines.append(f"sta::set_power_input_port_activity [get_ports {{{net}}}] {a:.6g} {d:.6g}")
    # Flip-flop output annotations only take effect once a first power analysis has run.
    lines.append("report_power -digits 8")
    for inst, (a, d) in sorted(reg_activity.items()):
        lines.append(f"foreach p [get_pins -quiet {{{inst}/Q}}] "
                     f"{{ sta::set_power_pin_activity $p {a:.6g} {d:.6g} }}")
    for pin, (a, d) in sorted((pin_activity or {}).items()):
        lines.append(f"sta::set_power_pin_activity [get_pins {{{pin}}}] {a:.6g} {d:.6g}")
    lines.append('puts "DQT-FINAL-POWER"')
    lines.append("report_power -digits 8")
    script = "\n".join(lines) + "\n"
    key = cache_key("sta_power", 2, tool_version("sta"), lib.name, top, period, netlist_v, script)
    hit = cache_get("sta", key)
    if hit is not None:
        return hit
    out = _run_sta(script, netlist_v).split("DQT-FINAL-POWER")[-1]
    rows = {m.group(1): [float(m.group(i)) for i in range(2, 6)] for m in _POWER_ROW.finditer(out)}
    if "Total" not in rows:
        raise ToolError("OpenSTA printed no power table")
    t = rows["Total"]
    res = {"internal_w": t[0], "switching_w": t[1], "leakage_w": t[2], "total_w": t[3],
           "sequential_w": rows.get("Sequential", [0, 0, 0, 0])[3],
           "combinational_w": rows.get("Combinational", [0, 0, 0, 0])[3],
           "period_ns": period, "energy_per_cycle_pj": t[3] * period * 1e3}
    cache_put("sta", key, res)
    return res
