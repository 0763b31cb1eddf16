"""Training: float VAE (Keras ``fit``), then quantization-aware fine-tuning of the QKeras encoder.

1. Load the background, split it (seeded), compute the raw inputs and fit the normalisation on
   the training split only.
2. Train the float VAE with Adam, EarlyStopping(restore_best_weights) and ReduceLROnPlateau on the
   validation loss; TensorBoard logs in ``MODEL/logs``, best weights in ``MODEL/checkpoints``.
3. QAT by distillation: the QKeras encoder starts from the float encoder's weights and is
   fine-tuned to reproduce the float encoder's ``mu`` and ``logvar`` (MSE). Distillation keeps the
   quantized score a faithful approximation of the float one, needs no decoder and converges in a
   few epochs; the float model stays the reference. The distillation is unweighted (it fits a
   function, not a density).
4. Write the artifact folder atomically (everything, including logs, appears at once).

Runs under ``tf.distribute.MirroredStrategy`` when more than one GPU is visible, on the default
device (GPU or CPU) otherwise. Seeds (Python, numpy, TensorFlow) come from ``training.seed``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from anomaly.model import ModelConfig, QuantizationConfig
from triggerad.config import to_dict
from triggerad.data import DataConfig
from triggerad.errors import StatisticsError
from triggerad.training import distribution_strategy, progress_callback

log = logging.getLogger(__name__)


@dataclass
class TrainingConfig:
    """The ``training`` section.

    Attributes
    ----------
    epochs : int
        Maximum epochs of the float VAE.
    batch_size : int
        Events per gradient step (Cerri: 1000).
    learning_rate : float
        Initial Adam learning rate.
    patience : int
        Early-stopping patience in epochs on the validation loss (Cerri: 20).
    lr_factor : float
        Learning-rate factor on a plateau (Cerri: 0.1).
    lr_patience : int
        Epochs without improvement before the learning rate is reduced.
    min_lr : float
        Lower bound of the learning rate.
    seed : int
        Seed of numpy, TensorFlow and Python's ``random``.
    """

    epochs: int = 200
    batch_size: int = 1000
    learning_rate: float = 1e-3
    patience: int = 20
    lr_factor: float = 0.1
    lr_patience: int = 10
    min_lr: float = 1e-6
    seed: int = 42

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "patience", "lr_patience"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, found {getattr(self, name)!r}")
        for name in ("learning_rate", "min_lr"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0 < value < float("inf")):
                raise ValueError(f"{name} must be a positive finite number, found {value!r}")
        if not 0 < self.lr_factor < 1:
            raise ValueError(f"lr_factor must be in (0, 1), found {self.lr_factor!r}")


@dataclass
class TrainConfig:
    """A training config file: sections ``data``, ``model``, ``training``, ``quantization``."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    quantization: QuantizationConfig = field(default_factory=QuantizationConfig)

    def __post_init__(self) -> None:
        self.quantization.check(self.model, where="quantization")
        norm = self.model.normalisation
        if norm.mode == "fixed" and self.quantization.fixed_point.power_of_two_scales:
            values = {"eta": norm.eta, "phi": norm.phi,
                      **{f"pt.{k}": v for k, v in norm.pt_scales().items()}}
            odd = {k: v for k, v in values.items() if not float(np.log2(v)).is_integer()}
            if odd:
                raise ValueError(
                    f"quantization.fixed_point.power_of_two_scales with model.normalisation.mode "
                    f"fixed needs powers of two as fixed scales, found {odd!r} (e.g. 32, 64)")


def sample_weights(weight: np.ndarray, use_weights: bool, negative: str = "abs", *,
                   power: float = 1.0) -> tuple[np.ndarray, dict]:
    """Per-event loss weights: the event ``weight`` (``|w| ** power``, ``data.weight_power``)
    normalised to mean 1, or all ones.

    Negative weights (NLO generators) cannot weight a loss that is minimised (an event with a
    negative weight would be pushed to an ever worse reconstruction): ``negative="abs"`` uses
    ``|w|``, ``"drop"`` gives them weight 0.

    Returns
    -------
    weights : (n,) float32 array
    treatment : dict
        ``treatment``, ``n_negative`` and ``sum_negative`` (their signed sum), for ``data_info``.
    """
    w = np.asarray(weight, dtype=np.float64)
    neg = w < 0
    treatment = {"treatment": negative if use_weights else "unweighted",
                 "n_negative": int(neg.sum()), "sum_negative": float(w[neg].sum())}
    if not use_weights:
        return np.ones(len(w), dtype=np.float32), treatment
    w = np.abs(w) if negative == "abs" else np.where(neg, 0.0, w)
    if power != 1:
        w = np.where(w > 0, w ** power, 0.0)
    if not w.sum() > 0:
        raise StatisticsError("data: every event weight is zero after the negative-weight "
                              f"treatment {negative!r}; use negative_weights: abs")
    return (w / w.mean()).astype(np.float32), treatment


