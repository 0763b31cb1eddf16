"""The ``rtl`` section of the firmware config (``configs/firmware.yaml``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal


@dataclass
class RTLSection:
    """How ``trigger-ad firmware MODEL --out PRJ --rtl`` writes and checks the Verilog.

    Attributes
    ----------
    clock_mhz : float
        Target clock (MHz): the latency in ns is the simulated number of clocks times its period.
    multipliers : {"shift_add", "dsp"}
        Constant multiplications as shift-add adder trees in canonical signed digits (no DSP)
        or as multipliers (mapped to DSP slices by the synthesis).
    share_multiples : bool
        ``shift_add`` only: build each odd multiple ``m * x`` of an input once and share it
        between the outputs (every weight is then one adder-tree term; fewer LUTs).
    dense_stages : int
        Pipeline registers of each Dense layer (its adder trees are cut evenly); 0: combinational.
    other_stages : int
        Pipeline registers of the normalisation and of the sum of squares; 0: combinational.
    max_levels : int
        > 0: ignore ``dense_stages`` / ``other_stages`` and register wherever a pipeline stage
        would exceed this many logic levels (adders, roundings, comparisons), across layer
        boundaries (the normalisation shares a stage with the first Dense layer, the sum of
        squares with the last); the latency follows. 0: the per-layer stages. The default, 6,
        is the largest depth the ~240 MHz estimate allows (:func:`firmware.rtl.flow.fmax_estimate_mhz`).
    synthesis : {"xilinx", "generic", "none"}
        Yosys flow for the resource estimate: ``synth_xilinx`` for the family of ``hls.part``,
        generic 6-input LUTs, or no synthesis.
    sim_events : int
        Events simulated with Verilator and compared with the fixed-point reference (0: all).
    top : str
        Name of the Verilog module.
    """

    clock_mhz: float = 240.0
    multipliers: Literal["shift_add", "dsp"] = "shift_add"
    share_multiples: bool = True
    dense_stages: int = 2
    other_stages: int = 1
    max_levels: int = 6
    synthesis: Literal["xilinx", "generic", "none"] = "xilinx"
    sim_events: int = 10_000
    top: str = "trigger_rtl"

    def __post_init__(self) -> None:
        if not self.clock_mhz > 0:
            raise ValueError(f"clock_mhz must be > 0, found {self.clock_mhz!r}")
        counts = (self.dense_stages, self.other_stages, self.max_levels, self.sim_events)
        if min(counts) < 0:
            raise ValueError("dense_stages, other_stages, max_levels and sim_events must be >= 0, "
                             f"found {counts!r}")
        if not re.fullmatch(r"[A-Za-z_]\w*", self.top):
            raise ValueError(f"top must be a Verilog identifier, found {self.top!r}")

    @property
    def clock_period_ns(self) -> float:
        return 1000.0 / self.clock_mhz
