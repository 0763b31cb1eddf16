"""Training of a track classifier: supervised (truth labels) or CWoLa (mixture membership).

The events of one sample file are split train / validation / test (:func:`.data.split`). For
``supervised`` the targets are the truth labels, weighted so that both classes count equally.
For ``cwola`` the training and validation events are each drawn into two mixtures
(:func:`.cwola.mixtures`) and the targets are the mixture numbers only, as on collision data; the
validation loss used for early stopping is the mixture loss too. The test events are untouched
(``tracks-evaluate`` scores them against the truth).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from tagger.tracks import cwola
from tagger.tracks import features as feat
from tagger.tracks.config import LABELLINGS, TracksConfig
from tagger.tracks.data import TrackSample, split
from triggerad.config import to_dict
from triggerad.errors import ConfigError, InputFileError, did_you_mean


def targets(sample: TrackSample, index: np.ndarray, labelling: str, cfg: TracksConfig,
            fraction: float, rng) -> tuple[np.ndarray, np.ndarray]:
    """Events (indices into ``sample``) and training targets of ``labelling``.

    ``supervised``: all ``index`` events with their truth labels; ``cwola``: the two mixtures of
    :func:`.cwola.mixtures` with their membership.
    """
    if labelling == "supervised":
        return index, sample.label[index].astype(np.float32)
    sub, target = cwola.mixtures(sample.label[index], fraction, cfg.cwola.reference_fraction, rng)
    return index[sub], target


def balanced_weights(y: np.ndarray) -> np.ndarray:
    """Per-event weights giving both target classes the same total weight (mean 1)."""
    n1 = max(float(y.sum()), 1.0)
    n0 = max(float(len(y) - y.sum()), 1.0)
    return np.where(y > 0.5, len(y) / (2 * n1), len(y) / (2 * n0)).astype(np.float32)


def check_sample(sample: TrackSample, labelling: str, n_tracks: int) -> None:
    """Refuse a file the training cannot use (one class only, other track count)."""
    counts = np.bincount(sample.label.astype(np.int64), minlength=2)
    if counts.min() == 0:
        raise InputFileError(f"{sample.path}: needs signal and QCD events, found "
                             f"{counts[1]} signal and {counts[0]} QCD")
    if sample.tracks.shape[1] != n_tracks:
        raise InputFileError(f"{sample.path}: {sample.tracks.shape[1]} tracks per event, the "
                             f"config's selection.n_tracks is {n_tracks}")
    if labelling not in LABELLINGS:
        raise ConfigError(f"unknown labelling {labelling!r}; " + did_you_mean(labelling,
                                                                                LABELLINGS))


def train(cfg: TracksConfig, sample: TrackSample, out: str | Path, *, architecture: str,
          labelling: str = "supervised", fraction: float | None = None,
          progress: bool = True) -> dict:
    """Train one classifier and write its model folder ``out`` (atomically).

    Parameters
    ----------
    cfg : TracksConfig
        Model sizes (``models``), ``training`` and ``cwola`` settings.
    sample : TrackSample
        The sample file (one mu).
    out : path
        Model folder to write.
    architecture : {"mlp", "transformer"}
    labelling : {"supervised", "cwola"}
    fraction : float, optional
        CWoLa signal fraction of mixture 1 (default ``cwola.fraction``).
    progress : bool
        Epoch progress bar.

    Returns
    -------
    dict : the training summary (also in ``artifact.json``).
    """
    import tensorflow as tf
    from tensorflow import keras

    from tagger.tracks import artifact
    from tagger.tracks.models import build
    from triggerad import atomic
    from triggerad.training import distribution_strategy, progress_callback

    check_sample(sample, labelling, cfg.selection.n_tracks)
    fraction = cfg.cwola.fraction if fraction is None else fraction
    if labelling == "cwola" and not cfg.cwola.reference_fraction < fraction < 1:
        raise ConfigError(f"--fraction: expected a signal fraction in "
                          f"({cfg.cwola.reference_fraction:g}, 1), found {fraction!r}")
    tc = cfg.training
    parts = split(len(sample), seed=tc.seed, val_fraction=tc.val_fraction,
                  test_fraction=tc.test_fraction, max_train=tc.max_train_events)
    if tc.max_train_events is not None and len(parts["train"]) < tc.max_train_events:
        raise ConfigError(f"training.max_train_events: {sample.path} has "
                          f"{len(parts['train'])} training events, found a cap of "
                          f"{tc.max_train_events!r}")
    rng = np.random.default_rng([tc.seed, 7])
    x_all, mask_all = feat.track_features(sample.tracks, sample.n_tracks, cfg.models.inputs)
    tr, y_tr = targets(sample, parts["train"], labelling, cfg, fraction, rng)
    va, y_va = targets(sample, parts["val"], labelling, cfg, fraction, rng)
    norm = feat.fit_normalisation(x_all[tr], mask_all[tr])
    x_tr, x_va = (feat.normalise(x_all[i], mask_all[i], norm) for i in (tr, va))
    tf.keras.utils.set_random_seed(tc.seed)
    with distribution_strategy().scope():
        net = build(architecture, cfg.models, cfg.selection.n_tracks, x_all.shape[-1],
                    norm=norm)
        rate = tc.learning_rate
        if tc.schedule == "cosine":
            rate = keras.optimizers.schedules.CosineDecay(
                tc.learning_rate, tc.epochs * -(-len(tr) // tc.batch_size))
        net.compile(optimizer=keras.optimizers.Adam(rate),
                    loss=keras.losses.BinaryCrossentropy(from_logits=True),
                    weighted_metrics=[keras.metrics.BinaryAccuracy(threshold=0.0)])
    callbacks = [keras.callbacks.EarlyStopping(patience=tc.patience, restore_best_weights=True)]
    if progress:
        callbacks.append(progress_callback(tc.epochs, f"train {architecture} ({labelling})"))
    start = time.perf_counter()
    hist = net.fit([x_tr, mask_all[tr]], y_tr, sample_weight=balanced_weights(y_tr),
                   validation_data=([x_va, mask_all[va]], y_va, balanced_weights(y_va)),
                   epochs=tc.epochs, batch_size=tc.batch_size, shuffle=True, verbose=0,
                   callbacks=callbacks)
    seconds = time.perf_counter() - start
    epochs = len(hist.history["loss"])
    best = int(np.argmin(hist.history["val_loss"]))
    summary = {
        "epochs_run": epochs, "best_epoch": best + 1, "seconds": seconds,
        "train_events": len(tr), "val_events": len(va),
        "train_events_per_s": len(tr) * epochs / seconds,
        "loss": [float(v) for v in hist.history["loss"]],
        "val_loss": [float(v) for v in hist.history["val_loss"]],
        "val_accuracy": float(hist.history["val_binary_accuracy"][best]),
        "signal_fraction_train": {"target_1": float(sample.label[tr][y_tr > 0.5].mean()),
                                  "target_0": float(sample.label[tr][y_tr < 0.5].mean())},
        "parameters": int(net.count_params()), "config": to_dict(tc),
    }
    lab = {"name": labelling}
    if labelling == "cwola":
        lab.update(fraction=fraction, reference_fraction=cfg.cwola.reference_fraction)
    data_info = {"file": str(sample.path), "mu": sample.mu, "events": len(sample),
                 "fingerprint": sample.fingerprint(),
                 "split": {"seed": tc.seed, "val_fraction": tc.val_fraction,
                           "test_fraction": tc.test_fraction,
                           "max_train_events": tc.max_train_events}}
    with atomic.atomic_dir(out) as tmp:
        artifact.write(tmp, net=net, architecture=architecture, labelling=lab,
                       n_tracks=cfg.selection.n_tracks, normalisation=norm, models=cfg.models,
                       data_info=data_info, training=summary)
        from triggerad.provenance import write_provenance

        write_provenance(tmp, "tagger tracks-train", cfg, {
            "data": str(sample.path), "architecture": architecture, "labelling": lab})
    return summary
