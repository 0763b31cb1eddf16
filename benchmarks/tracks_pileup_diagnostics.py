"""Displaced tracks and vertices in track samples: what the networks of docs/tracks.md can use.

For each sample folder of ``trigger-ad tagger tracks-generate`` (the ``tracks_mu<mu>.npz`` file),
on the test split of ``--split-seed`` (the split of ``training.seed``), per class (signal / QCD):

- tracks with |d0 / sigma_d0| > ``--sig`` per event (and how many come from pile-up), the fraction
  of pile-up tracks that are displaced, and the AUC of that count as a discriminant;
- pairs of displaced tracks whose straight lines meet (3-D closest approach < 3 combined sigma_d0,
  at a transverse radius > 1 mm, ahead of both tracks): per event, with both tracks from
  pile-up, and the AUC of the pair count (what a vertex-aware network can see beyond the count);
- hard-process tracks among the kept ones, pile-up tracks with pT > 2 GeV (QCD events), the AUC
  of the scalar pT sum.

Used for docs/tracks.md, "Pile-up route and the MLP-Transformer gap" (library vs HGMM pile-up)::

    python benchmarks/tracks_pileup_diagnostics.py lib/ hgmm/ [--mu 60] [--split-seed 1]
"""

from __future__ import annotations

import argparse

import numpy as np
from sklearn.metrics import roc_auc_score

from tagger.tracks.data import read, sample_path, split
from triggerad.generation.geometry import reference_point, unit_vectors


def vertex_pairs(tracks: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Which pairs (i < j, ``np.triu_indices`` order) of the tracks ``index`` of one event meet
    at a displaced vertex."""
    t = tracks[index]
    p, u = reference_point(t[:, 3], t[:, 4], t[:, 2]), unit_vectors(t[:, 1], t[:, 2])
    i, j = np.triu_indices(len(index), 1)
    w0, b = p[i] - p[j], np.sum(u[i] * u[j], axis=1)
    d, e = np.sum(u[i] * w0, axis=1), np.sum(u[j] * w0, axis=1)
    den = np.maximum(1.0 - b**2, 1e-9)
    ci = p[i] + ((b * e - d) / den)[:, None] * u[i]
    cj = p[j] + ((e - b * d) / den)[:, None] * u[j]
    mid = 0.5 * (ci + cj)
    ahead = (np.sum(mid[:, :2] * u[i, :2], 1) > 0) & (np.sum(mid[:, :2] * u[j, :2], 1) > 0)
    close = np.linalg.norm(ci - cj, axis=1) / np.hypot(t[i, 5], t[j, 5]) < 3.0
    return close & (np.hypot(mid[:, 0], mid[:, 1]) > 1.0) & ahead


def diagnose(data: str, *, mu: float, split_seed: int, sig_cut: float) -> dict:
    """The numbers of the module docstring for one sample folder."""
    s = read(sample_path(data, mu))
    test = split(len(s), seed=split_seed, val_fraction=0.2, test_fraction=0.3)["test"]
    t, y = s.tracks[test], s.label[test].astype(bool)
    real = np.arange(t.shape[1])[None] < s.n_tracks[test][:, None]
    pile = s.from_pileup[test].astype(bool) & real
    disp = real & (np.abs(t[..., 3]) > sig_cut * np.where(real, t[..., 5], 1.0))
    pairs, pile_pairs = np.zeros(len(t)), np.zeros(len(t))
    for ev in np.flatnonzero(disp.sum(1) >= 2):
        k = np.flatnonzero(disp[ev])
        ok = vertex_pairs(t[ev], k)
        i, j = np.triu_indices(len(k), 1)
        pairs[ev], pile_pairs[ev] = ok.sum(), (ok & pile[ev, k[i]] & pile[ev, k[j]]).sum()
    n_disp = disp.sum(1)
    per_class = {name: {
        "displaced": n_disp[m].mean(), "displaced_pileup": (disp & pile)[m].sum(1).mean(),
        "vertex_pairs": pairs[m].mean(), "vertex_pairs_pileup": pile_pairs[m].mean(),
        "hard_tracks": (real & ~pile)[m].sum(1).mean(),
        "pileup_tracks_pt2": ((t[..., 0] > 2.0) & pile)[m].sum(1).mean(),
    } for name, m in (("signal", y), ("qcd", ~y))}
    return {
        "test_events": len(t), **per_class,
        "pileup_displaced_fraction": (disp & pile).sum() / pile.sum(),
        "auc_displaced_count": roc_auc_score(y, n_disp),
        "auc_vertex_pairs": roc_auc_score(y, pairs),
        "auc_pt_sum": roc_auc_score(y, (t[..., 0] * real).sum(1)),
    }


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("data", nargs="+", help="sample folders of tracks-generate")
    p.add_argument("--mu", type=float, default=60.0)
    p.add_argument("--split-seed", type=int, default=1, help="training.seed of the split")
    p.add_argument("--sig", type=float, default=5.0, help="displaced: |d0/sigma_d0| above this")
    args = p.parse_args(argv)
    for data in args.data:
        r = diagnose(data, mu=args.mu, split_seed=args.split_seed, sig_cut=args.sig)
        print(f"{data} (mu {args.mu:g}, split seed {args.split_seed}, {r['test_events']} test "
              "events)")
        for key in r["signal"]:
            print(f"  {key:22s} signal {r['signal'][key]:7.2f}   QCD {r['qcd'][key]:7.2f}")
        for key in ("pileup_displaced_fraction", "auc_displaced_count", "auc_vertex_pairs",
                    "auc_pt_sum"):
            print(f"  {key:26s} {r[key]:.4f}")


if __name__ == "__main__":
    main()
