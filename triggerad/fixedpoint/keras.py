"""Build the integer graph of a QKeras model: the types hls4ml would use, set explicitly.

Supported layers (a registry keyed by Keras class name): ``InputLayer``, ``QDense``,
``QConv1D`` with kernel size 1 (pointwise), ``QActivation`` with ``quantized_relu`` or ``relu``,
``Activation``/``ReLU`` (relu, linear), ``GlobalAveragePooling1D``, ``Dropout`` (identity).

Types, per layer:

* weights and biases: from the QKeras ``quantized_bits(bits, integer)`` quantizers, as hls4ml maps
  them: ``ap_fixed<bits, integer + 1>`` (``ap_int<bits>`` when ``bits == integer``); the quantized
  values must be exactly representable (``alpha`` 1, ``keep_negative``);
* ``quantized_relu(bits, integer)``: ``ap_ufixed<bits, integer, AP_RND_CONV, AP_SAT>`` (QKeras
  rounds half to even and clips, so does this type); a float ``relu``: its input type;
* Dense / pointwise Conv1D accumulator and result: ``config.accum`` / ``config.result``, ``auto``
  meaning hls4ml 1.3's exact inference (``InferPrecisionTypes``): ``W = W_w + W_x +
  ceil(log2 n)``, ``I = I_w + I_x + ceil(log2 n)``, widened for the bias;
* ``GlobalAveragePooling1D`` accumulator and result: ``ap_[u]fixed<W + 2e, I + e>`` with
  ``e = ceil(log2 steps)`` for an ``ap_[u]fixed<W, I>`` input, the rule hls4ml applies to
  ``Pooling1D``. (hls4ml 1.3 infers nothing for global pooling and would use the default
  precision, ``ap_fixed<16,6>``, which overflows silently; passing the types explicitly avoids
  it);
* anything in ``config.layers`` overrides the above.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from triggerad.errors import did_you_mean
from triggerad.fixedpoint.config import FixedPointConfig
from triggerad.fixedpoint.graph import FixedGraph
from triggerad.fixedpoint.layers import (
    Activation,
    Dense,
    GlobalAveragePooling1D,
    Input,
    Layer,
    ScaleShift,
)
from triggerad.fixedpoint.types import Fixed, FixedPointError, fixed_covering, parse_fixed


def _log2_ceil(n: int) -> int:
    return math.ceil(math.log2(n)) if n > 1 else 0


def mac_accumulator(x: Fixed, w: Fixed, b: Fixed, n_ops: int) -> Fixed:
    """hls4ml 1.3's exact accumulator/result type of a Dense/Conv layer with ``n_ops`` products."""
    width = w.width + x.width + _log2_ceil(n_ops)
    integer = w.integer + x.integer + _log2_ceil(n_ops)
    signed = w.signed or x.signed
    frac = width - integer
    integer = max(integer + (b.signed and not signed), b.integer + (signed and not b.signed)) + 1
    return Fixed(integer + max(frac, b.frac), integer, signed or b.signed)


def pooling_accumulator(x: Fixed, steps: int) -> Fixed:
    """hls4ml's average-pooling accumulator: ``e = ceil(log2 steps)`` more integer and fraction bits."""
    e = _log2_ceil(steps)
    return Fixed(x.width + 2 * e, x.integer + e, x.signed)


def quantizer_type(quantizer, where: str) -> Fixed:
    """The hls4ml type of a QKeras ``quantized_bits`` weight quantizer (see module docstring)."""
    cls = type(quantizer).__name__
    if cls != "quantized_bits":
        raise FixedPointError(f"{where}: quantizer {cls} has no integer version; use quantized_bits")
    alpha = quantizer.alpha
    if (alpha is not None and (isinstance(alpha, str) or float(alpha) != 1.0)) or (
            not quantizer.keep_negative) or quantizer.use_stochastic_rounding:
        raise FixedPointError(f"{where}: {quantizer} is not supported: use alpha=1, "
                              "keep_negative=True, no stochastic rounding")
    bits, integer = int(quantizer.bits), int(quantizer.integer)
    return Fixed(bits, bits) if bits == integer else Fixed(bits, integer + 1)


def _quantized(layer, attr: str, values: np.ndarray, override: str | None) -> tuple[np.ndarray, Fixed]:
    """Raw values and type of a weight/bias array quantized by ``layer``'s ``attr`` quantizer."""
    where = f"layer {layer.name!r} {attr}"
    quantizer = getattr(layer, f"{attr}_quantizer_internal", None)
    if quantizer is None:
        raise FixedPointError(f"{where}: no QKeras quantizer; a float {attr} has no fixed-point type")
    t = quantizer_type(quantizer, where)
    if override is not None:  # may widen the type; a lossy one would change the trained model
        t = parse_fixed(override, f"{where} override")
    values = np.asarray(quantizer(values), dtype=np.float64)
    raw = t.to_raw(values)
    if not np.array_equal(t.from_raw(raw), values):
        raise FixedPointError(f"{where}: quantized values are not exactly representable in {t.hls()}")
    return raw, t


