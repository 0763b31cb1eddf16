"""Run the generation: jobs per process on an executor, then the cocktail and the files.

Each process is split into jobs of ``output.job_size`` events. A job's seeds are derived from
(seed, process name, job index) only, so the same seed gives bit-identical output whatever the
executor (in this process, worker processes or a Dask cluster; :mod:`triggerad.executor`) and
the number of workers. A job runs Pythia in batches, applies the detector, the QCD model and the
trigger, and returns the triggered events with their extra (fake / forced-decay) weights.
"""

from __future__ import annotations

import logging
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from triggerad import atomic
from triggerad.events import EventBatch, from_collections
from triggerad.executor import Executor, make_executor
from triggerad.generation import cocktail, validation
from triggerad.generation import pythia as py
from triggerad.generation.config import GenerateConfig, PileupConfig, ProcessConfig
from triggerad.generation.detector import Detector
from triggerad.generation.pileup import Pileup, prepare
from triggerad.generation.qcd import apply_fakes, forced_decay_weight, lepton_source
from triggerad.generation.trigger import single_lepton

log = logging.getLogger(__name__)

SUMMARY_FILE = "summary.json"
VALIDATION_FILE = "validation.md"
BACKGROUND_STEM = "background"


@dataclass
class Job:
    """One unit of work: ``n_events`` events of process ``name`` with job number ``index``."""

    name: str
    process: ProcessConfig
    config: GenerateConfig
    n_events: int
    index: int
    seed: int


@dataclass
class JobResult:
    """What a job returns: triggered events (weight = extra weight only) and bookkeeping.

    ``source`` is the origin of each event's leading accepted lepton
    (:func:`~triggerad.generation.qcd.lepton_source`), aligned with ``batch``;
    ``pileup_overlays`` the number of minimum-bias events overlaid on all generated events.
    """

    name: str
    index: int
    batch: EventBatch
    source: np.ndarray
    generated: int
    sigma_pb: float
    sigma_err_pb: float
    seconds: float
    init_seconds: float
    cpu_seconds: float
    pileup_overlays: int = 0


def job_stream(seed: int, name: str, index: int, stream: int | None = None
               ) -> np.random.SeedSequence:
    """Seed sequence of one job (deterministic: seed, job name and index only); ``stream``
    numbers independent streams of the same job (None: the job's root sequence, 1: the numpy
    stream of :func:`job_seeds`, 2: the hard-vertex positions of the track samples)."""
    key = [seed, zlib.crc32(name.encode()), index]
    return np.random.SeedSequence(key if stream is None else [*key, stream])


def job_seeds(seed: int, name: str, index: int) -> tuple[int, int, np.random.SeedSequence]:
    """Pythia seed, pile-up Pythia seed and numpy seed sequence of one job (deterministic)."""
    s_hard, s_pileup = job_stream(seed, name, index).generate_state(2)
    return (
        int(s_hard) % py.MAX_SEED + 1,
        int(s_pileup) % py.MAX_SEED + 1,
        job_stream(seed, name, index, 1),
    )


def pythia_settings(cfg: GenerateConfig, process: ProcessConfig) -> list[str]:
    """All Pythia settings of a process: beams, common settings, process, forced decays."""
    settings = [f"Beams:eCM = {cfg.beam.ecm}", *cfg.beam.settings, *process.pythia_settings()]
    return settings + py.forcing_settings(process.forced_decays, process.forced_products)


