"""The model-folder contract and the registry of model kinds.

Every trained model is a folder ``MODEL/`` whose ``artifact.json`` holds at least

``format_version`` (int)
    the version of the folder layout of its kind (checked on load);
``kind`` (str)
    a registered model kind: ``hlf_vae``, ``l1_vae`` (``anomaly``), later ``llp_tagger``,
    ``l1_llp_tagger`` (``tagger``), ...

plus whatever its kind needs (input names, normalisation, scores, ...), and, once a threshold
or working point is set, ``MODEL/threshold.json``. The commands that take a model folder
(``score``, ``threshold``, ``evaluate``, ``firmware``) open it with :func:`load_model`, which
checks the format version and hands the folder to its :class:`ModelKind`; they never branch on
kind names.

Kinds are registered as Python entry points of the group :data:`ENTRY_POINT_GROUP`, so this
core never imports the packages that implement them::

    # pyproject.toml
    [project.entry-points."trigger_ad.model_kinds"]
    hlf_vae = "anomaly.kinds:HLF_VAE"
    l1_vae = "anomaly.kinds:L1_VAE"

(re-install the package, ``pip install -e .``, after adding one). :func:`register_kind` adds a
kind at run time (tests, notebooks).

Example
-------
>>> model = load_model("models/l1_vae")                       # doctest: +SKIP
>>> scores = model.score(batch)                               # doctest: +SKIP
>>> kind_of(model).stream_scorer(model, scores=["mu2_q"])     # doctest: +SKIP
"""

from __future__ import annotations

import functools
import json
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol

from triggerad.errors import ConfigError, InputFileError, ModelFolderError, did_you_mean
from triggerad.thresholdfile import SELECTION, THRESHOLD_FILE, read_threshold

#: Entry-point group of the model kinds.
ENTRY_POINT_GROUP = "trigger_ad.model_kinds"
ARTIFACT_FILE = "artifact.json"
#: Keys every ``artifact.json`` holds, whatever the kind.
CONTRACT_KEYS = ("format_version", "kind")


class Model(Protocol):
    """What a loaded model offers the commands (the object :meth:`ModelKind.load` returns).

    Attributes
    ----------
    path : Path
        The model folder.
    meta : dict
        ``artifact.json``.
    kind : str
        Its kind.
    input_names : list of str
        Ordered names of the raw inputs.
    score_names : list of str
        Names of the scores :meth:`score` returns (larger = more signal-like / anomalous).
    default_score : str
        Score used when none is asked for.
    threshold : dict or None
        ``threshold.json``, or None before a threshold was set.
    data_info : dict
        Where its training sample came from (files, reader, split, fingerprint).
    """

    path: Path
    meta: dict

    @property
    def kind(self) -> str: ...

    @property
    def input_names(self) -> list[str]: ...

    @property
    def score_names(self) -> list[str]: ...

    @property
    def default_score(self) -> str: ...

    @property
    def threshold(self) -> dict | None: ...

    @property
    def data_info(self) -> dict: ...

    def write_threshold(self, data: dict) -> None:
        """Write ``threshold.json`` atomically."""

    def score_digest(self, score: str) -> str | None:
        """Digest of the exact (fixed-point) arithmetic that defines ``score``, stored with a
        threshold on it so that a changed graph is detected; None for float scores."""

    def inputs(self, batch) -> Any:
        """Raw inputs (n, d) of an event batch; refuses a batch without this model's schema."""

    def score(self, data, batch_size: int = 10_000) -> dict:
        """Per-event scores of an event batch (or raw inputs) by score name."""


