"""Area, timing and energy reports of the DQT operators (``dqt report``).

``reports.designs``      the design list: catalog cost points (rtl.registry), workload drivers
``reports.synth``        Yosys: transistors, sky130 area + netlist, FPGA resources
``reports.pnr``          nextpnr Fmax behind a registered wrapper
``reports.sta``          OpenSTA critical path and power with annotated activity
``reports.gatesim``      zero-delay simulation of the mapped netlist (per-net toggles)
``reports.workload``     real workload vectors from a network artifact
``reports.energy_model`` Horowitz 45 nm per-operation model
``reports.transition``   cost of a precision transition, per element and per network
``reports.build``        the end-to-end flow (:func:`reports.build.build_report`)
``reports.render``       summary.json, report.md, index.html, PNG plots
"""
__all__ = ["build_report"]


def build_report(*args, **kwargs):
    """See :func:`reports.build.build_report` (imported lazily: it pulls in the tool chain)."""
    from .build import build_report as _b
    return _b(*args, **kwargs)
