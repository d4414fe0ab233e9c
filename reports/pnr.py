"""FPGA place and route with nextpnr (iCE40 UP5K, ECP5 LFE5U-25F): maximum clock frequency.

The design is wrapped before synthesis so it fits any package and always has a
register-to-register path (a block whose multiplier maps onto one DSP would otherwise have
no timed path): all inputs come from a shift register fed by one pin, all outputs are
captured into a register chain ``o_r <= o ^ (o_r << 1)`` whose last bit drives one pin, so
every output bit stays observable and no logic is optimised away. The wrapper's registers
are in the timed netlist; its extra logic is one LUT level after the block's outputs.
"""
from __future__ import annotations

import re
import tempfile
from pathlib import Path

from golden.formats import DQTValueError

from .cache import cache_dir, cache_get, cache_key, cache_put
from .synth import ports_of, synth_many
from .tools import ToolError, find_tool, run_tool, tool_version

__all__ = ["wrap_registered", "place_and_route", "DEVICES", "WRAPPER_TOP"]

WRAPPER_TOP = "dqt_pnr_wrapper"

#: family -> (nextpnr tool, device arguments)
DEVICES = {
    "ice40": ("nextpnr-ice40", ["--up5k", "--package", "sg48"]),
    "ecp5": ("nextpnr-ecp5", ["--25k", "--package", "CABGA256"]),
}

_SEED = 1


def wrap_registered(verilog: str, top: str, clock: str = "clk") -> str:
    """Verilog of :data:`WRAPPER_TOP`: ``top`` behind a serial input shift register and an
    output register chain (ports: ``clk``, ``sin``, ``sout``)."""
    ports = ports_of(verilog, top)
    ins = [(n, w) for d, n, w, s in ports if d == "input" and n != clock]
    outs = [(n, w) for d, n, w, s in ports if d == "output"]
    if not outs:
        raise DQTValueError(f"module {top!r} has no outputs to time")
    win = max(1, sum(w for _, w in ins))
    wout = sum(w for _, w in outs)
    conns = [f".{clock}(clk)"]
    pos = 0
    for n, w in ins:
        conns.append(f".{n}(sh[{pos + w - 1}:{pos}])")
        pos += w
    pos = 0
    for n, w in outs:
        conns.append(f".{n}(o[{pos + w - 1}:{pos}])")
        pos += w
    shift_in = "{sh[%d:0], sin}" % (win - 2) if win > 1 else "sin"
    shift_out = "o ^ {o_r[%d:0], 1'b0}" % (wout - 2) if wout > 1 else "o"
    return verilog + f"""
module {WRAPPER_TOP}(input clk, input sin, output sout);
  reg [{win - 1}:0] sh = 0;
  wire [{wout - 1}:0] o;
  reg [{wout - 1}:0] o_r = 0;
  always @(posedge clk) begin
    sh <= {shift_in};
    o_r <= {shift_out};
  end
  assign sout = o_r[{wout - 1}];
  {top} dut ({", ".join(conns)});
endmodule
"""


_FMAX = re.compile(r"Max frequency for clock\s+'?([^':]+)'?:\s*([0-9.]+)\s*MHz")


def place_and_route(verilog: str, top: str, family: str, dsp: bool = True,
                    clock: str = "clk") -> dict:
    """Wrap, synthesize and place-and-route ``top`` on ``family`` ("ice40" or "ecp5").

    Returns ``{"fmax_mhz": float, "device": str, "seed": int, "resources": {...}}`` where
    resources are those of the wrapped design. Cached by Verilog, family and tool versions.
    """
    if family not in DEVICES:
        raise DQTValueError(f"FPGA family {family!r} is not one of {sorted(DEVICES)}")
    tool, dev = DEVICES[family]
    exe = find_tool(tool)
    if exe is None:
        raise ToolError(f"{tool} not found (install yowasp-{tool})")
    wrapped = wrap_registered(verilog, top, clock)
    target = family if dsp else family + "_nodsp"
    key = cache_key("pnr", 2, tool_version(tool), tool_version("yosys"), target, dev, _SEED,
                    wrapped)
    hit = cache_get("pnr", key)
    if hit is not None:
        return hit
    # both families' wrapped netlists come from one Yosys process (the second is a cache hit)
    both = [f + ("" if dsp else "_nodsp") for f in DEVICES]
    s = synth_many(wrapped, WRAPPER_TOP, both, keep_json=True).get(target)
    if s is None:
        raise ToolError(f"synthesis of the wrapped design for {family} failed")
    work = Path(tempfile.mkdtemp(prefix=f"pnr-{family}-", dir=cache_dir()))
    try:
        (work / "design.json").write_text(s["json"])
        try:
            out = run_tool([exe, *dev, "--json", "design.json", "--freq", "1", "--seed",
                            str(_SEED), "--timing-allow-fail", "-l", "nextpnr.log"], work,
                           log_name="run.log")
        except ToolError as e:
            # the first ERROR line says why (typically: more DSPs/BRAMs/LUTs than the device has)
            why = next((ln.strip() for ln in str(e).splitlines() if "ERROR" in ln), "")
            raise ToolError(f"{tool} on {' '.join(dev)} failed: {why or str(e).splitlines()[0]}"
                            ) from None
        log = (work / "nextpnr.log").read_text() if (work / "nextpnr.log").is_file() else out
        found = _FMAX.findall(log)
        if not found:
            raise ToolError(f"{tool} reported no maximum frequency (log in {work})")
        fmax = float(found[-1][1])      # the last report is the post-route one
    finally:
        import shutil
        shutil.rmtree(work, ignore_errors=True)
    res = {"fmax_mhz": fmax, "device": " ".join(dev), "seed": _SEED,
           "resources": s["resources"]}
    cache_put("pnr", key, res)
    return res
