"""Baselines compared with the VAE at the same trigger rate, all on the 21 high-level features.

- ``autoencoder``: a plain (deterministic) Keras autoencoder; score = mean squared error of the
  reconstruction of the transformed, standardised features.
- ``isolation_forest``: scikit-learn :class:`~sklearn.ensemble.IsolationForest`; score =
  ``-score_samples`` (higher = more anomalous).
- ``flow``: a RealNVP normalizing flow (:mod:`anomaly.flow`); score = ``-log p`` of the
  dequantized, robustly scaled features.
- ``classifier``: a supervised :class:`~sklearn.ensemble.HistGradientBoostingClassifier` per
  signal, trained on background (training split) against one half of the signal and evaluated
  on the other half: an upper bound for a model that knows the signal.
- ``single_variable``: the event's lepton pT, HT or MET used directly as the score.

Features enter the autoencoder as ``sign(x) log(1 + |x|)``, standardised on the training
background; the tree models see the raw features (they are invariant to monotonic transforms).
Background training events are weighted by their cross-section weights (normalised to mean 1);
negative weights (NLO generators) enter as ``|w|``, as in the VAE training's default.

Every fitted baseline is a function ``(n, 21) features -> (n,) scores`` so the evaluation applies
the same :func:`triggerad.rates.threshold_at_rate` to all of them. The unsupervised ones are
registered in :data:`UNSUPERVISED` (name -> config section and fit function).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from anomaly.flow import fit_flow
from triggerad import schema
from triggerad.errors import ConfigError, did_you_mean

Scorer = Callable[[np.ndarray], np.ndarray]

#: Variables of the single-variable trigger and how to get them from the event record.
SINGLE_VARIABLES = ("LepPt", "HT", "MET")


@dataclass
class AutoencoderConfig:
    """Plain autoencoder baseline (YAML section ``autoencoder``)."""

    enabled: bool = True
    hidden: list[int] = field(default_factory=lambda: [16, 8])
    epochs: int = 20
    batch_size: int = 256
    learning_rate: float = 1e-3
    max_train_events: int = 20000
    seed: int = 1


@dataclass
class IsolationForestConfig:
    """IsolationForest baseline (YAML section ``isolation_forest``)."""

    enabled: bool = True
    n_estimators: int = 100
    max_samples: int = 256
    max_train_events: int = 20000
    seed: int = 1


@dataclass
class ClassifierConfig:
    """Supervised classifier per signal (YAML section ``classifier``)."""

    enabled: bool = True
    max_iter: int = 100
    learning_rate: float = 0.1
    max_train_events: int = 20000
    seed: int = 1


@dataclass
class SingleVariableConfig:
    """Single-variable triggers (YAML section ``single_variable``)."""

    enabled: bool = True
    variables: list[str] = field(default_factory=lambda: list(SINGLE_VARIABLES))

    def __post_init__(self) -> None:
        for name in self.variables:
            if name not in SINGLE_VARIABLES:
                raise ConfigError(
                    f"single_variable.variables: unknown variable {name!r}; "
                    + did_you_mean(name, SINGLE_VARIABLES)
                )


def single_variable(batch, features: np.ndarray, name: str) -> np.ndarray:
    """The value of one trigger variable per event: ``LepPt``, ``HT`` (features) or ``MET``.

    Parameters
    ----------
    batch : EventBatch
        The events (MET is ``objects[:, 0, 0]``; for feature-only batches ``hypot(METp, METo)``).
    features : (n, 21) array
        The 21 features of the same events.
    name : str
        One of :data:`SINGLE_VARIABLES`.
    """
    if name == "MET":
        if batch.has_objects:
            return batch.objects[:, schema.MET_SLOT, 0].astype(np.float64)
        index = schema.FEATURE_NAMES.index
        return np.hypot(features[:, index("METp")], features[:, index("METo")]).astype(np.float64)
    if name not in SINGLE_VARIABLES:
        raise ConfigError(f"single variable: unknown {name!r}; " + did_you_mean(name, SINGLE_VARIABLES))
    return features[:, schema.FEATURE_NAMES.index(name)].astype(np.float64)


def subsample(n: int, max_events: int, seed: int) -> np.ndarray:
    """Sorted indices of at most ``max_events`` of ``n`` events, drawn without replacement."""
    if n <= max_events:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=max_events, replace=False))


def _mean_one(weights: np.ndarray) -> np.ndarray:
    weights = np.abs(np.asarray(weights, dtype=np.float64))
    return weights / weights.mean()


def _transform(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return np.sign(x) * np.log1p(np.abs(x))


def fit_autoencoder(x: np.ndarray, weights: np.ndarray, cfg: AutoencoderConfig) -> Scorer:
    """Train a plain MSE autoencoder on background features; return the scorer.

    Parameters
    ----------
    x : (n, 21) array
        Training background features.
    weights : (n,) array
        Their weights.
    cfg : AutoencoderConfig
        Layer sizes of the encoder (mirrored in the decoder), epochs, batch size, seed.
    """
    import tensorflow as tf

    t = _transform(x)
    mean, scale = t.mean(axis=0), t.std(axis=0)
    scale[scale == 0] = 1.0

    def norm(v: np.ndarray) -> np.ndarray:
        return ((_transform(v) - mean) / scale).astype(np.float32)

    tf.keras.utils.set_random_seed(cfg.seed)
    sizes = list(cfg.hidden) + list(cfg.hidden[-2::-1])
    model = tf.keras.Sequential(
        [tf.keras.Input(shape=(x.shape[1],))]
        + [tf.keras.layers.Dense(n, activation="relu") for n in sizes]
        + [tf.keras.layers.Dense(x.shape[1])]
    )
    model.compile(optimizer=tf.keras.optimizers.Adam(cfg.learning_rate), loss="mse")
    xn = norm(x)
    model.fit(xn, xn, sample_weight=_mean_one(weights), epochs=cfg.epochs,
              batch_size=cfg.batch_size, verbose=0, shuffle=True)

    def score(v: np.ndarray) -> np.ndarray:
        vn = norm(v)
        rec = model.predict(vn, batch_size=4096, verbose=0)
        return np.mean((rec - vn) ** 2, axis=1).astype(np.float64)

    return score


def fit_isolation_forest(x: np.ndarray, weights: np.ndarray, cfg: IsolationForestConfig) -> Scorer:
    """Fit an IsolationForest on background features; the scorer returns ``-score_samples``."""
    from sklearn.ensemble import IsolationForest

    forest = IsolationForest(
        n_estimators=cfg.n_estimators, max_samples=min(cfg.max_samples, len(x)),
        random_state=cfg.seed,
    )
    forest.fit(x, sample_weight=_mean_one(weights))
    return lambda v: -forest.score_samples(v).astype(np.float64)


#: Unsupervised baselines: name -> (the EvaluateConfig section attribute, fit function). A fit
#: function takes ``(features, weights, section)`` and returns a :data:`Scorer`.
UNSUPERVISED: dict[str, tuple[str, Callable[..., Scorer]]] = {
    "autoencoder": ("autoencoder", fit_autoencoder),
    "isolation_forest": ("isolation_forest", fit_isolation_forest),
    "flow": ("flow", fit_flow),
}


def fit_unsupervised(train_x: np.ndarray, train_w: np.ndarray, cfg) -> dict[str, Scorer]:
    """Train the enabled unsupervised baselines (:data:`UNSUPERVISED`) on the training split.

    Each is trained on at most its section's ``max_train_events`` events (seeded subsample).
    Returns ``{name: scorer}``.
    """
    scorers = {}
    for name, (attr, fit) in UNSUPERVISED.items():
        section = getattr(cfg, attr)
        if section.enabled:
            idx = subsample(len(train_x), section.max_train_events, section.seed)
            scorers[name] = fit(train_x[idx], train_w[idx], section)
    return scorers


def fit_classifier(
    x_bkg: np.ndarray, w_bkg: np.ndarray, x_sig: np.ndarray, cfg: ClassifierConfig
) -> Scorer:
    """Train a gradient-boosted classifier background vs signal; the scorer returns P(signal).

    Each class gets the same total weight (background by its cross-section weights).
    """
    from sklearn.ensemble import HistGradientBoostingClassifier

    x = np.concatenate([x_bkg, x_sig])
    y = np.concatenate([np.zeros(len(x_bkg)), np.ones(len(x_sig))])
    w_bkg = _mean_one(w_bkg)
    w = np.concatenate([w_bkg / np.sum(w_bkg), np.full(len(x_sig), 1.0 / len(x_sig))]) * len(x) / 2
    clf = HistGradientBoostingClassifier(
        max_iter=cfg.max_iter, learning_rate=cfg.learning_rate, random_state=cfg.seed,
        early_stopping=False,
    )
    clf.fit(x, y, sample_weight=w)
    return lambda v: clf.predict_proba(v)[:, 1].astype(np.float64)


def signal_halves(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split ``n`` signal events into a training and an evaluation half (seeded permutation)."""
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[: n // 2]), np.sort(perm[n // 2:])


def baseline_scores(
    train_x: np.ndarray,
    train_w: np.ndarray,
    bkg_batch: Any,
    bkg_x: np.ndarray,
    sig_batches: dict[str, Any],
    sig_x: dict[str, np.ndarray],
    cfg,
    *,
    scorers: dict[str, Scorer] | None = None,
) -> tuple[dict[str, Any], dict[str, dict[str, np.ndarray]]]:
    """Train the enabled baselines and score the evaluation background and signals.

    Parameters
    ----------
    train_x, train_w : arrays
        21 features and weights of the background training split.
    bkg_batch, bkg_x : EventBatch, array
        Evaluation background and its 21 features.
    sig_batches, sig_x : dicts
        Signal batches and their 21 features, by signal name.
    cfg : anomaly.evaluate.EvaluateConfig
        Which baselines run, and their sizes (one section per baseline).
    scorers : dict, optional
        Already fitted unsupervised baselines (:func:`fit_unsupervised`), e.g. to score another
        split with the same models; None: fitted here.

    Returns
    -------
    bkg, sig : dicts
        Inputs of :func:`anomaly.report.baselines_report`.
    """
    bkg: dict[str, Any] = {}
    sig: dict[str, dict[str, np.ndarray]] = {}
    if cfg.single_variable.enabled:
        for var in cfg.single_variable.variables:
            bkg[f"single_{var}"] = single_variable(bkg_batch, bkg_x, var)
            sig[f"single_{var}"] = {
                n: single_variable(sig_batches[n], x, var) for n, x in sig_x.items()
            }
    if scorers is None:
        scorers = fit_unsupervised(train_x, train_w, cfg)
    for name, scorer in scorers.items():
        bkg[name] = scorer(bkg_x)
        sig[name] = {n: scorer(x) for n, x in sig_x.items()}
    if cfg.classifier.enabled:
        section = cfg.classifier
        idx = subsample(len(train_x), section.max_train_events, section.seed)
        bkg["classifier"], sig["classifier"] = {}, {}
        for n, x in sig_x.items():
            fit_half, eval_half = signal_halves(len(x), section.seed)
            scorer = fit_classifier(train_x[idx], train_w[idx], x[fit_half], section)
            bkg["classifier"][n] = scorer(bkg_x)
            sig["classifier"][n] = scorer(x[eval_half])
    return bkg, sig
