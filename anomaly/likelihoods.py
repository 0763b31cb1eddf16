"""Per-feature negative log-likelihoods of the Cerri et al. (2019) HLF VAE, in TensorFlow.

The decoder outputs, for each of the 21 features, a few unconstrained numbers ("raw parameters");
each family below maps them to its distribution (softplus for scales, sigmoid for fractions, exp
for rates, all clipped) and returns the per-event NLL of the target. The targets are prepared from
the raw features by :func:`likelihood_targets`:

==================== ====== ============================================ ======================
family               params parameters                                    target
==================== ====== ============================================ ======================
clipped_lognormal    3      zero-fraction logit, mu and sigma of log(t)  t = x / scale (0 = 0)
gaussian             2      mu, sigma                                    t = (x - mean) / scale
truncated_gaussian   2      mu, sigma of the parent Gaussian (t >= 0)    t = max(x, 0) / scale
discrete_gaussian    2      mu, sigma; P(n) = mass of [n-1/2, n+1/2],    t = round(max(x, 0))
                            renormalised to n >= 0
bernoulli            1      logit of P(t = 1)                            t = (x > 0)
poisson              1      log of the rate                              t = round(max(x, 0))
==================== ====== ============================================ ======================

Continuous targets are in units of the feature's training-set spread, so the NLL differs from
the one in physical units by a constant per feature (the log of the scale) that does not change the
ranking of events.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from triggerad.arrayops import NUMPY, ArrayOps
from triggerad.errors import MissingFieldError, did_you_mean

#: Number of raw decoder outputs per feature for each family.
N_PARAMS = {
    "clipped_lognormal": 3,
    "gaussian": 2,
    "truncated_gaussian": 2,
    "discrete_gaussian": 2,
    "bernoulli": 1,
    "poisson": 1,
}

_MIN_SCALE = 1e-3
_LOG_2PI = math.log(2.0 * math.pi)
_SQRT2 = math.sqrt(2.0)


def _scale(raw: tf.Tensor) -> tf.Tensor:
    """A positive width from an unconstrained output: softplus + floor."""
    return tf.nn.softplus(raw) + _MIN_SCALE


def log_ndtr(z: tf.Tensor) -> tf.Tensor:
    """log of the standard normal CDF, accurate in the far left tail (asymptotic series)."""
    z = tf.convert_to_tensor(z)
    direct = tf.math.log(tf.maximum(0.5 * tf.math.erfc(-z / _SQRT2), 1e-37))
    zs = tf.minimum(z, -5.0)  # keep the unused branch finite
    z2 = zs * zs
    tail = (
        -0.5 * z2 - tf.math.log(-zs) - 0.5 * _LOG_2PI
        + tf.math.log1p(-1.0 / z2 + 3.0 / (z2 * z2) - 15.0 / (z2 * z2 * z2))
    )
    return tf.where(z < -5.0, tail, direct)


def _log_cdf_difference(lo: tf.Tensor, hi: tf.Tensor) -> tf.Tensor:
    """log(Phi(hi) - Phi(lo)) for hi > lo, using the symmetry Phi(x) = 1 - Phi(-x) for lo > 0."""
    flip = lo > 0
    lo2 = tf.where(flip, -hi, lo)
    hi2 = tf.where(flip, -lo, hi)
    log_hi = log_ndtr(hi2)
    delta = tf.minimum(log_ndtr(lo2) - log_hi, -1e-7)
    return log_hi + tf.math.log(-tf.math.expm1(delta))


def gaussian_nll(mu: tf.Tensor, raw_sigma: tf.Tensor, t: tf.Tensor) -> tf.Tensor:
    """NLL of ``t`` under N(mu, softplus(raw_sigma))."""
    sigma = _scale(raw_sigma)
    return 0.5 * _LOG_2PI + tf.math.log(sigma) + 0.5 * tf.square((t - mu) / sigma)


def truncated_gaussian_nll(mu: tf.Tensor, raw_sigma: tf.Tensor, t: tf.Tensor) -> tf.Tensor:
    """NLL of ``t >= 0`` under N(mu, sigma) truncated to [0, inf): Gaussian NLL + log Phi(mu/sigma)."""
    sigma = _scale(raw_sigma)
    return gaussian_nll(mu, raw_sigma, t) + log_ndtr(mu / sigma)


def discrete_gaussian_nll(mu: tf.Tensor, raw_sigma: tf.Tensor, n: tf.Tensor) -> tf.Tensor:
    """NLL of a count ``n >= 0``: P(n) = [Phi((n+1/2-mu)/s) - Phi((n-1/2-mu)/s)] / Phi((mu+1/2)/s)."""
    sigma = _scale(raw_sigma)
    lo = (n - 0.5 - mu) / sigma
    hi = (n + 0.5 - mu) / sigma
    return -_log_cdf_difference(lo, hi) + log_ndtr((mu + 0.5) / sigma)


def bernoulli_nll(logit: tf.Tensor, t: tf.Tensor) -> tf.Tensor:
    """NLL of ``t`` in {0, 1} with P(1) = sigmoid(logit)."""
    return tf.nn.softplus(logit) - t * logit


def poisson_nll(log_rate: tf.Tensor, k: tf.Tensor) -> tf.Tensor:
    """NLL of a count ``k`` under Poisson(exp(log_rate)) (log-rate clipped to [-20, 20])."""
    log_rate = tf.clip_by_value(log_rate, -20.0, 20.0)
    return tf.exp(log_rate) - k * log_rate + tf.math.lgamma(k + 1.0)


def clipped_lognormal_nll(
    raw_zero: tf.Tensor, mu: tf.Tensor, raw_sigma: tf.Tensor, t: tf.Tensor
) -> tf.Tensor:
    """NLL of ``t >= 0`` under a point mass at 0 (fraction sigmoid(raw_zero)) + a log-normal.

    For ``t = 0``: -log p0; for ``t > 0``: -log(1 - p0) - log LogNormal(t; mu, sigma).
    """
    is_zero = t <= 0
    safe_t = tf.where(is_zero, tf.ones_like(t), t)
    log_t = tf.math.log(safe_t)
    positive = tf.nn.softplus(raw_zero) + log_t + gaussian_nll(mu, raw_sigma, log_t)
    return tf.where(is_zero, tf.nn.softplus(-raw_zero), positive)


_NLL = {
    "clipped_lognormal": clipped_lognormal_nll,
    "gaussian": gaussian_nll,
    "truncated_gaussian": truncated_gaussian_nll,
    "discrete_gaussian": discrete_gaussian_nll,
    "bernoulli": bernoulli_nll,
    "poisson": poisson_nll,
}


def check_families(families: list[str] | tuple[str, ...], where: str = "likelihoods") -> None:
    """Raise :class:`MissingFieldError` for a family name that has no likelihood."""
    for fam in families:
        if fam not in _NLL:
            raise MissingFieldError(
                f"{where}: no likelihood family {fam!r}; " + did_you_mean(fam, _NLL)
            )


def n_outputs(families: list[str] | tuple[str, ...]) -> int:
    """Total number of raw decoder outputs for these per-feature families."""
    check_families(families)
    return sum(N_PARAMS[f] for f in families)


def per_feature_nll(
    params: tf.Tensor, targets: tf.Tensor, families: list[str] | tuple[str, ...]
) -> tf.Tensor:
    """Per-event, per-feature NLL (n, n_features) from the decoder output (n, n_outputs)."""
    columns = []
    start = 0
    for j, fam in enumerate(families):
        k = N_PARAMS[fam]
        raw = [params[:, start + i] for i in range(k)]
        columns.append(_NLL[fam](*raw, targets[:, j]))
        start += k
    return tf.stack(columns, axis=1)


def total_nll(
    params: tf.Tensor, targets: tf.Tensor, families: list[str] | tuple[str, ...]
) -> tf.Tensor:
    """Per-event NLL summed over the features, shape (n,)."""
    return tf.reduce_sum(per_feature_nll(params, targets, families), axis=1)


#: Target of each family from the raw feature column ``x`` (its non-negative part ``pos``) and
#: the column's training ``mean`` and ``scale``; see the table in the module docstring.
_TARGETS = {
    "clipped_lognormal": lambda x, pos, mean, scale, ops: pos / scale,
    "truncated_gaussian": lambda x, pos, mean, scale, ops: pos / scale,
    "gaussian": lambda x, pos, mean, scale, ops: (x - mean) / scale,
    "discrete_gaussian": lambda x, pos, mean, scale, ops: ops.rint(pos),
    "poisson": lambda x, pos, mean, scale, ops: ops.rint(pos),
    "bernoulli": lambda x, pos, mean, scale, ops: ops.cast(x > 0, "float64"),
}


def likelihood_targets(
    x, mean: np.ndarray, scale: np.ndarray, families: list[str] | tuple[str, ...],
    ops: ArrayOps = NUMPY,
):
    """Targets (n, d) float32 of the likelihood families from raw features ``x`` (table above).

    Computed in float64 and rounded once to float32, with numpy or, for a model exported with
    its input preparation inside the graph, with TensorFlow (same result bit for bit).

    Parameters
    ----------
    x : (n, d) array or tensor
        Raw features.
    mean, scale : (d,) arrays
        Normalisation fitted on the training split.
    families : sequence of str
        Likelihood family per column.
    ops : triggerad.arrayops.ArrayOps
        Backend: ``NUMPY`` (default) or ``triggerad.arrayops.tensorflow()``.
    """
    check_families(families)
    x = ops.cast(x, "float64")
    positive = ops.maximum(x, 0.0)
    mean = np.asarray(mean, dtype=np.float64)
    scale = np.asarray(scale, dtype=np.float64)
    columns = [
        _TARGETS[fam](x[:, j], positive[:, j], mean[j], scale[j], ops)
        for j, fam in enumerate(families)
    ]
    return ops.cast(ops.stack(columns, 1), "float32")


def _softplus_inverse(s: np.ndarray) -> np.ndarray:
    s = np.maximum(s - _MIN_SCALE, 1e-3)
    return np.log(np.expm1(s))


def initial_output_bias(targets: np.ndarray, families: list[str] | tuple[str, ...]) -> np.ndarray:
    """Decoder output biases that start each family at the marginal fit of its training targets.

    A good start matters for the Poisson and log-normal terms, whose targets are far from the
    zero-output defaults (e.g. tens of charged hadrons).

    Parameters
    ----------
    targets : (n, d) array
        Training targets from :func:`likelihood_targets`.
    families : sequence of str
        Likelihood family per column.

    Returns
    -------
    (n_outputs,) float32 array, laid out as the decoder output.
    """
    check_families(families)
    bias = []
    for j, fam in enumerate(families):
        t = np.asarray(targets[:, j], dtype=np.float64)
        if fam == "clipped_lognormal":
            p0 = np.clip(np.mean(t <= 0), 1e-3, 1 - 1e-3)
            logs = np.log(t[t > 0]) if np.any(t > 0) else np.zeros(1)
            bias += [np.log(p0 / (1 - p0)), logs.mean(), _softplus_inverse(logs.std() + 0.1)]
        elif fam == "bernoulli":
            p = np.clip(t.mean(), 1e-3, 1 - 1e-3)
            bias.append(np.log(p / (1 - p)))
        elif fam == "poisson":
            bias.append(np.log(max(t.mean(), 1e-3)))
        else:
            bias += [t.mean(), _softplus_inverse(t.std() + 0.1)]
    return np.asarray(bias, dtype=np.float32)
