"""Firmware report: layer table, MACs and multiplier estimate, agreement, synthesis results.

Multiplier estimate (a rule of thumb, not a synthesis result): a product is counted as a LUT
multiplier when both operands have at most :data:`LUT_MAX_BITS` bits, or when one operand is a
constant weight of at most :data:`LUT_CONST_BITS` bits (a few shifts and adds); otherwise as a DSP.
Multiplications by zero weights are not counted (HLS removes them), nor normalisation
products by a power of two (shifts). The multiplications of each
hls4ml layer class come from the registry :data:`MULTIPLICATIONS` (add a class with
:func:`counts_multiplications`).

Vendor results appear only when the configured backend's tool (``vitis_hls`` for Vitis,
``vivado_hls`` for Vivado) is on ``PATH``: then the project
is synthesised and the ``csynth.xml`` report is parsed (:func:`parse_csynth_xml`); otherwise the
report says plainly that no synthesis was run.
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import numpy as np

from firmware.backends import VENDOR_TOOLS, synthesis_command, vendor_tool
from firmware.hls_types import fixed_from_hls
from triggerad import atomic

log = logging.getLogger(__name__)

LUT_MAX_BITS = 10
LUT_CONST_BITS = 6


def multiplier_kind(a_bits: int, b_bits: int, b_constant: bool) -> str:
    """``"LUT"`` or ``"DSP"`` for an ``a_bits`` x ``b_bits`` product (see module docstring)."""
    if max(a_bits, b_bits) <= LUT_MAX_BITS or (b_constant and b_bits <= LUT_CONST_BITS):
        return "LUT"
    return "DSP"


def _type_text(precision) -> str:
    return fixed_from_hls(precision).hls()


#: hls4ml layer class -> function giving (multiplications, non-zero ones, second-operand bits,
#: second operand constant) of a layer; layers of other classes do no multiplication.
MULTIPLICATIONS: dict[str, Callable] = {}


def counts_multiplications(*class_names: str) -> Callable:
    """Register the decorated function in :data:`MULTIPLICATIONS` for ``class_names``."""

    def register(fn: Callable) -> Callable:
        for name in class_names:
            MULTIPLICATIONS[name] = fn
        return fn

    return register


@counts_multiplications("Dense")
def _dense(layer) -> tuple[int, int, int, bool]:
    w = layer.get_weights("weight")
    return int(w.data.size), int(np.count_nonzero(w.data)), int(w.type.precision.width), True


@counts_multiplications("Conv1D", "PointwiseConv1D")
def _conv1d(layer) -> tuple[int, int, int, bool]:
    w = layer.get_weights("weight")
    out = int(layer.get_attr("out_width"))
    return (int(w.data.size) * out, int(np.count_nonzero(w.data)) * out,
            int(w.type.precision.width), True)


@counts_multiplications("BatchNormalization")
def _batch_normalization(layer) -> tuple[int, int, int, bool]:
    """Products by a power of two (1 included: ``power_of_two_scales``) are shifts, not counted."""
    s = np.asarray(layer.get_weights("scale").data, dtype=np.float64)
    shifts = np.frexp(np.abs(s))[0] == 0.5
    return (int(s.size), int(np.count_nonzero(~shifts & (s != 0))),
            int(layer.get_weights("scale").type.precision.width), True)


@counts_multiplications("HSumSquares")
def _sum_squares(layer) -> tuple[int, int, int, bool]:
    width = int(layer.get_input_variable().type.precision.width)
    return int(layer.get_attr("n_in")), int(layer.get_attr("n_in")), width, False


def _multiplications(layer) -> tuple[int, int, int, bool]:
    """(multiplications, non-zero ones, second-operand bits, second operand constant)."""
    count = MULTIPLICATIONS.get(layer.class_name)
    return count(layer) if count is not None else (0, 0, 0, False)


def layer_table(hls_model) -> list[dict]:
    """One row per firmware layer: shapes, types, multiplications and the DSP/LUT estimate."""
    rows = []
    for layer in hls_model.get_layers():
        ins = [v for v in map(layer.get_input_variable, layer.inputs) if v is not None]
        out = layer.get_output_variable()
        mults, nonzero, b_bits, const = _multiplications(layer)
        a_bits = int(ins[0].type.precision.width) if ins else 0
        weight = layer.weights.get("weight", layer.weights.get("scale"))
        kind = multiplier_kind(a_bits, b_bits, const) if mults else ""
        rows.append({
            "name": layer.name,
            "class": layer.class_name.removeprefix("H"),
            "input_shapes": [list(v.shape) for v in ins],
            "output_shape": list(out.shape),
            "input_type": _type_text(ins[0].type.precision) if ins else "",
            "weight_type": _type_text(weight.type.precision) if weight is not None else "",
            "result_type": _type_text(out.type.precision),
            "multiplications": mults,
            "nonzero_multiplications": nonzero,
            "operand_bits": [a_bits, b_bits] if mults else [],
            "multiplier": kind,
            "est_dsp": nonzero if kind == "DSP" else 0,
            "est_lut_multipliers": nonzero if kind == "LUT" else 0,
        })
    return rows


def parse_csynth_xml(text: str) -> dict:
    """Latency and resources from a Vivado/Vitis HLS ``<project>_csynth.xml`` report.

    Reads ``PerformanceEstimates/SummaryOfTimingAnalysis`` (clock), ``SummaryOfOverallLatency``
    (best/worst latency in cycles, initiation interval) and ``AreaEstimates/Resources`` and
    ``AvailableResources`` (BRAM_18K, DSP or DSP48E, FF, LUT, URAM).
    """
    root = ET.fromstring(text)

    def number(path: str):
        node = root.find(path)
        if node is None or node.text is None:
            return None
        try:
            value = float(node.text)
        except ValueError:
            return node.text.strip()
        return int(value) if value.is_integer() else value

    def resources(path: str) -> dict:
        node = root.find(path)
        if node is None:
            return {}
        return {("DSP" if child.tag == "DSP48E" else child.tag): number(f"{path}/{child.tag}")
                for child in node}

    perf = "PerformanceEstimates"
    latency = f"{perf}/SummaryOfOverallLatency"
    clock = number(f"{perf}/SummaryOfTimingAnalysis/EstimatedClockPeriod")
    best = number(f"{latency}/Best-caseLatency")
    return {
        "estimated_clock_ns": clock,
        "target_clock_ns": number("UserAssignments/TargetClockPeriod"),
        "latency_best_cycles": best,
        "latency_worst_cycles": number(f"{latency}/Worst-caseLatency"),
        "interval_min_cycles": number(f"{latency}/Interval-min"),
        "interval_max_cycles": number(f"{latency}/Interval-max"),
        "latency_best_ns": best * clock if isinstance(best, int) and clock else None,
        "resources": resources("AreaEstimates/Resources"),
        "available": resources("AreaEstimates/AvailableResources"),
    }


def run_synthesis(hls_model, prj: Path, cfg) -> dict | None:
    """Synthesise with the vendor tool when it is installed and parse its report, else None."""
    if vendor_tool(cfg.hls.backend) is None:
        log.info("%s not on PATH: no synthesis run", VENDOR_TOOLS[cfg.hls.backend])
        return None
    hls_model.build(csim=False, synth=True, cosim=False, export=False)
    name = cfg.hls.project_name
    xml = prj / f"{name}_prj" / "solution1" / "syn" / "report" / f"{name}_csynth.xml"
    return parse_csynth_xml(xml.read_text())


def write_disagreements(prj: Path, result) -> None:
    """Save the indices, scores and bits of events whose trigger bits differ (CSV, may be empty)."""
    idx = result.disagreeing
    lines = ["event_index,score_firmware,bit_firmware"] + [
        f"{i},{result.scores_fw[i]:.10g},{int(result.bits_fw[i])}" for i in idx
    ]
    atomic.write_text(prj / "disagreements.csv", "\n".join(lines) + "\n")


def bit_width_summary(rows: list[dict]) -> dict:
    """Totals: MACs, non-zero MACs, estimated DSP and LUT multipliers, widths used."""
    return {
        "total_macs": sum(r["multiplications"] for r in rows),
        "nonzero_macs": sum(r["nonzero_multiplications"] for r in rows),
        "est_dsp": sum(r["est_dsp"] for r in rows),
        "est_lut_multipliers": sum(r["est_lut_multipliers"] for r in rows),
        "weight_types": sorted({r["weight_type"] for r in rows if r["weight_type"]}),
        "result_types": [f"{r['name']}: {r['result_type']}" for r in rows],
    }


def write_report(prj: Path, hls_model, cfg, result, float_agreement, sweep_rows: list[dict],
                 info: dict) -> dict:
    """Write ``firmware_report.json`` and ``firmware_report.md``; return the JSON content."""
    rows = layer_table(hls_model)
    widths = bit_width_summary(rows)
    synth = run_synthesis(hls_model, prj, cfg)
    exact = result.exact
    summary = {
        "n_events": exact.n_events,
        "decision_agreement": exact.decision_agreement,
        "max_score_diff_lsb": exact.max_score_diff_lsb,
        "mean_abs_score_diff_lsb": exact.mean_abs_score_diff_lsb,
        "n_disagreeing": exact.n_disagreeing,
        "score_diff_counts": exact.score_diff_counts,
        "total_macs": widths["total_macs"],
        "synthesis_run": synth is not None,
        "synthesis": synth,
        "csim_seconds": result.csim_seconds,
        "csim_seconds_per_10k": 1e4 * result.csim_seconds / max(exact.n_events, 1),
        "trigger": info.get("trigger"),
        "reference": "integer fixed-point graph of the model (triggerad.fixedpoint): the "
                     f"model's {info['threshold_score']} and threshold, bit for bit",
        "score_name": info["threshold_score"],
        "fixed_point_digest": info["fixed_point_digest"],
        "fixed_point": info["fixed_point"],
        "vs_float_pipeline": float_agreement.to_dict(),
        "score_type": info["score_type"], "score_lsb": info["score_lsb"],
        "threshold": info["threshold"], "threshold_units": info["threshold_units"],
        "input_type": info["input_type"],
        "bit_widths": widths,
        "layers": rows,
        "sweep": sweep_rows,
        "hls": {k: info[k] for k in ("backend", "part", "clock_period", "io_type", "strategy",
                                     "reuse_factor", "project_name")},
    }
    atomic.write_json(prj / "firmware_report.json", summary)
    atomic.write_text(prj / "firmware_report.md", markdown(summary))
    return summary


def markdown(s: dict) -> str:
    """The markdown version of the report."""
    f = s["vs_float_pipeline"]
    lines = [
        f"# Firmware report: `{s['hls']['project_name']}`", "",
        f"{s['hls']['backend']} HLS, part `{s['hls']['part']}`, {s['hls']['clock_period']} ns, "
        f"{s['hls']['io_type']}, {s['hls']['strategy']}, reuse factor {s['hls']['reuse_factor']}.",
        "", f"Trigger: {s.get('trigger') or 'anomaly encoder'}.", "",
        f"## Bit accuracy (C simulation vs the integer fixed-point reference = "
        f"`{s.get('score_name', 'mu2_q')}`)", "",
        f"- events: {s['n_events']}",
        f"- trigger decision agreement: {s['decision_agreement']:.6f} "
        f"({s['n_disagreeing']} disagreeing events, listed in `disagreements.csv`)",
        f"- score difference: max {s['max_score_diff_lsb']:g} LSB, mean |diff| "
        f"{s['mean_abs_score_diff_lsb']:.3g} LSB (LSB = {s['score_lsb']:g}, `{s['score_type']}`)",
        f"- C simulation time: {s['csim_seconds']:.1f} s ({s['csim_seconds_per_10k']:.2f} s per 10k events)",
        "", "## Fixed point vs the float pipeline (the QKeras model in float32)",
        "",
        f"- decision agreement: {f['decision_agreement']:.6f} ({f['n_disagreeing']} events)",
        f"- score difference: max {f['max_score_diff_lsb']:.4g} LSB, mean |diff| "
        f"{f['mean_abs_score_diff_lsb']:.3g} LSB",
        f"- threshold {s['threshold']:.6g} -> {s['threshold_units']} LSB", "",
        "## Layers", "",
        f"Multiplier estimate: LUT if both operands <= {LUT_MAX_BITS} bits or a constant weight "
        f"<= {LUT_CONST_BITS} bits, else DSP; zero weights not counted.", "",
        "| layer | class | in | out | input type | weight type | result type | mults (non-zero) "
        "| bits | est. |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in s["layers"]:
        lines.append(
            f"| {r['name']} | {r['class']} | {r['input_shapes']} | {r['output_shape']} | "
            f"`{r['input_type']}` | `{r['weight_type']}` | `{r['result_type']}` | "
            f"{r['multiplications']} ({r['nonzero_multiplications']}) | "
            f"{'x'.join(map(str, r['operand_bits']))} | {r['multiplier']} |"
        )
    w = s["bit_widths"]
    lines += ["", f"Total MACs: {w['total_macs']} ({w['nonzero_macs']} non-zero); estimated "
              f"{w['est_dsp']} DSP and {w['est_lut_multipliers']} LUT multipliers.", ""]
    if s["sweep"]:
        lines += ["## Precision sweep (Dense/Conv accumulator/result width, vs exact firmware)", "",
                  "| width | decision agreement | max diff (LSB) | mean abs diff (LSB) |",
                  "|---|---|---|---|"]
        lines += [f"| {r['width']} | {r['decision_agreement']:.6f} | {r['max_score_diff_lsb']:g} | "
                  f"{r['mean_abs_score_diff_lsb']:.3g} |" for r in s["sweep"]]
        lines.append("")
    lines.append("## Synthesis")
    lines.append("")
    if s["synthesis_run"]:
        syn = s["synthesis"]
        lines += [f"- latency: {syn['latency_best_cycles']}-{syn['latency_worst_cycles']} cycles "
                  f"(II {syn['interval_min_cycles']}), estimated clock {syn['estimated_clock_ns']} ns",
                  "- resources: " + ", ".join(f"{k} {v} / {syn['available'].get(k, '?')}"
                                              for k, v in syn["resources"].items())]
    else:
        tool = VENDOR_TOOLS[s["hls"]["backend"]]
        lines.append(f"No synthesis was run: {tool} (the {s['hls']['backend']} backend's tool) is "
                     f"not on PATH. Run `{synthesis_command(s['hls']['backend'])}` in this folder "
                     "to synthesise.")
    return "\n".join(lines) + "\n"
