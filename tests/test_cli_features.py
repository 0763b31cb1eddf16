"""``trigger-ad features``: hand-checked feature values through every input format."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from io_samples import single_muon_batch, write_delphes, write_flat

from anomaly.features import compute_features
from triggerad import schema
from triggerad.cli import main
from triggerad.cli.features import READER_CHOICES
from triggerad.events import from_collections
from triggerad.io.adc2021 import write_h5
from triggerad.io.nanoaod import write_root
from triggerad.io.registry import detect_reader, readers_of

COLUMNS = [*schema.FEATURE_NAMES, "event", "process", "weight"]

#: Single muon (pT 40, phi 0) + MET 30 at phi pi/2: MT = sqrt(2 * 40 * 30), METp = 0, METo = 30.
MUON_EVENT = {
    "HT": 0, "allJetMass": 0, "allMuPt": 40, "allMuMass": 0, "allElePt": 0, "allEleMass": 0,
    "LepPt": 40, "LepIsoCh": 0.05, "LepIsoGamma": 0.02, "LepIsoNeu": 0.01,
    "METp": 0, "METo": 30, "MT": np.sqrt(2 * 40 * 30), "nMu": 1, "nJets": 0, "bJets": 0,
    "nEle": 0, "LepCharge": -1, "LepIsEle": 0, "nChHad": 0, "nNeuHad": 0,
}


def run_features(tmp_path, inputs, *extra) -> pd.DataFrame:
    out = tmp_path / "out" / "f.parquet"
    assert main(["features", *map(str, inputs), "--out", str(out), *extra]) == 0
    return pd.read_parquet(out)


def check_muon_event(frame: pd.DataFrame, photon_iso: float = 0.02) -> None:
    assert list(frame.columns) == COLUMNS
    assert len(frame) == 1
    expected = dict(MUON_EVENT, LepIsoGamma=photon_iso)
    got = frame.iloc[0]
    for name, value in expected.items():
        np.testing.assert_allclose(got[name], value, rtol=1e-6, atol=1e-5, err_msg=name)


@pytest.mark.parametrize("fmt", ["adc2021", "nanoaod"])
def test_single_muon_event_through_writers(tmp_path, fmt):
    batch = single_muon_batch()
    path = tmp_path / ("in.h5" if fmt == "adc2021" else "in.root")
    (write_h5 if fmt == "adc2021" else write_root)(path, batch)
    frame = run_features(tmp_path, [path], "--reader", fmt)
    check_muon_event(frame)
    assert frame["event"].tolist() == [7] and frame["process"].tolist() == ["W"]
    assert frame["weight"].tolist() == [2.5]


def test_single_muon_event_delphes(tmp_path):
    write_delphes(tmp_path / "d.root", single_muon_batch())
    frame = run_features(tmp_path, [tmp_path / "d.root"], "--reader", "delphes")
    check_muon_event(frame, photon_iso=0.0)  # Delphes has no photon isolation component
    assert frame["event"].tolist() == [7]
    assert frame["process"].tolist() == ["data"] and frame["weight"].tolist() == [1.0]


def test_single_muon_event_flat_and_parquet_pass_through(tmp_path):
    hlf = np.array([[MUON_EVENT[f] for f in schema.FEATURE_NAMES]], dtype=np.float32)
    write_flat(tmp_path / "flat.root", hlf, process=["W"])
    frame = run_features(tmp_path, [tmp_path / "flat.root"], "--reader", "flat")
    check_muon_event(frame)
    assert frame["process"].tolist() == ["W"] and frame["event"].tolist() == [100]
    # a feature file is itself a valid parquet input: identical output
    (tmp_path / "f1.parquet").write_bytes((tmp_path / "out" / "f.parquet").read_bytes())
    again = run_features(tmp_path, [tmp_path / "f1.parquet"], "--reader", "parquet")
    pd.testing.assert_frame_equal(again, frame)


def test_two_electrons_and_jets_hand_checked(tmp_path):
    """e(50, phi 0) + e(30, phi pi) back to back at eta 0; jets 60 (b) and 40; MET 10 at phi 0."""
    electrons = {"pt": np.array([[30.0, 50.0]]), "eta": np.zeros((1, 2)),
                 "phi": np.array([[np.pi, 0.0]]), "charge": np.array([[-1, 1]], np.int8),
                 "iso": np.array([[[0.3, 0.3, 0.3], [0.1, 0.2, 0.3]]], np.float32)}
    jets = {"pt": np.array([[60.0, 40.0]]), "eta": np.zeros((1, 2)), "phi": np.array([[0.0, 0.0]]),
            "mass": np.array([[0.0, 0.0]]), "btag": np.array([[True, False]])}
    none = {"pt": np.zeros((1, 0)), "eta": np.zeros((1, 0)), "phi": np.zeros((1, 0))}
    batch = from_collections(np.array([10.0]), np.array([0.0]), electrons, none, jets,
                             n_ch_had=np.array([12], np.int32), n_neu_had=np.array([3], np.int32))
    write_h5(tmp_path / "e.h5", batch)
    write_root(tmp_path / "e.root", batch)
    frame = run_features(tmp_path, [tmp_path / "e.h5", tmp_path / "e.root"])  # --reader auto
    expected = {"HT": 100, "allJetMass": 0, "allElePt": 20, "allEleMass": np.sqrt(2 * 50 * 30 * 2),
                "LepPt": 50, "LepIsoCh": 0.1, "LepIsoGamma": 0.2, "LepIsoNeu": 0.3, "METp": 10,
                "METo": 0, "MT": 0, "nEle": 2, "nJets": 2, "bJets": 1, "LepCharge": 1,
                "LepIsEle": 1, "nChHad": 12, "nNeuHad": 3, "nMu": 0}
    assert len(frame) == 2
    for name, value in expected.items():
        np.testing.assert_allclose(frame[name], [value, value], rtol=1e-5, atol=2e-3, err_msg=name)


def test_output_schema_provenance_and_chunking(tmp_path):
    from io_samples import random_batch

    batch = random_batch(30)
    write_h5(tmp_path / "a.h5", batch)
    out = tmp_path / "out" / "f.parquet"
    assert main(["features", str(tmp_path / "a.h5"), "--out", str(out), "--chunk-size", "7"]) == 0
    table = pq.read_table(out)
    assert table.schema.names == COLUMNS
    assert [str(t) for t in table.schema.types[-3:]] == ["int64", "string", "double"]
    assert all(str(t) == "float" for t in table.schema.types[:21])
    np.testing.assert_array_equal(table.to_pandas()[list(schema.FEATURE_NAMES)].to_numpy(),
                                  compute_features(batch))
    prov = json.loads((tmp_path / "out" / "f.provenance.json").read_text())
    assert prov["command"] == "features" and prov["events_written"] == 30
    assert prov["inputs"][0]["reader"] == "adc2021" and prov["inputs"][0]["entries"] == 30
    assert prov["columns"] == COLUMNS
    assert sorted(p.name for p in out.parent.iterdir()) == ["f.parquet", "f.provenance.json"]


def test_nonfinite_drop_is_counted_in_provenance(tmp_path):
    from io_samples import random_batch

    batch = random_batch(10)
    batch.objects[[2, 6], 0, 0] = np.nan
    write_h5(tmp_path / "a.h5", batch)
    out = tmp_path / "f.parquet"
    assert main(["features", str(tmp_path / "a.h5"), "--out", str(out), "--nonfinite", "drop"]) == 0
    assert pd.read_parquet(out)["event"].tolist() == np.delete(batch.event, [2, 6]).tolist()
    prov = json.loads((tmp_path / "f.provenance.json").read_text())
    assert prov["events_dropped_nonfinite"] == 2 and prov["events_written"] == 8


def test_reader_detection(tmp_path):
    from io_samples import random_batch

    write_h5(tmp_path / "a.h5", random_batch(4))
    write_root(tmp_path / "n.root", random_batch(4))
    write_delphes(tmp_path / "d.root", random_batch(4))
    write_flat(tmp_path / "f.root", np.zeros((2, 21)))
    got = {p: detect_reader(tmp_path / p) for p in ("a.h5", "n.root", "d.root", "f.root")}
    assert got == {"a.h5": "adc2021", "n.root": "nanoaod", "d.root": "delphes", "f.root": "flat"}
    assert detect_reader("x.parquet") == "parquet"
    assert set(READER_CHOICES) == {"auto", *readers_of("events")}
