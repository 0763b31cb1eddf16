"""``trigger-ad tagger train``: train the LLP tagger (with or without domain adaptation).

1. Resolve the simulation and (with domain adaptation) the shifted-simulation files and read
   them once (:func:`tagger.trainsample.scan`): schema, NaN/inf, class counts, c-tau range,
   fingerprint, normalisation sample. Every bad input stops here, before any output exists.
2. Fit the normalisation on the training jets.
3. Train with Keras ``fit`` on the ``tf.data`` pipeline (:mod:`tagger.pipeline`), the
   domain-adversarial step (:mod:`tagger.dann`) and the schedule (:mod:`tagger.schedule`):
   TensorBoard logs in ``MODEL/logs``, best weights in ``MODEL/checkpoints``, early stopping on
   the validation class loss (counted from phase 2 with domain adaptation), a progress bar.
4. Write the model folder atomically (:mod:`tagger.artifact`).

Runs under ``tf.distribute.MirroredStrategy`` with several GPUs, on the default device (GPU or
CPU) otherwise (:func:`triggerad.training.distribution_strategy`).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

from tagger.model import ModelConfig
from tagger.pipeline import ResamplingConfig
from tagger.trainsample import TaggerDataConfig
from triggerad import config as tconfig
from triggerad.errors import ConfigError, InputFileError

log = logging.getLogger(__name__)

COMMAND = "tagger train"


@dataclass
class TaggerTrainingConfig:
    """The ``training`` section (schedule of arXiv:1912.12238, :mod:`tagger.schedule`).

    Attributes
    ----------
    epochs : int
        Maximum epochs (both phases).
    class_only_epochs : int
        Phase 1: epochs of the class branch alone.
    domain_adaptation : bool
        Phase 2 (class + domain) after phase 1; false: class branch only (``--no-da``).
    batch_size : int
        Simulation jets drawn per batch (before resampling).
    domain_batch_size : int
        Shifted-simulation jets per batch (and as many simulation jets) for the domain loss.
    steps_per_epoch : int or None
        Batches per epoch; None: training-split labelled jets / batch_size.
    learning_rate : float
        alpha0 of ``alpha_n = alpha0 / (1 + kappa n)`` (Adam).
    lr_decay : float
        kappa.
    grl_lambda : float
        lambda0 of ``lambda_n = lambda0 [2 / (1 + exp(-gamma n)) - 1]``.
    grl_gamma : float
        gamma (0.2).
    patience : int
        Early-stopping patience (epochs) on the validation class loss.
    seed : int
        Seed of numpy, TensorFlow, Python and the pipeline.
    """

    epochs: int = 40
    class_only_epochs: int = 10
    domain_adaptation: bool = True
    batch_size: int = 10_000
    domain_batch_size: int = 5_000
    steps_per_epoch: int | None = None
    learning_rate: float = 0.01
    lr_decay: float = 0.1
    grl_lambda: float = 30.0
    grl_gamma: float = 0.2
    patience: int = 5
    seed: int = 42

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "domain_batch_size", "patience"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, found {getattr(self, name)!r}")
        if self.steps_per_epoch is not None and self.steps_per_epoch <= 0:
            raise ValueError(f"steps_per_epoch must be positive or null, found "
                             f"{self.steps_per_epoch!r}")
        if self.class_only_epochs < 0 or self.learning_rate <= 0 or self.lr_decay < 0:
            raise ValueError("class_only_epochs and lr_decay must be >= 0 and learning_rate > 0, "
                             f"found {self.class_only_epochs!r}, {self.lr_decay!r}, "
                             f"{self.learning_rate!r}")
        if self.domain_adaptation and self.class_only_epochs >= self.epochs:
            raise ValueError(
                f"with domain_adaptation, class_only_epochs ({self.class_only_epochs}) must be "
                f"smaller than epochs ({self.epochs}): phase 2 would never start; raise epochs "
                "(--epochs), lower class_only_epochs, or train without domain adaptation "
                "(--no-da)")


@dataclass
class TaggerTrainConfig:
    """A tagger training config: sections ``data``, ``model``, ``training``, ``resampling``."""

    data: TaggerDataConfig = field(default_factory=TaggerDataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TaggerTrainingConfig = field(default_factory=TaggerTrainingConfig)
    resampling: ResamplingConfig = field(default_factory=ResamplingConfig)

    def __post_init__(self) -> None:
        if self.data.shuffle_buffer < self.training.batch_size:
            raise ValueError(f"data.shuffle_buffer ({self.data.shuffle_buffer}) must be >= "
                             f"training.batch_size ({self.training.batch_size})")


def load_config(path, overrides: dict | None = None) -> TaggerTrainConfig:
    """Load a tagger training config from a file or a packaged name (``tagger-train-fast``)."""
    return tconfig.load(TaggerTrainConfig, tconfig.resolve_config(path), overrides)


def prepare(cfg: TaggerTrainConfig, *, progress: bool = False) -> dict:
    """Resolve and read the samples once; return what training needs (module docstring, 1-2).

    Raises
    ------
    InputFileError, SchemaMismatchError, NonFiniteError, StatisticsError, ConfigError
        On a missing file (the domain sample with domain adaptation on), another schema,
        NaN/inf inputs, an empty class or a domain sample holding simulation jets.
    """
    from tagger import inputs as tin
    from tagger import trainsample as ts

    d, t = cfg.data, cfg.training
    sim_files = ts.resolve(d, d.simulation, "simulation")
    dom_files: list[str] = []
    if t.domain_adaptation:
        if not d.domain:
            raise ConfigError("data.domain is empty but training.domain_adaptation is on: list "
                              "the shifted-simulation files, or train with --no-da")
        try:
            dom_files = ts.resolve(d, d.domain, "domain")
        except InputFileError as err:
            raise InputFileError(f"{err}; domain adaptation needs the shifted-simulation "
                                 "(data-like) sample: generate it (domain.enabled) or train "
                                 "with --no-da") from err
    rd = ts.readers(d, sim_files + dom_files)
    sim = ts.scan(d, sim_files, rd, norm_jets=d.normalisation_jets, seed=t.seed,
                  progress=progress)
    ts.check_simulation(sim)
    dom = None
    if dom_files:
        dom = ts.scan(d, dom_files, rd, progress=progress)
        ts.check_domain(dom)
    sizes = sim.norm_sample.sizes
    norm = tin.fit_normalisation(sim.norm_sample)
    sim.norm_sample = None   # not kept through training: memory is the shuffle buffers'
    data_info = {"simulation": sim.describe(d.reader),
                 "domain": dom.describe(d.reader) if dom else None,
                 "validation_fraction": d.validation_fraction}
    return {"sim": sim, "dom": dom, "readers": rd, "sizes": sizes, "norm": norm,
            "data_info": data_info}


def streams(cfg: TaggerTrainConfig, prep: dict):
    """The :class:`tagger.pipeline.Streams` of prepared samples."""
    from tagger.pipeline import ChunkCache, Streams

    d = cfg.data
    return Streams(
        readers=prep["readers"], sim_chunks=prep["sim"].chunks,
        dom_chunks=prep["dom"].chunks if prep["dom"] else [], norm=prep["norm"],
        edges=cfg.resampling, batch_size=cfg.training.batch_size,
        domain_batch_size=cfg.training.domain_batch_size,
        shuffle_buffer=cfg.data.shuffle_buffer, validation_fraction=cfg.data.validation_fraction,
        read_workers=d.read_workers, interleave=d.interleave_chunks,
        cache=ChunkCache(int(d.cache_mb * 2**20)) if d.cache_mb > 0 else None)


def build_trainer(cfg: TaggerTrainConfig, sizes: dict[str, int]):
    """The network and its domain-adversarial wrapper, compiled (Adam), under the strategy."""
    from tensorflow import keras

    from tagger.dann import domain_adversarial_model
    from tagger.model import build_tagger
    from triggerad.training import distribution_strategy

    with distribution_strategy().scope():
        net = build_tagger(cfg.model, sizes)
        trainer = domain_adversarial_model(net)
        trainer.compile(optimizer=keras.optimizers.Adam(cfg.training.learning_rate))
    return net, trainer


def schedule_of(cfg: TaggerTrainConfig):
    """The :class:`tagger.schedule.Schedule` of the ``training`` section."""
    from tagger.schedule import Schedule

    t = cfg.training
    return Schedule(alpha0=t.learning_rate, kappa=t.lr_decay, lambda0=t.grl_lambda,
                    gamma=t.grl_gamma, class_only_epochs=t.class_only_epochs,
                    domain_adaptation=t.domain_adaptation)


def train(cfg: TaggerTrainConfig, out: str | Path, *, extra: dict | None = None,
          progress: bool = True) -> dict:
    """Train the tagger and write the model folder ``out`` (module docstring).

    Returns
    -------
    dict
        Summary: jets per class and split, epochs run, best epoch, validation class loss and
        accuracy there, last domain loss, training jets/s, wall time.
    """
    import numpy as np
    import tensorflow as tf
    from tensorflow import keras

    from tagger import artifact
    from tagger.dann import best_weights_callback
    from tagger.model import grl_layer
    from tagger.pipeline import dataset
    from tagger.schedule import schedule_callback
    from triggerad import atomic
    from triggerad.provenance import write_provenance
    from triggerad.training import progress_callback

    t0 = time.perf_counter()
    t = cfg.training
    tf.keras.utils.set_random_seed(t.seed)
    prep = prepare(cfg, progress=progress)
    sim = prep["sim"]
    n_train = sum(v for k, v in sim.counts["train"].items() if k != "unlabelled")
    steps = t.steps_per_epoch or max(1, math.ceil(n_train / t.batch_size))
    s = streams(cfg, prep)
    errors: list = []
    da = t.domain_adaptation
    train_ds = dataset(s, prep["sizes"], split="train", seed=t.seed, domain=da, errors=errors)
    val_ds = dataset(s, prep["sizes"], split="val", seed=t.seed + 1, domain=da, errors=errors)
    net, trainer = build_trainer(cfg, prep["sizes"])
    log.info("training llp_tagger on %d labelled jets (%d steps of %d per epoch), domain "
             "adaptation %s", n_train, steps, t.batch_size, "on" if da else "off")

    with atomic.atomic_dir(out) as tmp:
        (tmp / "checkpoints").mkdir()
        callbacks = [
            schedule_callback(schedule_of(cfg), optimizer=trainer.optimizer,
                              grl=grl_layer(net), domain_weight=trainer.domain_weight),
            best_weights_callback(patience=t.patience,
                                  start_epoch=t.class_only_epochs if da else 0,
                                  checkpoint=str(tmp / "checkpoints" / "tagger.best.weights.h5")),
            keras.callbacks.TensorBoard(log_dir=str(tmp / "logs"), histogram_freq=0),
        ]
        if progress:
            callbacks.append(progress_callback(
                t.epochs, f"train llp_tagger{'' if da else ' (no DA)'}",
                keys=("class_loss", "val_class_loss", "domain_loss", "grl_lambda")))
        t_fit = time.perf_counter()
        try:
            history = trainer.fit(train_ds, epochs=t.epochs, steps_per_epoch=steps,
                                  validation_data=val_ds, callbacks=callbacks, verbose=0).history
        except (ValueError, tf.errors.OpError):
            if errors:  # the pipeline's own error, not Keras' "empty logs" that follows it
                raise errors[0] from None
            raise
        fit_seconds = time.perf_counter() - t_fit
        if errors:
            raise errors[0]
        val = np.asarray(history.get("val_class_loss", [np.nan]))
        first = t.class_only_epochs if da else 0
        best = first + int(np.nanargmin(val[first:])) if len(val) > first else len(val) - 1
        epochs_run = len(history["loss"])
        summary = {
            "domain_adaptation": da,
            "jets": sim.counts,
            "domain_jets": (sum(prep["dom"].counts["train"].values()) if prep["dom"] else 0),
            "epochs_run": epochs_run,
            "steps_per_epoch": steps,
            "best_epoch": best + 1,
            "first_epoch_class_loss": float(history["class_loss"][0]),
            "class_loss": float(history["class_loss"][best]),
            "val_class_loss": float(val[best]),
            "val_class_accuracy": float(history["val_class_accuracy"][best]),
            "last_domain_loss": float(history["domain_loss"][-1]),
            "val_domain_loss": float(history["val_domain_loss"][best]),
            "train_jets_per_second": round(epochs_run * steps * t.batch_size / fit_seconds, 1),
        }
        summary["seconds"] = round(time.perf_counter() - t0, 2)
        artifact.write_artifact_files(
            tmp, net=net, sizes=prep["sizes"], normalisation=prep["norm"],
            ctau_range_mm=sim.ctau_range_mm, config=tconfig.to_dict(cfg),
            data_info=prep["data_info"], domain_adaptation=da, metrics=summary)
        write_provenance(tmp, COMMAND, cfg, {**(extra or {}), "summary": summary})
    return summary
