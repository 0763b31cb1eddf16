"""The saved model folder ``MODEL/`` and the :class:`ModelArtifact` used by every later step.

Layout::

    MODEL/artifact.json                  kind, input schema, normalisation, scores, config, versions,
                                         data_info (background files, split, fingerprint)
    MODEL/vae.weights.h5                 float VAE weights (encoder + decoder)
    MODEL/quantized_encoder.weights.h5   QKeras encoder weights (mu and logvar heads)
    MODEL/fastpath.json                  the integer score graph for TensorFlow-free scoring
                                         (anomaly/stream/fastpath.py; checked on load)
    MODEL/threshold.json                 written later by ``trigger-ad threshold``
    MODEL/logs/, MODEL/checkpoints/      TensorBoard logs and best-epoch weights of the training
    MODEL/provenance.json, MODEL/config.resolved.yaml

Models are rebuilt from the stored config by :mod:`anomaly.model` and the weights loaded, so no
Keras/QKeras deserialisation of custom objects is involved.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from anomaly.normalisation import checked_normalisation
from anomaly.transform import from_meta as input_transform
from triggerad import atomic, models, schema
from triggerad.config import build
from triggerad.errors import SchemaMismatchError, did_you_mean
from triggerad.events import EventBatch
from triggerad.models import ARTIFACT_FILE, ModelFolderError
from triggerad.provenance import library_versions

log = logging.getLogger(__name__)

VAE_WEIGHTS = "vae.weights.h5"
QUANTIZED_WEIGHTS = "quantized_encoder.weights.h5"
FORMAT_VERSION = 1

#: What each score means (stored in artifact.json). All are per event; larger = more anomalous.
SCORE_DEFINITIONS = {
    "loss": "nll + beta * kl: the VAE loss with the decoder evaluated at z = mu",
    "nll": "reconstruction negative log-likelihood at z = mu (HLF: summed per-feature likelihoods; "
    "L1: 0.5 * sum over occupied inputs of the squared normalised residual)",
    "kl": "KL(N(mu, sigma^2) || N(0, 1)) summed over latent dims, float encoder",
    "mu2": "sum over latent dims of mu^2, float encoder (AXOL1TL score)",
    "mu2_q": "sum over latent dims of mu^2 of the quantized encoder, in exact fixed-point integer "
    "arithmetic (quantization.fixed_point types): the firmware score, bit for bit",
    "kl_q": "KL term from the fixed-point encoder's mu and logvar (float64 exp/log of exact "
    "integer outputs)",
}
SCORE_NAMES = tuple(SCORE_DEFINITIONS)
DEFAULT_SCORE = {"hlf_vae": "nll", "l1_vae": "mu2_q"}


def raw_inputs(kind: str, batch: EventBatch, where: str = "event batch") -> np.ndarray:
    """Raw (un-normalised) model inputs of ``batch``: the 21 features or the 57 L1 inputs.

    Raises
    ------
    SchemaMismatchError
        For an L1 model and a batch without trigger objects, or an HLF model and a batch with
        neither objects nor precomputed features.
    """
    from anomaly import features

    source = str(batch.source_file[0]) if len(batch) and batch.source_file[0] else where
    if kind == "l1_vae":
        if not batch.has_objects:
            raise SchemaMismatchError(
                f"{source}: the l1_vae model expects the 57 L1 inputs (19 trigger objects x "
                "[pT, eta, phi]), found a feature-only source without objects; use an object-level "
                "file (ADC2021 HDF5, Delphes, NanoAOD)"
            )
        return features.l1_inputs(batch)
    if not batch.has_objects and batch.hlf is None:
        raise SchemaMismatchError(
            f"{source}: the hlf_vae model expects the 21 features {list(schema.FEATURE_NAMES)}, "
            "found neither trigger objects nor precomputed features"
        )
    return features.compute_features(batch)


def versions() -> dict[str, str]:
    """Versions of trigger-ad and the libraries that define the saved model."""
    return library_versions(("tensorflow", "qkeras", "numpy"))


def write_artifact_files(
    folder: str | Path, *, vae, quantized_encoder, mean: np.ndarray, scale: np.ndarray,
    config: dict, data_info: dict, metrics: dict | None = None, transform=None,
) -> None:
    """Write ``artifact.json`` and the weights into an existing (temporary) folder.

    Parameters
    ----------
    folder : path
        Target folder (normally the temporary folder of :func:`triggerad.atomic.atomic_dir`).
    vae : anomaly.model.VAE
        Trained float model.
    quantized_encoder : keras.Model
        QKeras encoder with ``mu`` and ``logvar`` outputs.
    mean, scale : (d,) arrays
        Normalisation fitted on the training split.
    config : dict
        The resolved training config (``triggerad.config.to_dict``), with a ``model`` and a
        ``quantization`` section.
    data_info : dict
        From :func:`triggerad.data.describe`.
    metrics : dict, optional
        Training summary (final losses, epochs) stored for reference.
    transform : anomaly.transform.InputTransform, optional
        The encoder input transform (``mean``, ``scale`` are then those of the transformed
        inputs); stored as ``input_transform``.
    """
    from anomaly.model import input_names, quiet_qkeras
    from anomaly.stream.fastpath import write_fastpath

    folder = Path(folder)
    kind = vae.kind
    meta = {
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "input_names": list(input_names(kind)),
        "latent_dim": int(config["model"]["latent_dim"]),
        "normalisation": {"mean": np.asarray(mean).tolist(), "scale": np.asarray(scale).tolist()},
        "input_transform": transform.to_meta() if transform is not None else {"log1p": []},
        "scores": SCORE_DEFINITIONS,
        "default_score": DEFAULT_SCORE[kind],
        "versions": versions(),
        "config": config,
        "data_info": data_info,
        "metrics": metrics or {},
    }
    with quiet_qkeras():
        vae.save_weights(str(folder / VAE_WEIGHTS))
        quantized_encoder.save_weights(str(folder / QUANTIZED_WEIGHTS))
    atomic.write_json(folder / ARTIFACT_FILE, meta)
    # the integer score graph, built from the saved weights, for TensorFlow-free scoring
    write_fastpath(folder, meta, ModelArtifact(folder, meta).fixed_graph())


def save_artifact(path: str | Path, **kwargs) -> Path:
    """Write a complete model folder atomically (arguments as :func:`write_artifact_files`)."""
    with atomic.atomic_dir(path) as tmp:
        write_artifact_files(tmp, **kwargs)
    return Path(path)


def load_artifact(path: str | Path) -> ModelArtifact:
    """Open a model folder written by ``trigger-ad train`` (format version and kind checked).

    Raises
    ------
    InputFileError
        If ``path`` is not a model folder or its ``artifact.json`` is unreadable.
    ModelFolderError
        If ``artifact.json`` lacks a key, has another format version, or describes a model kind
        that is not an anomaly VAE.
    """
    return models.load_model_as(path, ModelArtifact, "an anomaly VAE (hlf_vae, l1_vae)")


def _checked_normalisation(path: Path, meta: dict) -> tuple[np.ndarray, np.ndarray]:
    """The normalisation of ``artifact.json``, its latent size and weight files, checked.

    Raises
    ------
    ModelFolderError
        Naming the file and what is wrong (edited or incomplete folder).
    """
    file = path / ARTIFACT_FILE
    names = meta.get("input_names")
    if not isinstance(names, list) or not names:
        raise ModelFolderError(f"{file}: input_names must be a non-empty list, found {names!r}")
    mean, scale = checked_normalisation(file, names, meta.get("normalisation"))
    model_cfg = (meta.get("config") or {}).get("model") or {}
    if "latent_dim" in model_cfg and meta.get("latent_dim") != model_cfg["latent_dim"]:
        raise ModelFolderError(
            f"{file}: latent_dim {meta.get('latent_dim')!r} differs from config.model.latent_dim "
            f"{model_cfg['latent_dim']!r} the weights were trained with; the file was edited"
        )
    missing = [w for w in (VAE_WEIGHTS, QUANTIZED_WEIGHTS) if not (path / w).is_file()]
    if missing:
        raise ModelFolderError(
            f"{path}: weight file {', '.join(missing)} missing; the folder is incomplete. Copy "
            "the whole model folder, or retrain the model"
        )
    return mean, scale


class ModelArtifact(models.ModelFolder):
    """A trained model folder: inputs, normalisation, scores, encoders and threshold.

    ``path``, ``meta``, ``kind``, ``config``, ``data_info``, ``threshold`` and
    ``write_threshold`` come from :class:`triggerad.models.ModelFolder`. Models are built lazily
    on first use. See the module docstring for the folder layout.
    """

    def __init__(self, path: Path, meta: dict):
        super().__init__(path, meta)
        self.mean, self.scale = _checked_normalisation(self.path, meta)
        self.transform = input_transform(self.path / ARTIFACT_FILE, meta)
        self._models = None
        self._score_fn = None
        self._graph = None

    # Metadata ----------------------------------------------------------------------------------
    @property
    def input_names(self) -> list[str]:
        """Ordered names of the raw inputs."""
        return list(self.meta["input_names"])

    @property
    def latent_dim(self) -> int:
        """Latent dimension."""
        return int(self.meta["latent_dim"])

    @property
    def default_score(self) -> str:
        """Score used when none is asked for (``nll`` for hlf_vae, ``mu2_q`` for l1_vae)."""
        return self.meta["default_score"]

    @property
    def score_names(self) -> list[str]:
        """Names of the scores :meth:`score` returns."""
        return list(self.meta["scores"])

    # Inputs ------------------------------------------------------------------------------------
    def _check_schema(self, found: list[str], where: str) -> None:
        expected = self.input_names
        if found != expected:
            diff = [n for n in expected if n not in found] or [n for n in found if n not in expected]
            hint = f"; first difference {diff[0]!r}" if diff else " (same names, different order)"
            raise SchemaMismatchError(
                f"{where}: the {self.kind} model at {self.path} expects {len(expected)} inputs "
                f"{expected}, found {len(found)} inputs {found}{hint}"
            )

    def inputs(self, batch: EventBatch) -> np.ndarray:
        """Raw inputs (n, d) float32 of ``batch`` in :attr:`input_names` order.

        Raises
        ------
        SchemaMismatchError
            If the batch cannot give this model's inputs or the model was trained on another schema.
        """
        from anomaly.features import input_names

        self._check_schema(list(input_names(self.kind)), "input schema of this trigger-ad version")
        return raw_inputs(self.kind, batch)

    def _as_inputs(self, data) -> np.ndarray:
        """Raw inputs from an EventBatch, a DataFrame (columns by name) or an (n, d) array."""
        if isinstance(data, EventBatch):
            return self.inputs(data)
        if hasattr(data, "columns"):
            columns = list(map(str, data.columns))
            missing = [n for n in self.input_names if n not in columns]
            if missing:
                same = [c for c in columns if c.lower() == missing[0].lower()]
                hint = f"did you mean {same[0]!r}?" if same else did_you_mean(missing[0], columns)
                raise SchemaMismatchError(
                    f"table: the {self.kind} model needs column {missing[0]!r} (and "
                    f"{len(missing) - 1} more missing); {hint}"
                )
            return data[self.input_names].to_numpy(np.float32)
        x = np.asarray(data, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != len(self.input_names):
            raise SchemaMismatchError(
                f"array input: the {self.kind} model expects shape (n, {len(self.input_names)}) "
                f"with columns {self.input_names}, found shape {x.shape}"
            )
        return x

    def transformed(self, x: np.ndarray) -> np.ndarray:
        """Raw inputs as the encoder and the integer graph take them: ``x``, with
        ``log(1 + max(x, 0))`` in the columns of ``model.input_transform.log1p`` (if any)."""
        return self.transform.apply(np.asarray(x, dtype=np.float32))

    def normalise(self, x: np.ndarray) -> np.ndarray:
        """``(transformed(x) - mean) / scale`` with the training-split normalisation, float32."""
        return ((self.transformed(x) - self.mean) / self.scale).astype(np.float32)

    # Models ------------------------------------------------------------------------------------
    def _build(self):
        if self._models is None:
            from anomaly import model as m

            where = f"{self.path / ARTIFACT_FILE}:config"
            mcfg = build(m.ModelConfig, self.config["model"], where=f"{where}.model")
            qcfg = self.quantization_config()
            vae = m.build_vae(mcfg)
            qenc = m.build_quantized_encoder(len(self.input_names), mcfg, qcfg)
            for net, name in ((vae, VAE_WEIGHTS), (qenc, QUANTIZED_WEIGHTS)):
                try:
                    net.load_weights(str(self.path / name))
                except (OSError, ValueError, KeyError) as err:
                    raise ModelFolderError(
                        f"{self.path / name}: cannot load the weights ({err}); the file is "
                        "corrupt or belongs to another model. Retrain the model"
                    ) from err
            self._models = (vae, qenc)
        return self._models

    def vae(self):
        """The float :class:`anomaly.model.VAE` (encoder + decoder) with the stored weights."""
        return self._build()[0]

    def quantization_config(self):
        """The ``quantization`` section (:class:`anomaly.model.QuantizationConfig`), with its
        ``fixed_point`` types (defaults for folders written before they were stored)."""
        from anomaly.model import QuantizationConfig

        where = f"{self.path / ARTIFACT_FILE}:config.quantization"
        return build(QuantizationConfig, self.config["quantization"], where=where)

    def fixed_graph(self):
        """The integer fixed-point graph: raw inputs -> normalisation -> encoder -> ``score``.

        Its inputs are :meth:`transformed` raw inputs (the raw inputs without an input transform).

        Built once from the quantized encoder and ``quantization.fixed_point``
        (:func:`anomaly.quantized.score_graph`); ``mu2_q`` and ``kl_q`` are computed from it and
        the firmware converts exactly this graph.
        """
        if self._graph is None:
            from anomaly.model import quiet_qkeras
            from anomaly.quantized import score_graph

            with quiet_qkeras():
                self._graph = score_graph(self._build()[1], self.quantization_config().fixed_point,
                                          self.mean, self.scale)
        return self._graph

    def score_digest(self, score: str) -> str | None:
        """Digest of the integer graph for a bit-exact score (``mu2_q``), else None."""
        from anomaly.quantized import BIT_EXACT_SCORES

        return self.fixed_graph().digest() if score in BIT_EXACT_SCORES else None

    def float_encoder(self):
        """Keras model: normalised inputs (n, d) -> mu (n, latent_dim), float weights."""
        from anomaly.model import mu_model

        return mu_model(self._build()[0].encoder, "float_encoder")

    def quantized_encoder(self):
        """QKeras model (QDense + QActivation stack): normalised inputs (n, d) -> mu (n, latent)."""
        from anomaly.model import mu_model, quiet_qkeras

        with quiet_qkeras():
            return mu_model(self._build()[1], "quantized_encoder")

    def _scores_function(self):
        if self._score_fn is None:
            import tensorflow as tf

            vae = self._build()[0]

            @tf.function(reduce_retracing=True)
            def fn(inputs):
                return vae.terms(inputs, sample=False)

            self._score_fn = fn
        return self._score_fn

    def score(self, data, batch_size: int = 10_000) -> dict[str, np.ndarray]:
        """Per-event scores ``loss``, ``nll``, ``kl``, ``mu2``, ``mu2_q``, ``kl_q`` (float64, (n,)).

        The float scores come from TensorFlow (float32: reproducible for the same batch size on
        the same machine, equal within float tolerance otherwise); ``mu2_q`` and ``kl_q`` from
        the integer fixed-point graph (:mod:`anomaly.quantized`: ``mu2_q`` is bit-exact for any
        batch size, machine and thread count).

        Parameters
        ----------
        data : EventBatch, DataFrame or (n, d) array
            Events, or raw inputs in :attr:`input_names` order.
        batch_size : int
            Events per forward pass.
        """
        from anomaly.model import prepare_inputs
        from anomaly.quantized import FIXED_POINT_SCORES, quantized_scores

        x = self._as_inputs(data)
        fn = self._scores_function()
        graph = self.fixed_graph()
        parts: dict[str, list[np.ndarray]] = {k: [] for k in SCORE_NAMES}
        for start in range(0, len(x), batch_size):
            chunk = x[start:start + batch_size]
            out = {k: v.numpy() for k, v in fn(prepare_inputs(
                self.kind, chunk, self.mean, self.scale, transform=self.transform)).items()}
            out.update(quantized_scores(graph, self.transformed(chunk), FIXED_POINT_SCORES))
            for k in SCORE_NAMES:
                parts[k].append(np.asarray(out[k], dtype=np.float64))
        return {
            k: np.concatenate(v) if v else np.zeros(0, dtype=np.float64) for k, v in parts.items()
        }
