"""Typed firmware YAML config (``configs/firmware.yaml``) and fixed-point type strings.

Sections: ``hls`` (backend, FPGA part, clock, io type, strategy, reuse factor), ``precision``
(input format of the trigger objects, normalisation, score and per-layer precisions) and
``validation`` (events for the C simulation, test-bench vectors, precision sweep widths).

Fixed-point types are written as in HLS: ``ap_fixed<W,I>``, ``ap_ufixed<W,I>``, optionally with
rounding and saturation modes (``ap_fixed<16,6,AP_RND_CONV,AP_SAT>``); ``ap_int<W>``/``ap_uint<W>``
are integers. ``auto`` lets hls4ml infer a width that can neither overflow nor round.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from triggerad.config import load

_FIXED_RE = re.compile(
    r"^\s*ap_(u?)(fixed|int)\s*<\s*(\d+)\s*(?:,\s*(-?\d+)\s*)?(?:,\s*(AP_\w+)\s*)?(?:,\s*(AP_\w+)\s*)?>\s*$"
)
ROUNDING_MODES = ("AP_TRN", "AP_TRN_ZERO", "AP_RND", "AP_RND_CONV", "AP_RND_ZERO", "AP_RND_INF",
                  "AP_RND_MIN_INF")
SATURATION_MODES = ("AP_WRAP", "AP_SAT", "AP_SAT_SYM")


@dataclass(frozen=True)
class Fixed:
    """A fixed-point type: ``width`` bits of which ``integer`` (including the sign) are integer bits.

    Attributes
    ----------
    width, integer : int
        Total and integer bits, as in ``ap_fixed<width, integer>``.
    signed : bool
        ``ap_fixed`` (True) or ``ap_ufixed`` (False).
    rounding, saturation : str
        HLS quantization (``AP_TRN``, ``AP_RND_CONV``, ...) and overflow (``AP_WRAP``, ``AP_SAT``)
        modes applied when a wider value is assigned to this type.
    """

    width: int
    integer: int
    signed: bool = True
    rounding: str = "AP_TRN"
    saturation: str = "AP_WRAP"

    @property
    def frac(self) -> int:
        """Fractional bits."""
        return self.width - self.integer

    @property
    def lsb(self) -> float:
        """Value of the least significant bit."""
        return 2.0 ** -self.frac

    @property
    def min_raw(self) -> int:
        """Smallest representable value in LSB units."""
        return -(2 ** (self.width - 1)) if self.signed else 0

    @property
    def max_raw(self) -> int:
        """Largest representable value in LSB units."""
        return 2 ** (self.width - 1) - 1 if self.signed else 2**self.width - 1

    def hls(self) -> str:
        """The HLS type string (modes written only when they differ from the defaults)."""
        name = "ap_fixed" if self.signed else "ap_ufixed"
        modes = ""
        if (self.rounding, self.saturation) != ("AP_TRN", "AP_WRAP"):
            modes = f",{self.rounding},{self.saturation}"
        return f"{name}<{self.width},{self.integer}{modes}>"

    def with_modes(self, rounding: str, saturation: str) -> Fixed:
        """The same type with other rounding/saturation modes."""
        return Fixed(self.width, self.integer, self.signed, rounding, saturation)

    def quantize(self, x: np.ndarray) -> np.ndarray:
        """Values of ``x`` after assignment to this type, exactly as HLS ``ap_fixed`` does it.

        Computed in float64, exact as long as ``x`` has at most 53 significant bits.
        """
        q = np.asarray(x, dtype=np.float64) * 2.0**self.frac
        mode = self.rounding
        if mode == "AP_RND_CONV":
            q = np.round(q)  # ties to even
        elif mode == "AP_RND":
            q = np.floor(q + 0.5)
        elif mode == "AP_RND_ZERO":
            q = np.sign(q) * np.ceil(np.abs(q) - 0.5)
        elif mode == "AP_RND_INF":
            q = np.sign(q) * np.floor(np.abs(q) + 0.5)
        elif mode == "AP_RND_MIN_INF":
            q = np.ceil(q - 0.5)
        elif mode == "AP_TRN_ZERO":
            q = np.trunc(q)
        else:
            q = np.floor(q)
        if self.saturation == "AP_WRAP":
            span = 2.0**self.width
            q = np.mod(q - self.min_raw, span) + self.min_raw
        else:
            low = self.min_raw + (1 if self.saturation == "AP_SAT_SYM" and self.signed else 0)
            q = np.clip(q, low, self.max_raw)
        return q * self.lsb

    def units(self, x: np.ndarray) -> np.ndarray:
        """``x`` (already on this type's grid) in LSB units, as int64."""
        return np.rint(np.asarray(x, dtype=np.float64) * 2.0**self.frac).astype(np.int64)


def parse_fixed(text: str, where: str = "precision") -> Fixed:
    """Parse an HLS fixed-point or integer type string into a :class:`Fixed`.

    Parameters
    ----------
    text : str
        E.g. ``ap_fixed<16,6>``, ``ap_ufixed<18,10,AP_RND_CONV,AP_SAT>``, ``ap_uint<1>``.
    where : str
        Config key for error messages.

    Raises
    ------
    ValueError
        If the string is not a fixed-point/integer type or has unknown modes.
    """
    m = _FIXED_RE.match(text)
    if not m:
        raise ValueError(
            f"{where}: expected an HLS type like 'ap_fixed<16,6>' or 'ap_ufixed<18,10,AP_RND_CONV,"
            f"AP_SAT>', found {text!r}"
        )
    unsigned, kind, width, integer, rnd, sat = m.groups()
    width = int(width)
    if kind == "int":
        integer = width
    elif integer is None:
        raise ValueError(f"{where}: {text!r} needs both width and integer bits")
    rnd, sat = rnd or "AP_TRN", sat or "AP_WRAP"
    if rnd not in ROUNDING_MODES:
        raise ValueError(f"{where}: unknown rounding mode {rnd!r} in {text!r}; valid: {ROUNDING_MODES}")
    if sat not in SATURATION_MODES:
        raise ValueError(f"{where}: unknown saturation mode {sat!r} in {text!r}; valid: {SATURATION_MODES}")
    if width < 1:
        raise ValueError(f"{where}: width must be >= 1, found {text!r}")
    return Fixed(width, int(integer), not unsigned, rnd, sat)


def fixed_covering(values: np.ndarray, significant_bits: int, signed: bool = True) -> Fixed:
    """The narrowest fixed type holding ``values`` with ``significant_bits`` on the smallest one.

    Used for normalisation constants: the integer bits cover the largest magnitude, the
    fractional bits give the smallest non-zero magnitude ``significant_bits`` of precision.
    """
    mags = np.abs(np.asarray(values, dtype=np.float64))
    nonzero = mags[mags > 0]
    if nonzero.size == 0:
        return Fixed(2, 2, signed, "AP_RND_CONV", "AP_SAT")
    integer = max(1, math.floor(math.log2(nonzero.max())) + 1) + (1 if signed else 0)
    frac = max(0, significant_bits - math.floor(math.log2(nonzero.min())) - 1)
    return Fixed(integer + frac, integer, signed, "AP_RND_CONV", "AP_SAT")


def _check_type(text: str, where: str, allow_auto: bool = False) -> None:
    if allow_auto and text == "auto":
        return
    parse_fixed(text, where)


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
    """The ``precision`` section: fixed-point types of the firmware.

    Attributes
    ----------
    input : str
        Format of the raw trigger-object inputs (pT, eta, phi in GeV/radians) at the top function.
    normalised : str
        Type of the normalised inputs ``(x - mean) / scale`` computed in firmware.
    norm_constants_bits : int
        Significant bits of the normalisation scale/offset constants (their types are derived
        from the values: integer bits cover the largest, fractional bits give the smallest this
        many significant bits).
    default : str
        hls4ml default precision (layers without a quantizer and not ``auto``).
    accum, result : str
        Accumulator and result types of Dense/Conv layers: ``auto`` (exact, derived from the
        QKeras quantizers of weights and inputs) or an explicit type.
    score : str
        Type of the anomaly score (sum of mu^2) returned by the firmware; must be unsigned.
    layers : dict
        Per-layer overrides, ``{layer_name: {result|accum|weight|bias: type}}``.
    """

    input: str = "ap_fixed<18,13,AP_RND_CONV,AP_SAT>"
    normalised: str = "ap_fixed<16,7,AP_RND_CONV,AP_SAT>"
    norm_constants_bits: int = 12
    default: str = "ap_fixed<16,6>"
    accum: str = "auto"
    result: str = "auto"
    score: str = "ap_ufixed<18,10,AP_RND_CONV,AP_SAT>"
    layers: dict[str, dict[str, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for key in ("input", "normalised", "default", "score"):
            _check_type(getattr(self, key), key)
        for key in ("accum", "result"):
            _check_type(getattr(self, key), key, allow_auto=True)
        if parse_fixed(self.score).signed:
            raise ValueError(f"score must be an unsigned type (ap_ufixed), found {self.score!r}")
        if self.norm_constants_bits < 2:
            raise ValueError(f"norm_constants_bits must be >= 2, found {self.norm_constants_bits!r}")
        for name, over in self.layers.items():
            for key, text in over.items():
                if key not in ("result", "accum", "weight", "bias"):
                    raise ValueError(
                        f"layers.{name}: unknown precision {key!r}; valid: result, accum, weight, bias"
                    )
                _check_type(text, f"layers.{name}.{key}", allow_auto=True)


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
    """Top-level firmware config: the ``hls``, ``precision`` and ``validation`` sections."""

    hls: HLSSection = field(default_factory=HLSSection)
    precision: PrecisionSection = field(default_factory=PrecisionSection)
    validation: ValidationSection = field(default_factory=ValidationSection)


def load_config(path: str | Path, overrides: dict | None = None) -> FirmwareConfig:
    """Load a firmware YAML file (unknown keys fail with the nearest valid key)."""
    return load(FirmwareConfig, path, overrides)
