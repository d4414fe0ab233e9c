"""Report outputs: summary.json, report.md, index.html (plots embedded as base64) and PNGs.

Everything is written into a temporary sibling directory that replaces ``out_dir`` in one
rename, so a failed run never leaves a half-written report.
"""
from __future__ import annotations

import base64
import html
import json
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .build import _div as _ratio  # noqa: E402

__all__ = ["write_outputs", "PLOTS", "markdown", "conclusion", "plots_for"]

PLOTS = ("area_vs_width.png", "energy_vs_precision.png", "accuracy_vs_bitops.png",
         "transition_cost.png")


def _fmt(v, nd=3):
    """A number as a person writes it: thousands separated, no exponent."""
    if v is None:
        return "–"
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    a = abs(v)
    if a >= 100:
        return f"{v:,.0f}"
    if a >= 1:
        return f"{v:.2f}"
    if a == 0:
        return "0"
    digits = max(nd, nd - 1 - int(__import__("math").floor(__import__("math").log10(a))))
    return f"{v:.{digits}f}"


def _plot_area(designs, path):
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    fams = {}
    for d in designs:
        if d["family"] in ("paper_dot", "factored_dot", "requantize", "fp32_requant",
                           "nested_shift", "engine"):
            continue
        label = d["family"] + ("" if d["family"] != "nested_mac" else
                               f" {d['params']['mode']}/{d['params']['variant']}")
        fams.setdefault(label, []).append(d)
    for ax, key, ylabel in ((axes[0], "sky130_um2", "sky130 HD area (µm²)"),
                            (axes[1], "transistors", "transistors (Yosys stat -tech cmos)")):
        for label, ds in sorted(fams.items()):
            pts = sorted((d["n"], d[key]) for d in ds if d[key] is not None)
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=label)
        ax.set_xlabel("master width n (bits)")
        ax.set_ylabel(ylabel)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks([4, 8, 16], ["4", "8", "16"])
        ax.grid(True, alpha=0.3)
    if axes[0].get_legend_handles_labels()[0]:
        axes[0].legend(fontsize=7)
    fig.suptitle("Area vs width per design")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_energy(designs, path, engine=None):
    """pJ per MAC vs b of every MAC design (measured and model) and, when measured, of the
    layer engine running the network (its static-width modes)."""
    fig, ax = plt.subplots(figsize=(10, 4.8))
    scal = ((engine or {}).get("measured_on") or {}).get("params", {}).get("fusion")
    for e, style, label in (
            ((engine or {}).get("nested"), ("s-", "0.45"),
             "nested engine on the network (gate level)"),
            (engine, ("D-", "k"), ("precision-scalable (fusion) " if scal else "")
             + "engine on the network (gate level)")):
        pj = {int(m): v for m, v in ((e or {}).get("energy_pj_per_mac") or {}).items()
              if m.isdigit() and v is not None}
        if pj:
            bs = sorted(pj)
            ax.plot(bs, [pj[b] for b in bs], style[0], color=style[1], lw=2.2, label=label)
    for d in designs:
        e = d.get("energy_pj_per_mac")
        if not e or d["unit"] != "MAC":
            continue
        bs = sorted(int(b) for b in e)
        line, = ax.plot(bs, [e[str(b)] for b in bs], "o-", label=d["name"])
        em = d.get("energy_pj_per_mac_model") or {}
        if em:
            ax.plot(bs, [em.get(str(b)) for b in bs], "--", color=line.get_color(), alpha=0.5,
                    label="_model")
    ax.set_xlabel("run-time precision b (bits)")
    ax.set_ylabel("energy per MAC (pJ, log scale)")
    ax.set_yscale("log")
    ax.set_title("Energy per MAC vs precision")
    ax.grid(True, alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        from matplotlib.lines import Line2D
        styles = [Line2D([], [], color="k", ls="-", marker="o", label="sky130, activity-based"),
                  Line2D([], [], color="k", ls="--", alpha=0.5, label="45 nm model (Horowitz)")]
        first = ax.legend(handles=styles, fontsize=7, loc="upper left", title="line style",
                          title_fontsize=7)
        ax.add_artist(first)
        ax.legend(handles, labels, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                  title="design (colour)", title_fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_accuracy(acc, path):
    fig, ax = plt.subplots(figsize=(6, 4.2))
    if acc:
        for mode, v in sorted(acc.items()):
            ax.plot(v["bitops_per_image"], 100 * v["accuracy"],
                    "s" if mode == "dynamic" else "o", markersize=8, label=mode)
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no artifact: accuracy not available", ha="center", transform=ax.transAxes)
    ax.set_xlabel("BitOPs per image (sum of MACs x b x b)")
    ax.set_ylabel("held-out accuracy (%)")
    ax.set_title("Accuracy vs BitOPs (golden model, digits)")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_transition(trans, path):
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.4))
    pe = trans["per_element"]
    methods = list(pe["model_pj"])
    x = range(len(methods))
    axes[0].bar([i - 0.2 for i in x], [pe["model_pj"][m] for m in methods], 0.4, label="45 nm model")
    meas = [pe["measured_pj"].get(m) for m in methods]
    axes[0].bar([i + 0.2 for i in x], [v if v is not None else 0 for v in meas], 0.4,
                label="sky130 activity-based")
    axes[0].set_xticks(list(x), [m.replace("_", "\n") for m in methods], fontsize=7)
    axes[0].set_ylabel("pJ per element")
    axes[0].set_title("Per element, per design")
    axes[0].legend(fontsize=8)
    nets = trans["networks"]
    names = list(nets)
    conv = "weights+activations"
    shifts = [nets[n]["all_layers"][conv]["shifts"] for n in names]
    fops = [nets[n]["all_layers"][conv]["fp_ops"] for n in names]
    xi = range(len(names))
    axes[1].bar([i - 0.2 for i in xi], shifts, 0.4, label="nested shifts")
    axes[1].bar([i + 0.2 for i in xi], fops, 0.4, label="fp32 ops (dequant + requant)")
    axes[1].set_yscale("log")
    axes[1].set_xticks(list(xi), names)
    axes[1].set_ylabel("operations per transition")
    axes[1].set_title(f"Per network ({conv}, per inference after a switch)")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _table(headers, rows):
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for r in rows:
        out.append("| " + " | ".join(_fmt(v) for v in r) + " |")
    return "\n".join(out)