def run_job(job: Job) -> JobResult:
    """Generate, reconstruct and trigger one job's events."""
    start, cpu_start = time.perf_counter(), time.process_time()
    cfg, proc = job.config, job.process
    seed_hard, seed_pileup, seq = job_seeds(job.seed, job.name, job.index)
    pythia = py.make_pythia(pythia_settings(cfg, proc), seed_hard)
    charges = py.ChargeTable(pythia.particleData)
    fractions = py.forced_fractions(pythia, proc.forced_decays) if proc.forced_decays else None
    pileup = (Pileup(cfg.pileup, cfg.beam.ecm, pythia_seed=seed_pileup, seed=job.seed,
                     charges=charges) if cfg.pileup.mu > 0 else None)
    init_seconds = time.perf_counter() - start
    rng = np.random.default_rng(seq)
    detector = Detector(cfg.detector, rng)
    selected, sources, overlays = [], [], 0
    first_event = job.index * cfg.output.job_size
    for lo in range(0, job.n_events, cfg.output.batch_size):
        k = min(cfg.output.batch_size, job.n_events - lo)
        particles = py.generate(pythia, k, charges)
        weight = np.ones(k)
        n_pu = np.zeros(k)
        if pileup is not None:
            particles, n_pu, _ = pileup.overlay(particles, rng)
            overlays += int(n_pu.sum())
        reco = detector(particles)
        if fractions is not None:
            weight *= forced_decay_weight(reco, particles, fractions, cfg.trigger)
        if proc.qcd_model == "jet_fake":
            weight *= apply_fakes(reco, cfg.qcd_model, cfg.detector, cfg.trigger, rng)
        batch = from_collections(
            reco.met_pt, reco.met_phi, reco.electrons, reco.muons, reco.jets,
            event=np.arange(first_event + lo, first_event + lo + k, dtype=np.int64),
            process=np.full(k, proc.group, dtype=object), weight=weight,
            pileup=n_pu.astype(np.float32), n_ch_had=reco.n_ch_had, n_neu_had=reco.n_neu_had,
        )
        keep = single_lepton(batch, cfg.trigger) & (weight > 0)
        selected.append(batch.take(keep))
        sources.append(lepton_source(reco, particles, cfg.trigger)[keep])
    sigma, sigma_err = py.sigma_pb(pythia)
    return JobResult(
        job.name, job.index, EventBatch.concatenate(selected), np.concatenate(sources),
        job.n_events, sigma, sigma_err,
        time.perf_counter() - start, init_seconds, time.process_time() - cpu_start, overlays,
    )


def make_jobs(
    cfg: GenerateConfig, n_events: int, seed: int, *, processes: dict | None = None
) -> list[Job]:
    """Split every process into jobs of at most ``output.job_size`` events.

    ``processes`` (default ``cfg.processes``) maps job names to objects with an
    ``events_fraction``; other generators (the LLP samples) pass their own.
    """
    jobs = []
    size = cfg.output.job_size
    for name, proc in (cfg.processes if processes is None else processes).items():
        total = max(1, round(n_events * proc.events_fraction))
        jobs += [
            Job(name, proc, cfg, min(size, total - lo), i, seed)
            for i, lo in enumerate(range(0, total, size))
        ]
    return jobs


def default_executor(workers: int) -> str:
    """``process`` for more than one worker, else ``local`` (the executor when none is named)."""
    return "process" if workers > 1 else "local"


def execute(
    jobs: list[Job], executor: Executor, *, progress: bool = True, runner=None
) -> list[JobResult]:
    """Run the jobs on ``executor`` with a progress bar on stderr; results in (name, index) order.

    ``runner`` (default :func:`run_job`) is the picklable function run on each job; its results
    need ``name`` and ``index`` attributes (they are returned sorted by them).
    """
    from tqdm import tqdm

    runner = run_job if runner is None else runner

    bar = tqdm(total=sum(j.n_events for j in jobs), unit="ev", desc="generate",
               disable=not progress)
    results = []
    with bar:
        for job, result in zip(jobs, executor.map(runner, jobs), strict=True):
            results.append(result)
            bar.update(job.n_events)
    return sorted(results, key=lambda r: (r.name, r.index))


