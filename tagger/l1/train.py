"""``trigger-ad tagger train configs/tagger-l1.yaml``: train the quantized L1 tagger.

1. Read and check the simulation sample (:mod:`tagger.l1.data`; bad inputs stop here).
2. Quantization-aware training (QKeras) of the binary LLP-vs-SM classifier (logit output,
   binary cross-entropy), the SM jets resampled to the LLP (pT, eta) spectrum, with optional
   magnitude pruning (``pruning``), early stopping on the validation loss (best weights kept).
3. The fixed-point graph (:func:`triggerad.fixedpoint.from_keras` with ``fixed_point``): the
   integer logit ``logit_q`` the firmware computes bit for bit.
4. The working point: the cut on ``logit_q`` for ``training.working_point_mistag`` (1e-3) of the
   validation udsg jets, written to ``MODEL/threshold.json`` (the firmware's tag bit).
5. The model folder, atomically (:mod:`tagger.l1.artifact`).

No c-tau parametrisation: an L1 trigger has no lifetime hypothesis to feed in, so one model is
trained on LLP jets of every c-tau of the sample.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tagger.l1.model import L1ModelConfig, PruningConfig
from tagger.pipeline import ResamplingConfig
from tagger.trainsample import TaggerDataConfig
from triggerad import config as tconfig
from triggerad.errors import NonFiniteError
from triggerad.fixedpoint import FixedPointConfig

log = logging.getLogger(__name__)

COMMAND = "tagger train"
#: ``kind`` of an L1 tagger config (how ``trigger-ad tagger train`` recognises one).
CONFIG_KIND = "l1_llp_tagger"


@dataclass
class L1TrainingConfig:
    """The ``training`` section.

    Attributes
    ----------
    epochs, batch_size, patience, seed : int
        Maximum epochs, jets per step, early-stopping patience (epochs, on the validation loss,
        counted once pruning has reached its final sparsity), seed.
    learning_rate : float
        Adam learning rate.
    working_point_mistag : float
        udsg mistag of the stored working point (``threshold.json``).
    """

    epochs: int = 30
    batch_size: int = 512
    learning_rate: float = 0.003
    patience: int = 5
    seed: int = 42
    working_point_mistag: float = 1e-3

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "patience"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, found {getattr(self, name)!r}")
        if self.learning_rate <= 0 or not 0 < self.working_point_mistag < 1:
            raise ValueError(f"learning_rate must be > 0 and working_point_mistag in (0, 1), "
                             f"found {self.learning_rate!r}, {self.working_point_mistag!r}")


def _l1_fixed_point() -> FixedPointConfig:
    return FixedPointConfig(input="ap_fixed<10,4,AP_RND_CONV,AP_SAT>", layers={
        "pool": {"result": "ap_ufixed<10,4,AP_RND_CONV,AP_SAT>"}})


@dataclass
class L1TaggerConfig:
    """An L1 tagger config: ``kind`` and the sections ``data``, ``model``, ``pruning``,
    ``training``, ``resampling``, ``fixed_point`` (the firmware's input type and accumulator
    types; ``normalised``, ``norm_constants_bits`` and ``score`` do not apply: the inputs are
    the fixed L1 features, the score is the logit layer's result type)."""

    kind: str = CONFIG_KIND
    data: TaggerDataConfig = field(default_factory=TaggerDataConfig)
    model: L1ModelConfig = field(default_factory=L1ModelConfig)
    pruning: PruningConfig = field(default_factory=PruningConfig)
    training: L1TrainingConfig = field(default_factory=L1TrainingConfig)
    resampling: ResamplingConfig = field(default_factory=ResamplingConfig)
    fixed_point: FixedPointConfig = field(default_factory=_l1_fixed_point)

    def __post_init__(self) -> None:
        if self.kind != CONFIG_KIND:
            raise ValueError(f"kind must be {CONFIG_KIND!r}, found {self.kind!r}")
        if self.pruning.enabled and self.pruning.end_epoch >= self.training.epochs:
            raise ValueError(f"pruning.end_epoch ({self.pruning.end_epoch}) must be smaller "
                             f"than training.epochs ({self.training.epochs})")


def is_l1_config(path) -> bool:
    """True when the YAML file (or packaged name) ``path`` is an L1 tagger config."""
    data = tconfig.read_yaml(tconfig.resolve_config(path))
    return isinstance(data, dict) and data.get("kind") == CONFIG_KIND


def load_config(path, overrides: dict | None = None) -> L1TaggerConfig:
    """Load an L1 tagger config from a file or a packaged name (``tagger-l1-fast``)."""
    return tconfig.load(L1TaggerConfig, tconfig.resolve_config(path), overrides)


def working_point(logit_q: np.ndarray, label: np.ndarray, mistag: float) -> dict:
    """The cut on ``logit_q`` for ``mistag`` of the udsg jets among ``label`` (udsg only)."""
    from tagger import metrics as tm

    udsg = tm.background_mask(label, "udsg")
    row = tm.efficiency_at_mistag(logit_q[label == 0], logit_q[udsg], mistag)
    return {"value": row["cut"], "fpr": mistag, "achieved_fpr": row["mistag"],
            "efficiency": row["efficiency"], "n_background": row["n_background"],
            "limited": row["limited"]}


def _fit(cfg: L1TaggerConfig, data: dict, progress: bool):
    """Train; return the stripped network and the Keras history."""
    import tensorflow as tf
    from tensorflow import keras

    from tagger.l1 import data as l1data
    from tagger.l1.model import build_l1_tagger, prunable, strip
    from triggerad.training import distribution_strategy, progress_callback

    t, p = cfg.training, cfg.pruning
    rng = np.random.default_rng(t.seed)
    train, val = data["train"], data["val"]
    rows, weights = l1data.training_rows(train, cfg.resampling, rng)
    steps = max(1, -(-len(rows) // t.batch_size))
    with distribution_strategy().scope():
        net = build_l1_tagger(cfg.model)
        if p.enabled:
            net = prunable(net, p, steps)
        net.compile(optimizer=keras.optimizers.Adam(t.learning_rate),
                    loss=keras.losses.BinaryCrossentropy(from_logits=True),
                    weighted_metrics=[keras.metrics.BinaryAccuracy(threshold=0.0)])
    start = p.end_epoch if p.enabled else 0
    callbacks = [keras.callbacks.EarlyStopping(patience=t.patience, restore_best_weights=True,
                                               start_from_epoch=start)]
    if p.enabled:
        import tensorflow_model_optimization as tfmot

        callbacks.append(tfmot.sparsity.keras.UpdatePruningStep())
    if progress:
        callbacks.append(progress_callback(t.epochs, "train l1_llp_tagger",
                                           keys=("loss", "val_loss")))
    tf.keras.utils.set_random_seed(t.seed)
    history = net.fit(train.x[rows], train.y[rows], sample_weight=weights,
                      batch_size=t.batch_size, epochs=t.epochs, shuffle=True,
                      validation_data=(val.x, val.y), callbacks=callbacks, verbose=0).history
    return (strip(net) if p.enabled else net), history


def train(cfg: L1TaggerConfig, out: str | Path, *, extra: dict | None = None,
          progress: bool = True) -> dict:
    """Train the L1 tagger and write the model folder ``out`` (module docstring).

    Returns
    -------
    dict
        Summary: jets, epochs, validation loss, sparsity, MACs, bits, working point.
    """
    import tensorflow as tf

    from tagger.l1 import artifact
    from tagger.l1 import data as l1data
    from tagger.l1.model import macs
    from triggerad import atomic
    from triggerad.fixedpoint import from_keras
    from triggerad.provenance import write_provenance

    t0 = time.perf_counter()
    tf.keras.utils.set_random_seed(cfg.training.seed)
    data = l1data.load(cfg.data, cfg.model.n_candidates, progress=progress)
    log.info("training l1_llp_tagger on %d jets (%d validation)", len(data["train"].label),
             len(data["val"].label))
    net, history = _fit(cfg, data, progress)
    if not np.all(np.isfinite(history["val_loss"])):
        raise NonFiniteError(f"training diverged (validation loss {history['val_loss']}); lower "
                             "training.learning_rate or check the inputs of data.simulation")
    graph = from_keras(net, cfg.fixed_point)
    val = data["val"]
    logit = graph.value(graph.outputs[0], graph(val.x)[0]).ravel()
    wp = working_point(logit, val.label, cfg.training.working_point_mistag)
    kernels = [w for layer in net.layers if type(layer).__name__ in ("QConv1D", "QDense")
               for w in [np.asarray(layer.kernel_quantizer_internal(layer.kernel))]]
    zero = sum(int(np.sum(k == 0)) for k in kernels) / sum(k.size for k in kernels)
    loss = np.asarray(history["val_loss"])
    summary = {
        "jets": data["scan"].counts,
        "epochs_run": len(loss),
        "best_epoch": int(np.argmin(loss)) + 1,
        "val_loss": float(np.min(loss)),
        "weight_sparsity": round(zero, 4),
        "macs": macs(cfg.model),
        "weight_bits": cfg.model.weight_bits, "activation_bits": cfg.model.activation_bits,
        "working_point": wp,
    }
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    with atomic.atomic_dir(out) as tmp:
        artifact.write_artifact_files(tmp, net=net, graph=graph, config=tconfig.to_dict(cfg),
                                      data_info=data["data_info"],
                                      ctau_range_mm=data["scan"].ctau_range_mm, metrics=summary)
        artifact.write_working_point(tmp, graph, wp)
        write_provenance(tmp, COMMAND, cfg, {**(extra or {}), "summary": summary})
    return summary
