"""ADC2021 HDF5 reader and writer: exact round trip, public-file defaults, branch maps."""

from __future__ import annotations

import logging

import h5py
import numpy as np
import pytest
from io_samples import random_batch

from triggerad.errors import ConfigError, NonFiniteError
from triggerad.events import EventBatch
from triggerad.io.adc2021 import CHUNK_EVENTS, EXTRAS, Adc2021Reader, write_h5
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


# Field selection ---------------------------------------------------------------------------------
def test_field_selection_reads_exact_arrays_and_keeps_defaults(tmp_path):
    batch = random_batch(40)
    write_h5(tmp_path / "a.h5", batch)
    back = Adc2021Reader().read(tmp_path / "a.h5", 5, 30, fields=["objects", "run", "weight"])
    part = batch.take(slice(5, 30))
    for name in ("objects", "run", "weight"):
        np.testing.assert_array_equal(getattr(back, name), getattr(part, name), err_msg=name)
        assert getattr(back, name).dtype == getattr(part, name).dtype
    # unread fields keep their defaults (event: the entry number), nothing is reported missing
    assert back.defaults == ()
    np.testing.assert_array_equal(back.event, np.arange(5, 30))
    np.testing.assert_array_equal(back.entry, np.arange(5, 30))
    assert set(back.process) == {"data"}
    assert not back.ele_iso.any() and not back.jet_btag.any() and not back.lumi.any()
    assert part.ele_iso.any() and part.lumi.any()  # ... although the file holds them


def test_unread_fields_are_not_logged_as_defaults(tmp_path, caplog):
    with h5py.File(tmp_path / "public.h5", "w") as f:
        f["Particles"] = random_batch(10).objects
    reader = Adc2021Reader(options=ReadOptions(chunk_size=4))
    with caplog.at_level(logging.WARNING):
        chunks = list(reader.iter_chunks(tmp_path / "public.h5", fields=("objects", "weight")))
    missing = [r.getMessage() for r in caplog.records if "found no input for" in r.getMessage()]
    assert len(missing) == 1 and "no input for weight" in missing[0]
    assert [c.defaults for c in chunks] == [("weight",)] * 3
    np.testing.assert_array_equal(EventBatch.concatenate(chunks).weight, np.ones(10))


def test_unknown_field_names_nearest(tmp_path):
    write_h5(tmp_path / "a.h5", random_batch(4))
    with pytest.raises(ConfigError, match=r"'object' is not an event-record field.*'objects'"):
        Adc2021Reader().read(tmp_path / "a.h5", fields=["object"])
    single = Adc2021Reader().read(tmp_path / "a.h5", fields="objects")  # one name as a string
    np.testing.assert_array_equal(single.objects, random_batch(4).objects)


def test_nonfinite_checked_in_selected_fields_only(tmp_path):
    batch = random_batch(6)
    batch.jet_mass[2, 0] = np.nan
    write_h5(tmp_path / "a.h5", batch)
    reader = Adc2021Reader()
    back = reader.read(tmp_path / "a.h5", fields=["objects", "pileup"])
    np.testing.assert_array_equal(back.objects, batch.objects)
    assert not back.jet_mass.any()
    with pytest.raises(NonFiniteError, match=r"jet_mass \(1 events\)"):
        reader.read(tmp_path / "a.h5", fields=["objects", "jet_mass"])


def test_datasets_chunked_by_whole_events(tmp_path):
    n = CHUNK_EVENTS + 100
    batch = EventBatch.empty(n, objects=np.ones((n, 19, 4), np.float32))
    write_h5(tmp_path / "a.h5", batch)
    with h5py.File(tmp_path / "a.h5") as f:
        per_event = [k for k in f if f[k].shape[:1] == (n,)]
        assert len(per_event) == 1 + len(EXTRAS)
        for name in per_event:
            ds = f[name]
            assert ds.chunks == (CHUNK_EVENTS, *ds.shape[1:]), name
            assert ds.compression == "gzip" and not ds.shuffle, name
    back = Adc2021Reader().read(tmp_path / "a.h5", CHUNK_EVENTS - 3, CHUNK_EVENTS + 3)
    np.testing.assert_array_equal(back.objects, np.ones((6, 19, 4), np.float32))
