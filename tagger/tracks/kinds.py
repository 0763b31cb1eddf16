"""The track classifier's model kind, ``track_classifier`` (entry point in pyproject.toml,
group ``trigger_ad.model_kinds``)."""

from __future__ import annotations

from pathlib import Path

from tagger.tracks.artifact import FORMAT_VERSION, KIND, REQUIRED_KEYS
from triggerad.models import ModelKind, load_model_as, register_kind


class TrackClassifierKind(ModelKind):
    """A folder of ``trigger-ad tagger tracks-train`` (:mod:`tagger.tracks.artifact`)."""

    name = KIND
    description = "track-level LLP event classifier (per-track MLP or Transformer)"
    format_versions = (FORMAT_VERSION,)
    required_keys = REQUIRED_KEYS

    def load(self, path: Path, meta: dict):
        from tagger.tracks.artifact import TrackClassifier

        return TrackClassifier(path, meta)


TRACK_CLASSIFIER = TrackClassifierKind()


def load(path: str | Path):
    """Open a track-classifier folder (:class:`~tagger.tracks.artifact.TrackClassifier`; other
    kinds are refused, naming the file)."""
    from tagger.tracks.artifact import TrackClassifier

    register_kind(TRACK_CLASSIFIER)  # also before `pip install -e .` picks up the entry point
    return load_model_as(path, TrackClassifier, "a track classifier (trigger-ad tagger "
                         "tracks-train)")
