"""ADC2021 HDF5 files: reader and writer of the ``Particles`` (N, 19, 4) layout plus extras.

The public ADC2021 files (arXiv:2107.02157) hold ``Particles`` [pT, eta, phi, class] per slot,
``Particles_Names`` and ``Particles_Classes``. trigger-ad files add one dataset per
:class:`~triggerad.events.EventBatch` extra (``event``, ``run``, ``lumi``, ``pileup``, ``weight``,
``process``, ``ele_charge``, ``mu_charge``, ``ele_iso``, ``mu_iso``, ``jet_mass``, ``jet_btag``,
``n_ch_had``, ``n_neu_had``). A file lacking an extra (e.g. a public file) gets the field's
default (event = entry number, weight 1, process ``data``, all others 0), logged once per reader.
Dataset names come from the branch map (``configs/branch_maps/adc2021.yaml``). A read with a
field selection (``reader.read(path, start, stop, fields=("objects", "run"))``) opens the file
once and reads only the datasets of those fields; the others keep their defaults unlogged.

Datasets stored as :func:`write_h5` writes them (chunked in whole events, gzip as the only
filter, native numeric type) are read chunk by chunk with ``read_direct_chunk`` and inflated by
:data:`triggerad.io.inflate.INFLATER` (ISA-L's, else :mod:`zlib`), which releases the GIL (h5py
holds it while it decompresses): the chunks of a read are inflated in parallel threads
(:mod:`triggerad.io.inflate`, one per CPU, at most 4), and a read-ahead thread runs beside the
scoring. The values are the same bytes; any other layout, or a chunk the shortcut cannot take, is
read through h5py as before (:func:`read_rows`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from triggerad import atomic, schema
from triggerad.errors import ShapeError, missing_field
from triggerad.events import EventBatch
from triggerad.io import inflate as inflating
from triggerad.io.base import Reader, check_readable, column_extremes, keep_extremes
from triggerad.io.common import load_branch_map, reading

#: ``Particles_Names`` and ``Particles_Classes`` exactly as in the public files.
PARTICLES_NAMES = np.array([b"Pt", b"Eta", b"Phi", b"Class"])
PARTICLES_CLASSES = np.array(
    [b"MET_class_1", b"Four_Ele_class_2", b"Four_Mu_class_3", b"Ten_Jet_class_4"]
)


@dataclass
class Adc2021BranchMap:
    """Dataset names of an ADC2021 file (extras: None or absent -> default, logged once)."""

    particles: str = "Particles"
    event: str | None = "event"
    run: str | None = "run"
    lumi: str | None = "lumi"
    pileup: str | None = "pileup"
    weight: str | None = "weight"
    process: str | None = "process"
    ele_charge: str | None = "ele_charge"
    mu_charge: str | None = "mu_charge"
    ele_iso: str | None = "ele_iso"
    mu_iso: str | None = "mu_iso"
    jet_mass: str | None = "jet_mass"
    jet_btag: str | None = "jet_btag"
    n_ch_had: str | None = "n_ch_had"
    n_neu_had: str | None = "n_neu_had"


#: Events per HDF5 chunk written by :func:`write_h5` (a ``Particles`` chunk is 608 kB, within
#: HDF5's default 1 MB chunk cache).
CHUNK_EVENTS = 2048

#: EventBatch extras stored as datasets, in branch-map order.
EXTRAS = tuple(f.name for f in fields(Adc2021BranchMap) if f.name != "particles")
#: Fields whose default is zero: left out of a field selection, they are read-only zero views.
ZERO_DEFAULTS = ("ele_charge", "mu_charge", "ele_iso", "mu_iso", "jet_mass", "jet_btag",
                 "n_ch_had", "n_neu_had")


def _open(path: str):
    import h5py

    with reading(f"{path}: not a readable HDF5 file"):
        return h5py.File(path, "r")


class Adc2021Reader(Reader):
    """Read ADC2021-layout HDF5 files in entry ranges (datasets sliced, constant memory)."""

    name = "adc2021"

    def __init__(self, branch_map=None, options=None):
        super().__init__(load_branch_map(Adc2021BranchMap, self.name, branch_map), options)
        self._template = EventBatch.empty(0)

    def _particles(self, path: str, file):
        name = self.branch_map.particles
        with reading(f"{path}: cannot list the datasets"):
            present = name in file
            if not present:
                raise missing_field("dataset", name, path, list(file.keys()))
            ds = file[name]
        expected = (schema.N_SLOTS, schema.N_COLUMNS)
        if ds.ndim != 3 or ds.shape[1:] != expected:
            raise ShapeError(
                f"{path}: dataset {name!r} expected shape (N, {expected[0]}, {expected[1]}), "
                f"found {ds.shape}"
            )
        return ds

    def num_entries(self, path) -> int:
        """Number of events (length of the ``Particles`` dataset)."""
        check_readable(path)
        with _open(str(path)) as file:
            return int(self._particles(str(path), file).shape[0])

    def _read_range(
        self, path: str, start: int, stop: int | None, fields: frozenset[str] | None
    ) -> EventBatch:
        """Entries ``[start, stop)`` with the datasets of ``fields`` only (one file open)."""
        check_readable(path)
        with _open(path) as file:
            return self._read_open(path, file, start, stop, fields)

    def _read_open(
        self, path: str, file, start: int, stop: int | None, fields: frozenset[str] | None
    ) -> EventBatch:
        particles = self._particles(path, file)
        n_total = particles.shape[0]
        stop = n_total if stop is None else min(stop, n_total)
        n = max(stop - start, 0)
        arrays = {}
        extremes: list = []  # per-column extremes of the objects, when found while inflating
        failed = f"{path}: cannot read entries [{start}, {stop}) of dataset"
        if fields is None or "objects" in fields:
            _check_numeric(path, particles)
            with reading(f"{failed} {particles.name.lstrip('/')!r}"):
                raw = read_rows(particles, start, stop, extremes=extremes)
            arrays["objects"] = raw.astype(np.float32, copy=False)
            if arrays["objects"] is not raw:  # converted: the extremes were of other values
                extremes.clear()
        defaults = []
        for field in EXTRAS:
            if fields is not None and field not in fields:
                continue
            name = getattr(self.branch_map, field)
            with reading(f"{failed} {name!r}"):
                ds = None if name is None else file.get(name)  # one lookup
            if ds is None:
                defaults.append(field)
                continue
            template = getattr(self._template, field)
            if ds.shape != (n_total, *template.shape[1:]):
                raise ShapeError(
                    f"{path}: dataset {name!r} ({field}) expected shape "
                    f"{(n_total, *template.shape[1:])}, found {ds.shape}"
                )
            if field != "process":
                _check_numeric(path, ds)
            with reading(f"{failed} {name!r}"):
                raw = ds.asstr()[start:stop] if field == "process" else read_rows(ds, start, stop)
            if field == "process":
                arrays[field] = np.asarray(raw, dtype=object)
            else:
                arrays[field] = raw.astype(template.dtype, copy=False)
        if "event" not in arrays:
            arrays["event"] = np.arange(start, start + n, dtype=np.int64)
        if fields is not None:  # the zeros of fields nobody asked for: one read-only value each,
            for field in ZERO_DEFAULTS:  # not n-event arrays to allocate and clear (~1 ms a unit)
                if field not in arrays and field not in fields:
                    template = getattr(self._template, field)
                    arrays[field] = np.broadcast_to(np.zeros((), template.dtype),
                                                    (n, *template.shape[1:]))
        batch = EventBatch.empty(n, **arrays)
        batch.defaults = tuple(defaults)
        if extremes and batch.objects is arrays["objects"]:
            keep_extremes(batch, *extremes[0])
        return batch


def _inflatable(ds) -> bool:
    """``ds`` is chunked in whole rows with gzip (deflate) as its only filter, native numbers."""
    if (ds.chunks is None or ds.compression != "gzip" or ds.dtype.kind not in "biuf"
            or not ds.dtype.isnative or tuple(ds.chunks[1:]) != tuple(ds.shape[1:])):
        return False
    return ds.id.get_create_plist().get_nfilters() == 1


#: Chunks smaller than this (uncompressed bytes) are inflated in the reading thread: for the
#: per-event scalars (16 kB chunks) a pool round trip costs more than the inflation.
INLINE_BYTES = 1 << 18


def _inflate_rows(ds, start: int, stop: int, extremes: list | None = None) -> np.ndarray | None:
    """Rows ``[start, stop)`` of an :func:`_inflatable` dataset, or None if a chunk is missing
    or filtered differently (the caller then reads through h5py).

    The compressed chunks are read in this thread (h5py serialises its calls); each is handed
    to a :func:`triggerad.io.inflate.pool` thread as soon as it is read (the inflater and numpy
    release the GIL, so inflating and copying the rows out run in parallel with the next reads).
    Small chunks (:data:`INLINE_BYTES`) are inflated here. A chunk the read ends inside is kept
    (:func:`triggerad.io.inflate.boundary_put`) for the next unit of the file, which starts
    inside it: consecutive units inflate their boundary chunk once."""
    from h5py import h5f

    step, row, dtype = ds.chunks[0], tuple(ds.shape[1:]), ds.dtype  # h5py builds these per call
    out = np.empty((stop - start, *row), dtype=dtype)
    size = step * int(np.prod(row, dtype=np.int64)) * dtype.itemsize
    tail = (0,) * len(row)
    decompress, error = inflating.INFLATER.decompress, inflating.INFLATER.error
    key = (h5f.get_name(ds.id), ds.name)  # (file, dataset): ds.file costs ~40 us
    first, last = start - start % step, (stop - 1) - (stop - 1) % step
    ends_inside = stop < min(last + step, ds.shape[0])

    def inflate(lo: int, data: bytes) -> bool:
        inflated = None
        if lo == first and start > first:
            inflated = inflating.boundary_get(key, lo, data)
        if inflated is None:
            try:  # one output buffer: less CPU than growing one
                inflated = decompress(data, bufsize=size)
            except error:
                return False
            if len(inflated) != size:
                return False
            if lo == last and ends_inside:
                inflating.boundary_put(key, lo, data, inflated)
        chunk = np.frombuffer(inflated, dtype=dtype).reshape(step, *row)
        a, b = max(start, lo), min(stop, lo + step)
        out[a - start:b - start] = chunk[a - lo:b - lo]
        if extremes is not None:  # on the rows just written, still in this core's cache
            extremes.append(column_extremes(out[a - start:b - start]))
        return True

    pool = inflating.pool() if size >= INLINE_BYTES else None
    read_chunk = ds.id.read_direct_chunk
    jobs = []
    for lo in range(start - start % step, stop, step):
        try:
            mask, data = read_chunk((lo, *tail))
        except (OSError, KeyError, ValueError, RuntimeError):  # RuntimeError: never written
            return None
        if mask:
            return None
        if pool is None:
            if not inflate(lo, data):
                return None
        else:
            jobs.append(pool.submit(inflate, lo, data))
    return out if all(job.result() for job in jobs) else None


def read_rows(ds, start: int, stop: int, *, extremes: list | None = None) -> np.ndarray:
    """``ds[start:stop]`` (clipped to the dataset), inflating gzip chunks itself
    (:data:`triggerad.io.inflate.INFLATER`) when the layout allows it (same values, GIL released
    while inflating), else through h5py.

    ``extremes``: a list that receives one ``(low, high)`` pair, the minimum and maximum of each
    column (last axis) of the rows (:func:`triggerad.io.base.column_extremes`, NaN propagating),
    when they were computed while inflating, chunk by chunk beside the reading thread (it stays
    empty otherwise)."""
    stop = min(stop, ds.shape[0])
    if stop > start and _inflatable(ds):
        parts: list | None = [] if extremes is not None else None
        rows = _inflate_rows(ds, start, stop, parts)
        if rows is not None:
            if parts:
                extremes.append((np.min([p[0] for p in parts], axis=0),
                                 np.max([p[1] for p in parts], axis=0)))
            return rows
    return ds[start:stop]


def _storage(data: np.ndarray) -> dict:
    """``create_dataset`` options of a per-event array: gzip in chunks of whole events."""
    if not len(data):
        return {}
    return {"compression": "gzip", "chunks": (min(len(data), CHUNK_EVENTS), *data.shape[1:])}


def _check_numeric(path: str, dataset) -> None:
    """Refuse a dataset of strings or compound records where numbers are expected.

    NumPy would turn the strings ``b"12.5"`` into numbers without a word.
    """
    if dataset.dtype.kind not in "biuf":
        raise ShapeError(
            f"{path}: dataset {dataset.name.lstrip('/')!r} holds {dataset.dtype} values "
            f"(kind {dataset.dtype.kind!r}); expected numbers (float or integer)"
        )


def write_h5(path: str | Path, batch: EventBatch) -> None:
    """Write ``batch`` as an ADC2021 HDF5 file with the trigger-ad extras, atomically.

    Datasets: ``Particles`` (n, 19, 4) float32, ``Particles_Names``, ``Particles_Classes`` (as in
    the public files) and one dataset per extra field (``process`` as variable-length UTF-8).
    Per-event datasets are gzip-compressed in chunks of :data:`CHUNK_EVENTS` whole events (all
    columns of an event in one chunk, chunk boundaries aligned across datasets), so an entry-range
    read decompresses only the chunks it overlaps; gzip is a standard HDF5 filter, readable by
    any HDF5 library. Reading the file back with :class:`Adc2021Reader` gives identical arrays
    for every field.
    """
    import h5py

    if not batch.has_objects:
        raise ValueError(f"{path}: cannot write a feature-only event batch in the ADC2021 layout")
    with atomic.atomic_path(path) as tmp, h5py.File(tmp, "w") as file:
        file.create_dataset("Particles", data=batch.objects.astype(np.float32),
                            **_storage(batch.objects))
        file.create_dataset("Particles_Names", data=PARTICLES_NAMES)
        file.create_dataset("Particles_Classes", data=PARTICLES_CLASSES)
        for field in EXTRAS:
            data = getattr(batch, field)
            if field == "process":
                data = data.astype(str).astype(object)
                file.create_dataset(field, data=data, dtype=h5py.string_dtype("utf-8"),
                                    **_storage(data))
            else:
                file.create_dataset(field, data=data, **_storage(data))
