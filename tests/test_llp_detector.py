"""Tracks, neutral candidates and secondary vertices of the parametric detector (LLP samples)."""

from __future__ import annotations

import numpy as np
import pytest

from triggerad.generation.geometry import (
    impact_parameters,
    line_distance,
    reference_point,
    relative_momentum,
    signed_impact_parameters,
)
from triggerad.generation.pythia import Particles
from triggerad.generation.tracking import CalorimeterConfig, TrackingConfig, reconstruct
from triggerad.generation.vertexing import VertexingConfig, find_vertices

#: A displaced decay: vertex (mm) and three charged pions (GeV), plus a photon.
VERTEX = np.array([5.0, 3.0, 2.0])
MOMENTA = np.array([[10.0, 2.0, 1.0], [8.0, -1.0, 3.0], [12.0, 4.0, -2.0], [5.0, 1.0, 0.5]])
IDS = np.array([211, -211, 211, 22])


def decays(n_events: int, vertex=VERTEX, momenta=MOMENTA, ids=IDS) -> Particles:
    """``n_events`` copies of one decay (final-state particles with production vertices)."""
    k = len(ids)
    mass = np.where(np.abs(ids) == 211, 0.13957, 0.0)
    e = np.sqrt((momenta**2).sum(axis=1) + mass**2)
    tile = lambda a: np.tile(a, n_events)  # noqa: E731
    return Particles(
        offsets=np.arange(0, k * n_events + 1, k), id=tile(ids), status=np.ones(k * n_events, int),
        mother1=np.zeros(k * n_events, int), daughter1=np.zeros(k * n_events, int), px=tile(momenta[:, 0]), py=tile(momenta[:, 1]),
        pz=tile(momenta[:, 2]), e=tile(e), charge=tile(np.sign(ids) * (np.abs(ids) == 211)),
        vx=np.full(k * n_events, float(vertex[0])), vy=np.full(k * n_events, float(vertex[1])),
        vz=np.full(k * n_events, float(vertex[2])),
    )


def test_impact_parameters_of_a_straight_track_are_analytic():
    # d0 = (-x py + y px) / pT, dz = z - (x px + y py) / pT * pz / pT
    d0, dz = impact_parameters(*VERTEX, *MOMENTA[0])
    pt2 = 10.0**2 + 2.0**2
    assert d0 == pytest.approx((-5.0 * 2.0 + 3.0 * 10.0) / np.sqrt(pt2), abs=1e-12)
    assert dz == pytest.approx(2.0 - (5.0 * 10.0 + 3.0 * 2.0) / pt2 * 1.0, abs=1e-12)
    # the point of closest approach lies on the track line, at transverse distance |d0|
    point = reference_point(np.array([d0]), np.array([dz]), np.array([np.arctan2(2.0, 10.0)]))[0]
    along = point - VERTEX
    assert np.linalg.norm(np.cross(along, MOMENTA[0])) == pytest.approx(0.0, abs=1e-9)
    assert np.hypot(point[0], point[1]) == pytest.approx(abs(d0), abs=1e-12)
    # shifting the primary vertex along the track leaves d0 unchanged
    d0_pv, _ = impact_parameters(*VERTEX, *MOMENTA[0], pv=tuple(VERTEX - 2.0 * MOMENTA[0]))
    assert d0_pv == pytest.approx(0.0, abs=1e-12)


