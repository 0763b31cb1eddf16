"""``trigger-ad tagger generate``: the LLP jet samples.

``trigger-ad tagger generate CONFIG --out DIR`` generates the LLP jet samples: long-lived
particle signals, QCD and ttbar backgrounds and a shifted ("data-like") simulation, through the
parametric detector with tracks, neutral candidates and secondary vertices, labelled in the
scheme of arXiv:1912.12238, as jet HDF5 and PFNano ROOT files (see docs/tagger.md).
"""

from __future__ import annotations

import sys

from triggerad.cli import HelpFormatter
from triggerad.cli.generate import add_generation_options

COMMAND = "tagger generate"


def register(sub) -> None:
    """Add ``trigger-ad tagger generate`` to the tagger group's subparsers."""
    gen = sub.add_parser(
        "generate", help="generate the LLP jet samples (signal, SM, shifted simulation)",
        description=(
            "Generate every sample of CONFIG with Pythia 8 (pp, 13 TeV) through the parametric "
            "detector (tracks with impact parameters, neutral candidates, secondary vertices), "
            "cluster anti-kT R=0.4 jets (pT > 20 GeV, |eta| < 2.4), label them (LLP, b, c, uds, "
            "g) and write DIR/signal.{h5,root}, DIR/background.{h5,root}, "
            "DIR/shifted_sim.{h5,root} (the shifted simulation standing in for data, "
            "unlabelled) and DIR/summary.json. See docs/tagger.md."
        ),
        epilog="example:\n"
               "  trigger-ad tagger generate tagger-generate-fast --out llp/ --workers 2\n"
               "  trigger-ad tagger generate configs/tagger-generate.yaml --events 20000 "
               "--out llp_physics/ --seed 7",
        formatter_class=HelpFormatter,
    )
    add_generation_options(gen, "tagger-generate, tagger-generate-fast",
                           "output folder")
    gen.set_defaults(func=run_generate)


def run_generate(args) -> int:
    """Generate the samples into a temporary folder, then move it to ``--out``."""
    from tagger.generate import generate
    from tagger.samples import load_config
    from tagger.summary import format_table
    from triggerad import atomic
    from triggerad.cli import check_out
    from triggerad.errors import ConfigError
    from triggerad.generation.pythia import check_settings
    from triggerad.provenance import write_provenance

    cfg = load_config(args.config)
    events = cfg.output.events if args.events is None else args.events
    if events <= 0 or args.workers <= 0:
        raise ConfigError(
            f"--events and --workers must be positive, found {events!r}, {args.workers!r}"
        )
    check_out(args, COMMAND)
    check_settings(pythia_groups(cfg, str(args.config)), str(args.config))
    with atomic.atomic_dir(args.out) as tmp:
        summary = generate(cfg, events, tmp, seed=args.seed, workers=args.workers,
                           executor=args.executor, scheduler=args.scheduler,
                           progress=not args.quiet)
        write_provenance(tmp, COMMAND, cfg, {
            "config": str(args.config), "events": events, "seed": args.seed,
            "executor": summary["executor"], "workers": args.workers,
            "scheduler": args.scheduler,
        })
    print(format_table(summary))
    print(f"wall time {summary['wall_seconds']:.0f} s -> {args.out}", file=sys.stdout)
    return 0


def pythia_groups(cfg, where: str) -> dict[str, list[str]]:
    """Config key -> the Pythia settings of that sample (checked before any worker starts)."""
    from tagger.samples import samples

    groups = {"beam": [f"Beams:eCM = {cfg.beam.ecm}", *cfg.beam.settings]}
    for name, sample in samples(cfg, where).items():
        if sample.signal:
            settings = sample.signal.pythia_settings(cfg.ctau.range[0], "spectrum.slha")
            groups[f"signals.{name}"] = settings
        else:
            groups[f"processes.{name}"] = sample.settings
    return groups
