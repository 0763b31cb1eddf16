"""``trigger-ad firmware``: hls4ml HLS project of a quantized anomaly encoder with its score.

The top function takes the raw trigger objects in fixed point, normalises them, runs the
quantized encoder, computes score = sum of mu^2 and the trigger bit (score > the model's
threshold). Every fixed-point type comes from the model (quantization.fixed_point); the C
simulation is compared bit for bit with the model's integer score mu2_q on validation events.
What the firmware computes for a model, and which thresholds it accepts (a cut set on another
score than the firmware's, e.g. the float mu2, is refused), comes from its kind
(:mod:`firmware.kinds`).
"""

from __future__ import annotations

import logging

from triggerad.cli import add_command, add_out_option, check_out, count

log = logging.getLogger(__name__)

def register(subparsers) -> None:
    """Add the ``firmware`` subcommand."""
    p = add_command(
        subparsers,
        "firmware",
        "hls4ml HLS project of the quantized encoder + score + trigger bit, verified in C simulation",
        "trigger-ad firmware models/l1_vae --config firmware --out hls_l1_vae/\n"
        "trigger-ad firmware models/l1_vae --config my_fw.yaml --out prj/ --events 20000 --sweep\n"
        "trigger-ad firmware models/l1_vae --out prj/ --data data/background.h5 'data/signal_*.h5'\n"
        "trigger-ad firmware models/l1_tagger --out hls_l1_tagger/ --events 20000   # L1 LLP tagger\n"
        "trigger-ad firmware models/l1_vae --out prj/ --rtl   # + Verilog, Verilator, Yosys in prj/rtl/\n"
        "trigger-ad firmware models/l1_tagger --config firmware-l1 --out prj/ --rtl --data jets/*.h5",
        description=__doc__,
    )
    p.add_argument("model", help="trained model folder (with threshold.json)")
    p.add_argument("--config", default="firmware",
                   help="firmware YAML file or packaged config name")
    add_out_option(p, "HLS project folder to write")
    p.add_argument("--events", type=count, default=None,
                   help="validation events to C-simulate (default: the config's n_events; 0: all)")
    p.add_argument("--data", nargs="+", default=None, metavar="FILE",
                   help="validate on all events of these files (background and signals; globs "
                        "and @list.txt accepted; jet files for a tagger) instead of the model's "
                        "validation split")
    p.add_argument("--sweep", action="store_true",
                   help="also try the config's accumulator/result widths (one compile each)")
    p.add_argument("--rtl", action="store_true",
                   help="also write the open RTL flow into OUT/rtl/: Verilog, Verilator test bench "
                        "(bit-exact check, latency) and Yosys resources (config section rtl; "
                        "needs the apt packages verilator and yosys)")
    p.set_defaults(func=run)


def run(args) -> int:
    """Build, validate and write the HLS project; print the agreement and where it is."""
    from firmware.backends import synthesis_command
    from firmware.config import load_config
    from firmware.emit import build_trigger_project
    from firmware.kinds import firmware_kind
    from triggerad.config import resolve_config
    from triggerad.models import kind_of, load_model
    from triggerad.provenance import write_provenance

    check_out(args, "firmware")
    config_path = resolve_config(args.config)
    cfg = load_config(config_path)
    art = load_model(args.model)
    firmware = firmware_kind(art)
    inputs = firmware.trigger_inputs(art)
    if args.data:
        events = kind_of(art).load_data(art, args.data)
    else:
        events = kind_of(art).load_split(art, "val")
    x_raw = art.inputs(events)
    n = cfg.validation.n_events if args.events is None else args.events
    if n:
        x_raw = x_raw[:n]
    extra = {"model": str(args.model), "config_file": str(config_path), "events": len(x_raw),
             "data": args.data or "validation split of the model's background",
             "sweep": args.sweep}
    csim: dict = {}
    summary = build_trigger_project(
        inputs, x_raw, cfg, args.out, sweep=args.sweep, kind=firmware, csim_outputs=csim,
        provenance=lambda folder: write_provenance(folder, "firmware", cfg, extra),
    )
    float_ref = summary["vs_float_pipeline"]
    print(f"HLS project written to {args.out}/ (synthesise there with: "
          f"{synthesis_command(cfg.hls.backend)})")
    print(f"C simulation vs the integer {inputs.threshold_score} on {summary['n_events']} "
          f"validation events: decision "
          f"agreement {summary['decision_agreement']:.6f}, max score diff "
          f"{summary['max_score_diff_lsb']:g} LSB ({summary['csim_seconds']:.1f} s)")
    print(f"fixed point vs float pipeline: decision agreement "
          f"{float_ref['decision_agreement']:.6f}, max score diff "
          f"{float_ref['max_score_diff_lsb']:.3g} LSB")
    print(f"total MACs {summary['total_macs']}; synthesis run: {summary['synthesis_run']}")
    for row in summary["sweep"]:
        print(f"  sweep width {row['width']:>2}: agreement {row['decision_agreement']:.6f}, "
              f"max diff {row['max_score_diff_lsb']:g} LSB")
    if args.rtl and not _rtl(firmware.reference(inputs), x_raw, cfg, args.out, csim=csim):
        return 1
    if summary["decision_agreement"] < cfg.validation.min_agreement:
        log.error("decision agreement %.6f is below validation.min_agreement %.6f",
                  summary["decision_agreement"], cfg.validation.min_agreement)
        return 1
    return 0


def _rtl(reference, x_raw, cfg, out, *, csim=None) -> bool:
    """Write OUT/rtl (:func:`firmware.rtl.flow.build_rtl`), print its summary; False unless
    the RTL simulation equals the fixed-point reference (and ``csim``, the raw C-simulation
    outputs, when given) on every event."""
    from pathlib import Path

    from firmware.rtl.flow import build_rtl
    from firmware.score_layer import SCORE, TRIGGER
    from triggerad.fixedpoint import FixedGraph

    # the outputs of the HLS top function: score and trigger bit (not the encoder's mu, logvar)
    reference = FixedGraph(reference.layers, [SCORE, TRIGGER])
    s = build_rtl(reference, x_raw, cfg.rtl, Path(out) / "rtl", part=cfg.hls.part,
                  csim=csim or None)
    worst = max(r["max_diff_lsb"] for r in s["agreement"].values())
    print(f"RTL ({s['style']}) written to {out}/rtl/: latency {s['latency_cycles']} clocks = "
          f"{s['latency_ns']:.1f} ns at {s['clock_mhz']:g} MHz; Verilator vs fixed point on "
          f"{s['n_events']} events: max diff {worst} LSB")
    exact = s["bit_exact"]
    if s["vs_csim"]:
        rows = s["vs_csim"]
        print("Verilator vs the hls4ml C simulation: " + ", ".join(
            f"{name} max diff {r['max_diff_lsb']} LSB ({r['events_differing']} events differ)"
            for name, r in rows.items()))
        exact = exact and all(r["max_diff_lsb"] == 0 for r in rows.values())
    r = s["resources"]
    if r:
        pct = r["percent_of_part"] or {}
        print(f"Yosys {r['flow']} estimate (not Vivado): {r['LUT']} LUT ({pct.get('LUT', '?')} % of "
              f"{r['part']}), {r['FF']} FF, {r['DSP']} DSP, {r['CARRY']} CARRY, {r['BRAM']} BRAM")
    if not exact:
        log.error("the RTL simulation differs from the fixed-point reference or the C "
                  "simulation: see %s/rtl/%s", out, "rtl_report.md")
    return exact
