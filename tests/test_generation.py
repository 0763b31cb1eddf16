"""Tests of the Pythia 8 generation: reproducibility, detector acceptance, trigger, cocktail, files."""

from __future__ import annotations

import json
import re

import h5py
import numpy as np
import pytest
import yaml
from generation_samples import particles

from triggerad.cli import main
from triggerad.config import build
from triggerad.errors import ConfigError
from triggerad.events import EventBatch
from triggerad.generation import run as grun
from triggerad.generation.cocktail import published_comparison, weighted_fractions
from triggerad.generation.config import GenerateConfig, TriggerConfig, load_config
from triggerad.generation.detector import cone_sums, pad, pairs
from triggerad.generation.trigger import single_lepton
from triggerad.io.adc2021 import Adc2021Reader, write_h5

pytest.importorskip("pythia8mc")
pytest.importorskip("fastjet")

#: A tiny, fast config: MPI off, small jobs so that several jobs per process exist.
SMALL = {
    "beam": {"settings": ["PartonLevel:MPI = off"]},
    "processes": {
        "W": {"settings": ["WeakSingleBoson:ffbar2W = on", "24:onMode = off",
                           "24:onIfAny = 11 13"]},
        "Z": {"settings": ["WeakSingleBoson:ffbar2gmZ = on", "PhaseSpace:mHatMin = 50.",
                           "23:onMode = off", "23:onIfAny = 11 13"]},
        "QCD_fake": {"group": "QCD", "qcd_model": "jet_fake", "events_fraction": 0.5,
                     "settings": ["HardQCD:all = on", "PhaseSpace:pTHatMin = 20."]},
        "A_4l": {"kind": "signal", "events_fraction": 0.5, "particle": 36, "mass": 50.0,
                 "decay": [23, 23],
                 "settings": ["Higgs:useBSM = on", "HiggsBSM:gg2A3 = on", "HiggsA3:coup2Z = 1.",
                              "23:onMode = off", "23:onIfAny = 11 13", "23:mMin = 1."]},
    },
    "qcd_model": {"fake_ele_rate": 1e-3, "fake_mu_rate": 1e-3},
    "output": {"formats": ["h5"], "job_size": 100, "batch_size": 50},
}
N_EVENTS = 200