class ModelKind:
    """A kind of model folder: how to open it and what each command does with it.

    Subclass it in the package that implements the kind and register an instance (see the
    module docstring). A capability a kind does not have raises :class:`ConfigError` naming
    the kind.

    Attributes
    ----------
    name : str
        The ``kind`` written into ``artifact.json``.
    description : str
        One line for listings and errors.
    format_versions : tuple of int
        The ``format_version`` values this trigger-ad reads.
    required_keys : tuple of str
        Keys of ``artifact.json`` the kind needs besides :data:`CONTRACT_KEYS`.
    input_fields : tuple of str or None
        Event-record fields (:data:`triggerad.io.base.READABLE_FIELDS`) the model's inputs are
        computed from, so that readers read only those; None: every field.
    """

    name = "base"
    description = ""
    format_versions: tuple[int, ...] = (1,)
    required_keys: tuple[str, ...] = ()
    input_fields: tuple[str, ...] | None = None

    def load(self, path: Path, meta: dict) -> Model:
        """The model of folder ``path`` whose checked ``artifact.json`` is ``meta``."""
        raise self._cannot("loaded")

    def stream_scorer(self, model: Model | str, *, scores: list[str] | None = None,
                      tf_batch_size: int = 8192, **options):
        """The scorer the stream runner (:mod:`triggerad.stream`) uses for this kind.

        It offers ``model``, ``model_ref``, ``scores``, ``read_fields``, ``table_fields``
        (record fields of the output table besides the scores), ``settings`` (dict or None,
        recorded in ``run.json`` and checked on resume), ``decides`` (True: the model
        has a threshold and the runner applies the trigger decision, rate control and monitor;
        False: per-row scores only), ``fast``, ``prepare()``, ``inputs(batch)`` and
        ``score_inputs(inputs)``; it must be picklable (workers). Base class:
        :class:`triggerad.stream.scorer.ModelScorer`. ``options`` are kind-specific settings
        (e.g. the LLP tagger's c-tau hypothesis), passed through
        :func:`triggerad.stream.runner.run_stream`'s ``scorer_options``.
        """
        raise self._cannot("scored on a stream")

    def load_split(self, model: Model, split: str):
        """Split ``split`` (``train``, ``val``, ``test``) of the sample the model was trained on."""
        raise self._cannot("asked for its training split")

    def load_data(self, model: Model, paths: list[str]):
        """All records of the files ``paths`` in the form ``model.inputs`` takes (default: the
        events of :func:`triggerad.data.load_sample`; jet kinds read jets)."""
        from triggerad.data import load_sample

        return load_sample(paths)

    def evaluate(self, model: Model | str, data: str | Path, out: str | Path, *,
                 config: str | Path, overrides: dict | None = None,
                 progress: bool = True) -> list[str]:
        """Write the evaluation report of ``model`` into ``out``; return summary lines."""
        raise self._cannot("evaluated")

    def export_spec(self, path: Path, options):
        """The ONNX export of folder ``path`` (:mod:`triggerad.export`): a
        :class:`~triggerad.export.spec.ExportSpec` (graph on raw inputs, tensor docs, validation
        inputs, metadata, decision) for the :class:`~triggerad.export.spec.ExportOptions`."""
        raise self._cannot("exported to ONNX")

    def _cannot(self, what: str) -> ConfigError:
        return ConfigError(f"{self.name} models cannot be {what} (no such step for this kind)")

    def __repr__(self) -> str:
        return f"<model kind {self.name!r}>"


class ModelFolder:
    """Base of the loaded models of every kind: the folder, its ``artifact.json`` and the
    ``threshold.json`` written later. Kinds subclass it and add their inputs and scores.

    Attributes
    ----------
    path : Path
        The model folder.
    meta : dict
        ``artifact.json``.
    """

    def __init__(self, path: str | Path, meta: dict):
        self.path = Path(path)
        self.meta = meta

    @property
    def kind(self) -> str:
        """The kind written in ``artifact.json``."""
        return self.meta["kind"]

    @property
    def config(self) -> dict:
        """The resolved training config."""
        return self.meta["config"]

    @property
    def data_info(self) -> dict:
        """Where the training sample came from (files, reader, split, fingerprint, counts)."""
        return self.meta["data_info"]

    @property
    def threshold(self) -> dict | None:
        """Contents of ``MODEL/threshold.json`` checked by :func:`read_threshold`, or None before
        a threshold was set."""
        return read_threshold(self.path, getattr(self, "score_names", None))

    def write_threshold(self, data: dict) -> None:
        """Write ``MODEL/threshold.json`` atomically."""
        from triggerad import atomic

        atomic.write_json(self.path / THRESHOLD_FILE, data)


_RUNTIME: dict[str, ModelKind] = {}


def register_kind(kind: ModelKind) -> None:
    """Register ``kind`` at run time (it shadows an entry point of the same name)."""
    _RUNTIME[kind.name] = kind


@functools.cache
def _entry_points() -> dict[str, metadata.EntryPoint]:
    """The kinds declared by installed packages (read once per process)."""
    return {ep.name: ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}


@functools.cache
def _load_entry_point(name: str) -> ModelKind:
    ep = _entry_points()[name]
    kind = ep.load()
    if not isinstance(kind, ModelKind) or kind.name != name:
        raise ModelFolderError(
            f"entry point {name} = {ep.value!r} of {ENTRY_POINT_GROUP!r} is not a ModelKind "
            f"named {name!r}, found {kind!r}"
        )
    return kind


