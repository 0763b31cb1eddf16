"""``trigger-ad tagger quickstart``: the LLP tagger chain, small, on built-in generated jets.

generate the small fast sample (tagger-generate-fast) and an independent one (next seed) for the
evaluation -> train the tagger with and without domain adaptation for a few epochs
(tagger-train-fast) -> evaluate the DA model against the one without on the independent sample
(report.md, report.json, plots) -> score its background file at c-tau 1 mm -> train the quantized
L1 tagger (tagger-l1-fast), emit its HLS project (firmware-l1) and print the C-simulation
agreement on up to :data:`L1_CSIM_EVENTS` validation jets. Each step is
the corresponding subcommand run in-process, so the quickstart exercises exactly what a user runs
by hand. About 10 minutes on 2 cores; the numbers are a working demonstration, not physics
results (small sample, few epochs; efficiencies at 1e-4 mistag are limited by the number of
background jets and flagged so in the report).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from triggerad.cli import add_command, positive_int
from triggerad.cli.quickstart import run_step

GENERATE_CONFIG = "tagger-generate-fast"
TRAIN_CONFIG = "tagger-train-fast"
L1_CONFIG, L1_FIRMWARE_CONFIG = "tagger-l1-fast", "firmware-l1"
#: Validation jets of the L1 tagger's C simulation (a few thousand: a small added time).
L1_CSIM_EVENTS = 5000
#: c-tau hypothesis (mm) of the scoring step.
SCORE_CTAU_MM = 1.0


def register(sub) -> None:
    """Add ``trigger-ad tagger quickstart`` to the tagger group's subparsers."""
    p = add_command(
        sub, "quickstart",
        "run the LLP tagger chain, small: generate, train with and without DA, evaluate, score, "
        "L1 tagger + its HLS project (~12 min on 2 cores)",
        "trigger-ad tagger quickstart --out llp_quickstart/\n"
        "trigger-ad tagger quickstart --out qs/ --epochs 4 --events 300   # smaller, faster",
        description=__doc__,
    )
    p.add_argument("--out", default="llp_quickstart", help="output folder")
    p.add_argument("--events", type=positive_int, default=None,
                   help="generated events per sample (default: the fast config's own)")
    p.add_argument("--epochs", type=positive_int, default=None,
                   help="training epochs (default: the fast training config's own, 8); more "
                   "than its class-only epochs (3), so that domain adaptation starts")
    p.add_argument("--seed", type=int, default=1, help="generation seed")
    p.add_argument("--workers", type=positive_int, default=2, help="generation worker processes")
    p.set_defaults(func=run)


def run(args) -> int:
    """Run the chain and print the key numbers and where everything is."""
    from tagger.train import load_config
    from triggerad.errors import ConfigError

    class_only = load_config(TRAIN_CONFIG).training.class_only_epochs
    if args.epochs is not None and args.epochs <= class_only:
        raise ConfigError(f"--epochs {args.epochs}: {TRAIN_CONFIG} trains the class branch alone "
                          f"for {class_only} epochs; use at least {class_only + 1} so that domain "
                          "adaptation starts")
    out = Path(args.out)
    data, test = out / "data", out / "data_eval"
    models, report = out / "models", out / "report"
    events = ["--events", str(args.events)] if args.events is not None else []
    epochs = ["--epochs", str(args.epochs)] if args.epochs is not None else []
    start = time.perf_counter()
    run_step("generate", ["tagger", "generate", GENERATE_CONFIG, "--out", str(data),
                       "--seed", str(args.seed), "--workers", str(args.workers), *events])
    run_step("generate (evaluation sample)",
             ["tagger", "generate", GENERATE_CONFIG, "--out", str(test), "--seed",
              str(args.seed + 1), "--workers", str(args.workers), *events])
    for name, flags in (("llp_da", []), ("llp_no_da", ["--no-da"])):
        run_step(f"train {name}", ["tagger", "train", TRAIN_CONFIG, "--data", str(data),
                                "--out", str(models / name), *epochs, *flags])
    run_step("evaluate", ["tagger", "evaluate", str(models / "llp_da"), "--data", str(test),
                       "--out", str(report), "--compare", str(models / "llp_no_da"),
                       "--no-progress"])
    run_step("score", ["tagger", "score", str(models / "llp_da"), str(test / "background.h5"),
                    "--ctau", f"{SCORE_CTAU_MM:g}", "--out", str(out / "scores"),
                    "--no-progress"])
    l1, hls = models / "l1_tagger", out / "hls_l1_tagger"
    run_step("train l1_tagger", ["tagger", "train", L1_CONFIG, "--data", str(data),
                                 "--out", str(l1)])
    run_step("firmware (L1 tagger)", ["firmware", str(l1), "--config", L1_FIRMWARE_CONFIG,
                                      "--out", str(hls), "--events", str(L1_CSIM_EVENTS)])
    rep = json.loads((report / "report.json").read_text())
    fw = json.loads((hls / "firmware_report.json").read_text())
    print(f"\ntagger quickstart finished in {time.perf_counter() - start:.0f} s. "
          f"Outputs in {out}/:")
    for path, what in ((data, "training jets (HDF5 + PFNano ROOT), summary.json"),
                       (test, "independent evaluation jets (next seed)"),
                       (models, "taggers with (llp_da) and without (llp_no_da) domain adaptation"),
                       (report, "evaluation report (report.md, report.json, plots)"),
                       (out / "scores", f"per-jet class probabilities at c-tau {SCORE_CTAU_MM:g} mm"),
                       (hls, "HLS project of the quantized L1 tagger (models/l1_tagger)")):
        print(f"  {path}/  {what}")
    da = rep["domain_adaptation"]
    for key, cost in da["auc_cost"].items():
        print(f"c-tau {key}: AUC cost of DA (LLP vs udsg) {cost['udsg']:+.4f}")
    for key, jsd in da["jsd"].items():
        print(f"c-tau {key}: JSD(P_max) with DA {jsd['with_da']:.4g}, without {jsd['without_da']:.4g}"
              " bits")
    print(f"L1 tagger firmware: C simulation vs the integer logit on {fw['n_events']} jets: tag "
          f"decision agreement {fw['decision_agreement']:.6f}, max logit diff "
          f"{fw['max_score_diff_lsb']:g} LSB; {fw['bit_widths']['total_macs']} MACs "
          f"({fw['bit_widths']['nonzero_macs']} non-zero), estimated "
          f"{fw['bit_widths']['est_dsp']} DSP")
    return 0
