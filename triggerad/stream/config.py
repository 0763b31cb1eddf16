"""Typed configuration of ``trigger-ad score`` (``configs/score.yaml``): one dataclass per section."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from triggerad.config import build, load, resolve_config


@dataclass
class ChunkingConfig:
    """How the input is cut into work units.

    Attributes
    ----------
    chunk_size : int
        Events per work unit (one part file each); memory is bounded by this.
    block_events : int
        Events per rate-monitoring block when the input has no lumi-block information
        (``lumi == 0``); blocks are counted along the stream in plan order.
    tf_batch_size : int
        Batch size of the TensorFlow pass for scores that need the decoder.
    """

    chunk_size: int = 50_000
    block_events: int = 10_000
    tf_batch_size: int = 8192

    def __post_init__(self) -> None:
        for name in ("chunk_size", "block_events", "tf_batch_size"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, found {getattr(self, name)!r}")


@dataclass
class MonitorConfig:
    """Accepted-rate monitoring per block.

    Attributes
    ----------
    band : list of float
        [low, high] of the target band, as multiples of the target rate.
    confidence : float
        Confidence level of the Garwood (Poisson) intervals.
    plots : bool
        Write ``rate_vs_block.png`` and ``rate_vs_pileup.png``.
    """

    band: list[float] = field(default_factory=lambda: [0.8, 1.2])
    confidence: float = 0.6827
    plots: bool = True

    def __post_init__(self) -> None:
        if len(self.band) != 2 or not 0 <= self.band[0] < self.band[1]:
            raise ValueError(f"band must be [low, high] with 0 <= low < high, found {self.band!r}")
        if not 0 < self.confidence < 1:
            raise ValueError(f"confidence must be in (0, 1), found {self.confidence!r}")


@dataclass
class ControlConfig:
    """Controller of the threshold on the accepted fraction per block.

    ``method: pid`` (the default): the error of block k is ``e = ln((accepted + 0.5) / (events * target_fraction + 0.5)) / g``
    with ``g`` the measured gain of the plant, ``-d ln(accepted fraction) / du``: the counts above
    two probe thresholds at ``u -+ probe`` in the same block, smoothed over blocks
    (``adaptive_gain``; ``g = 1`` otherwise). The output ``u = kp e + ki sum(e) + kd (e - e_prev)``
    is clipped to ``[output_min, output_max]`` and the threshold of the next block is
    ``t0 exp(u)`` (``mode: log``) or ``t0 + scale u`` (``mode: linear``, for scores that can be
    negative), ``t0`` being the stored threshold. With the adaptive gain the loop gain is
    ``kp + ki`` whatever the shape of the score tail; keep it below ~1.5 for stability.

    ``method: quantile``: the output moves toward the one whose threshold would have accepted the
    target fraction of the last block (``gain``), shifted by a pile-up feed-forward
    (``feedforward_*``) and a payback of the integrated rate error (``payback_*``); see
    :class:`triggerad.stream.control.QuantileRule`.

    Attributes
    ----------
    enabled : bool
        Apply the controller (otherwise the stored threshold is used throughout).
    method : {"pid", "quantile"}
        Update rule (:data:`triggerad.stream.control.RULES`).
    mode : {"log", "linear"}
        Multiplicative or additive threshold moves.
    kp, ki, kd : float
        Proportional, integral and derivative gains.
    output_min, output_max : float
        Limits of the controller output (log mode: threshold between ``t0 exp(output_min)`` and
        ``t0 exp(output_max)``).
    integral_limit : float
        Anti-windup clamp of the integral; it also stops integrating while the output saturates.
    adaptive_gain : bool
        Divide the error by the measured plant gain (see above).
    probe : float
        Offset of the two probe thresholds, in output units.
    elasticity_min, elasticity_max : float
        Clip of the measured plant gain.
    elasticity_smoothing : float
        Weight of the newest block in the running plant-gain estimate.
    scale : float or None
        ``linear`` mode: threshold units per unit of output; default ``|t0|`` (1 if it is 0).
    min_block_events : int
        Blocks with fewer events carry their counts into the next block before an update.
    gain : float
        ``quantile``: weight (0, 1] of the newest block's quantile in the smoothed level.
    grid_step : float
        ``quantile``: spacing, in output units, of the threshold grid the scores are counted on.
    feedforward_intercept : float or None
        ``quantile``: output at zero pile-up from a calibration
        (:func:`triggerad.stream.calibration.fit_feedforward`); None: no prediction for the first
        block (it starts at the stored threshold).
    feedforward_slope : float
        ``quantile``: d output / d mean pile-up (0: no feed-forward).
    payback_blocks : float
        ``quantile``: spread the integrated excess (or deficit) of accepted events over this
        many blocks (0: no payback).
    payback_max : float
        ``quantile``: largest relative change of a block's target fraction for the payback.
    warmup_events : int
        ``quantile``: after this many events of the first block, re-set its threshold from their
        mean pile-up (or target quantile, without ``feedforward_intercept``); 0: no warm-up.
    """

    enabled: bool = False
    mode: Literal["log", "linear"] = "log"
    kp: float = 0.3
    ki: float = 0.6
    kd: float = 0.0
    output_min: float = -1.5
    output_max: float = 1.5
    integral_limit: float = 20.0
    adaptive_gain: bool = True
    probe: float = 0.2
    elasticity_min: float = 0.3
    elasticity_max: float = 30.0
    elasticity_smoothing: float = 0.3
    scale: float | None = None
    min_block_events: int = 100
    method: Literal["pid", "quantile"] = "pid"
    gain: float = 0.7
    grid_step: float = 0.02
    feedforward_intercept: float | None = None
    feedforward_slope: float = 0.0
    payback_blocks: float = 0.0
    payback_max: float = 0.1
    warmup_events: int = 0

    def __post_init__(self) -> None:
        checks = {"gain": 0 < self.gain <= 1, "grid_step": self.grid_step > 0,
                  "payback_blocks": self.payback_blocks >= 0,
                  "payback_max": 0 <= self.payback_max < 1,
                  "warmup_events": self.warmup_events >= 0}
        wanted = {"gain": "in (0, 1]", "grid_step": "> 0", "payback_blocks": ">= 0",
                  "payback_max": "in [0, 1)", "warmup_events": ">= 0"}
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"{name} must be {wanted[name]}, found {getattr(self, name)!r}")
        if self.probe <= 0 or not 0 < self.elasticity_smoothing <= 1:
            raise ValueError(
                f"need probe > 0 and 0 < elasticity_smoothing <= 1, found {self.probe!r}, "
                f"{self.elasticity_smoothing!r}"
            )
        for name in ("kp", "ki", "kd"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0 (a negative gain drives the rate away "
                                 f"from the target), found {getattr(self, name)!r}")
        if self.output_min > 0 or self.output_max < 0:
            raise ValueError(
                f"output limits must bracket 0, found [{self.output_min!r}, {self.output_max!r}]"
            )


@dataclass
class OutputConfig:
    """What is written.

    Attributes
    ----------
    format : {"parquet", "root"}
        Format of the per-chunk score part files.
    anomalies : bool
        Write ``anomalies.parquet`` with the full inputs of accepted events.
    """

    format: Literal["parquet", "root"] = "parquet"
    anomalies: bool = True


@dataclass
class ScoreConfig:
    """The whole ``configs/score.yaml``."""

    chunking: ChunkingConfig = field(default_factory=ChunkingConfig)
    monitor: MonitorConfig = field(default_factory=MonitorConfig)
    control: ControlConfig = field(default_factory=ControlConfig)
    output: OutputConfig = field(default_factory=OutputConfig)


def load_score_config(path: str | Path | None, overrides: dict | None = None) -> ScoreConfig:
    """Load a score config (a file or a packaged name; None: the packaged ``score``)."""
    return load(ScoreConfig, resolve_config(path or "score"), overrides)


def control_from_file(path: str | Path) -> ControlConfig:
    """Read the ``control`` section of a rate-control YAML (``--rate-control FILE``), enabled."""
    from triggerad.config import read_yaml
    from triggerad.errors import ConfigError

    file = resolve_config(path)
    data = read_yaml(file)
    if "control" not in data:
        raise ConfigError(f"{file}: no 'control' section (found {sorted(data) or 'nothing'}); "
                          "a rate-control YAML holds `control:` with the controller settings, "
                          "e.g. the packaged rate-control")
    section = dict(data["control"] or {})
    section.setdefault("enabled", True)
    return build(ControlConfig, section, where=f"{path}:control")
