"""Typed config of ``trigger-ad export`` (``configs/export.yaml``): sections ``onnx`` and
``validation``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from triggerad.config import load

#: Opsets tf2onnx 1.17 can write (ONNX Runtime 1.20 reads up to 21).
MIN_OPSET, MAX_OPSET = 13, 18


@dataclass
class OnnxSection:
    """The ``onnx`` section: how the graph is written.

    Attributes
    ----------
    opset : int
        ONNX opset (13-18; the default 17 is read by ONNX Runtime >= 1.13, e.g. CMSSW 13 and later).
    """

    opset: int = 17

    def __post_init__(self) -> None:
        if not MIN_OPSET <= self.opset <= MAX_OPSET:
            raise ValueError(
                f"opset must be in [{MIN_OPSET}, {MAX_OPSET}] (what tf2onnx 1.17 writes), found "
                f"{self.opset!r}"
            )


@dataclass
class ValidationSection:
    """The ``validation`` section: ONNX Runtime vs Keras at export.

    Attributes
    ----------
    n_events : int
        Validation events used at most (0: all of the validation split or ``--data`` files).
    min_events : int
        Fewer available events are used but logged as a warning and flagged in the report.
    min_agreement : float
        The export is refused (exit 2, nothing written) below this decision agreement.
    batch_size : int
        Events per Keras ``predict`` / ONNX Runtime ``run`` call.
    """

    n_events: int = 100_000
    min_events: int = 10_000
    min_agreement: float = 0.9999
    batch_size: int = 10_000

    def __post_init__(self) -> None:
        if self.n_events < 0 or self.min_events < 0 or self.batch_size < 1:
            raise ValueError(
                "n_events and min_events must be >= 0 and batch_size >= 1, found "
                f"{self.n_events!r}, {self.min_events!r}, {self.batch_size!r}"
            )
        if not 0 <= self.min_agreement <= 1:
            raise ValueError(f"min_agreement must be in [0, 1], found {self.min_agreement!r}")


@dataclass
class ExportConfig:
    """Top-level export config: the ``onnx`` and ``validation`` sections."""

    onnx: OnnxSection = field(default_factory=OnnxSection)
    validation: ValidationSection = field(default_factory=ValidationSection)


def load_config(path: str | Path) -> ExportConfig:
    """Load an export YAML file (unknown keys fail with the nearest valid key)."""
    return load(ExportConfig, path)
