"""``trigger-ad tagger tracks-generate``: event-level track samples (LLP signal, QCD) per mu."""

from __future__ import annotations

from triggerad.cli import add_command, positive_int
from triggerad.cli.generate import add_generation_options
from triggerad.cli.tagger import TRACKS_CONFIGS

COMMAND = "tagger tracks-generate"

DESCRIPTION = """Generate the event-level track samples of CONFIG: the LLP signals (two masses of
the Higgs-portal scalar, c-tau per batch) and QCD multijets with Pythia 8, at every pile-up mu of
selection.mu (minimum-bias overlay, e.g. the cached library), through the parametric tracker;
per event the selection.n_tracks highest-pT tracks (pT, eta, phi, d0, dz and their resolutions)
of the hard process and the pile-up. Writes DIR/tracks_mu<mu>.npz and DIR/summary.json.
See docs/tracks.md."""

EXAMPLE = """trigger-ad tagger tracks-generate tracks-fast --out tracks/ --workers 2
trigger-ad tagger tracks-generate configs/tracks.yaml --events 8000 --out tracks_big/
trigger-ad tagger tracks-generate tracks --events 32000 --mu 60 --pool-size 40000 --out mu60/"""


def register(sub) -> None:
    """Add ``trigger-ad tagger tracks-generate`` to the tagger group's subparsers."""
    p = add_command(sub, "tracks-generate", "track samples for event classification: LLP "
                    "signal and QCD at each pile-up mu", EXAMPLE, DESCRIPTION)
    add_generation_options(p, ", ".join(TRACKS_CONFIGS), "output folder")
    p.add_argument("--mu", type=float, nargs="+", default=None,
                   help="pile-up mu values to generate (default: the config's selection.mu)")
    p.add_argument("--pool-size", type=positive_int, default=None,
                   help="minimum-bias library size (default: the config's pileup.pool_size); "
                   "larger samples need a larger pool to keep the reuse factor")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args) -> int:
    """Generate into a temporary folder, then move it to ``--out``; print the per-sample table."""
    from tagger.tracks.config import load_config
    from tagger.tracks.generate import generate
    from triggerad import atomic
    from triggerad.cli import check_out
    from triggerad.errors import ConfigError
    from triggerad.provenance import write_provenance

    overrides: dict = {}
    if args.mu is not None:
        overrides["selection"] = {"mu": args.mu}
    if args.pool_size is not None:
        overrides["pileup"] = {"pool_size": args.pool_size}
    cfg = load_config(args.config, overrides)
    events = cfg.output.events if args.events is None else args.events
    if events <= 0 or args.workers <= 0:
        raise ConfigError(f"--events and --workers must be positive, found {events!r}, "
                          f"{args.workers!r}")
    check_out(args, COMMAND)
    with atomic.atomic_dir(args.out) as tmp:
        summary = generate(cfg, events, tmp, seed=args.seed, workers=args.workers,
                           executor=args.executor, progress=not args.quiet)
        write_provenance(tmp, COMMAND, cfg, {"config": str(args.config), "events": events,
                                             "seed": args.seed, "workers": args.workers,
                                             "overrides": overrides})
    print(f"{'sample':<16} {'events':>7} {'ev/s':>7} {'tracks/ev':>9} {'pile-up tracks':>14}")
    for name, e in summary["samples"].items():
        print(f"{name:<16} {e['events']:>7} {e['events_per_s']:>7.1f} {e['mean_tracks']:>9.1f} "
              f"{e['pileup_track_fraction']:>14.1%}")
    print(f"wall time {summary['wall_seconds']:.0f} s -> {args.out}/ "
          f"({', '.join(summary['files'])})")
    return 0
