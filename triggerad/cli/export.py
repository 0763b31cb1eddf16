"""``trigger-ad export``: a model folder as an ONNX file, validated against Keras.

The ONNX graph takes the RAW physical inputs in the documented layout (the normalisation is inside
the graph) and has named inputs and outputs; the model folder's schema, threshold, score
definition, version and git hash are in its metadata properties. At export, ONNX Runtime is run
against Keras on the model's validation split (or --data files): the largest difference of every
output and the decision agreement at the stored threshold go to OUT.onnx.json next to the file.
Below validation.min_agreement (0.9999) the export is refused (exit 2) and nothing is written.

VAE folders (hlf_vae, l1_vae): outputs score, mu, logvar; --full adds reconstruction, loss, nll,
kl, mu2. The default score is the threshold's (mu2 in place of the quantized mu2_q, kl for kl_q):
the graph is the float model; the firmware stays the bit-exact reference of the quantized score.
Needs the onnx extra: pip install -e '.[onnx]'.
"""

from __future__ import annotations

from triggerad.cli import add_command


def register(subparsers) -> None:
    """Add the ``export`` subcommand."""
    p = add_command(
        subparsers,
        "export",
        "export a model folder to ONNX (raw inputs, named outputs, metadata), checked with ONNX "
        "Runtime against Keras",
        "trigger-ad export models/l1_vae --onnx l1_vae.onnx\n"
        "trigger-ad export models/hlf_vae --onnx hlf_vae.onnx --full --config my_export.yaml\n"
        "trigger-ad export models/hlf_vae --onnx hlf_kl.onnx --score kl --data 'data/*.h5' --force",
        description=__doc__,
    )
    p.add_argument("model", help="trained model folder (with threshold.json)")
    p.add_argument("--onnx", required=True, metavar="OUT.onnx",
                   help="ONNX file to write (the report goes to OUT.onnx.json)")
    p.add_argument("--config", default="export", help="export YAML file or packaged config name")
    p.add_argument("--score", default=None,
                   help="score to export and decide on (VAEs: mu2, kl, nll, loss); default: the "
                        "threshold's score (its float twin for a quantized one)")
    p.add_argument("--full", action="store_true",
                   help="export the complete model (VAEs: decoder output and every float score)")
    p.add_argument("--data", nargs="+", default=None, metavar="FILE",
                   help="validate on all events of these files instead of the model's "
                        "validation split")
    p.add_argument("--events", type=int, default=None,
                   help="validation events at most (default: the config's validation.n_events; "
                        "0: all)")
    p.add_argument("--force", action="store_true", help="replace an existing OUT.onnx")
    p.set_defaults(func=run)


def run(args) -> int:
    """Export, validate, write; print where the files are and the agreement."""
    from triggerad.config import resolve_config
    from triggerad.errors import ConfigError
    from triggerad.export.config import load_config
    from triggerad.export.run import check_output, export_model, report_path
    from triggerad.export.spec import ExportOptions

    if args.events is not None and args.events < 0:
        raise ConfigError(f"--events: expected a number >= 0, found {args.events!r}")
    check_output(args.onnx, force=args.force)  # before any heavy import
    config_path = resolve_config(args.config)
    cfg = load_config(config_path)
    options = ExportOptions(
        score=args.score, full=args.full, data=args.data,
        n_events=cfg.validation.n_events if args.events is None else args.events,
    )
    extra = {"model": str(args.model), "config_file": str(config_path), "score": args.score,
             "full": args.full, "data": args.data, "events": options.n_events}
    report = export_model(args.model, args.onnx, config=cfg, options=options, force=args.force,
                          extra=extra)
    val = report["validation"]
    print(f"wrote {args.onnx} (opset {report['opset']}, {report['size_bytes']} bytes) and "
          f"{report_path(args.onnx)}")
    print(f"inputs: {', '.join(t['name'] for t in report['inputs'])}; outputs: "
          f"{', '.join(t['name'] for t in report['outputs'])}")
    worst = max(val["outputs"].items(), key=lambda kv: kv[1]["max_abs_diff"])
    print(f"ONNX Runtime vs Keras on {val['n_events']} events ({val['source']}): max abs diff "
          f"{worst[1]['max_abs_diff']:.3g} ({worst[0]})")
    if val["decision"] is not None:
        d = val["decision"]
        print(f"decision {d['selection']}: agreement {d['agreement']:.6f} "
              f"({d['n_disagree']} events differ)")
    for label, ref in val["references"].items():
        line = f"vs {label}: max abs diff {ref['max_abs_diff']:.3g}"
        if "decision" in ref:
            line += f", decision agreement {ref['decision']['agreement']:.6f}"
        print(line)
    return 0
