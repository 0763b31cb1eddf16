"""The two networks over the tracks of an event, both permutation-invariant in the tracks.

Inputs: ``tracks`` (batch, N, F) normalised features and ``mask`` (batch, N), 1 for real tracks,
0 for padding. Output: one logit per event (signal-like > 0).

``mlp``
    Deep-Sets-like: the same MLP on every track, the mean over the unpadded tracks, an event MLP.
``transformer``
    A linear track embedding, ``layers`` pre-norm encoder blocks (multi-head self-attention whose
    keys are the unpadded tracks only, residual, layer norm, feed-forward), a final layer norm,
    the mean over the unpadded tracks, an event MLP. No positional encoding: the order of the
    tracks carries no information.

Padded tracks never reach the output: the attention masks them as keys and the pooling skips
them, so adding padding or permuting the tracks leaves the output unchanged (tests).
"""

from __future__ import annotations

from tagger.tracks.config import ARCHITECTURES, MLPConfig, ModelsConfig, TransformerConfig
from triggerad.errors import ConfigError, did_you_mean


def _layers():
    import tensorflow as tf
    from tensorflow import keras

    class MaskedMeanPool(keras.layers.Layer):
        """Mean over the unpadded tracks: (B, N, D), (B, N) -> (B, D) (0 without tracks)."""

        def call(self, x, mask):
            m = mask[..., None]
            return tf.reduce_sum(x * m, axis=1) / tf.maximum(tf.reduce_sum(m, axis=1), 1.0)

    class KeyMask(keras.layers.Layer):
        """Attention mask (B, N, N): every query may attend to the unpadded keys."""

        def call(self, mask):
            return tf.cast(tf.ones_like(mask)[:, :, None] * mask[:, None, :], tf.bool)

    return MaskedMeanPool, KeyMask


def _head(x, layers: list[int]):
    from tensorflow import keras

    for units in layers:
        x = keras.layers.Dense(units, activation="relu")(x)
    return keras.layers.Dense(1, name="logit")(x)


def build_mlp(cfg: MLPConfig, n_tracks: int, n_features: int, **_):
    """The per-track MLP with masked mean pooling."""
    from tensorflow import keras

    MaskedMeanPool, _ = _layers()
    tracks = keras.Input((n_tracks, n_features), name="tracks")
    mask = keras.Input((n_tracks,), name="mask")
    h = tracks
    for units in cfg.track_layers:
        h = keras.layers.Dense(units, activation="relu")(h)
    pooled = MaskedMeanPool()(h, mask)
    return keras.Model([tracks, mask], _head(pooled, cfg.event_layers), name="mlp")


def build_transformer(cfg: TransformerConfig, n_tracks: int, n_features: int, *,
                      inputs: list[str] | None = None, norm: dict | None = None):
    """The Transformer encoder over the tracks with masked mean pooling (with
    ``cfg.pair_features``: a pairwise attention bias, :mod:`tagger.tracks.pairs`, computed from
    the inputs named ``inputs`` un-normalised with ``norm``)."""
    from tensorflow import keras

    from tagger.tracks.pairs import layers as pair_layers

    MaskedMeanPool, KeyMask = _layers()
    tracks = keras.Input((n_tracks, n_features), name="tracks")
    mask = keras.Input((n_tracks,), name="mask")
    attention_mask = KeyMask()(mask)
    bias = None
    if cfg.pair_features:
        PairFeatures, PairBias, BiasedSelfAttention = pair_layers()
        norm = norm or {"mean": [0.0] * n_features, "std": [1.0] * n_features}
        pairs = PairFeatures(cfg.pair_features, inputs, norm["mean"], norm["std"])(tracks, mask)
        bias = PairBias(cfg.pair_layers, cfg.heads)(pairs)
    h = keras.layers.Dense(cfg.dim)(tracks)
    for _ in range(cfg.layers):
        y = keras.layers.LayerNormalization()(h)
        if bias is None:
            y = keras.layers.MultiHeadAttention(cfg.heads, cfg.dim // cfg.heads,
                                                dropout=cfg.dropout)(
                y, y, attention_mask=attention_mask)
        else:
            y = BiasedSelfAttention(cfg.heads, cfg.dim // cfg.heads, cfg.dropout)(y, bias, mask)
        h = keras.layers.Add()([h, y])
        y = keras.layers.LayerNormalization()(h)
        y = keras.layers.Dense(cfg.ff_dim, activation="relu")(y)
        y = keras.layers.Dense(cfg.dim)(y)
        h = keras.layers.Add()([h, y])
    h = keras.layers.LayerNormalization()(h)
    pooled = MaskedMeanPool()(h, mask)
    return keras.Model([tracks, mask], _head(pooled, cfg.event_layers), name="transformer")


#: Architecture name -> (builder, section of ``models``).
BUILDERS = {"mlp": (build_mlp, "mlp"), "transformer": (build_transformer, "transformer")}
assert tuple(BUILDERS) == ARCHITECTURES


def build(architecture: str, cfg: ModelsConfig, n_tracks: int, n_features: int, *,
          norm: dict | None = None):
    """The Keras model of ``architecture`` (``mlp`` or ``transformer``) with the sizes of ``cfg``
    (``norm``: the input normalisation, needed by pairwise features; default identity).

    Raises
    ------
    ConfigError
        For an unknown architecture (with the valid names).
    """
    if architecture not in BUILDERS:
        raise ConfigError(f"unknown architecture {architecture!r}; "
                          + did_you_mean(architecture, BUILDERS))
    builder, section = BUILDERS[architecture]
    return builder(getattr(cfg, section), n_tracks, n_features, inputs=list(cfg.inputs),
                   norm=norm)