def kind_names() -> list[str]:
    """Names of every registered kind, sorted (entry points are not imported)."""
    return sorted(set(_entry_points()) | set(_RUNTIME))


def get_kind(name: str, where: str = "model kind") -> ModelKind:
    """The registered kind ``name``.

    Raises
    ------
    ModelFolderError
        For an unknown name, listing the registered kinds (nearest first).
    """
    if name in _RUNTIME:
        return _RUNTIME[name]
    if name in _entry_points():
        return _load_entry_point(name)
    names = kind_names()
    hint = did_you_mean(name, names) if names else (
        f"none is registered: install trigger-ad (`pip install -e .`) so that the entry points "
        f"{ENTRY_POINT_GROUP!r} exist")
    raise ModelFolderError(f"{where}: unknown model kind {name!r}; {hint}")


def read_meta(path: str | Path) -> tuple[ModelKind, dict]:
    """Read and check ``path/artifact.json``: its format version, kind and the kind's keys.

    Returns
    -------
    (ModelKind, dict)
        The kind and the content of ``artifact.json``.

    Raises
    ------
    InputFileError
        If ``path`` is not a model folder or ``artifact.json`` is not readable JSON.
    ModelFolderError
        If a key is missing, the kind is not registered or its format version is not one this
        trigger-ad reads.
    """
    path = Path(path)
    file = path / ARTIFACT_FILE
    if not file.is_file():
        raise InputFileError(
            f"{path}: not a model folder (no {ARTIFACT_FILE}); train one with `trigger-ad train`"
        )
    try:
        meta = json.loads(file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputFileError(f"{file}: cannot read model description ({err})") from err
    if not isinstance(meta, dict):
        raise ModelFolderError(f"{file}: expected a JSON object, found {type(meta).__name__}")
    missing = [k for k in CONTRACT_KEYS if k not in meta]
    if missing:
        raise ModelFolderError(
            f"{file}: missing {', '.join(map(repr, missing))}: not a trigger-ad model folder, or "
            f"written before model folders carried them; found keys {sorted(meta)}. Retrain the "
            f"model with this trigger-ad (registered kinds: {', '.join(kind_names()) or 'none'})"
        )
    kind = get_kind(str(meta["kind"]), where=f"{file}: kind")
    version = meta["format_version"]
    if version not in kind.format_versions:
        readable = ", ".join(map(str, kind.format_versions))
        newer = isinstance(version, int) and version > max(kind.format_versions)
        raise ModelFolderError(
            f"{file}: format_version {version!r} of {kind.name} models; this trigger-ad reads "
            f"format_version {readable}. "
            + ("Upgrade trigger-ad to read it." if newer else "Retrain the model with this "
               "trigger-ad.")
        )
    missing = [k for k in kind.required_keys if k not in meta]
    if missing:
        raise ModelFolderError(
            f"{file}: {kind.name} model without {', '.join(map(repr, missing))} (format_version "
            f"{version}); the folder is incomplete or was edited. Retrain the model"
        )
    return kind, meta


def load_model(path: str | Path) -> Model:
    """Open model folder ``path`` through its kind (see :func:`read_meta` for the checks)."""
    kind, meta = read_meta(path)
    return kind.load(Path(path), meta)


def load_model_as(path: str | Path, cls: type, what: str):
    """Open model folder ``path`` (:func:`load_model`) and refuse a model that is not a ``cls``.

    Raises
    ------
    ModelFolderError
        ``"MODEL/artifact.json: a <kind> model, not <what>"``.
    """
    model = load_model(path)
    if not isinstance(model, cls):
        raise ModelFolderError(f"{Path(path) / ARTIFACT_FILE}: a {model.kind} model, not {what}")
    return model


def kind_of(model: Model | str | Path) -> ModelKind:
    """The kind of a loaded model, or of the model folder at a path."""
    if isinstance(model, (str, Path)):
        return read_meta(model)[0]
    return get_kind(model.kind)


__all__ = ["ARTIFACT_FILE", "ENTRY_POINT_GROUP", "SELECTION", "THRESHOLD_FILE", "Model",
           "ModelFolder", "ModelFolderError", "load_model_as", "read_threshold",
           "ModelKind", "get_kind", "kind_names", "kind_of", "load_model", "read_meta",
           "register_kind"]
