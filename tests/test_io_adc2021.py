"""ADC2021 HDF5 reader and writer: exact round trip, public-file defaults, branch maps."""

from __future__ import annotations

import logging

import h5py
import numpy as np
import pytest
from io_samples import random_batch

from triggerad.errors import ConfigError
from triggerad.events import EventBatch
from triggerad.io.adc2021 import Adc2021Reader, write_h5
from triggerad.io.base import ReadOptions

STORED = [f for f in EventBatch.ARRAY_FIELDS if f not in ("source_file", "entry")]


def assert_same(a: EventBatch, b: EventBatch) -> None:
    for name in STORED:
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype, name
        np.testing.assert_array_equal(x, y, err_msg=name)


def test_round_trip_exact_every_field(tmp_path):
    batch = random_batch(40)
    write_h5(tmp_path / "a.h5", batch)
    back = Adc2021Reader().read(tmp_path / "a.h5")
    assert_same(batch, back)
    assert back.defaults == ()
    np.testing.assert_array_equal(back.entry, np.arange(40))
    assert set(back.source_file) == {str(tmp_path / "a.h5")}


def test_chunks_concatenate_to_the_whole_file(tmp_path):
    batch = random_batch(40)
    write_h5(tmp_path / "a.h5", batch)
    reader = Adc2021Reader(options=ReadOptions(chunk_size=7))
    chunks = list(reader.iter_chunks(tmp_path / "a.h5"))
    assert [len(c) for c in chunks] == [7, 7, 7, 7, 7, 5]
    joined = EventBatch.concatenate(chunks)
    assert_same(batch, joined)
    np.testing.assert_array_equal(joined.entry, np.arange(40))


def test_file_layout_matches_public_files(tmp_path):
    write_h5(tmp_path / "a.h5", random_batch(8))
    with h5py.File(tmp_path / "a.h5") as f:
        assert f["Particles"].shape == (8, 19, 4) and f["Particles"].dtype == np.float32
        assert list(f["Particles_Names"][:]) == [b"Pt", b"Eta", b"Phi", b"Class"]
        assert list(f["Particles_Classes"][:]) == [
            b"MET_class_1", b"Four_Ele_class_2", b"Four_Mu_class_3", b"Ten_Jet_class_4"]
        assert h5py.check_string_dtype(f["process"].dtype).encoding == "utf-8"
        assert list(f["process"].asstr()[:4]) == ["W", "Z", "QCD", "ttbar"]
        assert f["weight"].dtype == np.float64


def test_public_file_gets_logged_defaults_once(tmp_path, caplog):
    objects = random_batch(10).objects.astype(np.float64)  # public files hold float64
    with h5py.File(tmp_path / "public.h5", "w") as f:
        f["Particles"] = objects
    reader = Adc2021Reader(options=ReadOptions(chunk_size=4))
    with caplog.at_level(logging.WARNING):
        batch = EventBatch.concatenate(list(reader.iter_chunks(tmp_path / "public.h5")))
    np.testing.assert_array_equal(batch.objects, objects.astype(np.float32))
    np.testing.assert_array_equal(batch.event, np.arange(10))
    np.testing.assert_array_equal(batch.weight, np.ones(10))
    assert set(batch.process) == {"data"}
    assert not batch.ele_iso.any() and not batch.jet_btag.any()
    assert "ele_iso" in batch.defaults and "weight" in batch.defaults
    messages = [r.getMessage() for r in caplog.records if "no input for ele_iso" in r.getMessage()]
    assert len(messages) == 1  # three chunks, logged once


def test_branch_map_renames_datasets(tmp_path):
    with h5py.File(tmp_path / "bb.h5", "w") as f:
        f["Objects"] = random_batch(6).objects
        f["EvtId"] = np.arange(6, dtype=np.int64) * 11
    (tmp_path / "map.yaml").write_text("particles: Objects\nevent: EvtId\n")
    batch = Adc2021Reader(str(tmp_path / "map.yaml")).read(tmp_path / "bb.h5")
    np.testing.assert_array_equal(batch.event, np.arange(6) * 11)
    assert "event" not in batch.defaults


def test_misspelt_branch_map_key_names_nearest(tmp_path):
    (tmp_path / "map.yaml").write_text("particle: Objects\n")
    with pytest.raises(ConfigError, match=r"map.yaml.*unknown key 'particle'.*did you mean 'particles'"):
        Adc2021Reader(str(tmp_path / "map.yaml"))


def test_feature_only_batch_cannot_be_written_and_leaves_nothing(tmp_path):
    batch = random_batch(4)
    batch.has_objects = False
    with pytest.raises(ValueError, match="feature-only"):
        write_h5(tmp_path / "x.h5", batch)
    assert list(tmp_path.iterdir()) == []
