"""Model builders: the Cerri et al. HLF VAE, the AXOL1TL-style L1 VAE and their QKeras encoder twins.

Both VAEs share one Keras model class, :class:`VAE`, with an encoder ``x -> (mu, logvar)``, a
Gaussian sampling step during training and a decoder. What differs is the reconstruction term:

* ``hlf_vae`` (21 features): the decoder outputs the raw parameters of each feature's likelihood
  family and the reconstruction term is the summed per-feature NLL (:mod:`anomaly.likelihoods`).
* ``l1_vae`` (57 inputs = 19 slots x [pT, eta, phi]): the decoder outputs the normalised inputs and
  the reconstruction term is a unit-variance Gaussian NLL, ``0.5 * sum(mask * (x_hat - x)^2)``,
  over occupied slots only. The encoder sees ``mask * x``, so zero-padded slots never matter.

Loss = NLL + beta * KL(q(z|x) || N(0, 1)). Scores are deterministic: the NLL is evaluated at
``z = mu``.

The quantized twin is the encoder alone, made of ``QDense`` + ``QActivation(quantized_relu)``
layers with per-layer bit widths from the ``quantization`` config section, with a ``mu`` and a
``logvar`` head; :func:`mu_model` cuts it down to the plain stack ``x -> mu`` that hls4ml converts.
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import tensorflow as tf
from qkeras import QActivation, QDense, quantized_bits, quantized_relu
from tensorflow import keras

from anomaly import likelihoods
from anomaly.features import input_names
from anomaly.normalisation import NormalisationConfig, fixed_normalisation
from anomaly.quantized import LOGVAR_CLIP as _LOGVAR_CLIP
from anomaly.transform import InputTransformConfig
from triggerad import schema
from triggerad.arrayops import NUMPY, ArrayOps
from triggerad.fixedpoint import FixedPointConfig

Kind = Literal["hlf_vae", "l1_vae"]

@dataclass
class ModelConfig:
    """The ``model`` section: which VAE and its sizes.

    Attributes
    ----------
    kind : {"hlf_vae", "l1_vae"}
        Cerri et al. VAE on the 21 features, or AXOL1TL-style VAE on the 57 L1 inputs.
    encoder : list of int
        Hidden layer widths of the encoder (Cerri: [50, 50]; AXOL1TL: [32, 16]).
    decoder : list of int
        Hidden layer widths of the decoder.
    latent_dim : int
        Latent dimension (Cerri: 4; AXOL1TL: 8).
    beta : float
        Weight of the KL term in the loss (Cerri: 0.3).
    normalisation : NormalisationConfig
        Fitted or fixed input scales (``fixed``: ``l1_vae`` only).
    input_transform : InputTransformConfig
        Encoder input transform (``log1p`` of named features; ``hlf_vae`` only;
        :mod:`anomaly.transform`).
    """

    kind: Kind = "hlf_vae"
    encoder: list[int] = field(default_factory=lambda: [50, 50])
    decoder: list[int] = field(default_factory=lambda: [50, 50])
    latent_dim: int = 4
    beta: float = 0.3
    normalisation: NormalisationConfig = field(default_factory=NormalisationConfig)
    input_transform: InputTransformConfig = field(default_factory=InputTransformConfig)

    def __post_init__(self) -> None:
        if self.input_transform.log1p and self.kind != "hlf_vae":
            raise ValueError(f"input_transform.log1p is for kind 'hlf_vae' (named features), "
                             f"found kind {self.kind!r}; use normalisation for the L1 inputs")
        if self.latent_dim <= 0 or any(w <= 0 for w in self.encoder + self.decoder):
            raise ValueError(
                f"layer widths and latent_dim must be positive, found encoder={self.encoder!r}, "
                f"decoder={self.decoder!r}, latent_dim={self.latent_dim!r}"
            )
        if self.beta < 0:
            raise ValueError(f"beta must be >= 0, found {self.beta!r}")
        if self.normalisation.mode == "fixed" and self.kind != "l1_vae":
            raise ValueError(f"normalisation.mode 'fixed' is for kind 'l1_vae' (pT, eta, phi "
                             f"inputs), found kind {self.kind!r}; use mode 'fitted'")
        if self.normalisation.mode == "robust" and self.kind != "hlf_vae":
            raise ValueError(f"normalisation.mode 'robust' is for kind 'hlf_vae', found kind "
                             f"{self.kind!r}; use mode 'fitted' or 'fixed'")


@dataclass
class QuantizationConfig:
    """The ``quantization`` section: bit widths of the QKeras encoder and its QAT fine-tuning.

    Attributes
    ----------
    weight_bits, weight_integer : list of int
        Total and integer bits (``quantized_bits(bits, integer, alpha=1)``) of the weights and biases
        of each encoder Dense layer: one entry per hidden layer plus one for the latent heads.
    activation_bits, activation_integer : list of int
        ``quantized_relu(bits, integer)`` after each hidden layer.
    qat_epochs : int
        Epochs of quantization-aware fine-tuning (distillation of the float mu and logvar).
    qat_learning_rate : float
        Adam learning rate of the fine-tuning.
    fixed_point : FixedPointConfig
        Fixed-point types of the deployed graph (input, normalisation, accumulators, score): what
        ``mu2_q`` and the firmware compute (:mod:`anomaly.quantized`).
    """

    weight_bits: list[int] = field(default_factory=lambda: [8, 8, 8])
    weight_integer: list[int] = field(default_factory=lambda: [2, 2, 2])
    activation_bits: list[int] = field(default_factory=lambda: [8, 8])
    activation_integer: list[int] = field(default_factory=lambda: [3, 3])
    qat_epochs: int = 20
    qat_learning_rate: float = 1e-4
    fixed_point: FixedPointConfig = field(default_factory=FixedPointConfig)

    def check(self, model: ModelConfig, where: str) -> None:
        """Raise ``ValueError`` unless the lists match the encoder depth of ``model``.

        (:func:`triggerad.config.build` turns it into a ``ConfigError`` naming the file.)
        """
        n_hidden = len(model.encoder)
        expected = {
            "weight_bits": n_hidden + 1, "weight_integer": n_hidden + 1,
            "activation_bits": n_hidden, "activation_integer": n_hidden,
        }
        for name, n in expected.items():
            value = getattr(self, name)
            if len(value) != n:
                raise ValueError(
                    f"{where}.{name}: expected {n} entries (model.encoder has {n_hidden} hidden "
                    f"layers{', plus the latent heads' if name.startswith('weight') else ''}), "
                    f"found {value!r}"
                )
        for bits, integer in zip(
            self.weight_bits + self.activation_bits, self.weight_integer + self.activation_integer,
            strict=True,
        ):
            if not 0 <= integer < bits:
                raise ValueError(
                    f"{where}: each integer width must be in [0, bits), found {integer!r} "
                    f"for {bits!r} bits"
                )


def families() -> tuple[str, ...]:
    """Likelihood family of each HLF feature, in feature order."""
    return tuple(schema.FEATURE_LIKELIHOODS[n] for n in schema.FEATURE_NAMES)


def input_mask(x, ops: ArrayOps = NUMPY):
    """Mask (n, 57) float32 of the L1 inputs: 1 for occupied slots (pT > 0) and always for MET.

    ``ops`` is the backend (:mod:`triggerad.arrayops`): numpy, or TensorFlow inside an exported
    graph.
    """
    pt = ops.reshape(x, (-1, schema.N_SLOTS, 3))[:, :, 0]
    occupied = ops.logical_or(pt > 0, np.arange(schema.N_SLOTS) == schema.MET_SLOT)
    return ops.cast(ops.repeat(occupied, 3, 1), "float32")


def fit_normalisation(kind: str, x: np.ndarray, cfg: NormalisationConfig | None = None, *,
                      power_of_two: bool = False
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Fit ``(mean, scale)`` on training inputs so that ``(x - mean) / scale`` is O(1).

    ``hlf_vae``: mean and standard deviation per feature (``cfg.mode == "robust"``: median and
    IQR / 1.349, the standard deviation when the IQR is 0). ``l1_vae``: mean 0 (so empty slots stay
    exactly 0, also in firmware) and the root mean square over occupied entries per input. A
    constant or never-filled input gets scale 1. ``power_of_two``: each fitted scale rounded to
    the nearest power of two in log2 (``2**round(log2 scale)``, exact in float32), so that the
    fixed-point normalisation multiplies by a shift (``quantization.fixed_point.power_of_two_scales``).
    With ``cfg.mode == "fixed"`` the scales are the configured constants
    (:func:`fixed_normalisation`), whatever ``x`` holds, never rounded (with
    ``power_of_two_scales`` the training config requires them to be powers of two).
    """
    if cfg is not None and cfg.mode == "fixed":
        return fixed_normalisation(cfg)
    x = np.asarray(x, dtype=np.float64)
    if kind == "hlf_vae" and cfg is not None and cfg.mode == "robust":
        q25, mean, q75 = np.percentile(x, [25, 50, 75], axis=0)
        scale = np.where(q75 - q25 > 1e-6, (q75 - q25) / 1.349, x.std(axis=0))
    elif kind == "hlf_vae":
        mean, scale = x.mean(axis=0), x.std(axis=0)
    else:
        mask = input_mask(x)
        count = mask.sum(axis=0)
        mean = np.zeros(x.shape[1])
        scale = np.sqrt((mask * x**2).sum(axis=0) / np.maximum(count, 1))
    scale = np.where(scale > 1e-6, scale, 1.0)
    if power_of_two:
        scale = np.exp2(np.round(np.log2(scale)))
    return mean.astype(np.float32), scale.astype(np.float32)


