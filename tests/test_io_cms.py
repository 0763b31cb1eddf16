"""CMS NanoAOD presets (Run-2 UL, Run-3, v15, scouting, L1), RNTuple input and ROOT-file errors.

Files are written by the tests with uproot, using the real branch names of each era
(``cms_samples``); the features of the single-muon + MET event are checked against the hand
values MT = sqrt(1200) and METp = 15 GeV.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
from cms_samples import (
    ERAS,
    METO,
    METP,
    MT,
    event_branches,
    l1_objects,
    scouting_2022,
    scouting_2024,
    write_events,
)

from anomaly.features import compute_features
from triggerad import schema
from triggerad.errors import ConfigError, MissingFieldError
from triggerad.events import EventBatch
from triggerad.io import rootio
from triggerad.io.common import reading
from triggerad.io.nanoaod import NanoAODReader
from triggerad.io.registry import detect_reader

COL = {name: i for i, name in enumerate(schema.FEATURE_NAMES)}


def features(path, branch_map=None):
    reader = NanoAODReader(branch_map)
    batch = reader.read(path)
    return reader, batch, compute_features(batch)


def check_muon_event(f):
    """The hand-computed features of event 0 (one muon + MET)."""
    assert f[0, COL["MT"]] == pytest.approx(MT, rel=1e-6)
    assert f[0, COL["METp"]] == pytest.approx(METP, rel=1e-6)
    assert f[0, COL["METo"]] == pytest.approx(METO, rel=1e-6)
    assert f[0, COL["LepPt"]] == 40 and f[0, COL["nMu"]] == 1 and f[0, COL["LepIsEle"]] == 0


@pytest.mark.parametrize(("era", "btag_cut", "n_b", "met"), [
    ("run2-ul", 0.2783, 1, "MET_pt"),   # DeepJet UL2018 medium: 0.9 tagged, 0.2 and 0.05 not
    ("run3", 0.2431, 1, "MET_pt"),      # DeepJet Summer23 medium
    ("v15", 0.1272, 2, "PFMET_pt"),     # UParTAK4 Summer24 medium tags 0.2 too; v15: no MET_pt
])
def test_era_preset_detected_with_hand_checked_features(tmp_path, era, btag_cut, n_b, met,
                                                        caplog):
    path = tmp_path / f"{era}.root"
    write_events(path, {**ERAS[era](), **event_branches(gen_weight=[2.0, -2.0])})
    with caplog.at_level(logging.INFO):
        reader, batch, f = features(path)
    assert reader.preset(str(path)) == era
    assert f"NanoAOD preset {era!r}" in caplog.text
    summary = reader.describe(str(path))
    assert summary["met"]["pt"] == met and summary["btag"]["cut"] == btag_cut
    check_muon_event(f)
    # relative isolation: charged 0.1, photon 0 (absent), neutral = all - charged = 0.05
    np.testing.assert_allclose(batch.mu_iso[0, 0], [0.1, 0.0, 0.05], atol=1e-6)
    assert f[1, COL["nJets"]] == 3 and f[1, COL["bJets"]] == n_b
    assert f[1, COL["HT"]] == 135 and f[1, COL["LepIsEle"]] == 1
    np.testing.assert_array_equal(batch.weight, [2.0, -2.0])  # genWeight, sign kept
    np.testing.assert_array_equal(batch.pileup, [35, 52])
    np.testing.assert_array_equal(batch.lumi, [7, 7])


def test_tagger_and_working_point_chosen_by_name(tmp_path):
    path = tmp_path / "run3.root"
    write_events(path, {**ERAS["run3"](), **event_branches()})
    # PNet Summer22EE tight (0.6915): only the 0.9 jet; a numeric cut 0.1 tags two
    reader, batch, _ = features(path, {"btag": {"tagger": "pnet", "campaign": "Summer22EE",
                                                "wp": "tight"}})
    assert reader.describe(str(path))["btag"] == {
        "tagger": "pnet", "branch": "Jet_btagPNetB", "campaign": "Summer22EE", "wp": "tight",
        "cut": 0.6915}
    np.testing.assert_array_equal(batch.jet_btag[1, :3], [True, False, False])
    _, batch, _ = features(path, {"btag": {"tagger": "robustpart", "wp": 0.1}})
    np.testing.assert_array_equal(batch.jet_btag[1, :3], [True, True, False])
    with pytest.raises(ConfigError, match=r"no working point 'medum'.*did you mean 'medium'"):
        NanoAODReader({"preset": "run3", "btag": {"wp": "medum"}})
    with pytest.raises(ConfigError, match=r"has no working points for campaign 'Summer21'; "
                       r"campaigns: Summer22, Summer22EE, Summer23, Summer23BPix"):
        NanoAODReader({"preset": "run3", "btag": {"campaign": "Summer21"}})


def test_puppi_met_and_v15_without_met_pt(tmp_path):
    path = tmp_path / "v15.root"
    data = {**ERAS["v15"](), **event_branches()}
    data["PuppiMET_pt"] = np.array([MET_PT_PUPPI := 20.0, 5.0], dtype=np.float32)
    write_events(path, data)
    _, batch, _ = features(path, {"met": {"pt": "PuppiMET_pt", "phi": "PuppiMET_phi"}})
    assert batch.met[0, 0] == MET_PT_PUPPI
    # forcing a Run-3 preset on a v15 file: no MET_pt, the error names the preset and <= 10 names
    with pytest.raises(MissingFieldError) as err:
        NanoAODReader({"preset": "run3"}).read(path)
    text = str(err.value)
    assert "no branch 'MET_pt' (NanoAOD preset 'run3', CMS Run-3 2022-23 NanoAODv11-v12, chosen" \
           " in the branch map)" in text
    listed = text.split("the nearest: ")[1].split(", ")
    assert 1 <= len(listed) <= 10 and listed[0] in ("'PFMET_pt'", "'PuppiMET_pt'")
    assert f"Available: {len(set(NanoAODReader({'preset': 'v15'})._opened(str(path)).branches))}"\
           " branches" in text


@pytest.mark.parametrize(("preset", "make"), [("scouting-2024", scouting_2024),
                                              ("scouting", scouting_2022)])
def test_scouting_presets(tmp_path, preset, make):
    path = tmp_path / "scouting.root"
    write_events(path, {**make(), **event_branches()})
    reader, batch, f = features(path)
    assert reader.preset(str(path)) == preset
    check_muon_event(f)
    # absolute cone sums / pT: track 4, ECAL 2, HCAL 1 GeV over 40 GeV
    np.testing.assert_allclose(batch.mu_iso[0, 0], [0.1, 0.05, 0.025], rtol=1e-6)
    assert batch.ele_charge[1, 0] == 1  # ScoutingElectron_bestTrack_charge (2023+) or _charge
    assert f[1, COL["nJets"]] == 3 and f[1, COL["bJets"]] == 0  # scouting jets: no b-tag
    assert "jet b-tag (False)" in batch.defaults
    np.testing.assert_array_equal(batch.jet_mass[1, :3], [5, 5, 5])
    if preset == "scouting-2024":  # the displaced-muon collection instead
        muon = {k: f"ScoutingMuonNoVtx_{k}" for k in ("pt", "eta", "phi")}
        _, batch, _ = features(path, {"muon": muon})
        assert batch.muons[0, 0, 0] == 41


def test_l1_preset_fills_the_57_inputs_from_l1_objects(tmp_path, caplog):
    path = tmp_path / "l1.root"
    write_events(path, {**ERAS["run3"](), **l1_objects(), **event_branches()})
    with caplog.at_level(logging.INFO):
        offline = NanoAODReader().read(path)
    assert "also holds l1 objects" in caplog.text
    reader, batch, f = features(path, {"preset": "l1"})
    assert reader.preset(str(path)) == "l1"
    check_muon_event(f)  # bunch crossing 0 only: the BX +1 muon and the BX -1 ETM are dropped
    assert batch.muons[0, 1, 0] == 0 and batch.electrons[0, 0, 0] == 0  # BX -1 e/gamma dropped
    np.testing.assert_array_equal(batch.objects[1, schema.JET_SLOTS, 0][:3], [60, 45, 30])
    np.testing.assert_array_equal(batch.met[:, 0], [30, 10])  # etSumType 2 of BX 0
    assert not batch.jet_btag.any() and not batch.mu_charge.any()
    np.testing.assert_array_equal(offline.met[:, 0], batch.met[:, 0])  # same MET by construction


@pytest.mark.parametrize("era", ["run3", "v15"])
def test_rntuple_events_equals_ttree(tmp_path, era):
    data = {**ERAS[era](), **event_branches(gen_weight=[1.5, -0.5])}
    write_events(tmp_path / "tree.root", data)
    write_events(tmp_path / "rntuple.root", data, container="rntuple")  # fields Muon.pt, ...
    assert rootio.root_contents(str(tmp_path / "rntuple.root"))["Events"] == "ROOT::RNTuple"
    assert detect_reader(tmp_path / "rntuple.root") == "nanoaod"
    _, tree, f_tree = features(tmp_path / "tree.root")
    reader, ntuple, f_ntuple = features(tmp_path / "rntuple.root")
    assert reader.preset(str(tmp_path / "rntuple.root")) == era
    np.testing.assert_array_equal(f_ntuple, f_tree)
    for name in EventBatch.ARRAY_FIELDS:
        if name != "source_file":
            np.testing.assert_array_equal(getattr(ntuple, name), getattr(tree, name), err_msg=name)


def test_rntuple_refused_with_the_uproot_version_needed(tmp_path, monkeypatch):
    import uproot

    write_events(tmp_path / "r.root", {**ERAS["run3"](), **event_branches()}, container="rntuple")
    monkeypatch.setattr(uproot, "__version__", "5.3.2")
    with pytest.raises(MissingFieldError, match=r"r.root: 'Events' is an RNTuple; reading RNTuples "
                       r"needs uproot >= 5.6 \(installed: 5.3.2\); upgrade with pip install "
                       r"'uproot>=5.6'"):
        NanoAODReader().read(tmp_path / "r.root")


def test_no_preset_matches_names_the_signatures(tmp_path):
    from cms_samples import offline_collections

    data = offline_collections((), ("MET",))  # no tagger branches: neither Run 2 nor Run 3
    write_events(tmp_path / "odd.root", {**data, **event_branches()})
    with pytest.raises(MissingFieldError, match=r"odd.root:Events: no NanoAOD preset matches the "
                       r"file's branches \(triggerad needs all of nChHad, nNeuHad; v15 needs all of "
                       r"PFMET_pt; run3 needs all of MET_pt; one of Jet_btagRobustParTAK4B.*choose "
                       r"one with `preset: NAME`"):
        NanoAODReader().read(tmp_path / "odd.root")
    batch = NanoAODReader({"preset": "run3", "btag": {"tagger": None}}).read(tmp_path / "odd.root")
    assert batch.muons[0, 0, 0] == 40


def test_unknown_preset_and_misspelt_override_fail_before_any_file():
    with pytest.raises(ConfigError, match=r"preset: unknown preset 'run33'; did you mean 'run3'"):
        NanoAODReader({"preset": "run33"})
    with pytest.raises(ConfigError, match=r"unknown key 'mte'; did you mean 'met'"):
        NanoAODReader({"mte": {"pt": "PuppiMET_pt"}})


# ROOT files that are not event trees (issue 9) -------------------------------------------------
def test_root_file_with_only_histograms_says_what_it_holds(tmp_path):
    import uproot

    with uproot.recreate(tmp_path / "h.root") as f:
        f["h_pt"] = np.histogram([1.0, 2.0], bins=2)
        f["h_eta"] = np.histogram([1.0, 2.0], bins=2)
    with pytest.raises(MissingFieldError, match=r"h.root: no TTree or RNTuple 'Events' \(expected "
                       r"by the nanoaod reader\): the file holds no event tree at all, only 2 TH1D"):
        NanoAODReader().read(tmp_path / "h.root")
    with pytest.raises(MissingFieldError, match=r"h.root: holds no TTree or RNTuple, only 2 TH1D "
                       r"\(h_pt, h_eta\); expected an event tree"):
        detect_reader(tmp_path / "h.root")


def test_rntuple_only_file_read_by_delphes_reader_names_it(tmp_path):
    from triggerad.io.delphes import DelphesReader

    write_events(tmp_path / "r.root", {**ERAS["run3"](), **event_branches()}, container="rntuple")
    with pytest.raises(MissingFieldError, match=r"r.root: no tree 'Delphes'. Available trees "
                       r"\(nearest first\): 'Events'"):
        DelphesReader().read(tmp_path / "r.root")


def test_low_level_errors_only_around_library_calls(tmp_path, monkeypatch):
    """A KeyError / ValueError from our own code is not reported as a corrupt file."""
    from io_samples import random_batch

    from triggerad.io import adc2021, objects
    from triggerad.io.adc2021 import Adc2021Reader, write_h5
    from triggerad.io.nanoaod import write_root

    write_root(tmp_path / "n.root", random_batch(5))
    write_h5(tmp_path / "a.h5", random_batch(5))

    def bug(*args, **kwargs):
        raise KeyError("bug in trigger-ad")

    monkeypatch.setattr(objects, "from_collections", bug)
    with pytest.raises(KeyError, match="bug in trigger-ad") as err:
        NanoAODReader().read(tmp_path / "n.root")
    assert not isinstance(err.value, OSError)
    monkeypatch.setattr(adc2021.EventBatch, "empty", bug)
    with pytest.raises(KeyError, match="bug in trigger-ad") as err:
        Adc2021Reader().read(tmp_path / "a.h5")
    assert not isinstance(err.value, OSError)
    with pytest.raises(OSError, match=r"x: cannot read \(truncated or corrupt\?\): boom"):
        with reading("x: cannot read"):
            raise ValueError("boom")


def test_flat_and_delphes_readers_read_rntuples(tmp_path):
    import uproot
    from io_samples import random_batch, uproot_delphes_map, write_delphes

    from triggerad.io.delphes import DelphesReader
    from triggerad.io.flat import FlatReader

    rng = np.random.default_rng(4)
    columns = {f: rng.uniform(0, 10, 6).astype(np.float32) for f in schema.FEATURE_NAMES}
    with uproot.recreate(tmp_path / "flat.root") as f:
        f.mkrntuple("features", columns)
    batch = FlatReader().read(tmp_path / "flat.root")
    np.testing.assert_array_equal(batch.hlf, np.stack(list(columns.values()), axis=1))
    # the same Delphes-like events as a TTree and as an RNTuple
    events = random_batch(12)
    write_delphes(tmp_path / "d.root", events, naming="uproot")
    with uproot.open(tmp_path / "d.root") as f:
        arrays = f["Delphes"].arrays()
    with uproot.recreate(tmp_path / "dn.root") as f:
        f.mkrntuple("Delphes", {k: arrays[k] for k in arrays.fields})
    tree = DelphesReader(uproot_delphes_map()).read(tmp_path / "d.root")
    ntuple = DelphesReader(uproot_delphes_map()).read(tmp_path / "dn.root")
    np.testing.assert_array_equal(ntuple.objects, tree.objects)
    np.testing.assert_array_equal(ntuple.ele_iso, tree.ele_iso)


def test_override_that_fits_only_some_presets_names_the_detected_one(tmp_path):
    """`btag.tagger: pnet` exists in run3 and v15 but not in run2-ul: a Run-2 file says so."""
    write_events(tmp_path / "ul.root", {**ERAS["run2-ul"](), **event_branches()})
    write_events(tmp_path / "r3.root", {**ERAS["run3"](), **event_branches()})
    reader = NanoAODReader({"btag": {"tagger": "pnet", "campaign": "Summer22"}})
    assert reader.read(tmp_path / "r3.root").jet_btag[1, :3].tolist() == [True, False, False]
    with pytest.raises(ConfigError, match=r"\(NanoAOD preset 'run2-ul'\).*no tagger 'pnet' in "
                       r"preset 'run2-ul'"):
        reader.read(tmp_path / "ul.root")
