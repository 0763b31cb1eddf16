"""Fixed physics input scales of the L1 VAE: the ``model.normalisation`` config section.

The fitted scales (the default) are computed by :func:`anomaly.model.fit_normalisation`; with
``mode: fixed`` it returns :func:`fixed_normalisation` instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from triggerad import schema
from triggerad.errors import ModelFolderError, did_you_mean

#: Object types of the L1 slots, the keys of a per-type ``model.normalisation.pt``.
OBJECT_TYPES = ("MET", "Electron", "Muon", "Jet")


@dataclass
class NormalisationConfig:
    """The ``model.normalisation`` section: how the inputs are scaled before the encoder.

    ``fitted`` (default): fitted on the training split (:func:`anomaly.model.fit_normalisation`). ``fixed``
    (``l1_vae`` only): physics constants, AXOL1TL style - every pT (and MET) divided by ``pt``
    GeV, every eta by ``eta`` and every phi by ``phi``, mean 0. Fixed scales do not depend on
    which slots the training sample happens to fill (a fitted never-filled slot gets scale 1, so
    a handful of events can change it several-fold). Powers of two are exact in the
    fixed-point graph; other values are rounded to ``quantization.fixed_point.
    norm_constants_bits`` significant bits there, like fitted scales.

    Attributes
    ----------
    mode : {"fitted", "fixed", "robust"}
        ``robust`` (``hlf_vae`` only): median and IQR / 1.349 instead of mean and standard
        deviation (the standard deviation when the IQR is 0), fitted on the training split.
    pt : float or dict of str to float
        pT scale [GeV]: one value, or one per object type (:data:`OBJECT_TYPES`, all required).
    eta, phi : float
        Scales of eta and phi.
    """

    mode: Literal["fitted", "fixed", "robust"] = "fitted"
    pt: float | dict[str, float] = 64.0
    eta: float = 4.0
    phi: float = 4.0

    def __post_init__(self) -> None:
        if isinstance(self.pt, dict):
            for key in self.pt:
                if key not in OBJECT_TYPES:
                    raise ValueError(f"pt: unknown object type {key!r}; "
                                     + did_you_mean(str(key), OBJECT_TYPES))
            missing = [t for t in OBJECT_TYPES if t not in self.pt]
            if missing:
                raise ValueError(f"pt: missing object types {missing!r} (give all of "
                                 f"{list(OBJECT_TYPES)!r} or one number)")
        values = {"eta": self.eta, "phi": self.phi,
                  **({f"pt.{k}": v for k, v in self.pt.items()} if isinstance(self.pt, dict)
                     else {"pt": self.pt})}
        for name, value in values.items():
            if not 0 < value < float("inf"):
                raise ValueError(f"{name} must be a positive finite scale, found {value!r}")

    def pt_scales(self) -> dict[str, float]:
        """The pT scale of each object type."""
        if isinstance(self.pt, dict):
            return {t: float(self.pt[t]) for t in OBJECT_TYPES}
        return dict.fromkeys(OBJECT_TYPES, float(self.pt))


def fixed_normalisation(cfg: NormalisationConfig) -> tuple[np.ndarray, np.ndarray]:
    """``(mean, scale)`` of the 57 L1 inputs from the fixed scales of ``cfg`` (mean 0)."""
    pt = cfg.pt_scales()
    slot_type = [next(t for t in OBJECT_TYPES if slot.startswith(t)) for slot in schema.SLOT_NAMES]
    scale = np.array([[pt[t], cfg.eta, cfg.phi] for t in slot_type], dtype=np.float64).ravel()
    return np.zeros(scale.size, np.float32), scale.astype(np.float32)


def checked_normalisation(file, names: list[str], norm) -> tuple[np.ndarray, np.ndarray]:
    """The ``normalisation`` entry of an ``artifact.json`` as (mean, scale) float32 arrays, one
    value per input name, checked: finite means, finite positive scales.

    Raises
    ------
    ModelFolderError
        Naming ``file``, the key and the input whose value is wrong (edited or incomplete folder).
    """
    arrays = []
    for key in ("mean", "scale"):
        try:
            values = np.asarray(norm[key], dtype=np.float32)
        except (KeyError, TypeError, ValueError) as err:
            raise ModelFolderError(
                f"{file}: normalisation.{key} missing or not a list of numbers ({err!r}); the "
                "folder is incomplete or was edited. Retrain the model"
            ) from err
        if values.shape != (len(names),):
            raise ModelFolderError(
                f"{file}: normalisation.{key} has shape {values.shape}, expected "
                f"({len(names)},) (one per input name)"
            )
        bad = ~np.isfinite(values) if key == "mean" else ~(np.isfinite(values) & (values > 0))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            need = "finite" if key == "mean" else "finite and > 0"
            raise ModelFolderError(
                f"{file}: normalisation.{key} of {names[i]!r} is {float(values[i])!r}, must be "
                f"{need} ({int(bad.sum())} bad values); the file was edited. Retrain the model"
            )
        arrays.append(values)
    return arrays[0], arrays[1]