#: Node scaling between the model's anchors (45 nm, 0.9 V) and sky130 HD (130 nm, 1.8 V):
#: switched energy ~ C V^2 with C ~ feature size, the first-order part of the gap.
NODE_SCALE = (130 / 45) * (1.8 / 0.9) ** 2


def conclusion(headline: list[dict]) -> str:
    """One sentence computed from the headline rows (what the numbers say, or what is missing)."""
    by = {h["name"]: h for h in headline}
    base, nest = by.get("int_mac_n8"), by.get("nested_mac_floor_right_n8")
    if not base or not nest:
        return "The headline designs were not all built, so no comparison is drawn (see the notes)."
    area = _ratio(nest["sky130_um2"], base["sky130_um2"])
    e4 = _ratio(nest["pj_4b"], base["pj_8b"])
    e4i = _ratio(nest["pj_4b"], base["pj_4b"])
    if area is None:
        return "No sky130 area was measured (no liberty or no Yosys), so no comparison is drawn."
    out = (f"The nested MAC (floor, right-aligned) takes {area:.2f}x the area of the plain "
           f"8-bit integer MAC")
    if e4 is not None and e4i is not None:
        out += (f"; at 4 bits it spends {_fmt(nest['pj_4b'])} pJ per MAC, {e4:.2f}x the integer "
                f"MAC at 8 bits and {e4i:.2f}x the integer MAC fed 4-bit codes")
    eng = by.get("engine_fusion") or {}
    f4, f2 = _ratio(eng.get("pj_4b"), eng.get("pj_8b")), _ratio(eng.get("pj_2b"), eng.get("pj_8b"))
    if f4 is not None and f2 is not None:
        out += (f"; the precision-scalable layer engine running the trained network spends "
                f"{f4:.2f}x of its 8-bit energy per MAC at 4 bits and {f2:.2f}x at 2 bits")
    fp, rq = by.get("fp32_requant_n8"), by.get("requantize_n8")
    r = _ratio((fp or {}).get("pj_8b"), (rq or {}).get("pj_8b"))
    if r is not None:
        out += (f"; the fp32 requantization that DQT removes costs {r:.2f}x the dyadic "
                f"requantizer per output")
    return out + "."


