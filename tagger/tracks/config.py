"""Configuration of the track-level LLP study (``configs/tracks*.yaml``; every key: docs/tracks.md).

Sections: ``beam``, ``pileup`` (as in ``trigger-ad generate``; the mu values themselves are in
``selection.mu``), ``signals`` (LLP models of :class:`tagger.samples.SignalConfig`), ``processes``
(QCD, :class:`~triggerad.generation.config.ProcessConfig`), ``ctau``, ``tracking``,
``selection`` (which tracks are kept), ``models`` (network sizes), ``training``, ``cwola`` and
``output``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from tagger.samples import CtauConfig, SignalConfig
from tagger.tracks.features import AVAILABLE_FEATURES, INPUT_FEATURES
from tagger.tracks.pairs import PAIR_FEATURES, needed_inputs
from triggerad import config as tconfig
from triggerad.errors import did_you_mean
from triggerad.generation.config import BeamConfig, OutputConfig, PileupConfig, ProcessConfig
from triggerad.generation.tracking import CalorimeterConfig, TrackingConfig


@dataclass
class SelectionConfig:
    """Tracks kept per event: pT > ``pt_min`` GeV, |eta| < ``eta_max`` (the tracker's own
    ``tracking.eta_max`` applies first), the ``n_tracks`` highest-pT ones; samples at every
    pile-up ``mu`` in the list.

    ``dz_reference``: ``primary_vertex`` (default) puts the hard interaction at the origin, so
    the track dz is measured from the true primary vertex; ``beam_spot`` puts it at
    z ~ N(0, ``pileup.beamspot_sigma_z``) per event, like every pile-up interaction, and the dz
    is measured from the beam spot (z = 0), as an L1 track trigger measures z0 (the primary
    vertex has to be found from the tracks)."""

    pt_min: float = 0.5
    eta_max: float = 5.0
    n_tracks: int = 80
    mu: list[float] = field(default_factory=lambda: [0.0, 60.0])
    dz_reference: Literal["primary_vertex", "beam_spot"] = "primary_vertex"

    def __post_init__(self) -> None:
        if self.n_tracks <= 0 or self.pt_min < 0 or self.eta_max <= 0:
            raise ValueError(f"n_tracks and eta_max must be positive, pt_min >= 0, found "
                             f"{self.n_tracks!r}, {self.eta_max!r}, {self.pt_min!r}")
        if not self.mu or any(m < 0 for m in self.mu):
            raise ValueError(f"mu must be a non-empty list of values >= 0, found {self.mu!r}")


@dataclass
class MLPConfig:
    """Per-track MLP (``track_layers`` units each), masked mean pooling, event MLP
    (``event_layers``)."""

    track_layers: list[int] = field(default_factory=lambda: [64, 64])
    event_layers: list[int] = field(default_factory=lambda: [64])


@dataclass
class TransformerConfig:
    """Track embedding of ``dim`` units, ``layers`` encoder blocks (``heads`` heads of
    multi-head self-attention over the unpadded tracks, layer norm, feed-forward ``ff_dim``),
    masked mean pooling, event MLP (``event_layers``). ``pair_features`` (names of
    :data:`tagger.tracks.pairs.PAIR_FEATURES`; empty: none) add a per-head attention bias from
    pairwise track features through a per-pair MLP of ``pair_layers`` units."""

    dim: int = 32
    heads: int = 4
    layers: int = 2
    ff_dim: int = 64
    dropout: float = 0.0
    event_layers: list[int] = field(default_factory=lambda: [64])
    pair_features: list[str] = field(default_factory=list)
    pair_layers: list[int] = field(default_factory=lambda: [32, 32])

    def __post_init__(self) -> None:
        if self.dim % self.heads:
            raise ValueError(f"dim must be a multiple of heads, found dim {self.dim!r}, heads "
                             f"{self.heads!r}")
        for name in self.pair_features:
            if name not in PAIR_FEATURES:
                raise ValueError(f"pair_features: unknown pair feature {name!r}; "
                                 + did_you_mean(name, PAIR_FEATURES))


@dataclass
class ModelsConfig:
    """Both networks' sizes and the per-track ``inputs`` they see (names of
    :data:`tagger.tracks.features.AVAILABLE_FEATURES`, default ``INPUT_FEATURES``)."""

    mlp: MLPConfig = field(default_factory=MLPConfig)
    transformer: TransformerConfig = field(default_factory=TransformerConfig)
    inputs: list[str] = field(default_factory=lambda: list(INPUT_FEATURES))

    def __post_init__(self) -> None:
        for name in self.inputs:
            if name not in AVAILABLE_FEATURES:
                raise ValueError(f"inputs: unknown track feature {name!r}; "
                                 + did_you_mean(name, AVAILABLE_FEATURES))
        if not self.inputs or len(set(self.inputs)) != len(self.inputs):
            raise ValueError(f"inputs: expected distinct feature names, found {self.inputs!r}")
        missing = [n for n in needed_inputs(self.transformer.pair_features)
                   if n not in self.inputs]
        if missing:
            raise ValueError(f"inputs: the transformer's pair_features need the inputs "
                             f"{missing!r}, found {self.inputs!r}")


@dataclass
class TrainingConfig:
    """Adam with ``learning_rate`` (``schedule`` constant, or cosine: decaying to 0 over
    ``epochs``), ``epochs`` (early stopping after ``patience`` epochs without
    a better validation loss), ``batch_size``; the events of each (mu) sample are split
    train / validation / test by ``val_fraction`` and ``test_fraction`` with ``seed``;
    ``max_train_events`` (default all) trains on the first that many events of the shuffled
    training split only (validation and test events unchanged: learning curves)."""

    epochs: int = 20
    batch_size: int = 128
    learning_rate: float = 1e-3
    patience: int = 5
    val_fraction: float = 0.2
    test_fraction: float = 0.25
    seed: int = 1
    schedule: Literal["constant", "cosine"] = "constant"
    max_train_events: int | None = None

    def __post_init__(self) -> None:
        if min(self.epochs, self.batch_size, self.patience) <= 0 or self.learning_rate <= 0:
            raise ValueError("epochs, batch_size, patience and learning_rate must be positive")
        if self.max_train_events is not None and self.max_train_events <= 0:
            raise ValueError(f"max_train_events must be positive (or null: all), found "
                             f"{self.max_train_events!r}")
        if not (0 < self.val_fraction < 1 and 0 < self.test_fraction < 1
                and self.val_fraction + self.test_fraction < 1):
            raise ValueError(f"val_fraction and test_fraction must be in (0, 1) with a sum < 1, "
                             f"found {self.val_fraction!r}, {self.test_fraction!r}")


@dataclass
class CwolaConfig:
    """Weak supervision: mixture 1 holds signal fraction ``fraction`` (``--fraction``), mixture 2
    ``reference_fraction`` (0: background only); the networks learn mixture 1 vs 2."""

    fraction: float = 0.3
    reference_fraction: float = 0.0

    def __post_init__(self) -> None:
        if not 0 <= self.reference_fraction < self.fraction < 1:
            raise ValueError(f"expected 0 <= reference_fraction < fraction < 1, found "
                             f"{self.reference_fraction!r}, {self.fraction!r}")


@dataclass
class TracksConfig:
    """The whole config (module docstring)."""

    signals: dict[str, SignalConfig]
    processes: dict[str, ProcessConfig]
    beam: BeamConfig = field(default_factory=BeamConfig)
    pileup: PileupConfig = field(default_factory=PileupConfig)
    ctau: CtauConfig = field(default_factory=CtauConfig)
    tracking: TrackingConfig = field(default_factory=lambda: TrackingConfig(pt_min=0.5))
    calorimeter: CalorimeterConfig = field(default_factory=CalorimeterConfig)
    selection: SelectionConfig = field(default_factory=SelectionConfig)
    models: ModelsConfig = field(default_factory=ModelsConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    cwola: CwolaConfig = field(default_factory=CwolaConfig)
    output: OutputConfig = field(default_factory=OutputConfig)

    def __post_init__(self) -> None:
        if not self.signals or not self.processes:
            raise ValueError("configure at least one signal and one QCD process")
        for name, proc in self.processes.items():
            if proc.kind != "sm":
                raise ValueError(f"processes.{name}: must be kind sm (signals go under "
                                 f"'signals'), found {proc.kind!r}")


#: Labellings of ``tracks-train``.
LABELLINGS = ("supervised", "cwola")
#: Model architectures (:mod:`tagger.tracks.models`).
ARCHITECTURES = ("mlp", "transformer")
Labelling = Literal["supervised", "cwola"]


def load_config(path: str | Path, overrides: dict | None = None) -> TracksConfig:
    """Load a tracks config from a file or a packaged name (``tracks-fast``).

    Raises
    ------
    triggerad.errors.ConfigError
        On an unknown or misspelt key (with the nearest valid one), a wrong type or value.
    """
    return tconfig.load(TracksConfig, tconfig.resolve_config(path), overrides)
