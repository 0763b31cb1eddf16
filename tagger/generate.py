"""Generate the LLP jet samples: signal, SM background and the shifted ("data-like") simulation.

Jobs, seeds and parallel execution are those of ``trigger-ad generate``
(:mod:`triggerad.generation.run`): a job's seeds depend only on (seed, sample name, job index),
so a seed gives bit-identical files for any number of workers. A job runs Pythia in batches
(signal batches of ``ctau.batch_events`` events share one c-tau), then per batch: truth origins
and generator jets (:mod:`tagger.labels`), optional pile-up, tracks and neutral candidates
(:mod:`triggerad.generation.tracking`), secondary vertices
(:mod:`triggerad.generation.vertexing`), reconstructed jets and their PFNano record
(:mod:`tagger.features`) and the fixed-shape tagger inputs (:func:`triggerad.jetinputs.jet_batch`).

Output folder: ``signal.{h5,root}``, ``background.{h5,root}``, ``shifted_sim.{h5,root}`` (HDF5:
one row per jet, shuffled with the seed; ROOT: PFNano layout, one entry per event),
``summary.json``.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tagger import labels as lab
from tagger.features import build_record, reco_jets
from tagger.samples import Sample, TaggerGenerateConfig, samples, with_pileup
from triggerad import atomic
from triggerad.generation import pythia as py
from triggerad.generation.pileup import Pileup
from triggerad.generation.run import Job, job_seeds, make_jobs, pileup_plan, pileup_report, run_jobs
from triggerad.generation.tracking import reconstruct
from triggerad.generation.vertexing import find_vertices
from triggerad.jetinputs import PFNanoRecord, concatenate_records, jet_batch
from triggerad.jets import UNLABELLED, JetBatch

#: Output stems per sample kind.
STEMS = {"signal": "signal", "background": "background", "shifted": "shifted_sim"}
SUMMARY_FILE = "summary.json"


@dataclass
class JetJobResult:
    """A job's PFNano record and jets (weight = 1 per event until :func:`combine`)."""

    name: str
    index: int
    record: PFNanoRecord
    batch: JetBatch
    generated: int
    sigma_pb: float
    sigma_err_pb: float
    seconds: float
    cpu_seconds: float
    pileup_overlays: int = 0


def _pythia(cfg: TaggerGenerateConfig, sample: Sample, seed: int):
    """Initialised Pythia of a sample (the SLHA spectrum of a SUSY signal in a temporary file)."""
    settings = [f"Beams:eCM = {cfg.beam.ecm}", *cfg.beam.settings]
    if sample.signal is None:
        return py.make_pythia(settings + sample.settings, seed)
    with tempfile.TemporaryDirectory() as tmp:
        slha = Path(tmp) / "spectrum.slha"
        slha.write_text(sample.signal.slha())
        start_ctau = cfg.ctau.range[0]
        return py.make_pythia(
            settings + sample.signal.pythia_settings(start_ctau, str(slha)), seed
        )


