"""``trigger-ad tagger tracks-train``: train a track-level LLP event classifier."""

from __future__ import annotations

from triggerad.cli import add_command, add_out_option, check_out, positive_int
from triggerad.cli.tagger import TRACKS_CONFIGS

COMMAND = "tagger tracks-train"

DESCRIPTION = """Train a per-track MLP with mean pooling (--model mlp) or a Transformer encoder
(--model transformer) on the track sample of pile-up --mu in DIR (trigger-ad tagger
tracks-generate). --labels supervised trains on the truth labels; --labels cwola on two mixed
samples with signal fractions --fraction (default cwola.fraction) and cwola.reference_fraction,
labelled by sample membership only (as on data). The events are split train/validation/test
(training section of CONFIG); the test events are left for tracks-evaluate. MODEL (kind
track_classifier) holds artifact.json, the weights, provenance.json and config.resolved.yaml; it
appears only once training is complete. See docs/tracks.md."""

EXAMPLE = """trigger-ad tagger tracks-train tracks-fast --data tracks/ --mu 60 --model transformer --out models/trf_mu60
trigger-ad tagger tracks-train tracks-fast --data tracks/ --mu 60 --model mlp --labels cwola --fraction 0.1 --out models/mlp_cwola10
trigger-ad tagger tracks-train tracks --data mu60/ --model mlp --schedule cosine --max-train-events 4000 --out models/mlp_4k"""


def register(sub) -> None:
    """Add ``trigger-ad tagger tracks-train`` to the tagger group's subparsers."""
    p = add_command(sub, "tracks-train", "train a track-level LLP event classifier (MLP or "
                    "Transformer; supervised or CWoLa)", EXAMPLE, DESCRIPTION)
    p.add_argument("config", metavar="CONFIG",
                   help=f"tracks YAML file or packaged name ({', '.join(TRACKS_CONFIGS)})")
    p.add_argument("--data", required=True, metavar="DIR",
                   help="output folder of `trigger-ad tagger tracks-generate` (or one .npz)")
    p.add_argument("--mu", type=float, default=60.0, help="pile-up mu of the sample file")
    p.add_argument("--model", choices=("mlp", "transformer"), required=True,
                   help="network architecture")
    p.add_argument("--labels", choices=("supervised", "cwola"), default="supervised",
                   help="truth labels, or the membership of two mixed samples")
    p.add_argument("--fraction", type=float, default=None,
                   help="CWoLa: signal fraction of mixture 1 (default: cwola.fraction)")
    p.add_argument("--epochs", type=positive_int, default=None,
                   help="maximum epochs (default: training.epochs)")
    p.add_argument("--schedule", choices=("constant", "cosine"), default=None,
                   help="learning-rate schedule (default: training.schedule)")
    p.add_argument("--max-train-events", type=positive_int, default=None, metavar="N",
                   help="train on the first N events of the training split only "
                   "(training.max_train_events; validation and test events unchanged)")
    add_out_option(p, "model folder to write", metavar="MODEL")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args) -> int:
    """Load the config and sample, train, print the summary."""
    from tagger.tracks.config import load_config
    from tagger.tracks.data import read, sample_path
    from tagger.tracks.train import train
    from triggerad.errors import ConfigError

    if args.fraction is not None and args.labels != "cwola":
        raise ConfigError(f"--fraction {args.fraction!r} applies to --labels cwola only")
    training = {k: v for k, v in (("epochs", args.epochs),
                                  ("max_train_events", args.max_train_events),
                                  ("schedule", args.schedule)) if v}
    overrides = {"training": training} if training else None
    cfg = load_config(args.config, overrides)
    sample = read(sample_path(args.data, args.mu))
    check_out(args, COMMAND)
    s = train(cfg, sample, args.out, architecture=args.model, labelling=args.labels,
              fraction=args.fraction, progress=not args.quiet)
    print(f"trained {args.model} ({args.labels}) at mu {sample.mu:g} on {s['train_events']} "
          f"events, {s['epochs_run']} epochs in {s['seconds']:.0f} s "
          f"({s['train_events_per_s']:.0f} events/s): best epoch {s['best_epoch']}, validation "
          f"loss {min(s['val_loss']):.4g}, accuracy {s['val_accuracy']:.3f}"
          + (" (mixture labels)" if args.labels == "cwola" else "")
          + f"\nmodel written to {args.out}/")
    return 0
