"""Encoder input transforms of the HLF VAE: the ``model.input_transform`` config section.

``log1p: [HT, LepPt, ...]`` feeds the encoder ``log(1 + max(x, 0))`` of the named features in
place of ``x`` (before the normalisation, which is then fitted on the transformed values), so
that pT-like features with long tails reach the encoder on a compressed scale. Only the encoder
input changes: the likelihood targets of the decoder stay those of the raw features, with the
normalisation fitted on the raw training split (stored as ``input_transform.
target_normalisation`` in ``artifact.json``), so the ``nll`` score keeps its meaning.

The integer fixed-point graph (``mu2_q``, ``kl_q``) and the stream fast path take the transformed
features as their input (:meth:`InputTransform.apply` before the graph); the ONNX export and the
firmware, which take the raw features as their inputs, refuse a model with a transform
(:func:`refuse_transform`) rather than compute something else.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from triggerad import schema
from triggerad.errors import ConfigError, ModelFolderError, did_you_mean

#: Likelihood families of features that are >= 0 by construction (log1p allowed).
NON_NEGATIVE_FAMILIES = ("clipped_lognormal", "truncated_gaussian", "discrete_gaussian", "poisson")
#: The pT-like features (GeV): the natural choice for ``log1p``.
PT_LIKE = ("HT", "allJetMass", "allMuPt", "allMuMass", "allElePt", "allEleMass", "LepPt", "MT")


@dataclass
class InputTransformConfig:
    """The ``model.input_transform`` section (``hlf_vae`` only).

    Attributes
    ----------
    log1p : list of str
        Features (of :data:`triggerad.schema.FEATURE_NAMES`, with a non-negative likelihood
        family) the encoder sees as ``log(1 + max(x, 0))``; empty (default): no transform.
    """

    log1p: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        allowed = [n for n in schema.FEATURE_NAMES
                   if schema.FEATURE_LIKELIHOODS[n] in NON_NEGATIVE_FAMILIES]
        for name in self.log1p:
            if name not in schema.FEATURE_NAMES:
                raise ValueError(f"log1p: unknown feature {name!r}; "
                                 + did_you_mean(str(name), schema.FEATURE_NAMES))
            if name not in allowed:
                raise ValueError(
                    f"log1p: feature {name!r} ({schema.FEATURE_LIKELIHOODS[name]} likelihood) "
                    f"can be negative or is binary; log1p is for the non-negative features "
                    f"{allowed!r}")
        if len(set(self.log1p)) != len(self.log1p):
            raise ValueError(f"log1p: a feature is listed twice in {self.log1p!r}")


class InputTransform:
    """The encoder input transform of a model, with the raw normalisation of the targets.

    Parameters
    ----------
    log1p : sequence of str
        Transformed feature names (empty: identity).
    names : sequence of str
        The model's input names, in order.
    target_mean, target_scale : (d,) arrays or None
        Normalisation of the raw features (likelihood targets); None without a transform.
    """

    def __init__(self, log1p, names, target_mean=None, target_scale=None):
        self.log1p = [str(n) for n in log1p]
        self.columns = np.array([list(names).index(n) for n in self.log1p], dtype=np.int64)
        self.target_mean = target_mean
        self.target_scale = target_scale

    @property
    def active(self) -> bool:
        """True when some feature is transformed."""
        return bool(self.log1p)

    def apply(self, x: np.ndarray) -> np.ndarray:
        """The encoder's raw input: ``x`` with ``log(1 + max(x, 0))`` in the transformed
        columns (float32; ``x`` itself, not a copy, without a transform)."""
        if not self.active:
            return x
        out = np.array(x, dtype=np.float32, copy=True)
        cols = out[:, self.columns].astype(np.float64)
        out[:, self.columns] = np.log1p(np.maximum(cols, 0.0)).astype(np.float32)
        return out

    def targets(self, mean: np.ndarray, scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Normalisation of the likelihood targets: the raw one, or ``(mean, scale)``."""
        if not self.active:
            return mean, scale
        return self.target_mean, self.target_scale

    def to_meta(self) -> dict:
        """The ``input_transform`` entry of ``artifact.json``."""
        meta: dict = {"log1p": list(self.log1p)}
        if self.active:
            meta["target_normalisation"] = {"mean": np.asarray(self.target_mean).tolist(),
                                            "scale": np.asarray(self.target_scale).tolist()}
        return meta


def from_meta(file, meta: dict) -> InputTransform:
    """The :class:`InputTransform` of an ``artifact.json`` (identity for folders without one),
    checked against ``config.model.input_transform``.

    Raises
    ------
    ModelFolderError
        Naming ``file`` and the key when the entry is malformed or disagrees with the config
        the weights were trained with (an edited folder).
    """
    from anomaly.normalisation import checked_normalisation

    names = list(meta.get("input_names") or [])
    entry = meta.get("input_transform") or {"log1p": []}
    log1p = entry.get("log1p") if isinstance(entry, dict) else None
    if not isinstance(log1p, list) or any(n not in names for n in log1p):
        raise ModelFolderError(f"{file}: input_transform.log1p must be a list of input names "
                               f"{names!r}, found {log1p!r}; the file was edited. Retrain the model")
    configured = (((meta.get("config") or {}).get("model") or {}).get("input_transform")
                  or {}).get("log1p", [])
    if list(configured) != log1p:
        raise ModelFolderError(
            f"{file}: input_transform.log1p {log1p!r} differs from config.model.input_transform."
            f"log1p {list(configured)!r} the weights were trained with; the file was edited")
    if not log1p:
        return InputTransform([], names)
    mean, scale = checked_normalisation(f"{file}: input_transform.target_normalisation", names,
                                        entry.get("target_normalisation"))
    return InputTransform(log1p, names, mean, scale)


def refuse_transform(art, what: str) -> None:
    """Raise a ``ConfigError`` if the model ``art`` has an active input transform: ``what``
    (the ONNX export, the firmware) takes the raw features and would compute another score."""
    transform = getattr(art, "transform", None)
    if transform is not None and transform.active:
        raise ConfigError(
            f"{art.path}: {what} takes the raw features as inputs, but this model's encoder "
            f"sees log(1 + x) of {transform.log1p!r} (model.input_transform.log1p); {what} does "
            "not compute that transform, so it is refused. Train without "
            "model.input_transform for this use")
