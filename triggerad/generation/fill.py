"""A stream that looks like an LHC fill: lumi blocks of unit-weight events whose pile-up falls.

The instantaneous luminosity of a fill decays roughly exponentially, and the pile-up with it, so
block ``k`` of ``n`` gets ``mu_k = mu_start (mu_end / mu_start) ** (k / (n - 1))``
(:data:`SHAPES`: ``exponential``, or ``linear``). Every block is generated with the project's
generator (:mod:`.run`) with its own mu and pile-up from the configured route, normally the
minimum-bias library (one pool shared by all blocks, built once before the jobs start), so the
fill costs about what the hard process costs. All jobs of all blocks run in one executor.

Events are made data-like before they become a stream: the generator's events carry
sigma x efficiency / N weights that differ between processes, while a trigger (and the rate
monitor and controller of ``trigger-ad score``) counts events. Each block's triggered events are
therefore unweighted (hit-or-miss with probability ``weight / w_ref``, ``w_ref`` the largest
weight of the whole fill, then weight 1), after which the counted fraction of a selection is its
rate fraction. Each block gets ``run = 1`` and ``lumi = k + 1``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from triggerad.errors import ConfigError
from triggerad.events import EventBatch
from triggerad.generation.config import GenerateConfig


def _exponential(n: int, start: float, end: float) -> np.ndarray:
    return start * (end / start) ** (np.arange(n) / max(n - 1, 1))


def _linear(n: int, start: float, end: float) -> np.ndarray:
    return np.linspace(start, end, n)


#: Pile-up profiles along the fill, by name.
SHAPES = {"exponential": _exponential, "linear": _linear}


def mu_schedule(blocks: int, mu_start: float, mu_end: float, *,
                shape: str = "exponential") -> np.ndarray:
    """Mean pile-up of each of ``blocks`` lumi blocks, from ``mu_start`` to ``mu_end``.

    Raises
    ------
    ConfigError
        For an unknown shape, fewer than one block or a non-positive mu.
    """
    if shape not in SHAPES:
        from difflib import get_close_matches

        near = get_close_matches(shape, SHAPES, n=1)
        hint = f"; did you mean {near[0]!r}?" if near else ""
        raise ConfigError(f"fill shape: unknown {shape!r}, expected one of {sorted(SHAPES)}{hint}")
    if blocks < 1 or mu_start <= 0 or mu_end <= 0:
        raise ConfigError(f"fill: need blocks >= 1 and mu > 0, found blocks={blocks!r}, "
                          f"mu_start={mu_start!r}, mu_end={mu_end!r}")
    return SHAPES[shape](blocks, float(mu_start), float(mu_end))


def block_config(base: GenerateConfig, mu: float, tag: str, fractions: dict[str, float], *,
                 job_size: int) -> GenerateConfig:
    """Generation config of one block: processes ``fractions`` renamed ``name@tag``, pile-up mu.

    The renamed processes keep their group (the name the stream's ``process`` column shows) and
    make every job name, hence every seed, unique to its block.
    """
    missing = [name for name in fractions if name not in base.processes]
    if missing:
        raise ConfigError(f"fill: processes {missing} not in the generation config "
                          f"(it has {sorted(base.processes)})")
    cfg = copy.deepcopy(base)
    cfg.processes = {}
    for name, fraction in fractions.items():
        proc = copy.deepcopy(base.processes[name])
        proc.group = proc.group or name
        proc.events_fraction = fraction
        cfg.processes[f"{name}@{tag}"] = proc
    cfg.pileup.mu = float(mu)
    cfg.output.job_size = job_size
    cfg.output.batch_size = min(cfg.output.batch_size, job_size)
    return cfg


def unweight(batch: EventBatch, rng: np.random.Generator, w_ref: float
             ) -> tuple[EventBatch, float]:
    """Hit-or-miss: keep each event with probability ``min(1, w / w_ref)``, give it weight 1.

    Returns the unit-weight events and the fraction of events whose weight exceeded ``w_ref``
    (0 when ``w_ref`` is the largest weight).
    """
    keep = rng.random(len(batch)) < np.minimum(1.0, batch.weight / w_ref)
    out = batch.take(np.flatnonzero(keep))
    out.weight = np.ones(len(out))
    return out, float(np.mean(batch.weight > w_ref)) if len(batch) else 0.0


@dataclass
class Fill:
    """The generated fill: one unit-weight batch per lumi block and a row of figures per block."""

    blocks: list[EventBatch]
    table: list[dict]
    cpu_seconds: float
    pileup: dict

    def write(self, outdir: str | Path, *, blocks_per_file: int = 1) -> list[Path]:
        """Write ADC2021 HDF5 files ``fill_XX.h5`` of ``blocks_per_file`` blocks each, in order."""
        from triggerad.io.adc2021 import write_h5

        outdir = Path(outdir)
        outdir.mkdir(parents=True, exist_ok=True)
        paths = []
        for i in range(0, len(self.blocks), blocks_per_file):
            path = outdir / f"fill_{i // blocks_per_file:02d}.h5"
            write_h5(path, EventBatch.concatenate(self.blocks[i:i + blocks_per_file]))
            paths.append(path)
        return paths


def generate_fill(
    base: GenerateConfig, mu: np.ndarray, events_per_block: int, *, seed: int = 1,
    fractions: dict[str, float] | None = None, job_size: int = 1000, workers: int = 1,
    executor=None, progress: bool = False,
) -> Fill:
    """Generate the blocks of a fill, one per entry of ``mu`` (in time order).

    Parameters
    ----------
    base : GenerateConfig
        Generation config (processes, detector, trigger, ``pileup`` route and pool).
    mu : array
        Mean pile-up of each block (:func:`mu_schedule`).
    events_per_block : int
        Generated events per block of each process, times its fraction.
    seed : int
        Master seed: the same seed gives the same fill for any worker count.
    fractions : dict, optional
        Process -> events fraction (default ``{"W": 1.0, "Z": 0.1}``: about equal weights per
        event, so unweighting loses little).
    job_size, workers, executor, progress
        Jobs of at most ``job_size`` events on ``workers`` processes of ``executor`` (a name, or
        an :class:`~triggerad.executor.Executor`, left open: several fills can share its pool).
    """
    from triggerad.generation import pileup
    from triggerad.generation.run import background, combine, make_jobs, run_jobs

    fractions = fractions or {"W": 1.0, "Z": 0.1}
    configs = [block_config(base, m, f"b{k:03d}", fractions, job_size=job_size)
               for k, m in enumerate(np.asarray(mu, dtype=float))]
    jobs = [j for k, cfg in enumerate(configs) for j in make_jobs(cfg, events_per_block, seed + k)]
    overlays = sum(j.n_events * j.config.pileup.mu for j in jobs)
    plan = pileup.prepare(base.pileup, base.beam.ecm, seed, overlays=overlays, progress=progress)
    jobs.sort(key=lambda j: -j.n_events * (1 + j.config.pileup.mu))  # long jobs first
    results, _ = run_jobs(jobs, workers=workers, executor=executor, progress=progress)
    plan["overlays"] = sum(r.pileup_overlays for r in results)
    if base.pileup.route == "library":
        plan["reuse_factor"] = plan["overlays"] / base.pileup.pool_size

    weighted = []
    for k, cfg in enumerate(configs):
        batches, _, procs = combine([r for r in results if r.name in cfg.processes], cfg)
        weighted.append((background(batches, cfg, seed + k), procs))
    w_ref = max(float(b.weight.max()) for b, _ in weighted if len(b))
    rng = np.random.default_rng(seed)
    blocks, table, first_event = [], [], 0
    for k, ((batch, procs), cfg) in enumerate(zip(weighted, configs, strict=True)):
        block, _ = unweight(batch, rng, w_ref)
        n = len(block)
        block.run = np.ones(n, dtype=np.int64)
        block.lumi = np.full(n, k + 1, dtype=np.int64)
        block.event = first_event + np.arange(n, dtype=np.int64)
        first_event += n
        blocks.append(block)
        table.append({
            "lumi": k + 1, "mu": cfg.pileup.mu, "triggered": len(batch), "events": n,
            "mean_pileup": float(block.pileup.mean()) if n else 0.0,
            **{f"eff_{cfg.processes[name].group}": entry["trigger_efficiency"]
               for name, entry in procs.items()},
        })
    return Fill(blocks, table, sum(r.cpu_seconds for r in results), plan)
