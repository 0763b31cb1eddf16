"""``trigger-ad train``: train an anomaly-detection VAE and its quantized encoder into a model folder.

The config (a YAML file or a packaged name: ``train-hlf``, ``train-l1``, ``train-hlf-fast``,
``train-l1-fast``) has the sections ``data``, ``model``, ``training`` and ``quantization``. The
normalisation is fitted on the training split and saved with the model. The model folder holds
``artifact.json``, the Keras weights, TensorBoard ``logs/``, ``checkpoints/``, ``provenance.json``
and ``config.resolved.yaml``; it appears only once training is complete.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from triggerad.cli import add_command, add_out_option, check_out
from triggerad.errors import ConfigError

log = logging.getLogger(__name__)


def register(subparsers) -> None:
    """Add the ``train`` subcommand."""
    p = add_command(
        subparsers,
        "train",
        "train a VAE (HLF or L1) and its quantized QKeras encoder",
        "trigger-ad train train-hlf-fast --data quickstart/data --out models/hlf_vae\n"
        "trigger-ad train configs/train-l1.yaml --data cocktail/background.h5 --out models/l1 "
        "--epochs 50\n"
        "trigger-ad train train-hlf --data samples.yaml --out models/cms_hlf   # a sample list",
        description=__doc__,
    )
    p.add_argument("config", metavar="CONFIG",
                   help="training YAML file, or a packaged config name (e.g. train-hlf)")
    add_out_option(p, "model folder to write (default: models/<config name>)", required=False,
                   metavar="MODEL")
    p.add_argument("--data", nargs="+", default=None, metavar="DIR_OR_FILE",
                   help="background sample: generated-data folders (DIR/background.h5), files, "
                   "globs or sample lists (*.yaml: their is_signal: false samples); overrides "
                   "data.background")
    p.add_argument("--reader", default=None, help="reader name; overrides data.reader")
    p.add_argument("--epochs", type=int, default=None, metavar="N",
                   help="maximum training epochs; overrides training.epochs")
    p.set_defaults(func=run)


def run(args) -> int:
    """Load the config, apply the flags, train and print a summary."""
    if args.epochs is not None and args.epochs <= 0:
        raise ConfigError(f"--epochs: expected a positive integer, found {args.epochs!r}")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter
    from anomaly.train import TrainConfig, train
    from triggerad.config import load, read_yaml, resolve_config

    path = resolve_config(args.config)
    out = Path(args.out) if args.out else Path("models") / path.stem
    check_out(args, "train", out=out)
    if not read_yaml(path):
        raise ConfigError(f"{path}: the config is empty; expected the sections data, model, "
                          "training, quantization (start from a packaged one, e.g. train-l1-fast)")
    overrides: dict = {}
    if args.data:
        overrides["data"] = {"background": list(args.data)}
    if args.reader:
        overrides.setdefault("data", {})["reader"] = args.reader
    if args.epochs is not None:
        overrides["training"] = {"epochs": args.epochs}
    cfg = load(TrainConfig, path, overrides)
    summary = train(cfg, out, extra={"config_file": str(path), "out": str(out)})
    print(
        f"trained {summary['kind']} on {summary['events']['train']} events "
        f"({summary['epochs_run']} epochs, {summary['seconds']:.1f} s): "
        f"best epoch {summary['best_epoch']}: val loss {summary['val_loss']:.4g} "
        f"(nll {summary['val_nll']:.4g}, kl {summary['val_kl']:.4g}); quantized vs float sum mu^2 "
        "correlation "
        f"{summary['mu2_vs_mu2_q_correlation_val']:.4f}\nmodel written to {out}/"
    )
    return 0
