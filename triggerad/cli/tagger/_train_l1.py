"""``trigger-ad tagger train`` with an L1 tagger config (``kind: l1_llp_tagger``).

Same command and flags as the full tagger (:mod:`triggerad.cli.tagger.train`), dispatched on the
config's ``kind``: trains the quantized L1 tagger (:mod:`tagger.l1.train`) into a model folder
with its working point (``threshold.json``), ready for ``trigger-ad firmware``.
"""

from __future__ import annotations

from triggerad.cli import check_out
from triggerad.errors import ConfigError

COMMAND = "tagger train"


def run_l1(args, overrides: dict) -> int:
    """Train the L1 tagger of ``args.config`` with the flags' config ``overrides``
    (:func:`triggerad.cli.tagger.train.flag_overrides`) and print its summary."""
    from tagger.l1.train import load_config, train

    if args.no_da:
        raise ConfigError(f"--no-da: {args.config} is an L1 tagger config (kind l1_llp_tagger), "
                          "which has no domain adaptation; drop the flag")
    cfg = load_config(args.config, overrides)
    check_out(args, COMMAND)
    s = train(cfg, args.out, progress=not getattr(args, "quiet", False),
              extra={"config_file": str(args.config), "data": str(args.data),
                     "out": str(args.out)})
    wp = s["working_point"]
    print(f"trained l1_llp_tagger ({s['weight_bits']}-bit weights, {s['activation_bits']}-bit "
          f"activations, {s['macs']} MACs, weight sparsity {s['weight_sparsity']:.2f}) in "
          f"{s['epochs_run']} epochs ({s['seconds']:.0f} s): best epoch {s['best_epoch']}, "
          f"validation loss {s['val_loss']:.4g}\n"
          f"working point (threshold.json): logit_q > {wp['value']:.6g} for {wp['fpr']:g} udsg "
          f"mistag (validation: {wp['achieved_fpr']:.3g}), LLP efficiency {wp['efficiency']:.3f}"
          + (" (limited: few udsg jets)" if wp["limited"] else "")
          + f"\nmodel written to {args.out}/")
    return 0
