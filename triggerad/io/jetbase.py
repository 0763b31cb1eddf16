"""Common behaviour of the readers that yield jets (:class:`~triggerad.jets.JetBatch`).

Jet readers read entry ranges like the event readers (``read``, ``iter_chunks``, ``num_entries``)
but return jet batches; their class attribute ``record = "jets"`` tells the registry (and the
anomaly commands, which refuse them) what they yield. Every batch is checked: NaN/inf in a
floating-point field (error or drop, per :class:`~triggerad.io.base.ReadOptions`) and a c-tau
outside the reader's ``ctau_range`` (error naming the file and field).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import numpy as np

from triggerad.errors import ConfigError, InputFileError, NonFiniteError, OutOfRangeError
from triggerad.jets import FLOAT_FIELDS, JetBatch

log = logging.getLogger(__name__)


class JetReaderMixin:
    """Mixin (before :class:`~triggerad.io.base.Reader` in the bases) giving jet readers their
    ``read`` / ``iter_chunks``. Subclasses implement ``_read_jets(path, start, stop)`` returning
    the jets of entries [start, stop) with ``entry`` = the entry number, and ``ctau_field`` (the
    name used in error messages)."""

    record = "jets"
    ctau_field = "ctau"
    ctau_range: tuple[float, float] = (0.01, 10_000.0)

    def _read_jets(self, path: str, start: int, stop: int) -> JetBatch:
        raise NotImplementedError

    def read(self, path, start: int = 0, stop: int | None = None, fields=None) -> JetBatch:
        """Jets of entries [start, stop) of ``path``, checked (module docstring).

        ``fields`` is accepted for interface compatibility and must be None (jet readers read
        every field).
        """
        if fields is not None:
            raise ConfigError(f"{self.name} reader: field selection is not supported for jets")
        path = str(path)
        total = self.num_entries(path)
        stop = total if stop is None else min(stop, total)
        batch = self._read_jets(path, start, stop)
        batch.source_file = np.empty(len(batch), dtype=object)
        batch.source_file.fill(path)
        batch.validate(where=path)
        batch = self._nonfinite(batch, path)
        self._check_ctau(batch, path)
        return batch

    def iter_chunks(self, path, fields=None) -> Iterator[JetBatch]:
        """Jets of ``path`` in chunks of ``options.chunk_size`` entries.

        Raises
        ------
        InputFileError
            If the file holds no entries, or no jet at all.
        """
        total = self.num_entries(path)
        if total == 0:
            raise InputFileError(f"{path}: file holds no entries")
        n_jets = 0
        for start in range(0, total, self.options.chunk_size):
            batch = self.read(path, start, start + self.options.chunk_size, fields)
            n_jets += len(batch)
            if len(batch):
                yield batch
        if n_jets == 0:
            raise InputFileError(f"{path}: file holds {total} entries but no selected jet")

    def note_default(self, path: str, name: str) -> None:
        """Log once per reader that ``name`` is missing from the source and filled by default."""
        if name not in self._warned:
            self._warned.add(name)
            log.warning("%s: the %s reader found no input for %s; filled with its documented "
                        "default (see docs/tagger.md, 'Formats')", path, self.name, name)

    def _nonfinite(self, batch: JetBatch, path: str) -> JetBatch:
        bad = np.zeros(len(batch), bool)
        found = []
        for name in FLOAT_FIELDS:
            arr = getattr(batch, name)
            if np.isfinite(arr.sum()):
                continue
            rows = ~np.isfinite(arr.reshape(len(batch), -1)).all(axis=1)
            found.append(f"{name} ({int(rows.sum())} jets)")
            bad |= rows
        if not bad.any():
            return batch
        message = (f"{path}: {int(bad.sum())} of {len(batch)} jets in entries "
                   f"[{int(batch.entry.min())}, {int(batch.entry.max()) + 1}) hold NaN or inf in "
                   f"{', '.join(found)}")
        if self.options.nonfinite == "error":
            raise NonFiniteError(message + "; set reader option nonfinite: drop to skip them")
        log.warning("%s; dropped (nonfinite: drop)", message)
        return batch.take(~bad)

    def _check_ctau(self, batch: JetBatch, path: str) -> None:
        lo, hi = self.ctau_range
        has = batch.ctau > 0
        bad = has & ((batch.ctau < lo) | (batch.ctau > hi))
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            raise OutOfRangeError(
                f"{path}: field {self.ctau_field!r} at entry {int(batch.entry[k])}: c-tau "
                f"{float(batch.ctau[k])!r} mm outside the configured range [{lo}, {hi}] mm "
                f"({int(bad.sum())} jets); set ctau_range in the branch map to accept it"
            )
