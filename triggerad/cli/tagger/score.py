"""``trigger-ad tagger score``: per-jet class probabilities of jet files, chunked and resumable."""

from __future__ import annotations

from triggerad.cli import (
    add_command,
    add_executor_options,
    add_out_option,
    check_out,
    positive_int,
)

COMMAND = "tagger score"

DESCRIPTION = """Score jet files (trigger-ad jet HDF5 or CMS PFNano ROOT; files, globs or @lists)
with an LLP tagger at one c-tau hypothesis: per jet its identifiers (source_file, entry, event,
jet_index), label, c-tau, weight and prob_LLP, prob_b, prob_c, prob_uds, prob_g, written as
per-chunk parts OUT/scores/part-*.parquet (or .root) with manifest.jsonl, run.json and
summary.json. The stream runner of trigger-ad score does the work: re-running the same command
after a crash or kill resumes, no jet is lost or duplicated (run.json records the c-tau; another
--ctau needs another --out). A c-tau outside the range the tagger was trained on is refused
(--ctau-policy error) or scored with a warning naming the range (--ctau-policy warn). Chunks are
entries of the files: jets for HDF5, events for PFNano."""

EXAMPLE = """trigger-ad tagger score models/llp llp/background.h5 llp/signal.root --ctau 10 --out scores/
trigger-ad tagger score models/llp 'nano/*.root' --ctau 1000 --out s/ --ctau-policy warn
trigger-ad tagger score models/llp @files.txt --ctau 1 --out s/ --executor process --workers 2"""


def register(sub) -> None:
    """Add ``trigger-ad tagger score`` to the tagger group's subparsers."""
    p = add_command(sub, "score", "per-jet class probabilities of jet files at a c-tau "
                    "hypothesis (chunked, resumable)", EXAMPLE, DESCRIPTION)
    p.add_argument("model", metavar="MODEL", help="LLP tagger model folder")
    p.add_argument("inputs", metavar="INPUTS", nargs="+",
                   help="jet HDF5 or PFNano ROOT files, globs, or text files listing paths (@list)")
    p.add_argument("--ctau", required=True, type=float, metavar="MM",
                   help="c-tau hypothesis in mm given to the tagger for every jet")
    p.add_argument("--ctau-policy", choices=("error", "warn"), default="error",
                   help="a --ctau outside the trained c-tau range: refuse, or warn and score")
    add_out_option(p, "output folder (re-run to resume)")
    p.add_argument("--reader", default="auto", help="jets, pfnano, or auto (from the suffix)")
    p.add_argument("--branch-map", default=None, help="YAML branch map for the reader")
    p.add_argument("--chunk-size", type=positive_int, default=None,
                   help="entries per work unit (default: config, 50000)")
    p.add_argument("--config", default=None,
                   help="score config (default: the packaged configs/score.yaml; its chunking "
                   "and output sections apply)")
    p.add_argument("--format", choices=("parquet", "root"), default=None,
                   help="format of the per-chunk parts (default: config, parquet)")
    add_executor_options(p, default="local", workers=2)
    p.add_argument("--on-error", choices=("skip", "fail"), default="skip",
                   help="unreadable or corrupt inputs: list them in the summary and go on, or stop")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args) -> int:
    """Score the jets and print jets, parts and throughput."""
    from tagger.artifact import KIND
    from triggerad.cli.score import config_overrides
    from triggerad.errors import ConfigError
    from triggerad.executor import make_executor
    from triggerad.io.registry import expand_inputs
    from triggerad.models import kind_of
    from triggerad.stream.config import load_score_config
    from triggerad.stream.plan import ReaderChooser
    from triggerad.stream.runner import RUN_FILE, run_stream

    if not args.ctau > 0:
        raise ConfigError(f"--ctau: expected a positive c-tau in mm, found {args.ctau!r}")
    kind = kind_of(args.model).name
    if kind != KIND:
        raise ConfigError(f"{args.model}: a {kind} model; `trigger-ad tagger score` scores LLP "
                          f"taggers ({KIND}); use `trigger-ad score`")
    check_out(args, COMMAND, own_markers=(RUN_FILE,))
    config = load_score_config(args.config, config_overrides(args))
    files = expand_inputs(args.inputs)
    reader_for = ReaderChooser(args.reader, args.branch_map, config.chunking.chunk_size,
                               record="jets")
    with make_executor(args.executor, workers=args.workers, scheduler=args.scheduler) as executor:
        summary = run_stream(args.model, files, args.out, config=config, reader_for=reader_for,
                             executor=executor, on_error=args.on_error,
                             progress=not args.no_progress,
                             scorer_options={"ctau_mm": args.ctau,
                                             "ctau_policy": args.ctau_policy},
                             command=f"trigger-ad {COMMAND}")
    print(f"jets: {summary['events']} in {len(summary['parts'])} parts -> {args.out}/scores/  "
          f"throughput: {summary['events_per_s']:.0f} jets/s")
    if summary["files_failed"]:
        print(f"files failed: {len(summary['files_failed'])} (listed in {args.out}/summary.json)")
    return 0
