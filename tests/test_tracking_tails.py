"""Non-Gaussian impact-parameter tails of the parametric tracker (``ip_tail_fraction``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.stats import norm
from test_llp_detector import decays

from tagger.tracks.config import load_config
from triggerad.errors import ConfigError
from triggerad.generation.tracking import CalorimeterConfig, TrackingConfig, reconstruct

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_tails_off_reproduce_the_gaussian_tracker_exactly():
    # numbers of the tracker before the option existed (same seed, same events)
    for cfg in (TrackingConfig(), TrackingConfig(ip_tail_fraction=0.0, ip_tail_scale=5.0)):
        c = reconstruct(decays(500), cfg, CalorimeterConfig(), np.random.default_rng(3))
        t = c.is_track
        assert t.sum() == 1396
        np.testing.assert_allclose(c.d0[t][:3], [1.944732119534226, 3.643542767095568,
                                                 1.2529570049287408], rtol=1e-13)
        np.testing.assert_allclose(c.dz[t][:3], [1.4271031354007455, 0.2626872849274933,
                                                 2.894676396542048], rtol=1e-13)
        assert c.d0[t].sum() == pytest.approx(3170.445270161369, rel=1e-12)
        assert c.dz[t].sum() == pytest.approx(2169.389848745449, rel=1e-12)
        assert c.trk_chi2[t].sum() == pytest.approx(1402.9725389372184, rel=1e-12)


def test_tail_fraction_and_width_are_reproduced():
    prompt = decays(20000, vertex=np.zeros(3))
    cfg = TrackingConfig(ip_tail_fraction=0.1, ip_tail_scale=3.0)
    c = reconstruct(prompt, cfg, CalorimeterConfig(), np.random.default_rng(0))
    base = reconstruct(prompt, TrackingConfig(), CalorimeterConfig(), np.random.default_rng(0))
    t = c.is_track
    assert t.sum() > 50000
    np.testing.assert_array_equal(c.source[t], base.source[base.is_track])  # same tracks
    np.testing.assert_array_equal(c.d0_err[t], base.d0_err[base.is_track])  # reported: the core
    d0, dz = np.abs(c.d0[t] / c.d0_err[t]), np.abs(c.dz[t] / c.dz_err[t])
    # double Gaussian from its moments: m2 = 1 - f + f k^2, m4 / 3 = 1 - f + f k^4
    pulls = np.concatenate([d0, dz])
    m2, m4 = (pulls**2).mean(), (pulls**4).mean() / 3
    k2 = (m4 - 1) / (m2 - 1) - 1
    assert (m2 - 1) / (k2 - 1) == pytest.approx(0.1, abs=0.01)  # fraction (spread 0.003)
    assert np.sqrt(k2) == pytest.approx(3.0, abs=0.1)  # width (spread 0.03)
    expected = 0.9 * 2 * norm.sf(4) + 0.1 * 2 * norm.sf(4 / 3)  # 0.0183
    assert (d0 > 4).mean() == pytest.approx(expected, abs=0.002)
    # d0 and dz of a mis-measured track are off together: |d0| > 5 sigma is a tail track
    assert (dz[d0 > 5] > 2).mean() == pytest.approx(2 * norm.sf(2 / 3), abs=0.06)
    # without tails nothing beyond 5 sigma
    assert (np.abs(base.d0 / np.where(base.is_track, base.d0_err, 1))[base.is_track] > 5).sum() == 0


def test_tail_option_checked_and_set_in_the_tracks_configs():
    with pytest.raises(ValueError, match="ip_tail_fraction < 1"):
        TrackingConfig(ip_tail_fraction=1.5)
    with pytest.raises(ConfigError, match="tracking"):
        load_config(CONFIGS / "tracks-fast.yaml", {"tracking": {"ip_tail_scale": 0.5}})
    with pytest.raises(ConfigError, match="did you mean 'ip_tail_fraction'"):
        load_config(CONFIGS / "tracks-fast.yaml", {"tracking": {"ip_tail_frac": 0.1}})
    for name in ("tracks", "tracks-fast"):
        cfg = load_config(CONFIGS / f"{name}.yaml")
        assert (cfg.tracking.ip_tail_fraction, cfg.tracking.ip_tail_scale) == (0.1, 3.0)
    assert TrackingConfig().ip_tail_fraction == 0.0  # the LLP jet samples keep the Gaussian
