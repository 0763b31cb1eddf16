"""Model inputs of the track samples: per-track features, the padding mask, normalisation.

From the stored quantities (:data:`TRACK_FIELDS`: pT, eta, phi, d0, dz and
the resolutions of d0 and dz) each track gets :data:`INPUT_FEATURES`: log pT, eta, cos and sin
phi, the signed impact-parameter significances and impact parameters (both through asinh, which
is linear near 0 and logarithmic in the tails) and the log resolutions; :data:`RAW_FEATURES`
are the untransformed quantities, for comparisons with the reference study. Padded tracks (beyond an
event's ``n_tracks``) are all-zero and masked (mask 0); the networks never look at them.
"""

from __future__ import annotations

import numpy as np

TRACK_FIELDS = ("pt", "eta", "phi", "d0", "dz", "d0_err", "dz_err")
"""The stored per-track quantities, in the order of the last axis of ``tracks``."""

INPUT_FEATURES = ("log_pt", "eta", "cos_phi", "sin_phi", "d0_sig", "dz_sig", "d0_mm", "dz_mm",
                  "log_d0_err", "log_dz_err")
"""The default inputs (``models.inputs``)."""

RAW_FEATURES = ("pt", "phi", "d0", "dz")
"""Untransformed quantities (pT in GeV, phi in rad, d0 and dz in mm), as the reference study
fed its networks (pT, eta, phi, d0, dz); opt-in through ``models.inputs``."""

# name -> the feature from the track quantities (``safe`` replaces padded entries by 1 where a
# log or a division needs it)
_FEATURES = {
    "log_pt": lambda t, safe: np.log(safe(t["pt"])),
    "eta": lambda t, safe: t["eta"],
    "cos_phi": lambda t, safe: np.cos(t["phi"]),
    "sin_phi": lambda t, safe: np.sin(t["phi"]),
    "d0_sig": lambda t, safe: np.arcsinh(t["d0"] / safe(t["d0_err"])),
    "dz_sig": lambda t, safe: np.arcsinh(t["dz"] / safe(t["dz_err"])),
    "d0_mm": lambda t, safe: np.arcsinh(t["d0"] / 0.1),
    "dz_mm": lambda t, safe: np.arcsinh(t["dz"] / 1.0),
    "log_d0_err": lambda t, safe: np.log(safe(t["d0_err"])),
    "log_dz_err": lambda t, safe: np.log(safe(t["dz_err"])),
    "pt": lambda t, safe: t["pt"],
    "phi": lambda t, safe: t["phi"],
    "d0": lambda t, safe: t["d0"],
    "dz": lambda t, safe: t["dz"],
}
AVAILABLE_FEATURES = INPUT_FEATURES + RAW_FEATURES
"""Every name ``models.inputs`` accepts."""


def mask_of(n_tracks: np.ndarray, size: int) -> np.ndarray:
    """(n, size) float32: 1 for the first ``n_tracks`` tracks of each event, 0 for padding."""
    return (np.arange(size)[None, :] < np.asarray(n_tracks)[:, None]).astype(np.float32)


def track_features(tracks: np.ndarray, n_tracks: np.ndarray, names=INPUT_FEATURES
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Per-track inputs (n, N, len(names)) float32 (``names`` from
    :data:`AVAILABLE_FEATURES`, in the order given) and the mask (n, N).

    ``tracks`` is (n, N, 7) in the order of ``TRACK_FIELDS``; padded entries come out as 0.
    """
    t = dict(zip(TRACK_FIELDS, np.moveaxis(tracks.astype(np.float64), -1, 0), strict=True))
    mask = mask_of(n_tracks, tracks.shape[1])
    valid = mask > 0
    safe = lambda a: np.where(valid, a, 1.0)  # noqa: E731
    out = np.stack([_FEATURES[n](t, safe) for n in names], axis=-1)
    return np.where(valid[..., None], out, 0.0).astype(np.float32), mask


def fit_normalisation(x: np.ndarray, mask: np.ndarray) -> dict[str, list[float]]:
    """Mean and standard deviation of every feature over the unpadded tracks."""
    valid = x[mask > 0].astype(np.float64)
    if len(valid) == 0:
        return {"mean": [0.0] * x.shape[-1], "std": [1.0] * x.shape[-1]}
    std = valid.std(axis=0)
    return {"mean": valid.mean(axis=0).tolist(), "std": np.where(std > 0, std, 1.0).tolist()}


def normalise(x: np.ndarray, mask: np.ndarray, norm: dict) -> np.ndarray:
    """Standardised inputs; padded tracks stay 0."""
    z = (x - np.asarray(norm["mean"], np.float32)) / np.asarray(norm["std"], np.float32)
    return (z * mask[..., None]).astype(np.float32)


def inputs(tracks: np.ndarray, n_tracks: np.ndarray, norm: dict, names=INPUT_FEATURES
           ) -> tuple[np.ndarray, np.ndarray]:
    """Normalised network inputs ``names`` and mask of raw tracks (the model folder's
    ``norm``)."""
    x, mask = track_features(tracks, n_tracks, names)
    return normalise(x, mask, norm), mask


def sum_pt(tracks: np.ndarray, n_tracks: np.ndarray) -> np.ndarray:
    """Scalar pT sum of the kept tracks of each event (the pT-cut baseline)."""
    return (tracks[..., 0] * mask_of(n_tracks, tracks.shape[1])).sum(axis=1)
