"""Tagger inputs from PFNano-layout records; PFNano and jet-HDF5 files: round trips, bad input."""

from __future__ import annotations

import copy

import h5py
import numpy as np
import pytest

from triggerad.cli import main
from triggerad.errors import (
    ConfigError,
    InputFileError,
    MissingFieldError,
    NonFiniteError,
    OutOfRangeError,
    SchemaMismatchError,
)
from triggerad.io.base import ReadOptions
from triggerad.io.jeth5 import JetH5Reader, write_jets_h5
from triggerad.io.pfnano import PFNanoReader, write_pfnano
from triggerad.io.registry import detect_reader, make_reader
from triggerad.jetinputs import FIELDS, PFNanoRecord, jet_batch
from triggerad.jets import (
    ARRAY_FIELDS,
    CHARGED_FEATURES,
    GLOBAL_FEATURES,
    NEUTRAL_FEATURES,
    SV_FEATURES,
    JetBatch,
)

SIZES = {"charged": 2, "neutral": 3, "sv": 2}
C, N, S, G = (lambda f, names=names: names.index(f) for names in (
    CHARGED_FEATURES, NEUTRAL_FEATURES, SV_FEATURES, GLOBAL_FEATURES))


def _fill(names, n, **given):
    return {f: np.asarray(given.get(f, np.arange(n) + 0.5 * (i + 1)), dtype=float)
            for i, f in enumerate(names)} | {k: np.asarray(v) for k, v in given.items()}


def hand_record() -> PFNanoRecord:
    """Two events: event 0 with jets (50 GeV at eta 0, phi 0) and (30 GeV, 1, 2), five candidates
    of jet 0 (three tracks, a photon, a neutral hadron), one of jet 1, and one vertex of jet 0;
    event 1 with one jet, one track, no vertex."""
    jets = _fill(FIELDS["jet"], 3, pt=[50.0, 30.0, 25.0], eta=[0.0, 1.0, -0.5],
                 phi=[0.0, 2.0, -1.0], mass=[5.0, 3.0, 2.0], ctau=[12.5, 12.5, 0.0],
                 label=[0, 4, 1], hadron_flavour=[5, 0, 5], parton_flavour=[5, 21, 5])
    cands = _fill(
        FIELDS["pfcands"], 7,
        pt=[10.0, 8.0, 5.0, 12.0, 6.0, 7.0, 9.0],
        eta=[0.3, 0.0, 0.0, 0.05, -0.05, 1.1, -0.5],
        phi=[0.35, -0.1, -0.08, 0.05, 0.1, 2.1, -1.0],
        mass=[0.13957] * 3 + [0.0, 0.0] + [0.13957] * 2,
        charge=[1, -1, 1, 0, 0, 1, -1], pdg_id=[211, -211, 211, 22, 130, 211, -211],
        d0=[0.05, 0.2, 0.01, 0.0, 0.0, 0.03, 0.0], d0_err=[0.01, 0.02, 0.01, 0, 0, 0.01, 0.01],
        hcal_fraction=[0, 0, 0, 0.0, 0.9, 0, 0], trk_quality=[1, 1, 0, 0, 0, 1, 1],
        puppi_weight=[1, 1, 1, 1, 0.5, 1, 1], pv_assoc_quality=[1, 5, 7, 0, 0, 7, 6],
        from_pv=[0, 2, 3, 0, 0, 3, 2],
    )
    pairs = _fill(FIELDS["jet_pfcands"], 7, jet_idx=[0, 0, 0, 0, 0, 1, 0],
                  cand_idx=[0, 1, 2, 3, 4, 5, 0])
    sv = _fill(FIELDS["sv"], 1, eta=[0.0], phi=[-0.05], ndof=[3.0])
    jet_svs = _fill(FIELDS["jet_svs"], 1, jet_idx=[0], sv_idx=[0], d3dsig=[20.0])
    events = {"event": [7, 8], "run": [1, 1], "lumi": [0, 0], "weight": [0.25, 0.25],
              "pileup": [0.0, 0.0], "process": np.array(["HSS", "HSS"], dtype=object),
              "domain": [0, 0]}
    return PFNanoRecord.build(
        events, jet=([2, 1], jets), pfcands=([6, 1], cands), jet_pfcands=([6, 1], pairs),
        sv=([1, 0], sv), jet_svs=([1, 0], jet_svs),
    )


