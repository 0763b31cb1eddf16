"""The LLP tagger model folder and :class:`TaggerModel`, the loaded tagger used by every later step.

Layout::

    MODEL/artifact.json         kind llp_tagger, format_version, input schema (feature names and
                                per-jet shapes per branch), normalisation, class names, c-tau
                                range, model config, training-sample description (files,
                                fingerprint, class counts), metrics, versions
    MODEL/tagger.weights.h5     Keras weights of the network of :mod:`tagger.model`
    MODEL/logs/, MODEL/checkpoints/   TensorBoard logs and best-epoch weights of the training
    MODEL/provenance.json, MODEL/config.resolved.yaml

The network is rebuilt from the stored ``model`` config and block sizes and the weights loaded
(no deserialisation of custom Keras objects). A batch with another schema (feature names, block
sizes, classes) is refused with :class:`~triggerad.errors.SchemaMismatchError`.

Example
-------
>>> from tagger.artifact import load
>>> model = load("models/llp_tagger")                       # doctest: +SKIP
>>> probs = model.predict(batch, ctau_mm=1.0)               # (n, 5): LLP, b, c, uds, g  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

import numpy as np

from tagger import inputs as tin
from triggerad import atomic, models
from triggerad.config import build
from triggerad.errors import ConfigError, OutOfRangeError
from triggerad.jets import LABELS, JetBatch
from triggerad.models import ARTIFACT_FILE
from triggerad.provenance import library_versions

log = logging.getLogger(__name__)

KIND = "llp_tagger"
FORMAT_VERSION = 1
WEIGHTS = "tagger.weights.h5"
#: Keys of ``artifact.json`` besides ``format_version`` and ``kind``.
REQUIRED_KEYS = ("input_schema", "normalisation", "class_names", "ctau_range_mm", "config",
                 "data_info", "domain_adaptation")
CtauPolicy = Literal["error", "warn"]


def versions() -> dict[str, str]:
    """Versions of trigger-ad and the libraries that define the saved model."""
    return library_versions(("tensorflow", "numpy"))


def write_artifact_files(folder: str | Path, *, net, sizes: dict[str, int], normalisation: dict,
                         ctau_range_mm: tuple[float, float], config: dict, data_info: dict,
                         domain_adaptation: bool, metrics: dict | None = None) -> None:
    """Write ``artifact.json`` and the weights into an existing (temporary) folder.

    Parameters
    ----------
    folder : path
        Target folder (normally the temporary folder of :func:`triggerad.atomic.atomic_dir`).
    net : keras.Model
        The trained network of :func:`tagger.model.build_tagger`.
    sizes : dict
        Candidate-block sizes it was built for.
    normalisation : dict
        From :func:`tagger.inputs.fit_normalisation`.
    ctau_range_mm : (float, float)
        Smallest and largest LLP c-tau (mm) of the training sample.
    config : dict
        The resolved training config (``triggerad.config.to_dict``), with a ``model`` section.
    data_info : dict
        Training sample: files, reader, fingerprint, class counts.
    domain_adaptation : bool
        Whether the domain branch was trained (phase 2).
    metrics : dict, optional
        Training summary.
    """
    folder = Path(folder)
    lo, hi = (float(v) for v in ctau_range_mm)
    meta = {
        "format_version": FORMAT_VERSION,
        "kind": KIND,
        "input_schema": tin.input_schema(sizes),
        "normalisation": normalisation,
        "class_names": list(LABELS),
        "ctau_range_mm": [lo, hi],
        "domain_adaptation": bool(domain_adaptation),
        "versions": versions(),
        "config": config,
        "data_info": data_info,
        "metrics": metrics or {},
    }
    net.save_weights(str(folder / WEIGHTS))
    atomic.write_json(folder / ARTIFACT_FILE, meta)


def save(path: str | Path, **kwargs) -> Path:
    """Write a complete model folder atomically (arguments as :func:`write_artifact_files`)."""
    with atomic.atomic_dir(path) as tmp:
        write_artifact_files(tmp, **kwargs)
    return Path(path)


def load(path: str | Path) -> TaggerModel:
    """Open an LLP tagger model folder (format version, kind and keys checked).

    Raises
    ------
    InputFileError
        If ``path`` is not a model folder or its ``artifact.json`` is unreadable.
    ModelFolderError
        If a key is missing, the format version is foreign, or the folder holds another kind.
    """
    return models.load_model_as(path, TaggerModel, f"an LLP jet tagger ({KIND})")


class TaggerModel(models.ModelFolder):
    """A trained LLP tagger folder: schema, normalisation, c-tau range and the network.

    ``path``, ``meta``, ``kind``, ``config``, ``data_info``, ``threshold`` and
    ``write_threshold`` come from :class:`triggerad.models.ModelFolder`. The network is built
    lazily on first use.
    """

    def __init__(self, path: Path, meta: dict):
        super().__init__(path, meta)
        self._net = None
        self._fn = None

    # Metadata ----------------------------------------------------------------------------------

    @property
    def class_names(self) -> list[str]:
        """Output columns of :meth:`predict`: ``LLP``, ``b``, ``c``, ``uds``, ``g``."""
        return list(self.meta["class_names"])

    @property
    def input_schema(self) -> dict:
        """Per branch the feature names and per-jet shape (``classes``: the class names)."""
        return self.meta["input_schema"]

    @property
    def input_names(self) -> list[str]:
        """``branch.feature`` names of the inputs."""
        return [f"{b}.{f}" for b, s in self.input_schema.items() if b != "classes"
                for f in s["features"]]

    @property
    def sizes(self) -> dict[str, int]:
        """Candidate-block sizes ``{charged, neutral, sv}``."""
        return {b: int(self.input_schema[b]["shape"][0]) for b in ("charged", "neutral", "sv")}

    @property
    def normalisation(self) -> dict:
        """``{branch: {"mean", "scale"}}`` fitted on the training sample."""
        return self.meta["normalisation"]

    @property
    def ctau_range_mm(self) -> tuple[float, float]:
        """Smallest and largest LLP c-tau (mm) of the training sample."""
        lo, hi = self.meta["ctau_range_mm"]
        return float(lo), float(hi)

    @property
    def domain_adaptation(self) -> bool:
        """Whether the model was trained with the domain branch (gradient reversal)."""
        return bool(self.meta["domain_adaptation"])

    @property
    def score_names(self) -> list[str]:
        """``prob_<class>`` for every class."""
        return [f"prob_{c}" for c in self.class_names]

    @property
    def default_score(self) -> str:
        """``prob_LLP``."""
        return "prob_LLP"

    def score_digest(self, score: str) -> None:
        """None: the tagger's scores are float."""
        return None

    # c-tau -------------------------------------------------------------------------------------
    def check_ctau(self, ctau_mm, *, policy: CtauPolicy = "error", where: str = "c-tau") -> None:
        """Check c-tau values (mm) against the trained range :attr:`ctau_range_mm`.

        Parameters
        ----------
        ctau_mm : float or array
            The c-tau hypothesis or per-jet values.
        policy : {"error", "warn"}
            Outside the range: raise, or log a warning naming the range.

        Raises
        ------
        OutOfRangeError
            With ``policy="error"`` for a value outside the range (or not positive).
        """
        if policy not in ("error", "warn"):
            raise ConfigError(f"c-tau policy: expected 'error' or 'warn', found {policy!r}")
        ctau = np.atleast_1d(np.asarray(ctau_mm, dtype=np.float64))
        lo, hi = self.ctau_range_mm
        # float32 round-off of stored c-tau values must not push the range edges outside
        bad = ~np.isfinite(ctau) | (ctau < lo * (1 - 1e-6)) | (ctau > hi * (1 + 1e-6))
        if not bad.any():
            return
        k = int(np.flatnonzero(bad)[0])
        message = (f"{where}: c-tau {float(ctau[k])!r} mm ({int(bad.sum())} of {len(ctau)} "
                   f"values) outside the range the model at {self.path} was trained on, "
                   f"[{lo:.4g}, {hi:.4g}] mm")
        if policy == "error":
            raise OutOfRangeError(message + "; use --ctau-policy warn to score anyway")
        log.warning("%s; the tagger extrapolates", message)

    # Network -----------------------------------------------------------------------------------
    def network(self):
        """The Keras network with the stored weights (built once)."""
        if self._net is None:
            from tagger.model import ModelConfig, build_tagger

            where = f"{self.path / ARTIFACT_FILE}:config.model"
            cfg = build(ModelConfig, self.config["model"], where=where)
            net = build_tagger(cfg, self.sizes)
            net.load_weights(str(self.path / WEIGHTS))
            self._net = net
        return self._net

    def _predict_function(self):
        if self._fn is None:
            import tensorflow as tf

            net = self.network()

            @tf.function(reduce_retracing=True)
            def fn(x):
                return net(x, training=False)["class"]

            self._fn = fn
        return self._fn

    def inputs(self, batch: JetBatch, *, ctau_mm=None, where: str | None = None
               ) -> dict[str, np.ndarray]:
        """Normalised model inputs of ``batch`` at c-tau ``ctau_mm`` (see :meth:`predict`).

        Raises
        ------
        SchemaMismatchError
            If the batch's features or block sizes differ from the model's.
        OutOfRangeError
            If a jet has no c-tau (``ctau_mm`` None and jet c-tau 0) or a non-positive one.
        """
        where = where or (str(batch.source_file[0]) if len(batch) and batch.source_file[0]
                          else "jet batch")
        tin.check_schema(self.input_schema, batch, where)
        if ctau_mm is None:
            ctau = batch.ctau
            if len(batch) and np.any(ctau <= 0):
                raise OutOfRangeError(
                    f"{where}: {int(np.sum(ctau <= 0))} of {len(batch)} jets have no c-tau (0: "
                    "events without an LLP); pass a c-tau hypothesis (ctau_mm / --ctau)")
        else:
            ctau = np.broadcast_to(np.asarray(ctau_mm, dtype=np.float64), (len(batch),))
        return tin.arrays(batch, self.normalisation, tin.log10_ctau(ctau, where))

    def predict(self, batch: JetBatch, *, ctau_mm: float | np.ndarray | None = None,
                batch_size: int = 8192) -> np.ndarray:
        """Class probabilities (n, 5), columns :attr:`class_names`, float32.

        Parameters
        ----------
        batch : JetBatch
            Jets (any reader).
        ctau_mm : float, (n,) array or None
            c-tau hypothesis (mm) for every jet, or per jet; None: every jet's own ``ctau``
            (jets of events without an LLP have none: refused).
        batch_size : int
            Jets per forward pass.

        Notes
        -----
        c-tau values are not range-checked here; call :meth:`check_ctau` with the policy of
        the command first.
        """
        if batch_size <= 0:
            raise ConfigError(f"batch_size must be positive, found {batch_size!r}")
        x = self.inputs(batch, ctau_mm=ctau_mm)
        if len(batch) == 0:
            return np.zeros((0, len(self.class_names)), dtype=np.float32)
        fn = self._predict_function()
        parts = []
        for start in range(0, len(batch), batch_size):
            chunk = {k: v[start:start + batch_size] for k, v in x.items()}
            parts.append(fn(chunk).numpy())
        return np.concatenate(parts).astype(np.float32, copy=False)

    def score(self, data: JetBatch, batch_size: int = 8192, *, ctau_mm=None
              ) -> dict[str, np.ndarray]:
        """Per-jet ``prob_<class>`` (float64) by score name (:meth:`predict`)."""
        probs = self.predict(data, ctau_mm=ctau_mm, batch_size=batch_size)
        return {name: probs[:, i].astype(np.float64) for i, name in enumerate(self.score_names)}
