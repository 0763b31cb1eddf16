"""RTL of the L1 anomaly encoder (57 -> 32 -> 16 -> 8): latency, Yosys resources, bit-exactness.

For each multiplier style (shift_add: CSD adder trees, 0 DSP; dsp: multipliers) and each graph
(``encoder``: the quantized Dense/ReLU stack from the normalised inputs to mu; ``trigger``:
raw inputs -> normalisation -> encoder -> sum of mu^2 -> trigger bit, what
``trigger-ad firmware --rtl`` builds), the Verilog is generated, simulated with Verilator against
the fixed-point reference on the model's validation events (0 LSB expected) and synthesised with
Yosys ``synth_xilinx`` (xcup; estimates, not Vivado results).

usage: python benchmarks/rtl_encoder.py --model models/l1_vae [--events 10000] [--data FILES]
       [--styles shift_add dsp] [--graphs encoder trigger] [--max-levels 6 0] [--out rtl_bench/]

``--max-levels``: logic levels per pipeline stage across layers (``rtl.max_levels``, default 6;
0: the per-layer stages ``--dense-stages`` / ``--other-stages``). Each row also gives the
latency at 200 MHz and the clock estimated from the logic depth
(:func:`firmware.rtl.flow.fmax_estimate_mhz`: an assumption, not a timing result).

``MODEL`` is a trained l1_vae folder (e.g. from ``trigger-ad quickstart``). Wall-clock times are
printed for information only (the machine may be loaded).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from firmware.rtl.config import RTLSection
from firmware.rtl.flow import build_rtl, fmax_estimate_mhz
from firmware.rtl.synth import PARTS
from triggerad.fixedpoint import (
    FixedGraph,
    Input,
    ScaleShift,
    SumSquares,
    ThresholdBit,
    threshold_units,
)

PART = "xcvu13p-flga2577-2-e"


def encoder_graph(graph: FixedGraph) -> FixedGraph:
    """The encoder alone: normalised inputs -> mu (the layers between normalisation and score)."""
    norm = next(layer for layer in graph.layers if isinstance(layer, ScaleShift))
    score = next(layer for layer in graph.layers if isinstance(layer, SumSquares))
    middle = [la for la in graph.layers
              if not isinstance(la, (Input, ScaleShift, SumSquares, ThresholdBit))]
    return FixedGraph([Input(norm.name, norm.result), *middle], [score.inputs[0]])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", required=True, help="trained l1_vae model folder")
    p.add_argument("--events", type=int, default=10_000)
    p.add_argument("--data", nargs="+", default=None, metavar="FILE",
                   help="simulate the events of these files (globs, @list.txt) instead of the "
                        "model's validation split")
    p.add_argument("--styles", nargs="+", default=["shift_add", "dsp"])
    p.add_argument("--graphs", nargs="+", default=["encoder", "trigger"])
    p.add_argument("--no-share", action="store_true",
                   help="shift_add without shared multiples (one tree term per CSD digit)")
    p.add_argument("--dense-stages", type=int, default=2)
    p.add_argument("--other-stages", type=int, default=1)
    p.add_argument("--max-levels", type=int, nargs="+", default=[6],
                   help="logic levels per stage across layers (rtl.max_levels; 0: the per-layer "
                        "stages); several values: one run each")
    p.add_argument("--clock-mhz", type=float, default=240.0)
    p.add_argument("--synthesis", default="xilinx", choices=["xilinx", "generic", "none"])
    p.add_argument("--out", default="rtl_bench")
    args = p.parse_args(argv)

    from triggerad.models import kind_of, load_model

    art = load_model(args.model)
    full = art.fixed_graph()
    from triggerad.data import load_sample

    events = load_sample(args.data) if args.data else kind_of(art).load_split(art, "val")
    x = art.inputs(events)[:args.events]
    thr = art.threshold
    score = full.layer("score")
    units = threshold_units(float(thr["value"]) if thr else 1.0, score.result)
    graphs = {"trigger": FixedGraph([*full.layers, ThresholdBit("trigger", "score", units)],
                                    ["score", "trigger"]),
              "encoder": encoder_graph(full)}
    norm = next(layer for layer in full.layers if isinstance(layer, ScaleShift))
    inputs = {"trigger": x, "encoder": norm.result.from_raw(full.run(x, keep=(norm.name,))[norm.name])}
    rows = []
    runs = [(g, st, lv) for g in args.graphs for st in args.styles for lv in args.max_levels]
    for name, style, max_levels in runs:
        cfg = RTLSection(clock_mhz=args.clock_mhz, multipliers=style,
                         share_multiples=not args.no_share,
                         dense_stages=args.dense_stages, other_stages=args.other_stages,
                         max_levels=max_levels, synthesis=args.synthesis,
                         sim_events=args.events)
        start = time.perf_counter()
        s = build_rtl(graphs[name], inputs[name], cfg,
                      Path(args.out) / f"{name}_{style}_L{max_levels}", part=PART)
        r = s["resources"] or {}
        levels = s["max_adder_levels_per_stage"]
        rows.append({"graph": name, "style": style, "max_levels": max_levels,
                     "cycles": s["latency_cycles"],
                     "ns": s["latency_ns"], "ns_200MHz": s["latency_cycles"] * 5.0,
                     "levels_per_stage": levels,
                     "fmax_estimate_mhz": round(fmax_estimate_mhz(levels)),
                     "LUT": r.get("LUT"), "FF": r.get("FF"), "CARRY": r.get("CARRY"),
                     "DSP": r.get("DSP"),
                     "LUT_pct": (r.get("percent_of_part") or {}).get("LUT"),
                     "events": s["n_events"],
                     "max_diff_lsb": max(v["max_diff_lsb"] for v in s["agreement"].values()),
                     "adders": s["adders"], "multipliers": s["multipliers"],
                     "norm_adders": sum(la["adders"] for la in s["layers"]
                                        if la["kind"] == "ScaleShift"),
                     "seconds": round(time.perf_counter() - start, 1)})
        print(json.dumps(rows[-1]), flush=True)
    print(f"\nYosys {args.synthesis} estimates (not Vivado), {PART} "
          f"({PARTS['xcvu13p']['LUT']} LUT), clock {args.clock_mhz:g} MHz:")
    print("| graph | style | max_levels | cycles | ns | ns @200 MHz | levels/stage | f_max est. | "
          "LUT | % LUT | FF | CARRY | DSP | events | max diff LSB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['graph']} | {r['style']} | {r['max_levels']} | {r['cycles']} | {r['ns']:.1f} | "
              f"{r['ns_200MHz']:.1f} | {r['levels_per_stage']} | {r['fmax_estimate_mhz']} MHz | "
              f"{r['LUT']} | {r['LUT_pct']} | {r['FF']} | {r['CARRY']} | {r['DSP']} | "
              f"{r['events']} | {r['max_diff_lsb']} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