def test_jet_inputs_rank_truncate_and_define_the_features():
    b = jet_batch(hand_record(), SIZES)
    assert len(b) == 3 and b.sizes == SIZES
    # charged: ranked by signed 2D IP significance (10, 1, -5), truncated to 2; counted before
    np.testing.assert_allclose(b.charged[0, :, C("sip2d_sig")], [10.0, 1.0])
    np.testing.assert_allclose(b.charged[0, :, C("sip2d_val")], [0.2, 0.01], rtol=1e-6)
    np.testing.assert_allclose(b.charged[0, :, C("pt_frac")], [8 / 50, 5 / 50], rtol=1e-6)
    np.testing.assert_allclose(b.charged[0, :, C("delta_r")],
                               [np.hypot(0, 0.1), np.hypot(0, 0.08)], rtol=1e-6)
    np.testing.assert_allclose(b.charged[0, :, C("dr_min_sv")],
                               [np.hypot(0.0, 0.05), np.hypot(0.0, 0.03)], rtol=1e-5)
    assert b.globals[0, G("n_charged")] == 3 and b.globals[0, G("n_neutral")] == 2
    # neutral: ranked by pT, zero-padded to 3
    np.testing.assert_allclose(b.neutral[0, :, N("pt_frac")], [12 / 50, 6 / 50, 0.0], rtol=1e-6)
    np.testing.assert_array_equal(b.neutral[0, :, N("is_gamma")], [1, 0, 0])
    np.testing.assert_allclose(b.neutral[0, :, N("hcal_fraction")], [0.0, 0.9, 0.0], rtol=1e-6)
    np.testing.assert_allclose(b.neutral[0, :, N("puppi_weight")], [1.0, 0.5, 0.0])
    # vertex of jet 0; jets without a vertex: category 2 and dr_min_sv at its 0.4 default
    assert b.sv[0, 0, S("d3d_sig")] == 20.0 and b.sv[0, 0, S("ndof")] == 3.0
    np.testing.assert_array_equal(b.sv[1:], 0.0)
    np.testing.assert_array_equal(b.globals[:, G("vertex_category")], [0, 2, 2])
    np.testing.assert_allclose(b.charged[1, 0, C("dr_min_sv")], 0.4)
    # the first track (by significance) lifting the track mass above 1.5 GeV is the third (c0)
    np.testing.assert_allclose(b.globals[0, G("sip2d_sig_above_charm")], -5.0)
    np.testing.assert_allclose(b.globals[0, G("sip2d_val_above_charm")], -0.05, rtol=1e-6)
    np.testing.assert_array_equal(b.globals[1:, G("sip2d_sig_above_charm")], 0.0)
    assert b.globals[0, G("n_selected_tracks")] == 2  # high-purity tracks with pT > 1 GeV
    np.testing.assert_allclose(b.globals[:, G("pt")], [50, 30, 25])
    # per-jet truth and event fields
    np.testing.assert_array_equal(b.label, [0, 4, 1])
    np.testing.assert_allclose(b.ctau, [12.5, 12.5, 0.0])
    np.testing.assert_array_equal(b.event, [7, 7, 8])
    np.testing.assert_array_equal(b.jet_index, [0, 1, 0])
    assert b.process.tolist() == ["HSS"] * 3 and b.weight.tolist() == [0.25] * 3
    assert b.class_counts() == {"LLP": 1, "b": 1, "c": 0, "uds": 0, "g": 1, "unlabelled": 0}


def _pfnano(tmp_path, record=None, name="x.root"):
    path = tmp_path / name
    write_pfnano(path, record if record is not None else hand_record())
    return path


def reader(**branch_map):
    return PFNanoReader({"sizes": SIZES, "jet_pt_min": 0.0, "jet_eta_max": 5.0, **branch_map})


def _assert_same(a: JetBatch, b: JetBatch, skip=("source_file",)):
    for f in ARRAY_FIELDS:
        if f not in skip:
            np.testing.assert_array_equal(getattr(a, f), getattr(b, f), err_msg=f)


def test_pfnano_and_jet_h5_round_trips_are_exact(tmp_path):
    record = hand_record()
    expected = jet_batch(record, SIZES)
    path = _pfnano(tmp_path, record)
    got = reader().read(path)
    _assert_same(got, expected)
    assert set(got.source_file) == {str(path)}
    write_jets_h5(tmp_path / "j.h5", got)
    back = make_reader("jets", record="jets").read(tmp_path / "j.h5")
    _assert_same(back, got, skip=("source_file", "entry"))  # entry: the jet row in HDF5
    np.testing.assert_array_equal(back.entry, [0, 1, 2])
    # the packaged branch map keeps jets with pT > 20 GeV and |eta| < 2.4 and 25/25/4 candidates
    default = PFNanoReader().read(path)
    np.testing.assert_array_equal(default.pt, [50, 30, 25])
    assert default.sizes == {"charged": 25, "neutral": 25, "sv": 4}
    assert detect_reader(path, "jets") == "pfnano" and detect_reader(tmp_path / "j.h5", "jets") == "jets"


