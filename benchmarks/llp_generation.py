"""Throughput of the LLP-sample pipeline (jets per CPU second) and its cost over bare Pythia.

For one sample of a ``tagger generate`` config, times in the same run, interleaved in chunks:
(a) bare ``pythia.next()`` per event with the sample's Pythia settings and (b) the full job of
``trigger-ad tagger generate`` (``nextBatch`` with vertices and history, truth origins and
generator jets, tracks, neutral candidates, vertices, jets, PFNano record, tagger inputs).
Prints jets per CPU second of (b) and the ratio (b)/(a). Process CPU time is used so that other
jobs on a shared machine do not distort it; Pythia's initialisation is excluded from both.

Usage::

    python benchmarks/llp_generation.py [--config tagger-generate-fast] [--sample QCD]
                                        [--events 2000] [--chunks 4]
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import numpy as np
from generation_overhead import bare

from tagger.generate import run_jet_job
from tagger.samples import load_config, samples
from triggerad.generation import run as grun


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="tagger-generate-fast")
    parser.add_argument("--sample", default="QCD")
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--chunks", type=int, default=4)
    args = parser.parse_args()
    cfg = load_config(args.config)
    sample = dataclasses.replace(samples(cfg)[args.sample], events_fraction=1.0)
    per_chunk = args.events // args.chunks
    cfg.output.job_size = per_chunk
    jobs = grun.make_jobs(cfg, per_chunk * args.chunks, seed=11,
                          processes={args.sample: sample})
    settings = [f"Beams:eCM = {cfg.beam.ecm}", *cfg.beam.settings]
    if sample.signal is not None:
        with tempfile.TemporaryDirectory() as tmp:
            slha = Path(tmp) / "s.slha"
            slha.write_text(sample.signal.slha())
            settings += sample.signal.pythia_settings(1.0, str(slha))
            return _run(args, jobs, settings)
    settings += sample.settings
    return _run(args, jobs, settings)


def _run(args, jobs, settings) -> None:
    t_bare, t_ours, jets = [], [], 0
    for job in jobs:
        init, loop = bare(settings, 1000 + job.index, job.n_events)
        t_bare.append(loop)
        start = time.process_time()
        result = run_jet_job(job)
        t_ours.append(time.process_time() - start - init)  # same init cost in both
        jets += len(result.batch)
    n = sum(j.n_events for j in jobs)
    print(f"sample {args.sample} ({args.config}), {n} events in {len(jobs)} chunks, {jets} jets")
    print(f"bare pythia.next():  {n / sum(t_bare):8.1f} events per CPU second")
    print(f"full pipeline:       {n / sum(t_ours):8.1f} events, {jets / sum(t_ours):8.1f} jets "
          f"per CPU second")
    print(f"per-chunk ratios:    {np.round(np.array(t_ours) / np.array(t_bare), 3).tolist()}")
    print(f"cost ratio (pipeline / bare Pythia) = {sum(t_ours) / sum(t_bare):.3f}")


if __name__ == "__main__":
    main()
