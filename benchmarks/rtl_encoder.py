"""RTL of a quantized model folder's trigger: latency, Yosys resources, bit-exactness.

For each multiplier style (shift_add: CSD adder trees, 0 DSP; dsp: multipliers) and each graph
(``trigger``: what ``trigger-ad firmware --rtl`` builds, the firmware kind's integer reference
with its score and bit -- for an anomaly model raw inputs -> normalisation -> encoder -> sum of
mu^2 -> trigger bit, for the L1 LLP tagger candidates -> pointwise convolutions -> average
pooling -> dense -> logit -> tag bit; ``encoder``, anomaly models only: the quantized
Dense/ReLU stack from the normalised inputs to mu), the Verilog is generated, simulated with
Verilator against the fixed-point reference on the model's validation events or ``--data``
files (0 LSB expected) and synthesised with Yosys ``synth_xilinx`` (xcup; estimates, not Vivado
results).

usage: python benchmarks/rtl_encoder.py --model models/l1_vae [--events 10000] [--data FILES]
       [--styles shift_add dsp] [--graphs encoder trigger] [--max-levels 6 0] [--out rtl_bench/]
       python benchmarks/rtl_encoder.py --model models/l1_tagger --data 'jets/*.h5' \
       --events 20000 --styles shift_add --graphs trigger --clock-mhz 240 200

``--max-levels``: logic levels per pipeline stage across layers (``rtl.max_levels``, default 6;
0: the per-layer stages ``--dense-stages`` / ``--other-stages``). Each row also gives the
latency at 200 MHz and the clock estimated from the logic depth
(:func:`firmware.rtl.flow.fmax_estimate_mhz`: an assumption, not a timing result).

``MODEL`` is a trained l1_vae folder (e.g. from ``trigger-ad quickstart``) or any folder with a
firmware kind (``firmware.kinds.FIRMWARE_KINDS``, e.g. an ``l1_llp_tagger``). ``--clock-mhz``:
one or more clocks (the same Verilog; the latency in ns of each). Wall-clock times are printed
for information only (the machine may be loaded).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from firmware.rtl.config import RTLSection
from firmware.rtl.flow import build_rtl, fmax_estimate_mhz
from firmware.rtl.synth import PARTS
from triggerad.fixedpoint import FixedGraph, Input, ScaleShift, SumSquares, ThresholdBit

PART = "xcvu13p-flga2577-2-e"


def encoder_graph(graph: FixedGraph) -> FixedGraph | None:
    """The encoder alone: normalised inputs -> mu (the layers between normalisation and score);
    None for a graph without normalisation and sum of squares (not an anomaly encoder)."""
    norm = next((layer for layer in graph.layers if isinstance(layer, ScaleShift)), None)
    score = next((layer for layer in graph.layers if isinstance(layer, SumSquares)), None)
    if norm is None or score is None:
        return None
    middle = [la for la in graph.layers
              if not isinstance(la, (Input, ScaleShift, SumSquares, ThresholdBit))]
    return FixedGraph([Input(norm.name, norm.result), *middle], [score.inputs[0]])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", required=True, help="trained l1_vae model folder")
    p.add_argument("--events", type=int, default=10_000)
    p.add_argument("--data", nargs="+", default=None, metavar="FILE",
                   help="simulate the events (jets for a tagger) of these files instead of the "
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
    p.add_argument("--clock-mhz", type=float, nargs="+", default=[240.0],
                   help="clock(s) for the latency in ns (the first: the report's clock_mhz)")
    p.add_argument("--synthesis", default="xilinx", choices=["xilinx", "generic", "none"])
    p.add_argument("--out", default="rtl_bench")
    args = p.parse_args(argv)

    from firmware.kinds import firmware_kind
    from firmware.score_layer import SCORE, TRIGGER
    from triggerad.models import kind_of, load_model

    art = load_model(args.model)
    kind = kind_of(art)
    events = kind.load_data(art, args.data) if args.data else kind.load_split(art, "val")
    x = art.inputs(events)[:args.events]
    firmware = firmware_kind(art)
    full = firmware.reference(firmware.trigger_inputs(art))
    graphs = {"trigger": FixedGraph(full.layers, [SCORE, TRIGGER])}
    inputs = {"trigger": x}
    encoder = encoder_graph(full)
    if encoder is not None:
        norm = next(layer for layer in full.layers if isinstance(layer, ScaleShift))
        graphs["encoder"] = encoder
        inputs["encoder"] = norm.result.from_raw(full.run(x, keep=(norm.name,))[norm.name])
    for name in args.graphs:
        if name not in graphs:
            print(f"no {name!r} graph for {art.kind} models (only {sorted(graphs)}): skipped")
    args.graphs = [g for g in args.graphs if g in graphs]
    rows = []
    runs = [(g, st, lv) for g in args.graphs for st in args.styles for lv in args.max_levels]
    for name, style, max_levels in runs:
        cfg = RTLSection(clock_mhz=args.clock_mhz[0], multipliers=style,
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
                     "ns": [round(s["latency_cycles"] * 1000.0 / f, 2) for f in args.clock_mhz],
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
    clocks = " | ".join(f"ns @{f:g} MHz" for f in args.clock_mhz)
    print(f"\n{art.kind} model {args.model}; Yosys {args.synthesis} estimates (not Vivado), {PART} "
          f"({PARTS['xcvu13p']['LUT']} LUT):")
    print(f"| graph | style | max_levels | cycles | {clocks} | levels/stage | f_max est. | "
          "LUT | % LUT | FF | CARRY | DSP | events | max diff LSB |")
    print("|---|---|---|---|" + "---|" * len(args.clock_mhz) + "---|---|---|---|---|---|---|---|---|")
    for r in rows:
        ns = " | ".join(f"{v:.1f}" for v in r["ns"])
        print(f"| {r['graph']} | {r['style']} | {r['max_levels']} | {r['cycles']} | {ns} | "
              f"{r['levels_per_stage']} | {r['fmax_estimate_mhz']} MHz | "
              f"{r['LUT']} | {r['LUT_pct']} | {r['FF']} | {r['CARRY']} | {r['DSP']} | "
              f"{r['events']} | {r['max_diff_lsb']} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
