"""The LLP tagger network (arXiv:1912.12238): c-tau-parametrised classifier with a domain branch.

Inputs (named Keras inputs, normalised by :mod:`tagger.inputs`): ``charged`` (n, Nc, Fc),
``neutral`` (n, Nn, Fn), ``sv`` (n, Ns, Fs), ``globals`` (n, 14), ``log10_ctau`` (n, 1).

- Per-candidate stacks of Conv1D(kernel 1) + LeakyReLU(0.1) + dropout: charged 64-32-32-8,
  neutral 32-16-16-4, SV 32-16-16-8 (sizes in :class:`ModelConfig`);
- flattened, concatenated with the globals and log10(c-tau / mm), Dense(200) (the *feature
  extractor* ends here, output ``features``);
- class branch 2 x Dense(100) -> softmax over (LLP, b, c, uds, g), output ``class``;
- domain branch :class:`GradientReversal` -> 2 x Dense(50) -> sigmoid, output ``domain``.

The training objective (:class:`tagger.training.DomainAdversarialModel`) is
``L_class + w_domain L_domain``: the domain head learns to separate the domains at full strength
(``w_domain`` 1 in phase 2, 0 in phase 1) while the gradient-reversal layer sends
``-lambda dL_domain/dfeatures`` into the feature extractor (the DANN construction), so lambda
alone sets how hard the features are pushed towards domain invariance.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from triggerad.jets import FEATURES, LABELS

#: Names of the model inputs, in order.
INPUT_NAMES = ("charged", "neutral", "sv", "globals", "log10_ctau")
#: Candidate blocks (Conv1D stacks).
BLOCKS = ("charged", "neutral", "sv")
#: Layer-name prefixes of the feature extractor (shared by both branches).
FEATURE_PREFIXES = ("charged_", "neutral_", "sv_", "features")


@dataclass
class ModelConfig:
    """The ``model`` section: every layer size and rate of the network.

    Attributes
    ----------
    charged, neutral, sv : list of int
        Filters of the kernel-1 Conv1D layers of each candidate block.
    dense : int
        Units of the dense layer after the concatenation (the extracted features).
    class_layers : list of int
        Hidden layers of the class branch (before the softmax over the 5 classes).
    domain_layers : list of int
        Hidden layers of the domain branch (after the gradient reversal, before the sigmoid).
    dropout : float
        Dropout rate after every hidden layer.
    leaky_alpha : float
        Negative slope of the LeakyReLU activations.
    """

    charged: list[int] = field(default_factory=lambda: [64, 32, 32, 8])
    neutral: list[int] = field(default_factory=lambda: [32, 16, 16, 4])
    sv: list[int] = field(default_factory=lambda: [32, 16, 16, 8])
    dense: int = 200
    class_layers: list[int] = field(default_factory=lambda: [100, 100])
    domain_layers: list[int] = field(default_factory=lambda: [50, 50])
    dropout: float = 0.1
    leaky_alpha: float = 0.1

    def __post_init__(self) -> None:
        for name in ("charged", "neutral", "sv", "class_layers", "domain_layers"):
            sizes = getattr(self, name)
            if not sizes or any(s <= 0 for s in sizes):
                raise ValueError(f"{name} must be a non-empty list of positive sizes, found {sizes!r}")
        if self.dense <= 0:
            raise ValueError(f"dense must be positive, found {self.dense!r}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), found {self.dropout!r}")
        if self.leaky_alpha < 0:
            raise ValueError(f"leaky_alpha must be >= 0, found {self.leaky_alpha!r}")


def _gradient_reversal_layer():
    """The :class:`GradientReversal` class (built lazily: TensorFlow is imported on first use)."""
    import tensorflow as tf
    from tensorflow import keras

    class GradientReversal(keras.layers.Layer):
        """Identity forward; backward the incoming gradient times ``-lambda``.

        ``lam`` is a non-trainable ``tf.Variable``: set it between epochs with
        ``layer.lam.assign(value)`` (:class:`tagger.schedule.ScheduleCallback`); compiled
        training steps read its current value.
        """

        def __init__(self, lam: float = 0.0, **kwargs):
            super().__init__(**kwargs)
            self.lam = tf.Variable(float(lam), trainable=False, dtype=tf.float32,
                                   name="grl_lambda")

        def call(self, inputs):
            lam = self.lam

            @tf.custom_gradient
            def reverse(x):
                def grad(dy):
                    return -tf.cast(lam, dy.dtype) * dy
                return tf.identity(x), grad

            return reverse(inputs)

        def get_config(self):
            return {**super().get_config(), "lam": float(self.lam.numpy())}

    return GradientReversal


_GRL = None


def GradientReversal(lam: float = 0.0, **kwargs):  # noqa: N802 (a layer factory)
    """A gradient-reversal layer (identity forward, gradient x ``-lam`` backward).

    Parameters
    ----------
    lam : float
        Initial lambda; the layer's ``lam`` variable can be reassigned at any time.
    """
    global _GRL
    if _GRL is None:
        _GRL = _gradient_reversal_layer()
    return _GRL(lam, **kwargs)


def build_tagger(cfg: ModelConfig, sizes: dict[str, int], *, name: str = "llp_tagger"):
    """The Keras network (module docstring) for candidate-block sizes ``sizes``.

    Parameters
    ----------
    cfg : ModelConfig
        Layer sizes and rates.
    sizes : dict
        Candidates per jet ``{"charged": Nc, "neutral": Nn, "sv": Ns}``.

    Returns
    -------
    keras.Model
        Inputs :data:`INPUT_NAMES` (a dict), outputs ``{"class": (n, 5) softmax,
        "domain": (n, 1) sigmoid}``. The gradient-reversal layer is the layer ``grl``.
    """
    from tensorflow import keras

    layers = keras.layers
    inputs = {
        b: keras.Input((sizes[b], len(FEATURES[b])), name=b) for b in BLOCKS
    }
    inputs["globals"] = keras.Input((len(FEATURES["globals"]),), name="globals")
    inputs["log10_ctau"] = keras.Input((1,), name="log10_ctau")

    def act(x, prefix):
        x = layers.LeakyReLU(cfg.leaky_alpha, name=f"{prefix}_act")(x)
        return layers.Dropout(cfg.dropout, name=f"{prefix}_drop")(x) if cfg.dropout else x

    parts = []
    for block in BLOCKS:
        x = inputs[block]
        for i, filters in enumerate(getattr(cfg, block)):
            x = layers.Conv1D(filters, 1, name=f"{block}_conv{i}")(x)
            x = act(x, f"{block}_conv{i}")
        parts.append(layers.Flatten(name=f"{block}_flat")(x))
    x = layers.Concatenate(name="features_concat")([*parts, inputs["globals"], inputs["log10_ctau"]])
    x = layers.Dense(cfg.dense, name="features_dense")(x)
    features = act(x, "features_dense")

    c = features
    for i, units in enumerate(cfg.class_layers):
        c = act(layers.Dense(units, name=f"class_dense{i}")(c), f"class_dense{i}")
    class_out = layers.Dense(len(LABELS), activation="softmax", name="class")(c)

    d = GradientReversal(0.0, name="grl")(features)
    for i, units in enumerate(cfg.domain_layers):
        d = act(layers.Dense(units, name=f"domain_dense{i}")(d), f"domain_dense{i}")
    domain_out = layers.Dense(1, activation="sigmoid", name="domain")(d)
    return keras.Model(inputs, {"class": class_out, "domain": domain_out}, name=name)


def feature_weights(net) -> list:
    """The trainable weights of the feature extractor (candidate stacks and the dense layer)."""
    return [w for layer in net.layers if layer.name.startswith(FEATURE_PREFIXES)
            for w in layer.trainable_weights]


def grl_layer(net):
    """The gradient-reversal layer of a network from :func:`build_tagger`."""
    return net.get_layer("grl")
