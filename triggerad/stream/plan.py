"""Work plan: the input files cut into work units (file, start, stop) in a deterministic order.

Unit ``i`` always covers the same entries of the same file for the same inputs and chunk size, so
a manifest entry for unit ``i`` identifies exactly which events were processed. Files that cannot
be opened are listed with the error (``--on-error skip``) or stop the run (``--on-error fail``).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from triggerad.errors import TriggerADError
from triggerad.io.base import Reader

log = logging.getLogger(__name__)

#: Errors that mark an input file as failed rather than crashing the run.
INPUT_ERRORS = (TriggerADError, OSError, ValueError, KeyError, RuntimeError)


@dataclass(frozen=True)
class WorkUnit:
    """Entries ``[start, stop)`` of ``file``; ``offset`` is the stream index of entry ``start``."""

    index: int
    file: str
    start: int
    stop: int
    offset: int

    @property
    def size(self) -> int:
        """Number of entries."""
        return self.stop - self.start


@dataclass
class Plan:
    """Work units in processing order, the files that could not be opened and the empty ones."""

    units: list[WorkUnit]
    failed: list[dict] = field(default_factory=list)
    empty: list[str] = field(default_factory=list)

    @property
    def events(self) -> int:
        """Total entries in the plan."""
        return sum(u.size for u in self.units)

    def fingerprint(self) -> str:
        """sha256 of the unit list (a resumed run must have the same plan)."""
        text = json.dumps([asdict(u) for u in self.units], sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class CountEntries:
    """The task counting a file's entries: ``(n, None)``, or ``(None, error)`` if unreadable.

    Picklable, so that the executor's workers count the files of a plan in parallel.
    """

    reader_for: Callable[[str], Reader]

    def __call__(self, path: str) -> tuple[int | None, BaseException | None]:
        """Entries of ``path`` (or the reading error)."""
        try:
            return self.reader_for(path).num_entries(path), None
        except INPUT_ERRORS as err:
            return None, err


def make_plan(
    files: list[str],
    reader_for: Callable[[str], Reader],
    *,
    chunk_size: int,
    on_error: str = "skip",
    executor=None,
) -> Plan:
    """Cut ``files`` (in the given order) into units of at most ``chunk_size`` entries.

    Parameters
    ----------
    files : list of str
        Expanded input paths, in stream order.
    reader_for : callable
        Returns the reader of a path.
    chunk_size : int
        Entries per unit.
    on_error : {"skip", "fail"}
        ``skip`` lists unreadable files in :attr:`Plan.failed` (and logs them); ``fail`` raises.
    executor : triggerad.executor.Executor, optional
        Where the entries of the files are counted (in parallel on ``process`` and ``dask``);
        default in this process.
    """
    from triggerad.executor import LocalExecutor

    units: list[WorkUnit] = []
    failed: list[dict] = []
    empty: list[str] = []
    offset = 0
    counts = (executor or LocalExecutor()).map(CountEntries(reader_for), files)
    for path, (total, err) in zip(files, counts, strict=True):
        if err is not None:
            if on_error == "fail":
                raise err
            log.error("%s: skipped, cannot be read: %s", path, err)
            failed.append({"file": path, "error": f"{type(err).__name__}: {err}"})
            continue
        if total == 0:
            log.warning("%s: holds no events", path)
            empty.append(path)
        for start in range(0, total, chunk_size):
            stop = min(start + chunk_size, total)
            units.append(WorkUnit(len(units), path, start, stop, offset + start))
        offset += total
    return Plan(units, failed, empty)


class ReaderChooser:
    """Path -> reader, for one reader kind or ``auto`` (detected per file from its suffix/trees).

    Picklable, so Dask workers build their own readers.

    Parameters
    ----------
    kind : str
        Reader name (``adc2021``, ``delphes``, ``nanoaod``, ``flat``, ``parquet``; for jets
        ``jets``, ``pfnano``) or ``auto``.
    branch_map : str, optional
        YAML branch map overriding the reader's default.
    chunk_size : int
        Reader chunk size.
    nonfinite, unphysical : {"error", "drop"}
        Policies for events with NaN/inf or physically impossible inputs
        (:class:`~triggerad.io.base.ReadOptions`).
    record : {"events", "jets"}
        What the scorer consumes: event readers, or jet readers (``jets``, ``pfnano``).
    """

    def __init__(self, kind: str = "auto", branch_map: str | None = None,
                 chunk_size: int = 100_000, *, nonfinite: str = "error",
                 unphysical: str = "error", record: str = "events"):
        from triggerad.io.registry import check_reader_name

        if kind != "auto":
            check_reader_name(kind, record)  # before any file is opened
        self.kind, self.branch_map, self.chunk_size = kind, branch_map, chunk_size
        self.policies = {"nonfinite": nonfinite, "unphysical": unphysical}
        self.record = record
        self._readers: dict[str, Reader] = {}
        self._kinds: dict[str, str] = {}

    def __call__(self, path: str) -> Reader:
        """The reader of ``path``."""
        from triggerad.io.base import ReadOptions
        from triggerad.io.registry import detect_reader, make_reader

        kind = self.kind
        if kind == "auto":  # detected once per file (for HDF5 it opens the file)
            if path not in self._kinds:
                self._kinds[path] = detect_reader(path, self.record)
            kind = self._kinds[path]
        if kind not in self._readers:
            self._readers[kind] = make_reader(kind, self.branch_map,
                                              ReadOptions(chunk_size=self.chunk_size,
                                                          **self.policies),
                                              record=self.record)
        return self._readers[kind]
