"""The normalizing-flow baseline (anomaly.flow): log-density, normalisation, dequantization."""

from __future__ import annotations

import numpy as np
import pytest

from anomaly.flow import (
    LOG_2PI,
    FlowConfig,
    Preprocessing,
    build_flow,
    dequantize_seeded,
    fit_flow,
    train_flow,
)


def _toy(n: int, seed: int = 0) -> np.ndarray:
    """Banana-shaped 2-D sample (not Gaussian, so a trained flow is far from the identity)."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n)
    return np.column_stack([a, 0.5 * a**2 + 0.5 * rng.normal(size=n) - 0.5]).astype(np.float32)


def test_untrained_flow_is_the_standard_normal():
    model = build_flow(3, couplings=3, hidden=[8], scale_bound=2.0, seed=1)
    t = np.random.default_rng(2).normal(size=(50, 3)).astype(np.float32)
    expected = -0.5 * np.sum(t.astype(np.float64) ** 2, axis=1) - 1.5 * LOG_2PI
    np.testing.assert_allclose(model.predict(t, verbose=0), expected, atol=1e-5)


def test_trained_flow_density_integrates_to_one_and_loss_falls():
    model = build_flow(2, couplings=4, hidden=[16], scale_bound=2.0, seed=3)
    cfg = FlowConfig(couplings=4, hidden=[16], epochs=8, batch_size=128, learning_rate=5e-3,
                     val_fraction=0.0, seed=3)
    x = _toy(2000)
    history = train_flow(model, x, np.ones(len(x)), cfg)
    assert history["loss"][-1] < history["loss"][0] - 0.2
    # the log-det is right: the density over a grid (off the identity after training) sums to 1
    edges = np.linspace(-7.0, 9.0, 321)
    mid = 0.5 * (edges[1:] + edges[:-1])
    gx, gy = np.meshgrid(mid, mid, indexing="ij")
    grid = np.column_stack([gx.ravel(), gy.ravel()]).astype(np.float32)
    logp = model.predict(grid, batch_size=20000, verbose=0).astype(np.float64)
    assert np.ptp(logp - (-0.5 * np.sum(grid.astype(np.float64) ** 2, axis=1))) > 1.0
    assert np.sum(np.exp(logp)) * (edges[1] - edges[0]) ** 2 == pytest.approx(1.0, abs=0.01)


def _features(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.column_stack([
        rng.exponential(50.0, n),                                           # pT-like
        np.where(rng.uniform(size=n) < 0.5, 0.0, rng.exponential(3.0, n)),  # point mass at 0
        rng.poisson(3.0, n).astype(float),                                  # a count
        rng.choice([-1.0, 1.0], n),                                         # a charge
    ])


def test_preprocessing_dequantizes_deterministically():
    x = _features(500)
    pre = Preprocessing.fit(x, atom_fraction=0.01, atom_width=0.1, clip=20.0)
    assert pre.integer.tolist() == [False, False, True, True]
    assert pre.atoms == [[], [0.0], [], []]
    a, b = dequantize_seeded(pre, x, 5), dequantize_seeded(pre, x, 5)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, dequantize_seeded(pre, x, 6))
    # the noise is U(0, 1) on the integers before the log: invert the map and compare
    raw = np.expm1(np.abs(a[:, 2] * pre.scale[2] + pre.center[2]))
    u = raw - x[:, 2]
    assert u.min() >= -1e-4 and u.max() <= 1 + 1e-4
    # scoring: the middle of each interval, the same for any batch
    mid, _ = pre(x)
    np.testing.assert_allclose(np.expm1(mid[:, 2] * pre.scale[2] + pre.center[2]) - x[:, 2], 0.5,
                               atol=1e-4)
    np.testing.assert_array_equal(pre(x[:7])[0], mid[:7])
    zero = x[:, 1] == 0
    np.testing.assert_allclose(mid[zero, 1], -pre.center[1] / pre.scale[1] - 0.05, atol=1e-6)
    assert np.all(np.isfinite(mid))


def test_fit_flow_scores_an_outlier_as_anomalous():
    x = _features(1500)
    cfg = FlowConfig(couplings=2, hidden=[16], epochs=3, batch_size=256, seed=1)
    score = fit_flow(x, np.ones(len(x)), cfg)
    typical = score(x[:200])
    outlier = score(np.array([[900.0, 80.0, 15.0, 1.0]]))
    assert np.all(np.isfinite(typical))
    assert outlier[0] > np.percentile(typical, 99)
    np.testing.assert_allclose(score(x[:50]), typical[:50], rtol=1e-5)  # batch-independent