def test_pfnano_reader_defaults_for_cms_files_without_trigger_ad_extras(tmp_path):
    record = hand_record()
    expected = jet_batch(record, SIZES)
    path = _pfnano(tmp_path, record)
    # a CMS file: the extras are absent (branch map points nowhere)
    cms = reader(jet={"label": None, "ctau": None},
                 pfcands={"hcal_fraction": None, "from_pv": None},
                 event={"weight": None, "process": None}).read(path)
    np.testing.assert_array_equal(cms.label, -1)
    np.testing.assert_array_equal(cms.ctau, 0.0)
    np.testing.assert_array_equal(cms.weight, 1.0)
    assert set(cms.process) == {"data"}
    # derived HCAL fraction: 1 for neutral hadrons, 0 for photons
    np.testing.assert_allclose(cms.neutral[0, :2, N("hcal_fraction")], [0.0, 1.0])
    # derived fromPV (from pvAssocQuality) equals what the generator wrote
    np.testing.assert_array_equal(cms.charged, expected.charged)
    np.testing.assert_array_equal(cms.charged[0, :, C("from_pv")], [2, 3])


def test_missing_branch_is_named_with_at_most_ten_nearest(tmp_path):
    path = _pfnano(tmp_path)
    with pytest.raises(MissingFieldError, match=r"x.root:Events: no branch 'PFCands_dxyErr'. "
                       r"Available: \d+ branches; the nearest: 'PFCands_dzErr', "):
        reader(pfcands={"d0_err": "PFCands_dxyErr"}).read(path)
    with pytest.raises(ConfigError, match=r"pfcands: unknown field 'd0err'; did you mean 'd0_err'"):
        reader(pfcands={"d0err": "PFCands_d0Err"})


def test_index_out_of_range_names_branch_and_entry(tmp_path):
    record = copy.deepcopy(hand_record())
    record.jet_pfcands.data["jet_idx"][5] = 4  # event 0 has 2 jets
    path = _pfnano(tmp_path, record)
    with pytest.raises(OutOfRangeError, match=r"x.root:Events: branch 'JetPFCands_jetIdx' at "
                       r"entry 0: index 4 out of range \(the event has 2 entries in 'jet'\)"):
        reader().read(path)
    record = copy.deepcopy(hand_record())
    record.jet_svs.data["sv_idx"][0] = 3
    with pytest.raises(OutOfRangeError, match=r"branch 'JetSVs_sVIdx' at entry 0: index 3"):
        reader().read(_pfnano(tmp_path, record, "y.root"))


def test_nonfinite_candidate_feature_error_or_drop(tmp_path):
    record = copy.deepcopy(hand_record())
    record.pfcands.data["d0"][6] = np.nan  # the track of event 1
    path = _pfnano(tmp_path, record)
    with pytest.raises(NonFiniteError, match=r"x.root:Events: 1 of 2 events in entries \[0, 2\) "
                       r"hold NaN or inf in branches PFCands_d0 \(1 events\)"):
        reader().read(path)
    dropped = PFNanoReader({"sizes": SIZES, "jet_pt_min": 0.0},
                           ReadOptions(nonfinite="drop")).read(path)
    np.testing.assert_array_equal(dropped.event, [7, 7])
    np.testing.assert_array_equal(dropped.entry, [0, 0])


def test_ctau_outside_range_and_empty_file(tmp_path):
    record = copy.deepcopy(hand_record())
    record.jet.data["ctau"][:2] = 2.0e5
    path = _pfnano(tmp_path, record)
    with pytest.raises(OutOfRangeError, match=r"x.root: field 'Jet_llpCtau' at entry 0: c-tau "
                       r"200000.0 mm outside the configured range \[0.01, 10000.0\] mm"):
        reader().read(path)
    assert len(reader(ctau_range=[0.01, 1e6]).read(path)) == 3
    empty = hand_record()
    empty = type(empty).build(
        {k: v[:0] for k, v in empty.events.items()},
        **{name: (c.counts[:0], {k: v[:0] for k, v in c.data.items()})
           for name, c in empty.collections().items()})
    path = _pfnano(tmp_path, empty, "empty.root")
    with pytest.raises(InputFileError, match="empty.root: file holds no entries"):
        list(reader().iter_chunks(path))


def test_jet_h5_refuses_another_schema_and_anomaly_readers_refuse_jets(tmp_path, capsys):
    batch = jet_batch(hand_record(), SIZES)
    path = tmp_path / "j.h5"
    write_jets_h5(path, batch)
    with h5py.File(path, "r+") as f:
        f.attrs["sv_features"] = ["pt"]
    with pytest.raises(SchemaMismatchError, match=r"j.h5: attribute 'sv_features' expected"):
        JetH5Reader().read(path)
    with pytest.raises(ConfigError, match=r"reader 'pfnano' yields jets \(PFNanoReader\), but "
                       r"this command needs events; readers of events: 'adc2021'"):
        make_reader("pfnano")
    write_jets_h5(path, batch)
    out = tmp_path / "f.parquet"
    assert main(["features", str(path), "--out", str(out)]) == 2
    assert "is a trigger-ad jet file (LLP tagger inputs), not an event file" in (
        capsys.readouterr().err)
    assert not out.exists()
