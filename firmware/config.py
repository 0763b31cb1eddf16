"""Typed firmware YAML config (``configs/firmware.yaml``).

Sections: ``hls`` (backend, FPGA part, clock, io type, strategy, reuse factor), ``precision``
(hls4ml's default precision) and ``validation`` (events for the C simulation, test-bench
vectors, precision sweep widths).

The fixed-point types of the trigger (input, normalisation, accumulators, score) are not set
here: they belong to the model (``quantization.fixed_point`` of its training config, stored in
``MODEL/artifact.json``), so that the model's ``mu2_q``, its threshold and the firmware compute the
same numbers. The type class and parser live in :mod:`triggerad.fixedpoint` (re-exported here).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from firmware.rtl.config import RTLSection
from triggerad.config import load, read_yaml
from triggerad.errors import ConfigError
from triggerad.fixedpoint import Fixed, fixed_covering, parse_fixed

__all__ = ["FirmwareConfig", "Fixed", "HLSSection", "PrecisionSection", "ValidationSection",
           "fixed_covering", "load_config", "parse_fixed"]

#: ``precision`` keys of older firmware configs that now belong to the model.
MODEL_PRECISION_KEYS = ("input", "normalised", "norm_constants_bits", "accum", "result", "score",
                        "layers")


@dataclass
class HLSSection:
    """The ``hls`` section: how hls4ml writes the HLS project.

    Attributes
    ----------
    backend : {"Vitis", "Vivado"}
        hls4ml backend (Vitis HLS or the older Vivado HLS).
    part : str
        FPGA part number (default: a Virtex UltraScale+ VU13P as in the CMS Global Trigger).
    clock_period : float
        Target clock period in ns.
    io_type : {"io_parallel", "io_stream"}
        hls4ml I/O type; the trigger needs ``io_parallel`` (fully parallel arrays).
    strategy : {"Latency", "Resource"}
        hls4ml strategy.
    reuse_factor : int
        Multiplier reuse factor (1: every multiplication has its own multiplier).
    project_name : str
        Name of the HLS top function and project.
    """

    backend: Literal["Vitis", "Vivado"] = "Vitis"
    part: str = "xcvu13p-flga2577-2-e"
    clock_period: float = 5.0
    io_type: Literal["io_parallel", "io_stream"] = "io_parallel"
    strategy: Literal["Latency", "Resource"] = "Latency"
    reuse_factor: int = 1
    project_name: str = "anomaly_trigger"

    def __post_init__(self) -> None:
        if self.clock_period <= 0 or self.reuse_factor < 1:
            raise ValueError(
                f"clock_period must be > 0 and reuse_factor >= 1, found {self.clock_period!r}, "
                f"{self.reuse_factor!r}"
            )
        if not re.fullmatch(r"[A-Za-z_]\w*", self.project_name):
            raise ValueError(f"project_name must be a C identifier, found {self.project_name!r}")


@dataclass
class PrecisionSection:
    """The ``precision`` section.

    Attributes
    ----------
    default : str
        hls4ml's default precision: used only for layers the model's fixed-point graph does not
        define (generic models converted with :func:`firmware.convert.convert`).
    """

    default: str = "ap_fixed<16,6>"

    def __post_init__(self) -> None:
        parse_fixed(self.default, "default")


@dataclass
class ValidationSection:
    """The ``validation`` section: C simulation against the Keras reference.

    Attributes
    ----------
    n_events : int
        Validation events run through the C simulation (0: all).
    batch_size : int
        Events per ``predict`` call.
    testbench_events : int
        Events written as input/expected-output vectors into the project's test bench.
    sweep_widths : list of int
        Accumulator/result widths tried by ``--sweep`` (integer bits kept from the exact types).
    min_agreement : float
        Decision agreement below which the command fails.
    """

    n_events: int = 100_000
    batch_size: int = 20_000
    testbench_events: int = 1000
    sweep_widths: list[int] = field(default_factory=lambda: [8, 10, 12, 14, 16])
    min_agreement: float = 0.999

    def __post_init__(self) -> None:
        if self.n_events < 0 or self.batch_size < 1 or self.testbench_events < 1:
            raise ValueError(
                "n_events must be >= 0, batch_size and testbench_events >= 1; found "
                f"{self.n_events!r}, {self.batch_size!r}, {self.testbench_events!r}"
            )
        if any(w < 2 for w in self.sweep_widths):
            raise ValueError(f"sweep_widths must be >= 2, found {self.sweep_widths!r}")


@dataclass
class FirmwareConfig:
    """Top-level firmware config: the ``hls``, ``precision``, ``validation`` and ``rtl``
    (:class:`firmware.rtl.config.RTLSection`) sections."""

    hls: HLSSection = field(default_factory=HLSSection)
    precision: PrecisionSection = field(default_factory=PrecisionSection)
    validation: ValidationSection = field(default_factory=ValidationSection)
    rtl: RTLSection = field(default_factory=RTLSection)


def load_config(path: str | Path, overrides: dict | None = None) -> FirmwareConfig:
    """Load a firmware YAML file (unknown keys fail with the nearest valid key).

    Raises
    ------
    ConfigError
        Also for ``precision`` keys that now belong to the model (:data:`MODEL_PRECISION_KEYS`),
        saying where to set them.
    """
    precision = read_yaml(path).get("precision") or {}
    moved = [k for k in MODEL_PRECISION_KEYS if isinstance(precision, dict) and k in precision]
    if moved:
        raise ConfigError(
            f"{path}:precision: {', '.join(moved)} now belong to the model: set them under "
            "quantization.fixed_point in the training config (stored in MODEL/artifact.json), so "
            "that mu2_q, its threshold and the firmware compute the same numbers; remove them here"
        )
    return load(FirmwareConfig, path, overrides)
