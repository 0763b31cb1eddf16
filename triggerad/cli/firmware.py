"""``trigger-ad firmware``: hls4ml HLS project of a quantized anomaly encoder with its score.

The top function takes the raw trigger objects in fixed point, normalises them, runs the
quantized encoder, computes score = sum of mu^2 and the trigger bit (score > the model's
threshold). Every fixed-point type comes from the model (quantization.fixed_point); the C
simulation is compared bit for bit with the model's integer score mu2_q on validation events.
The threshold must have been set on mu2_q: a cut set on another score (e.g. the float mu2) is
refused, since applied to mu2_q it would select another rate than the one threshold.json records.
"""

from __future__ import annotations

import logging

from triggerad.cli import add_command
from triggerad.errors import ConfigError

log = logging.getLogger(__name__)

#: The score the firmware computes (the fixed-point sum of mu^2); thresholds on others are refused.
FIRMWARE_SCORE = "mu2_q"


def register(subparsers) -> None:
    """Add the ``firmware`` subcommand."""
    p = add_command(
        subparsers,
        "firmware",
        "hls4ml HLS project of the quantized encoder + score + trigger bit, verified in C simulation",
        "trigger-ad firmware models/l1_vae --config firmware --out hls_l1_vae/\n"
        "trigger-ad firmware models/l1_vae --config my_fw.yaml --out prj/ --events 20000 --sweep\n"
        "trigger-ad firmware models/l1_vae --out prj/ --data data/background.h5 'data/signal_*.h5'",
        description=__doc__,
    )
    p.add_argument("model", help="trained model folder (with threshold.json)")
    p.add_argument("--config", default="firmware",
                   help="firmware YAML file or packaged config name")
    p.add_argument("--out", required=True, help="HLS project folder to write")
    p.add_argument("--events", type=int, default=None,
                   help="validation events to C-simulate (default: the config's n_events; 0: all)")
    p.add_argument("--data", nargs="+", default=None, metavar="FILE",
                   help="validate on all events of these files (background and signals; globs "
                        "and @list.txt accepted) instead of the model's validation split")
    p.add_argument("--sweep", action="store_true",
                   help="also try the config's accumulator/result widths (one compile each)")
    p.set_defaults(func=run)


def _threshold_command(art, thr: dict) -> str:
    """The ``trigger-ad threshold`` command that sets the same target rate on the firmware score."""
    if thr.get("target_rate_hz") and thr.get("input_rate_hz"):
        target = f"--rate {thr['target_rate_hz']:.6g} --input-rate {thr['input_rate_hz']:.6g}"
    elif thr.get("fpr"):
        target = f"--fpr {thr['fpr']:.6g}"
    else:
        target = "--rate RATE"
    return f"trigger-ad threshold {art.path} {target} --score {FIRMWARE_SCORE}"


def trigger_inputs(art):
    """:class:`firmware.emit.TriggerInputs` of a model artifact (needs its threshold on ``mu2_q``).

    Raises
    ------
    ConfigError
        Without ``threshold.json``, for a threshold on another score than ``mu2_q`` (the firmware
        would apply a cut made for one score to another, at another rate), or for a ``mu2_q``
        threshold set with other fixed-point types than the model's current ones.
    """
    from firmware.emit import TriggerInputs

    thr = art.threshold
    if thr is None:
        raise ConfigError(f"{art.path}: no threshold.json; run `trigger-ad threshold {art.path} "
                          "--rate ...` first (the firmware needs the cut for the trigger bit)")
    if thr.get("score") != FIRMWARE_SCORE:
        raise ConfigError(
            f"{art.path}/threshold.json: the cut is on {thr.get('score')!r}, but the firmware "
            f"computes {FIRMWARE_SCORE!r} (sum of mu^2 of the fixed-point encoder); the same cut "
            "on another score gives another rate than the one recorded. Set the threshold on the "
            f"firmware score at the same target: `{_threshold_command(art, thr)}`")
    graph = art.fixed_graph()
    stored = thr.get("fixed_point_digest")
    if stored is None:
        log.warning("%s/threshold.json does not record the fixed-point graph it was set with (an "
                    "older threshold?); set it again to be sure it matches the firmware", art.path)
    elif stored != graph.digest():
        raise ConfigError(
            f"{art.path}/threshold.json was set with other fixed-point types or weights than the "
            f"model's current ones (digest {stored[:12]}... vs {graph.digest()[:12]}...); set it "
            f"again: `{_threshold_command(art, thr)}`")
    return TriggerInputs(art.quantized_encoder(), graph, art.mean, art.scale, list(art.input_names),
                         float(thr["value"]), thr["score"])


def run(args) -> int:
    """Build, validate and write the HLS project; print the agreement and where it is."""
    from anomaly.artifact import load_artifact
    from anomaly.data import load_sample, load_split
    from firmware.config import load_config
    from firmware.emit import build_trigger_project, synthesis_command
    from triggerad.config import resolve_config
    from triggerad.provenance import write_provenance

    config_path = resolve_config(args.config)
    cfg = load_config(config_path)
    art = load_artifact(args.model)
    inputs = trigger_inputs(art)
    if args.data:
        events = load_sample(args.data)
    else:
        events = load_split(art.data_info, "val")
    x_raw = art.inputs(events)
    n = cfg.validation.n_events if args.events is None else args.events
    if n:
        x_raw = x_raw[:n]
    extra = {"model": str(args.model), "config_file": str(config_path), "events": len(x_raw),
             "data": args.data or "validation split of the model's background",
             "sweep": args.sweep}
    summary = build_trigger_project(
        inputs, x_raw, cfg, args.out, sweep=args.sweep,
        provenance=lambda folder: write_provenance(folder, "firmware", cfg, extra),
    )
    float_ref = summary["vs_float_pipeline"]
    print(f"HLS project written to {args.out}/ (synthesise there with: "
          f"{synthesis_command(cfg.hls.backend)})")
    print(f"C simulation vs the integer mu2_q on {summary['n_events']} validation events: decision "
          f"agreement {summary['decision_agreement']:.6f}, max score diff "
          f"{summary['max_score_diff_lsb']:g} LSB ({summary['csim_seconds']:.1f} s)")
    print(f"fixed point vs float pipeline: decision agreement "
          f"{float_ref['decision_agreement']:.6f}, max score diff "
          f"{float_ref['max_score_diff_lsb']:.3g} LSB")
    print(f"total MACs {summary['total_macs']}; synthesis run: {summary['synthesis_run']}")
    for row in summary["sweep"]:
        print(f"  sweep width {row['width']:>2}: agreement {row['decision_agreement']:.6f}, "
              f"max diff {row['max_score_diff_lsb']:g} LSB")
    if summary["decision_agreement"] < cfg.validation.min_agreement:
        log.error("decision agreement %.6f is below validation.min_agreement %.6f",
                  summary["decision_agreement"], cfg.validation.min_agreement)
        return 1
    return 0
