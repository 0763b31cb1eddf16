"""Pairwise track features as an attention bias (``models.transformer.pair_features``).

As in the Particle Transformer (Qu, Li, Qian 2022, "interaction" features), every pair of
tracks (i, j) gets a few features, a small per-pair MLP turns them into one number per attention
head, and that number is added to the attention logit of query i and key j. What a per-track
network with mean pooling cannot see -- whether tracks are close in angle, or whether two
displaced tracks come from one common point -- becomes directly visible to the attention.

Features (:data:`PAIR_FEATURES`; computed inside the network from the normalised per-track
inputs, which are un-normalised with the training normalisation first):

``log_dr``, ``log_kt``, ``log_z``, ``log_m2``
    ParT's kinematic features: ln Delta R, ln (min(pT_i, pT_j) Delta R),
    ln (min(pT_i, pT_j) / (pT_i + pT_j)), ln m^2 of the massless pair (GeV).
``vertex_dca``, ``vertex_dca_sig``, ``vertex_r``, ``vertex_s``
    The straight track lines (through their point of closest approach to the beam, ``d0``,
    ``dz``, along (cos phi, sin phi, sinh eta), as in :mod:`triggerad.generation.geometry`) are
    brought to their 3-D closest approach: asinh(distance / 0.1 mm), asinh(distance /
    sqrt(sigma_d0,i^2 + sigma_d0,j^2)), asinh(transverse radius of the midpoint / 1 mm) and
    asinh(min of the two flight lengths from the beam point to it / 1 mm; a decay vertex lies
    ahead of both tracks). Two tracks of one displaced vertex meet at a small distance at a
    radius > 0; prompt tracks meet near the origin; a mis-measured prompt track meets nothing.

Padded pairs get 0 (and are masked as keys anyway); padded inputs are replaced by 0 before any
arithmetic, so no inf/NaN can leak from garbage in padded slots.
"""

from __future__ import annotations

KINEMATIC = ("log_dr", "log_kt", "log_z", "log_m2")
VERTEX = ("vertex_dca", "vertex_dca_sig", "vertex_r", "vertex_s")
#: Names of the pairwise features.
PAIR_FEATURES = KINEMATIC + VERTEX
#: Per-track inputs (``models.inputs``) each group of pair features needs.
NEEDS = {"kinematic": ("log_pt", "eta", "cos_phi", "sin_phi"),
         "vertex": ("eta", "cos_phi", "sin_phi", "d0_mm", "dz_mm", "log_d0_err")}


def needed_inputs(names) -> list[str]:
    """The per-track inputs the pair features ``names`` are computed from."""
    out: list[str] = []
    for name in names:
        for need in NEEDS["kinematic" if name in KINEMATIC else "vertex"]:
            if need not in out:
                out.append(need)
    return out


