"""Keras -> ONNX with tf2onnx: named raw inputs and outputs, metadata properties.

ONNX metadata properties are string key/value pairs. Strings are stored as they are; every other
value is stored as JSON and its key listed in the property ``json_keys``, so
:func:`read_metadata` gives back exactly the mapping that was written.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from triggerad.errors import TriggerADError
from triggerad.export.spec import ExportSpec
from triggerad.provenance import git_hash, package_version

log = logging.getLogger(__name__)

#: Version of the metadata layout written by this module.
EXPORT_FORMAT_VERSION = 1
#: Property listing the keys whose values are JSON.
JSON_KEYS = "json_keys"
#: Packages that make the ONNX file, with the versions this project pins (the ``onnx`` extra).
PACKAGES = {"tf2onnx": "1.17.0", "onnx": "1.16.2", "onnxruntime": "1.20.1"}


class ExportError(TriggerADError, RuntimeError):
    """The export cannot be done (missing packages) or its validation failed."""


def require_packages() -> None:
    """Import tf2onnx, onnx and onnxruntime or raise :class:`ExportError` saying how to install."""
    missing = []
    for name in PACKAGES:
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    if missing:
        pins = " ".join(f"{k}=={v}" for k, v in PACKAGES.items())
        raise ExportError(
            f"ONNX export needs {', '.join(missing)}: install the onnx extra, "
            f"pip install -e '.[onnx]' (or: pip install {pins})"
        )


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that define the exported file."""
    out = {}
    for name in ("tensorflow", *PACKAGES, "numpy"):
        try:
            out[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def export_metadata(spec: ExportSpec, opset: int) -> dict[str, Any]:
    """The metadata written into the ONNX file: the kind's entries plus the exporter's own.

    Raises
    ------
    ExportError
        If the kind's metadata uses a key reserved for the exporter.
    """
    own = {
        "producer": "trigger-ad",
        "export_format_version": EXPORT_FORMAT_VERSION,
        "trigger_ad_version": package_version(),
        "git_hash": git_hash(),
        "created_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "opset": opset,
        "inputs": [t.as_dict() for t in spec.inputs],
        "outputs": [t.as_dict() for t in spec.outputs],
        "decision": spec.decision.as_dict() if spec.decision else None,
    }
    clash = sorted((set(own) | {JSON_KEYS}) & set(spec.metadata))
    if clash:
        raise ExportError(f"export metadata: key {clash[0]!r} is reserved for the exporter")
    return {**spec.metadata, **own}


def _named_model(spec: ExportSpec):
    """Wrap the kind's model so the graph inputs and outputs carry exactly the spec's names."""
    import tensorflow as tf

    inputs = {t.name: tf.keras.Input(tuple(t.shape), dtype=t.dtype, name=t.name) for t in spec.inputs}
    out = spec.model(inputs)
    missing = [n for n in spec.output_names if n not in out]
    if missing:
        raise ExportError(f"export graph: output {missing[0]!r} not produced; found {sorted(out)}")
    named = {n: tf.keras.layers.Identity(name=n)(out[n]) for n in spec.output_names}
    return tf.keras.Model(inputs, named, name="export")


@contextlib.contextmanager
def _environment(**values: str):
    """Set environment variables inside the block, restoring the previous values."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def convert(spec: ExportSpec, *, opset: int, meta: dict[str, Any], replaced: set | None = None):
    """Convert the spec's Keras model to an ONNX ``ModelProto`` with the metadata properties.

    TensorFlow ops without an ONNX operator (lgamma, erfc, log1p, expm1) are replaced by
    :mod:`triggerad.export.onnx_math`; their names are added to ``replaced`` if given.

    Returns
    -------
    (onnx.ModelProto, keras.Model)
        The ONNX model and the named Keras model it was converted from (the validation
        reference).

    Raises
    ------
    ExportError
        If a TensorFlow op has no ONNX form, or the graph's names differ from the spec's.
    """
    import tensorflow as tf
    import tf2onnx

    from triggerad.export.onnx_math import handlers

    model = _named_model(spec)
    docs = {t.name: t for t in spec.inputs}  # Keras orders dict inputs by name
    signature = [tf.TensorSpec((None, *docs[n].shape), docs[n].dtype, name=n)
                 for n in model.input_names]
    tf2onnx_log = logging.getLogger("tf2onnx")
    level = tf2onnx_log.level
    if not log.isEnabledFor(logging.DEBUG):
        tf2onnx_log.setLevel(logging.WARNING)  # its INFO lines list every optimisation pass
    try:
        try:  # first without tf2onnx's deep copy of the graph before every optimiser (~2x faster)
            with _environment(TF2ONNX_CATCH_ERRORS="FALSE"):
                proto, _ = tf2onnx.convert.from_keras(
                    model, input_signature=signature, opset=opset,
                    custom_op_handlers=handlers(replaced))
        except Exception:  # an optimiser failed: again, skipping the optimisers that fail
            log.debug("tf2onnx failed with catch_errors off, retrying", exc_info=True)
            proto, _ = tf2onnx.convert.from_keras(
                model, input_signature=signature, opset=opset,
                custom_op_handlers=handlers(replaced))
    except Exception as err:  # tf2onnx raises plain exceptions for unsupported ops
        raise ExportError(f"tf2onnx could not convert the model: {err}") from err
    finally:
        tf2onnx_log.setLevel(level)
    unsupported = sorted({n.op_type for n in proto.graph.node if n.domain not in ("", "ai.onnx")})
    found_in = _reorder(proto.graph.input, spec.input_names)
    found_out = _reorder(proto.graph.output, spec.output_names)
    if unsupported or found_in != spec.input_names or found_out != spec.output_names:
        raise ExportError(
            f"ONNX graph: expected inputs {spec.input_names} and outputs {spec.output_names} of "
            f"standard ONNX ops, found inputs {found_in}, outputs {found_out}, custom ops "
            f"{unsupported}"
        )
    set_metadata(proto, meta)
    proto.producer_name = "trigger-ad"
    proto.producer_version = package_version()
    proto.doc_string = str(meta.get("description", "exported by trigger-ad"))
    return proto, model


def _reorder(values, names: list[str]) -> list[str]:
    """Put graph inputs/outputs ``values`` (Keras orders dicts by name) in the order ``names``
    if they hold exactly those names; return the names in the resulting order."""
    import onnx

    by_name = {v.name: v for v in values}
    if sorted(by_name) == sorted(names):
        ordered = [onnx.ValueInfoProto() for _ in names]
        for copy, name in zip(ordered, names, strict=True):
            copy.CopyFrom(by_name[name])
        del values[:]
        values.extend(ordered)
    return [v.name for v in values]


def set_metadata(proto, meta: dict[str, Any]) -> None:
    """Write ``meta`` into ``proto.metadata_props`` (non-strings as JSON, see module docstring)."""
    del proto.metadata_props[:]
    json_keys = []
    for key, value in meta.items():
        if not isinstance(value, str):
            value = json.dumps(value)
            json_keys.append(key)
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    entry = proto.metadata_props.add()
    entry.key, entry.value = JSON_KEYS, json.dumps(json_keys)


def read_metadata(source) -> dict[str, Any]:
    """The metadata of an ONNX file written by trigger-ad (an ONNX path or ``ModelProto``).

    Example
    -------
    >>> meta = read_metadata("l1_vae.onnx")          # doctest: +SKIP
    >>> meta["threshold"]["value"], meta["score"]    # doctest: +SKIP
    """
    import onnx

    proto = onnx.load(str(source), load_external_data=False) if isinstance(source, (str, Path)) \
        else source
    props = {p.key: p.value for p in proto.metadata_props}
    json_keys = set(json.loads(props.pop(JSON_KEYS, "[]")))
    return {k: json.loads(v) if k in json_keys else v for k, v in props.items()}