def prepare_inputs(
    kind: str, x: np.ndarray, mean: np.ndarray, scale: np.ndarray, ops: ArrayOps = NUMPY, *,
    transform=None,
) -> dict[str, np.ndarray]:
    """The :class:`VAE` input dict from raw inputs: ``x`` normalised, plus ``t`` (HLF likelihood
    targets) or ``m`` (L1 occupancy mask).

    ``ops`` is the backend (:mod:`triggerad.arrayops`): numpy, or TensorFlow to put the input
    preparation inside an exported graph (same values bit for bit). ``transform``
    (:class:`anomaly.transform.InputTransform`, numpy only): the encoder sees
    ``(transform.apply(x) - mean) / scale`` and the targets use the raw normalisation.
    """
    x = ops.cast(x, "float32")
    mean = np.asarray(mean, dtype=np.float32)
    scale = np.asarray(scale, dtype=np.float32)
    active = transform is not None and transform.active
    if active and ops is not NUMPY:
        raise ValueError("an input transform is applied with the numpy backend only")
    x_enc, (t_mean, t_scale) = (transform.apply(x), transform.targets(mean, scale)) if active \
        else (x, (mean, scale))
    out = {"x": ops.cast((x_enc - mean) / scale, "float32")}
    if kind == "hlf_vae":
        out["t"] = likelihoods.likelihood_targets(x, t_mean, t_scale, families(), ops=ops)
    else:
        out["m"] = input_mask(x, ops=ops)
    return out