def run_jobs(
    jobs: list[Job], *, workers: int, executor: str | Executor | None = None,
    scheduler: str | None = None, progress: bool = True, runner=None,
) -> tuple[list, str]:
    """Run ``jobs`` on a named executor (made and closed here) or on a given one.

    Returns the results in (name, index) order and the executor's name (for the summary).
    ``executor`` None means :func:`default_executor` of ``workers``.
    """
    if isinstance(executor, Executor):
        return execute(jobs, executor, progress=progress, runner=runner), executor.name
    name = executor or default_executor(workers)
    with make_executor(name, workers=workers, scheduler=scheduler) as owned:
        return execute(jobs, owned, progress=progress, runner=runner), name


def combine(
    results: list[JobResult], cfg: GenerateConfig
) -> tuple[dict[str, EventBatch], dict[str, np.ndarray], dict]:
    """Per process: triggered events with final weights, their lepton sources, summary entries."""
    batches, sources, processes = {}, {}, {}
    for run_number, (name, proc) in enumerate(cfg.processes.items(), start=1):
        mine = [r for r in results if r.name == name]
        generated = sum(r.generated for r in mine)
        n_i = np.array([r.generated for r in mine], dtype=float)
        sigma = float(np.dot(n_i, [r.sigma_pb for r in mine]) / generated)
        sigma_err = float(np.sqrt(np.sum((n_i * [r.sigma_err_pb for r in mine]) ** 2)) / generated)
        batch = EventBatch.concatenate([r.batch for r in mine])
        batch.weight = batch.weight * (sigma / generated)
        batch.run = np.full(len(batch), run_number, dtype=np.int64)
        batches[name] = batch
        sources[name] = np.concatenate([r.source for r in mine])
        processes[name] = {
            "kind": proc.kind, "group": proc.group, "generated": generated,
            "selected": len(batch), "sigma_pb": sigma, "sigma_err_pb": sigma_err,
            "selected_sigma_pb": float(batch.weight.sum()),
            "trigger_efficiency": float(batch.weight.sum() / sigma) if sigma > 0 else 0.0,
            "events_per_s": generated / sum(r.seconds for r in mine),
            "events_per_cpu_s": generated / sum(r.cpu_seconds for r in mine),
        }
    return batches, sources, processes


def background(batches: dict[str, EventBatch], cfg: GenerateConfig, seed: int) -> EventBatch:
    """All SM processes' triggered events, concatenated and shuffled with the seed."""
    sm = [batches[n] for n, p in cfg.processes.items() if p.kind == "sm"]
    if not sm:
        raise ValueError("no SM process configured: cannot build the background cocktail")
    joined = EventBatch.concatenate(sm)
    return joined.take(np.random.default_rng(seed).permutation(len(joined)))


def write_outputs(outdir: Path, stem: str, batch: EventBatch, formats: list[str]) -> list[Path]:
    """Write one sample in the configured formats (each file atomically)."""
    from triggerad.io.adc2021 import write_h5
    from triggerad.io.nanoaod import write_root

    writers = {"h5": write_h5, "root": write_root}
    paths = []
    for fmt in formats:
        path = outdir / f"{stem}.{fmt}"
        writers[fmt](path, batch)
        paths.append(path)
    return paths


