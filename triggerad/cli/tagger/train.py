"""``trigger-ad tagger train``: train the LLP jet tagger into a model folder.

``trigger-ad tagger train CONFIG --data DIR --out MODEL [--epochs N] [--no-da]`` trains the
c-tau-parametrised tagger (arXiv:1912.12238) on DIR/signal.h5 and DIR/background.h5 (the
``data.simulation`` files) and, with domain adaptation, DIR/shifted_sim.h5 (``data.domain``).
The files are read once and checked before training (schema, NaN/inf, empty classes, missing
domain sample: exit 2 with the file and what was found). MODEL holds ``artifact.json`` (input
schema, normalisation, class names, c-tau range, training-sample fingerprint), the weights,
TensorBoard ``logs/``, ``checkpoints/``, ``provenance.json`` and ``config.resolved.yaml``; it
appears only once training is complete. See docs/tagger.md, "Training".
"""

from __future__ import annotations

from triggerad.cli import add_command, add_out_option, check_out
from triggerad.errors import ConfigError

COMMAND = "tagger train"


def register(sub) -> None:
    """Add ``trigger-ad tagger train`` to the tagger group's subparsers."""
    p = add_command(
        sub, "train", "train the LLP jet tagger (optionally with domain adaptation)",
        "trigger-ad tagger train tagger-train-fast --data llp/ --out models/llp_tagger\n"
        "trigger-ad tagger train tagger-train-fast --data llp/ --out models/llp_noda --no-da\n"
        "trigger-ad tagger train configs/tagger-train.yaml --data llp_physics/ --out "
        "models/llp --epochs 60\n"
        "trigger-ad tagger train configs/tagger-l1.yaml --data llp/ --out models/l1_tagger   "
        "# quantized L1 tagger",
        description=__doc__,
    )
    p.add_argument("config", metavar="CONFIG",
                   help="training YAML file or packaged name (tagger-train, tagger-train-fast)")
    p.add_argument("--data", required=True, metavar="DIR",
                   help="sample folder of `trigger-ad tagger generate` (the data.simulation and "
                   "data.domain file names are relative to it)")
    add_out_option(p, "model folder to write", metavar="MODEL")
    p.add_argument("--epochs", type=int, default=None, metavar="N",
                   help="maximum epochs (both phases); overrides training.epochs")
    p.add_argument("--no-da", action="store_true",
                   help="no domain adaptation: class branch only, no shifted-simulation sample "
                   "needed")
    p.add_argument("--reader", default=None, choices=("auto", "jets", "pfnano"),
                   help="jet reader; overrides data.reader")
    p.set_defaults(func=run)


def flag_overrides(args) -> dict:
    """Config overrides of the flags every tagger config takes (``--data``, ``--reader``,
    ``--epochs``), checked: the same for the full and the L1 tagger."""
    from pathlib import Path

    if args.epochs is not None and args.epochs <= 0:
        raise ConfigError(f"--epochs: expected a positive integer, found {args.epochs!r}")
    if not Path(args.data).is_dir():
        raise ConfigError(f"--data {args.data}: not a folder; give the output folder of "
                          "`trigger-ad tagger generate`")
    overrides: dict = {"data": {"dir": str(args.data)}}
    if args.reader:
        overrides["data"]["reader"] = args.reader
    if args.epochs is not None:
        overrides["training"] = {"epochs": args.epochs}
    return overrides


def run(args) -> int:
    """Load the config, apply the flags, check the output folder, train, print a summary."""
    from tagger.l1.train import is_l1_config
    from tagger.train import load_config, train

    if is_l1_config(args.config):
        from triggerad.cli.tagger._train_l1 import run_l1

        return run_l1(args, flag_overrides(args))

    overrides = flag_overrides(args)
    training: dict = overrides.pop("training", {})
    if args.no_da:
        training["domain_adaptation"] = False
    if training:
        overrides["training"] = training
    cfg = load_config(args.config, overrides)
    check_out(args, COMMAND)
    summary = train(cfg, args.out, progress=not getattr(args, "quiet", False),
                    extra={"config_file": str(args.config), "data": str(args.data),
                           "out": str(args.out), "no_da": bool(args.no_da)})
    jets = summary["jets"]["train"]
    print(
        f"trained llp_tagger ({'with' if summary['domain_adaptation'] else 'without'} domain "
        f"adaptation) on {sum(v for k, v in jets.items() if k != 'unlabelled')} labelled jets "
        f"({', '.join(f'{k} {v}' for k, v in jets.items() if k != 'unlabelled')}), "
        f"{summary['epochs_run']} epochs in {summary['seconds']:.0f} s "
        f"({summary['train_jets_per_second']:.0f} jets/s): best epoch {summary['best_epoch']}: "
        f"validation class loss {summary['val_class_loss']:.4g}, accuracy "
        f"{summary['val_class_accuracy']:.3f}\nmodel written to {args.out}/")
    return 0