def encoder_input(kind: str, inputs: dict):
    """What the encoder sees: ``x``, or ``mask * x`` for the L1 VAE (padded slots zeroed)."""
    return inputs["x"] if kind == "hlf_vae" else inputs["x"] * inputs["m"]


def _dense_stack(widths: list[int], prefix: str) -> list[keras.layers.Layer]:
    return [keras.layers.Dense(w, activation="relu", name=f"{prefix}_{i}") for i, w in enumerate(widths)]


def build_encoder(input_dim: int, cfg: ModelConfig) -> keras.Model:
    """Float encoder: normalised inputs (n, d) -> [mu, logvar], each (n, latent_dim)."""
    inp = keras.Input((input_dim,), name="inputs")
    h = inp
    for layer in _dense_stack(cfg.encoder, "enc_dense"):
        h = layer(h)
    mu = keras.layers.Dense(cfg.latent_dim, name="enc_mu")(h)
    logvar = keras.layers.Dense(cfg.latent_dim, name="enc_logvar")(h)
    return keras.Model(inp, [mu, logvar], name="encoder")


def build_decoder(output_dim: int, cfg: ModelConfig, output_bias: np.ndarray | None = None):
    """Decoder: latent (n, latent_dim) -> (n, output_dim) likelihood parameters / reconstruction."""
    inp = keras.Input((cfg.latent_dim,), name="latent")
    h = inp
    for layer in _dense_stack(cfg.decoder, "dec_dense"):
        h = layer(h)
    init = "zeros" if output_bias is None else keras.initializers.Constant(output_bias)
    out = keras.layers.Dense(output_dim, bias_initializer=init, name="dec_out")(h)
    return keras.Model(inp, out, name="decoder")


