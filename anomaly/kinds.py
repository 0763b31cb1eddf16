"""The anomaly-detection model kinds, ``hlf_vae`` and ``l1_vae``.

Registered with the core's model-kind registry through the entry points of pyproject.toml
(group ``trigger_ad.model_kinds``), so that ``trigger-ad score``, ``threshold``, ``evaluate`` and
``firmware`` open their folders without knowing this package (:mod:`triggerad.models`). Both
kinds share the folder layout of :mod:`anomaly.artifact`, the stream scorer of
:mod:`anomaly.stream.scoring` and the evaluation report of :mod:`anomaly.evaluate`; they differ
in their inputs.
"""

from __future__ import annotations

from pathlib import Path

from anomaly.artifact import FORMAT_VERSION
from triggerad.errors import ConfigError
from triggerad.models import ModelKind


class VAEKind(ModelKind):
    """A VAE model folder written by ``trigger-ad train``.

    Parameters
    ----------
    name : str
        The kind (``artifact.json`` ``kind``).
    description : str
        One line.
    input_fields : tuple of str
        Event-record fields the raw inputs are computed from (:func:`anomaly.artifact.raw_inputs`).
    empty_slot_mask : bool
        Inputs are trigger-object slots whose padded (empty) entries are zeroed after the
        normalisation, as in training (:func:`anomaly.model.input_mask`).
    """

    format_versions = (FORMAT_VERSION,)
    required_keys = ("input_names", "latent_dim", "normalisation", "scores", "default_score",
                     "config", "data_info")

    def __init__(self, name: str, description: str, *, input_fields: tuple[str, ...],
                 empty_slot_mask: bool):
        self.name = name
        self.description = description
        self.input_fields = input_fields
        self.empty_slot_mask = empty_slot_mask

    def load(self, path: Path, meta: dict):
        """The :class:`~anomaly.artifact.ModelArtifact` of the folder."""
        from anomaly.artifact import ModelArtifact

        return ModelArtifact(path, meta)

    def stream_scorer(self, model, *, scores=None, tf_batch_size: int = 8192, **options):
        """:class:`~anomaly.stream.scoring.StreamScorer` (numpy fast path for mu2 scores)."""
        from anomaly.stream.scoring import StreamScorer

        if options:
            raise ConfigError(f"{self.name} models take no scorer options, found {sorted(options)}")
        return StreamScorer(model, scores, tf_batch_size)

    def load_split(self, model, split: str):
        """The split of the background the model was trained on (fingerprint checked)."""
        from triggerad import data

        return data.load_split(model.data_info, split, where=f"{model.path}/artifact.json")

    def export_spec(self, path, options):
        """The float encoder (+ score; decoder when the score needs it) on raw inputs
        (:func:`anomaly.export.build_vae_export`)."""
        from anomaly.export import build_vae_export

        return build_vae_export(Path(path), options)

    def evaluate(self, model, data, out, *, config, overrides=None, progress=True) -> list[str]:
        """The evaluation report (:func:`anomaly.evaluate.evaluate`); per-signal summary lines.

        ``config`` is an ``evaluate`` YAML (path or packaged name), ``overrides`` its sections'
        values set from the command line.
        """
        from anomaly.evaluate import REPORT_MD, EvaluateConfig, evaluate
        from triggerad.config import load, resolve_config

        cfg = load(EvaluateConfig, resolve_config(config), overrides=overrides)
        report = evaluate(model, data, out, cfg, progress=progress)
        n_month = cfg.report.events_per_month
        key = f"xsec_{n_month:g}_per_month_pb"
        lines = []
        for name, row in report["signals"].items():
            xsec = "-" if row[key] is None else f"{row[key]:.3g} pb"
            lines.append(f"{name:>14}: efficiency {row['efficiency']:.3g}, AUC {row['auc']:.3f}, "
                         f"sigma for {n_month:g} events/month {xsec}")
        return [*lines, f"wrote {out}/{REPORT_MD} and report.json"]


HLF_VAE = VAEKind(
    "hlf_vae", "VAE on the 21 high-level features (Cerri et al. 2019)",
    input_fields=("objects", "ele_charge", "mu_charge", "ele_iso", "mu_iso", "jet_mass",
                  "jet_btag", "n_ch_had", "n_neu_had", "hlf"),
    empty_slot_mask=False,
)
L1_VAE = VAEKind(
    "l1_vae", "VAE on the 57 L1 trigger-object inputs (AXOL1TL layout)",
    input_fields=("objects",), empty_slot_mask=True,
)

#: The kinds of this package by name.
KINDS = {kind.name: kind for kind in (HLF_VAE, L1_VAE)}
#: Event-record fields the raw inputs of each kind are computed from.
INPUT_FIELDS = {name: kind.input_fields for name, kind in KINDS.items()}
