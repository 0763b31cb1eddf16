"""Accepted rate per lumi block with a fixed threshold and with the threshold controllers on a
generated stream that looks like an LHC fill (issue 16).

1. Generates (:mod:`triggerad.generation.fill`, config ``generate-fill``: W -> e/mu nu and
   Z -> ee/mumu, single-lepton trigger without isolation, pile-up from the minimum-bias library)
   three independent samples in one pool of ``--workers`` processes, each with its own seed:
   the **fill** (``--blocks`` lumi blocks, mu falling exponentially from ``--mu-start`` to
   ``--mu-end``, ``--events`` generated W per block), a **calibration fill** (``--calib-blocks``
   blocks over the same mu range, ``--calib-events`` per block) and a **training sample** at
   ``--mu-end``. Events are unweighted to unit weight (the controller counts events). The
   samples are written to ``OUT/samples`` and reused by a later run with the same settings.
2. Trains a small L1 VAE (``trigger-ad train train-l1-fast``) on the training sample and sets
   its threshold (``trigger-ad threshold --fpr F``) on its validation split, or reuses
   ``--model``. The threshold is right at the end of the fill: with it fixed the rate is far too
   high at the start.
3. Scores the calibration fill (stored threshold), fits the ``quantile`` rule's pile-up
   feed-forward on it (:func:`triggerad.stream.calibration.fit_feedforward`) and writes
   ``OUT/rate-control-calibrated.yaml`` (``configs/rate-control-pileup.yaml`` + the fit).
4. Scores the fill with ``trigger-ad score`` four times, in-process: fixed threshold, the PID
   controller (``rate-control``), the quantile rule without feed-forward
   (``rate-control-pileup``) and with it (the calibrated file).
5. Prints the table per lumi block (mean pile-up, rate / target of every run) and, per run, the
   fraction of blocks in the band, the overall rate / target and the RMS of rate / target - 1,
   over all blocks and without the first; and what a perfect controller gets from Poisson
   fluctuations alone.

Usage::

    python benchmarks/rate_control_pileup.py --out /tmp/rc_fill [--blocks 20] [--events 4800]
        [--mu-start 60] [--mu-end 20] [--calib-blocks 5] [--calib-events 500]
        [--train-events 2000] [--fpr 0.2] [--workers 2] [--job-size 1200] [--model MODEL]

The defaults give ~2400 unit-weight events per block (~45 % of the generated W/Z events pass the
trigger), ~800 CPU s of generation; results in docs/stream.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
RUNS = {
    "fixed": [],
    "pid": ["--rate-control", "rate-control"],
    "quantile": ["--rate-control", str(CONFIGS / "rate-control-pileup.yaml")],
    "quantile_ff": None,  # the calibrated file, set in main
}


def generate(args, work: Path) -> dict[str, list[Path]]:
    """Generate (or reuse) the fill, the calibration fill and the training sample."""
    from triggerad.executor import make_executor
    from triggerad.generation.config import load_config
    from triggerad.generation.fill import generate_fill, mu_schedule
    from triggerad.generation.run import default_executor

    settings = {k: getattr(args, k) for k in ("config", "blocks", "events", "mu_start", "mu_end",
                                             "calib_blocks", "calib_events", "train_events",
                                             "seed", "job_size")}
    samples, meta = work / "samples", work / "samples" / "meta.json"
    if meta.exists() and json.loads(meta.read_text())["settings"] == settings:
        return {k: [Path(p) for p in v] for k, v in json.loads(meta.read_text())["files"].items()}
    base = load_config(args.config)
    plan = {
        "fill": (mu_schedule(args.blocks, args.mu_start, args.mu_end), args.events, args.seed),
        "calibration": (mu_schedule(args.calib_blocks, args.mu_start, args.mu_end),
                        args.calib_events, args.seed + 1000),
        "train": (np.array([args.mu_end]), args.train_events, args.seed + 2000),
    }
    files, info = {}, {}
    t0 = time.perf_counter()
    with make_executor(default_executor(args.workers), workers=args.workers) as executor:
        for name, (mu, events, seed) in plan.items():
            t = time.perf_counter()
            fill = generate_fill(base, mu, events, seed=seed, job_size=args.job_size,
                                 workers=args.workers, executor=executor)
            paths = fill.write(samples / name, blocks_per_file=1 if name == "fill" else 100)
            files[name] = [str(p) for p in paths]
            info[name] = {"blocks": fill.table, "cpu_s": fill.cpu_seconds, "pileup": fill.pileup,
                          "wall_s": time.perf_counter() - t}
            print(f"generated {name}: {sum(r['events'] for r in fill.table)} events, "
                  f"{time.perf_counter() - t:.0f} s", flush=True)
    info["wall_s"] = time.perf_counter() - t0
    meta.write_text(json.dumps({"settings": settings, "files": files, "info": info}, indent=2,
                               default=float))
    return {k: [Path(p) for p in v] for k, v in files.items()}


def score(model: Path, files: list[Path], out: Path, score_name: str, extra: list[str]):
    """``trigger-ad score`` in-process; returns (summary, blocks table, score table)."""
    import pandas as pd

    from triggerad.cli import main as cli

    _check(cli(["-q", "score", str(model), *map(str, files), "--out", str(out), "--force",
                "--score", score_name, "--no-progress", *extra]), f"score {out.name}")
    parts = sorted((out / "scores").glob("part-*.parquet"))
    table = pd.concat(pd.read_parquet(p, columns=[score_name, "pileup"]) for p in parts)
    return (json.loads((out / "summary.json").read_text()), pd.read_csv(out / "blocks.csv"),
            table)


def calibrate(model: Path, threshold: dict, files: list[Path], work: Path) -> dict:
    """Fit the feed-forward on the calibration fill; write the calibrated rate-control file."""
    import yaml

    from triggerad.stream.calibration import fit_feedforward
    from triggerad.stream.config import control_from_file

    _, _, table = score(model, files, work / "score_calibration", threshold["score"], [])
    target = threshold["target_rate_hz"] / threshold["input_rate_hz"]
    config = control_from_file(CONFIGS / "rate-control-pileup.yaml")
    fit = fit_feedforward(table[threshold["score"]].to_numpy(), table["pileup"].to_numpy(),
                          threshold=threshold["value"], target_fraction=target, config=config)
    data = yaml.safe_load((CONFIGS / "rate-control-pileup.yaml").read_text())
    data["control"].update({k: v for k, v in fit.items() if k != "bins"})
    (work / "rate-control-calibrated.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return fit


def poisson_reference(events: np.ndarray, target: float, band, rng, trials: int = 2000) -> dict:
    """In-band fraction and RMS of rate/target - 1 of a perfect controller (Poisson only)."""
    k = rng.binomial(events[None, :], target, size=(trials, len(events)))
    ratio = k / (events[None, :] * target)
    in_band = (ratio >= band[0]) & (ratio <= band[1])
    return {"fraction_in_band": float(in_band.mean()),
            "rms_rate_over_target_minus_1": float(np.sqrt(((ratio - 1) ** 2).mean()))}


def figures(blocks, target: float, band) -> dict:
    """Band fraction, overall ratio and RMS over a block table."""
    ratio = blocks["accepted"] / blocks["events"] / target
    return {
        "blocks": len(blocks),
        "fraction_in_band": float(((ratio >= band[0]) & (ratio <= band[1])).mean()),
        "rate_over_target": float(blocks["accepted"].sum() / blocks["events"].sum() / target),
        "rms_rate_over_target_minus_1": float(np.sqrt(((ratio - 1) ** 2).mean())),
    }


def main(argv: list[str] | None = None) -> dict:
    """Generate, train, calibrate, score four times; print and return the figures."""
    import pandas as pd

    from triggerad.cli import main as cli

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="work folder (samples, model, score outputs)")
    p.add_argument("--config", default=str(CONFIGS / "generate-fill.yaml"))
    p.add_argument("--blocks", type=int, default=20)
    p.add_argument("--events", type=int, default=4800, help="generated W events per block")
    p.add_argument("--mu-start", type=float, default=60.0)
    p.add_argument("--mu-end", type=float, default=20.0)
    p.add_argument("--calib-blocks", type=int, default=5)
    p.add_argument("--calib-events", type=int, default=500)
    p.add_argument("--train-events", type=int, default=2000)
    p.add_argument("--fpr", type=float, default=0.2, help="target accepted fraction")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--job-size", type=int, default=1200)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--model", default=None, help="reuse this model folder (with threshold.json)")
    args = p.parse_args(argv)

    work = Path(args.out)
    work.mkdir(parents=True, exist_ok=True)
    timing, t0 = {}, time.perf_counter()
    files = generate(args, work)
    timing["generate_s"] = time.perf_counter() - t0

    t1 = time.perf_counter()
    model = Path(args.model) if args.model else work / "model"
    if args.model is None and not (model / "threshold.json").exists():
        _check(cli(["-q", "train", "train-l1-fast", "--data", str(files["train"][0]),
                    "--out", str(model), "--force"]), "train")
        _check(cli(["-q", "threshold", str(model), "--fpr", str(args.fpr)]), "threshold")
    threshold = json.loads((model / "threshold.json").read_text())
    timing["train_threshold_s"] = time.perf_counter() - t1
    fit = calibrate(model, threshold, files["calibration"], work)
    RUNS["quantile_ff"] = ["--rate-control", str(work / "rate-control-calibrated.yaml")]

    t2 = time.perf_counter()
    runs = {name: score(model, files["fill"], work / f"score_{name}", threshold["score"], extra)
            for name, extra in RUNS.items()}
    timing["score_s"] = time.perf_counter() - t2
    timing["total_s"] = time.perf_counter() - t0

    fixed = runs["fixed"][1]
    target = runs["fixed"][0]["target_rate_hz"] / runs["fixed"][0]["input_rate_hz"]
    band = runs["fixed"][0]["monitor"]["band"]
    table = pd.DataFrame({"lumi": fixed["lumi"], "events": fixed["events"],
                          "mean_pileup": fixed["mean_pileup"].round(1)})
    for name, (_, blocks, _) in runs.items():
        table[name] = blocks["accepted"] / blocks["events"] / target
    table["threshold_quantile_ff"] = runs["quantile_ff"][1]["threshold"]
    summary = {}
    for name, (s, blocks, _) in runs.items():
        summary[name] = {"all": figures(blocks, target, band),
                         "without_first": figures(blocks.iloc[1:], target, band),
                         "threshold_changes": s["controller"]["threshold_changes"]}
    summary["poisson_only"] = poisson_reference(fixed["events"].to_numpy(), target, band,
                                                np.random.default_rng(1))
    result = {"target_fraction": target, "band": band, "threshold": threshold["value"],
              "score": threshold["score"], "feedforward": fit, "timing_s": timing,
              "summary": summary, "blocks": table.to_dict(orient="records")}
    pd.set_option("display.width", 160)
    print(table.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    print()
    rows = [{"run": name, "scope": scope, **vals}
            for name, s in summary.items() if name != "poisson_only"
            for scope, vals in s.items() if scope != "threshold_changes"]
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    print(json.dumps({"poisson_only": summary["poisson_only"], "timing_s": timing,
                      "feedforward": {k: v for k, v in fit.items() if k != "bins"},
                      "threshold": threshold["value"], "target_fraction": target}, indent=2))
    (work / "rate_control_pileup.json").write_text(json.dumps(result, indent=2, default=float))
    return result


def _check(code: int, step: str) -> None:
    if code:
        sys.exit(f"trigger-ad {step} failed with exit code {code}")


if __name__ == "__main__":
    main()