def start_job(cfg, job: Job, pileup_config):
    """What every LLP generation job starts from (jet samples, :mod:`tagger.tracks` samples).

    Returns the job's initialised Pythia, its charge table, the pile-up source (``pileup_config``,
    None for a sample without pile-up), the job's random generator, the events per Pythia batch
    (``ctau.batch_events`` for signals: one c-tau per batch) and the number of batches of a full
    job (for the c-tau draw index)."""
    sample: Sample = job.process
    seed_hard, seed_pileup, seq = job_seeds(job.seed, job.name, job.index)
    rng = np.random.default_rng(seq)
    pythia = _pythia(cfg, sample, seed_hard)
    charges = py.ChargeTable(pythia.particleData)
    pileup = (Pileup(pileup_config, cfg.beam.ecm, pythia_seed=seed_pileup, seed=job.seed,
                     charges=charges)
              if sample.pileup_mu > 0 else None)
    step = cfg.ctau.batch_events if sample.signal is not None else cfg.output.batch_size
    return pythia, charges, pileup, rng, step, -(-cfg.output.job_size // step)


def pythia_batches(pythia, cfg, job: Job, rng, step: int, n_steps: int):
    """The Pythia batches of a job (:func:`start_job`'s ``step`` and ``n_steps``): yields (first
    event, events, c-tau in mm) of each; for a signal the batch's c-tau is drawn
    (``cfg.ctau.draw``, indexed by job and batch) and set as the LLP lifetime in Pythia before
    the batch is generated; 0 for SM samples."""
    sample: Sample = job.process
    for b, lo in enumerate(range(0, job.n_events, step)):
        k = min(step, job.n_events - lo)
        ctau = 0.0
        if sample.signal is not None:
            ctau = cfg.ctau.draw(rng, job.index * n_steps + b)
            pythia.particleData.tau0(sample.signal.llp_id, ctau)
        yield lo, k, ctau


def overlay(pileup: Pileup | None, hard: py.Particles, rng) -> tuple[py.Particles, np.ndarray,
                                                                     np.ndarray]:
    """Pile-up overlay (:meth:`Pileup.overlay`): particles, pile-up count per event, and which
    particles are from pile-up (none without pile-up)."""
    if pileup is None:
        return hard, np.zeros(hard.n_events, np.int64), np.zeros(len(hard.id), bool)
    return pileup.overlay(hard, rng)


def process_batch(
    particles: py.Particles, sample: Sample, cfg: TaggerGenerateConfig, rng, *,
    pileup: Pileup | None, ctau: np.ndarray, first_event: int,
) -> PFNanoRecord:
    """Truth, detector, vertices, jets and labels of a batch of events (``ctau``: the LLP c-tau
    of each event, mm) -> its PFNano record."""
    n = particles.n_events
    if sample.signal is not None:
        llp = lab.is_llp(particles.id, [sample.signal.llp_id], sample.signal.rhadrons)
        origin, decays, decay_vertex = lab.origins(particles, llp)
    else:
        origin = np.zeros(len(particles.id), np.int64)
        decays, decay_vertex = np.zeros(0, np.int64), np.zeros((0, 3))
    gen = lab.gen_jets(particles, origin, decay_vertex, decays, cfg.labels, cfg.jets.radius)
    hard = particles.select(particles.status > 0)
    merged, n_pu, from_pu = overlay(pileup, hard, rng)
    cands = reconstruct(merged, sample.tracking, sample.calorimeter, rng, pileup=from_pu)
    vertices = find_vertices(cands, cfg.vertexing)
    jets = reco_jets(cands, cfg.jets, sample.jes)
    index, dr = lab.match(jets.event, jets.eta, jets.phi, gen, n, cfg.labels.match_dr)
    matched = index >= 0
    g = np.maximum(index, 0)
    truth = {
        "ctau": ctau[jets.event],
        "label": np.where(matched, gen.label[g], UNLABELLED),
        "gen_pt": np.where(matched, gen.pt[g], 0.0), "gen_dr": dr,
        "vertex_fraction": np.where(matched, gen.vertex_fraction[g], 0.0),
        **{f"vertex_{a}": np.where(matched, gen.vertex[g, i], 0.0) for i, a in enumerate("xyz")},
        "hadron_flavour": np.where(matched, gen.hadron_flavour[g], 0),
        "parton_flavour": np.where(matched, gen.parton_flavour[g], 0),
    }
    if sample.kind == "shifted":  # stands in for data: no truth
        truth = {k: (np.full_like(v, -1) if k in ("label", "gen_dr") else np.zeros_like(v))
                 for k, v in truth.items()}
    events = {
        "event": np.arange(first_event, first_event + n), "run": np.zeros(n), "lumi": np.zeros(n),
        "weight": np.ones(n), "pileup": n_pu, "process": np.full(n, sample.process_name, object),
        "domain": np.full(n, sample.domain),
    }
    return build_record(cands, vertices, jets, cfg.jets, events, truth)


def run_jet_job(job: Job) -> JetJobResult:
    """Generate and reconstruct one job's events (picklable: runs in the worker processes).

    Signal events are generated in Pythia batches of ``ctau.batch_events`` events sharing one
    c-tau; the detector then processes chunks of about ``output.batch_size`` events.
    """
    import awkward as ak

    start, cpu_start = time.perf_counter(), time.process_time()
    cfg: TaggerGenerateConfig = job.config
    sample: Sample = job.process
    pythia, charges, pileup, rng, step, n_steps = start_job(
        cfg, job, with_pileup(cfg, sample.pileup_mu).pileup)
    first = job.index * cfg.output.job_size
    records, raw, ctaus, done, overlays = [], [], [], 0, 0
    for lo, k, ctau in pythia_batches(pythia, cfg, job, rng, step, n_steps):
        raw.append(pythia.nextBatch(k))
        ctaus.append(np.full(k, ctau))
        pending = sum(len(r) for r in raw)
        if pending >= cfg.output.batch_size or lo + k == job.n_events:
            particles = py.particles_from_batch(
                ak.concatenate(raw), charges, vertices=True, history=True)
            record = process_batch(
                particles, sample, cfg, rng, pileup=pileup, ctau=np.concatenate(ctaus),
                first_event=first + done)
            records.append(record)
            overlays += int(np.sum(record.events["pileup"]))
            done += pending
            raw, ctaus = [], []
    record = concatenate_records(records)
    sigma, sigma_err = py.sigma_pb(pythia)
    return JetJobResult(
        job.name, job.index, record, jet_batch(record, cfg.inputs.sizes()), job.n_events,
        sigma, sigma_err, time.perf_counter() - start, time.process_time() - cpu_start,
        overlays,
    )


def combine(results: list[JetJobResult], table: dict[str, Sample]):
    """Per output kind: concatenated records and jets with weights sigma / N_generated, and the
    per-sample summary entries."""
    per_kind: dict[str, tuple[list, list]] = {k: ([], []) for k in STEMS}
    entries = {}
    for run_number, (name, sample) in enumerate(table.items(), start=1):
        mine = [r for r in results if r.name == name]
        if not mine:
            continue
        generated = sum(r.generated for r in mine)
        n_i = np.array([r.generated for r in mine], dtype=float)
        sigma = float(np.dot(n_i, [r.sigma_pb for r in mine]) / generated)
        weight = sigma / generated
        for r in mine:
            r.record.events["weight"] = np.full(r.record.n_events, weight)
            r.record.events["run"] = np.full(r.record.n_events, run_number, dtype=np.int64)
            r.batch.weight = np.full(len(r.batch), weight)
            per_kind[sample.kind][0].append(r.record)
            per_kind[sample.kind][1].append(r.batch)
        jets = sum(len(r.batch) for r in mine)
        entries[name] = {
            "kind": sample.kind, "process": sample.process_name, "generated": generated,
            "jets": jets, "sigma_pb": sigma, "weight_per_event_pb": weight,
            "class_counts": JetBatch.concatenate([r.batch for r in mine]).class_counts(),
            "jets_per_s": jets / sum(r.seconds for r in mine),
            "events_per_s": generated / sum(r.seconds for r in mine),
            "jets_per_cpu_s": jets / sum(r.cpu_seconds for r in mine),
        }
    out = {k: (concatenate_records(recs), JetBatch.concatenate(batches))
           for k, (recs, batches) in per_kind.items() if recs}
    return out, entries


def generate(
    cfg: TaggerGenerateConfig, n_events: int, outdir: str | Path, *, seed: int = 1,
    workers: int = 1, executor=None, scheduler: str | None = None, progress: bool = True,
) -> dict:
    """Generate every sample of ``cfg``, write the files and ``summary.json``.

    Parameters
    ----------
    cfg : TaggerGenerateConfig
    n_events : int
        Generated events per sample (times each sample's ``events_fraction``).
    outdir : str or Path
        Output folder (must exist or be creatable; files are written atomically).
    seed : int
        Master seed; the same seed gives bit-identical files for any ``workers``.
    workers : int
        Parallel workers.
    executor : str or triggerad.executor.Executor, optional
        ``local``, ``process`` or ``dask`` (default: process if ``workers`` > 1, else local),
        or an executor object (not closed here).
    scheduler : str, optional
        Address of an existing Dask scheduler (``executor="dask"``).
    progress : bool
        Show a progress bar on stderr.

    Returns
    -------
    dict : the summary written to ``summary.json``.
    """
    from tagger.summary import describe

    outdir = Path(outdir)
    start = time.perf_counter()
    table = samples(cfg)
    jobs = make_jobs(cfg, n_events, seed, processes=table)
    pileup = pileup_plan(cfg.pileup, cfg.beam.ecm, seed, jobs, progress=progress)
    results, executor_name = run_jobs(
        jobs, workers=workers, executor=executor, scheduler=scheduler, progress=progress,
        runner=run_jet_job,
    )
    pileup_report(pileup, cfg.pileup, sum(r.pileup_overlays for r in results))
    outputs, entries = combine(results, table)
    files = []
    for kind, (record, batch) in outputs.items():
        files += write_sample(outdir, STEMS[kind], record, batch, cfg.output.formats, seed)
    wall = time.perf_counter() - start
    summary = describe(outputs, entries, cfg)
    summary.update({
        "events_per_sample": n_events, "seed": seed, "executor": executor_name, "workers": workers,
        "wall_seconds": wall, "pileup": pileup,
        "files": [p.name for p in files],
    })
    atomic.write_json(outdir / SUMMARY_FILE, summary)
    return summary


def write_sample(
    outdir: Path, stem: str, record: PFNanoRecord, batch: JetBatch, formats: list[str], seed: int
) -> list[Path]:
    """Write one sample: HDF5 jets (shuffled with ``seed``) and/or the PFNano ROOT file."""
    from triggerad.io.jeth5 import write_jets_h5
    from triggerad.io.pfnano import write_pfnano

    paths = []
    for fmt in formats:
        path = outdir / f"{stem}.{fmt}"
        if fmt == "h5":
            order = np.random.default_rng(seed).permutation(len(batch))
            write_jets_h5(path, batch.take(order))
        else:
            write_pfnano(path, record)
        paths.append(path)
    return paths