def kl_divergence(mu: tf.Tensor, logvar: tf.Tensor) -> tf.Tensor:
    """Per-event KL(N(mu, exp(logvar)) || N(0, 1)) summed over latent dims."""
    logvar = tf.clip_by_value(logvar, -_LOGVAR_CLIP, _LOGVAR_CLIP)
    return 0.5 * tf.reduce_sum(tf.square(mu) + tf.exp(logvar) - 1.0 - logvar, axis=1)


def latent_scores(mu: tf.Tensor, logvar: tf.Tensor) -> dict[str, tf.Tensor]:
    """The encoder-only scores: ``kl`` (:func:`kl_divergence`) and ``mu2`` (sum of mu^2)."""
    return {"kl": kl_divergence(mu, logvar), "mu2": tf.reduce_sum(tf.square(mu), axis=1)}


class VAE(keras.Model):
    """Encoder + decoder with the loss NLL + beta * KL; inputs are dicts from :func:`prepare_inputs`.

    Parameters
    ----------
    kind : {"hlf_vae", "l1_vae"}
        Selects the reconstruction term (see module docstring).
    encoder, decoder : keras.Model
        From :func:`build_encoder` / :func:`build_decoder`.
    beta : float
        KL weight.
    """

    def __init__(self, kind: str, encoder: keras.Model, decoder: keras.Model, beta: float, **kw):
        super().__init__(**kw)
        self.kind = kind
        self.encoder = encoder
        self.decoder = decoder
        self.beta = beta
        self.families = families()
        self.trackers = {k: keras.metrics.Mean(name=k) for k in ("loss", "nll", "kl")}

    def get_config(self) -> dict:
        """Scalar settings only: the model is rebuilt by :func:`build_vae`, never deserialised."""
        return {"kind": self.kind, "beta": self.beta}

    @property
    def metrics(self):
        return list(self.trackers.values())

    def _encode(self, inputs: dict) -> tuple[tf.Tensor, tf.Tensor]:
        return self.encoder(encoder_input(self.kind, inputs))

    def _reconstruction_nll(self, inputs: dict, out: tf.Tensor) -> tf.Tensor:
        if self.kind == "hlf_vae":
            return likelihoods.total_nll(out, inputs["t"], self.families)
        return 0.5 * tf.reduce_sum(inputs["m"] * tf.square(out - inputs["x"]), axis=1)

    def terms(self, inputs: dict, sample: bool) -> dict[str, tf.Tensor]:
        """Per-event ``loss``, ``nll``, ``kl`` and ``mu2``, plus the tensors they come from:
        ``mu``, ``logvar`` (n, latent) and ``reconstruction`` (the decoder output at ``z``).

        With ``sample=False`` the decoder is evaluated at ``z = mu`` (scoring).
        """
        mu, logvar = self._encode(inputs)
        z = mu
        if sample:
            std = tf.exp(0.5 * tf.clip_by_value(logvar, -_LOGVAR_CLIP, _LOGVAR_CLIP))
            z = mu + std * tf.random.normal(tf.shape(mu))
        reconstruction = self.decoder(z)
        nll = self._reconstruction_nll(inputs, reconstruction)
        latent = latent_scores(mu, logvar)
        return {
            "loss": nll + self.beta * latent["kl"], "nll": nll, **latent,
            "mu": mu, "logvar": logvar, "reconstruction": reconstruction,
        }

    def call(self, inputs, training=False):
        return self.terms(inputs, sample=bool(training))["loss"]

    def _update(self, terms: dict, sample_weight) -> dict[str, tf.Tensor]:
        for key, tracker in self.trackers.items():
            tracker.update_state(terms[key], sample_weight=sample_weight)
        return {k: t.result() for k, t in self.trackers.items()}

    def train_step(self, data):
        inputs, _, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            terms = self.terms(inputs, sample=True)
            w = tf.ones_like(terms["loss"]) if sample_weight is None else sample_weight
            loss = tf.reduce_sum(w * terms["loss"]) / tf.reduce_sum(w)
        grads = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.trainable_variables, strict=True))
        return self._update(terms, sample_weight)

    def test_step(self, data):
        inputs, _, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        return self._update(self.terms(inputs, sample=False), sample_weight)