def _gap(designs) -> list[str]:
    """The measured-vs-model paragraph, with the ratio range of the MAC designs."""
    rs = [e["8"] / m["8"] for d in designs if d["unit"] == "MAC"
          for e, m in [(d.get("energy_pj_per_mac") or {}, d.get("energy_pj_per_mac_model") or {})]
          if e.get("8") and m.get("8")]
    if not rs:
        return []
    return ["", f"Measured vs model: at 8 bits the sky130 activity-based figure is "
            f"{min(rs):.1f}x to {max(rs):.1f}x the 45 nm model. About {NODE_SCALE:.0f}x of that "
            "is the process (130 nm at 1.8 V against anchors at 45 nm and 0.9 V: energy ~ C V^2); "
            "the rest is what the per-operation model leaves out and the netlist contains: the "
            "pipeline and accumulator registers and their clock pins, the operand muxes, and "
            "OpenSTA's propagated activity behind registers (see Method). The model is for "
            "relative comparisons; the measured column is the absolute figure."]


def _headline_table(s):
    return _table(["design", "unit", "sky130 µm²", "iCE40 LUT", "pJ @8b", "pJ @4b", "pJ @2b",
                   "model @8b", "model @4b", "model @2b"],
                  [[h["name"], h["unit"], h["sky130_um2"], h["ice40_luts"], h["pj_8b"],
                    h["pj_4b"], h["pj_2b"], h["model_pj_8b"], h["model_pj_4b"],
                    h["model_pj_2b"]] for h in s["headline"]])


def _engine_section(e) -> list[str]:
    if not e:
        return []
    modes = list(e.get("cycles_per_image") or {})
    lines = ["", "## Layer engine running the network", "",
             f"`{e['name']}` {json.dumps(e['params'], sort_keys=True)}: "
             f"{_fmt(e.get('sky130_um2'))} µm² of logic, {_fmt(e.get('memory_bits'))} SRAM bits.", ""]
    on = e.get("measured_on")
    if on:
        lines += [f"Measured on the engine sized for the network: "
                  f"{json.dumps(on['params'], sort_keys=True)}, {_fmt(on.get('sky130_um2'))} µm² "
                  f"of logic, {_fmt(on.get('memory_bits'))} SRAM bits.", ""]
    nested = e.get("nested") or {}
    if modes:
        pj = e.get("energy_pj_per_mac") or {}
        npj, ncyc = nested.get("energy_pj_per_mac") or {}, nested.get("cycles_per_image") or {}
        extra = ["nested: cycles / image", "nested: pJ / MAC", "nested: vs 8-bit"] \
            if nested else []
        lines.append(_table(["mode", "cycles / image", "µJ / image", "pJ / MAC",
                             "pJ / MAC vs 8-bit"] + extra,
                            [[m, e["cycles_per_image"].get(m), e["energy_uj_per_image"].get(m),
                              pj.get(m), _ratio(pj.get(m), pj.get("8"))]
                             + ([ncyc.get(m), npj.get(m), _ratio(npj.get(m), npj.get("8"))]
                                if nested else []) for m in modes]))
    vs = e.get("vs_nested") or {}
    if vs.get("sky130_um2") is not None:
        lines += ["", f"The precision-scalable engine takes {vs['sky130_um2']:.2f}x the logic "
                  f"area of the plain nested engine of the same 8-bit throughput "
                  f"({json.dumps(nested.get('engine_params'), sort_keys=True)}, "
                  f"{_fmt(nested.get('sky130_um2'))} µm²)."]
    pub = e.get("published") or {}
    if pub and modes:
        pj = e.get("energy_pj_per_mac") or {}
        rows = [["this engine, measured", _ratio(pj.get("4"), pj.get("8")),
                 _ratio(pj.get("2"), pj.get("8"))]]
        rows += [[name, r.get("4"), r.get("2")] for name, r in pub.items()]
        lines += ["", "Energy per MAC relative to 8 bits, beside published precision-scalable "
                  "arrays (literature values):", "",
                  _table(["design", "4 bits / 8 bits", "2 bits / 8 bits"], rows)]
    if e.get("note"):
        lines += ["", e["note"]]
    return lines


