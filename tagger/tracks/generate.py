"""Event-level track samples: LLP signal and QCD at every configured pile-up mu.

Jobs, seeds and executors are those of ``trigger-ad generate`` (:mod:`triggerad.generation.run`:
a job's seeds depend only on the seed, the job name and its index), the Pythia setup of a signal
that of the LLP jet samples (:mod:`tagger.generate`), the pile-up the core's overlay
(:class:`triggerad.generation.pileup.Pileup`, e.g. the ``library`` route) and the tracks those of
the parametric detector (:func:`triggerad.generation.tracking.reconstruct`). Per event the
``selection.n_tracks`` highest-pT tracks with pT > ``selection.pt_min`` and |eta| <
``selection.eta_max`` are kept (zero-padded). With ``selection.dz_reference: beam_spot`` the hard
event is moved to z ~ N(0, ``pileup.beamspot_sigma_z``) (:func:`~triggerad.generation.pileup.
shift_z`; drawn from a job stream of its own, so the other draws start as with
``primary_vertex``: they stay in step until a moved particle crosses a z acceptance edge of the
detector) before the overlay, so the track dz is relative to the beam spot; ``z_hard`` stores
the shift.

Output folder: ``tracks_mu<mu>.npz`` per mu (:data:`FIELDS`, events shuffled with the seed) and
``summary.json``.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tagger.generate import overlay, pythia_batches, start_job
from tagger.samples import Sample
from tagger.tracks.config import TracksConfig
from tagger.tracks.features import TRACK_FIELDS
from triggerad import atomic
from triggerad.generation import pythia as py
from triggerad.generation.pileup import shift_z
from triggerad.generation.run import (
    Job,
    job_stream,
    make_jobs,
    pileup_plan,
    pileup_report,
    run_jobs,
)
from triggerad.generation.tracking import reconstruct

#: Arrays of a ``tracks_mu<mu>.npz`` file.
FIELDS = ("tracks", "from_pileup", "n_tracks", "label", "sample", "ctau", "n_pileup")
#: Optional arrays (absent from older files): the z of the hard interaction (mm; 0 with
#: ``selection.dz_reference: primary_vertex``).
OPTIONAL_FIELDS = ("z_hard",)
SUMMARY_FILE = "summary.json"


def sample_file(mu: float) -> str:
    """File name of the sample at pile-up ``mu``."""
    return f"tracks_mu{mu:g}.npz"


@dataclass
class TrackJobResult:
    """One job's events: tracks (k, N, F), pile-up flags (k, N), counts, c-tau, overlays."""

    name: str
    index: int
    tracks: np.ndarray
    from_pileup: np.ndarray
    n_tracks: np.ndarray
    ctau: np.ndarray
    n_pileup: np.ndarray
    z_hard: np.ndarray
    seconds: float


def job_table(cfg: TracksConfig) -> dict[str, Sample]:
    """Every sample to generate, by job name ``<sample>@mu<mu>``."""
    out = {}
    for mu in cfg.selection.mu:
        for name, sig in cfg.signals.items():
            out[f"{name}@mu{mu:g}"] = Sample(name, "signal", sig.events_fraction, [],
                                             cfg.tracking, cfg.calorimeter, 1.0, mu,
                                             signal=sig, process_name=name)
        for name, proc in cfg.processes.items():
            out[f"{name}@mu{mu:g}"] = Sample(name, "background", proc.events_fraction,
                                             proc.pythia_settings(), cfg.tracking,
                                             cfg.calorimeter, 1.0, mu, process_name=name)
    return out


def select_tracks(cands, from_pileup: np.ndarray, cfg) -> tuple[np.ndarray, np.ndarray,
                                                                  np.ndarray]:
    """The kept tracks of every event of ``cands`` (:class:`~triggerad.generation.tracking.
    Candidates`): (n, N, F) zero-padded in falling pT, (n, N) pile-up flags, (n,) counts."""
    n, size = cands.n_events, cfg.n_tracks
    keep = np.flatnonzero(cands.is_track & (cands.pt > cfg.pt_min)
                          & (np.abs(cands.eta) < cfg.eta_max))
    event = cands.event[keep]
    order = np.lexsort((-cands.pt[keep], event))
    keep, event = keep[order], event[order]
    first = np.searchsorted(event, np.arange(n))
    rank = np.arange(len(keep)) - first[event]
    sel = rank < size
    keep, event, rank = keep[sel], event[sel], rank[sel]
    tracks = np.zeros((n, size, len(TRACK_FIELDS)), np.float32)
    for j, name in enumerate(TRACK_FIELDS):
        tracks[event, rank, j] = getattr(cands, name)[keep]
    pile = np.zeros((n, size), np.int8)
    pile[event, rank] = from_pileup[cands.source[keep]]
    return tracks, pile, np.bincount(event, minlength=n).astype(np.int32)


