"""A normalizing-flow density estimator on the 21 high-level features (baseline ``flow``).

Score = ``-log p(t)``: the negative log-density of a RealNVP flow (affine coupling layers,
Dinh et al. 2017) trained by weighted maximum likelihood on the SM training split, where ``t``
are the preprocessed features (:class:`Preprocessing`):

1. **dequantization** - an integer-valued feature (all training values integral: the counts,
   LepCharge, LepIsEle) gets ``x + u``, ``u ~ U(0, 1)``, so its density is finite; a point mass
   of a continuous feature (a value holding more than ``atom_fraction`` of the training events,
   e.g. isolation or a mass at exactly 0) is spread over ``[a - atom_width, a]`` in scaled
   units. Training draws ``u`` from a generator seeded with ``seed``; scoring uses the middle of
   each interval (``u = 1/2``), so an event's score does not depend on the batch it is in;
2. ``sign(x) log(1 + |x|)`` (heavy pT / mass tails), then **robust scaling**: (t - median) /
   (IQR / 1.349) (the standard deviation, then 1, when the IQR is 0), clipped to
   ``+-clip``.

The preprocessing is a fixed map: ``jacobian: true`` (default) adds ``log |dt/dx|`` of step 2,
so the score is the density in raw feature units (large pT values more anomalous; it measured
better on the fast study, docs/anomaly.md); ``false``: the density of the preprocessed features. Coupling layers: the conditioner is an MLP whose last layer
starts at zero (the flow starts as the identity, so an untrained flow gives the standard normal
log-density exactly); the log-scale is ``scale_bound * tanh(.)`` for stability; between
couplings the dimensions are permuted by seeded random permutations (log-det 0).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

LOG_2PI = float(np.log(2.0 * np.pi))


@dataclass
class FlowConfig:
    """Normalizing-flow baseline (YAML section ``flow``).

    Attributes
    ----------
    enabled : bool
        Train and score it (off unless configured: the packaged ``evaluate.yaml`` turns it on).
    couplings : int
        Affine coupling layers.
    hidden : list of int
        Hidden layer sizes of each coupling's conditioner MLP.
    scale_bound : float
        Log-scales are ``scale_bound * tanh(raw)``.
    epochs, batch_size, learning_rate : training (Adam; the best epoch on ``val_fraction`` of the
        training events is kept, early stopping after ``patience`` epochs without improvement).
    atom_fraction, atom_width, clip : preprocessing (module docstring).
    jacobian : bool
        Score in raw feature units (adds the preprocessing's log-Jacobian); else in the
        preprocessed units.
    max_train_events, seed : as for the other baselines.
    """

    enabled: bool = False
    couplings: int = 6
    hidden: list[int] = field(default_factory=lambda: [64, 64])
    scale_bound: float = 2.0
    epochs: int = 30
    batch_size: int = 512
    learning_rate: float = 1e-3
    patience: int = 5
    val_fraction: float = 0.1
    atom_fraction: float = 0.01
    atom_width: float = 0.1
    clip: float = 20.0
    jacobian: bool = True
    max_train_events: int = 20000
    seed: int = 1

    def __post_init__(self) -> None:
        if self.couplings < 1 or not self.hidden or min(self.hidden) < 1:
            raise ValueError(f"couplings and hidden sizes must be positive, found "
                             f"{self.couplings!r}, {self.hidden!r}")
        if not 0 <= self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in [0, 1), found {self.val_fraction!r}")


@dataclass
class Preprocessing:
    """The fitted map raw features -> flow inputs (module docstring, steps 1-2).

    Attributes
    ----------
    integer : (d,) bool array
        Features dequantized with ``x + u``.
    atoms : list of (d,) lists
        Point-mass values (raw units, after the integer dequantization: none) per feature.
    center, scale : (d,) arrays
        Robust scaling of ``sign(x) log(1 + |x|)``.
    atom_width, clip : float
    """

    integer: np.ndarray
    atoms: list[list[float]]
    center: np.ndarray
    scale: np.ndarray
    atom_width: float
    clip: float

    @classmethod
    def fit(cls, x: np.ndarray, *, atom_fraction: float, atom_width: float, clip: float
            ) -> Preprocessing:
        """Fit on training features ``x`` (n, d)."""
        x = np.asarray(x, dtype=np.float64)
        integer = np.all(x == np.round(x), axis=0)
        atoms = []
        for j in range(x.shape[1]):
            if integer[j]:
                atoms.append([])
                continue
            values, counts = np.unique(x[:, j], return_counts=True)
            atoms.append([float(v) for v in values[counts > atom_fraction * len(x)]])
        t = _log(x + 0.5 * integer)
        q25, center, q75 = np.percentile(t, [25, 50, 75], axis=0)
        scale = (q75 - q25) / 1.349
        std = t.std(axis=0)
        scale = np.where(scale > 1e-9, scale, np.where(std > 1e-9, std, 1.0))
        return cls(integer, atoms, center, scale, atom_width, clip)

    def __call__(self, x: np.ndarray, rng: np.random.Generator | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
        """``(t, log|dt/dx|)`` of raw features ``x``; ``rng`` None: mid-interval (scoring)."""
        x = np.asarray(x, dtype=np.float64)
        u = np.full(x.shape, 0.5) if rng is None else rng.uniform(size=x.shape)
        raw = x + u * self.integer
        t = (_log(raw) - self.center) / self.scale
        logdet = np.sum(-np.log1p(np.abs(raw)) - np.log(self.scale), axis=1)
        for j, values in enumerate(self.atoms):
            for a in values:
                hit = x[:, j] == a
                t[hit, j] -= self.atom_width * u[hit, j]
        return np.clip(t, -self.clip, self.clip).astype(np.float32), logdet


def _log(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.log1p(np.abs(x))


def dequantize_seeded(pre: Preprocessing, x: np.ndarray, seed: int) -> np.ndarray:
    """Training inputs: ``pre(x)`` with the noise drawn from ``default_rng(seed)``."""
    return pre(x, np.random.default_rng(seed))[0]


def build_flow(dim: int, *, couplings: int, hidden: list[int], scale_bound: float, seed: int):
    """A RealNVP :class:`tf.keras.Model`: ``model(t)`` is ``log p(t)`` per event (n,)."""
    import tensorflow as tf

    tf.keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    half = dim // 2
    inputs = tf.keras.Input(shape=(dim,))
    z, logdet = inputs, None
    for k in range(couplings):
        z = tf.gather(z, rng.permutation(dim), axis=1) if k else z
        a, b = z[:, :half], z[:, half:]
        h = a
        for n in hidden:
            h = tf.keras.layers.Dense(n, activation="relu")(h)
        out = tf.keras.layers.Dense(2 * (dim - half), kernel_initializer="zeros")(h)
        log_s = scale_bound * tf.tanh(out[:, : dim - half])
        b = b * tf.exp(log_s) + out[:, dim - half:]
        z = tf.concat([a, b], axis=1)
        term = tf.reduce_sum(log_s, axis=1)
        logdet = term if logdet is None else logdet + term
    base = -0.5 * tf.reduce_sum(tf.square(z), axis=1) - 0.5 * dim * LOG_2PI
    return tf.keras.Model(inputs, base + logdet)


def train_flow(model, t: np.ndarray, weights: np.ndarray, cfg: FlowConfig) -> dict:
    """Weighted maximum likelihood (Adam), the best epoch on a held-back fraction kept."""
    import tensorflow as tf

    w = np.abs(np.asarray(weights, dtype=np.float64))
    w = (w / w.mean()).astype(np.float32)
    perm = np.random.default_rng(cfg.seed).permutation(len(t))
    n_val = int(cfg.val_fraction * len(t))
    val, fit = perm[:n_val], perm[n_val:]
    model.compile(optimizer=tf.keras.optimizers.Adam(cfg.learning_rate),
                  loss=lambda _, logp: -logp, weighted_metrics=[])
    callbacks = []
    validation = None
    if n_val:
        validation = (t[val], np.zeros(n_val, np.float32), w[val])
        callbacks.append(tf.keras.callbacks.EarlyStopping(
            patience=cfg.patience, restore_best_weights=True, monitor="val_loss"))
    hist = model.fit(t[fit], np.zeros(len(fit), np.float32), sample_weight=w[fit],
                     validation_data=validation, epochs=cfg.epochs, batch_size=cfg.batch_size,
                     shuffle=True, verbose=0, callbacks=callbacks)
    return {k: [float(v) for v in vals] for k, vals in hist.history.items()}


def fit_flow(x: np.ndarray, weights: np.ndarray, cfg: FlowConfig):
    """Train the flow on background features; return the scorer ``x -> -log p`` (n,).

    Parameters
    ----------
    x : (n, 21) array
        Training background features.
    weights : (n,) array
        Their weights (``|w|``, normalised to mean 1).
    cfg : FlowConfig
    """
    pre = Preprocessing.fit(x, atom_fraction=cfg.atom_fraction, atom_width=cfg.atom_width,
                            clip=cfg.clip)
    model = build_flow(x.shape[1], couplings=cfg.couplings, hidden=cfg.hidden,
                       scale_bound=cfg.scale_bound, seed=cfg.seed)
    train_flow(model, dequantize_seeded(pre, x, cfg.seed), weights, cfg)

    def score(v: np.ndarray) -> np.ndarray:
        t, logdet = pre(v)
        logp = model.predict(t, batch_size=8192, verbose=0).astype(np.float64)
        return -(logp + logdet) if cfg.jacobian else -logp

    return score
