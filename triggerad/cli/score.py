"""``trigger-ad score``: offline anomaly scoring of data streams, exactly once and resumable."""

from __future__ import annotations

from triggerad.cli import (
    add_command,
    add_executor_options,
    add_out_option,
    add_policy_options,
    check_out,
    positive_int,
)

DESCRIPTION = """Score many input files (ADC2021 HDF5, Delphes, NanoAOD, flat ROOT, parquet; files,
globs, text lists or sample lists: samples.yaml, whose events get the sample's process label and
normalised generator weights) in chunks with a trained model and its stored threshold. Writes per-chunk
score parts (ids, the threshold's score - or those asked for with --score -, threshold, decision), anomalies.parquet (full inputs of accepted
events), the accepted rate per lumi block (or per fixed chunk) with Poisson errors and plots, and
summary.json. Re-running the same command after a crash or kill resumes: no event is lost or
duplicated. --rate-control adjusts the threshold per block to hold the target rate. With
--executor process the files are counted and the chunks scored in --workers processes of this
machine; with --executor dask on a Dask cluster (an existing one via --scheduler, or a local one
of --workers processes); the outputs are identical to a local run."""

EXAMPLE = """trigger-ad score models/l1_vae data/*.h5 --out stream/
trigger-ad score models/l1_vae data/*.h5 --out stream_all/ --score all   # + decoder scores
trigger-ad score models/l1_vae @files.txt --out stream/ --rate-control rate-control
trigger-ad score models/l1_vae data/*.h5 --out stream/ --executor process --workers 4
trigger-ad score models/l1_vae samples.yaml --out stream/      # a sample list
trigger-ad score models/l1_vae data/*.root --out stream/ --executor dask --scheduler tcp://host:8786"""


def register(subparsers) -> None:
    """Add the ``score`` subcommand."""
    p = add_command(subparsers, "score", "score data streams with a trained model (exactly once, "
                    "resumable, rate-monitored, local or Dask)", EXAMPLE, DESCRIPTION)
    p.add_argument("model", metavar="MODEL", help="model folder with threshold.json")
    p.add_argument("inputs", metavar="INPUTS", nargs="+",
                   help="input files, globs, text files listing paths (@list.txt), or sample "
                   "lists (*.yaml)")
    add_out_option(p, "output folder (re-run to resume)")
    p.add_argument("--config", default=None,
                   help="score config (default: the packaged configs/score.yaml)")
    p.add_argument("--reader", default="auto", help="reader name, or auto (from the file)")
    p.add_argument("--branch-map", default=None, help="YAML branch map for the reader")
    p.add_argument("--chunk-size", type=positive_int, default=None, help="events per work unit")
    p.add_argument("--score", action="append", default=None, dest="scores", metavar="NAME",
                   help="also compute this score (repeatable; `all`: every score of the model, "
                   "decoder scores through TensorFlow). Default: only the threshold's score, "
                   "the one the trigger decision needs (mu2_q: integer graph from "
                   "MODEL/fastpath.json, no TensorFlow)")
    p.add_argument("--rate-control", default=None, metavar="CONFIG",
                   help="YAML with a `control` section (e.g. the packaged rate-control): enable "
                   "the threshold controller")
    add_policy_options(p)
    add_executor_options(p, default="local", workers=2)
    p.add_argument("--format", choices=("parquet", "root"), default=None,
                   help="format of the per-chunk score parts (default: config, parquet)")
    p.add_argument("--on-error", choices=("skip", "fail"), default="skip",
                   help="unreadable or corrupt inputs: list them in the summary and go on, or "
                   "stop")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def config_overrides(args) -> dict:
    """``--chunk-size`` and ``--format`` as overrides of the score config's sections."""
    overrides: dict = {}
    if args.chunk_size is not None:
        overrides["chunking"] = {"chunk_size": args.chunk_size}
    if args.format:
        overrides["output"] = {"format": args.format}
    return overrides


def run(args) -> int:
    """Run the scoring and print events, accepted, accepted rate and throughput."""
    from triggerad.executor import make_executor
    from triggerad.io.base import ReadOptions
    from triggerad.io.registry import expand_inputs
    from triggerad.samples import ReaderTable, is_sample_list, resolve_inputs
    from triggerad.stream.config import control_from_file, load_score_config
    from triggerad.stream.plan import ReaderChooser
    from triggerad.stream.runner import RUN_FILE, run_stream

    check_out(args, "score", own_markers=(RUN_FILE,))
    config = load_score_config(args.config, config_overrides(args))
    if args.rate_control:
        config.control = control_from_file(args.rate_control)
    if any(is_sample_list(i) for i in args.inputs):  # readers that normalise each sample
        inputs, _ = resolve_inputs(args.inputs, args.reader, args.branch_map,
                                   ReadOptions(chunk_size=config.chunking.chunk_size,
                                               nonfinite=args.nonfinite,
                                               unphysical=args.unphysical))
        files, reader_for = [i.path for i in inputs], ReaderTable(inputs)
    else:
        files = expand_inputs(args.inputs)
        reader_for = ReaderChooser(args.reader, args.branch_map, config.chunking.chunk_size,
                                   nonfinite=args.nonfinite, unphysical=args.unphysical)
    with make_executor(args.executor, workers=args.workers, scheduler=args.scheduler) as executor:
        summary = run_stream(args.model, files, args.out, config=config, reader_for=reader_for,
                             executor=executor, scores=args.scores, on_error=args.on_error,
                             progress=not args.no_progress)
    print(f"events: {summary['events']}  accepted: {summary['accepted']}  "
          f"accepted rate: {summary['accepted_rate_hz']:.1f} Hz "
          f"(target {summary['target_rate_hz']:.1f} Hz at {summary['input_rate_hz']:.3g} Hz input)"
          f"  throughput: {summary['events_per_s']:.0f} events/s")
    if summary["files_failed"]:
        print(f"files failed: {len(summary['files_failed'])} (listed in {args.out}/summary.json)")
    return 0