def run_track_job(job: Job) -> TrackJobResult:
    """Generate one job's events and keep their tracks (picklable: runs in worker processes)."""
    start = time.perf_counter()
    cfg: TracksConfig = job.config
    sample: Sample = job.process
    pythia, charges, pileup, rng, step, n_steps = start_job(
        cfg, job, dataclasses.replace(cfg.pileup, mu=sample.pileup_mu))
    vertex_rng = (np.random.default_rng(job_stream(job.seed, job.name, job.index, 2))
                  if cfg.selection.dz_reference == "beam_spot" else None)
    parts = []
    for _, k, ctau in pythia_batches(pythia, cfg, job, rng, step, n_steps):
        hard = py.generate(pythia, k, charges, vertices=True)
        hard = hard.select(hard.status > 0)
        z_hard = (np.zeros(k) if vertex_rng is None
                  else vertex_rng.normal(0.0, cfg.pileup.beamspot_sigma_z, k))
        if vertex_rng is not None:  # the hard vertex on the beam spot like the pile-up's
            hard = shift_z(hard, z_hard)
        merged, n_pu, from_pu = overlay(pileup, hard, rng)
        # pileup=None: no PUPPI proxy (neutral candidates are not used; it costs O(neutral x
        # charged) per event at high pile-up)
        cands = reconstruct(merged, sample.tracking, sample.calorimeter, rng, pileup=None)
        parts.append((*select_tracks(cands, from_pu, cfg.selection), np.full(k, ctau), n_pu,
                      z_hard.astype(np.float32)))
    cols = [np.concatenate(c) for c in zip(*parts, strict=True)]
    return TrackJobResult(job.name, job.index, *cols, seconds=time.perf_counter() - start)


def generate(cfg: TracksConfig, n_events: int, outdir: str | Path, *, seed: int = 1,
             workers: int = 1, executor=None, progress: bool = True) -> dict:
    """Generate every sample of ``cfg`` at every mu; write the files and ``summary.json``.

    Parameters
    ----------
    cfg : TracksConfig
    n_events : int
        Generated events per sample and mu (times each sample's ``events_fraction``).
    outdir : str or Path
        Output folder.
    seed : int
        Master seed; the same seed gives identical files for any ``workers``.
    workers : int
        Parallel workers (``process`` executor when > 1).
    executor : str, optional
        ``local``, ``process`` or ``dask``.
    progress : bool
        Progress bar on stderr.

    Returns
    -------
    dict : the summary.
    """
    outdir = Path(outdir)
    start = time.perf_counter()
    table = job_table(cfg)
    jobs = make_jobs(cfg, n_events, seed, processes=table)
    plan = pileup_plan(cfg.pileup, cfg.beam.ecm, seed, jobs, progress=progress)
    results, executor_name = run_jobs(jobs, workers=workers, executor=executor,
                                      progress=progress, runner=run_track_job)
    pileup_report(plan, cfg.pileup, sum(int(r.n_pileup.sum()) for r in results))
    plan["mu"] = list(cfg.selection.mu)  # one file per mu (pileup.mu is not used)
    names = sorted({s.name for s in table.values()})
    summary: dict = {"samples": {}, "files": []}
    for mu in cfg.selection.mu:
        mine = [(table[r.name], r) for r in results if table[r.name].pileup_mu == mu]
        arrays = {
            "tracks": np.concatenate([r.tracks for _, r in mine]),
            "from_pileup": np.concatenate([r.from_pileup for _, r in mine]),
            "n_tracks": np.concatenate([r.n_tracks for _, r in mine]),
            "label": np.concatenate([np.full(len(r.ctau), s.kind == "signal", np.int8)
                                     for s, r in mine]),
            "sample": np.concatenate([np.full(len(r.ctau), names.index(s.name), np.int16)
                                      for s, r in mine]),
            "ctau": np.concatenate([r.ctau for _, r in mine]),
            "n_pileup": np.concatenate([r.n_pileup for _, r in mine]).astype(np.int32),
            "z_hard": np.concatenate([r.z_hard for _, r in mine]),
        }
        order = np.random.default_rng([seed, int(mu * 1000)]).permutation(len(arrays["label"]))
        arrays = {k: v[order] for k, v in arrays.items()}
        path = outdir / sample_file(mu)
        with atomic.atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, sample_names=np.array(names), mu=np.float64(mu), **arrays)
        summary["files"].append(path.name)
        for s, r in mine:
            entry = summary["samples"].setdefault(f"{s.name}@mu{mu:g}", {
                "kind": s.kind, "mu": mu, "events": 0, "seconds": 0.0, "tracks": 0,
                "pileup_tracks": 0})
            entry["events"] += len(r.ctau)
            entry["seconds"] += r.seconds
            entry["tracks"] += int(r.n_tracks.sum())
            entry["pileup_tracks"] += int(r.from_pileup.sum())
    for entry in summary["samples"].values():
        entry["events_per_s"] = entry["events"] / max(entry["seconds"], 1e-9)
        entry["mean_tracks"] = entry["tracks"] / max(entry["events"], 1)
        entry["pileup_track_fraction"] = entry.pop("pileup_tracks") / max(entry["tracks"], 1)
    summary.update({"events_per_sample": n_events, "seed": seed, "executor": executor_name,
                    "workers": workers, "wall_seconds": time.perf_counter() - start,
                    "pileup": plan, "selection": dataclasses.asdict(cfg.selection),
                    "track_fields": list(TRACK_FIELDS)})
    atomic.write_json(outdir / SUMMARY_FILE, summary)
    return summary
