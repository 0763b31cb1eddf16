"""The L1 tagger network: a quantized TOoLLiP-like model (QKeras), optionally pruned.

``candidates`` (n, 10, 14) -> QConv1D(10, kernel 1) -> quantized ReLU -> QConv1D(10, kernel 1)
-> quantized ReLU -> GlobalAveragePooling1D -> QDense(10) -> quantized ReLU -> QDense(1): the
LLP logit (layer ``score``). Every weight and bias is ``quantized_bits(weight_bits,
weight_integer, alpha=1)``, every activation ``quantized_relu(activation_bits,
activation_integer)``: the types hls4ml and :mod:`triggerad.fixedpoint` use follow from them
(``ap_fixed<weight_bits, weight_integer + 1>``, ``ap_ufixed<activation_bits,
activation_integer>``). Pruning (``tensorflow-model-optimization``, magnitude pruning to
``pruning.sparsity`` of the weights of every QConv1D/QDense layer) is applied during training
(:mod:`tagger.l1.train`) and stripped before the model is saved.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tagger.l1.features import FEATURES, N_CANDIDATES

#: Name of the logit layer (the firmware's ``score``).
SCORE_LAYER = "score"


@dataclass
class L1ModelConfig:
    """The ``model`` section of an L1 tagger config.

    Attributes
    ----------
    n_candidates : int
        Leading candidates per jet.
    conv_filters : list of int
        Filters of the pointwise QConv1D layers.
    dense : list of int
        Units of the hidden QDense layers after the pooling.
    weight_bits, weight_integer : int
        ``quantized_bits`` of every weight and bias (integer bits without the sign).
    activation_bits, activation_integer : int
        ``quantized_relu`` of every hidden activation.
    """

    n_candidates: int = N_CANDIDATES
    conv_filters: list[int] = field(default_factory=lambda: [10, 10])
    dense: list[int] = field(default_factory=lambda: [10])
    weight_bits: int = 8
    weight_integer: int = 1
    activation_bits: int = 10
    activation_integer: int = 4

    def __post_init__(self) -> None:
        if self.n_candidates < 1:
            raise ValueError(f"n_candidates must be >= 1, found {self.n_candidates!r}")
        for name in ("conv_filters", "dense"):
            sizes = getattr(self, name)
            if not sizes or any(s <= 0 for s in sizes):
                raise ValueError(f"{name} must be a non-empty list of positive sizes, found "
                                 f"{sizes!r}")
        if not 2 <= self.weight_bits <= 16 or not 0 <= self.weight_integer < self.weight_bits:
            raise ValueError(f"weight_bits must be in [2, 16] and weight_integer in [0, "
                             f"weight_bits), found {self.weight_bits!r}, {self.weight_integer!r}")
        if not 2 <= self.activation_bits <= 18 or not (
                0 <= self.activation_integer <= self.activation_bits):
            raise ValueError(f"activation_bits must be in [2, 18] and activation_integer in [0, "
                             f"activation_bits], found {self.activation_bits!r}, "
                             f"{self.activation_integer!r}")


@dataclass
class PruningConfig:
    """The ``pruning`` section.

    Attributes
    ----------
    enabled : bool
        Magnitude pruning during training.
    sparsity : float
        Final fraction of zero weights of every QConv1D/QDense layer.
    begin_epoch, end_epoch : int
        The sparsity rises (polynomial decay schedule) from 0 at ``begin_epoch`` to ``sparsity``
        at ``end_epoch``; later epochs fine-tune at that sparsity.
    """

    enabled: bool = True
    sparsity: float = 0.5
    begin_epoch: int = 2
    end_epoch: int = 8

    def __post_init__(self) -> None:
        if not 0 <= self.sparsity < 1:
            raise ValueError(f"sparsity must be in [0, 1), found {self.sparsity!r}")
        if not 0 <= self.begin_epoch < self.end_epoch:
            raise ValueError(f"need 0 <= begin_epoch < end_epoch, found {self.begin_epoch!r}, "
                             f"{self.end_epoch!r}")


def quantizers(cfg: L1ModelConfig) -> tuple:
    """(weight quantizer, activation quantizer) of the config."""
    from qkeras import quantized_bits, quantized_relu

    return (quantized_bits(cfg.weight_bits, cfg.weight_integer, alpha=1),
            quantized_relu(cfg.activation_bits, cfg.activation_integer))


def build_l1_tagger(cfg: L1ModelConfig, *, name: str = "l1_llp_tagger"):
    """The QKeras network (module docstring): input ``candidates``, output the logit (n, 1)."""
    from qkeras import QActivation, QConv1D, QDense
    from tensorflow import keras

    wq, aq = quantizers(cfg)
    inp = keras.Input((cfg.n_candidates, len(FEATURES)), name="candidates")
    x = inp
    for i, filters in enumerate(cfg.conv_filters):
        x = QConv1D(filters, 1, kernel_quantizer=wq, bias_quantizer=wq, name=f"conv{i}")(x)
        x = QActivation(aq, name=f"conv{i}_relu")(x)
    x = keras.layers.GlobalAveragePooling1D(name="pool")(x)
    for i, units in enumerate(cfg.dense):
        x = QDense(units, kernel_quantizer=wq, bias_quantizer=wq, name=f"dense{i}")(x)
        x = QActivation(aq, name=f"dense{i}_relu")(x)
    out = QDense(1, kernel_quantizer=wq, bias_quantizer=wq, name=SCORE_LAYER)(x)
    return keras.Model(inp, out, name=name)


def prunable(net, pruning: PruningConfig, steps_per_epoch: int):
    """``net`` with magnitude pruning wrapped around its QConv1D/QDense layers."""
    import tensorflow_model_optimization as tfmot
    from tensorflow import keras

    schedule = tfmot.sparsity.keras.PolynomialDecay(
        initial_sparsity=0.0, final_sparsity=pruning.sparsity,
        begin_step=pruning.begin_epoch * steps_per_epoch,
        end_step=pruning.end_epoch * steps_per_epoch,
        frequency=max(1, min(100, steps_per_epoch // 2)))  # masks update on small samples too

    def wrap(layer):
        if type(layer).__name__ in ("QConv1D", "QDense"):
            return tfmot.sparsity.keras.prune_low_magnitude(layer, pruning_schedule=schedule)
        return layer

    return keras.models.clone_model(net, clone_function=wrap)


def strip(net):
    """The network without the pruning wrappers (pruned weights stay 0)."""
    import tensorflow_model_optimization as tfmot

    return tfmot.sparsity.keras.strip_pruning(net)


def macs(cfg: L1ModelConfig) -> int:
    """Multiply-accumulates of one jet."""
    n, f = cfg.n_candidates, len(FEATURES)
    total, width = 0, f
    for filters in cfg.conv_filters:
        total += n * width * filters
        width = filters
    for units in [*cfg.dense, 1]:
        total += width * units
        width = units
    return total
