"""Which export builder makes the :class:`~triggerad.export.spec.ExportSpec` of a model kind.

A builder is ``builder(model_dir: Path, options: ExportOptions) -> ExportSpec``. Packages register
theirs as Python entry points in the group ``trigger_ad.onnx_exporters`` (name = the model
folder's ``kind``), e.g. in ``pyproject.toml``::

    [project.entry-points."trigger_ad.onnx_exporters"]
    hlf_vae = "anomaly.export:build_vae_export"

so the core never imports ``anomaly`` or ``tagger``. :func:`register` adds a builder at run time
(used by tests and plug-ins that are not installed).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

from triggerad.errors import InputFileError, SchemaMismatchError, did_you_mean

#: Entry-point group of the export builders.
ENTRY_POINT_GROUP = "trigger_ad.onnx_exporters"
#: The model folder's description file (its ``kind`` selects the builder).
MODEL_DESCRIPTION = "artifact.json"

_REGISTERED: dict[str, Callable] = {}


def register(kind: str, builder: Callable) -> None:
    """Register (or replace) the export builder of model ``kind`` for this process."""
    _REGISTERED[kind] = builder


def _entry_points() -> dict:
    return {ep.name: ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}


def known_kinds() -> list[str]:
    """Model kinds that have an export builder, sorted."""
    return sorted(set(_REGISTERED) | set(_entry_points()))


def builder_for(kind: str, where: str = "model") -> Callable:
    """The export builder of ``kind``.

    Raises
    ------
    SchemaMismatchError
        If no builder is registered for ``kind`` (naming the known kinds, nearest first).
    """
    if kind in _REGISTERED:
        return _REGISTERED[kind]
    found = _entry_points()
    if kind in found:
        return found[kind].load()
    raise SchemaMismatchError(
        f"{where}: the exporter does not know model kind {kind!r} (no builder in entry-point "
        f"group {ENTRY_POINT_GROUP!r}); " + did_you_mean(str(kind), known_kinds())
    )


def model_kind(folder: str | Path) -> str:
    """The ``kind`` recorded in a model folder's ``artifact.json``.

    Raises
    ------
    InputFileError
        If ``folder`` is not a model folder or its description is unreadable.
    SchemaMismatchError
        If the description has no ``kind``.
    """
    file = Path(folder) / MODEL_DESCRIPTION
    if not file.is_file():
        raise InputFileError(f"{folder}: not a model folder (no {MODEL_DESCRIPTION})")
    try:
        meta = json.loads(file.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise InputFileError(f"{file}: cannot read model description ({err})") from err
    if not isinstance(meta, dict) or not isinstance(meta.get("kind"), str):
        raise SchemaMismatchError(f"{file}: expected a 'kind' string, found {meta.get('kind')!r}"
                                  if isinstance(meta, dict) else f"{file}: expected a mapping")
    return meta["kind"]
