"""Overhead of the generation pipeline over bare Pythia, for one process, in the same run.

Times (a) bare ``pythia.next()`` per event and (b) our full pipeline per event (``nextBatch``,
event record to numpy, detector model, QCD model, trigger, EventBatch, HDF5 writing) with the same
Pythia settings, interleaved in chunks, and prints the ratio (b)/(a). Goal: <= 1.15. Process CPU
time is used (not wall time) so that other jobs on a shared machine do not distort the ratio;
Pythia's initialisation is excluded from both.

Usage::

    python benchmarks/generation_overhead.py [--config generate] [--process W] [--events 2000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from triggerad.generation import run as grun
from triggerad.generation.config import load_config
from triggerad.generation.pythia import make_pythia
from triggerad.io.adc2021 import write_h5


def bare(settings: list[str], seed: int, n: int) -> tuple[float, float]:
    """CPU seconds of (Pythia init, ``n`` events of bare ``pythia.next()``)."""
    start = time.process_time()
    pythia = make_pythia(settings, seed)
    init = time.process_time() - start
    start = time.process_time()
    done = 0
    while done < n:
        done += bool(pythia.next())
    return init, time.process_time() - start


def pipeline(job: grun.Job, outdir: Path) -> float:
    """CPU seconds of our full job (Pythia init included) and of writing its HDF5 file."""
    start = time.process_time()
    result = grun.run_job(job)
    write_h5(outdir / f"bench_{job.index}.h5", result.batch)
    return time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="generate")
    parser.add_argument("--process", default="W")
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--chunks", type=int, default=4)
    args = parser.parse_args()
    cfg = load_config(args.config)
    cfg.processes = {args.process: cfg.processes[args.process]}
    per_chunk = args.events // args.chunks
    cfg.output.job_size = per_chunk
    jobs = grun.make_jobs(cfg, per_chunk * args.chunks, seed=11)
    settings = grun.pythia_settings(cfg, cfg.processes[args.process])
    t_bare, t_ours = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for job in jobs:
            init, loop = bare(settings, 1000 + job.index, job.n_events)
            t_bare.append(loop)
            t_ours.append(pipeline(job, Path(tmp)) - init)  # same init cost in both
    n = per_chunk * args.chunks
    bare_rate, ours_rate = n / sum(t_bare), n / sum(t_ours)
    ratio = sum(t_ours) / sum(t_bare)
    print(f"process {args.process} ({args.config}), {n} events in {args.chunks} chunks")
    print(f"bare pythia.next():  {bare_rate:8.1f} events per CPU second")
    print(f"full pipeline:       {ours_rate:8.1f} events per CPU second")
    print(f"per-chunk ratios:    {np.round(np.array(t_ours) / np.array(t_bare), 3).tolist()}")
    print(f"overhead ratio (pipeline / bare) = {ratio:.3f}  (goal <= 1.15)")


if __name__ == "__main__":
    main()
