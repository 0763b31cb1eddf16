"""Training data: load a background sample, fingerprint it and split it reproducibly.

A trained model records in its artifact where its background came from (``data_info``: paths,
reader, split seed and fractions, fingerprint, counts); :func:`load_split` reloads exactly the same
validation or test events later and refuses if the file changed since training.

Wherever files or a generated-data folder are accepted, a sample list (``samples.yaml``, see
:mod:`triggerad.samples`) is accepted too: its background samples are the background, its signal
samples the signals, with generator weights normalised to the samples' cross-sections.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from triggerad.errors import ConfigError, InputFileError, SchemaMismatchError, missing_field
from triggerad.events import EventBatch
from triggerad.io.base import ReadOptions

log = logging.getLogger(__name__)

SPLIT_NAMES = ("train", "val", "test")


@dataclass
class DataConfig:
    """The ``data`` section of a training config.

    Attributes
    ----------
    background : list of str
        Background (SM cocktail) files, folders (``DIR/background.h5``), globs or sample lists
        (their background samples).
    reader : str
        Reader name (``adc2021``, ``delphes``, ``nanoaod``, ``flat``, ``parquet``) or ``auto``.
    fractions : list of float
        Train / validation / test fractions (sum 1).
    seed : int
        Seed of the split permutation.
    use_weights : bool
        Weight the loss by the event ``weight`` normalised to mean 1.
    negative_weights : {"abs", "drop"}
        Loss weight of events with a negative weight (NLO generators): ``abs`` trains on
        ``|w|`` (the shape the negative events cancel is then slightly overweighted), ``drop``
        gives them loss weight 0 (they stay in the splits). Their count is stored in the model's
        ``data_info``. Rates and thresholds always use the signed weights.
    weight_power : float
        With ``use_weights``: the loss weight is ``|w| ** weight_power`` (normalised to mean 1),
        between the physical cocktail (1, default) and the generated mix (0, the same as
        ``use_weights: false``); e.g. 0.5 trains on a mix flatter than the physical one.
    chunk_size : int
        Events per read chunk.
    max_events : int or None
        Use only the first ``max_events`` events (before the split); None for all.
    """

    background: list[str] = field(default_factory=lambda: ["data/background.h5"])
    reader: str = "auto"
    fractions: list[float] = field(default_factory=lambda: [0.6, 0.2, 0.2])
    seed: int = 1234
    use_weights: bool = True
    negative_weights: Literal["abs", "drop"] = "abs"
    weight_power: float = 1.0
    chunk_size: int = 100_000
    max_events: int | None = None

    def __post_init__(self) -> None:
        check_fractions(self.fractions)
        if not (isinstance(self.weight_power, (int, float)) and 0 <= self.weight_power <= 1):
            raise ValueError(f"weight_power must be a number in [0, 1], found "
                             f"{self.weight_power!r}")


def check_fractions(fractions) -> None:
    """Raise :class:`ConfigError` unless there are three positive fractions summing to 1."""
    fr = np.asarray(fractions, dtype=float)
    if fr.shape != (3,) or np.any(fr <= 0) or abs(fr.sum() - 1) > 1e-6:
        raise ConfigError(
            f"split fractions: expected three positive numbers (train, val, test) summing to 1, "
            f"found {list(fractions)!r}"
        )


def resolve_background(paths: list[str]) -> list[str]:
    """Files of a background spec: a folder means its ``background.h5`` (the generator's layout)."""
    out = []
    for p in paths:
        out.append(str(Path(p) / "background.h5") if Path(p).is_dir() else str(p))
    return out


def load_sample(
    paths: str | list[str], reader: str = "auto", *, chunk_size: int = 100_000,
    max_events: int | None = None, role: str = "background",
) -> EventBatch:
    """Read every event of ``paths`` (files, folders with ``background.h5``, globs, file lists,
    sample lists).

    Parameters
    ----------
    paths : str or list of str
        Inputs, expanded by :func:`triggerad.samples.resolve_inputs`.
    reader : str
        Reader name, or ``auto`` to detect it per file.
    chunk_size : int
        Events per read chunk.
    max_events : int, optional
        Stop after this many events.
    role : {"background", "signal", "all"}
        Which samples of a sample list are read.

    Returns
    -------
    EventBatch
        All events, in file then entry order.
    """
    from triggerad.io.registry import check_reader_name
    from triggerad.samples import resolve_inputs

    if reader != "auto":
        check_reader_name(reader)  # before any file is opened
    inputs, _ = resolve_inputs(resolve_background([paths] if isinstance(paths, str) else list(paths)),
                               reader, options=ReadOptions(chunk_size=chunk_size), role=role)
    return _read_inputs(inputs, max_events)


def _read_inputs(inputs: list, max_events: int | None) -> EventBatch:
    """Every event of resolved inputs (``triggerad.samples.Input``), up to ``max_events``."""
    chunks: list[EventBatch] = []
    n = 0
    for item in inputs:
        for chunk in item.reader.iter_chunks(item.path):
            chunks.append(chunk)
            n += len(chunk)
            if max_events is not None and n >= max_events:
                return EventBatch.concatenate(chunks).take(slice(0, max_events))
    return EventBatch.concatenate(chunks)


def load_signals(data: str | Path, max_events: int | None = None
                 ) -> tuple[dict[str, EventBatch], dict[str, str]]:
    """The signal samples of a generated-data folder (``DIR/signal_<name>.h5``) or a sample list.

    Parameters
    ----------
    data : str or Path
        A folder from ``trigger-ad generate``, or a sample list (its ``is_signal`` samples).
    max_events : int, optional
        Use at most this many events per signal.

    Returns
    -------
    batches : dict
        Signal name -> events.
    sources : dict
        Signal name -> its file(s), comma-separated.

    Raises
    ------
    InputFileError
        If there is no signal sample.
    """
    from triggerad.samples import SampleSet, is_sample_list

    if is_sample_list(data):
        groups: dict[str, list] = {}
        for item in SampleSet(data).inputs("signal"):
            groups.setdefault(item.sample, []).append(item)
        if not groups:
            raise InputFileError(f"{data}: the sample list has no sample with is_signal: true")
        return ({name: _read_inputs(items, max_events) for name, items in groups.items()},
                {name: ", ".join(i.path for i in items) for name, items in groups.items()})
    found = sorted(Path(data).glob("signal_*.h5"))
    if not found:
        raise InputFileError(f"{data}: no signal_<name>.h5 files found (expected the output "
                             "folder of `trigger-ad generate`, or a sample list)")
    return ({f.stem.removeprefix("signal_"): load_sample([str(f)], max_events=max_events)
             for f in found}, {f.stem.removeprefix("signal_"): str(f) for f in found})


def fingerprint(batch: EventBatch) -> str:
    """sha256 (hex) over the objects, precomputed features, weights and event ids of ``batch``."""
    h = hashlib.sha256()
    arrays = [batch.objects, batch.weight, batch.event, batch.run, batch.lumi]
    if batch.hlf is not None:
        arrays.append(batch.hlf)
    for arr in arrays:
        arr = np.ascontiguousarray(arr)
        h.update(f"{arr.dtype.str}{arr.shape}".encode())
        h.update(arr.tobytes())
    return h.hexdigest()


def split_indices(n: int, fractions=(0.6, 0.2, 0.2), seed: int = 1234) -> dict[str, np.ndarray]:
    """Event indices of the train / val / test splits: a seeded permutation cut by ``fractions``."""
    check_fractions(fractions)
    perm = np.random.default_rng(seed).permutation(n)
    cuts = np.floor(np.cumsum(fractions)[:2] * n).astype(int)
    parts = np.split(perm, cuts)
    return {name: np.sort(idx) for name, idx in zip(SPLIT_NAMES, parts, strict=True)}


def split(batch: EventBatch, fractions=(0.6, 0.2, 0.2), seed: int = 1234) -> dict[str, EventBatch]:
    """Split ``batch`` into ``train``, ``val`` and ``test`` (deterministic for a given seed).

    Events keep their file order inside each split.
    """
    return {k: batch.take(idx) for k, idx in split_indices(len(batch), fractions, seed).items()}


def describe(paths: list[str], reader: str, cfg: DataConfig, batch: EventBatch) -> dict:
    """The ``data_info`` record stored in a model artifact (see :func:`load_split`)."""
    from triggerad.io.registry import expand_inputs

    counts = {k: int(len(v)) for k, v in split_indices(len(batch), cfg.fractions, cfg.seed).items()}
    return {
        "background": [str(Path(p).resolve()) for p in expand_inputs(resolve_background(paths))],
        "reader": reader,
        "chunk_size": cfg.chunk_size,
        "max_events": cfg.max_events,
        "split_seed": cfg.seed,
        "fractions": list(cfg.fractions),
        "fingerprint": fingerprint(batch),
        "n_events": int(len(batch)),
        "counts": counts,
        "use_weights": cfg.use_weights,
    }


#: Keys of a model's ``data_info`` that :func:`load_split` needs.
SPLIT_KEYS = ("background", "reader", "fingerprint", "n_events", "fractions", "split_seed")


def load_split(data_info: dict, name: str, *, where: str = "model data_info") -> EventBatch:
    """Reload split ``name`` (``train``, ``val``, ``test``) of the background a model was trained on.

    Parameters
    ----------
    data_info : dict
        ``ModelArtifact.data_info``.
    name : str
        Split name.
    where : str
        What ``data_info`` comes from (e.g. ``MODEL/artifact.json``), for error messages.

    Raises
    ------
    MissingFieldError
        For an unknown split name.
    ConfigError
        If ``data_info`` does not record the training sample (an edited or foreign model).
    SchemaMismatchError
        If the background files no longer hold the events the model was trained on.
    """
    if name not in SPLIT_NAMES:
        raise missing_field("split", name, "model data_info", SPLIT_NAMES)
    missing = [key for key in SPLIT_KEYS if key not in data_info]
    if missing:
        raise ConfigError(
            f"{where}: data_info lacks {', '.join(map(repr, missing))} (found keys "
            f"{sorted(data_info)}), so the {name!r} split of the training sample cannot be "
            "reloaded (a model folder edited or not written by `trigger-ad train`?); retrain the "
            "model, or give the events with --data where the command takes it (threshold, "
            "firmware)"
        )
    batch = load_sample(
        data_info["background"], data_info["reader"],
        chunk_size=data_info.get("chunk_size", 100_000), max_events=data_info.get("max_events"),
    )
    found = fingerprint(batch)
    if found != data_info["fingerprint"]:
        raise SchemaMismatchError(
            f"{', '.join(data_info['background'])}: the background changed since the model was "
            f"trained ({len(batch)} events now, {data_info['n_events']} then; fingerprint expected "
            f"{data_info['fingerprint'][:16]}..., found {found[:16]}...); retrain the model or "
            "point it at the original file"
        )
    return split(batch, data_info["fractions"], data_info["split_seed"])[name]

