"""Reading side of the training input pipeline (:mod:`tagger.pipeline`, steps 1-3): chunks of
the jet files -> prepared rows -> shuffle buffer.

A chunk is read through the core readers (:mod:`triggerad.io`, which check schema and NaN/inf),
restricted to one split (:func:`validation_mask`) and **prepared** once (:func:`prepare_rows`):
the candidate blocks and globals normalised (float32), plus the raw pT, eta, c-tau and label
that the batch assembly reads. With a :class:`ChunkCache` the prepared rows of each (chunk,
split) are kept in memory up to a byte budget (``data.cache_mb``): after the first pass a
cached chunk costs neither HDF5 decompression nor normalisation; chunks beyond the budget are
read again on every pass (streaming). Cached and streamed chunks give identical rows, so the
batches of a seed do not depend on the budget.
"""

from __future__ import annotations

import concurrent.futures
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from tagger import inputs as tin
from triggerad.jets import GLOBAL_FEATURES

#: JetBatch fields the pipeline reads per jet.
KEEP = ("charged", "neutral", "sv", "globals", "ctau", "label", "domain")
#: Fields of a prepared row: normalised inputs, then raw pT, eta (GeV, for the resampling),
#: c-tau (mm) and label.
ROW_FIELDS = ("charged", "neutral", "sv", "globals", "pt", "eta", "ctau", "label")
PT = GLOBAL_FEATURES.index("pt")
ETA = GLOBAL_FEATURES.index("eta")


class Readers:
    """The core jet reader of every file (one per reader name), dispatched by path."""

    def __init__(self, readers: dict[str, object]):
        self.by_path = readers

    def num_entries(self, path: str) -> int:
        return self.by_path[path].num_entries(path)

    def read(self, path: str, start: int, stop: int):
        return self.by_path[path].read(path, start, stop)


def chunk_index(reader, paths: list[str], chunk_entries: int) -> list[tuple[str, int, int]]:
    """(path, start, stop) entry ranges covering every file."""
    out = []
    for path in paths:
        total = reader.num_entries(path)
        out.extend((path, s, min(s + chunk_entries, total)) for s in range(0, total, chunk_entries))
    return out


def validation_mask(batch, fraction: float) -> np.ndarray:
    """(n,) bool: jets of the validation split: a hash of the file's stem (``signal`` of
    ``signal.h5`` and ``signal.root``: the same jets get the same split in both formats) and the
    event number."""
    if fraction <= 0:
        return np.zeros(len(batch), bool)
    files, inverse = np.unique(batch.source_file.astype(str), return_inverse=True)
    crc = np.array([zlib.crc32(Path(f).stem.encode()) for f in files], dtype=np.uint64)
    salt = crc[inverse]
    h = (batch.event.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15) + salt) & np.uint64(2**32 - 1)
    h = (h * np.uint64(2654435761)) & np.uint64(2**32 - 1)
    return h.astype(np.float64) / 2**32 < fraction


class _Fields:
    """Attribute access to a dict of jet arrays."""

    def __init__(self, arrays: dict):
        self.__dict__.update(arrays)


def prepare_rows(jets, norm: dict) -> dict[str, np.ndarray]:
    """The prepared rows (:data:`ROW_FIELDS`) of ``jets`` (a JetBatch or a dict of its
    :data:`KEEP` arrays): inputs normalised with ``norm`` (:func:`tagger.inputs.normalised`)."""
    j = _Fields(jets) if isinstance(jets, dict) else jets
    rows = tin.normalised(j, norm)
    g = np.asarray(j.globals)
    rows.update(pt=g[:, PT].astype(np.float32), eta=g[:, ETA].astype(np.float32),
                ctau=np.asarray(j.ctau, np.float32), label=np.asarray(j.label))
    return rows


def nbytes(rows: dict[str, np.ndarray]) -> int:
    """Bytes held by a dict of arrays."""
    return sum(v.nbytes for v in rows.values())


class ChunkCache:
    """Prepared rows of (chunk, split) kept in memory while they fit ``budget_bytes``.

    Thread-safe (the reader threads of every stream share one cache). Cached arrays are never
    modified: the pipeline copies rows out of them (:func:`read_chunks` merges every group).
    """

    def __init__(self, budget_bytes: int):
        self.budget = int(budget_bytes)
        self.used = 0
        self.store: dict[tuple, dict] = {}
        self.lock = threading.Lock()

    def get(self, key: tuple, load) -> dict:
        """The rows of ``key``: cached, or ``load()`` (kept when they fit the budget)."""
        rows = self.store.get(key)
        if rows is not None:
            return rows
        rows = load()
        size = nbytes(rows)
        with self.lock:
            if key not in self.store and self.used + size <= self.budget:
                self.store[key] = rows
                self.used += size
        return rows