PLOTS_MARK = "<!-- plots -->"


def markdown(summary: dict) -> str:
    """The report as Markdown (the HTML page renders the same tables)."""
    s = summary
    lines = ["# DQT silicon-cost report", "", conclusion(s["headline"]), "",
             "## Headline (n = 8)", "", _headline_table(s), "",
             "Energy: activity-based on sky130 HD (gate-level simulation of the mapped netlist "
             "with the network's own vectors, OpenSTA report_power), per MAC (per output value "
             "for the requantizers); model: Horowitz 45 nm per-operation figures. Every design "
             "is a catalog component (`dqt rtl generate` writes it under the same name) that "
             "the cocotb suite verifies against the golden model.", ""]
    lines += _gap(s["designs"])
    lines += ["", PLOTS_MARK, ""]
    for n in s.get("notes", []):
        lines.append(f"> note: {n}")
    lines += _engine_section(s.get("engine"))
    lines += ["", "## All designs", ""]
    rows = []
    for d in s["designs"]:
        e = d.get("energy_pj_per_mac") or {}
        em = d.get("energy_pj_per_mac_model") or {}
        ratio = None
        if e.get("8") and em.get("8"):
            ratio = e["8"] / em["8"]
        rows.append([d["name"], d["catalog"], d["transistors"], d["sky130_um2"], d["ice40_luts"],
                     (d["fpga"].get("ice40_nodsp") or {}).get("lut"), d["ecp5_luts"],
                     (d["fpga"].get("xilinx") or {}).get("lut"), d["fmax_mhz_ice40"],
                     d["fmax_mhz_ecp5"], d["sta_critical_path_ns"], e.get("8"), em.get("8"), ratio,
                     d.get("memory_bits") or None])
    lines.append(_table(["design", "catalog", "transistors", "sky130 µm²", "iCE40 LUT (DSP)",
                         "iCE40 LUT (no DSP)", "ECP5 LUT", "Xilinx LUT", "Fmax iCE40 MHz",
                         "Fmax ECP5 MHz", "STA path ns", "pJ/op @8b", "model @8b",
                         "measured/model", "SRAM bits (outside the area)"], rows))
    lines += ["", "### Energy per operation by precision (activity-based / model, pJ)", ""]
    bits = sorted({int(b) for d in s["designs"] for b in (d.get("energy_pj_per_mac") or {})})
    erows = []
    for d in s["designs"]:
        e = d.get("energy_pj_per_mac")
        if not e:
            continue
        em = d.get("energy_pj_per_mac_model") or {}
        erows.append([d["name"], d["unit"]] + [f"{_fmt(e.get(str(b)))} / {_fmt(em.get(str(b)))}"
                                               for b in bits]
                     + [_fmt((d.get("mean_activity") or {}).get(str(bits[-1])) if bits else None)])
    lines.append(_table(["design", "unit"] + [f"{b} bits" for b in bits]
                        + ["net activity @max b"], erows))
    lines += ["", "## Transition cost", ""]
    t = s["transition"]
    pe = t["per_element"]
    lines.append(_table(["method", "ops per element", "model pJ", "measured pJ"],
                        [[m, "1 shift" if m.startswith("nested") else "2 fp ops",
                          pe["model_pj"][m], pe["measured_pj"].get(m)] for m in pe["model_pj"]]))
    lines += ["", "Per network (elements converted by one precision transition):", ""]
    nrows = []
    for name, row in t["networks"].items():
        for key in ("all_layers", "without_stem_fc"):
            for conv in t["conventions"]:
                c = row[key][conv]
                nrows.append([name, key, conv, c["shifts"], c["fp_ops"],
                              c["energy_uj"]["nested_floor_runtime"],
                              c["energy_uj"]["fp32_dequant_requant"]])
    lines.append(_table(["network", "layers", "convention", "shifts", "fp ops",
                         "nested µJ (model)", "fp32 µJ (model)"], nrows))
    if "paper_resnet50" in t:
        lines += ["", f"Paper comparison (ResNet-50: 28.3M shifts vs 56.6M fp ops): "
                      f"{t['paper_resnet50']['verdict']}."]
    if s.get("accuracy"):
        count = {v.get("images") for v in s["accuracy"].values()}
        lines += ["", "## Accuracy vs BitOPs (held-out digits)", "",
                  f"Golden model on the {'/'.join(map(str, sorted(c for c in count if c)))} "
                  "held-out images of the artifact's split: the images and count `dqt eval` "
                  "scores.", ""]
        lines.append(_table(["mode", "accuracy", "BitOPs / image", "mean bits"],
                            [[m, v["accuracy"], v["bitops_per_image"], v["bits"]]
                             for m, v in s["accuracy"].items()]))
    if s.get("experiments"):
        lines += ["", "## Experiments (dqt experiment)", ""]
    for e in s.get("experiments") or []:
        lines += ["", f"### {e['name']}", "",
                  f"`dqt experiment {e['name']}`" + (" (reduced run, --quick)" if e["quick"]
                                                     else "")
                  + (f", {e['wall_s']:.0f} s" if isinstance(e.get("wall_s"), (int, float))
                     else ""), ""]
        lines.append(_table(e["columns"], e["rows"]))
        if e.get("png"):
            lines += ["", f"![{e['name']}]({e['png']})"]
    lines += ["", "## Method", "",
              "- Area: Yosys `stat -tech cmos` (transistors), Yosys + ABC onto the liberty "
              "(µm², `lpflow` cells excluded), `synth_ice40/ecp5/xilinx` with and without DSPs.",
              "- Timing: nextpnr Fmax (iCE40 UP5K sg48, ECP5 25k) of the design behind a "
              "registered serial wrapper; OpenSTA critical path on the sky130 netlist.",
              "- Activity: zero-delay cycle simulation of the mapped netlist (every net), input "
              "port and flip-flop activity annotated in OpenSTA, which propagates it through "
              "the combinational cells; glitches are not counted.",
              "- Caveat: this OpenSTA ignores activity annotated on combinational pins and "
              "propagates logic activity from the inputs with its own probabilistic model, so "
              "logic behind registers that rarely switches (the factored correction, fired once "
              "per dot product; the requantizer's wide product) is charged at propagated, not "
              "simulated, activity. The `net activity` column is the simulated toggle rate of "
              "every net and shows such differences directly.",
              "- Model: " + " ".join(__import__("reports.energy_model",
                                                fromlist=["MODEL_NOTES"]).MODEL_NOTES),
              "", "## Provenance", "", "```json",
              json.dumps(s["provenance"], indent=1, sort_keys=True), "```", ""]
    for d in s["designs"]:
        for f in d.get("failed", []):
            lines.append(f"- **{d['name']}: FAILED** ({f['step']}; its fields are null): "
                         f"{f['error'].splitlines()[0][:300]}")
        for n in d.get("notes", []):
            lines.append(f"- {d['name']}: {n}")
    return "\n".join(lines) + "\n"


