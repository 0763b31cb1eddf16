"""The L1 tagger's training arrays, read through the tagger's sample machinery.

The sample files are resolved, read and checked by :mod:`tagger.trainsample` (the same readers,
schema and NaN/inf checks, class counts, c-tau range and fingerprint as the full tagger); jets
are split into training and validation jets by :func:`tagger.pipeline.validation_mask` (the same
split as the full tagger's), and the L1 inputs (:func:`tagger.l1.features.l1_inputs`, a few
hundred bytes per jet) are kept in memory. The SM jets of the training split are resampled to the
LLP jets' (log10 pT, eta) histogram with :func:`tagger.pipeline.resample_to`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tagger import trainsample as ts
from tagger.l1.features import l1_inputs
from tagger.pipeline import ResamplingConfig, resample_to, validation_mask
from tagger.reading import ETA, PT
from triggerad.jets import JetBatch


@dataclass
class Split:
    """Labelled jets of one split: L1 inputs ``x`` (n, N, F), ``label``, ``ctau``, ``pt``, ``eta``."""

    x: np.ndarray
    label: np.ndarray
    ctau: np.ndarray
    pt: np.ndarray
    eta: np.ndarray

    @property
    def y(self) -> np.ndarray:
        """1 for LLP jets, 0 for SM jets (float32)."""
        return (self.label == 0).astype(np.float32)


def read_split(cfg: ts.TaggerDataConfig, files: list[str], rd, split: str | None,
               n_candidates: int) -> tuple[Split, JetBatch | None]:
    """L1 inputs of the labelled jets of ``split`` (``train``, ``val``, None: all) of ``files``.

    Returns
    -------
    (Split, JetBatch)
        The arrays, and the jets themselves (labelled ones of the split) for evaluations.
    """
    from tagger.pipeline import chunk_index

    parts, batches = [], []
    for path, start, stop in chunk_index(rd, files, cfg.chunk_entries):
        batch = rd.read(path, start, stop)
        keep = batch.label >= 0
        if split is not None:
            val = validation_mask(batch, cfg.validation_fraction)
            keep &= val if split == "val" else ~val
        batch = batch.take(keep)
        batches.append(batch)
        parts.append(Split(l1_inputs(batch, n_candidates), batch.label, batch.ctau,
                           batch.globals[:, PT], batch.globals[:, ETA]))
    merged = Split(*(np.concatenate([getattr(p, f) for p in parts])
                     for f in ("x", "label", "ctau", "pt", "eta")))
    return merged, JetBatch.concatenate(batches) if batches else None


def load(cfg: ts.TaggerDataConfig, n_candidates: int, *, progress: bool = False) -> dict:
    """Resolve, scan (checks) and read the simulation sample.

    Returns
    -------
    dict
        ``scan`` (:class:`tagger.trainsample.SampleScan`), ``train`` and ``val``
        (:class:`Split`), ``data_info`` (the model folder's description of the sample).

    Raises
    ------
    InputFileError, SchemaMismatchError, NonFiniteError, StatisticsError
        As :func:`tagger.trainsample.scan` and :func:`tagger.trainsample.check_simulation`.
    """
    files = ts.resolve(cfg, cfg.simulation, "simulation")
    rd = ts.readers(cfg, files)
    sim = ts.scan(cfg, files, rd, progress=progress)
    ts.check_simulation(sim)
    train, _ = read_split(cfg, files, rd, "train", n_candidates)
    val, _ = read_split(cfg, files, rd, "val", n_candidates)
    info = {"simulation": sim.describe(cfg.reader), "domain": None,
            "validation_fraction": cfg.validation_fraction}
    return {"scan": sim, "train": train, "val": val, "data_info": info}


def training_rows(s: Split, edges: ResamplingConfig, rng: np.random.Generator
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the training set and their weights: every LLP jet, and as many SM jets drawn
    (with replacement) to follow the LLP jets' (log10 pT, eta) histogram; LLP and SM weights sum
    to the same total.
    """
    llp, sm = np.flatnonzero(s.label == 0), np.flatnonzero(s.label > 0)
    pick = sm[resample_to((s.pt[llp], s.eta[llp]), (s.pt[sm], s.eta[sm]), len(sm), edges, rng)]
    rows = np.concatenate([llp, pick])
    weights = np.concatenate([np.full(len(llp), len(pick) / max(len(llp), 1)),
                              np.ones(len(pick))]).astype(np.float32)
    return rows, weights / weights.mean()
