"""Tagger inputs of a :class:`~triggerad.jets.JetBatch`: the schema, normalisation and arrays.

Every candidate feature and global is standardised, ``(x - mean) / scale``, with the mean and
standard deviation fitted on the training sample; for the candidate blocks only real candidates
enter the fit and padded (all-zero) candidates stay exactly zero after the normalisation, so the
network sees "no candidate" the same way at any c-tau. ``log10(c-tau / mm)`` enters as is
(its training range is -2 ... 4).
"""

from __future__ import annotations

import numpy as np

from tagger.model import BLOCKS
from triggerad.errors import OutOfRangeError, SchemaMismatchError
from triggerad.jets import FEATURES, LABELS, JetBatch

#: Smallest scale of a standardised feature (a constant feature keeps scale 1).
MIN_SCALE = 1e-6


def input_schema(sizes: dict[str, int]) -> dict:
    """The input schema stored with a model: per branch its feature names and per-jet shape."""
    schema = {b: {"features": list(FEATURES[b]), "shape": [int(sizes[b]), len(FEATURES[b])]}
              for b in BLOCKS}
    schema["globals"] = {"features": list(FEATURES["globals"]), "shape": [len(FEATURES["globals"])]}
    schema["log10_ctau"] = {"features": ["log10_ctau_mm"], "shape": [1]}
    schema["classes"] = list(LABELS)
    return schema


def check_schema(expected: dict, batch: JetBatch, where: str) -> None:
    """Refuse a batch whose features or block sizes differ from the model's schema.

    Raises
    ------
    SchemaMismatchError
        Naming the branch, the expected and the found feature names or shape.
    """
    found = input_schema(batch.sizes)
    for branch, want in expected.items():
        have = found.get(branch)
        if branch == "classes":
            if have != want:
                raise SchemaMismatchError(f"{where}: the model's classes {want!r} differ from "
                                          f"this trigger-ad's {have!r}; retrain the model")
            continue
        if have is None or have["features"] != want["features"]:
            names = None if have is None else have["features"]
            diff = [n for n in want["features"] if n not in (names or [])]
            raise SchemaMismatchError(
                f"{where}: branch {branch!r}: the model expects features {want['features']!r}, "
                f"found {names!r}" + (f" (first missing {diff[0]!r})" if diff else "")
                + "; retrain the model or read the jets with the matching trigger-ad version")
        if list(have["shape"]) != list(want["shape"]):
            raise SchemaMismatchError(
                f"{where}: branch {branch!r}: the model expects per-jet shape "
                f"{tuple(want['shape'])!r}, found {tuple(have['shape'])!r}; read the jets with "
                f"the block sizes the model was trained with")


def _present(block: np.ndarray) -> np.ndarray:
    """(n, k) bool: candidates with any non-zero feature (padding is all zero)."""
    return block.any(axis=-1)


def fit_normalisation(batch: JetBatch) -> dict:
    """Mean and scale of every feature of ``batch`` (real candidates only for the blocks).

    Returns
    -------
    dict
        ``{branch: {"mean": [...], "scale": [...]}}`` for the blocks and ``globals``.
    """
    out = {}
    for branch in (*BLOCKS, "globals"):
        arr = np.asarray(getattr(batch, branch), dtype=np.float64)
        rows = arr[_present(arr)] if branch in BLOCKS else arr
        if len(rows) == 0:
            mean, scale = np.zeros(arr.shape[-1]), np.ones(arr.shape[-1])
        else:
            mean, scale = rows.mean(axis=0), rows.std(axis=0)
        scale = np.where(scale > MIN_SCALE, scale, 1.0)
        out[branch] = {"mean": mean.astype(np.float32).tolist(),
                       "scale": scale.astype(np.float32).tolist()}
    return out


def log10_ctau(ctau_mm: np.ndarray, where: str) -> np.ndarray:
    """log10(c-tau / mm), refusing non-positive or non-finite values (naming ``where``)."""
    ctau = np.asarray(ctau_mm, dtype=np.float64)
    bad = ~np.isfinite(ctau) | (ctau <= 0)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise OutOfRangeError(
            f"{where}: c-tau must be a positive number of mm, found {float(ctau.flat[k])!r} "
            f"({int(bad.sum())} jets); jets without an LLP (c-tau 0) need a c-tau hypothesis")
    return np.log10(ctau).astype(np.float32)


def normalised(batch, norm: dict) -> dict[str, np.ndarray]:
    """The standardised candidate blocks and globals of ``batch`` (float32; padded candidates
    stay exactly 0): every input but log10(c-tau)."""
    out = {}
    for branch in (*BLOCKS, "globals"):
        arr = getattr(batch, branch)
        mean = np.asarray(norm[branch]["mean"], dtype=np.float32)
        inv = 1.0 / np.asarray(norm[branch]["scale"], dtype=np.float32)
        x = np.subtract(arr, mean, dtype=np.float32)
        x *= inv
        if branch in BLOCKS:
            x *= arr.any(axis=-1)[..., None]          # padded candidates stay exactly 0
        out[branch] = x
    return out


def arrays(batch: JetBatch, norm: dict, log10_ct: np.ndarray) -> dict[str, np.ndarray]:
    """The normalised model inputs of ``batch`` at log10(c-tau) ``log10_ct`` ((n,) float32)."""
    out = normalised(batch, norm)
    out["log10_ctau"] = np.asarray(log10_ct, dtype=np.float32).reshape(-1, 1)
    return out