def _early_stopping(patience: int):
    """EarlyStopping on ``val_loss`` that restores the best epoch's weights also when training
    runs to its last epoch (Keras only restores when it stops early)."""
    from tensorflow import keras

    class EarlyStoppingBest(keras.callbacks.EarlyStopping):
        def on_train_end(self, logs=None):
            super().on_train_end(logs)
            if self.stopped_epoch == 0 and self.best_weights is not None:
                self.model.set_weights(self.best_weights)

    return EarlyStoppingBest(monitor="val_loss", patience=patience, restore_best_weights=True)


def _subset(inputs: dict[str, np.ndarray], idx: np.ndarray) -> dict[str, np.ndarray]:
    return {k: v[idx] for k, v in inputs.items()}


#: A validation loss that grows by more than this factor of (|first epoch's| + 1) has diverged.
DIVERGENCE_FACTOR = 100.0


def check_converged(val_loss: list[float]) -> None:
    """Refuse a training whose validation loss is not finite or has run away.

    Parameters
    ----------
    val_loss : list of float
        Validation loss per epoch.

    Raises
    ------
    TrainingError
        Naming the epochs and values; nothing is written (the model folder is atomic).
    """
    from triggerad.errors import TriggerADError

    losses = np.asarray(val_loss, dtype=float)
    bad = np.flatnonzero(~np.isfinite(losses))
    if bad.size:
        raise TriggerADError(
            f"training diverged: validation loss {losses[bad[0]]!r} at epoch {bad[0] + 1}; lower "
            "training.learning_rate or check the inputs. No model was written"
        )
    first, worst = losses[0], losses.max()
    if worst - first > DIVERGENCE_FACTOR * (abs(first) + 1):
        raise TriggerADError(
            f"training diverged: validation loss rose from {first:.4g} (epoch 1) to {worst:.4g} "
            f"(epoch {int(losses.argmax()) + 1}); lower training.learning_rate. No model was "
            "written"
        )


def fit_vae(cfg: TrainConfig, train: dict, val: dict, w_train, w_val, outdir: Path):
    """Build and train the float VAE; return ``(vae, history dict)``."""
    from tensorflow import keras

    from anomaly import likelihoods
    from anomaly.model import build_vae, families

    bias = None
    if cfg.model.kind == "hlf_vae":
        bias = likelihoods.initial_output_bias(train["t"], families())
    with distribution_strategy().scope():
        vae = build_vae(cfg.model, output_bias=bias)
        vae.compile(
            optimizer=keras.optimizers.Adam(cfg.training.learning_rate), weighted_metrics=[]
        )
    t = cfg.training
    (outdir / "checkpoints").mkdir(parents=True, exist_ok=True)
    callbacks = [
        _early_stopping(t.patience),
        keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss", factor=t.lr_factor, patience=t.lr_patience, min_lr=t.min_lr
        ),
        keras.callbacks.TensorBoard(log_dir=str(outdir / "logs"), histogram_freq=0),
        keras.callbacks.ModelCheckpoint(
            str(outdir / "checkpoints" / "vae.best.weights.h5"), monitor="val_loss",
            save_best_only=True, save_weights_only=True,
        ),
        progress_callback(t.epochs, f"train {cfg.model.kind}"),
    ]
    # Keras drops sample weights when there is no target, so pass a dummy one (unused by the loss)
    y_train, y_val = np.zeros(len(w_train), np.float32), np.zeros(len(w_val), np.float32)
    history = vae.fit(
        train, y_train, sample_weight=w_train, validation_data=(val, y_val, w_val),
        epochs=t.epochs, batch_size=t.batch_size, shuffle=True, callbacks=callbacks, verbose=0,
    )
    return vae, history.history


def fit_quantized_encoder(cfg: TrainConfig, vae, train: dict, val: dict):
    """QAT by distillation of the float encoder; return ``(quantized encoder, history dict)``."""
    from tensorflow import keras

    from anomaly.model import build_quantized_encoder, copy_encoder_weights, encoder_input

    kind = cfg.model.kind
    x_train, x_val = encoder_input(kind, train), encoder_input(kind, val)
    with distribution_strategy().scope():
        qenc = build_quantized_encoder(x_train.shape[1], cfg.model, cfg.quantization)
        copy_encoder_weights(vae.encoder, qenc)
        qenc.compile(optimizer=keras.optimizers.Adam(cfg.quantization.qat_learning_rate), loss="mse")
    y_train = vae.encoder.predict(x_train, batch_size=10_000, verbose=0)
    y_val = vae.encoder.predict(x_val, batch_size=10_000, verbose=0)
    history: dict = {}
    if cfg.quantization.qat_epochs > 0:
        history = qenc.fit(
            x_train, y_train, validation_data=(x_val, y_val), epochs=cfg.quantization.qat_epochs,
            batch_size=cfg.training.batch_size, shuffle=True, verbose=0,
            callbacks=[
                _early_stopping(cfg.training.patience),
                progress_callback(cfg.quantization.qat_epochs, "QAT (distillation)"),
            ],
        ).history
    return qenc, history


