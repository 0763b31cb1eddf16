"""The training sample of the tagger: its files, readers, one checking pass and its description.

:func:`scan` reads every file once, chunk by chunk (memory bounded by the chunk and the
normalisation sample), through the core readers, which refuse another schema and NaN/inf
inputs naming the file; it counts the jets of each class per split, finds the LLP c-tau range,
keeps a uniform random sample of training jets for the normalisation and fingerprints the
files' content.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from tagger.reading import Readers, chunk_index, validation_mask
from triggerad.errors import ConfigError, InputFileError, StatisticsError
from triggerad.io.base import ReadOptions
from triggerad.io.registry import detect_reader, expand_inputs, make_reader
from triggerad.jets import LABELS, JetBatch


@dataclass
class TaggerDataConfig:
    """The ``data`` section.

    Attributes
    ----------
    dir : str or None
        Folder the file names are relative to (``--data DIR``); None: the working directory.
    simulation : list of str
        Labelled simulation (LLP signal and SM jets): files, globs or ``@lists``.
    domain : list of str
        The data-like sample of the domain adaptation (the shifted simulation, ``domain`` 1).
    reader : str
        ``jets`` (HDF5), ``pfnano`` (ROOT) or ``auto`` (from each file's suffix).
    chunk_entries : int
        Entries per read (jets for HDF5, events for PFNano).
    shuffle_buffer : int
        Jets held per stream (bounds the memory; >= training.batch_size).
    read_workers : int
        Threads reading chunks ahead.
    interleave_chunks : int
        Chunks (of any files) merged and permuted before they enter the shuffle buffer.
    validation_fraction : float
        Fraction of events in the validation split.
    normalisation_jets : int
        Training jets (uniform random sample) the normalisation is fitted on.
    nonfinite : {"error", "drop"}
        Jets with NaN/inf inputs: stop naming the file, or drop them.
    cache_mb : float
        Memory budget (MiB) of the prepared (decoded, normalised) chunks kept between passes
        (:class:`tagger.reading.ChunkCache`); chunks beyond it are read from the files on every
        pass; 0: no cache. About 2.6 kB per jet with 25, 25, 4 candidates: the default fits
        ~400k jets.
    """

    dir: str | None = None
    simulation: list[str] = field(default_factory=lambda: ["signal.h5", "background.h5"])
    domain: list[str] = field(default_factory=lambda: ["shifted_sim.h5"])
    reader: str = "auto"
    chunk_entries: int = 4096
    shuffle_buffer: int = 50_000
    read_workers: int = 2
    interleave_chunks: int = 4
    validation_fraction: float = 0.2
    normalisation_jets: int = 100_000
    nonfinite: Literal["error", "drop"] = "error"
    cache_mb: float = 1024.0

    def __post_init__(self) -> None:
        for name in ("chunk_entries", "shuffle_buffer", "read_workers", "interleave_chunks",
                     "normalisation_jets"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, found {getattr(self, name)!r}")
        if self.cache_mb < 0:
            raise ValueError(f"cache_mb must be >= 0, found {self.cache_mb!r}")
        if not 0 < self.validation_fraction < 1:
            raise ValueError(f"validation_fraction must be in (0, 1), found "
                             f"{self.validation_fraction!r}")
        if not self.simulation:
            raise ValueError("simulation: expected at least one file")


def resolve(cfg: TaggerDataConfig, names: list[str], what: str) -> list[str]:
    """File paths of ``names`` (relative to ``cfg.dir``), expanded (globs, lists)."""
    base = Path(cfg.dir) if cfg.dir else None
    items = [n if base is None or Path(n).is_absolute() or n.startswith("@")
             else str(base / n) for n in names]
    try:
        return expand_inputs(items)
    except InputFileError as err:
        raise InputFileError(f"data.{what}: {err}") from err


def readers(cfg: TaggerDataConfig, paths: list[str]) -> Readers:
    """The core jet reader of each path (``cfg.reader`` or detected from the suffix)."""
    options = ReadOptions(chunk_size=cfg.chunk_entries, nonfinite=cfg.nonfinite)
    made: dict[str, object] = {}
    by_path = {}
    for path in paths:
        name = detect_reader(path, record="jets") if cfg.reader == "auto" else cfg.reader
        if name not in made:
            made[name] = make_reader(name, options=options, record="jets")
        by_path[path] = made[name]
    return Readers(by_path)


@dataclass
class SampleScan:
    """What :func:`scan` found (see the module docstring)."""

    files: list[str]
    chunks: list
    counts: dict[str, dict[str, int]]
    ctau_range_mm: tuple[float, float] | None
    fingerprint: str
    norm_sample: JetBatch | None
    domains: set

    def describe(self, reader: str) -> dict:
        """The ``data_info`` entry of this sample."""
        return {"files": [str(Path(f).resolve()) for f in self.files], "reader": reader,
                "fingerprint": self.fingerprint, "counts": self.counts,
                "ctau_range_mm": list(self.ctau_range_mm) if self.ctau_range_mm else None}


def scan(cfg: TaggerDataConfig, paths: list[str], rd: Readers, *, norm_jets: int = 0,
         seed: int = 0, progress: bool = False) -> SampleScan:
    """Read every file once (module docstring)."""
    from tqdm.auto import tqdm

    chunks = chunk_index(rd, paths, cfg.chunk_entries)
    counts = {s: {**{c: 0 for c in LABELS}, "unlabelled": 0} for s in ("train", "val")}
    lo, hi = np.inf, -np.inf
    h = hashlib.sha256()
    rng = np.random.default_rng(seed)
    keep: JetBatch | None = None
    keys = np.zeros(0)
    domains: set = set()
    for path, start, stop in tqdm(chunks, desc="scan", unit="chunk", disable=not progress,
                                  leave=False):
        batch = rd.read(path, start, stop)
        for arr in (batch.globals, batch.ctau, batch.label, batch.event, batch.domain):
            h.update(np.ascontiguousarray(arr).tobytes())
        domains |= set(np.unique(batch.domain).tolist())
        val = validation_mask(batch, cfg.validation_fraction)
        for split, mask in (("train", ~val), ("val", val)):
            labels = batch.label[mask]
            for i, c in enumerate(LABELS):
                counts[split][c] += int(np.sum(labels == i))
            counts[split]["unlabelled"] += int(np.sum(labels < 0))
        llp = (batch.label == 0) & (batch.ctau > 0)
        if llp.any():
            lo, hi = min(lo, float(batch.ctau[llp].min())), max(hi, float(batch.ctau[llp].max()))
        if norm_jets:
            train = batch.take(~val & (batch.label >= 0))
            k = rng.random(len(train))
            keep = train if keep is None else JetBatch.concatenate([keep, train])
            keys = np.concatenate([keys, k])
            if len(keys) > norm_jets:
                best = np.argpartition(keys, norm_jets)[:norm_jets]
                keep, keys = keep.take(np.sort(best)), keys[np.sort(best)]
    return SampleScan(paths, chunks, counts, (lo, hi) if np.isfinite(lo) else None,
                      h.hexdigest(), keep, domains)


def check_simulation(s: SampleScan) -> None:
    """Every class needs training jets, and the validation split LLP and SM jets.

    Raises
    ------
    StatisticsError
        Naming the files, the empty class and the counts found.
    """
    files = ", ".join(s.files)
    empty = [c for c in LABELS if s.counts["train"][c] == 0]
    if empty:
        raise StatisticsError(
            f"data.simulation ({files}): no training jets of class {', '.join(map(repr, empty))}; "
            f"training-split counts {s.counts['train']}; the tagger needs jets of every class "
            f"{list(LABELS)} (add the signal or background sample)")
    val = s.counts["val"]
    if val["LLP"] == 0 or sum(val[c] for c in LABELS[1:]) == 0:
        raise StatisticsError(
            f"data.simulation ({files}): the validation split holds {val}; it needs LLP and SM "
            "jets: use a larger sample or raise data.validation_fraction")
    if s.ctau_range_mm is None:
        raise StatisticsError(f"data.simulation ({files}): no LLP jet has a c-tau > 0")


def check_domain(s: SampleScan) -> None:
    """The domain sample must be the data-like one (``domain`` 1 only).

    Raises
    ------
    ConfigError
        If it holds simulation jets (``domain`` 0).
    """
    if s.domains - {1}:
        raise ConfigError(
            f"data.domain ({', '.join(s.files)}): expected the shifted simulation (jets with "
            f"domain 1), found domain values {sorted(s.domains)}; list the shifted-simulation "
            "files (shifted_sim.h5) under data.domain")
