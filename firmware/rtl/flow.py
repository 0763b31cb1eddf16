"""The RTL flow: generate the Verilog, simulate it against the fixed-point reference, estimate
resources, write the folder and its report (used by ``trigger-ad firmware ... --rtl``)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np

from firmware.rtl.config import RTLSection
from firmware.rtl.generate import generate
from firmware.rtl.sim import compare, simulate
from firmware.rtl.synth import run_yosys
from triggerad import atomic
from triggerad.fixedpoint import FixedGraph
from triggerad.mdtable import table

VERILOG = "trigger_rtl.v"
REPORT_JSON = "rtl_report.json"
REPORT_MD = "rtl_report.md"

#: Clock estimate from logic depth (no timing analysis without vendor tools), for UltraScale+
#: (-2 speed grade): one logic level (a LUT into a CARRY8 chain of a 16 - 30-bit adder, plus
#: local routing) ~0.6 ns; register clock-to-out + setup + clock uncertainty ~0.5 ns. An
#: assumption to compare pipelinings, not a timing result.
LEVEL_NS = 0.6
REGISTER_NS = 0.5


def fmax_estimate_mhz(levels_per_stage: int) -> float:
    """Estimated highest clock (MHz) of a pipeline with ``levels_per_stage`` logic levels per
    stage: ``1000 / (REGISTER_NS + levels_per_stage * LEVEL_NS)`` (see :data:`LEVEL_NS`)."""
    return 1000.0 / (REGISTER_NS + max(levels_per_stage, 1) * LEVEL_NS)


def build_rtl(graph: FixedGraph, x: np.ndarray | list[np.ndarray], cfg: RTLSection, out: Path, *,
              part: str, csim: dict[str, np.ndarray] | None = None) -> dict:
    """Write the RTL folder ``out`` of ``graph`` and return its report.

    Parameters
    ----------
    graph : FixedGraph
        The integer reference (e.g. the trigger: normalisation, encoder, score, trigger bit).
    x : array or list of arrays
        Physical inputs (one array per input layer) of the simulated events; the first
        ``cfg.sim_events`` are used (all for 0).
    cfg : RTLSection
        Clock, multiplier style, pipeline stages, synthesis flow.
    out : Path
        Folder to write (replaced atomically): Verilog, test bench and vectors, Yosys script and
        log, ``rtl_report.json`` / ``.md``.
    part : str
        FPGA part (Yosys family and percentages).
    csim : dict, optional
        Raw outputs of the hls4ml C simulation on the same events (``{output name: (n, ...)
        raw integers}``, at least the simulated events): the report then also compares the RTL
        with the C simulation directly (``vs_csim``).
    """
    xs = x if isinstance(x, list) else [x]
    if cfg.sim_events:
        xs = [a[:cfg.sim_events] for a in xs]
    sizes = {layer.name: int(np.prod(np.shape(a)[1:])) for layer, a in zip(graph.inputs, xs,
                                                                             strict=True)}
    design = generate(graph, top=cfg.top, style=cfg.multipliers, dense_stages=cfg.dense_stages,
                      other_stages=cfg.other_stages, share_multiples=cfg.share_multiples,
                      max_levels=cfg.max_levels, input_sizes=sizes)
    reference = graph.run(*xs)
    raw = [layer.result.to_raw(a) for layer, a in zip(graph.inputs, xs, strict=True)]
    with atomic.atomic_dir(out) as tmp:
        (tmp / VERILOG).write_text(design.verilog)
        start = time.perf_counter()
        sim = simulate(design, raw, tmp, verilog_file=VERILOG)
        sim_seconds = time.perf_counter() - start
        shutil.rmtree(tmp / "obj_dir", ignore_errors=True)
        agreement = compare(reference, sim["outputs"])
        vs_csim = None
        if csim is not None:
            n = sim["n_events"]
            vs_csim = compare({k: np.asarray(v)[:n] for k, v in csim.items()},
                              {k: v for k, v in sim["outputs"].items() if k in csim})
        resources = None
        if cfg.synthesis != "none":
            resources = run_yosys(tmp, cfg.top, VERILOG, flow=cfg.synthesis, part=part)
        summary = {
            "top": design.top, "style": design.style, "clock_mhz": cfg.clock_mhz,
            "share_multiples": cfg.share_multiples, "dense_stages": cfg.dense_stages,
            "other_stages": cfg.other_stages, "max_levels": cfg.max_levels,
            "latency_cycles": sim["latency_cycles"],
            "latency_ns": sim["latency_cycles"] * cfg.clock_period_ns,
            "latency_cycles_by_construction": design.latency,
            "initiation_interval": 1,
            "max_adder_levels_per_stage": design.max_levels_per_stage,
            "latency_ns_200mhz": sim["latency_cycles"] * 5.0,
            "fmax_estimate_mhz": round(fmax_estimate_mhz(design.max_levels_per_stage), 1),
            "latency_ns_at_fmax_estimate": round(
                sim["latency_cycles"] * 1000.0 / fmax_estimate_mhz(design.max_levels_per_stage), 1),
            "fmax_estimate_assumption": (
                f"{LEVEL_NS} ns per logic level (LUT + carry chain + routing) + {REGISTER_NS} ns "
                "per register (UltraScale+ -2, no timing analysis: an estimate from logic depth)"),
            "adders": design.adders, "multipliers": design.multipliers,
            "layers": design.layers,
            "n_events": sim["n_events"], "agreement": agreement,
            "bit_exact": all(r["max_diff_lsb"] == 0 for r in agreement.values()),
            "vs_csim": vs_csim,
            "simulation_seconds": round(sim_seconds, 1),
            "resources": resources,
            "inputs": [_port(p) for p in design.inputs],
            "outputs": [_port(p) for p in design.outputs],
        }
        atomic.write_json(tmp / REPORT_JSON, summary)
        atomic.write_text(tmp / REPORT_MD, report_markdown(summary))
    return summary


def _port(p) -> dict:
    return {"name": p.name, "type": p.type.hls(), "size": p.size, "offset": p.offset}


def report_markdown(s: dict) -> str:
    """The RTL report as Markdown."""
    rows = [[name, r["max_diff_lsb"], r["events_differing"]] for name, r in s["agreement"].items()]
    text = [
        "# RTL report (generated by trigger-ad)", "",
        f"Module `{s['top']}` ({s['style']} multipliers), one event per clock.", "",
        f"- latency: **{s['latency_cycles']} clocks = {s['latency_ns']:.1f} ns at "
        f"{s['clock_mhz']:g} MHz** (measured in the Verilator simulation)",
        f"- {s['latency_ns_200mhz']:.1f} ns at 200 MHz; estimated highest clock "
        f"~{s['fmax_estimate_mhz']:.0f} MHz ({s['latency_ns_at_fmax_estimate']:.1f} ns) from "
        f"{s['max_adder_levels_per_stage']} logic levels per stage at most, assuming "
        f"{s['fmax_estimate_assumption']}",
        (f"- pipeline: registers wherever a stage would exceed {s['max_levels']} logic levels "
         "(across layers)" if s["max_levels"] else
         f"- pipeline: {s['dense_stages']} stage(s) per Dense layer, {s['other_stages']} per "
         "normalisation / sum of squares (a combinational layer adds its levels to the stage it "
         "joins)"),
        f"- {s['adders']} adders, {s['multipliers']} multipliers in the generated Verilog", "",
        f"## RTL simulation vs the fixed-point reference ({s['n_events']} events)", "",
        table(["output", "max diff (LSB)", "events differing"], rows), "",
    ]
    if s.get("vs_csim"):
        rows = [[name, r["max_diff_lsb"], r["events_differing"]]
                for name, r in s["vs_csim"].items()]
        text += [f"## RTL simulation vs the hls4ml C simulation ({s['n_events']} events)", "",
                 table(["output", "max diff (LSB)", "events differing"], rows), ""]
    r = s["resources"]
    if r:
        pct = r["percent_of_part"] or {}
        res_rows = [[k, r[k], f"{pct[k]:.3f} %" if k in pct else "-"]
                    for k in ("LUT", "FF", "CARRY", "DSP", "BRAM")]
        text += [f"## Resources (Yosys `{r['flow']}` flow, part {r['part']})", "",
                 table(["resource", "count", "% of part"], res_rows), "",
                 "These are Yosys estimates, not Vivado results: synthesise the HLS project (or "
                 "this Verilog) with Vivado for the vendor numbers.", ""]
    return "\n".join(text)