def train(cfg: TrainConfig, out: str | Path, extra: dict | None = None) -> dict:
    """Train the float VAE and its quantized encoder and write the model folder ``out``.

    Parameters
    ----------
    cfg : TrainConfig
        The resolved config.
    out : path
        Model folder to create (replaced atomically if it exists).
    extra : dict, optional
        More provenance fields (config file, command-line flags).

    Returns
    -------
    dict
        Summary: events per split, epochs run, train/val losses at the best (restored) epoch,
        QAT distillation MSE,
        correlation of ``mu2`` and ``mu2_q`` on the validation split, wall time.
    """
    import tensorflow as tf

    from anomaly.artifact import raw_inputs, write_artifact_files
    from anomaly.model import fit_normalisation, input_names, prepare_inputs
    from anomaly.quantized import score_graph
    from anomaly.transform import InputTransform
    from triggerad import atomic
    from triggerad import data as d
    from triggerad.provenance import write_provenance

    t0 = time.perf_counter()
    tf.keras.utils.set_random_seed(cfg.training.seed)
    kind = cfg.model.kind
    batch = d.load_sample(
        cfg.data.background, cfg.data.reader, chunk_size=cfg.data.chunk_size,
        max_events=cfg.data.max_events,
    )
    x = raw_inputs(kind, batch, where=", ".join(cfg.data.background))
    idx = d.split_indices(len(batch), cfg.data.fractions, cfg.data.seed)
    mean, scale = fit_normalisation(
        kind, x[idx["train"]], cfg.model.normalisation,
        power_of_two=cfg.quantization.fixed_point.power_of_two_scales)
    transform = InputTransform(cfg.model.input_transform.log1p, input_names(kind), mean, scale)
    x_enc = transform.apply(x)
    if transform.active:  # the encoder normalisation is fitted on the transformed features
        mean, scale = fit_normalisation(
            kind, x_enc[idx["train"]], cfg.model.normalisation,
            power_of_two=cfg.quantization.fixed_point.power_of_two_scales)
    inputs = prepare_inputs(kind, x, mean, scale, transform=transform)
    w, negative = sample_weights(batch.weight, cfg.data.use_weights, cfg.data.negative_weights,
                                 power=cfg.data.weight_power)
    if negative["n_negative"]:
        log.info("%d events with negative weights (sum %.4g): %s", negative["n_negative"],
                 negative["sum_negative"], negative["treatment"])
    train_in, val_in = _subset(inputs, idx["train"]), _subset(inputs, idx["val"])
    n_eff = float(w.sum() ** 2 / np.square(w).sum())
    log.info("training %s on %d events (val %d); effective events of the weighted sample %.0f of %d",
             kind, len(idx["train"]), len(idx["val"]), n_eff, len(w))

    with atomic.atomic_dir(out) as tmp:
        vae, hist = fit_vae(cfg, train_in, val_in, w[idx["train"]], w[idx["val"]], tmp)
        check_converged(hist["val_loss"])
        qenc, qhist = fit_quantized_encoder(cfg, vae, train_in, val_in)
        best = int(np.argmin(hist["val_loss"]))
        summary = {
            "kind": kind,
            "events": {k: int(len(v)) for k, v in idx.items()},
            "epochs_run": len(hist["loss"]),
            "best_epoch": best + 1,
            "first_epoch_loss": float(hist["loss"][0]),
            **{k: float(hist[k][best]) for k in ("loss", "nll", "kl", "val_loss", "val_nll", "val_kl")},
            "qat_epochs_run": len(qhist.get("loss", [])),
            "qat_val_mse": float(np.min(qhist["val_loss"])) if qhist else None,
        }
        summary["mu2_vs_mu2_q_correlation_val"] = _mu2_correlation(
            vae, score_graph(qenc, cfg.quantization.fixed_point, mean, scale), kind, val_in,
            x_enc[idx["val"]])
        summary["seconds"] = round(time.perf_counter() - t0, 2)
        write_artifact_files(
            tmp, vae=vae, quantized_encoder=qenc, mean=mean, scale=scale, config=to_dict(cfg),
            transform=transform,
            data_info={**d.describe(cfg.data.background, cfg.data.reader, cfg.data, batch),
                       "negative_weights": negative},
            metrics=summary,
        )
        write_provenance(tmp, "train", cfg, {**(extra or {}), "summary": summary})
    return summary


def _mu2_correlation(vae, graph, kind: str, val: dict, x_val: np.ndarray) -> float:
    """Pearson correlation of the float ``mu2`` and the fixed-point ``mu2_q`` on the validation split.

    Building the fixed-point graph here also checks, before the model is saved, that the
    quantized encoder has an exact integer version.
    """
    from anomaly.model import encoder_input
    from anomaly.quantized import quantized_scores

    mu = vae.encoder.predict(encoder_input(kind, val), batch_size=10_000, verbose=0)[0]
    a, b = (mu**2).sum(axis=1), quantized_scores(graph, x_val, ["mu2_q"])["mu2_q"]
    if a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])
