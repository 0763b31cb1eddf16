"""ROOT readers: NanoAOD (round trip with write_root, CMS-like files), Delphes, flat ntuples."""

from __future__ import annotations

import logging

import awkward as ak
import numpy as np
import pytest
import uproot
from io_samples import random_batch, uproot_delphes_map, write_delphes, write_flat

from triggerad import schema
from triggerad.events import EventBatch
from triggerad.io.base import ReadOptions
from triggerad.io.delphes import DelphesReader
from triggerad.io.flat import FlatReader
from triggerad.io.nanoaod import NanoAODReader, write_root

STORED = [f for f in EventBatch.ARRAY_FIELDS if f not in ("source_file", "entry")]


def test_nanoaod_round_trip_exact_every_field(tmp_path):
    batch = random_batch(40)
    write_root(tmp_path / "n.root", batch)
    reader = NanoAODReader(options=ReadOptions(chunk_size=15))
    back = EventBatch.concatenate(list(reader.iter_chunks(tmp_path / "n.root")))
    for name in STORED:
        assert getattr(back, name).dtype == getattr(batch, name).dtype, name
        np.testing.assert_array_equal(getattr(back, name), getattr(batch, name), err_msg=name)
    assert back.defaults == ()
    np.testing.assert_array_equal(back.entry, np.arange(40))


def test_nanoaod_file_uses_nanoaod_names(tmp_path):
    write_root(tmp_path / "n.root", random_batch(8))
    with uproot.open(tmp_path / "n.root") as f:
        keys = set(f["Events"].keys())
        assert {"nElectron", "Electron_pt", "Electron_pfRelIso03_chg", "Muon_pfRelIso03_all",
                "nJet", "Jet_btagDeepFlavB", "MET_pt", "MET_phi", "run", "luminosityBlock",
                "event", "weight", "process", "nChHad", "nNeuHad", "Pileup_nTrueInt"} <= keys
        assert str(f["ProcessNames"]) == '["QCD", "W", "Z", "ttbar"]'


def write_cms_like(path):
    """Two events in plain CMS NanoAOD naming (no trigger-ad extras), electrons unsorted."""
    data = {
        "Electron": ak.zip({
            "pt": [[30.0, 50.0], []], "eta": [[0.1, 0.2], []], "phi": [[1.0, 2.0], []],
            "charge": ak.values_astype(ak.Array([[1, -1], []]), np.int32),
            "pfRelIso03_chg": [[0.1, 0.2], []], "pfRelIso03_all": [[0.15, 0.5], []]}),
        "Muon": ak.zip({
            "pt": [[], [25.0]], "eta": [[], [1.0]], "phi": [[], [0.5]],
            "charge": ak.values_astype(ak.Array([[], [1]]), np.int32),
            "pfRelIso03_chg": [[], [0.05]], "pfRelIso03_all": [[], [0.05]]}),
        "Jet": ak.zip({"pt": [[60.0, 40.0, 20.0], []], "eta": [[0.0, 1.0, 2.0], []],
                       "phi": [[0.0, 1.0, 2.0], []], "mass": [[5.0, 4.0, 3.0], []],
                       "btagDeepFlavB": [[0.2783, 0.9, 0.1], []]}),
        "MET_pt": np.array([20.0, 35.0], dtype=np.float32),
        "MET_phi": np.array([0.5, -0.5], dtype=np.float32),
        "run": np.array([1, 1], dtype=np.uint32), "luminosityBlock": np.array([4, 5], np.uint32),
        "event": np.array([11, 12], dtype=np.uint64),
    }
    with uproot.recreate(path) as f:
        f.mktree("Events", {k: ak.type(v) if isinstance(v, ak.Array) else v.dtype
                            for k, v in data.items()}).extend(data)


def test_nanoaod_cms_naming_defaults_and_btag_wp(tmp_path, caplog):
    write_cms_like(tmp_path / "cms.root")
    with caplog.at_level(logging.WARNING):
        b = NanoAODReader().read(tmp_path / "cms.root")
    # electrons ordered by pT: 50 then 30
    np.testing.assert_array_equal(b.electrons[0, :2, 0], [50, 30])
    np.testing.assert_array_equal(b.ele_charge[0, :2], [-1, 1])
    # charged, photon (absent -> 0), neutral = all - charged
    np.testing.assert_allclose(b.ele_iso[0, 0], [0.2, 0.0, 0.3], atol=1e-6)
    np.testing.assert_allclose(b.ele_iso[0, 1], [0.1, 0.0, 0.05], atol=1e-6)
    np.testing.assert_allclose(b.mu_iso[1, 0], [0.05, 0.0, 0.0], atol=1e-7)
    np.testing.assert_array_equal(b.jet_btag[0, :3], [False, True, False])  # > 0.2783 strictly
    np.testing.assert_array_equal(b.event, [11, 12])
    np.testing.assert_array_equal(b.lumi, [4, 5])
    np.testing.assert_array_equal(b.weight, [1, 1])
    assert list(b.process) == ["data", "data"]
    np.testing.assert_array_equal(b.objects[:, 0, 3], [1, 1])
    assert "electron iso_photon (0)" in b.defaults and "event weight (1)" in b.defaults
    text = caplog.text
    assert "no input for electron iso_photon (0)" in text and "no input for pile-up (0)" in text