def build_vae(cfg: ModelConfig, output_bias: np.ndarray | None = None) -> VAE:
    """Build (and build the weights of) the VAE of ``cfg.kind``.

    Parameters
    ----------
    cfg : ModelConfig
        Sizes and kind.
    output_bias : array, optional
        Initial decoder output biases (:func:`anomaly.likelihoods.initial_output_bias`).
    """
    d = len(input_names(cfg.kind))
    n_out = likelihoods.n_outputs(families()) if cfg.kind == "hlf_vae" else d
    vae = VAE(cfg.kind, build_encoder(d, cfg), build_decoder(n_out, cfg, output_bias), cfg.beta)
    vae(dummy_inputs(cfg.kind))
    return vae


def dummy_inputs(kind: str, n: int = 2) -> dict[str, np.ndarray]:
    """A zero input dict of the right shapes (used to build a model before loading weights)."""
    d = len(input_names(kind))
    key = "t" if kind == "hlf_vae" else "m"
    return {"x": np.zeros((n, d), np.float32), key: np.zeros((n, d), np.float32)}


def build_quantized_encoder(input_dim: int, cfg: ModelConfig, q: QuantizationConfig) -> keras.Model:
    """QKeras encoder twin: normalised inputs -> [mu, logvar] (QDense + quantized_relu stack)."""
    inp = keras.Input((input_dim,), name="inputs")
    h = inp
    for i, width in enumerate(cfg.encoder):
        wq = quantized_bits(q.weight_bits[i], q.weight_integer[i], alpha=1)
        h = QDense(width, kernel_quantizer=wq, bias_quantizer=wq, name=f"q_dense_{i}")(h)
        act = quantized_relu(q.activation_bits[i], q.activation_integer[i])
        h = QActivation(act, name=f"q_relu_{i}")(h)
    wq = quantized_bits(q.weight_bits[-1], q.weight_integer[-1], alpha=1)
    mu = QDense(cfg.latent_dim, kernel_quantizer=wq, bias_quantizer=wq, name="q_mu")(h)
    logvar = QDense(cfg.latent_dim, kernel_quantizer=wq, bias_quantizer=wq, name="q_logvar")(h)
    return keras.Model(inp, [mu, logvar], name="quantized_encoder")


@contextlib.contextmanager
def quiet_qkeras():
    """Silence Keras' warning that QKeras quantizers are not Keras constraints (harmless here:
    models are rebuilt from the config, never deserialised)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*keras.constraints.serialize")
        yield


def mu_model(encoder: keras.Model, name: str) -> keras.Model:
    """The single-output model ``normalised inputs -> mu`` sharing the layers of ``encoder``."""
    return keras.Model(encoder.input, encoder.output[0], name=name)


def copy_encoder_weights(float_encoder: keras.Model, quantized: keras.Model) -> None:
    """Initialise the quantized encoder from the float one (layer by layer, same shapes)."""
    for layer in float_encoder.layers:
        if isinstance(layer, keras.layers.Dense):
            target = "q_" + layer.name.removeprefix("enc_")
            quantized.get_layer(target).set_weights(layer.get_weights())
