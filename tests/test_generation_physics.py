"""Physics of the generator, with numbers: MET from reconstructed objects, muons as MIPs in the
calorimeter, fake leptons, the heavy-flavour weight (against a brute-force sample) and the
validation block."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from generation_samples import FixedRng, jets, leptons, particles, pion, reco
from scipy import integrate, special, stats

from triggerad.events import EventBatch, from_collections
from triggerad.generation import run as grun
from triggerad.generation.config import (
    DetectorConfig,
    JetConfig,
    LeptonConfig,
    QcdModelConfig,
    TriggerConfig,
    load_config,
)
from triggerad.generation.detector import Detector, decay_mother
from triggerad.generation.qcd import apply_fakes, forced_decay_weight
from triggerad.generation.validation import (
    dilepton_mass,
    falling_edge,
    group_comparison,
    n_eff,
    peak_and_fwhm,
    process_validation,
    transverse_mass,
    weighted_quantile,
)

pytest.importorskip("pythia8mc")
pytest.importorskip("fastjet")

#: No smearing anywhere except a 20 % constant jet term, full efficiencies.
EXACT_MUON = LeptonConfig(eta_max=2.1, eff_plateau=1.0, res_stochastic=0.0, res_constant=0.0)
EXACT = DetectorConfig(muon=EXACT_MUON, jet=JetConfig(res_stochastic=0.0, res_constant=0.2),
                       unclustered_res_stochastic=0.0)


def _muon(pt: float, eta: float, phi: float) -> tuple:
    return (13, 1, 0, pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta), -1)


def test_met_is_minus_the_reconstructed_objects_so_a_mismeasured_jet_shows_up():
    # a 100 GeV muon along +x recoiling against a 100 GeV jet of four pions along -x
    event = [_muon(100.0, 0.3, 0.0)] + [pion(25.0, eta, np.pi) for eta in (-0.1, 0, 0.05, 0.1)]
    parts = particles([event])
    exact = Detector(EXACT, FixedRng(0.0))(parts)
    np.testing.assert_allclose(exact.met_pt, [0.0], atol=1e-9)
    # every Gaussian draw +1: the jet (20 % resolution) is measured at 120 GeV, the muon exactly
    shifted = Detector(EXACT, FixedRng(1.0))(parts)
    np.testing.assert_allclose(shifted.jets["pt"][0, 0], 120.0, rtol=1e-12)
    np.testing.assert_allclose(shifted.muons["pt"][0, 0], 100.0, rtol=1e-12)
    np.testing.assert_allclose(shifted.met_pt, [20.0], rtol=1e-9)
    np.testing.assert_allclose(shifted.met_phi, [0.0], atol=1e-9)   # opposite to the jet


def test_muons_and_neutrinos_enter_jets_at_most_as_a_mip_deposit():
    cfg = DetectorConfig(muon=EXACT_MUON, jet=JetConfig(res_stochastic=0.0, res_constant=0.0),
                         unclustered_res_stochastic=0.0, muon_mip_deposit=3.0)
    core = [pion(10.0, 2.5 + d, d) for d in (-0.04, -0.02, 0.0, 0.02, 0.04)]       # 50 GeV jet
    central = [pion(10.0, 1.0 + d, d) for d in (-0.04, -0.02, 0.0, 0.02, 0.04)]
    nu = (14, 1, 0, 40.0, 0.8, 40.0 * np.sinh(2.5), 0)
    events = [
        core,
        core + [_muon(40.0, 2.5, 0.02)],          # outside the muon acceptance (|eta| > 2.1)
        core + [nu],
        central + [_muon(40.0, 1.0, 0.02)],       # in acceptance but not isolated: lost
        central,
    ]
    # a recoiling pion at phi = pi balances each event's true transverse momentum
    recoil = [-sum(p[3] for p in ev) for ev in events]
    parts = particles([ev + [(211, 1, 0, x, 0.0, 0.0, 1)] for ev, x in zip(events, recoil, strict=True)])
    r = Detector(cfg, FixedRng(0.0))(parts)
    near = np.abs(r.jets["phi"]) < 1.0
    jet_pt = np.where(near, r.jets["pt"], 0.0).sum(axis=1)
    assert np.all(near.sum(axis=1) == 1)
    assert np.all(r.muons["pt"] == 0)
    forward, central_mu = jet_pt[1] - jet_pt[0], jet_pt[3] - jet_pt[4]
    np.testing.assert_allclose(forward, 3.0 / np.cosh(2.5), rtol=0.02)   # E = 3 GeV, |eta| 2.5
    np.testing.assert_allclose(central_mu, 3.0 / np.cosh(1.0), rtol=0.02)
    assert 0 < forward <= 3.0 and 0 < central_mu <= 3.0
    assert jet_pt[2] == jet_pt[0]                                         # the neutrino: nothing
    # what the calorimeter did not see is missing: MET = muon minus its deposit, or the neutrino
    np.testing.assert_allclose(r.met_pt[1:4], [40.0 - forward, 40.0, 40.0 - central_mu],
                               rtol=0.02)
    np.testing.assert_allclose(r.met_pt[[0, 4]], 0.0, atol=1e-6)


FAKE_QCD = QcdModelConfig(fake_ele_rate=0.01, fake_mu_rate=0.004, fake_power=0.0,
                          fake_fraction_a=2.5, fake_fraction_b=2.2, fake_jet_pt_min=20.0)
EXACT_LEPTONS = DetectorConfig(
    electron=LeptonConfig(res_stochastic=0.0, res_constant=0.0), muon=EXACT_MUON)


def test_fake_lepton_carries_a_fraction_of_its_jet_and_the_rest_is_in_its_cone():
    n = 4000
    # a 60 GeV jet of three particles (all within the 0.5 isolation cone) and one far away
    event = [pion(30.0, 0.0, 0.0), pion(20.0, 0.1, 0.05), pion(10.0, -0.1, -0.1),
             pion(5.0, 0.0, 2.5)]
    iso = particles([event] * n)
    r = reco(jets(np.full((n, 1), 60.0), np.zeros((n, 1)), np.zeros((n, 1))), iso)
    met_before = r.met_pt.copy()
    weight = apply_fakes(r, FAKE_QCD, EXACT_LEPTONS, TriggerConfig(), np.random.default_rng(4))
    # accepted iff f 60 > 23 and (60 - f 60) < 0.45 f 60, i.e. f > 1 / 1.45
    f_min = 1 / 1.45
    tail = 1 - special.betainc(2.5, 2.2, f_min)
    np.testing.assert_allclose(weight, 1 - (1 - 0.01 * tail) * (1 - 0.004 * tail), rtol=1e-12)
    lep_pt = r.electrons["pt"][:, -1] + r.muons["pt"][:, -1]
    lep_iso = (r.electrons["iso"][:, -1] + r.muons["iso"][:, -1]).sum(axis=1)
    f = lep_pt / 60.0
    assert np.all((f > f_min) & (f < 1))
    # the rest of the jet is exactly the activity in the lepton's cone
    np.testing.assert_allclose(lep_iso * lep_pt, 60.0 - lep_pt, rtol=1e-9)
    # the jet keeps 60 (1 - f), dropped below 15 GeV but still in the event: MET is unchanged
    rest = 60.0 * (1 - f)
    np.testing.assert_allclose(r.jets["pt"][:, 0], np.where(rest >= 15.0, rest, 0.0), rtol=1e-9)
    assert 0 < np.mean(rest >= 15.0) < 1
    np.testing.assert_allclose(r.met_pt, met_before, rtol=1e-9)
    # f follows Beta(2.5, 2.2) truncated to f > f_min; electrons : muons = 0.01 : 0.004
    pdf = stats.beta(2.5, 2.2).pdf
    mean = integrate.quad(lambda x: x * pdf(x), f_min, 1)[0] / tail
    np.testing.assert_allclose(f.mean(), mean, atol=3 * f.std() / np.sqrt(n))
    n_ele = np.sum(r.electrons["pt"][:, -1] > 0)
    np.testing.assert_allclose(n_ele / n, 1 / 1.4, atol=3 * np.sqrt(0.2 / n))


def test_fake_candidate_drawn_in_proportion_to_its_accepted_probability():
    n = 20000
    qcd = QcdModelConfig(fake_ele_rate=0.02, fake_mu_rate=0.01, fake_power=-1.0, fake_pt_ref=30.0)
    # jet 0: 60 GeV central (e and mu); jet 1: 100 GeV at |eta| 2.5 (electron only)
    event = [pion(60.0, 0.0, 0.0), pion(100.0, 2.5, 3.0)]
    r = reco(jets(np.tile([60.0, 100.0], (n, 1)), np.tile([0.0, 2.5], (n, 1)),
                  np.tile([0.0, 3.0], (n, 1))), particles([event] * n))
    weight = apply_fakes(r, qcd, EXACT_LEPTONS, TriggerConfig(), np.random.default_rng(2))
    # each jet is one particle, so its cone holds just the jet: accepted iff f J > 23 and
    # J - f J < 0.45 f J, i.e. f > max(23 / J, 1 / 1.45)
    tails = [1 - special.betainc(2.5, 2.2, max(23 / j, 1 / 1.45)) for j in (60.0, 100.0)]
    q = np.array([0.02 * 0.5 * tails[0], 0.01 * 0.5 * tails[0], 0.02 * 0.3 * tails[1]])
    np.testing.assert_allclose(weight, 1 - np.prod(1 - q), rtol=1e-12)
    from_jet1 = r.electrons["eta"][:, -1] == 2.5
    ele_jet0 = (r.electrons["pt"][:, -1] > 0) & ~from_jet1
    mu_jet0 = r.muons["pt"][:, -1] > 0
    np.testing.assert_allclose([ele_jet0.mean(), mu_jet0.mean(), from_jet1.mean()], q / q.sum(),
                               atol=0.015)
    assert np.all(ele_jet0 + mu_jet0 + from_jet1 == 1)


def test_decay_mother_skips_copies_and_the_forced_weight_counts_accepted_leptons_only():
    parts = particles([[
        (90, -11, 0, 0, 0, 0, 0, 0),          # 0 system
        (511, -92, 2, 20, 0, 0, 0, 0),        # 1 B0, mixes into
        (-511, -91, 3, 20, 0, 0, 0, 1),       # 2 the B0bar copy, which decays to
        (11, -51, 4, 15, 0, 0, -1, 2),        # 3 an electron that radiates: its copy
        (11, 1, 0, 14, 0, 0, -1, 3),          # 4 is final
        (521, -91, 6, 0, 20, 0, 1, 0),        # 5 B+
        (-13, 1, 0, 0, 12, 0, 1, 5),          # 6 mu+ from the B+
        (421, -91, 8, 0, -20, 0, 0, 0),       # 7 D0
        (-11, 1, 0, 0, -30, 0, 1, 7),         # 8 e+ from the D0
    ]])
    np.testing.assert_array_equal(decay_mother(parts, np.array([4, 6, 8, 1])), [2, 5, 7, -1])
    fractions = {511: 0.2, 521: 0.25}
    trig = TriggerConfig(lepton_pt_min=10.0)

    def weight(ele_pt, ele_mother, mu_pt, mu_mother):
        r = reco(jets(np.zeros((1, 0)), np.zeros((1, 0)), np.zeros((1, 0))), parts,
                 electrons=leptons(1, [ele_pt], [0.0], [0.0], [ele_mother]),
                 muons=leptons(1, [mu_pt], [0.0], [1.5], [mu_mother]))
        return forced_decay_weight(r, parts, fractions, trig)[0]

    assert weight(14.0, 2, 12.0, 5) == pytest.approx(1 - 0.8 * 0.75)   # both B leptons accepted
    assert weight(14.0, 2, 9.0, 5) == pytest.approx(0.2)               # the muon is too soft
    assert weight(30.0, 7, 9.0, 5) == 0.0                              # a charm lepton only
    assert weight(30.0, -1, 0.0, -1) == 0.0                            # a fake


@pytest.mark.slow
def test_forced_bb_weight_agrees_with_a_brute_force_unforced_sample(tmp_path):
    hadrons = [511, 521, 531, 541, 5122, 5132, 5232, 5332]
    settings = ["HardQCD:hardbbbar = on", "PhaseSpace:pTHatMin = 20."]
    cfg_dict = {
        "beam": {"settings": ["PartonLevel:MPI = off", "Check:event = off"]},
        "processes": {
            "forced": {"settings": settings, "forced_decays": hadrons},
            "free": {"settings": settings, "events_fraction": 3.0},
        },
        # a loose trigger (no isolation) so that a small brute-force run has statistics
        "detector": {"isolation": {"object_max": 100.0}},
        "trigger": {"lepton_pt_min": 10.0, "iso_max": 100.0},
        "output": {"formats": ["h5"], "job_size": 6000, "batch_size": 500},
    }
    path = tmp_path / "bb.yaml"
    path.write_text(yaml.safe_dump(cfg_dict))
    cfg = load_config(path)
    forced, free = (grun.run_job(job) for job in grun.make_jobs(cfg, 1500, seed=7))
    # forced: sum of P(>= 1 B decays into an accepted lepton) per generated event
    w = forced.batch.weight
    est_forced, err_forced = w.sum() / 1500, np.sqrt(np.sum(w**2)) / 1500
    # brute force: fraction of unforced events whose trigger lepton comes from a b-hadron decay
    k = int(np.sum(free.source == "b"))
    est_free, err_free = k / 4500, np.sqrt(k) / 4500
    assert k > 100
    assert abs(est_forced - est_free) < 3 * np.hypot(err_forced, err_free), (est_forced, est_free)


# --- validation ----------------------------------------------------------------------------------

def _batch(n, *, lep=(), met=(), n_jet=0, weight=None, iso=0.0, n_ch=0):
    """EventBatch with per-event leptons [(pt, eta, phi, charge, is_mu)], MET (pt, phi), jets."""
    ele = {k: np.zeros((n, 2)) for k in ("pt", "eta", "phi")}
    mu = {k: np.zeros((n, 2)) for k in ("pt", "eta", "phi")}
    for coll in (ele, mu):
        coll["charge"] = np.zeros((n, 2), np.int8)
        coll["iso"] = np.zeros((n, 2, 3))
    count = {0: np.zeros(n, int), 1: np.zeros(n, int)}
    for i, leps in enumerate(lep):
        for pt, eta, phi, q, is_mu in leps:
            coll, j = (mu if is_mu else ele), count[is_mu][i]
            coll["pt"][i, j], coll["eta"][i, j], coll["phi"][i, j] = pt, eta, phi
            coll["charge"][i, j], coll["iso"][i, j, 0] = q, iso
            count[is_mu][i] += 1
    jet = {"pt": np.zeros((n, 2)), "eta": np.zeros((n, 2)), "phi": np.zeros((n, 2))}
    jet["pt"][:, :n_jet] = 30.0
    met = np.asarray(met, float).reshape(n, 2)
    return from_collections(met[:, 0], met[:, 1], ele, mu, jet,
                            weight=np.ones(n) if weight is None else weight,
                            n_ch_had=np.full(n, n_ch, np.int32))


def test_validation_peak_width_edge_and_weighted_statistics():
    rng = np.random.default_rng(3)
    n = 20000
    mass = rng.normal(91.0, 3.0, n)
    values, weights = mass, np.ones(n)
    peak, fwhm = peak_and_fwhm(values, weights, 60.0, 120.0)
    assert peak == pytest.approx(91.0, abs=1.0)
    assert fwhm == pytest.approx(2 * np.sqrt(2 * np.log(2)) * 3.0, abs=1.0)
    assert falling_edge(rng.uniform(40.0, 80.0, n), weights, 0.0, 150.0) == pytest.approx(
        80.0, abs=2.0)
    assert n_eff(np.array([1.0, 1.0, 2.0])) == pytest.approx(16 / 6)
    assert weighted_quantile(np.array([1.0, 2.0, 3.0]), np.array([1.0, 1.0, 4.0]), 0.5) == 3.0
    # a Z -> mumu event of mass 91: pT 45.5 back to back at eta 0
    z = _batch(2, lep=[[(45.5, 0, 0, 1, 1), (45.5, 0, np.pi, -1, 1)]] * 2, met=[(3, 0), (7, 1)],
               n_jet=0)
    np.testing.assert_allclose(dilepton_mass(z), 91.0, rtol=1e-6)
    w = _batch(1, lep=[[(40.0, 0, 0, 1, 0)]], met=[(40.0, np.pi)])
    np.testing.assert_allclose(transverse_mass(w), 80.0, rtol=1e-6)


def test_process_validation_counts_lone_leptons_and_weights_everything():
    batch = _batch(3, lep=[[(30, 0, 0, 1, 0)], [(30, 0, 0, 1, 1)], [(30, 0, 0, 1, 0)]],
                   met=[(10, 0), (20, 0), (40, 0)], n_jet=0, weight=np.array([1.0, 1.0, 2.0]),
                   n_ch=4)
    batch.ele_iso[2, 0, 0] = 0.2
    batch.jets[1, 0, 0] = 25.0                                   # event 1 has a jet
    val = process_validation(batch, np.array(["fake", "b", "fake"], dtype=object))
    assert val["lone_lepton_no_jet"] == 2
    assert val["met_median"] == 20.0
    assert val["lepton_iso_zero_fraction"] == pytest.approx(0.5)
    assert val["lepton_iso_mean"] == pytest.approx(0.2 * 2 / 4)
    assert val["n_eff"] == pytest.approx(16 / 6)
    assert val["n_ch_had_mean"] == 4.0
    assert val["lepton_sources"] == {"b": 0.25, "fake": 0.75}


def test_group_comparison_uses_the_inclusive_cross_section():
    cfg = load_config("generate")
    procs = {name: {"sigma_pb": 0.0, "selected_sigma_pb": 0.0} for name in cfg.processes}
    procs["W"].update(sigma_pb=5e4, selected_sigma_pb=600.0)
    procs["QCD_fake"].update(sigma_pb=7e8, selected_sigma_pb=300.0)
    procs["QCD_bb"].update(sigma_pb=3e6, selected_sigma_pb=100.0)
    out = group_comparison(procs, cfg, sm_total=1000.0)
    assert out["W"]["fraction"] == pytest.approx(0.6)
    assert out["W"]["ratio"] == pytest.approx(0.6 / 0.592)
    assert out["QCD"]["sigma_nb"] == pytest.approx(7e5)
    assert out["QCD"]["efficiency"] == pytest.approx(400.0 / 7e8)
    assert out["QCD"]["published_efficiency"] == pytest.approx(0.0008 * 0.096)
    assert out["Z"]["published_sigma_nb"] == 20.0 and out["ttbar"]["fraction"] == 0.0


def test_empty_batches_give_nan_not_errors():
    val = process_validation(EventBatch.empty(0), np.zeros(0, dtype=object))
    assert val["selected"] == 0 and np.isnan(val["met_median"])
