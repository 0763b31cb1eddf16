"""The TensorFlow-free scoring paths: the model folder's ``fastpath.json`` and a float numpy encoder.

**``MODEL/fastpath.json``** holds what the trigger decision on ``mu2_q`` (and ``kl_q``) needs,
without TensorFlow: the integer fixed-point graph ``raw inputs -> normalisation -> quantized
encoder -> score`` (:meth:`triggerad.fixedpoint.FixedGraph.to_dict`: raw integer weights, HLS
types of every layer, the normalisation as a ``ScaleShift``) with its digest, a format version
and fingerprints of what it was built from (the quantized weights file, the normalisation and the
``quantization`` section of ``artifact.json``). It is written with the model
(:func:`write_fastpath`, called by :func:`anomaly.artifact.write_artifact_files`) and checked on
load (:func:`load_fastpath`): another format version, a digest that does not match its layers
or fingerprints that do not match the folder raise :class:`~triggerad.models.ModelFolderError`
naming the file and the fix. The rebuilt graph *is* the reference graph (same digest), so its
scores and decisions equal :meth:`ModelArtifact.score`'s and the firmware's bit for bit.

**:class:`NumpyNet`**: vectorised numpy forward pass of a float Keras encoder, from its weights.

Supports the layers our float encoders are made of: ``InputLayer``, ``Dense``, ``Activation``,
``ReLU`` and ``Dropout`` (identity at inference), in Sequential models or functional graphs with
several outputs (e.g. ``[mu, logvar]``). Everything runs in float32 like Keras, so results equal
Keras within float32 rounding (summation order differs), not bit for bit. Quantized (QKeras)
models are not handled here: their scores come from the exact integer graph of
:mod:`triggerad.fixedpoint`. A model holding any other layer raises
:class:`UnsupportedModelError`; callers then use Keras ``predict`` with a large batch instead.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from triggerad.errors import TriggerADError
from triggerad.fixedpoint.graph import single_threaded_blas

#: File of the model folder holding the TensorFlow-free decision graph.
FASTPATH_FILE = "fastpath.json"
#: Format version of :data:`FASTPATH_FILE` (checked on load).
FASTPATH_VERSION = 1
#: The weights file the graph is built from.
_WEIGHTS = "quantized_encoder.weights.h5"


class FastPathMissingError(TriggerADError, FileNotFoundError):
    """The model folder has no :data:`FASTPATH_FILE` (written before it existed)."""


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def fingerprints(folder: str | Path, meta: dict) -> dict[str, str]:
    """sha256 of what the graph is built from: the quantized weights file, and the
    normalisation and ``config.quantization`` of ``artifact.json`` (canonical JSON)."""
    def digest(value) -> str:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    return {_WEIGHTS: _sha256(Path(folder) / _WEIGHTS),
            "normalisation": digest(meta.get("normalisation")),
            "quantization": digest((meta.get("config") or {}).get("quantization"))}


def write_fastpath(folder: str | Path, meta: dict, graph) -> Path:
    """Write ``folder/fastpath.json`` (atomically) for the score graph ``graph``.

    Parameters
    ----------
    folder : path
        The model folder (already holding its weights and ``artifact.json``'s contents ``meta``).
    meta : dict
        Contents of ``artifact.json``.
    graph : triggerad.fixedpoint.FixedGraph
        The model's score graph (:func:`anomaly.quantized.score_graph`).
    """
    from triggerad import atomic

    path = Path(folder) / FASTPATH_FILE
    atomic.write_json(path, {
        "format_version": FASTPATH_VERSION,
        "content": "integer fixed-point score graph: raw inputs -> normalisation -> quantized "
                   "encoder -> score (mu2_q); see anomaly/stream/fastpath.py",
        "digest": graph.digest(),
        "built_from": fingerprints(folder, meta),
        "graph": graph.to_dict(),
    })
    return path


#: The last graph read (:func:`load_fastpath`), by the file's identity, with its ``built_from``.
_GRAPHS: dict[tuple, tuple] = {}


def _file_key(path: Path) -> tuple | None:
    """(path, inode, size, modification time) of ``path``: a rewritten file has another key."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return str(path.resolve()), stat.st_ino, stat.st_size, stat.st_mtime_ns


def _read_graph(path: Path, fix: str):
    """The graph and ``built_from`` of ``fastpath.json`` ``path``, its format and digest checked."""
    from triggerad.fixedpoint import FixedGraph, FixedPointError
    from triggerad.models import ModelFolderError

    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelFolderError(f"{path}: unreadable ({err}); {fix}") from err
    version = data.get("format_version") if isinstance(data, dict) else None
    if version != FASTPATH_VERSION:
        raise ModelFolderError(f"{path}: format_version {version!r}, this trigger-ad reads "
                               f"{FASTPATH_VERSION!r}; {fix}")
    try:
        graph = FixedGraph.from_dict(data.get("graph"))
    except FixedPointError as err:
        raise ModelFolderError(f"{path}: bad graph ({err}); {fix}") from err
    if graph.digest() != data.get("digest"):
        raise ModelFolderError(f"{path}: the graph's digest {graph.digest()[:12]}... differs "
                               f"from the recorded {str(data.get('digest'))[:12]!r}... (edited "
                               f"file); {fix}")
    return graph, data.get("built_from") or {}


def load_fastpath(folder: str | Path, meta: dict):
    """The score graph of ``folder/fastpath.json``, checked against the folder.

    The file is parsed and checked once per process while it is unchanged (the graph's
    arithmetic is stateless); the fingerprints of the folder are compared on every call.

    Raises
    ------
    FastPathMissingError
        If the file does not exist.
    ModelFolderError
        If it is unreadable, has another format version, its layers do not match its digest or
        it was built from other weights, normalisation or quantization than the folder's.
    """
    from triggerad.models import ModelFolderError

    path = Path(folder) / FASTPATH_FILE
    fix = (f"delete {path} and re-run `trigger-ad score` (it rebuilds the file from the weights, "
           "importing TensorFlow once), or copy the model folder again")
    if not path.is_file():
        raise FastPathMissingError(
            f"{path}: missing; the model folder predates the TensorFlow-free score file. "
            "`trigger-ad score` writes it from the weights on its first run (the folder must be "
            "writable), or score with --score all")
    key = _file_key(path)
    cached = _GRAPHS.get(key) if key else None
    if cached is None:
        graph, found = _read_graph(path, fix)
        if key:
            _GRAPHS.clear()  # one file kept: a process scores with one model at a time
            _GRAPHS[key] = graph, found
    else:
        graph, found = cached
    expected = fingerprints(folder, meta)  # checked each time: the weights may be replaced
    stale = [k for k in expected if found.get(k) != expected[k]]
    if stale:
        raise ModelFolderError(f"{path}: built from another {', '.join(stale)} than the folder "
                               "holds now (a weights file replaced or corrupt, or artifact.json "
                               f"edited); {fix}")
    return graph


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

