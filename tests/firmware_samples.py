"""A small quantized L1 anomaly encoder and its compiled firmware trigger (shared by the firmware
and RTL tests; the fixtures ``trained`` and ``trigger`` are in conftest.py)."""

from __future__ import annotations

import shutil
import types

import numpy as np
import pytest

from firmware.config import FirmwareConfig, parse_fixed
from triggerad.fixedpoint import FixedPointConfig

D = 10  # inputs of the small encoder


def synthetic_objects(n: int, seed: int) -> np.ndarray:
    """Raw pT-like (exponential, zero-padded) and eta/phi-like columns."""
    rng = np.random.default_rng(seed)
    pt = rng.exponential(30.0, size=(n, D // 2)) * (rng.random((n, D // 2)) < 0.7)
    ang = rng.uniform(-3.0, 3.0, size=(n, D - D // 2)) * (pt[:, : D - D // 2] > 0)
    return np.concatenate([pt, ang], axis=1)


def encoder(quantizer_bits: int = 6):
    """A QKeras encoder D -> 8 -> 4 (``quantized_bits(bits, 0)`` weights, 8-bit relu)."""
    from qkeras import QActivation, QDense, quantized_bits, quantized_relu
    from tensorflow import keras

    q = quantized_bits(quantizer_bits, 0, alpha=1)
    inp = keras.Input((D,))
    h = QDense(8, kernel_quantizer=q, bias_quantizer=q, name="q_dense_0")(inp)
    h = QActivation(quantized_relu(8, 3), name="q_relu_0")(h)
    mu = QDense(4, kernel_quantizer=q, bias_quantizer=q, name="q_mu")(h)
    return keras.Model(inp, mu)


def small_encoder(x_norm: np.ndarray):
    """The encoder trained briefly (seed fixed) so that its scores are not trivial."""
    import tensorflow as tf
    from tensorflow import keras

    tf.keras.utils.set_random_seed(3)
    enc = encoder()
    target = np.tanh(x_norm @ np.random.default_rng(4).normal(size=(D, 4)) / 2).astype(np.float32)
    enc.compile(keras.optimizers.Adam(0.01), "mse")
    enc.fit(x_norm, target, epochs=2, batch_size=256, verbose=0)
    return enc


def trained_encoder(n: int = 12_000):
    """``(x, mean, scale, encoder)``: synthetic raw objects, their normalisation, the encoder."""
    x = synthetic_objects(n, seed=1)
    mean, scale = x.mean(axis=0), x.std(axis=0)
    enc = small_encoder(((x - mean) / scale).astype(np.float32))
    return x, mean, scale, enc


def compiled_trigger(enc, mean, scale, threshold, workdir):
    """(integer reference, Keras graph, compiled hls4ml model) of the trigger around ``enc``."""
    from anomaly.quantized import score_graph
    from firmware.convert import compile_model
    from firmware.score_layer import trigger_graph, trigger_reference

    graph = score_graph(enc, FixedPointConfig(), mean, scale)
    reference = trigger_reference(graph, threshold)
    model = trigger_graph(enc, graph, threshold)
    return graph, reference, model, compile_model(model, FirmwareConfig(), workdir,
                                                  reference.hls_precisions())


def firmware_trigger(trained, workdir) -> types.SimpleNamespace:
    """The firmware trigger model (compiled C simulation) with the threshold exactly at the score
    of one event (the 90 % quantile)."""
    from anomaly.quantized import quantized_scores, score_graph

    x, mean, scale, enc = trained
    graph = score_graph(enc, FixedPointConfig(), mean, scale)
    scores = quantized_scores(graph, x, ["mu2_q"])["mu2_q"]
    anchor = int(np.argsort(scores)[len(scores) * 9 // 10])  # 90 % quantile event
    threshold = float(scores[anchor])
    graph, reference, model, hls_model = compiled_trigger(enc, mean, scale, threshold, workdir)
    x_fixed = parse_fixed(FixedPointConfig().input).quantize(x)
    return types.SimpleNamespace(graph=graph, reference=reference, model=model, hls=hls_model,
                                 x_fixed=x_fixed, threshold=threshold)


#: Skip markers of the open RTL flow's tests (the tools come from Debian packages).
needs_verilator = pytest.mark.skipif(
    shutil.which("verilator") is None,
    reason="verilator not installed: apt-get install -y verilator yosys (README Set-up)")
needs_yosys = pytest.mark.skipif(
    shutil.which("yosys") is None,
    reason="yosys not installed: apt-get install -y verilator yosys (README Set-up)")
