"""The anomaly score inside the firmware: normalisation, sum of mu^2 and the trigger bit.

The firmware computes the model's fixed-point graph (:meth:`anomaly.artifact.ModelArtifact.
fixed_graph`, :mod:`triggerad.fixedpoint`) plus the trigger bit. hls4ml converts Keras models, so
:func:`trigger_graph` wraps that graph's steps around the QKeras encoder as Keras layers:

* :class:`Standardise` ``y = Q_norm(Q_in(x) * s + b)`` with the graph's fixed-point ``s = 1/scale``,
  ``b = -mean/scale``. hls4ml converts it to its native ``BatchNormalization`` layer
  (``normalize``: ``res = data * scale + bias``), through a Keras layer handler.
* :class:`SumSquares` ``score = Q_score(sum_i mu_i^2)`` (exact accumulation, one rounding).
* :class:`ThresholdBit` ``bit = score_units > threshold_units`` where ``threshold_units`` is the
  threshold in LSB units of the score type (:func:`triggerad.fixedpoint.threshold_units`).

Their Keras ``call`` evaluates them with :mod:`triggerad.fixedpoint` (float64 in and out), so the
Keras graph stays runnable; the reference the C simulation is checked against is the integer
graph itself. The last two are custom hls4ml layers registered with hls4ml's extension API
(:func:`register_hls4ml_extensions`): Keras handler, hls4ml ``Layer`` class, config/function
templates and the C++ header ``templates/nnet_anomaly_score.h``. No generated file is edited.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import tensorflow as tf
from tensorflow import keras

from triggerad.fixedpoint import FixedGraph, ScaleShift, parse_fixed, threshold_units
from triggerad.fixedpoint import ThresholdBit as IntegerThresholdBit

__all__ = ["CUSTOM_OBJECTS", "SumSquares", "Standardise", "ThresholdBit", "register_hls4ml_extensions",
           "threshold_units", "trigger_graph", "trigger_reference"]

HEADER = Path(__file__).resolve().parent / "templates" / "nnet_anomaly_score.h"
BACKENDS = ("Vivado", "Vitis")
#: Names of the score and trigger-bit layers (in the Keras graph, hls4ml and the integer graph).
SCORE, TRIGGER = "score", "trigger"


class _NumpyLayer(keras.layers.Layer):
    """A float64 Keras layer whose computation is a numpy function (fixed-point evaluation)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("dtype", "float64")
        super().__init__(**kwargs)

    def _numpy(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _out_shape(self, input_shape):
        return input_shape

    def _numpy64(self, a: np.ndarray) -> np.ndarray:
        return self._numpy(a).astype(np.float64)

    def call(self, inputs):
        out = tf.numpy_function(self._numpy64, [inputs], tf.float64)
        out.set_shape(self._out_shape(inputs.shape))
        return out

    def compute_output_shape(self, input_shape):
        return self._out_shape(input_shape)


class Standardise(_NumpyLayer):
    """Fixed-point normalisation ``Q_norm(Q_in(x) * scale + offset)`` (per input feature).

    Parameters
    ----------
    scale, offset : list of float
        Per-feature constants, already on their fixed-point grids (``1/std`` and ``-mean/std``).
    input_type, output_type : str
        HLS types of the raw inputs and of the normalised values.
    scale_type, offset_type : str
        HLS types of the constants.
    """

    def __init__(self, scale, offset, input_type, output_type, scale_type, offset_type, **kwargs):
        super().__init__(**kwargs)
        self.scale_values = [float(v) for v in scale]
        self.offset_values = [float(v) for v in offset]
        self.input_type, self.output_type = input_type, output_type
        self.scale_type, self.offset_type = scale_type, offset_type
        in_t, s_t, b_t = parse_fixed(input_type), parse_fixed(scale_type), parse_fixed(offset_type)
        self._layer = ScaleShift(self.name, "x", in_t, s_t.to_raw(self.scale_values), s_t,
                                 b_t.to_raw(self.offset_values), b_t, parse_fixed(output_type))

    @classmethod
    def from_layer(cls, layer: ScaleShift, name: str) -> Standardise:
        """The Keras twin of the integer normalisation ``layer``."""
        return cls(layer.scale_type.from_raw(layer.scale), layer.bias_type.from_raw(layer.bias),
                   layer.input_type.hls(), layer.result.hls(), layer.scale_type.hls(),
                   layer.bias_type.hls(), name=name)

    def build(self, input_shape):
        n = len(self.scale_values)
        init = keras.initializers.Constant
        self.norm_scale = self.add_weight("norm_scale", (n,), initializer=init(self.scale_values),
                                          trainable=False, dtype="float64")
        self.norm_offset = self.add_weight("norm_offset", (n,), initializer=init(self.offset_values),
                                           trainable=False, dtype="float64")
        super().build(input_shape)

    def _numpy(self, x):
        layer = self._layer
        return layer.result.from_raw(layer.forward(layer.input_type.to_raw(x)))

    def get_config(self):
        return {**super().get_config(), "scale": self.scale_values, "offset": self.offset_values,
                "input_type": self.input_type, "output_type": self.output_type,
                "scale_type": self.scale_type, "offset_type": self.offset_type}


class SumSquares(_NumpyLayer):
    """``Q_score(sum of squares over the last axis)``: the AXOL1TL-style anomaly score."""

    def __init__(self, score_type: str, **kwargs):
        super().__init__(**kwargs)
        self.score_type = score_type
        self._score = parse_fixed(score_type)

    def _out_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (1,)

    def _numpy(self, x):
        return self._score.quantize(np.sum(np.square(x), axis=-1, keepdims=True))

    def get_config(self):
        return {**super().get_config(), "score_type": self.score_type}


class ThresholdBit(_NumpyLayer):
    """The trigger bit: 1 where the score (in LSB units of ``score_type``) exceeds the threshold."""

    def __init__(self, threshold: float, score_type: str, **kwargs):
        super().__init__(**kwargs)
        self.threshold, self.score_type = float(threshold), score_type
        self._score = parse_fixed(score_type)
        self.units = threshold_units(self.threshold, self._score)

    def _numpy(self, x):
        return (self._score.to_raw(x) > self.units).astype(np.float64)

    def get_config(self):
        return {**super().get_config(), "threshold": self.threshold, "score_type": self.score_type}


CUSTOM_OBJECTS = {"Standardise": Standardise, "SumSquares": SumSquares, "ThresholdBit": ThresholdBit}


def node_index(model: keras.Model, layer) -> int:
    """Index of the call of ``layer`` that belongs to ``model``'s graph (layers may be shared)."""
    for i in range(len(layer.inbound_nodes)):
        if f"{layer.name}_ib-{i}" in model._network_nodes:
            return i
    return 0


def apply_layers(model: keras.Model, inputs: list) -> list:
    """Call the layers of a functional/Sequential ``model`` on new tensors (no nested model).

    The layers themselves are reused (same weights, same names), so the new graph is flat - as
    hls4ml needs - and per-layer precisions keep referring to the model's layer names.
    """
    from tensorflow.python.util import nest

    tensors = {id(t): new for t, new in zip(model.inputs, inputs, strict=True)}
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        node = layer.inbound_nodes[node_index(model, layer)]
        args = [tensors[id(t)] for t in nest.flatten(node.keras_inputs)]
        outs = layer(args[0] if len(args) == 1 else args)
        tensors.update(zip(map(id, nest.flatten(node.outputs)), nest.flatten(outs), strict=True))
    return [tensors[id(t)] for t in model.outputs]


def trigger_reference(graph: FixedGraph, threshold: float) -> FixedGraph:
    """The integer reference of the firmware: ``graph`` (ending in ``score``) plus the trigger bit."""
    score = graph.layer(SCORE)
    return graph.extend(IntegerThresholdBit(TRIGGER, SCORE, threshold_units(threshold, score.result)))


def trigger_graph(encoder: keras.Model, graph: FixedGraph, threshold: float) -> keras.Model:
    """The firmware graph as a Keras model: raw inputs -> [score, trigger bit], for hls4ml.

    Parameters
    ----------
    encoder : keras.Model
        QKeras encoder, normalised inputs -> mu (the layers of ``graph`` between the
        normalisation and the score, with the same names).
    graph : FixedGraph
        The model's fixed-point graph (input, normalisation, encoder, ``score``): the source of
        the normalisation constants and of every type.
    threshold : float
        Score threshold (same units as the score, sum of mu^2).

    Returns
    -------
    keras.Model
        Layers ``<input>`` -> ``standardise`` -> the encoder's layers (same objects, same names)
        -> ``score`` -> ``trigger``.
    """
    (source,) = graph.inputs
    norm = next(layer for layer in graph.layers if isinstance(layer, ScaleShift))
    score_type = graph.layer(SCORE).result.hls()
    inp = keras.Input(encoder.input_shape[1:], name=source.name)
    x = Standardise.from_layer(norm, norm.name)(inp)
    mu = apply_layers(encoder, [x])[0]
    score = SumSquares(score_type, name=SCORE)(mu)
    bit = ThresholdBit(threshold, score_type, name=TRIGGER)(score)
    return keras.Model(inp, [score, bit], name="anomaly_trigger")


# --------------------------------------------------------------------------------------------
# hls4ml extension: Keras handlers, layer classes, templates, C++ source
# --------------------------------------------------------------------------------------------

def _hls4ml_classes():
    """Build the hls4ml layer and template classes (hls4ml imported lazily)."""
    from hls4ml.backends.template import FunctionCallTemplate, LayerConfigTemplate
    from hls4ml.model.attributes import Attribute
    from hls4ml.model.layers import Layer

    class HSumSquares(Layer):
        _expected_attributes = [Attribute("n_in")]

        def initialize(self):
            self.add_output_variable([1])

    class HThresholdBit(Layer):
        _expected_attributes = [Attribute("threshold_units"), Attribute("score_signed")]

        def initialize(self):
            self.add_output_variable([1])

    class SumSquaresConfig(LayerConfigTemplate):
        def __init__(self):
            super().__init__(HSumSquares)

        def format(self, node):
            n_in = node.get_attr("n_in")
            return (f"struct config{node.index} {{\n    static const unsigned n_in = {n_in};\n"
                    f"    static const unsigned log2_n = {max(1, math.ceil(math.log2(n_in)))};\n}};\n")

    class ThresholdConfig(LayerConfigTemplate):
        def __init__(self):
            super().__init__(HThresholdBit)

        def format(self, node):
            signed = "true" if node.get_attr("score_signed") else "false"
            return (f"struct config{node.index} {{\n    static const long long "
                    f"threshold_units = {node.get_attr('threshold_units')}LL;\n"
                    f"    static const bool score_signed = {signed};\n}};\n")

    def function_template(layer_cls, function):
        class Function(FunctionCallTemplate):
            def __init__(self):
                super().__init__(layer_cls, include_header=[f"nnet_utils/{HEADER.name}"])

            def format(self, node):
                p = self._default_function_params(node)
                return (f"nnet::{function}<{p['input_t']}, {p['output_t']}, {p['config']}>"
                        f"({p['input']}, {p['output']});")

        Function.__name__ = f"{layer_cls.__name__}Function"
        return Function

    return {
        "SumSquares": (HSumSquares, SumSquaresConfig, function_template(HSumSquares, "sum_squares")),
        "ThresholdBit": (HThresholdBit, ThresholdConfig,
                         function_template(HThresholdBit, "threshold_bit")),
    }


def _parse_standardise(keras_layer, input_names, input_shapes, data_reader):
    """Keras handler: :class:`Standardise` -> hls4ml's native BatchNormalization (scale, bias)."""
    cfg = keras_layer["config"]
    layer = {"name": cfg["name"], "class_name": "BatchNormalization", "inputs": input_names,
             "n_in": int(np.prod(input_shapes[0][1:])), "n_filt": -1,
             "scale_data": np.asarray(cfg["scale"]), "bias_data": np.asarray(cfg["offset"])}
    return layer, input_shapes[0]


def _parse_sum_squares(keras_layer, input_names, input_shapes, data_reader):
    """Keras handler of :class:`SumSquares`."""
    layer = {"name": keras_layer["config"]["name"], "class_name": "SumSquares",
             "inputs": input_names, "n_in": int(np.prod(input_shapes[0][1:]))}
    return layer, [input_shapes[0][0], 1]


def _parse_threshold(keras_layer, input_names, input_shapes, data_reader):
    """Keras handler of :class:`ThresholdBit`."""
    cfg = keras_layer["config"]
    score_type = parse_fixed(cfg["score_type"])
    units = threshold_units(cfg["threshold"], score_type)
    layer = {"name": cfg["name"], "class_name": "ThresholdBit", "inputs": input_names,
             "threshold_units": units, "score_signed": score_type.signed}
    return layer, [input_shapes[0][0], 1]


_REGISTERED = False


def register_hls4ml_extensions() -> None:
    """Register the score layers with hls4ml (Keras handlers, layers, templates, header). Idempotent."""
    global _REGISTERED
    if _REGISTERED:
        return
    import hls4ml

    hls4ml.converters.register_keras_v2_layer_handler("Standardise", _parse_standardise)
    hls4ml.converters.register_keras_v2_layer_handler("SumSquares", _parse_sum_squares)
    hls4ml.converters.register_keras_v2_layer_handler("ThresholdBit", _parse_threshold)
    for name, (layer_cls, config_cls, function_cls) in _hls4ml_classes().items():
        hls4ml.model.layers.register_layer(name, layer_cls)
        for backend_name in BACKENDS:
            backend = hls4ml.backends.get_backend(backend_name)
            backend.register_template(config_cls)
            backend.register_template(function_cls)
    for backend_name in BACKENDS:
        hls4ml.backends.get_backend(backend_name).register_source(HEADER)
    _REGISTERED = True