@pytest.fixture(scope="module")
def small_config(tmp_path_factory):
    path = tmp_path_factory.mktemp("cfg") / "small.yaml"
    path.write_text(yaml.safe_dump(SMALL, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def run_w1(small_config, tmp_path_factory):
    """The small config through the CLI, seed 3, one worker."""
    out = tmp_path_factory.mktemp("gen") / "w1"
    code = main(["generate", str(small_config), "--events", str(N_EVENTS), "--out", str(out),
                 "--seed", "3", "--workers", "1"])
    assert code == 0
    return out


def _datasets(path) -> dict[str, np.ndarray]:
    with h5py.File(path, "r") as f:
        return {name: f[name][()] for name in f}


def test_same_seed_bit_identical_for_any_workers_and_other_seed_differs(
    small_config, run_w1, tmp_path
):
    cfg = load_config(small_config)
    grun.generate(cfg, N_EVENTS, tmp_path / "w2", seed=3, workers=2, progress=False)
    grun.generate(cfg, N_EVENTS, tmp_path / "s4", seed=4, workers=1, progress=False)
    for stem in ("background", "signal_A_4l"):
        ref = _datasets(run_w1 / f"{stem}.h5")
        again = _datasets(tmp_path / "w2" / f"{stem}.h5")
        assert ref.keys() == again.keys()
        for name in ref:
            np.testing.assert_array_equal(ref[name], again[name], err_msg=f"{stem}:{name}")
        other = _datasets(tmp_path / "s4" / f"{stem}.h5")
        assert not np.array_equal(ref["Particles"], other["Particles"])


def test_summary_fractions_and_printed_table(run_w1, capsys):
    summary = json.loads((run_w1 / "summary.json").read_text())
    procs = summary["processes"]
    assert list(procs) == ["W", "Z", "QCD_fake", "A_4l"]
    for name, n_gen in (("W", 200), ("Z", 200), ("QCD_fake", 100), ("A_4l", 100)):
        p = procs[name]
        assert p["generated"] == n_gen
        assert set(p) >= {"generated", "selected", "sigma_pb", "trigger_efficiency",
                          "weighted_fraction", "events_per_s"}
        assert 0 < p["selected"] <= n_gen
        assert 0 < p["trigger_efficiency"] <= 1
    sm = [procs[n]["weighted_fraction"] for n in ("W", "Z", "QCD_fake")]
    np.testing.assert_allclose(sum(sm), 1.0, rtol=1e-12)
    comp = summary["published_comparison"]
    assert {g: c["published"] for g, c in comp.items()} == {
        "W": 0.592, "QCD": 0.338, "Z": 0.067, "ttbar": 0.003}
    np.testing.assert_allclose(comp["QCD"]["generated"], procs["QCD_fake"]["weighted_fraction"])
    np.testing.assert_allclose(sum(c["generated"] for c in comp.values()), 1.0, rtol=1e-12)
    # the weights of the triggered events add up to sigma x efficiency per process
    bkg = Adc2021Reader().read(run_w1 / "background.h5")
    assert len(bkg) == sum(procs[n]["selected"] for n in ("W", "Z", "QCD_fake"))
    for group, name in (("W", "W"), ("Z", "Z"), ("QCD", "QCD_fake")):
        np.testing.assert_allclose(
            bkg.weight[bkg.process == group].sum(),
            procs[name]["sigma_pb"] * procs[name]["trigger_efficiency"], rtol=1e-9)
    assert (run_w1 / "provenance.json").is_file()
    assert (run_w1 / "config.resolved.yaml").is_file()


def test_summary_validation_recomputed_from_the_written_events(run_w1):
    from triggerad.generation.validation import dilepton_mass, leading_lepton

    val = json.loads((run_w1 / "summary.json").read_text())["validation"]
    bkg = Adc2021Reader().read(run_w1 / "background.h5")
    z = bkg.take(bkg.process == "Z")
    masses = dilepton_mass(z)
    assert 80 < val["z_mass_peak_gev"] < 100 and 2 < val["z_mass_fwhm_gev"] < 20
    assert np.nanmedian(masses) == pytest.approx(91.0, abs=3.0)
    assert 70 < val["w_mt_edge_gev"] < 95
    for name, group in (("W", "W"), ("Z", "Z"), ("QCD_fake", "QCD")):
        p, ev = val["processes"][name], bkg.take(bkg.process == group)
        assert p["selected"] == len(ev)
        if group != "QCD":   # equal weights within W and Z: the plain median
            np.testing.assert_allclose(p["met_median"], np.median(ev.met[:, 0]), rtol=0.05)
        np.testing.assert_allclose(
            p["lepton_iso_zero_fraction"],
            np.average(leading_lepton(ev)["iso"] == 0, weights=ev.weight), rtol=1e-6)
        assert 0 < p["n_eff"] <= p["selected"] + 1e-9
    assert val["processes"]["QCD_fake"]["lepton_sources"]["fake"] > 0.9
    assert val["qcd_processes"] == {"QCD_fake": pytest.approx(1.0)}
    groups = val["groups"]
    assert groups["W"]["published_sigma_nb"] == 58.0
    np.testing.assert_allclose(sum(g["fraction"] for g in groups.values()), 1.0, rtol=1e-9)
    table = (run_w1 / "validation.md").read_text()
    assert "| QCD_fake |" in table and "published" in table


def test_cli_prints_comparison(small_config, tmp_path, capsys):
    small = dict(SMALL, processes={"W": SMALL["processes"]["W"]})
    path = tmp_path / "w.yaml"
    path.write_text(yaml.safe_dump(small, sort_keys=False))
    assert main(["generate", str(path), "--events", "50", "--out", str(tmp_path / "o"),
                 "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"W\s+100\.0 %\s+\(published 59\.2 %\)", out)
    assert re.search(r"QCD\s+0\.0 %\s+\(published 33\.8 %\)", out)


def test_objects_in_acceptance_pt_ordered_and_triggered(run_w1):
    for stem in ("background", "signal_A_4l"):
        batch = Adc2021Reader().read(run_w1 / f"{stem}.h5")
        for objs, eta_max in ((batch.electrons, 3.0), (batch.muons, 2.1), (batch.jets, 4.0)):
            pt, eta = objs[..., 0], objs[..., 1]
            assert np.all(np.abs(eta[pt > 0]) < eta_max)
            assert np.all(np.diff(pt, axis=1) <= 0), "pT ordering within type"
        assert np.all(batch.jets[..., 0][batch.jets[..., 0] > 0] > 15.0)
        lep_pt = np.concatenate([batch.electrons[..., 0], batch.muons[..., 0]], axis=1)
        lep_iso = np.concatenate([batch.ele_iso, batch.mu_iso], axis=1).sum(axis=-1)
        assert np.all(((lep_pt > 23.0) & (lep_iso < 0.45)).any(axis=1))
        assert np.all(np.isin(batch.ele_charge[batch.electrons[..., 0] > 0], [-1, 1]))


def test_trigger_on_hand_built_events():
    n = 5
    objects = np.zeros((n, 19, 4), np.float32)
    ele_iso = np.zeros((n, 4, 3), np.float32)
    mu_iso = np.zeros((n, 4, 3), np.float32)
    objects[0, 1, 0] = 30.0                      # isolated electron above threshold -> pass
    objects[1, 5, 0] = 23.5                      # isolated muon above threshold -> pass
    objects[2, 1, 0] = 22.9                      # below threshold -> fail
    objects[3, 5, 0] = 40.0                      # muon not isolated (0.2+0.2+0.1 = 0.5) -> fail
    mu_iso[3, 0] = [0.2, 0.2, 0.1]
    objects[4, 1, 0], objects[4, 2, 0] = 50.0, 25.0   # leading non-isolated, second isolated
    ele_iso[4, 0] = [0.5, 0.0, 0.0]
    batch = EventBatch.empty(n, objects=objects, ele_iso=ele_iso, mu_iso=mu_iso)
    np.testing.assert_array_equal(
        single_lepton(batch, TriggerConfig()), [True, True, False, False, True])
    np.testing.assert_array_equal(
        single_lepton(batch, TriggerConfig(lepton_pt_min=35.0, iso_max=0.6)),
        [False, False, False, True, True])


def test_written_h5_reads_back_identical(small_config, tmp_path):
    cfg = load_config(small_config)
    job = grun.make_jobs(cfg, 100, seed=5)[0]
    batch = grun.run_job(job).batch
    assert len(batch) > 10
    write_h5(tmp_path / "b.h5", batch)
    back = Adc2021Reader().read(tmp_path / "b.h5")
    for name in EventBatch.ARRAY_FIELDS:
        if name in ("source_file", "entry"):
            continue
        np.testing.assert_array_equal(getattr(back, name), getattr(batch, name), err_msg=name)


def test_pileup_adds_particles(small_config):
    cfg = load_config(small_config)
    job = grun.make_jobs(cfg, 100, seed=5)[0]   # W, 100 events
    plain = grun.run_job(job).batch
    cfg.pileup.mu = 3.0
    piled = grun.run_job(job).batch
    assert piled.pileup.min() >= 0 and np.all(piled.pileup == np.round(piled.pileup))
    assert 1.5 < piled.pileup.mean() < 4.5
    common, i, j = np.intersect1d(plain.event, piled.event, return_indices=True)
    assert len(common) > 10
    # the hard event is the same (same Pythia seed); pile-up only adds hadrons
    assert np.all(piled.n_ch_had[j] >= plain.n_ch_had[i])
    assert piled.n_ch_had[j].sum() > plain.n_ch_had[i].sum() + 10 * len(common)


# --- unit tests on hand-built arrays -------------------------------------------------------------

def test_pairs_pad_and_cone_sums():
    offsets = np.array([0, 3, 3, 5])
    oi, pi = pairs(np.array([0, 2, 2]), offsets)
    np.testing.assert_array_equal(oi, [0, 0, 0, 1, 1, 2, 2])
    np.testing.assert_array_equal(pi, [0, 1, 2, 3, 4, 3, 4])
    padded = pad(np.array([0, 0, 2]), 3, {"pt": np.array([5.0, 7.0, 9.0])})["pt"]
    np.testing.assert_array_equal(padded, [[5, 7], [0, 0], [9, 0]])
    parts = particles([[
        (11, 1, 0, 30, 0, 0, -1),        # the lepton itself
        (211, 1, 0, 2, 0.2, 0, 1),       # charged, DR 0.1
        (22, 1, 0, 3, -0.3, 0, 0),       # photon, DR 0.1
        (130, 1, 0, 4, 0, 0.4, 0),       # neutral hadron, DR ~0.1
        (211, 1, 0, 0, 5, 0, 1),         # charged, far away
    ]])
    sums = cone_sums(parts, np.array([0]), np.array([0.0]), np.array([0.0]), 0.3,
                     exclude=np.array([0]))
    np.testing.assert_allclose(sums, [[np.hypot(2, 0.2), np.hypot(3, 0.3), 4.0]])


def test_weighted_fractions_and_comparison():
    fr = weighted_fractions(np.array([1.0, 2.0, 1.0]), np.array(["W", "QCD", "W"], dtype=object))
    assert fr == {"W": 0.5, "QCD": 0.5}
    comp = published_comparison(fr)
    assert comp["Z"] == {"generated": 0.0, "published": 0.067}
    with pytest.raises(ValueError, match="sum to zero"):
        weighted_fractions(np.zeros(2), np.array(["W", "W"], dtype=object))


def test_config_errors_name_the_key(tmp_path):
    bad = dict(SMALL, trigger={"lepton_pt_mn": 20.0})
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad, sort_keys=False))
    with pytest.raises(ConfigError, match="lepton_pt_mn.*did you mean 'lepton_pt_min'"):
        load_config(path)
    with pytest.raises(ConfigError, match="need 'particle'"):
        build(GenerateConfig, {"processes": {"X": {"mass": 5.0}}}, where="x.yaml")


@pytest.mark.parametrize("name", ["generate", "generate-fast"])
def test_packaged_configs_load(name):
    cfg = load_config(name)
    assert {n for n, p in cfg.processes.items() if p.kind == "signal"} == {
        "LQ_btau", "A_4l", "h0_tautau", "hplus_taunu"}
    assert {p.group for p in cfg.processes.values() if p.kind == "sm"} == {
        "W", "Z", "ttbar", "QCD"}