def generate(
    cfg: GenerateConfig, n_events: int, outdir: str | Path, *, seed: int = 1, workers: int = 1,
    executor: str | Executor | None = None, scheduler: str | None = None, progress: bool = True,
) -> dict:
    """Generate every configured process, write the samples and ``summary.json``.

    Parameters
    ----------
    cfg : GenerateConfig
        The generation config.
    n_events : int
        Generated events per process (scaled by each process' ``events_fraction``).
    outdir : str or Path
        Output folder (``background.*``, ``signal_<name>.*``, ``summary.json``).
    seed : int
        Master seed; the same seed gives bit-identical output for any executor and ``workers``.
    workers : int
        Worker processes (``process``) or Dask workers of a local cluster (``dask``).
    executor : str or Executor, optional
        ``local``, ``process`` or ``dask`` (default: :func:`default_executor`), or an executor
        object (not closed here).
    scheduler : str, optional
        Address of an existing Dask scheduler (``executor="dask"``).
    progress : bool
        Show a tqdm progress bar on stderr.

    Returns
    -------
    dict : the summary written to ``summary.json``.
    """
    outdir = Path(outdir)
    start = time.perf_counter()
    jobs = make_jobs(cfg, n_events, seed)
    pileup = pileup_plan(cfg.pileup, cfg.beam.ecm, seed, jobs, progress=progress)
    results, executor_name = run_jobs(
        jobs, workers=workers, executor=executor, scheduler=scheduler, progress=progress,
    )
    pileup_report(pileup, cfg.pileup, sum(r.pileup_overlays for r in results))
    outdir.mkdir(parents=True, exist_ok=True)
    batches, sources, processes = combine(results, cfg)
    bkg = background(batches, cfg, seed)
    comparison = cocktail.published_comparison(cocktail.weighted_fractions(bkg.weight, bkg.process))
    sm_total = float(bkg.weight.sum())
    for entry in processes.values():
        is_sm = entry["kind"] == "sm"
        entry["weighted_fraction"] = entry["selected_sigma_pb"] / sm_total if is_sm else 1.0
    files = write_outputs(outdir, BACKGROUND_STEM, bkg, cfg.output.formats)
    for name, proc in cfg.processes.items():
        if proc.kind == "signal":
            files += write_outputs(outdir, f"signal_{name}", batches[name], cfg.output.formats)
    summary = {
        "events_per_process": n_events, "seed": seed, "executor": executor_name,
        "workers": workers,
        "wall_seconds": time.perf_counter() - start,
        "background_events": len(bkg),
        "processes": processes,
        "published_comparison": comparison,
        "validation": validation.validate(batches, sources, processes, cfg),
        "files": [p.name for p in files],
        "model": model_description(cfg),
        "pileup": pileup,
    }
    atomic.write_json(outdir / SUMMARY_FILE, summary)
    atomic.write_text(outdir / VALIDATION_FILE, validation.format_validation(summary["validation"])
                      + "\n")
    return summary


def pileup_plan(cfg: PileupConfig, ecm: float, seed: int, jobs: list[Job], *,
                progress: bool = True) -> dict:
    """Check the pile-up reuse bound and build the pool before the jobs start
    (:func:`triggerad.generation.pileup.prepare`); the jobs' ``process.pileup_mu`` (LLP samples)
    or ``cfg.mu`` gives each job's mu."""
    overlays = sum(j.n_events * getattr(j.process, "pileup_mu", cfg.mu) for j in jobs)
    return {"mu": cfg.mu, **prepare(cfg, ecm, seed, overlays=overlays, progress=progress)}


def pileup_report(plan: dict, cfg: PileupConfig, overlays: int) -> None:
    """Add the realised overlays and reuse factor (overlays / pool size) to ``plan``."""
    plan["overlays"] = overlays
    if cfg.route == "library":
        plan["reuse_factor"] = overlays / cfg.pool_size


def model_description(cfg: GenerateConfig) -> dict:
    """The QCD model, detector and trigger parameters, for the summary."""
    from triggerad.config import to_dict

    return {
        "qcd": (
            "QCD = heavy-flavour samples (B or D hadrons forced to channels with an e or mu via "
            "the process' forced_decays; event weight = P(at least one forced hadron decays into "
            "an accepted lepton) = 1 - prod(1 - BR_i) over the hadrons whose lepton is accepted) "
            "+ ordinary QCD (HardQCD:all) with a jet -> e/mu fake probability "
            "rate x (pT/pt_ref)^power per jet; the fake carries a Beta(a, b) fraction of the jet, "
            "the rest stays in the event; event weight = P(at least one accepted fake)"
        ),
        "qcd_model": to_dict(cfg.qcd_model),
        "detector": to_dict(cfg.detector),
        "trigger": to_dict(cfg.trigger),
        "pileup": to_dict(cfg.pileup),
    }