def _md_to_html(md: str, images: dict, inline: dict | None = None) -> str:
    """Minimal Markdown (headings, tables, quotes, lists, code) to HTML. ``images`` go where
    the plots marker stands; ``inline`` (file name -> base64 PNG) replaces ``![alt](file)``."""
    inline = inline or {}
    out = ["<!doctype html><html><head><meta charset='utf-8'><title>DQT silicon-cost report"
           "</title><style>body{font-family:sans-serif;max-width:1200px;margin:auto;padding:1em}"
           "table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;"
           "padding:2px 6px;text-align:right}td:first-child{text-align:left}"
           "pre{background:#f4f4f4;padding:.5em;font-size:11px}img{max-width:100%}</style>"
           "</head><body>"]
    in_table = in_code = False
    for line in md.splitlines():
        if line.startswith("```"):
            out.append("</pre>" if in_code else "<pre>")
            in_code = not in_code
            continue
        if in_code:
            out.append(html.escape(line))
            continue
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if all(set(c) <= {"-"} for c in cells):
                continue
            if not in_table:
                out.append("<table>")
                in_table = True
                out.append("<tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in cells) + "</tr>")
            else:
                out.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
            continue
        if in_table:
            out.append("</table>")
            in_table = False
        if line.startswith("#"):
            lvl = len(line) - len(line.lstrip("#"))
            out.append(f"<h{lvl}>{html.escape(line[lvl:].strip())}</h{lvl}>")
        elif line == PLOTS_MARK:
            for name, b64 in images.items():
                out.append(f"<p><img alt='{name}' src='data:image/png;base64,{b64}'></p>")
        elif (m := re.fullmatch(r"!\[[^\]]*\]\(([^)]+)\)", line)) and m[1] in inline:
            name = m[1]
            out.append(f"<p><img alt='{html.escape(name)}' "
                       f"src='data:image/png;base64,{inline[name]}'></p>")
        elif line.startswith("> "):
            out.append(f"<blockquote>{html.escape(line[2:])}</blockquote>")
        elif line.startswith("- "):
            out.append(f"<li>{html.escape(line[2:])}</li>")
        elif line.strip():
            out.append(f"<p>{html.escape(line)}</p>")
    if in_table:
        out.append("</table>")
    out.append("</body></html>")
    return "\n".join(out)


def plots_for(summary: dict) -> list[str]:
    """The plots a summary gets: area vs width only when the sweep has more than one width."""
    widths = {d["n"] for d in summary["designs"] if d["family"] != "engine"}
    return [p for p in PLOTS if p != PLOTS[0] or len(widths) > 1]


def write_outputs(out_dir, summary: dict, sources: dict | None = None) -> Path:
    """Write summary.json, report.md, index.html and the PNGs into ``out_dir`` atomically.
    ``sources``: report file name -> path of each experiment plot to copy in."""
    sources = sources or {}
    from golden.network import atomic_write_dir

    plots = plots_for(summary)

    def writer(tmp: Path):
        if PLOTS[0] in plots:
            _plot_area(summary["designs"], tmp / PLOTS[0])
        _plot_energy(summary["designs"], tmp / PLOTS[1], summary.get("engine"))
        _plot_accuracy(summary.get("accuracy"), tmp / PLOTS[2])
        _plot_transition(summary["transition"], tmp / PLOTS[3])
        inline = {}
        for e in summary.get("experiments") or []:
            if e.get("png"):   # copied in under its name in the report
                data = Path(sources[e["png"]]).read_bytes()
                (tmp / e["png"]).write_bytes(data)
                inline[e["png"]] = base64.b64encode(data).decode()
        with open(tmp / "summary.json", "w") as f:
            json.dump(summary, f, indent=1, sort_keys=True, allow_nan=False)
            f.write("\n")
        md = markdown(summary)
        md_img = md.replace(PLOTS_MARK, "\n".join(f"![{p}]({p})" for p in plots), 1)
        (tmp / "report.md").write_text(md_img)
        images = {p: base64.b64encode((tmp / p).read_bytes()).decode() for p in plots}
        (tmp / "index.html").write_text(_md_to_html(md, images, inline))

    out = Path(out_dir)
    atomic_write_dir(out, writer)
    return out
