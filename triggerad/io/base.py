"""The reader interface: every input format is read as entry ranges of an :class:`EventBatch`.

Readers are addressable by (file, entry range) so that stream scoring can record exactly what it
processed and resume; :meth:`Reader.iter_chunks` reads a file in bounded memory.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from triggerad.errors import InputFileError, NonFiniteError
from triggerad.events import EventBatch

log = logging.getLogger(__name__)


@dataclass
class ReadOptions:
    """Options shared by every reader (the ``reader`` section of a config).

    Attributes
    ----------
    chunk_size : int
        Events per chunk; memory use is bounded by this, not by the file size.
    nonfinite : {"error", "drop"}
        What to do with events holding NaN or inf: ``error`` stops with the file, field and
        count; ``drop`` removes those events and logs a warning with the count.
    """

    chunk_size: int = 100_000
    nonfinite: Literal["error", "drop"] = "error"

    def __post_init__(self) -> None:
        if self.chunk_size <= 0:
            raise ValueError(f"chunk_size must be positive, found {self.chunk_size!r}")


class Reader:
    """Base class of the format readers.

    Subclasses implement :meth:`num_entries` and :meth:`_read` and set ``name``.
    """

    name = "base"

    def __init__(self, branch_map: dict | None = None, options: ReadOptions | None = None):
        self.options = options or ReadOptions()
        self.branch_map = branch_map
        self._warned: set[str] = set()

    def num_entries(self, path: str | Path) -> int:
        """Number of events in ``path``."""
        raise NotImplementedError

    def _read(self, path: str, start: int, stop: int) -> EventBatch:
        raise NotImplementedError

    def read(self, path: str | Path, start: int = 0, stop: int | None = None) -> EventBatch:
        """Read entries ``[start, stop)`` of ``path`` as an :class:`EventBatch`.

        ``source_file`` and ``entry`` are filled; non-finite values are handled per
        :attr:`ReadOptions.nonfinite`.
        """
        path = str(path)
        check_readable(path)
        total = self.num_entries(path)
        stop = total if stop is None else min(stop, total)
        batch = self._read(path, start, stop)
        batch.source_file = np.full(len(batch), path, dtype=object)
        batch.entry = np.arange(start, start + len(batch), dtype=np.int64)
        batch.validate(where=path)
        for name in batch.defaults:
            self.note_default(path, name)
        return self.handle_nonfinite(batch, path)

    def iter_chunks(self, path: str | Path) -> Iterator[EventBatch]:
        """Yield the events of ``path`` in chunks of ``options.chunk_size``.

        Raises
        ------
        InputFileError
            If the file holds no events.
        """
        total = self.num_entries(path)
        if total == 0:
            raise InputFileError(f"{path}: file holds no events")
        size = self.options.chunk_size
        for start in range(0, total, size):
            yield self.read(path, start, start + size)

    def note_default(self, path: str, name: str) -> None:
        """Log once per reader that ``name`` is missing from the source and filled by default."""
        if name not in self._warned:
            self._warned.add(name)
            log.warning(
                "%s: the %s reader found no input for %s; filled with its documented default "
                "(see README, 'Event record')", path, self.name, name,
            )

    def handle_nonfinite(self, batch: EventBatch, path: str) -> EventBatch:
        """Reject or drop events holding NaN/inf, naming the fields and the count."""
        bad = np.zeros(len(batch), dtype=bool)
        fields = []
        for name in ("objects", "ele_iso", "mu_iso", "jet_mass", "weight", "pileup", "hlf"):
            arr = getattr(batch, name)
            if arr is None:
                continue
            rows = ~np.isfinite(arr.reshape(len(batch), -1)).all(axis=1)
            if rows.any():
                fields.append(f"{name} ({int(rows.sum())} events)")
                bad |= rows
        if not bad.any():
            return batch
        message = (
            f"{path}: {int(bad.sum())} of {len(batch)} events in entries "
            f"[{batch.entry[0]}, {batch.entry[-1] + 1}) hold NaN or inf in {', '.join(fields)}"
        )
        if self.options.nonfinite == "error":
            raise NonFiniteError(message + "; set reader option nonfinite: drop to skip them")
        log.warning("%s; dropped (nonfinite: drop)", message)
        return batch.take(~bad)


def check_readable(path: str | Path) -> None:
    """Raise :class:`InputFileError` if ``path`` does not exist, is a folder or is unreadable."""
    p = Path(path)
    if not p.exists():
        raise InputFileError(f"{path}: no such file")
    if p.is_dir():
        raise InputFileError(f"{path}: is a folder, expected a file")
    try:
        with open(p, "rb") as fh:
            fh.read(1)
    except OSError as err:
        raise InputFileError(f"{path}: cannot read ({err.strerror or err})") from err
