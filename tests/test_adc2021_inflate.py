"""The ADC2021 reader's own chunk inflation (ISA-L or zlib, in a thread pool) against h5py."""

import sys
import zlib

import h5py
import numpy as np
import pytest

from triggerad.io import inflate
from triggerad.io.adc2021 import _inflatable, _inflate_rows, read_rows


def standard_zlib(monkeypatch) -> inflate.Inflater:
    """The inflater chosen where the ``isal`` package cannot be imported."""
    monkeypatch.setitem(sys.modules, "isal", None)  # `from isal import ...` raises ImportError
    return inflate.choose()


@pytest.fixture(params=[(where, lib) for where in ("inline", "pool") for lib in ("isal", "zlib")],
                ids="-".join)
def h5(tmp_path, request, monkeypatch):
    """The test file, read with every chunk inflated in the reading thread or in the pool, by
    ISA-L (the default inflater) or by the standard zlib (the fallback)."""
    from triggerad.io import adc2021

    where, lib = request.param
    monkeypatch.setattr(adc2021, "INLINE_BYTES", 1 << 30 if where == "inline" else 0)
    if lib == "zlib":
        monkeypatch.setattr(inflate, "INFLATER", standard_zlib(monkeypatch))
    assert inflate.INFLATER.name == lib
    rng = np.random.default_rng(3)
    particles = rng.normal(size=(23, 19, 4)).astype(np.float32)
    weights = rng.random(23)
    path = tmp_path / "f.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("Particles", data=particles, chunks=(5, 19, 4), compression="gzip")
        f.create_dataset("weight", data=weights, chunks=(4,), compression="gzip")
        f.create_dataset("shuffled", data=weights, chunks=(4,), compression="gzip", shuffle=True)
        f.create_dataset("bad", shape=(10,), dtype="f8", chunks=(5,), compression="gzip")
        # a chunk that inflates to the wrong size (3 doubles instead of 5)
        f["bad"].id.write_direct_chunk((0,), zlib.compress(np.zeros(3).tobytes()))
        f["bad"].id.write_direct_chunk((5,), zlib.compress(np.ones(5).tobytes()))
        f.create_dataset("corrupt", shape=(10,), dtype="f8", chunks=(5,), compression="gzip")
        f["corrupt"].id.write_direct_chunk((0,), b"not a deflate stream")
        f.create_dataset("sparse", shape=(10,), dtype="f8", chunks=(5,), compression="gzip",
                         fillvalue=-1.0)
        f["sparse"][:5] = np.arange(5.0)  # the second chunk is never written
    with h5py.File(path, "r") as f:
        yield f


@pytest.mark.parametrize("start, stop", [(0, 23), (3, 17), (5, 10), (22, 30), (7, 8)])
def test_read_rows_equals_h5py(h5, start, stop):
    for name in ("Particles", "weight", "shuffled"):
        ds = h5[name]
        got = read_rows(ds, start, stop)
        np.testing.assert_array_equal(got, ds[start:stop])  # the same bytes
        assert got.dtype == ds.dtype


def test_layouts_the_shortcut_refuses(h5):
    assert _inflatable(h5["Particles"]) and _inflatable(h5["weight"])
    assert not _inflatable(h5["shuffled"])  # a second filter: read through h5py
    assert _inflate_rows(h5["bad"], 0, 10) is None  # wrong inflated size: the caller falls back
    np.testing.assert_array_equal(_inflate_rows(h5["bad"], 5, 10), np.ones(5))
    assert _inflate_rows(h5["corrupt"], 0, 10) is None  # the inflater's error: the caller falls back
    assert _inflate_rows(h5["sparse"], 0, 10) is None  # a chunk never written: through h5py
    np.testing.assert_array_equal(read_rows(h5["sparse"], 3, 10), [3, 4] + [-1] * 5)


def test_isal_and_zlib_inflate_the_same_bytes(monkeypatch):
    rng = np.random.default_rng(5)
    rows = rng.normal(size=(2048, 19, 4)).astype(np.float32).round(1)  # compressible, as events
    data = zlib.compress(rows.tobytes(), 4)  # what HDF5's deflate filter writes
    fast = inflate.choose()
    assert fast.name == "isal"  # the package is a dependency
    slow = standard_zlib(monkeypatch)
    assert slow == ("zlib", zlib.decompress, zlib.error)
    for bufsize in (rows.nbytes, 16384):
        assert fast.decompress(data, bufsize=bufsize) == slow.decompress(data, bufsize=bufsize)
    with pytest.raises(fast.error):
        fast.decompress(data[:-8], bufsize=rows.nbytes)  # truncated


def test_one_pool_per_process(monkeypatch):
    first = inflate.pool()
    assert inflate.pool() is first
    monkeypatch.setattr(inflate.os, "getpid", lambda: -1)  # as in a forked worker
    assert inflate.pool() is not first
    assert 1 <= inflate.threads() <= 4


