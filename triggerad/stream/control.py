"""PID control of the trigger threshold on the accepted fraction per block.

Conditions drift over a fill (pile-up falls, the score distribution shifts), so a fixed threshold
gives a drifting rate. The controller observes each completed block and sets the threshold of the
next one; the decision for block k depends only on blocks < k, so a selection is reproducible
from the scores and the threshold log alone.

Blocks are contiguous runs of events with the same (run, lumi) in stream order, or, when the
input has no lumi information (``lumi == 0``), fixed runs of ``block_events`` events along the
stream.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from triggerad.errors import ConfigError
from triggerad.stream.config import ControlConfig

#: Block key used for events without lumi information: (NO_LUMI_RUN, index along the stream).
NO_LUMI_RUN = -1


def block_keys(
    run: np.ndarray, lumi: np.ndarray, stream_index: np.ndarray, block_events: int
) -> tuple[np.ndarray, np.ndarray]:
    """(run, block) keys per event: (run, lumi) or (-1, stream_index // block_events) if lumi is 0."""
    no_lumi = lumi == 0
    key_run = np.where(no_lumi, NO_LUMI_RUN, run).astype(np.int64)
    key_block = np.where(no_lumi, stream_index // block_events, lumi).astype(np.int64)
    return key_run, key_block


def segments(key_run: np.ndarray, key_block: np.ndarray) -> np.ndarray:
    """Start indices of the contiguous runs of equal keys, plus ``len`` at the end."""
    change = (np.diff(key_run) != 0) | (np.diff(key_block) != 0)
    return np.concatenate([[0], np.flatnonzero(change) + 1, [len(key_run)]])


@dataclass
class ControllerState:
    """Everything the controller needs to continue after a given event (serialisable to JSON).

    ``counts`` and ``carry`` are [events, accepted, above the low probe, above the high probe] of
    the current block and of small blocks carried forward.
    """

    threshold: float
    output: float = 0.0
    block: int = -1
    key: tuple[int, int] | None = None
    counts: list[int] = field(default_factory=lambda: [0, 0, 0, 0])
    carry: list[int] = field(default_factory=lambda: [0, 0, 0, 0])
    integral: float = 0.0
    previous_error: float | None = None
    elasticity: float | None = None

    def to_json(self) -> dict:
        """Plain dict for the manifest."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> ControllerState:
        """Inverse of :meth:`to_json`."""
        data = dict(data)
        if data.get("key") is not None:
            data["key"] = tuple(data["key"])
        return cls(**data)


class RateController:
    """Assigns a threshold to every event of a stream, block by block.

    Parameters
    ----------
    config : ControlConfig
        Gains, limits and anti-windup; ``enabled = False`` keeps the stored threshold.
    threshold : float
        The stored threshold (``threshold.json``), the set point of the output.
    target_fraction : float
        Target accepted fraction (target rate / input rate).
    state : ControllerState, optional
        Resume from this state (as recorded in the manifest).
    """

    def __init__(
        self,
        config: ControlConfig,
        threshold: float,
        target_fraction: float,
        state: ControllerState | None = None,
    ):
        self.config = config
        self.threshold0 = float(threshold)
        self.target = float(target_fraction)
        if config.mode == "log" and self.threshold0 <= 0:
            raise ConfigError(
                f"control.mode: 'log' needs a positive stored threshold, found {threshold!r}; "
                "use mode: linear"
            )
        self.scale = config.scale if config.scale is not None else (abs(threshold) or 1.0)
        self.state = state or ControllerState(threshold=self.threshold0)

    def threshold_at(self, output: float) -> float:
        """Threshold for a controller output: ``t0 exp(u)`` (log mode) or ``t0 + scale u``."""
        if self.config.mode == "log":
            return self.threshold0 * math.exp(output)
        return self.threshold0 + self.scale * output

    @property
    def lowest_threshold(self) -> float:
        """The lowest threshold the controller can set (events below it are never accepted)."""
        if not self.config.enabled:
            return self.threshold0
        return self.threshold_at(self.config.output_min)

    def _elasticity(self, above_low: int, above_high: int) -> float:
        """Smoothed -d ln(accepted fraction) / d output, measured with the two probes."""
        cfg, st = self.config, self.state
        if not cfg.adaptive_gain:
            return 1.0
        measured = math.log((above_low + 0.5) / (above_high + 0.5)) / (2 * cfg.probe)
        measured = min(max(measured, cfg.elasticity_min), cfg.elasticity_max)
        if st.elasticity is None:
            return measured
        return (1 - cfg.elasticity_smoothing) * st.elasticity + cfg.elasticity_smoothing * measured

    def _close_block(self) -> None:
        """Update the threshold from the block that just ended."""
        st, cfg = self.state, self.config
        if not cfg.enabled or st.key is None:
            return
        events, accepted, above_low, above_high = (a + b for a, b in zip(st.counts, st.carry,
                                                                          strict=True))
        if events < cfg.min_block_events:
            st.carry = [events, accepted, above_low, above_high]
            return
        st.carry = [0, 0, 0, 0]
        st.elasticity = self._elasticity(above_low, above_high)
        error = math.log((accepted + 0.5) / (events * self.target + 0.5)) / st.elasticity
        derivative = 0.0 if st.previous_error is None else error - st.previous_error
        integral = min(max(st.integral + error, -cfg.integral_limit), cfg.integral_limit)
        raw = cfg.kp * error + cfg.ki * integral + cfg.kd * derivative
        winding_up = (raw > cfg.output_max and error > 0) or (raw < cfg.output_min and error < 0)
        if not winding_up:  # anti-windup: stop integrating while the output saturates
            st.integral = integral
        raw = cfg.kp * error + cfg.ki * st.integral + cfg.kd * derivative
        st.output = min(max(raw, cfg.output_min), cfg.output_max)
        st.previous_error = error
        st.threshold = self.threshold_at(st.output)

    def apply(
        self, scores: np.ndarray, key_run: np.ndarray, key_block: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Threshold, decision and block index for consecutive events of the stream.

        Parameters
        ----------
        scores : (n,) array
            Decision scores, in stream order.
        key_run, key_block : (n,) int arrays
            Block keys from :func:`block_keys`.

        Returns
        -------
        threshold : (n,) float64
            Threshold in force for each event.
        accepted : (n,) bool
            ``score > threshold``.
        block : (n,) int64
            Sequential block index along the stream.
        """
        n = len(scores)
        threshold = np.empty(n, dtype=np.float64)
        block = np.empty(n, dtype=np.int64)
        bounds = segments(key_run, key_block) if n else np.array([0])
        st, probe = self.state, self.config.probe
        for lo, hi in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
            key = (int(key_run[lo]), int(key_block[lo]))
            if key != st.key:
                self._close_block()
                st.key, st.block, st.counts = key, st.block + 1, [0, 0, 0, 0]
            threshold[lo:hi] = st.threshold
            block[lo:hi] = st.block
            cuts = (st.threshold, self.threshold_at(st.output - probe),
                    self.threshold_at(st.output + probe))
            above = [int(np.count_nonzero(scores[lo:hi] > cut)) for cut in cuts]
            st.counts = [st.counts[0] + hi - lo, *(c + a for c, a in zip(st.counts[1:], above,
                                                                          strict=True))]
        return threshold, scores > threshold, block
