"""Tests of fast pile-up (triggerad.generation.pileup): the minimum-bias library vs full overlay."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy import stats

from triggerad.errors import ConfigError
from triggerad.generation import pileup as pu
from triggerad.generation import pythia as py
from triggerad.generation import run as grun
from triggerad.generation.config import GenerateConfig, PileupConfig, ProcessConfig
from triggerad.generation.detector import delta_phi
from triggerad.generation.geometry import impact_parameters

ECM = 13000.0


def _random_particles(rng, counts) -> py.Particles:
    """Events of random final-state particles with displaced production vertices."""
    m = int(np.sum(counts))
    px, py_, pz = rng.normal(0, 2, m), rng.normal(0, 2, m), rng.normal(0, 10, m)
    return py.Particles(
        offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        id=rng.choice([211, -211, 22, 130], m).astype(np.int32), status=np.ones(m, np.int32),
        mother1=np.zeros(m, np.int32), daughter1=np.zeros(m, np.int32),
        px=px, py=py_, pz=pz, e=np.sqrt(px**2 + py_**2 + pz**2 + 0.0195),
        charge=rng.choice([-1.0, 0.0, 1.0], m),
        vx=rng.normal(0, 0.5, m), vy=rng.normal(0, 0.5, m), vz=rng.normal(0, 2, m),
    )


def test_phi_rotation_preserves_each_events_internal_structure():
    rng = np.random.default_rng(4)
    events = _random_particles(rng, [7, 1, 12, 5])
    angles = np.array([0.3, -2.9, 3.1, 1.0])
    rot = pu.rotate_phi(events, angles)
    ev = events.event_index
    # pT, eta, pz, E, ids and charges of every particle unchanged
    np.testing.assert_allclose(rot.pt, events.pt, rtol=1e-13)
    np.testing.assert_allclose(rot.eta, events.eta, rtol=1e-12, atol=1e-13)
    for f in ("pz", "e", "vz", "id", "charge", "status"):
        np.testing.assert_array_equal(getattr(rot, f), getattr(events, f))
    # every particle turned by its event's angle, so pairwise delta-phi within an event unchanged
    np.testing.assert_allclose(delta_phi(rot.phi, events.phi), delta_phi(angles[ev], 0.0),
                               atol=1e-12)
    for i in range(events.n_events):
        sl = slice(events.offsets[i], events.offsets[i + 1])
        before = delta_phi(events.phi[sl][:, None], events.phi[sl][None, :])
        after = delta_phi(rot.phi[sl][:, None], rot.phi[sl][None, :])
        np.testing.assert_allclose(after, before, atol=1e-12)
    # impact parameters (CMS convention of geometry.py) are rotation invariant
    d0, dz = impact_parameters(events.vx, events.vy, events.vz, events.px, events.py, events.pz)
    d0r, dzr = impact_parameters(rot.vx, rot.vy, rot.vz, rot.px, rot.py, rot.pz)
    np.testing.assert_allclose(d0r, d0, atol=1e-12)
    np.testing.assert_allclose(dzr, dz, atol=1e-12)


def test_take_events_group_and_shift_z():
    rng = np.random.default_rng(5)
    pool = _random_particles(rng, [2, 3, 1])
    taken = pu.take_events(pool, np.array([2, 0, 2, 1]))
    np.testing.assert_array_equal(np.diff(taken.offsets), [1, 2, 1, 3])
    np.testing.assert_array_equal(taken.px, pool.px[[5, 0, 1, 5, 2, 3, 4]])
    shifted = pu.shift_z(taken, np.array([1.0, 2.0, 3.0, 4.0]))
    np.testing.assert_allclose(shifted.vz - taken.vz, [1, 2, 2, 3, 4, 4, 4])
    grouped = pu.group(shifted, np.array([0, 3, 1]))
    np.testing.assert_array_equal(grouped.offsets, [0, 0, 4, 7])


@pytest.fixture(scope="module")
def library_cfg(tmp_path_factory):
    return PileupConfig(mu=1.0, route="library", pool_size=200, max_reuse=50.0,
                        cache_dir=str(tmp_path_factory.mktemp("pool")))


def test_pool_is_cached_atomically_and_checked_on_load(library_cfg):
    pool = pu.load_pool(library_cfg, ECM, seed=3)
    path = pu.pool_path(library_cfg, ECM, 3)
    assert path.exists() and pool.n_events == 200 and pool.has_vertices
    assert not list(path.parent.glob("*.part"))
    assert np.all(pool.status > 0)
    pu._POOLS.clear()
    again = pu.load_pool(library_cfg, ECM, seed=3)   # from disk
    for f, v in pool.arrays().items():
        np.testing.assert_array_equal(getattr(again, f), v, err_msg=f)
    other = pu.pool_key(library_cfg, ECM, 4)
    with pytest.raises(ConfigError, match=r"pile-up pool .*made with .*delete the file"):
        pu.read_pool(path, other)


@pytest.mark.slow
def test_library_reproduces_full_overlay_multiplicity(library_cfg):
    """Per-event pile-up multiplicity (final-state particles) of the library vs fresh overlay
    events, for the same Poisson(mu) counts: two-sample KS and the means within statistics."""
    counts = np.random.default_rng(1).poisson(library_cfg.mu, 200)
    charges = None
    made = {}
    for route in ("overlay", "library"):
        cfg = dataclasses.replace(library_cfg, route=route)
        src = pu.Pileup(cfg, ECM, pythia_seed=77, seed=3, charges=charges or _charges())
        made[route] = np.diff(src.events(counts, np.random.default_rng(2)).offsets)
    a, b = made["overlay"], made["library"]
    assert a.mean() > 50 * library_cfg.mu   # final-state particles of 13 TeV minimum bias
    assert stats.ks_2samp(a, b).pvalue > 0.01
    err = np.hypot(a.std() / np.sqrt(len(a)), b.std() / np.sqrt(len(b)))
    assert abs(a.mean() - b.mean()) < 3 * err


def _charges():
    return py.ChargeTable(py.make_pythia(["SoftQCD:inelastic = on"], 1).particleData)


def test_reuse_bound_refuses_the_run_before_it_starts(library_cfg):
    assert pu.check_reuse(library_cfg, 2000.0) == pytest.approx(10.0)
    with pytest.raises(ConfigError, match=r"reused 150.0 times .*max_reuse = 50.0.*pool_size >= 600"):
        pu.prepare(library_cfg, ECM, 3, overlays=30000.0)
    overlay = dataclasses.replace(library_cfg, route="overlay")
    assert pu.check_reuse(overlay, 30000.0) == pytest.approx(150.0)   # no bound: no pool


def test_unknown_route_names_the_valid_ones():
    from triggerad.config import build

    with pytest.raises(ConfigError, match=r"route.*'overlay', 'library', 'hgmm'"):
        build(PileupConfig, {"route": "libary"}, where="gen.yaml:pileup")


def _w_config(pileup: PileupConfig) -> GenerateConfig:
    w = ProcessConfig(settings=["WeakSingleBoson:ffbar2W = on", "24:onMode = off",
                                "24:onIfAny = 11 13"])
    cfg = GenerateConfig(processes={"W": w}, pileup=pileup)
    cfg.beam.settings = ["PartonLevel:MPI = off"]
    cfg.output.job_size, cfg.output.batch_size = 40, 20
    return cfg


@pytest.mark.slow
def test_library_pileup_is_identical_for_one_and_two_workers(library_cfg):
    cfg = _w_config(library_cfg)
    jobs = grun.make_jobs(cfg, 80, seed=3)
    assert len(jobs) == 2
    plan = grun.pileup_plan(cfg.pileup, ECM, 3, jobs, progress=False)
    assert plan["expected_reuse"] == pytest.approx(1.0 * 80 / 200)
    one, _ = grun.run_jobs(jobs, workers=1, progress=False)
    two, _ = grun.run_jobs(jobs, workers=2, executor="process", progress=False)
    assert sum(r.pileup_overlays for r in one) > 50
    for a, b in zip(one, two, strict=True):
        assert a.pileup_overlays == b.pileup_overlays
        for f in ("pileup", "n_ch_had", "n_neu_had", "objects", "ele_iso", "event"):
            np.testing.assert_array_equal(getattr(a.batch, f), getattr(b.batch, f), err_msg=f)


def test_pileup_config_affords_the_quickstart_size_and_refuses_twice_that():
    from triggerad.generation.config import load_config

    cfg = load_config("generate-pileup")
    assert (cfg.pileup.route, cfg.pileup.mu) == ("library", 20.0)
    quick = grun.make_jobs(cfg, 5000, seed=1)   # the quickstart's --events
    overlays = sum(j.n_events for j in quick) * cfg.pileup.mu
    assert pu.check_reuse(cfg.pileup, overlays) == pytest.approx(115.0)
    double = grun.make_jobs(cfg, 10000, seed=1)
    with pytest.raises(ConfigError, match=r"reused 230.0 times .*max_reuse = 200.0"):
        grun.pileup_plan(cfg.pileup, cfg.beam.ecm, 1, double, progress=False)


def _gaussian_pool(rng, n_events: int) -> tuple[py.Particles, np.ndarray]:
    """Charged-particle events whose raw HGMM features are Gaussian (known mean, covariance),
    the event means varying a little; returns the pool and its (m, 5) features."""
    from triggerad.generation.geometry import reference_point
    from triggerad.generation.hgmm import D0_SCALE, DZ_SCALE

    counts = rng.poisson(80, n_events)
    mean = np.array([-0.5, 0.0, 0.3, 0.0, 0.5])
    cov = np.diag([0.6, 2.0, 0.5, 1.0, 1.5]) ** 2
    cov[0, 1] = cov[1, 0] = 0.3
    x = rng.multivariate_normal(mean, cov, int(counts.sum()))
    x += np.repeat(rng.normal(0, 0.05, (n_events, 5)), counts, axis=0)
    pt, eta, phi = np.exp(x[:, 0]), x[:, 1], x[:, 2]
    vertex = reference_point(D0_SCALE * np.sinh(x[:, 3]), DZ_SCALE * np.sinh(x[:, 4]), phi)
    px, py_, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    m = len(pt)
    pool = py.Particles(
        offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        id=np.full(m, 211, np.int32), status=np.ones(m, np.int32), mother1=np.zeros(m, np.int32),
        daughter1=np.zeros(m, np.int32), px=px, py=py_, pz=pz,
        e=np.sqrt(px**2 + py_**2 + pz**2 + 0.0195), charge=np.ones(m),
        vx=vertex[:, 0], vy=vertex[:, 1], vz=vertex[:, 2])
    return pool, x


def test_hgmm_samples_reproduce_mean_and_covariance_of_the_fitted_events():
    from triggerad.generation import hgmm

    pool, x = _gaussian_pool(np.random.default_rng(8), 120)
    np.testing.assert_allclose(hgmm.raw_features(pool), x, atol=1e-9)   # features invert
    model = hgmm.fit(pool, events=120, max_components=3, cov_floor=0.05, seed=1)
    sample = model.sample(400, np.random.default_rng(9))
    y = hgmm.raw_features(sample)
    assert hgmm.particle_class(sample).tolist() == [1] * len(y)   # charged, displaced
    counts = np.diff(sample.offsets)
    assert abs(counts.mean() - np.diff(pool.offsets).mean()) < 3 * counts.std() / 20
    std = x.std(axis=0)
    np.testing.assert_allclose(y.mean(axis=0), x.mean(axis=0), atol=0.03 * std.max())
    np.testing.assert_allclose(np.cov(y.T) / np.outer(std, std), np.cov(x.T) / np.outer(std, std),
                               atol=0.05)
    # deterministic for a seed, and the cached model samples the same events
    again = model.sample(20, np.random.default_rng(9))
    np.testing.assert_array_equal(again.px, model.sample(20, np.random.default_rng(9)).px)
    restored = hgmm.HgmmModel.from_arrays(model.arrays())
    np.testing.assert_array_equal(restored.sample(20, np.random.default_rng(9)).px, again.px)


@pytest.mark.slow
def test_llp_samples_overlay_library_pileup_through_the_same_path(tmp_path):
    from tagger.generate import generate
    from tagger.samples import TaggerGenerateConfig
    from triggerad.config import build

    cfg = build(TaggerGenerateConfig, {
        "beam": {"settings": ["PartonLevel:MPI = off", "Next:numberCount = 0"]},
        "signals": {"HSS_m40_bb": {"mass": 40.0, "quarks": [5]}},
        "processes": {"QCD": {"settings": ["HardQCD:all = on", "PhaseSpace:pTHatMin = 20."]}},
        "ctau": {"mode": "grid", "values": [0.1, 3.0], "batch_events": 10},
        "pileup": {"mu": 2.0, "route": "library", "pool_size": 100,
                   "cache_dir": str(tmp_path / "cache")},
        "output": {"job_size": 20, "batch_size": 20, "formats": ["h5"]},
    }, where="tiny.yaml")
    summary = generate(cfg, 20, tmp_path / "out", seed=5, progress=False)
    plan = summary["pileup"]
    assert plan["route"] == "library" and plan["pool_size"] == 100
    # three samples (signal, background, shifted) of 20 events at mu 2
    assert plan["expected_overlays"] == pytest.approx(120.0)
    assert abs(plan["overlays"] - 120) < 4 * np.sqrt(120)
    assert plan["reuse_factor"] == pytest.approx(plan["overlays"] / 100)


def test_generate_command_refuses_an_overused_pool_with_exit_2_and_no_output(tmp_path, capsys):
    import yaml

    from triggerad.cli import main

    cfg = {"processes": {"W": {"settings": ["WeakSingleBoson:ffbar2W = on"]}},
           "pileup": {"mu": 5.0, "route": "library", "pool_size": 100, "max_reuse": 2.0,
                      "cache_dir": str(tmp_path / "cache")}}
    path = tmp_path / "pu.yaml"
    path.write_text(yaml.safe_dump(cfg))
    code = main(["generate", str(path), "--events", "50", "--out", str(tmp_path / "out")])
    assert code == 2
    err = capsys.readouterr().err
    assert "reused 2.5 times" in err and "pileup.pool_size >= 125" in err
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()
