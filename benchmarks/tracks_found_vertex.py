"""Find the primary vertex from the kept tracks of beam-spot track samples; re-reference their dz.

For samples generated with ``selection.dz_reference: beam_spot`` (docs/tracks.md, "Hard vertex on
the beam spot"), where the track dz is measured from the beam spot and the hard interaction sits
at ``z_hard`` ~ N(0, sigma_z): per event the z with the highest scalar pT sum of the kept tracks
within ``--window`` mm (each track's dz is a candidate; pT capped at ``--pt-cap`` GeV, as the L1
vertex finders do) is the found vertex, refined to the pT-weighted mean dz in the window. Prints
how often it lands within ``--window`` of ``z_hard`` (per class) and the fraction of hard-process /
pile-up tracks with |dz - z_found| < 3 sigma_dz. With ``--out DIR`` writes a copy of the sample
whose dz is relative to the found vertex (the dz of the primary-vertex samples, up to vertex
finding): a per-track network trained on it shows what an explicit vertex finder gives back::

    python benchmarks/tracks_found_vertex.py bs/ [--mu 60] [--out bs_found/]
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np

from tagger.tracks.data import read, sample_path
from triggerad import atomic


def found_vertex(tracks: np.ndarray, n_tracks: np.ndarray, *, window: float, pt_cap: float,
                 chunk: int = 512) -> np.ndarray:
    """z (mm) of the highest capped-pT sum of tracks within ``window`` of a track's dz, per
    event (0 for an event without tracks), refined to the pT-weighted mean dz in the window."""
    out = np.zeros(len(tracks))
    for lo in range(0, len(tracks), chunk):
        t = tracks[lo:lo + chunk].astype(np.float64)
        real = np.arange(t.shape[1])[None] < n_tracks[lo:lo + chunk, None]
        pt, dz = np.minimum(t[..., 0], pt_cap) * real, t[..., 4]
        near = np.abs(dz[:, :, None] - dz[:, None, :]) < window        # (k, candidate, track)
        score = np.where(real, np.einsum("kcj,kj->kc", near, pt), -1.0)
        best = np.argmax(score, axis=1)
        z0 = dz[np.arange(len(t)), best]
        w = pt * (np.abs(dz - z0[:, None]) < window)
        out[lo:lo + chunk] = np.where(w.sum(1) > 0, (w * dz).sum(1) / np.maximum(w.sum(1), 1e-9),
                                      0.0)
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("data", help="sample folder of tracks-generate (dz_reference beam_spot)")
    p.add_argument("--mu", type=float, default=60.0)
    p.add_argument("--window", type=float, default=1.0, help="half-width in z (mm)")
    p.add_argument("--pt-cap", type=float, default=50.0, help="pT cap of the sum (GeV)")
    p.add_argument("--out", help="write the sample with dz relative to the found vertex here")
    args = p.parse_args(argv)
    path = sample_path(args.data, args.mu)
    s = read(path)
    with np.load(path) as f:
        z_hard = f["z_hard"].astype(np.float64) if "z_hard" in f.files else np.zeros(len(s))
    z = found_vertex(s.tracks, s.n_tracks, window=args.window, pt_cap=args.pt_cap)
    real = np.arange(s.tracks.shape[1])[None] < s.n_tracks[:, None]
    pile = s.from_pileup.astype(bool) & real
    hard = real & ~pile
    dz, err = s.tracks[..., 4].astype(np.float64), np.where(real, s.tracks[..., 6], 1.0)
    print(f"{path} ({len(s)} events, window {args.window:g} mm, pT cap {args.pt_cap:g} GeV)")
    print(f"  std z_hard {z_hard.std():.1f} mm")
    for name, m in (("signal", s.label == 1), ("QCD", s.label == 0), ("all", slice(None))):
        hit = np.abs(z - z_hard)[m] < args.window
        print(f"  {name:7s} found vertex within {args.window:g} mm of z_hard: {hit.mean():.3f}")
    for ref, zr in (("beam spot", np.zeros(len(s))), ("found vertex", z), ("true z_hard", z_hard)):
        close = np.abs(dz - zr[:, None]) / err < 3
        pu = f"{close[pile].mean():.4f}" if pile.any() else "none"
        print(f"  |dz - z({ref})| < 3 sigma: hard-process tracks {close[hard].mean():.3f}, "
              f"pile-up tracks {pu}")
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        with np.load(path) as f:
            arrays = {k: f[k] for k in f.files}
        tracks = arrays["tracks"].copy()
        tracks[..., 4] = np.where(real, dz - z[:, None], 0.0)
        arrays.update(tracks=tracks, z_found=z.astype(np.float32))
        with atomic.atomic_path(out / path.name) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
        summary = Path(path).parent / "summary.json"
        if summary.is_file():
            shutil.copy(summary, out / "summary.json")
        print(f"  -> {out / path.name} (dz relative to the found vertex)")


if __name__ == "__main__":
    main()
