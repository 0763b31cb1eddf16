"""Vectorised numpy forward pass of a float Keras encoder, from its saved weights.

Supports the layers our float encoders are made of: ``InputLayer``, ``Dense``, ``Activation``,
``ReLU`` and ``Dropout`` (identity at inference), in Sequential models or functional graphs with
several outputs (e.g. ``[mu, logvar]``). Everything runs in float32 like Keras, so results equal
Keras within float32 rounding (summation order differs), not bit for bit. Quantized (QKeras)
models are not handled here: their scores come from the exact integer graph of
:mod:`triggerad.fixedpoint`. A model holding any other layer raises
:class:`UnsupportedModelError`; callers then use Keras ``predict`` with a large batch instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from triggerad.errors import TriggerADError
from triggerad.fixedpoint.graph import single_threaded_blas


class UnsupportedModelError(TriggerADError, NotImplementedError):
    """The Keras model holds a layer or quantizer the numpy fast path does not reproduce."""


_FLOAT_ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "linear": lambda x: x,
    "relu": lambda x: np.maximum(x, np.float32(0)),
    "tanh": np.tanh,
    "sigmoid": lambda x: (1.0 / (1.0 + np.exp(-x))).astype(np.float32),
    "exponential": np.exp,
    "softplus": lambda x: np.logaddexp(np.float32(0), x).astype(np.float32),
}


def activation_function(act, where: str) -> Callable[[np.ndarray], np.ndarray]:
    """numpy function reproducing a (float) Keras activation.

    Parameters
    ----------
    act : callable or str
        What the layer applies (``layer.activation``).
    where : str
        Layer name, used in the error message.

    Raises
    ------
    UnsupportedModelError
        For activations without a numpy twin (including QKeras quantizers).
    """
    name = act if isinstance(act, str) else getattr(act, "__name__", type(act).__name__)
    if name not in _FLOAT_ACTIVATIONS:
        raise UnsupportedModelError(
            f"layer {where!r}: activation {name!r} has no numpy twin; supported: "
            f"{sorted(_FLOAT_ACTIVATIONS)} (quantized models: triggerad.fixedpoint)"
        )
    return _FLOAT_ACTIVATIONS[name]


@dataclass
class _Node:
    name: str
    inputs: list[str]
    fn: Callable[[np.ndarray], np.ndarray]


def _dense_weights(layer) -> tuple[np.ndarray, np.ndarray]:
    """Kernel and bias (float32) of a Dense layer."""
    kernel = np.asarray(layer.kernel, dtype=np.float32)
    bias = getattr(layer, "bias", None)
    bias = np.zeros(kernel.shape[1], np.float32) if bias is None else np.asarray(bias, np.float32)
    return kernel, bias


def _layer_function(layer) -> Callable[[np.ndarray], np.ndarray]:
    """numpy function of ``layer``."""
    cls = type(layer).__name__
    if cls in ("InputLayer", "Dropout"):
        return lambda x: x
    if cls == "Dense":
        kernel, bias = _dense_weights(layer)
        act = activation_function(layer.activation, layer.name)

        def dense(x: np.ndarray) -> np.ndarray:
            y = x @ kernel
            y += bias
            return act(y)

        return dense
    if cls == "Activation":
        return activation_function(layer.activation, layer.name)
    if cls == "ReLU" and layer.max_value is None and not float(layer.negative_slope) and not float(
        layer.threshold
    ):
        return _FLOAT_ACTIVATIONS["relu"]
    hint = "; quantized layers are evaluated by triggerad.fixedpoint" if cls.startswith("Q") else ""
    raise UnsupportedModelError(f"layer {layer.name!r} of type {cls} has no numpy fast path{hint}")


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
        nodes = [_Node(name, inbound, _layer_function(layers[name])) for name, inbound in graph]
        return cls(nodes, input_name, outputs)

    def __call__(self, x: np.ndarray) -> list[np.ndarray]:
        """Outputs of the network for normalised inputs ``x`` of shape (n, d)."""
        values = {self.input_name: np.asarray(x, dtype=np.float32)}
        # the matmuls are small (k <= d): BLAS threads cost more than they give, and a read-ahead
        # thread needs the other core
        with single_threaded_blas():
            for node in self.nodes:
                source = values[node.inputs[0]] if node.inputs else values[self.input_name]
                values[node.name] = node.fn(source)
        return [values[name] for name in self.outputs]

