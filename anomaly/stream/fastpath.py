"""Vectorised numpy forward pass of a (Q)Keras encoder, from its saved weights.

Supports the layers our encoders are made of: ``InputLayer``, ``Dense``/``QDense`` (kernel and
bias through their quantizers, applied once when the network is built), ``Activation``,
``QActivation`` with ``quantized_relu`` or ``quantized_bits`` (reproduced in numpy, round half to
even like ``tf.round``), ``ReLU`` and ``Dropout`` (identity at inference), in Sequential models or
functional graphs with several outputs (e.g. ``[mu, logvar]``). Everything runs in float32 like
Keras. A model holding any other layer raises :class:`UnsupportedModelError`; callers then use
Keras ``predict`` with a large batch instead.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from triggerad.errors import TriggerADError


class UnsupportedModelError(TriggerADError, NotImplementedError):
    """The Keras model holds a layer or quantizer the numpy fast path does not reproduce."""


def quantized_relu(x: np.ndarray, bits: int, integer: int, out: np.ndarray | None = None
                   ) -> np.ndarray:
    """numpy twin of QKeras ``quantized_relu(bits, integer)`` (no sigmoid, zero negative slope).

    Values are clipped to ``[0, 2**integer - 2**(integer - bits)]`` and rounded (half to even) to
    multiples of ``2**(integer - bits)``.

    Parameters
    ----------
    x : array
        Pre-activations.
    bits, integer : int
        Quantizer settings.
    out : float32 array, optional
        Where to write the result (may be ``x`` itself, a float32 array, to work in place).
    """
    m = np.float32(2.0**bits)
    m_i = np.float32(2.0**integer)
    # == m_i * clip(round(p) / m, 0, 1 - 1/m): the scalings are by powers of two, hence exact
    q = np.multiply(x, m / m_i, out=out, dtype=np.float32)
    np.rint(q, out=q)
    np.maximum(q, 0.0, out=q)
    np.minimum(q, m - 1, out=q)
    q *= m_i / m
    return q


def quantized_bits(
    x: np.ndarray, bits: int, integer: int, symmetric: bool, keep_negative: bool, alpha: float
) -> np.ndarray:
    """numpy twin of QKeras ``quantized_bits`` with a fixed (numeric or None) ``alpha``."""
    unsigned = bits - int(keep_negative)
    if unsigned <= 0:
        xq = np.sign(x)
        xq = xq + (1.0 - np.abs(xq))
        if not keep_negative:
            xq = (xq + 1.0) / 2.0
        return (alpha * xq).astype(np.float32)
    m = np.float32(2.0**unsigned)
    m_i = np.float32(2.0**integer)
    low = int(keep_negative) * (-m + int(symmetric))
    xq = m_i * np.clip(np.round(x * (m / m_i)), low, m - 1) / m
    return (np.float32(alpha) * xq).astype(np.float32)


_FLOAT_ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "linear": lambda x: x,
    "relu": lambda x: np.maximum(x, np.float32(0)),
    "tanh": np.tanh,
    "sigmoid": lambda x: (1.0 / (1.0 + np.exp(-x))).astype(np.float32),
    "exponential": np.exp,
    "softplus": lambda x: np.logaddexp(np.float32(0), x).astype(np.float32),
}


def activation_function(act, where: str, in_place: bool = False
                        ) -> Callable[[np.ndarray], np.ndarray]:
    """numpy function reproducing a Keras activation or a QKeras activation quantizer.

    Parameters
    ----------
    act : callable, str or QKeras quantizer
        What the layer applies (``layer.activation`` or ``QActivation.quantizer``).
    where : str
        Layer name, used in the error message.
    in_place : bool
        The function may overwrite its (float32) argument with the result (for a Dense layer's
        own pre-activations; ``quantized_relu`` then allocates nothing).

    Raises
    ------
    UnsupportedModelError
        For activations or quantizer settings without an exact numpy twin.
    """
    cls = type(act).__name__
    if cls == "quantized_relu":
        if act.use_sigmoid or act.negative_slope or act.use_stochastic_rounding or (
            not act.is_quantized_clip
        ):
            raise UnsupportedModelError(f"layer {where!r}: unsupported settings of {act}")
        bits, integer = int(act.bits), int(act.integer)
        return lambda x: quantized_relu(x, bits, integer, out=x if in_place else None)
    if cls == "quantized_bits":
        alpha = 1.0 if act.alpha is None else act.alpha
        if isinstance(alpha, str) or act.use_stochastic_rounding:
            raise UnsupportedModelError(f"layer {where!r}: unsupported settings of {act}")
        args = (int(act.bits), int(act.integer), bool(act.symmetric), bool(act.keep_negative))
        return lambda x: quantized_bits(x, *args, float(alpha))
    name = act if isinstance(act, str) else getattr(act, "__name__", cls)
    if name not in _FLOAT_ACTIVATIONS:
        raise UnsupportedModelError(
            f"layer {where!r}: activation {name!r} has no numpy twin; supported: "
            f"{sorted(_FLOAT_ACTIVATIONS)}, quantized_relu, quantized_bits"
        )
    return _FLOAT_ACTIVATIONS[name]


@dataclass
class _Node:
    name: str
    inputs: list[str]
    fn: Callable[[np.ndarray], np.ndarray]


def _dense_weights(layer) -> tuple[np.ndarray, np.ndarray]:
    """Kernel and bias as used at inference (through the QKeras quantizers when present)."""
    kernel, bias = layer.kernel, getattr(layer, "bias", None)
    if getattr(layer, "kernel_quantizer_internal", None) is not None and layer.kernel_quantizer:
        kernel = layer.kernel_quantizer_internal(kernel)
    if bias is not None and getattr(layer, "bias_quantizer", None):
        bias = layer.bias_quantizer_internal(bias)
    kernel = np.asarray(kernel, dtype=np.float32)
    bias = np.zeros(kernel.shape[1], np.float32) if bias is None else np.asarray(bias, np.float32)
    return kernel, bias


def _layer_function(layer, in_place: bool = False) -> Callable[[np.ndarray], np.ndarray]:
    """numpy function of ``layer``; with ``in_place`` an activation may overwrite its argument."""
    cls = type(layer).__name__
    if cls in ("InputLayer", "Dropout"):
        return lambda x: x
    if cls in ("Dense", "QDense"):
        kernel, bias = _dense_weights(layer)
        act = activation_function(layer.activation, layer.name, in_place=True)

        def dense(x: np.ndarray) -> np.ndarray:
            y = x @ kernel
            y += bias
            return act(y)

        return dense
    if cls == "Activation":
        return activation_function(layer.activation, layer.name, in_place)
    if cls == "QActivation":
        return activation_function(layer.quantizer, layer.name, in_place)
    if cls == "ReLU" and layer.max_value is None and not float(layer.negative_slope) and not float(
        layer.threshold
    ):
        return _FLOAT_ACTIVATIONS["relu"]
    raise UnsupportedModelError(f"layer {layer.name!r} of type {cls} has no numpy fast path")


class NumpyNet:
    """A Keras model's inference as a chain/graph of numpy functions.

    Build it with :meth:`from_keras`; call it on a float32 (n, d) array to get the list of model
    outputs (one array per Keras output, in the model's output order).
    """

    def __init__(self, nodes: list[_Node], input_name: str, outputs: list[str]):
        self.nodes = nodes
        self.input_name = input_name
        self.outputs = outputs

    @classmethod
    def from_keras(cls, model) -> NumpyNet:
        """Extract the weights and activations of a Sequential or single-input functional model.

        Raises
        ------
        UnsupportedModelError
            If the model has several inputs or a layer without a numpy twin.
        """
        config = model.get_config()
        layers = {layer.name: layer for layer in model.layers}
        if "input_layers" not in config:  # Sequential: a chain
            names = [layer.name for layer in model.layers]
            graph = list(zip(names, [["__input__"], *[[name] for name in names[:-1]]], strict=True))
            input_name, outputs = "__input__", [names[-1]]
        else:
            if len(config["input_layers"]) != 1:
                raise UnsupportedModelError(
                    f"model {model.name!r}: expected one input, found "
                    f"{len(config['input_layers'])}"
                )
            graph = []
            for spec in config["layers"]:
                inbound = [entry[0] for node in spec["inbound_nodes"] for entry in node]
                if len(inbound) > 1:
                    raise UnsupportedModelError(
                        f"layer {spec['name']!r} merges {inbound}; no numpy fast path"
                    )
                graph.append((spec["name"], inbound))
            input_name = config["input_layers"][0][0]
            outputs = [entry[0] for entry in config["output_layers"]]
        # A layer may work in place on a Dense output (a fresh array) that nothing else reads.
        readers = Counter(source for _, inbound in graph for source in inbound)
        fresh = {name for name, _ in graph
                 if type(layers[name]).__name__ in ("Dense", "QDense")
                 and readers[name] == 1 and name not in outputs}
        nodes = [_Node(name, inbound, _layer_function(layers[name], bool(set(inbound) & fresh)))
                 for name, inbound in graph]
        return cls(nodes, input_name, outputs)

    def __call__(self, x: np.ndarray) -> list[np.ndarray]:
        """Outputs of the network for normalised inputs ``x`` of shape (n, d)."""
        values = {self.input_name: np.asarray(x, dtype=np.float32)}
        # the matmuls are small (k <= d): BLAS threads cost more than they give, and a read-ahead
        # thread needs the other core
        with _blas_controller().limit(limits=1, user_api="blas"):
            for node in self.nodes:
                source = values[node.inputs[0]] if node.inputs else values[self.input_name]
                values[node.name] = node.fn(source)
        return [values[name] for name in self.outputs]


@functools.cache
def _blas_controller():
    """threadpoolctl controller of the BLAS libraries loaded with numpy (built once)."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()