def layers():
    """The Keras layers (built lazily: TensorFlow is imported only when a model is built)."""
    import tensorflow as tf
    from tensorflow import keras

    class PairFeatures(keras.layers.Layer):
        """(B, N, F) normalised tracks, (B, N) mask -> (B, N, N, P) pair features."""

        def __init__(self, names, inputs, mean, std, **kwargs):
            super().__init__(**kwargs)
            self.names, self.inputs = list(names), list(inputs)
            self.mean = tf.constant(mean, tf.float32)
            self.std = tf.constant(std, tf.float32)

        def call(self, x, mask):
            valid = mask > 0
            x = tf.where(valid[..., None], x * self.std + self.mean, 0.0)
            col = {n: x[..., self.inputs.index(n)] for n in needed_inputs(self.names)}
            pair = valid[:, :, None] & valid[:, None, :]
            out = {}
            eta = col["eta"]
            phi = tf.atan2(col["sin_phi"], col["cos_phi"])
            deta = eta[:, :, None] - eta[:, None, :]
            dphi = tf.math.floormod(phi[:, :, None] - phi[:, None, :] + 3.14159265, 6.2831853)
            dphi = dphi - 3.14159265
            if any(n in KINEMATIC for n in self.names):
                pt = tf.exp(tf.clip_by_value(col["log_pt"], -10.0, 10.0))
                pti, ptj = pt[:, :, None], pt[:, None, :]
                dr = tf.sqrt(deta**2 + dphi**2 + 1e-8)
                ptmin = tf.minimum(pti, ptj)
                m2 = 2 * pti * ptj * (tf.cosh(tf.clip_by_value(deta, -10.0, 10.0)) - tf.cos(dphi))
                out.update(log_dr=tf.math.log(dr), log_kt=tf.math.log(ptmin * dr + 1e-8),
                           log_z=tf.math.log(ptmin / (pti + ptj + 1e-8) + 1e-8),
                           log_m2=tf.math.log(m2 + 1e-8))
            if any(n in VERTEX for n in self.names):
                out.update(self.vertex(col, phi))
            feats = tf.stack([out[n] for n in self.names], axis=-1)
            return tf.where(pair[..., None], feats, 0.0)

        @staticmethod
        def vertex(col, phi):
            d0 = 0.1 * tf.sinh(tf.clip_by_value(col["d0_mm"], -15.0, 15.0))
            dz = tf.sinh(tf.clip_by_value(col["dz_mm"], -15.0, 15.0))
            sd0 = tf.exp(tf.clip_by_value(col["log_d0_err"], -15.0, 5.0))
            sin, cos = tf.sin(phi), tf.cos(phi)
            p = tf.stack([-d0 * sin, d0 * cos, dz], axis=-1)  # (B, N, 3)
            u = tf.stack([cos, sin, tf.sinh(tf.clip_by_value(col["eta"], -5.0, 5.0))], axis=-1)
            pi, pj, ui, uj = p[:, :, None], p[:, None, :], u[:, :, None], u[:, None, :]
            w = pi - pj
            a = tf.reduce_sum(ui * ui, -1)
            b = tf.reduce_sum(ui * uj, -1)
            c = tf.reduce_sum(uj * uj, -1)
            d = tf.reduce_sum(ui * w, -1)
            e = tf.reduce_sum(uj * w, -1)
            den = tf.maximum(a * c - b * b, 1e-6)
            s = tf.clip_by_value((b * e - c * d) / den, -1e4, 1e4)
            t = tf.clip_by_value((a * e - b * d) / den, -1e4, 1e4)
            ci, cj = pi + s[..., None] * ui, pj + t[..., None] * uj
            dist = tf.sqrt(tf.reduce_sum((ci - cj) ** 2, -1) + 1e-12)
            mid = 0.5 * (ci + cj)
            radius = tf.sqrt(mid[..., 0] ** 2 + mid[..., 1] ** 2 + 1e-12)
            sig = tf.sqrt(sd0[:, :, None] ** 2 + sd0[:, None, :] ** 2)
            return {"vertex_dca": tf.asinh(dist / 0.1), "vertex_dca_sig": tf.asinh(dist / sig),
                    "vertex_r": tf.asinh(radius), "vertex_s": tf.asinh(tf.minimum(s, t))}

    class PairBias(keras.layers.Layer):
        """(B, N, N, P) pair features -> (B, H, N, N) attention bias (per-pair MLP)."""

        def __init__(self, units, heads, **kwargs):
            super().__init__(**kwargs)
            self.hidden = [keras.layers.Dense(u, activation="relu") for u in units]
            self.out = keras.layers.Dense(heads)

        def call(self, pairs):
            h = pairs
            for layer in self.hidden:
                h = layer(h)
            return tf.transpose(self.out(h), [0, 3, 1, 2])

    class BiasedSelfAttention(keras.layers.Layer):
        """Multi-head self-attention with an additive bias; keys restricted to real tracks."""

        def __init__(self, heads, key_dim, dropout=0.0, **kwargs):
            super().__init__(**kwargs)
            self.heads, self.key_dim = heads, key_dim
            self.q, self.k, self.v = (keras.layers.Dense(heads * key_dim) for _ in range(3))
            self.drop = keras.layers.Dropout(dropout)

        def build(self, input_shape):
            self.o = keras.layers.Dense(input_shape[-1])
            super().build(input_shape)

        def split(self, x):
            b, n = tf.shape(x)[0], tf.shape(x)[1]
            return tf.transpose(tf.reshape(x, [b, n, self.heads, self.key_dim]), [0, 2, 1, 3])

        def call(self, x, bias, mask, training=None):
            q, k, v = self.split(self.q(x)), self.split(self.k(x)), self.split(self.v(x))
            logits = tf.matmul(q, k, transpose_b=True) / self.key_dim**0.5 + bias
            logits = tf.where(mask[:, None, None, :] > 0, logits, -1e9)
            weights = self.drop(tf.nn.softmax(logits, axis=-1), training=training)
            h = tf.transpose(tf.matmul(weights, v), [0, 2, 1, 3])
            b, n = tf.shape(x)[0], tf.shape(x)[1]
            return self.o(tf.reshape(h, [b, n, self.heads * self.key_dim]))

    return PairFeatures, PairBias, BiasedSelfAttention
