"""``trigger-ad tagger tracks-quickstart``: the track-level LLP classification chain, small.

generate the fast track samples (tracks-fast) at mu = 0 and 60 -> train the MLP and the
Transformer at each mu on the truth labels, and at mu = 60 with CWoLa (signal fraction
cwola.fraction, 30 %, vs 0 %) -> evaluate every model against the truth and the pT-cut baseline
-> OUT/report.json with the AUC per model, pile-up and labelling. Each step is the corresponding
subcommand run in-process. A few minutes on 2 cores; the numbers are a working demonstration on
small samples, not physics results (docs/tracks.md has those).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from triggerad.cli import add_command, positive_int
from triggerad.cli.quickstart import run_step

CONFIG = "tracks-fast"
#: (pile-up mu, labels) of the trained models; both architectures each.
RUNS = ((0.0, "supervised"), (60.0, "supervised"), (60.0, "cwola"))


def register(sub) -> None:
    """Add ``trigger-ad tagger tracks-quickstart`` to the tagger group's subparsers."""
    p = add_command(
        sub, "tracks-quickstart",
        "run the track-level LLP classification chain, small: generate at mu 0 and 60, train "
        "MLP and Transformer (supervised, CWoLa), evaluate (~5 min on 2 cores)",
        "trigger-ad tagger tracks-quickstart --out tracks_quickstart/\n"
        "trigger-ad tagger tracks-quickstart --out qs/ --events 400 --epochs 4   # faster",
        description=__doc__,
    )
    p.add_argument("--out", default="tracks_quickstart", help="output folder")
    p.add_argument("--config", default=CONFIG, help="tracks config (YAML file or packaged name)")
    p.add_argument("--events", type=positive_int, default=None,
                   help="generated events per sample and mu (default: the config's own)")
    p.add_argument("--epochs", type=positive_int, default=None,
                   help="maximum training epochs (default: the config's own)")
    p.add_argument("--seed", type=int, default=1, help="generation seed")
    p.add_argument("--workers", type=positive_int, default=2, help="generation processes")
    p.set_defaults(func=run)


def run(args) -> int:
    """Run the chain, write OUT/report.json and print the AUC table."""
    from triggerad import atomic

    out = Path(args.out)
    data, models, report = out / "data", out / "models", out / "report"
    events = ["--events", str(args.events)] if args.events else []
    epochs = ["--epochs", str(args.epochs)] if args.epochs else []
    start = time.perf_counter()
    run_step("generate", ["tagger", "tracks-generate", args.config, "--out", str(data),
                          "--seed", str(args.seed), "--workers", str(args.workers), "--quiet",
                          *events])
    folders = []
    for mu, labels in RUNS:
        for arch in ("mlp", "transformer"):
            folder = models / f"{arch}_{labels}_mu{mu:g}"
            run_step(f"train {folder.name}", [
                "tagger", "tracks-train", args.config, "--data", str(data), "--mu", f"{mu:g}",
                "--model", arch, "--labels", labels, "--out", str(folder), "--quiet", *epochs])
            folders.append(str(folder))
    run_step("evaluate", ["tagger", "tracks-evaluate", *folders, "--data", str(data),
                          "--out", str(report)])
    full = json.loads((report / "report.json").read_text())
    auc = {name: {"mu": e["mu"], "architecture": e["architecture"],
                  "labelling": e["labelling"], "auc": e["auc"], "accuracy": e["accuracy"],
                  "best_accuracy": e["best_accuracy"],
                  "train_events_per_s": e["train_events_per_s"]}
           for name, e in full["models"].items()}
    summary = {"models": auc, "baseline": full["baseline"],
               "seconds": time.perf_counter() - start}
    atomic.write_json(out / "report.json", summary)
    print(f"\ntracks quickstart finished in {summary['seconds']:.0f} s. Outputs in {out}/: "
          "data/ (track samples), models/, report/ (report.md), report.json")
    for name, e in auc.items():
        print(f"  {name:<28} AUC {e['auc']:.3f}")
    for key, b in full["baseline"].items():
        print(f"  {'pT-sum cut ' + key:<28} AUC {b['sum_pt']['auc']:.3f}")
    return 0
