"""The LLP tagger's model kind, ``llp_tagger``.

Registered with the core's model-kind registry through the entry point of pyproject.toml (group
``trigger_ad.model_kinds``), so that the commands taking a model folder open it without knowing
this package (:mod:`triggerad.models`). Evaluation and stream scoring are added by the
``tagger evaluate`` / ``tagger score`` commands.
"""

from __future__ import annotations

from pathlib import Path

from tagger.artifact import FORMAT_VERSION, KIND, REQUIRED_KEYS
from triggerad.models import ModelKind


class TaggerKind(ModelKind):
    """An LLP jet-tagger folder written by ``trigger-ad tagger train`` (:mod:`tagger.artifact`)."""

    name = KIND
    description = "c-tau-parametrised LLP jet tagger with domain adaptation (arXiv:1912.12238)"
    format_versions = (FORMAT_VERSION,)
    required_keys = REQUIRED_KEYS

    def load(self, path: Path, meta: dict):
        """The :class:`~tagger.artifact.TaggerModel` of the folder."""
        from tagger.artifact import TaggerModel

        return TaggerModel(path, meta)


LLP_TAGGER = TaggerKind()
