"""cocotb test: an exported network, layer by layer, on the layer engine vs the golden model.

Run through :func:`sim.network.verify_network` with ``driver="cocotb"`` (or ``dqt sim
--driver cocotb``). The testbench reads its job from ``DQT_PARAMS``: the artifact
directory, an ``.npy`` file of input codes [N, *input.shape], the precision modes (an int:
every quantized layer at that width; ``"static"``: each layer's own width; ``"dynamic"``:
the controller's choice per input), and where to write the JSON result. The check itself
is :func:`sim.network_check.run_on_engine`, driven here through the engine harness.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

import cocotb

from golden.network import load_network

from .checker import Mismatch
from .engine_tb import EngineHarnessTB
from .network_check import run_on_engine
from .stream import entry_from_env

__all__ = ["network_vs_golden"]


@cocotb.test()
async def network_vs_golden(dut):
    """Every layer of the artifact on the engine equals the golden traces, every mode."""
    e = entry_from_env()
    job = e["test"]
    net = load_network(job["artifact"])
    x = np.load(job["inputs"], allow_pickle=False)
    tb = EngineHarnessTB(dut, e, stall=bool(job.get("stall", False)))
    await tb.start()
    prof = None
    if os.environ.get("DQT_PROFILE"):  # where the testbench's Python time goes
        import cProfile
        prof = cProfile.Profile()
        prof.enable()
    rep = await run_on_engine(tb, net, x, job["modes"], os.environ.get("DQT_RERUN"),
                              log=dut._log.info)
    if prof is not None:
        prof.disable()
        prof.dump_stats(os.environ["DQT_PROFILE"])
    out = Path(job["result"])
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(rep, indent=1, default=str))
    os.replace(tmp, out)
    dut._log.info(f"network check: {rep['elements_checked']} elements, {rep['mismatches']} "
                  f"mismatches, {rep['verified_macs']} MACs in {rep['sim_seconds']} s")
    if rep["mismatches"]:
        raise Mismatch(rep["first_mismatch"])
