"""Effect of the pile-up route on the HLF VAE score: library vs full overlay on the same events.

1. ``trigger-ad generate`` of the W and Z processes of ``generate-pileup`` (mu = ``--mu``) twice
   with the same seed (so the same hard events): pile-up from full ``overlay`` and from the
   ``library``; the generation CPU time of both is printed (ratio in the same run);
2. an HLF VAE (``train-hlf-fast``, ``--epochs``) trained on a third, independent library sample
   (another seed);
3. its default score on both samples' triggered events: two-sample KS (statistic, p-value) and
   the HLF features' KS, and the events both samples triggered.

Usage::

    python benchmarks/pileup_vae.py --out /tmp/pu_vae [--events 1500] [--mu 20] [--workers 2]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
from scipy import stats

from triggerad.generation.config import load_config
from triggerad.generation.run import generate


def make_sample(cfg, route: str, events: int, out: Path, seed: int, workers: int) -> dict:
    """Generate one sample with pile-up ``route``; its summary (reused if already there)."""
    summary_file = out / "summary.json"
    if summary_file.exists():
        return json.loads(summary_file.read_text())
    run_cfg = dataclasses.replace(cfg, pileup=dataclasses.replace(cfg.pileup, route=route))
    start = time.perf_counter()
    summary = generate(run_cfg, events, out, seed=seed, workers=workers, progress=True)
    summary["bench_wall_s"] = time.perf_counter() - start
    summary_file.write_text(json.dumps(summary, default=float))
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--events", type=int, default=1500, help="generated events per process")
    parser.add_argument("--mu", type=float, default=20.0)
    parser.add_argument("--pool-size", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()

    from triggerad.cli import main as cli
    from triggerad.io.adc2021 import Adc2021Reader
    from triggerad.models import load_model

    cfg = load_config("generate-pileup")
    cfg.processes = {k: v for k, v in cfg.processes.items() if k in ("W", "Z")}
    cfg.output.formats = ["h5"]
    cfg.pileup = dataclasses.replace(cfg.pileup, mu=args.mu, pool_size=args.pool_size,
                                     cache_dir=str(args.out / "cache"), seed=args.seed)
    runs = {}
    for route in ("overlay", "library"):
        runs[route] = make_sample(cfg, route, args.events, args.out / route, args.seed,
                                  args.workers)
    train_dir = args.out / "train"
    make_sample(cfg, "library", 2 * args.events, train_dir, args.seed + 100, args.workers)
    model_dir = args.out / "model"
    if not (model_dir / "artifact.json").exists():
        assert cli(["-q", "train", "train-hlf-fast", "--data", str(train_dir), "--out",
                    str(model_dir), "--epochs", str(args.epochs)]) == 0
    model = load_model(model_dir)
    score_name = model.default_score
    scores, batches = {}, {}
    for route in runs:
        batch = Adc2021Reader().read(args.out / route / "background.h5")
        batches[route] = batch
        scores[route] = np.asarray(model.score(model.inputs(batch))[score_name], float)

    print(f"\nW + Z, {args.events} generated events per process, mu = {args.mu:g}, seed "
          f"{args.seed}; pool {args.pool_size} events")
    print("| route | CPU s of jobs | x overlay | triggered events | reuse factor |")
    print("|---|--:|--:|--:|--:|")
    cpu = {r: sum(p["generated"] / p["events_per_cpu_s"] for p in s["processes"].values())
           for r, s in runs.items()}
    for route, s in runs.items():
        print(f"| {route} | {cpu[route]:.0f} | {cpu['overlay'] / cpu[route]:.1f} "
              f"| {s['background_events']} | {s['pileup'].get('reuse_factor', float('nan')):.2f} |")
    a, b = scores["overlay"], scores["library"]
    ks = stats.ks_2samp(a, b)
    print(f"\nVAE score {score_name!r} (model trained on an independent library sample): "
          f"KS {ks.statistic:.3f} (p = {ks.pvalue:.2f}), n = {len(a)} / {len(b)}; "
          f"median {np.median(a):.3g} / {np.median(b):.3g}")
    from anomaly.features import feature_frame

    fa, fb = feature_frame(batches["overlay"]), feature_frame(batches["library"])
    cells = []
    for col in fa.columns:
        if col not in ("event", "process", "weight") and fa[col].nunique() > 1:
            r = stats.ks_2samp(fa[col], fb[col])
            cells.append(f"{col} {r.statistic:.3f} ({r.pvalue:.2f})")
    print("HLF features KS (p): " + ", ".join(cells))
    result = {"score": score_name, "ks": ks.statistic, "p": ks.pvalue, "cpu_s": cpu,
              "n": [len(a), len(b)]}
    (args.out / "pileup_vae.json").write_text(json.dumps(result, indent=2, default=float))


if __name__ == "__main__":
    main()