def load_chunk(reader, chunk: tuple[str, int, int], *, split: str | None, fraction: float,
               norm: dict | None) -> dict[str, np.ndarray]:
    """The jets of ``chunk`` in ``split`` (``train``, ``val``, None: all): prepared rows
    (:func:`prepare_rows`), or the raw :data:`KEEP` arrays when ``norm`` is None."""
    batch = reader.read(*chunk)
    if split is not None:
        val = validation_mask(batch, fraction)
        batch = batch.take(val if split == "val" else ~val)
    if norm is None:
        return {f: getattr(batch, f) for f in KEEP}
    return prepare_rows(batch, norm)


def merge(group: list[dict], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The jets of ``group`` concatenated and randomly permuted, in one copy (each part is
    scattered to its permuted slots)."""
    n = sum(len(g["label"]) for g in group)
    perm = rng.permutation(n)
    slot = np.empty(n, np.intp)
    slot[perm] = np.arange(n)
    out = {f: np.empty((n, *v.shape[1:]), v.dtype) for f, v in group[0].items()}
    start = 0
    for g in group:
        s = slot[start:start + len(g["label"])]
        for f, v in g.items():
            out[f][s] = v
        start += len(s)
    return out


def read_chunks(reader, chunks: list[tuple[str, int, int]], *, rng: np.random.Generator,
                split: str | None, fraction: float, workers: int, loop: bool,
                interleave: int = 4, norm: dict | None = None,
                cache: ChunkCache | None = None) -> Iterator[dict[str, np.ndarray]]:
    """Jets of ``chunks`` restricted to ``split`` (:func:`load_chunk`; through ``cache`` when
    given).

    Each pass visits the chunks in a fresh random order, read ahead by ``workers`` threads;
    ``interleave`` consecutive chunks (of any files) are merged and permuted (:func:`merge`)
    before they are yielded, so that even the first fill of a shuffle buffer mixes several
    files.
    """
    def load(chunk):
        def read():
            return load_chunk(reader, chunk, split=split, fraction=fraction, norm=norm)
        return read() if cache is None else cache.get((*chunk, split, norm is None), read)

    with concurrent.futures.ThreadPoolExecutor(max(1, workers)) as pool:
        while True:
            order = rng.permutation(len(chunks))
            ahead = max(workers, interleave)
            pending = [pool.submit(load, chunks[i]) for i in order[:ahead]]
            group: list[dict] = []
            for k in range(len(order)):
                jets = pending[k].result()
                if k + ahead < len(order):
                    pending.append(pool.submit(load, chunks[order[k + ahead]]))
                if len(jets["label"]):
                    group.append(jets)
                if group and (len(group) == interleave or k == len(order) - 1):
                    yield merge(group, rng)
                    group = []
            if not loop:
                return


class ShuffleBuffer:
    """A fixed-size reservoir of jets: :meth:`draw` returns random jets and refills their slots
    from the source (``tf.data`` shuffle semantics, done on whole arrays; each jet is copied
    once into the buffer and once out of it).

    Parameters
    ----------
    source : iterator of dict
        Chunks of jets (:func:`read_chunks`).
    size : int
        Jets held.
    rng : numpy Generator
    """

    def __init__(self, source: Iterator[dict], size: int, rng: np.random.Generator):
        self.source, self.size, self.rng = source, size, rng
        self.pending: dict | None = None
        self.offset = 0
        self.buf: dict | None = None
        self.n = 0
        self.exhausted = False

    def _pull(self, slots: np.ndarray) -> int:
        """Write the next jets of the source into buffer ``slots`` (in order); how many."""
        got = 0
        while got < len(slots) and not self.exhausted:
            if self.pending is None:
                try:
                    self.pending, self.offset = next(self.source), 0
                except StopIteration:
                    self.exhausted = True
                    break
            if self.buf is None:
                self.buf = {f: np.empty((self.size, *v.shape[1:]), v.dtype)
                            for f, v in self.pending.items()}
            size = len(self.pending["label"])
            take = min(len(slots) - got, size - self.offset)
            for f, v in self.pending.items():
                self.buf[f][slots[got:got + take]] = v[self.offset:self.offset + take]
            got += take
            self.offset += take
            if self.offset == size:
                self.pending = None
        return got

    def draw(self, k: int) -> dict | None:
        """``k`` random jets (fewer at the end of a finite source; None when empty)."""
        if self.buf is None:
            self.n = self._pull(np.arange(self.size))
        if self.n == 0:
            return None
        k = min(k, self.n)
        idx = self.rng.choice(self.n, k, replace=False)
        out = {f: v[idx] for f, v in self.buf.items()}
        m = self._pull(idx)
        if m < k:  # finite source ran dry: move the last jets into the remaining holes
            holes = np.sort(idx[m:])
            keep = np.setdiff1d(np.arange(self.n - len(holes), self.n), holes)
            targets = holes[holes < self.n - len(holes)]
            for f in self.buf:
                self.buf[f][targets] = self.buf[f][keep]
            self.n -= len(holes)
        return out
