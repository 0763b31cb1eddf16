"""Each per-feature likelihood of the HLF VAE against hand-computed / scipy.stats values."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from scipy.special import expit, log_ndtr

tf = pytest.importorskip("tensorflow")

from anomaly import likelihoods as lk  # noqa: E402
from triggerad.errors import MissingFieldError  # noqa: E402


def softplus(x):
    return np.log1p(np.exp(x)) + 1e-3  # the width mapping of the likelihoods (floor 1e-3)


def run(fn, *args):
    return fn(*(tf.constant(np.asarray(a, dtype=np.float32)) for a in args)).numpy()


MU = np.array([0.3, -1.0, 2.0])
RAW_S = np.array([0.2, 1.5, -0.7])
SIG = softplus(RAW_S)


def test_gaussian_matches_scipy():
    t = np.array([0.0, 1.2, -3.0])
    np.testing.assert_allclose(
        run(lk.gaussian_nll, MU, RAW_S, t), -stats.norm.logpdf(t, MU, SIG), rtol=1e-5
    )


def test_truncated_gaussian_matches_scipy():
    t = np.array([0.0, 1.2, 3.0])
    a = (0 - MU) / SIG
    expected = -stats.truncnorm.logpdf(t, a, np.inf, loc=MU, scale=SIG)
    np.testing.assert_allclose(run(lk.truncated_gaussian_nll, MU, RAW_S, t), expected, rtol=1e-5)


def test_log_ndtr_far_tail():
    z = np.array([-30.0, -8.0, -5.5, -1.0, 0.0, 3.0])
    np.testing.assert_allclose(lk.log_ndtr(tf.constant(z, tf.float32)).numpy(), log_ndtr(z), rtol=2e-4)


def test_discrete_gaussian_hand_computed():
    # n = 2, mu = 1.5, sigma = 1 (raw chosen so that softplus(raw) + 1e-3 = 1):
    # P = [Phi(1.0) - Phi(0.0)] / Phi(2.0) = 0.341345 / 0.977250 = 0.349291
    raw = np.log(np.expm1(1.0 - 1e-3))
    value = run(lk.discrete_gaussian_nll, [1.5], [raw], [2.0])
    np.testing.assert_allclose(value, [-np.log(0.3413447 / 0.9772499)], rtol=1e-5)


def test_discrete_gaussian_is_normalised_over_counts():
    n = np.arange(0, 60, dtype=np.float32)
    for mu, raw in ((0.2, -1.0), (3.7, 0.5), (12.0, 1.2)):
        nll = run(lk.discrete_gaussian_nll, np.full_like(n, mu), np.full_like(n, raw), n)
        assert np.exp(-nll).sum() == pytest.approx(1.0, abs=1e-5)
    # far in the right tail both CDFs are ~1: the flipped difference keeps it accurate
    raw = np.log(np.expm1(1.0 - 1e-3))
    got = run(lk.discrete_gaussian_nll, [0.0], [raw], [9.0])
    expected = -np.log(stats.norm.sf(8.5) - stats.norm.sf(9.5)) + np.log(stats.norm.cdf(0.5))
    np.testing.assert_allclose(got, [expected], rtol=1e-4)


def test_bernoulli_and_poisson_match_scipy():
    logit = np.array([-2.0, 0.5, 3.0])
    y = np.array([1.0, 0.0, 1.0])
    np.testing.assert_allclose(
        run(lk.bernoulli_nll, logit, y), -stats.bernoulli.logpmf(y, expit(logit)), rtol=1e-5
    )
    log_rate = np.array([np.log(3.0), np.log(40.0), -1.0])
    k = np.array([0.0, 37.0, 2.0])
    np.testing.assert_allclose(
        run(lk.poisson_nll, log_rate, k), -stats.poisson.logpmf(k, np.exp(log_rate)), rtol=1e-5
    )


def test_clipped_lognormal_zero_fraction_and_positive_part():
    raw_zero = np.array([0.4, 0.4, -1.0])
    t = np.array([0.0, 2.5, 0.7])
    p0 = expit(raw_zero)
    expected = np.where(
        t == 0,
        -np.log(p0),
        -np.log1p(-p0) - stats.lognorm.logpdf(np.where(t > 0, t, 1), s=SIG, scale=np.exp(MU)),
    )
    np.testing.assert_allclose(run(lk.clipped_lognormal_nll, raw_zero, MU, RAW_S, t), expected, rtol=1e-5)


def test_total_nll_maps_families_to_columns():
    fams = ("bernoulli", "gaussian", "poisson")
    params = np.array([[0.5, 0.3, 0.2, np.log(4.0)]], dtype=np.float32)
    targets = np.array([[1.0, 1.2, 3.0]], dtype=np.float32)
    expected = (
        -stats.bernoulli.logpmf(1, expit(0.5))
        - stats.norm.logpdf(1.2, 0.3, softplus(0.2))
        - stats.poisson.logpmf(3, 4.0)
    )
    assert lk.n_outputs(fams) == 4
    np.testing.assert_allclose(lk.total_nll(params, targets, fams).numpy(), [expected], rtol=1e-5)
    with pytest.raises(MissingFieldError, match="did you mean 'poisson'"):
        lk.n_outputs(("poison",))


def test_likelihood_targets():
    fams = ("clipped_lognormal", "gaussian", "discrete_gaussian", "bernoulli", "poisson")
    x = np.array([[0.0, 10.0, 2.2, -1.0, 31.0], [50.0, -10.0, 0.0, 1.0, 0.0]])
    mean = np.array([9.0, 0.0, 1.0, 0.0, 20.0])
    scale = np.array([25.0, 5.0, 1.0, 1.0, 10.0])
    t = lk.likelihood_targets(x, mean, scale, fams)
    np.testing.assert_array_equal(t, [[0.0, 2.0, 2.0, 0.0, 31.0], [2.0, -2.0, 0.0, 1.0, 0.0]])


def test_initial_output_bias_is_the_marginal_fit():
    fams = ("clipped_lognormal", "bernoulli", "poisson", "gaussian")
    t = np.array([[0.0, 1.0, 3.0, -1.0], [np.e, 0.0, 5.0, 1.0], [np.e, 1.0, 4.0, 0.0],
                  [np.e, 1.0, 4.0, 0.0]])
    bias = lk.initial_output_bias(t, fams)
    assert bias.shape == (lk.n_outputs(fams),) == (7,)
    np.testing.assert_allclose(bias[0], np.log(0.25 / 0.75), rtol=1e-6)  # zero-fraction logit
    np.testing.assert_allclose(bias[1], 1.0, rtol=1e-6)  # mean of log(t) over t > 0
    np.testing.assert_allclose(bias[3], np.log(3.0), rtol=1e-6)  # Bernoulli logit of p = 3/4
    np.testing.assert_allclose(bias[4], np.log(4.0), rtol=1e-6)  # Poisson log of the mean count
    np.testing.assert_allclose(bias[5], 0.0, atol=1e-7)  # Gaussian mean
