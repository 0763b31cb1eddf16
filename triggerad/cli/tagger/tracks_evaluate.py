"""``trigger-ad tagger tracks-evaluate``: AUC and accuracy of track classifiers vs the truth."""

from __future__ import annotations

from triggerad.cli import add_command, add_out_option, check_out, count

COMMAND = "tagger tracks-evaluate"

DESCRIPTION = """Score track classifiers (trigger-ad tagger tracks-train) on the sample file of
each one's pile-up mu in DIR and compare with the truth labels, whatever the labelling they were
trained with: AUC, accuracy at the network's cut and at the best cut, the pT-cut baseline (scalar
pT sum of the tracks) per mu, the occlusion importance of hard-process vs pile-up tracks, training
and inference throughput. A model is scored on its test split if DIR holds the file it was
trained on, else on every event of the file. Writes REPORT/report.json and report.md.
See docs/tracks.md."""

EXAMPLE = """trigger-ad tagger tracks-evaluate models/mlp_mu60 models/trf_mu60 --data tracks/ --out reports/tracks"""


def register(sub) -> None:
    """Add ``trigger-ad tagger tracks-evaluate`` to the tagger group's subparsers."""
    p = add_command(sub, "tracks-evaluate", "evaluate track classifiers: AUC, accuracy, "
                    "pT-cut baseline, throughput", EXAMPLE, DESCRIPTION)
    p.add_argument("models", metavar="MODEL", nargs="+", help="track classifier folders")
    p.add_argument("--data", required=True, metavar="DIR",
                   help="output folder of `trigger-ad tagger tracks-generate`")
    add_out_option(p, "report folder", metavar="REPORT")
    p.add_argument("--importance-events", type=count, default=20,
                   help="test events of the track-importance (occlusion) study; 0: none")
    p.set_defaults(func=run)


def run(args) -> int:
    """Evaluate and print one line per model."""
    from tagger.tracks.evaluate import evaluate, summary_lines
    from tagger.tracks.kinds import load
    from triggerad import atomic
    from triggerad.provenance import write_provenance

    models = [load(m) for m in args.models]
    check_out(args, COMMAND)
    with atomic.atomic_dir(args.out) as tmp:
        report = evaluate(models, args.data, tmp, importance_events=args.importance_events)
        write_provenance(tmp, COMMAND, None, {"models": args.models, "data": args.data})
    print("\n".join(summary_lines(report)))
    print(f"wrote {args.out}/report.md and report.json")
    return 0
