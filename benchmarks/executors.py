"""Cost of the executor layer: the same generation jobs on every executor, in the same run.

Runs the jobs of a small generation (``generate-fast``, a few processes) with (a) a bare
``concurrent.futures.ProcessPoolExecutor`` (spawn), as ``trigger-ad generate`` did before the
executor layer, as the baseline, then with ``local``, ``process`` and ``dask`` (a local cluster of
worker processes) from :mod:`triggerad.executor`, and prints each wall time over the baseline's,
plus whether the triggered events are identical to the baseline's. The executors alternate over
``--repeat`` rounds so that load from other jobs on a shared machine hits them alike; ``local``
runs on one core, so its ratio is about the number of workers.

Usage::

    python benchmarks/executors.py [--events 400] [--workers 2] [--repeat 2]
"""

from __future__ import annotations

import argparse
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from triggerad.executor import make_executor
from triggerad.generation import run as grun
from triggerad.generation.config import load_config

PROCESSES = ("W", "Z", "ttbar", "A_4l")


def bare_pool(jobs: list[grun.Job], workers: int) -> list[grun.JobResult]:
    """The jobs on a bare spawn ProcessPoolExecutor (the baseline), in (name, index) order."""
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        return sorted(pool.map(grun.run_job, jobs), key=lambda r: (r.name, r.index))


def on_executor(kind: str, jobs: list[grun.Job], workers: int) -> list[grun.JobResult]:
    """The jobs on executor ``kind`` (its start-up and shut-down included)."""
    with make_executor(kind, workers=workers) as executor:
        return grun.execute(jobs, executor, progress=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=400, help="generated events per process")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    cfg = load_config("generate-fast")
    cfg.processes = {name: cfg.processes[name] for name in PROCESSES}
    cfg.output.job_size = max(50, args.events // 2)
    jobs = grun.make_jobs(cfg, args.events, seed=5)
    runs = {"bare pool": lambda: bare_pool(jobs, args.workers)}
    runs.update({kind: (lambda kind=kind: on_executor(kind, jobs, args.workers))
                 for kind in ("process", "dask", "local")})
    times: dict[str, list[float]] = {name: [] for name in runs}
    results = {}
    for _ in range(args.repeat):
        for name, run in runs.items():
            start = time.perf_counter()
            results[name] = run()
            times[name].append(time.perf_counter() - start)
    reference = results["bare pool"]
    base = min(times["bare pool"])
    print(f"{len(jobs)} jobs ({args.events} events x {len(PROCESSES)} processes), "
          f"{args.workers} workers, best of {args.repeat}")
    for name, values in times.items():
        same = all(np.array_equal(a.batch.objects, b.batch.objects)
                   and np.array_equal(a.batch.weight, b.batch.weight)
                   for a, b in zip(results[name], reference, strict=True))
        print(f"{name:>10}: {min(values):7.1f} s  ratio {min(values) / base:5.2f}  "
              f"identical events: {same}")


if __name__ == "__main__":
    main()