def test_boundary_chunk_inflated_once(h5, monkeypatch):
    """Consecutive reads sharing a chunk inflate it once; a kept chunk whose compressed bytes
    differ from the file's (a rewritten file) is not used."""
    monkeypatch.setattr(inflate, "_BOUNDARY", {})
    calls, real = [], inflate.INFLATER

    def counting(data, bufsize):
        calls.append(len(data))
        return real.decompress(data, bufsize=bufsize)

    counted = inflate.Inflater("counting", counting, real.error)
    monkeypatch.setattr(inflate, "INFLATER", counted)
    ds = h5["Particles"]  # 23 rows in chunks of 5
    first = read_rows(ds, 0, 7)  # ends inside the chunk [5, 10): kept
    assert len(calls) == 2
    second = read_rows(ds, 7, 23)  # starts inside it: chunks 10, 15, 20 inflated, 5 taken
    assert len(calls) == 5
    np.testing.assert_array_equal(np.concatenate([first, second]), ds[:])
    key = (h5py.h5f.get_name(ds.id), ds.name)
    lo, data, inflated = inflate._BOUNDARY[key]
    assert lo == 5  # the read to the end of the dataset kept nothing
    inflate.boundary_put(key, 5, data + b"x", bytes(len(inflated)))  # stale: bytes differ
    np.testing.assert_array_equal(read_rows(ds, 8, 12), ds[8:12])
    assert len(calls) == 7  # both chunks inflated again


@pytest.mark.parametrize("start, stop", [(0, 23), (3, 17), (5, 10), (22, 30), (7, 8)])
def test_read_rows_extremes_are_those_of_the_rows(h5, start, stop):
    from triggerad.io.base import column_extremes

    ds = h5["Particles"]
    found: list = []
    rows = read_rows(ds, start, stop, extremes=found)
    assert len(found) == 1
    for got, want in zip(found[0], column_extremes(rows), strict=True):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(found[0][0], rows.reshape(-1, 4).min(axis=0))
    np.testing.assert_array_equal(found[0][1], rows.reshape(-1, 4).max(axis=0))
    through_h5py: list = []
    read_rows(h5["shuffled"], start, stop, extremes=through_h5py)
    assert through_h5py == []  # not inflated here: nothing computed, the caller reduces itself


def test_reader_check_uses_the_extremes_found_while_inflating(tmp_path, monkeypatch):
    """NaN and unphysical objects in any chunk are still found (the extremes propagate NaN)."""
    from triggerad.errors import NonFiniteError
    from triggerad.events import EventBatch
    from triggerad.io import adc2021, base
    from triggerad.io.adc2021 import Adc2021Reader, write_h5
    from triggerad.io.base import ReadOptions

    monkeypatch.setattr(adc2021, "INLINE_BYTES", 0)  # every chunk through the pool
    calls = []
    reduce = base.column_extremes
    monkeypatch.setattr(base, "column_extremes", lambda a: calls.append(a.shape) or reduce(a))
    rng = np.random.default_rng(5)
    n = 5000
    objects = np.zeros((n, 19, 4), np.float32)
    objects[:, :, 0] = rng.uniform(1, 50, (n, 19))
    objects[:, :, 2] = rng.uniform(-3, 3, (n, 19))
    for label, row, value, column in (("clean", 0, None, 0), ("nan", 4100, np.nan, 1),
                                      ("phi", 2049, 3.5, 2), ("pt", 4999, -1.0, 0)):
        data = objects.copy()
        if value is not None:
            data[row, 3, column] = value
        path = tmp_path / f"{label}.h5"
        write_h5(path, EventBatch.empty(n, objects=data))
        calls.clear()
        reader = Adc2021Reader(options=ReadOptions(nonfinite="drop", unphysical="drop"))
        batch = reader.read(path, 0, n, ("objects", "run"))
        assert calls == []  # the reading thread did not reduce the objects again
        assert len(batch) == (n if label == "clean" else n - 1)
        if label == "nan":
            with pytest.raises(NonFiniteError):
                Adc2021Reader().read(path, 0, n, ("objects",))


def test_fields_left_out_are_read_only_zero_views(tmp_path):
    from triggerad.events import EventBatch
    from triggerad.io.adc2021 import ZERO_DEFAULTS, Adc2021Reader, write_h5

    n = 300
    objects = np.zeros((n, 19, 4), np.float32)
    objects[:, :, 0] = 5.0
    path = tmp_path / "f.h5"
    write_h5(path, EventBatch.empty(n, objects=objects))
    batch = Adc2021Reader().read(path, 10, 250, ("objects", "run", "weight"))
    default = EventBatch.empty(240)
    for name in ZERO_DEFAULTS:
        got, want = getattr(batch, name), getattr(default, name)
        assert got.shape == want.shape and got.dtype == want.dtype and not got.any()
        assert not got.flags.writeable  # nobody asked for it: not n events of memory
    assert batch.objects.flags.writeable and batch.run.flags.writeable
    kept = batch.take(np.arange(240) % 2 == 0)  # selections still work
    assert kept.ele_iso.shape == (120, 4, 3)
    full = Adc2021Reader().read(path, 10, 250)  # every field: ordinary arrays
    assert all(getattr(full, name).flags.writeable for name in ZERO_DEFAULTS)