def _dense(layer, name, source, x: Fixed, cfg: FixedPointConfig, over: dict) -> Layer:
    cls = type(layer).__name__
    pointwise = cls == "QConv1D"
    activation = getattr(layer.activation, "__name__", str(layer.activation))
    if activation != "linear":
        raise FixedPointError(f"layer {name!r}: activation {activation!r} inside {cls}; use a "
                              "separate QActivation layer")
    kernel = np.asarray(layer.kernel)
    if pointwise:
        if tuple(layer.kernel_size) != (1,) or tuple(layer.strides) != (1,) or tuple(
                layer.dilation_rate) != (1,):
            raise FixedPointError(f"layer {name!r}: only pointwise Conv1D (kernel 1, stride 1) is "
                                  f"supported, found kernel {layer.kernel_size}")
        kernel = kernel[0]
    weight, wt = _quantized(layer, "kernel", kernel, over.get("weight"))
    if layer.use_bias:
        bias, bt = _quantized(layer, "bias", np.asarray(layer.bias), over.get("bias"))
    else:
        bias, bt = np.zeros(kernel.shape[1], np.int64), wt
    exact = mac_accumulator(x, wt, bt, kernel.shape[0])
    accum = over.get("accum", cfg.accum)
    result = over.get("result", cfg.result)
    accum = exact if accum == "auto" else parse_fixed(accum, f"layer {name!r} accum")
    result = exact if result == "auto" else parse_fixed(result, f"layer {name!r} result")
    return Dense(name, source, x, weight, wt, bias, bt, accum, result, pointwise=pointwise)


def _relu_type(quantizer, name: str) -> Fixed:
    cls = type(quantizer).__name__
    if cls != "quantized_relu":
        raise FixedPointError(f"layer {name!r}: activation quantizer {cls} has no integer version; "
                              "supported: quantized_relu")
    if quantizer.use_sigmoid or quantizer.negative_slope or quantizer.use_stochastic_rounding or (
            not quantizer.is_quantized_clip):
        raise FixedPointError(f"layer {name!r}: unsupported settings of {quantizer}")
    return Fixed(int(quantizer.bits), int(quantizer.integer), False, "AP_RND_CONV", "AP_SAT")


def _activation(layer, name, source, x: Fixed, cfg, over: dict) -> Layer | None:
    cls = type(layer).__name__
    act = layer.quantizer if cls == "QActivation" else getattr(layer, "activation", None)
    if type(act).__name__ == "quantized_relu":
        function, result = "relu", _relu_type(act, name)
    elif cls == "ReLU":
        if layer.max_value is not None or float(layer.negative_slope) or float(layer.threshold):
            raise FixedPointError(f"layer {name!r}: only a plain ReLU is supported")
        function, result = "relu", x
    else:
        function, result = getattr(act, "__name__", str(act)), x
        if function == "linear":
            return None
    if "result" in over:
        result = parse_fixed(over["result"], f"layer {name!r} result")
    return Activation(name, source, x, function, result)


def _pooling(layer, name, source, x: Fixed, cfg, over: dict) -> Layer:
    if getattr(layer, "data_format", "channels_last") != "channels_last" or getattr(
            layer, "keepdims", False):
        raise FixedPointError(f"layer {name!r}: only channels_last without keepdims is supported")
    steps = int(layer.input_shape[1])
    accum = pooling_accumulator(x, steps)
    accum = parse_fixed(over["accum"], f"layer {name!r} accum") if "accum" in over else accum
    result = parse_fixed(over["result"], f"layer {name!r} result") if "result" in over else accum
    return GlobalAveragePooling1D(name, source, x, steps, accum, result)


def _identity(layer, name, source, x, cfg, over) -> None:
    return None


#: Keras class name -> builder ``(layer, name, source, input type, config, overrides) -> Layer``
#: (None: the layer passes its input through).
BUILDERS: dict[str, Callable] = {
    "QDense": _dense, "QConv1D": _dense, "QActivation": _activation, "Activation": _activation,
    "ReLU": _activation, "GlobalAveragePooling1D": _pooling, "Dropout": _identity,
}


