"""Accepted rate per lumi block with and without the threshold controller on a generated stream
whose pile-up falls over a fill (issue 6).

1. Generates, with the project's generator (``triggerad.generation``, config ``generate-fast``:
   MPI off for the hard process; the pile-up overlay always has MPI on), W -> l nu and
   Z/gamma* -> l l through the detector model and the single-lepton trigger at several pile-up
   values (``--mu 50 40 30 20``, one "step" each, in time order), plus an independent training
   sample at the lowest pile-up. All jobs of all steps run in one pool of ``--workers``
   processes.
2. Turns each step into a data-like stream of unit-weight events (hit-or-miss unweighting with the
   generator's sigma / N weights, see below), cuts it into ``--blocks-per-step`` lumi blocks
   (``EventBatch.lumi`` increasing along the fill, one run), and writes one ADC2021 HDF5 file per
   step with :func:`triggerad.io.adc2021.write_h5`.
3. Trains a small L1 VAE (``trigger-ad train train-l1-fast``) on the lowest-pile-up sample, sets
   the threshold (``trigger-ad threshold --fpr F``) on its validation split, or reuses a model
   (``--model``), then runs ``trigger-ad score`` on the stream twice, with the stored threshold and
   with ``--rate-control rate-control``, in-process via :func:`triggerad.cli.main`.
4. Prints a table per lumi block (mean pile-up, accepted fraction fixed vs controlled, threshold)
   and, for both runs, the fraction of blocks inside the band, the overall rate / target and the
   RMS of rate / target - 1, and the same figures a perfect controller would get from Poisson
   fluctuations alone (blocks are small).

Why unweighted: the controller and the monitor count events per block (the rate of a block is
input rate x accepted / events), as they must for real data, where every event has weight 1.
The generator's events carry sigma x efficiency / N weights that differ between processes, so a
weighted cocktail's event counts are not its rate. The stream is therefore unweighted first (each
triggered event kept with probability weight / max weight, then given weight 1), after which the
counted fraction *is* the rate fraction, and the weighted fraction of the score outputs
(``accepted_fraction_weighted``) equals the unweighted one (printed as a check). QCD is left out:
its events carry per-event fake / forced-decay weights spread over orders of magnitude, so
unweighting would throw most of the expensive pile-up events away.

Why train at the lowest pile-up: it is the cheapest sample (cost ~ mu per event) so the training
and validation splits are largest for the budget, and it is independent of the stream (its own
seed). The threshold is then right at the end of the fill and the fixed-threshold rate is too high
at the start, where pile-up makes events look more anomalous: the controller has to raise the
threshold first and lower it as pile-up falls.

Usage::

    python benchmarks/rate_control_pileup.py --out /tmp/rc_pu [--mu 50 40 30 20] [--events 1400]
        [--train-events 2500] [--blocks-per-step 3] [--fpr 0.1] [--workers 2] [--model MODEL]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

#: Generated Z events per generated W event: sigma(Z, m > 50, -> ll) / sigma(W -> l nu) ~ 0.1,
#: so both processes have about the same weight per event and unweighting loses little.
Z_FRACTION = 0.1


def step_config(base, mu: float, tag: str, events_fraction: dict[str, float], job_size: int):
    """Generation config of one step: W and Z renamed ``W@tag``/``Z@tag`` (unique job names)."""
    cfg = copy.deepcopy(base)
    cfg.processes = {}
    for name, fraction in events_fraction.items():
        proc = copy.deepcopy(base.processes[name])
        proc.group = name
        proc.events_fraction = fraction
        cfg.processes[f"{name}@{tag}"] = proc
    cfg.pileup.mu = float(mu)
    cfg.output.job_size = job_size
    cfg.output.batch_size = min(cfg.output.batch_size, job_size)
    return cfg


def unweight(batch, rng: np.random.Generator, w_ref: float):
    """Hit-or-miss: keep each event with probability min(1, w / w_ref), give it weight 1."""
    keep = rng.random(len(batch)) < np.minimum(1.0, batch.weight / w_ref)
    out = batch.take(np.flatnonzero(keep))
    out.weight = np.ones(len(out))
    return out, float(np.mean(batch.weight > w_ref))


def poisson_reference(events: np.ndarray, target: float, band, rng, trials: int = 2000) -> dict:
    """In-band fraction and RMS of rate/target - 1 of a perfect controller (Poisson only)."""
    k = rng.binomial(events[None, :], target, size=(trials, len(events)))
    ratio = k / (events[None, :] * target)
    in_band = (ratio >= band[0]) & (ratio <= band[1])
    return {"fraction_in_band": float(in_band.mean()),
            "rms_rate_over_target_minus_1": float(np.sqrt(((ratio - 1) ** 2).mean()))}


def main(argv: list[str] | None = None) -> dict:
    """Generate, train, score twice; print and return the figures."""
    import pandas as pd

    from triggerad.cli import main as cli
    from triggerad.executor import make_executor
    from triggerad.generation.config import load_config
    from triggerad.generation.run import background, combine, default_executor, execute, make_jobs
    from triggerad.io.adc2021 import write_h5

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="work folder (stream, model, score outputs)")
    p.add_argument("--mu", type=float, nargs="+", default=[50, 40, 30, 20],
                   help="pile-up of each step, in time order")
    p.add_argument("--events", type=int, default=1400, help="generated W events per step")
    p.add_argument("--train-events", type=int, default=2500,
                   help="generated W events of the training sample (lowest pile-up)")
    p.add_argument("--blocks-per-step", type=int, default=3)
    p.add_argument("--fpr", type=float, default=0.1, help="target accepted fraction")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--job-size", type=int, default=500)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--config", default="generate-fast", help="generation config")
    p.add_argument("--rate-control", default="rate-control", help="controller config")
    p.add_argument("--model", default=None,
                   help="reuse this model folder (with threshold.json): no training sample")
    args = p.parse_args(argv)

    work = Path(args.out)
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    timing = {}
    base = load_config(args.config)
    fractions = {"W": 1.0, "Z": Z_FRACTION}

    # --- 1. generation: every step (and the training sample) in one pool --------------------
    steps = [(f"mu{mu:g}", mu, step_config(base, mu, f"mu{mu:g}", fractions, args.job_size))
             for mu in args.mu]
    train_mu = min(args.mu)
    train_cfg = step_config(base, train_mu, "train", fractions, args.job_size)
    jobs = [j for _, _, cfg in steps for j in make_jobs(cfg, args.events, args.seed)]
    if args.model is None:
        jobs += make_jobs(train_cfg, args.train_events, args.seed + 1)
    # longest jobs (highest pile-up) first, for the load balance of the pool
    jobs.sort(key=lambda j: -j.n_events * (1 + j.config.pileup.mu))
    with make_executor(default_executor(args.workers), workers=args.workers) as executor:
        results = execute(jobs, executor, progress=False)
    timing["generate_s"] = time.perf_counter() - t0
    cpu = sum(r.cpu_seconds for r in results)

    def sample(cfg, seed):
        mine = [r for r in results if r.name in cfg.processes]
        batches, procs = combine(mine, cfg)
        return background(batches, cfg, seed), procs

    generated = [(tag, mu, *sample(cfg, args.seed + i)) for i, (tag, mu, cfg) in enumerate(steps)]
    w_ref = max(float(b.weight.max()) for _, _, b, _ in generated)
    rng = np.random.default_rng(args.seed)
    files, lumi, gen_table = [], 1, []
    for tag, mu, batch, procs in generated:
        stream, over = unweight(batch, rng, w_ref)
        n = len(stream)
        stream.run = np.ones(n, dtype=np.int64)
        stream.lumi = lumi + (np.arange(n) * args.blocks_per_step // max(n, 1)).astype(np.int64)
        stream.event = np.arange(n, dtype=np.int64) + 1_000_000 * lumi
        lumi += args.blocks_per_step
        path = work / f"stream_{len(files):02d}_{tag}.h5"
        write_h5(path, stream)
        files.append(path)
        gen_table.append({
            "step": tag, "mu": mu, "triggered": len(batch), "unit_weight_events": n,
            "W": int(np.sum(stream.process == "W")), "Z": int(np.sum(stream.process == "Z")),
            "mean_pileup": float(stream.pileup.mean()) if n else 0.0,
            "trigger_eff_W": procs[f"W@{tag}"]["trigger_efficiency"],
            "events_per_cpu_s_W": procs[f"W@{tag}"]["events_per_cpu_s"],
            "over_weight_fraction": over,
        })

    # --- 2. model and threshold ---------------------------------------------------------------
    t1 = time.perf_counter()
    if args.model is None:
        train_batch, _ = sample(train_cfg, args.seed + 100)
        train_w_ref = float(train_batch.weight.max())
        train_batch, _ = unweight(train_batch, rng, train_w_ref)
        train_file = work / f"train_mu{train_mu:g}.h5"
        write_h5(train_file, train_batch)
        model = work / "model"
        _check(cli(["-q", "train", "train-l1-fast", "--data", str(train_file),
                    "--out", str(model)]), "train")
        _check(cli(["-q", "threshold", str(model), "--fpr", str(args.fpr)]), "threshold")
        timing["train_threshold_s"] = time.perf_counter() - t1
        n_train = len(train_batch)
    else:
        model = Path(args.model)
        n_train = None
    threshold = json.loads((model / "threshold.json").read_text())

    # --- 3. score the stream twice -------------------------------------------------------------
    t2 = time.perf_counter()
    runs = {}
    for name, extra in (("fixed", []), ("controlled", ["--rate-control", args.rate_control])):
        out = work / f"score_{name}"
        _check(cli(["-q", "score", str(model), *map(str, files), "--out", str(out),
                    "--score", threshold["score"], "--no-progress", *extra]), f"score {name}")
        runs[name] = (json.loads((out / "summary.json").read_text()),
                      pd.read_csv(out / "blocks.csv"))
    timing["score_s"] = time.perf_counter() - t2
    timing["total_s"] = time.perf_counter() - t0

    # --- 4. table and summary ------------------------------------------------------------------
    target_fraction = runs["fixed"][0]["target_rate_hz"] / runs["fixed"][0]["input_rate_hz"]
    fixed, ctrl = runs["fixed"][1], runs["controlled"][1]
    band = runs["fixed"][0]["monitor"]["band"]
    table = pd.DataFrame({
        "lumi": fixed["lumi"], "events": fixed["events"],
        "mean_pileup": fixed["mean_pileup"].round(1),
        "frac_fixed": fixed["accepted"] / fixed["events"],
        "frac_ctrl": ctrl["accepted"] / ctrl["events"],
        "ratio_fixed": fixed["accepted"] / fixed["events"] / target_fraction,
        "ratio_ctrl": ctrl["accepted"] / ctrl["events"] / target_fraction,
        "threshold_ctrl": ctrl["threshold"],
    })
    summary = {}
    for name, (s, blocks) in runs.items():
        ratio = blocks["accepted"] / blocks["events"] / target_fraction
        summary[name] = {
            "blocks": len(blocks),
            "fraction_in_band": s["monitor"]["fraction_blocks_in_band"],
            "blocks_flagged": s["monitor"]["blocks_flagged"],
            "rate_over_target": s["accepted_fraction"] / target_fraction,
            "rate_over_target_weighted": s["accepted_fraction_weighted"] / target_fraction,
            "rms_rate_over_target_minus_1": float(np.sqrt(((ratio - 1) ** 2).mean())),
            "rate_over_target_min": float(ratio.min()),
            "rate_over_target_max": float(ratio.max()),
            "threshold_changes": s["controller"]["threshold_changes"],
            "final_threshold": s["controller"]["final_threshold"],
        }
    summary["poisson_only"] = poisson_reference(fixed["events"].to_numpy(), target_fraction,
                                                band, np.random.default_rng(1))
    result = {
        "mu_steps": args.mu, "train_mu": train_mu if args.model is None else None,
        "train_events": n_train, "fpr": target_fraction, "band": band,
        "threshold": threshold["value"], "score": threshold["score"],
        "generation": gen_table, "generation_cpu_s": cpu, "timing_s": timing,
        "summary": summary, "blocks": table.to_dict(orient="records"),
    }
    pd.set_option("display.width", 160)
    print(pd.DataFrame(gen_table).to_string(index=False, float_format=lambda x: f"{x:.4g}"))
    print()
    print(table.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    print()
    print(json.dumps({"summary": summary, "timing_s": timing, "generation_cpu_s": cpu,
                      "threshold": threshold["value"], "target_fraction": target_fraction},
                     indent=2))
    (work / "rate_control_pileup.json").write_text(json.dumps(result, indent=2, default=float))
    return result


def _check(code: int, step: str) -> None:
    if code:
        sys.exit(f"trigger-ad {step} failed with exit code {code}")


if __name__ == "__main__":
    main()
