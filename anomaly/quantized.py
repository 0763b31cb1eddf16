"""The quantized scores of a model: ``mu2_q`` and ``kl_q`` from the integer fixed-point graph.

The graph (:func:`score_graph`) is the model's fixed-point definition
(``quantization.fixed_point`` in ``artifact.json``) applied to its QKeras encoder:

``raw inputs -> input type -> x * (1/scale) + (-mean/scale) -> encoder (integer) -> score``

* ``mu2_q`` is the output of the ``score`` layer, sum of mu^2 rounded into the score type: the
  number the firmware computes, exactly (integer arithmetic: identical on every CPU, batch size,
  chunk size and thread count, and equal to the HLS C simulation bit for bit).
* ``kl_q`` = ``0.5 * sum(mu^2 + exp(logvar) - 1 - logvar)`` evaluated in float64 from the exact
  integer ``mu`` and ``logvar`` heads. Its inputs are exact, but ``exp`` is a floating-point
  library function whose last bit may differ between CPUs and numpy builds: ``kl_q`` is
  reproducible on one machine, not bit-exact across machines, and is not a firmware score.

QKeras remains the training-time model; it evaluates the same network in float32 and can differ
from the integer graph by one quantizer step when a value falls on a rounding boundary.
Numpy only: the graph is built once from the QKeras model (TensorFlow) and can be shipped to
workers that never import TensorFlow.
"""

from __future__ import annotations

import numpy as np

from triggerad.fixedpoint import (
    FixedGraph,
    FixedPointConfig,
    FixedPointError,
    SumSquares,
    from_keras,
    parse_fixed,
)

#: Scores computed from the fixed-point graph.
FIXED_POINT_SCORES = ("mu2_q", "kl_q")
#: Scores that are exact integers (bit-identical everywhere, and equal to the firmware's).
BIT_EXACT_SCORES = ("mu2_q",)
#: Name of the score layer of the graph (and of the firmware).
SCORE_LAYER = "score"
#: |logvar| is clipped to this in the KL term (float and quantized).
LOGVAR_CLIP = 10.0


def score_graph(encoder, fixed_point: FixedPointConfig, mean, scale) -> FixedGraph:
    """The fixed-point graph ``raw inputs -> normalisation -> encoder -> score = sum of mu^2``.

    Parameters
    ----------
    encoder : keras.Model
        QKeras encoder, normalised inputs -> mu (or [mu, logvar, ...]: the first output is mu).
    fixed_point : FixedPointConfig
        The model's fixed-point definition.
    mean, scale : array-like
        Normalisation ``(x - mean) / scale``.

    Returns
    -------
    FixedGraph
        Outputs: the encoder's outputs, then ``score``.
    """
    graph = from_keras(encoder, fixed_point, normalisation=(mean, scale))
    mu = graph.layer(graph.outputs[0])
    n_latent = int(encoder.outputs[0].shape[-1])
    return graph.extend(SumSquares(SCORE_LAYER, mu.name, mu.result, n_latent,
                                   parse_fixed(fixed_point.score, "score")))


def quantized_scores(graph: FixedGraph, x: np.ndarray, names=FIXED_POINT_SCORES
                     ) -> dict[str, np.ndarray]:
    """``mu2_q`` and/or ``kl_q`` (float64, (n,)) of raw inputs ``x`` (n, d) from ``graph``.

    Parameters
    ----------
    graph : FixedGraph
        From :func:`score_graph` (``kl_q`` needs the encoder's second output, logvar).
    x : (n, d) array
        Raw (physical) inputs.
    names : iterable of str
        Which of :data:`FIXED_POINT_SCORES` to return.
    """
    names = [n for n in names if n in FIXED_POINT_SCORES]
    raw = graph.run(x)
    out = {}
    if "mu2_q" in names:
        out["mu2_q"] = graph.value(SCORE_LAYER, raw[SCORE_LAYER])
    if "kl_q" in names:
        if len(graph.outputs) < 3:
            raise FixedPointError(f"kl_q needs the encoder's logvar output; the graph has only "
                                  f"{graph.outputs}")
        mu_name, logvar_name = graph.outputs[:2]
        mu = graph.value(mu_name, raw[mu_name])
        logvar = np.clip(graph.value(logvar_name, raw[logvar_name]), -LOGVAR_CLIP, LOGVAR_CLIP)
        out["kl_q"] = 0.5 * np.sum(mu * mu + np.exp(logvar) - 1.0 - logvar, axis=1)
    return out