def test_nanoaod_btag_wp_from_branch_map(tmp_path):
    write_cms_like(tmp_path / "cms.root")
    b = NanoAODReader({"btag": {"wp": 0.05}}).read(tmp_path / "cms.root")
    np.testing.assert_array_equal(b.jet_btag[0, :3], [True, True, True])
    # by name: UL2016preVFP tight (0.6502) tags only the 0.9 jet
    b = NanoAODReader({"btag": {"campaign": "UL2016preVFP", "wp": "tight"}}).read(
        tmp_path / "cms.root")
    np.testing.assert_array_equal(b.jet_btag[0, :3], [False, True, False])


@pytest.mark.parametrize("naming", ["delphes", "uproot"])
def test_delphes_reader(tmp_path, naming):
    batch = random_batch(24)
    write_delphes(tmp_path / "d.root", batch, naming=naming)
    branch_map = uproot_delphes_map() if naming == "uproot" else None
    reader = DelphesReader(branch_map, ReadOptions(chunk_size=10))
    back = EventBatch.concatenate(list(reader.iter_chunks(tmp_path / "d.root")))
    np.testing.assert_array_equal(back.objects, batch.objects)
    for name in ("ele_charge", "mu_charge", "jet_mass", "jet_btag", "event", "n_ch_had",
                 "n_neu_had"):
        np.testing.assert_array_equal(getattr(back, name), getattr(batch, name), err_msg=name)
    for name in ("ele_iso", "mu_iso"):  # absolute sums / pT; no photon component in Delphes
        expected = getattr(batch, name).copy()
        expected[..., 1] = 0
        np.testing.assert_allclose(getattr(back, name), expected, rtol=1e-6, atol=1e-7)
    assert "electron iso_photon (0)" in back.defaults and "process label ('data')" in back.defaults


def test_delphes_btag_bit(tmp_path):
    batch = random_batch(8)
    write_delphes(tmp_path / "d.root", batch)  # tagged jets have BTag = 0b101
    assert batch.jet_btag.any()
    assert not DelphesReader({"btag_bit": 1}).read(tmp_path / "d.root").jet_btag.any()
    np.testing.assert_array_equal(
        DelphesReader({"btag_bit": 2}).read(tmp_path / "d.root").jet_btag, batch.jet_btag)


def test_flat_reader_with_renamed_branch_and_process(tmp_path):
    rng = np.random.default_rng(3)
    hlf = rng.uniform(0, 10, (9, 21)).astype(np.float32)
    process = ["W", "Z", "W"] * 3
    write_flat(tmp_path / "f.root", hlf, branches={"HT": "ht_sum"}, process=process, tree="t")
    reader = FlatReader({"tree": "t", "features": {"HT": "ht_sum"}}, ReadOptions(chunk_size=4))
    b = EventBatch.concatenate(list(reader.iter_chunks(tmp_path / "f.root")))
    assert not b.has_objects
    np.testing.assert_array_equal(b.hlf, hlf)
    np.testing.assert_array_equal(b.event, np.arange(9) + 100)
    np.testing.assert_array_equal(b.weight, np.full(9, 0.5))
    assert list(b.process) == process
    assert b.hlf.shape == (9, len(schema.FEATURE_NAMES))


def test_reader_pickles_without_open_file(tmp_path):
    import pickle

    write_root(tmp_path / "n.root", random_batch(8))
    reader = NanoAODReader({"btag": {"wp": 0.5}})
    first = reader.read(tmp_path / "n.root")
    clone = pickle.loads(pickle.dumps(reader))  # e.g. sent to a Dask worker
    assert clone.branch_map_for(str(tmp_path / "n.root")).btag_cut == 0.5
    np.testing.assert_array_equal(clone.read(tmp_path / "n.root").objects, first.objects)