def test_signed_impact_parameters_and_relative_momentum():
    point = np.array([[0.0, 1.0, 0.0], [0.0, -1.0, 0.0]])
    direction = np.array([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    axis = np.array([[0.0, 1.0, 0.0], [0.0, 1.0, 0.0]])
    ip2d, ip3d = signed_impact_parameters(point, direction, axis)
    np.testing.assert_allclose(ip2d, [1.0, -1.0])
    np.testing.assert_allclose(ip3d, [1.0, -1.0])
    p_par, p_rel, eta_rel = relative_momentum(np.array([[3.0, 4.0, 0.0]]), np.array([[1.0, 0, 0]]))
    assert (p_par[0], p_rel[0]) == pytest.approx((3.0, 4.0))
    assert eta_rel[0] == pytest.approx(0.5 * np.log((5 + 3) / (5 - 3)))
    dist = line_distance(np.array([[0.0, 0, 1]]), np.array([[1.0, 0, 0]]),
                         np.zeros((1, 3)), np.array([[0.0, 1, 0]]))
    assert dist[0] == pytest.approx(1.0)


def test_tracks_of_a_displaced_decay_have_the_expected_impact_parameters():
    n = 2000
    cfg = TrackingConfig()
    c = reconstruct(decays(n), cfg, CalorimeterConfig(), np.random.default_rng(5))
    true_d0, true_dz = impact_parameters(*VERTEX, MOMENTA[:3, 0], MOMENTA[:3, 1], MOMENTA[:3, 2])
    r = np.hypot(*VERTEX[:2])
    for k in range(3):
        sel = c.is_track & (c.source % 4 == k)
        pt = np.hypot(*MOMENTA[k, :2])
        eta = np.arcsinh(MOMENTA[k, 2] / pt)
        scale = (1 + cfg.res_eta_slope * abs(eta)) * (1 + cfg.res_radius_slope * r / cfg.radius_max)
        sigma = np.hypot(cfg.d0_res_constant, cfg.d0_res_pt / pt) * scale
        np.testing.assert_allclose(c.d0_err[sel], sigma, rtol=1e-12)
        pull = (c.d0[sel] - true_d0[k]) / sigma
        assert abs(pull.mean()) < 4 / np.sqrt(sel.sum())
        assert pull.std() == pytest.approx(1.0, abs=0.06)
        dz_pull = (c.dz[sel] - true_dz[k]) / c.dz_err[sel]
        assert dz_pull.std() == pytest.approx(1.0, abs=0.06)
        # found with the efficiency at this radius; the rest become neutral hadrons
        expected = cfg.efficiency / (1 + np.exp((r - cfg.eff_r50) / cfg.eff_r_width))
        assert sel.sum() / n == pytest.approx(expected, abs=4 * np.sqrt(expected / n))
    lost = ~c.is_track & (c.source % 4 < 3)
    assert set(c.pdg_id[lost]) <= {130}
    photons = c.source % 4 == 3
    assert photons.sum() == n and set(c.pdg_id[photons]) == {22}
    assert np.all(c.hcal_fraction[photons] == 0)


def test_secondary_vertex_is_found_within_its_resolution():
    n = 500
    c = reconstruct(decays(n), TrackingConfig(), CalorimeterConfig(), np.random.default_rng(7))
    sv = find_vertices(c, VertexingConfig())
    assert len(sv) >= 0.9 * n and np.bincount(sv.event).max() == 1
    err = np.sqrt(np.diagonal(sv.cov, axis1=1, axis2=2))
    pull = (sv.position - VERTEX) / err
    np.testing.assert_allclose(pull.mean(axis=0), 0.0, atol=0.2)
    np.testing.assert_allclose(pull.std(axis=0), 1.0, atol=0.15)
    assert np.mean(np.all(np.abs(pull) < 4, axis=1)) > 0.98
    assert np.median(sv.d3d) == pytest.approx(np.linalg.norm(VERTEX), abs=0.02)
    full = sv.ntracks == 3
    p = MOMENTA[:3].sum(axis=0)
    mass = np.sqrt((np.sqrt((MOMENTA[:3] ** 2).sum(1) + 0.13957**2).sum()) ** 2 - p @ p)
    assert np.median(sv.mass[full]) == pytest.approx(mass, rel=0.03)
    # every track of a vertex points back to it, and they are tracks of the same event
    members = sv.track_vertex >= 0
    np.testing.assert_array_equal(np.bincount(sv.track_vertex[members], minlength=len(sv)),
                                  sv.ntracks)
    np.testing.assert_array_equal(c.event[members], sv.event[sv.track_vertex[members]])


def test_prompt_tracks_have_unit_d0_significance_and_no_vertex():
    n = 3000
    prompt = decays(n, vertex=np.zeros(3))
    c = reconstruct(prompt, TrackingConfig(), CalorimeterConfig(), np.random.default_rng(11))
    sig = c.d0[c.is_track] / c.d0_err[c.is_track]
    assert abs(sig.mean()) < 0.05
    assert sig.std() == pytest.approx(1.0, abs=0.03)
    assert np.all(c.lost_inner_hits[c.is_track] == -1)
    sv = find_vertices(c, VertexingConfig())
    assert len(sv) < 0.01 * n  # fakes from 2-sigma seeds only


def test_ip_smear_scale_widens_the_pulls_but_not_the_reported_errors():
    base, shifted = TrackingConfig(), TrackingConfig(ip_smear_scale=1.5)
    prompt = decays(2000, vertex=np.zeros(3))
    a = reconstruct(prompt, base, CalorimeterConfig(), np.random.default_rng(1))
    b = reconstruct(prompt, shifted, CalorimeterConfig(), np.random.default_rng(1))
    assert np.array_equal(a.is_track, b.is_track)
    np.testing.assert_array_equal(a.d0_err, b.d0_err)
    ratio = (b.d0[b.is_track] / b.d0_err[b.is_track]).std() / (
        a.d0[a.is_track] / a.d0_err[a.is_track]).std()
    assert ratio == pytest.approx(1.5, rel=1e-9)


def test_displaced_neutrals_point_to_their_calorimeter_impact():
    # a photon made 1 m out along y, flying along x: seen from the origin at the ECAL impact
    photon = decays(1, vertex=np.array([0.0, 1000.0, 0.0]), momenta=np.array([[20.0, 0, 0]]),
                    ids=np.array([22]))
    cfg = CalorimeterConfig(em_stochastic=0.0, em_constant=0.0)
    c = reconstruct(photon, TrackingConfig(), cfg, np.random.default_rng(0))
    x = np.sqrt(cfg.ecal_radius**2 - 1000.0**2)
    assert c.phi[0] == pytest.approx(np.arctan2(1000.0, x))
    assert c.eta[0] == pytest.approx(0.0, abs=1e-12)
    assert c.pt[0] == pytest.approx(20.0)
    # made behind the ECAL surface: a hadronic deposit, not a photon
    late = decays(1, vertex=np.array([0.0, 1500.0, 0.0]), momenta=np.array([[20.0, 0, 0]]),
                  ids=np.array([22]))
    c = reconstruct(late, TrackingConfig(), cfg, np.random.default_rng(0))
    assert (c.pdg_id[0], c.hcal_fraction[0]) == (130, 1.0)
    gone = decays(1, vertex=np.array([0.0, 3000.0, 0.0]), momenta=np.array([[20.0, 0, 0]]),
                  ids=np.array([22]))
    assert len(reconstruct(gone, TrackingConfig(), cfg, np.random.default_rng(0)).event) == 0


def test_tracking_needs_vertices():
    p = decays(1)
    p.vx = p.vy = p.vz = None
    with pytest.raises(ValueError, match="production vertices"):
        reconstruct(p, TrackingConfig(), CalorimeterConfig(), np.random.default_rng(0))


def _jet_inputs(particles: Particles, seed: int):
    """Tracks, vertices, jets and tagger inputs of hand-built events (no truth)."""
    from tagger.features import JetSelectionConfig, build_record, reco_jets
    from triggerad.jetinputs import jet_batch

    c = reconstruct(particles, TrackingConfig(), CalorimeterConfig(), np.random.default_rng(seed))
    sv = find_vertices(c, VertexingConfig())
    jets = reco_jets(c, JetSelectionConfig())
    n, k = particles.n_events, len(jets.event)
    events = {"event": np.arange(n), "run": np.zeros(n), "lumi": np.zeros(n),
              "weight": np.ones(n), "pileup": np.zeros(n),
              "process": np.full(n, "test", dtype=object), "domain": np.zeros(n)}
    truth = {f: np.zeros(k) for f in ("ctau", "label", "gen_pt", "gen_dr", "vertex_fraction",
                                      "vertex_x", "vertex_y", "vertex_z", "hadron_flavour",
                                      "parton_flavour")}
    return jet_batch(build_record(c, sv, jets, JetSelectionConfig(), events, truth))


def test_prompt_jets_have_unit_width_and_displaced_decays_positive_ip_in_the_jet():
    from triggerad.jets import CHARGED_FEATURES, GLOBAL_FEATURES, SV_FEATURES

    sig, frac = CHARGED_FEATURES.index("sip2d_sig"), CHARGED_FEATURES.index("pt_frac")
    prompt = _jet_inputs(decays(2000, vertex=np.zeros(3)), seed=3)
    s = prompt.charged[..., sig][prompt.charged[..., frac] > 0]
    assert len(prompt) > 1950 and len(s) > 3500  # a few jets fall below 20 GeV
    assert abs(s.mean()) < 0.05 and s.std() == pytest.approx(1.0, abs=0.04)
    # a collimated decay 10 mm along its jet axis: the tracks cross the axis in front of the
    # primary vertex, so their jet-signed impact parameters are positive
    collimated = np.array([[20.0, 1.0, 0.5], [15.0, -0.8, 1.0], [18.0, 0.5, -0.9],
                           [10.0, 0.3, 0.2]])
    axis = collimated.sum(axis=0) / np.linalg.norm(collimated.sum(axis=0))
    displaced = _jet_inputs(decays(500, vertex=10.0 * axis, momenta=collimated), seed=4)
    assert len(displaced) == 500
    tracks = displaced.charged[..., frac] > 0
    assert np.mean(displaced.charged[..., sig][tracks] > 3) > 0.97
    has_sv = displaced.globals[:, GLOBAL_FEATURES.index("n_sv")] > 0
    assert has_sv.mean() > 0.9
    d3d = displaced.sv[has_sv, 0, SV_FEATURES.index("d3d")]
    assert np.median(d3d) == pytest.approx(10.0, abs=0.05)
    assert np.all(displaced.globals[has_sv, GLOBAL_FEATURES.index("vertex_category")] == 0)
