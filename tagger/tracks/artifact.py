"""The track-classifier model folder (kind ``track_classifier``) and the loaded model.

Layout::

    MODEL/artifact.json          kind, format_version, architecture, labelling (supervised or
                                 cwola with its fractions), input features, n_tracks,
                                 normalisation, the model and training config, data_info (file,
                                 mu, fingerprint, split), training summary (epochs, seconds,
                                 events/s), versions
    MODEL/weights.h5             Keras weights of the network of :mod:`tagger.tracks.models`
    MODEL/provenance.json, MODEL/config.resolved.yaml

The network is rebuilt from the stored config and the weights loaded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tagger.tracks import features as feat
from tagger.tracks.config import ModelsConfig
from triggerad import atomic
from triggerad.config import build, to_dict
from triggerad.models import ARTIFACT_FILE, ModelFolder
from triggerad.provenance import library_versions

KIND = "track_classifier"
FORMAT_VERSION = 1
WEIGHTS = "weights.h5"
REQUIRED_KEYS = ("architecture", "labelling", "input_features", "n_tracks", "normalisation",
                 "models", "data_info", "training")


def write(folder: str | Path, *, net, architecture: str, labelling: dict, n_tracks: int,
          normalisation: dict, models: ModelsConfig, data_info: dict, training: dict) -> None:
    """Write ``artifact.json`` and the weights into ``folder`` (a temporary folder)."""
    folder = Path(folder)
    net.save_weights(str(folder / WEIGHTS))
    atomic.write_json(folder / ARTIFACT_FILE, {
        "format_version": FORMAT_VERSION, "kind": KIND, "architecture": architecture,
        "labelling": labelling, "input_features": list(models.inputs),
        "n_tracks": n_tracks, "normalisation": normalisation, "models": to_dict(models),
        "data_info": data_info, "training": training,
        "versions": library_versions(("tensorflow", "numpy")),
    })


class TrackClassifier(ModelFolder):
    """A loaded track classifier: ``score(tracks, n_tracks)`` -> P(signal-like) per event."""

    def __init__(self, path: str | Path, meta: dict):
        from tagger.tracks.models import build as build_net

        super().__init__(path, meta)
        cfg = build(ModelsConfig, meta["models"], where=f"{self.path / ARTIFACT_FILE}: models")
        self.net = build_net(meta["architecture"], cfg, meta["n_tracks"],
                             len(meta["input_features"]), norm=meta["normalisation"])
        self.net.load_weights(str(self.path / WEIGHTS))

    @property
    def name(self) -> str:
        lab = self.meta["labelling"]
        tag = lab["name"] if lab["name"] == "supervised" else f"cwola_f{lab['fraction']:g}"
        cap = self.meta["data_info"].get("split", {}).get("max_train_events")
        return (f"{self.meta['architecture']}_{tag}_mu{self.meta['data_info']['mu']:g}"
                + (f"_n{cap}" if cap else ""))

    @property
    def score_names(self) -> list[str]:
        return ["p_signal"]

    @property
    def default_score(self) -> str:
        return "p_signal"

    def logits(self, tracks: np.ndarray, n_tracks: np.ndarray, batch_size: int = 1024
               ) -> np.ndarray:
        """Network output per event for raw tracks (n, N, 7) and counts (n,)."""
        x, mask = feat.inputs(tracks, n_tracks, self.meta["normalisation"],
                              self.meta["input_features"])
        return self.net.predict([x, mask], batch_size=batch_size, verbose=0)[:, 0]

    def score(self, tracks: np.ndarray, n_tracks: np.ndarray, batch_size: int = 1024
              ) -> np.ndarray:
        """P(signal-like) per event (mixture 1 for a CWoLa model)."""
        return 1.0 / (1.0 + np.exp(-self.logits(tracks, n_tracks, batch_size)))

