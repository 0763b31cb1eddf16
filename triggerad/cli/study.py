"""``trigger-ad study``: the anomaly-detection reference study, one command, resumable.

generate (or read) the cocktail -> train the HLF and the L1 VAE -> set each VAE's threshold on
its validation split -> score the evaluation split and the signals with every score of both
VAEs and the baselines (plain autoencoder, IsolationForest, single-variable cuts, supervised
classifier) -> STUDY/report/: report.md, report.json and efficiency-vs-FPR plots, with the
efficiency and its Clopper-Pearson interval per signal, method and operating point, and "not
measurable" where the sample has too few effective SM events above the cut.

Each stage writes its outputs atomically and a marker STUDY/steps/<stage>.json; run the same
command again after a kill and the finished stages are skipped (--restart redoes everything).
Configs: study (reference size with the underlying event, ~6.5 core-hours estimated,
docs/reference_study.md), study-noue (the same size without it: 50 min on 2 cores, FPR 1e-3
measurable), study-fast (minutes).
"""

from __future__ import annotations

from triggerad.cli import add_command, add_out_option, check_out

#: File of the study config as resolved at the first run (a resumed run must match it).
CONFIG_FILE = "config.resolved.yaml"


def register(subparsers) -> None:
    """Add the ``study`` subcommand."""
    p = add_command(
        subparsers,
        "study",
        "the anomaly-detection reference study: generate, train, threshold, evaluate, report",
        "trigger-ad study study-fast --out study-fast/        # minutes on 2 cores\n"
        "trigger-ad study configs/study.yaml --out study/     # reference size; re-run to resume",
        description=__doc__,
    )
    p.add_argument("config", metavar="CONFIG",
                   help="study config: YAML file or packaged name (study, study-fast)")
    add_out_option(p, "study folder (data, models, scores, report, step markers)",
                   metavar="DIR")
    p.add_argument("--restart", action="store_true",
                   help="forget the finished stages of DIR and run every stage again")
    p.set_defaults(func=run)


def run(args) -> int:
    """Check the config and the folder, run (or resume) the study, print the summary."""
    import shutil
    from pathlib import Path

    from anomaly.study.config import load_study
    from anomaly.study.run import run_study
    from anomaly.study.steps import STEPS_DIR
    from triggerad.config import dump
    from triggerad.errors import ConfigError
    from triggerad.provenance import write_provenance

    cfg = load_study(args.config)
    out = Path(args.out)
    check_out(args, "study", own_markers=(STEPS_DIR,))
    saved = out / CONFIG_FILE
    if args.restart or args.force:
        shutil.rmtree(out / STEPS_DIR, ignore_errors=True)
    elif (out / STEPS_DIR).is_dir() and saved.is_file() and saved.read_text() != dump(cfg):
        raise ConfigError(
            f"--out {out}: holds a study run with another config ({saved}); resuming would mix "
            "the two. Use another --out, or --restart to redo every stage with this config")
    write_provenance(out, "study", cfg, {"config": str(args.config)})
    records = run_study(cfg, out, config_path=str(args.config))
    report = out / "report" / "report.md"
    print(f"\nstudy finished: {sum(r.get('seconds', 0) for r in records.values()):.0f} s of "
          f"stages. Report: {report}")
    for method, per in records["report"]["headline"].items():
        for fpr, c in per.items():
            what = (f"wins {c['wins']} of {c['signals']} vs the best single-variable cut, mean "
                    f"ratio to supervised {c['mean_ratio_to_supervised']:.2f}"
                    if c["measurable"] and c["mean_ratio_to_supervised"] is not None
                    else "not measurable at this size")
            print(f"  {method} at FPR {fpr}: {what}")
    contamination = (records.get("contamination") or {}).get("table", {})
    if contamination:
        print(f"Signal contamination ({out / 'contamination' / 'report' / 'contamination.md'}): "
              "efficiency at each fraction of signal in the training split")
    for method, per in contamination.items():
        for fpr, per_signal in per.items():
            cells = "; ".join(f"{signal} " + " / ".join(f"{e:.3g}" for e in effs.values())
                              for signal, effs in per_signal.items())
            print(f"  {method} at FPR {fpr} (fractions {' / '.join(next(iter(per_signal.values())))}): "
                  f"{cells}")
    return 0
