"""Toy track samples with a known answer, for tests and sanity checks (no generator needed).

Every event holds Uniform(``min_tracks``, N) tracks with pT = 0.5 GeV + Exp(1 GeV), |eta| < 2.5,
prompt impact parameters (d0 ~ N(0, sigma_d0), dz ~ N(0, sigma_dz)); a fraction
``pileup_fraction`` of the tracks is pile-up (dz ~ N(0, 50 mm)). In signal events each hard
track is displaced with probability ``displaced_fraction`` (d0 ~ N(0, 1 mm)). The file has the
layout of ``tracks-generate`` (:data:`tagger.tracks.generate.FIELDS`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tagger.tracks.data import TrackSample


def make(n_events: int, *, n_tracks: int = 20, signal_fraction: float = 0.5, seed: int = 1,
         min_tracks: int = 3, displaced_fraction: float = 0.3, pileup_fraction: float = 0.5,
         mu: float = 60.0, path: str | Path = "synthetic.npz") -> TrackSample:
    """A toy :class:`~tagger.tracks.data.TrackSample` (module docstring)."""
    rng = np.random.default_rng(seed)
    label = (rng.random(n_events) < signal_fraction).astype(np.int8)
    count = rng.integers(min_tracks, n_tracks + 1, n_events).astype(np.int32)
    shape = (n_events, n_tracks)
    valid = np.arange(n_tracks)[None, :] < count[:, None]
    pile = (rng.random(shape) < pileup_fraction) & valid
    d0_err, dz_err = np.full(shape, 0.02), np.full(shape, 0.05)
    displaced = (rng.random(shape) < displaced_fraction) & (label[:, None] == 1) & ~pile
    d0 = np.where(displaced, rng.normal(0, 1.0, shape), rng.normal(0, 0.02, shape))
    dz = np.where(pile, rng.normal(0, 50.0, shape), rng.normal(0, 0.05, shape))
    pt = 0.5 + rng.exponential(1.0, shape)
    tracks = np.stack([pt, rng.uniform(-2.5, 2.5, shape), rng.uniform(-np.pi, np.pi, shape),
                       d0, dz, d0_err, dz_err], axis=-1)
    tracks = np.where(valid[..., None], tracks, 0.0).astype(np.float32)
    return TrackSample(Path(path), mu, tracks, count, label, pile.astype(np.int8),
                       np.where(label == 1, 10.0, 0.0), np.full(n_events, int(mu), np.int32),
                       label.astype(np.int16), ["QCD", "signal"])


def write(sample: TrackSample, path: str | Path) -> Path:
    """Write ``sample`` as a ``tracks_mu<mu>.npz``-style file."""
    path = Path(path)
    with open(path, "wb") as fh:
        np.savez(fh, tracks=sample.tracks, from_pileup=sample.from_pileup,
                 n_tracks=sample.n_tracks, label=sample.label, sample=sample.sample,
                 ctau=sample.ctau, n_pileup=sample.n_pileup, mu=np.float64(sample.mu),
                 sample_names=np.array(sample.sample_names))
    return path
