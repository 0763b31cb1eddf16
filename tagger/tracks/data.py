"""Reading a track sample (``tracks_mu<mu>.npz`` of :mod:`tagger.tracks.generate`) and its split.

The split into train / validation / test is a fixed function of the file's events and the
training config's ``seed``, ``val_fraction`` and ``test_fraction``: ``tracks-evaluate``
recomputes the test split of the file a model was trained on and checks the file by its
fingerprint.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tagger.tracks.features import TRACK_FIELDS
from tagger.tracks.generate import FIELDS, sample_file
from triggerad.errors import InputFileError


@dataclass
class TrackSample:
    """The arrays of one file (:data:`tagger.tracks.generate.FIELDS`), its mu and path."""

    path: Path
    mu: float
    tracks: np.ndarray
    n_tracks: np.ndarray
    label: np.ndarray
    from_pileup: np.ndarray
    ctau: np.ndarray
    n_pileup: np.ndarray
    sample: np.ndarray
    sample_names: list[str]

    def __len__(self) -> int:
        return len(self.label)

    def take(self, index: np.ndarray) -> TrackSample:
        """The events ``index``."""
        arrays = {k: getattr(self, k)[index] for k in
                  ("tracks", "n_tracks", "label", "from_pileup", "ctau", "n_pileup", "sample")}
        return TrackSample(self.path, self.mu, sample_names=self.sample_names, **arrays)

    def fingerprint(self) -> str:
        """Digest of the labels, counts and tracks (which file and events a model saw)."""
        h = hashlib.sha256()
        for a in (self.label, self.n_tracks, self.tracks):
            h.update(np.ascontiguousarray(a).tobytes())
        return h.hexdigest()[:16]


def sample_path(data: str | Path, mu: float) -> Path:
    """The file of pile-up ``mu`` in folder ``data`` (or ``data`` itself if it is a file)."""
    data = Path(data)
    return data if data.is_file() else data / sample_file(mu)


def read(path: str | Path) -> TrackSample:
    """Read and check one sample file.

    Raises
    ------
    InputFileError
        For a missing or unreadable file, a missing array or inconsistent shapes (the message
        names the file and what was found).
    """
    path = Path(path)
    if not path.is_file():
        found = sorted(p.name for p in path.parent.glob("tracks_mu*.npz")) \
            if path.parent.is_dir() else []
        raise InputFileError(f"{path}: no such track sample; found {found or 'none'} (write "
                             "them with `trigger-ad tagger tracks-generate`)")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError) as err:
        raise InputFileError(f"{path}: not a readable track sample ({err})") from err
    missing = [k for k in (*FIELDS, "sample_names", "mu") if k not in arrays]
    if missing:
        raise InputFileError(f"{path}: missing arrays {missing}; found {sorted(arrays)}")
    tracks = arrays["tracks"]
    n = len(arrays["label"])
    if tracks.ndim != 3 or tracks.shape[0] != n or tracks.shape[2] != len(TRACK_FIELDS):
        raise InputFileError(f"{path}: tracks must be (events={n}, N, {len(TRACK_FIELDS)}), "
                             f"found {tracks.shape}")
    if not np.all(np.isfinite(tracks)):
        raise InputFileError(f"{path}: tracks hold NaN or inf values")
    return TrackSample(
        path, float(arrays["mu"]), tracks, arrays["n_tracks"], arrays["label"],
        arrays["from_pileup"], arrays["ctau"], arrays["n_pileup"], arrays["sample"],
        [str(s) for s in arrays["sample_names"]],
    )


def split(n: int, *, seed: int, val_fraction: float, test_fraction: float,
          max_train: int | None = None) -> dict[str, np.ndarray]:
    """Indices of the ``train``, ``val`` and ``test`` events of a file of ``n`` events.

    ``max_train`` keeps only the first ``max_train`` events of the (shuffled) training split:
    the validation and test events do not change, and smaller caps give nested subsets (the
    learning curve of docs/tracks.md).
    """
    order = np.random.default_rng([seed, 20]).permutation(n)
    n_test, n_val = int(round(test_fraction * n)), int(round(val_fraction * n))
    return {"test": np.sort(order[:n_test]), "val": np.sort(order[n_test:n_test + n_val]),
            "train": np.sort(order[n_test + n_val:][:max_train])}