def _inbound(model) -> tuple[list[tuple[str, list[str]]], str, list[str]]:
    """(layer name, inbound layer names) in order, the input layer name and the output names."""
    config = model.get_config()
    if "input_layers" not in config:  # Sequential: a chain
        names = [layer.name for layer in model.layers]
        input_name = model.input_names[0]
        chain = list(zip(names, [[input_name], *[[n] for n in names[:-1]]], strict=True))
        return [(input_name, []), *chain], input_name, [names[-1]]
    if len(config["input_layers"]) != 1:
        raise FixedPointError(f"model {model.name!r}: expected one input, found "
                              f"{len(config['input_layers'])}")
    graph = []
    for spec in config["layers"]:
        inbound = [entry[0] for node in spec["inbound_nodes"] for entry in node]
        if len(inbound) > 1:
            raise FixedPointError(f"layer {spec['name']!r} merges {inbound}; not supported")
        graph.append((spec["name"], inbound))
    return graph, config["input_layers"][0][0], [entry[0] for entry in config["output_layers"]]


def check_power_of_two(values, what: str) -> None:
    """Raise :class:`FixedPointError` unless every value is an exact (positive) power of two."""
    values = np.asarray(values, dtype=np.float64)
    mantissa, _ = np.frexp(values)
    bad = np.flatnonzero(~((values > 0) & (mantissa == 0.5)))
    if bad.size:
        i = int(bad[0])
        raise FixedPointError(f"{what}: entry {i} is {float(values[i])!r}, not an exact power of "
                              f"two ({bad.size} of {values.size} entries are not); retrain with "
                              "power_of_two_scales, or set it to false")


def normalisation_layers(mean, scale, cfg: FixedPointConfig, input_name: str,
                         name: str) -> list[Layer]:
    """The input layer and the fixed-point ``x * (1/scale) + (-mean/scale)`` normalisation.

    Raises
    ------
    FixedPointError
        With ``cfg.power_of_two_scales``, for a scale that is not an exact power of two.
    """
    scale = np.asarray(scale, dtype=np.float64)
    if cfg.power_of_two_scales:
        check_power_of_two(scale, "normalisation scale (power_of_two_scales: true)")
    mult = 1.0 / scale
    offset = -np.asarray(mean, dtype=np.float64) * mult
    mult_t = fixed_covering(mult, cfg.norm_constants_bits)
    offset_t = fixed_covering(offset, cfg.norm_constants_bits)
    x = parse_fixed(cfg.input, "input")
    return [Input(input_name, x),
            ScaleShift(name, input_name, x, mult_t.to_raw(mult), mult_t, offset_t.to_raw(offset),
                       offset_t, parse_fixed(cfg.normalised, "normalised"))]


def from_keras(model, cfg: FixedPointConfig, *, normalisation=None, input_name: str = "objects",
               normalise_name: str = "standardise") -> FixedGraph:
    """The integer graph of a single-input QKeras model under the fixed-point config ``cfg``.

    Parameters
    ----------
    model : keras.Model
        Sequential or functional QKeras model (see the module docstring for the layers).
    cfg : FixedPointConfig
        Input, normalisation, accumulator/result types and per-layer overrides.
    normalisation : (mean, scale), optional
        Prepend the input layer ``input_name`` (type ``cfg.input``) and the normalisation
        ``normalise_name`` (:func:`normalisation_layers`); the model then reads the normalised
        values. Without it, the model's own input layer takes ``cfg.input``.
    input_name, normalise_name : str
        Names of those two layers (as in the firmware graph).

    Raises
    ------
    FixedPointError
        For a layer, quantizer or override without an exact integer version, or a
        ``cfg.layers`` entry naming no layer of the model.
    """
    graph, model_input, outputs = _inbound(model)
    names = [name for name, _ in graph]
    for name in cfg.layers:
        if name not in names:
            raise FixedPointError(f"fixed_point.layers: no layer {name!r} in model {model.name!r}; "
                                  + did_you_mean(name, names))
    layers: list[Layer] = []
    if normalisation is not None:
        layers += normalisation_layers(*normalisation, cfg, input_name, normalise_name)
        alias = {model_input: normalise_name}
    else:
        layers.append(Input(model_input, parse_fixed(cfg.input, "input")))
        alias = {}
    types = {layer.name: layer.result for layer in layers}
    keras_layers = {layer.name: layer for layer in model.layers}
    for name, inbound in graph:
        if name == model_input:
            continue
        layer = keras_layers[name]
        builder = BUILDERS.get(type(layer).__name__)
        if builder is None:
            raise FixedPointError(f"layer {name!r} of type {type(layer).__name__} has no integer "
                                  f"version; supported: {sorted(BUILDERS)}")
        source = alias.get(inbound[0], inbound[0])
        built = builder(layer, name, source, types[source], cfg, cfg.layers.get(name, {}))
        if built is None:
            alias[name] = source
        else:
            layers.append(built)
            types[name] = built.result
    return FixedGraph(layers, [alias.get(name, name) for name in outputs])
