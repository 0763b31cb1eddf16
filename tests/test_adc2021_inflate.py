"""The ADC2021 reader's own chunk inflation (zlib in a thread pool) against h5py."""

import zlib

import h5py
import numpy as np
import pytest

from triggerad.io import inflate
from triggerad.io.adc2021 import _inflatable, _inflate_rows, read_rows


@pytest.fixture(params=["inline", "pool"])
def h5(tmp_path, request, monkeypatch):
    """The test file, read with every chunk inflated in the reading thread or in the pool."""
    from triggerad.io import adc2021

    monkeypatch.setattr(adc2021, "INLINE_BYTES", 1 << 30 if request.param == "inline" else 0)
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


def test_one_pool_per_process(monkeypatch):
    first = inflate.pool()
    assert inflate.pool() is first
    monkeypatch.setattr(inflate.os, "getpid", lambda: -1)  # as in a forked worker
    assert inflate.pool() is not first
    assert 1 <= inflate.threads() <= 4
