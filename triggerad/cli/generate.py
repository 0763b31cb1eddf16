"""``trigger-ad generate``: Pythia 8 -> parametric detector -> single-lepton trigger -> cocktail."""

from __future__ import annotations

import os
import sys

from triggerad.cli import (
    add_command,
    add_executor_options,
    add_out_option,
    check_out,
    positive_int,
)


def register(subparsers) -> None:
    """Add the ``generate`` subcommand."""
    parser = add_command(
        subparsers, "generate",
        "generate the SM single-lepton cocktail and the BSM benchmarks with Pythia 8",
        example="trigger-ad generate configs/generate.yaml --events 10000 --out cocktail/\n"
                "trigger-ad generate generate-fast --events 2000 --out /tmp/small --workers 2\n"
                "trigger-ad generate generate-pileup --events 5000 --out /tmp/pu --workers 2\n"
                "trigger-ad generate generate --out big/ --executor dask --scheduler tcp://host:8786",
        description="Generate every process of CONFIG with Pythia 8 (pp, 13 TeV), apply the "
        "parametric trigger-level detector and the single-lepton trigger, and write "
        "DIR/background.{h5,root} (SM cocktail, per-event process label and weight), "
        "DIR/signal_<name>.{h5,root} and DIR/summary.json. See docs/generation.md.",
    )
    add_generation_options(parser, "generate, generate-fast, generate-pileup", "output folder")
    parser.set_defaults(func=run)


def add_generation_options(parser, configs: str, out_help: str) -> None:
    """CONFIG, --events, --out, --seed and --workers of the generation commands."""
    parser.add_argument("config", help=f"generation config: a YAML file or a packaged name "
                        f"({configs})")
    parser.add_argument("--events", type=positive_int, default=None,
                        help="generated events per process, times each process' events_fraction "
                        "(default: the config's output.events)")
    add_out_option(parser, out_help)
    parser.add_argument("--seed", type=int, default=1,
                        help="master seed (same seed -> bit-identical output for any --executor "
                        "and --workers)")
    add_executor_options(parser, default=None, workers=os.cpu_count() or 1,
                         default_text="; default: process if --workers > 1, else local")


def run(args) -> int:
    """Generate, write the outputs and provenance, print the summary table."""
    from triggerad.errors import ConfigError
    from triggerad.generation.cocktail import format_table
    from triggerad.generation.config import load_config
    from triggerad.generation.pythia import check_settings
    from triggerad.generation.run import generate, pythia_settings
    from triggerad.generation.validation import format_validation
    from triggerad.provenance import write_provenance

    cfg = load_config(args.config)
    events = cfg.output.events if args.events is None else args.events
    if events <= 0 or args.workers <= 0:
        raise ConfigError(
            f"--events and --workers must be positive, found {events!r}, {args.workers!r}"
        )
    check_out(args, "generate")
    groups = {f"processes.{name}": pythia_settings(cfg, proc)
              for name, proc in cfg.processes.items()}
    if cfg.pileup.settings:
        groups["pileup"] = [f"Beams:eCM = {cfg.beam.ecm}", *cfg.pileup.settings]
    check_settings(groups, str(args.config))
    summary = generate(cfg, events, args.out, seed=args.seed, workers=args.workers,
                       executor=args.executor, scheduler=args.scheduler)
    write_provenance(args.out, "generate", cfg, {
        "config": str(args.config), "events": events, "seed": args.seed,
        "executor": summary["executor"], "workers": args.workers, "scheduler": args.scheduler,
    })
    print(format_table(summary["processes"], summary["published_comparison"]))
    print("\nValidation (also in summary.json and validation.md):")
    print(format_validation(summary["validation"]))
    print(f"wall time {summary['wall_seconds']:.0f} s; "
          f"{summary['background_events']} background events -> {args.out}", file=sys.stdout)
    return 0
