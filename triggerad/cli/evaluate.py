"""``trigger-ad evaluate``: the evaluation report of a model at its threshold.

Scores the test split of the model's SM background and every DIR/signal_<name>.h5, and writes
REPORT/ (atomically): report.md, PNG figures (score distributions per SM process and signal,
rate vs threshold, ROC curves, float vs quantized score, efficiencies) and report.json with every
number: the threshold, per signal the efficiency at the threshold, AUC and the cross-section for
100 selected events per month; the same efficiencies at the same SM rate for the baselines
trained in this run (plain autoencoder, IsolationForest, a normalizing flow, a supervised classifier per signal, the
best single-variable cut on LepPt, HT or MET) and a float-vs-quantized comparison.

The model needs a threshold first (trigger-ad threshold).
"""

from __future__ import annotations

from triggerad.cli import add_command, add_out_option, check_out, positive_int

#: Baseline switches: flag suffix -> config section.
BASELINES = {
    "autoencoder": "autoencoder",
    "isolation-forest": "isolation_forest",
    "flow": "flow",
    "classifier": "classifier",
    "single-variable": "single_variable",
}


def register(subparsers) -> None:
    """Add the ``evaluate`` subcommand."""
    p = add_command(
        subparsers,
        "evaluate",
        "write the evaluation report of a model at its threshold (efficiencies, AUC, baselines)",
        "trigger-ad evaluate models/hlf_vae --data cocktail/ --out reports/hlf_vae\n"
        "trigger-ad evaluate models/l1_vae --data cocktail/ --out r/ --no-autoencoder --no-classifier\n"
        "trigger-ad evaluate models/hlf_vae --data samples.yaml --out reports/cms",
        description=__doc__,
    )
    p.add_argument("model", help="model artifact folder with threshold.json")
    p.add_argument("--data", required=True, metavar="DIR",
                   help="folder with signal_<name>.h5 files (from trigger-ad generate), or a "
                   "sample list (*.yaml) whose is_signal: true samples are the signals")
    add_out_option(p, "report folder to write", metavar="REPORT")
    p.add_argument("--config", default="evaluate", help="evaluation config (YAML or packaged name)")
    p.add_argument("--no-baselines", action="store_true", help="skip every baseline")
    for flag, section in BASELINES.items():
        p.add_argument(f"--no-{flag}", dest=f"no_{section}", action="store_true",
                       help=f"skip the {flag.replace('-', ' ')} baseline")
    p.add_argument("--max-signal-events", type=positive_int, default=None,
                   help="use at most this many events per signal file")
    p.set_defaults(func=run)


def run(args) -> int:
    """Build the report (through the model's kind) and print the per-signal summary."""
    from triggerad.models import kind_of

    check_out(args, "evaluate")

    overrides: dict = {
        section: {"enabled": False}
        for section in BASELINES.values()
        if args.no_baselines or getattr(args, f"no_{section}")
    }
    if args.max_signal_events is not None:
        overrides["report"] = {"max_signal_events": args.max_signal_events}
    lines = kind_of(args.model).evaluate(args.model, args.data, args.out, config=args.config,
                                         overrides=overrides)
    print("\n".join(lines))
    return 0
