"""``trigger-ad tagger evaluate``: the evaluation report of an LLP tagger on a sample folder."""

from __future__ import annotations

from triggerad.cli import add_command, add_out_option, check_out, positive_int

COMMAND = "tagger evaluate"

DESCRIPTION = """Evaluate an LLP tagger (trigger-ad tagger train) on a sample folder of trigger-ad
tagger generate (signal, background, shifted_sim .h5 or .root) and write REPORT/ atomically:
report.json, report.md and PNG plots. Discriminant P(LLP); LLP jets at their true c-tau, SM jets
at the c-tau of each comparison. Contents: ROC curves LLP vs udsg, vs b, vs c at c-tau 1 mm and
1 m with AUC and LLP efficiency at 1e-4 and 1e-3 mistag; LLP efficiency vs c-tau (10 um - 10 m);
efficiency vs a wrong c-tau hypothesis for samples of fixed c-tau (peaks at the true value for a
well-parametrised tagger); the domain check: per-event max P(LLP) in simulation vs the data-like
sample and their Jensen-Shannon divergence (bits). With --compare MODEL_NO_DA (the same tagger
trained with --no-da) both models are evaluated and the AUC cost and JSD change of domain
adaptation reported. See docs/tagger.md."""

EXAMPLE = """trigger-ad tagger evaluate models/llp --data llp/ --out reports/llp
trigger-ad tagger evaluate models/llp --data llp/ --out reports/llp --compare models/llp_no_da"""


def register(sub) -> None:
    """Add ``trigger-ad tagger evaluate`` to the tagger group's subparsers."""
    p = add_command(sub, "evaluate", "evaluate an LLP tagger: ROC, efficiency vs c-tau, "
                    "domain check (report.json, report.md, plots)", EXAMPLE, DESCRIPTION)
    p.add_argument("model", metavar="MODEL", help="LLP tagger model folder")
    p.add_argument("--data", required=True, metavar="DIR",
                   help="sample folder with signal, background and shifted_sim (.h5 or .root)")
    add_out_option(p, "report folder", metavar="REPORT")
    p.add_argument("--compare", default=None, metavar="MODEL_NO_DA",
                   help="the same tagger trained without domain adaptation")
    p.add_argument("--mistag", type=float, action="append", default=None, dest="mistags",
                   help="udsg mistag of the quoted efficiencies (repeatable; default 1e-4, 1e-3)")
    p.add_argument("--max-jets", type=positive_int, default=None, help="read at most this many jets per file")
    p.add_argument("--unweighted", action="store_true",
                   help="every jet counts 1 (default: the jets' event weights, sigma / N)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args) -> int:
    """Evaluate and print the key numbers."""
    from tagger.artifact import load
    from tagger.evaluate import EvaluateConfig, evaluate, summary_lines
    from triggerad.config import build
    from triggerad.errors import ConfigError

    settings = {}
    if args.mistags:
        if not all(0 < m <= 1 for m in args.mistags):
            raise ConfigError(f"--mistag: expected values in (0, 1], found {args.mistags!r}")
        settings["mistags"] = args.mistags
    if args.max_jets is not None:
        settings["max_jets"] = args.max_jets
    if args.unweighted:
        settings["weighted"] = False
    cfg = build(EvaluateConfig, settings, where=COMMAND)
    check_out(args, COMMAND)
    model = load(args.model)
    compare = None if args.compare is None else load(args.compare)
    report = evaluate(model, args.data, args.out, cfg, compare=compare,
                      progress=not args.no_progress)
    print("\n".join(summary_lines(report)))
    print(f"wrote {args.out}/report.md, report.json and {len(report['figures'])} plots")
    return 0
