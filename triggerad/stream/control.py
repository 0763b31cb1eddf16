"""Control of the trigger threshold on the accepted fraction per block.

Conditions drift over a fill (pile-up falls, the score distribution shifts), so a fixed threshold
gives a drifting rate. The controller observes each completed block and sets the threshold of the
next one; the decision for block k depends only on blocks < k (and, with a warm-up, on the first
events of block 0), so a selection is reproducible from the scores and the threshold log alone.
Two update rules (:data:`RULES`, config key ``control.method``):

``pid``
    PID on the log of accepted / expected, divided by the plant gain measured with two probe
    thresholds (:class:`PidRule`).
``quantile``
    Moves the threshold toward the score quantile that would have given the target fraction in
    the last block (damped by ``gain``), shifted by a pile-up feed-forward (threshold vs mean
    pile-up, from calibration data:
    :func:`triggerad.stream.calibration.fit_feedforward`), plus payback of the integrated
    rate error (:class:`QuantileRule`).

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

    ``counts`` and ``carry`` are [events, accepted, *rule counts] of the current block and of small
    blocks carried forward (rule counts: events above the two probes for ``pid``, the histogram
    of the scores on the threshold grid for ``quantile``); ``pileup`` and ``carry_pileup`` the
    sums of their pile-up. ``level`` (the output at zero pile-up, smoothed over blocks),
    ``last_pileup``, the stream totals and ``warmed`` belong to the ``quantile`` rule.
    """

    threshold: float
    output: float = 0.0
    block: int = -1
    key: tuple[int, int] | None = None
    counts: list[int] = field(default_factory=list)
    carry: list[int] = field(default_factory=list)
    pileup: float = 0.0
    carry_pileup: float = 0.0
    integral: float = 0.0
    previous_error: float | None = None
    elasticity: float | None = None
    level: float | None = None
    last_pileup: float | None = None
    events_total: int = 0
    accepted_total: int = 0
    warmed: bool = False

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


class PidRule:
    """PID on ``e = ln((accepted + 0.5) / (events x target + 0.5)) / g`` (see ``ControlConfig``)."""

    @staticmethod
    def n_counts(ctl: RateController) -> int:
        """Length of :meth:`count`'s list."""
        return 2

    @staticmethod
    def count(ctl: RateController, scores: np.ndarray) -> list[int]:
        """Events above the low and the high probe threshold."""
        st, probe = ctl.state, ctl.config.probe
        cuts = (ctl.threshold_at(st.output - probe), ctl.threshold_at(st.output + probe))
        return [int(np.count_nonzero(scores > cut)) for cut in cuts]

    @staticmethod
    def start(ctl: RateController, pileup: float) -> None:
        """Nothing to do at the first event: the stored threshold applies."""

    @staticmethod
    def _elasticity(ctl: RateController, above_low: int, above_high: int) -> float:
        """Smoothed -d ln(accepted fraction) / d output, measured with the two probes."""
        cfg, st = ctl.config, ctl.state
        if not cfg.adaptive_gain:
            return 1.0
        measured = math.log((above_low + 0.5) / (above_high + 0.5)) / (2 * cfg.probe)
        measured = min(max(measured, cfg.elasticity_min), cfg.elasticity_max)
        if st.elasticity is None:
            return measured
        return (1 - cfg.elasticity_smoothing) * st.elasticity + cfg.elasticity_smoothing * measured

    @classmethod
    def close(cls, ctl: RateController, counts: list[int], pileup_sum: float) -> None:
        """New output from the block that just ended."""
        cfg, st = ctl.config, ctl.state
        events, accepted, above_low, above_high = counts
        st.elasticity = cls._elasticity(ctl, above_low, above_high)
        error = math.log((accepted + 0.5) / (events * ctl.target + 0.5)) / st.elasticity
        derivative = 0.0 if st.previous_error is None else error - st.previous_error
        integral = min(max(st.integral + error, -cfg.integral_limit), cfg.integral_limit)
        raw = cfg.kp * error + cfg.ki * integral + cfg.kd * derivative
        winding_up = (raw > cfg.output_max and error > 0) or (raw < cfg.output_min and error < 0)
        if not winding_up:  # anti-windup: stop integrating while the output saturates
            st.integral = integral
        raw = cfg.kp * error + cfg.ki * st.integral + cfg.kd * derivative
        st.output = min(max(raw, cfg.output_min), cfg.output_max)
        st.previous_error = error


class QuantileRule:
    """Damped move toward the last block's target quantile, pile-up feed-forward and payback.

    With ``p`` the mean pile-up of the block that ended, ``u_q(f)`` the output whose threshold
    would have accepted the fraction ``f`` of it (interpolated on the grid of thresholds
    ``threshold_at(output_min + i grid_step)``) and ``b = feedforward_slope``:
    ``level <- level + gain (u_q(target) - b p - level)``, and the next block's output is
    ``level + b p_next + [u_q(f_pay) - u_q(target)]``, with ``p_next = 2 p - p_previous`` (the
    pile-up trend extrapolated one block) and ``f_pay = target + (target x events so far -
    accepted so far) / (payback_blocks x events)``, clipped to ``target (1 +- payback_max)``.
    The first block starts at ``feedforward_intercept + b x`` (pile-up of its first event); after
    ``warmup_events`` events the threshold is re-set from their mean pile-up (or, without a
    calibrated intercept, from their target quantile).
    """

    @staticmethod
    def n_counts(ctl: RateController) -> int:
        """Length of :meth:`count`'s list: the bins below, between and above the grid."""
        return len(ctl.grid_cuts) + 1

    @staticmethod
    def count(ctl: RateController, scores: np.ndarray) -> list[int]:
        """Histogram of the scores between consecutive grid thresholds."""
        index = np.searchsorted(ctl.grid_cuts, scores, side="left")
        return np.bincount(index, minlength=len(ctl.grid_cuts) + 1).tolist()

    @staticmethod
    def quantile_output(ctl: RateController, histogram: list[int], events: int,
                        fraction: float) -> float:
        """Output whose threshold accepts ``fraction`` of the histogrammed events.

        ln(count above) is interpolated linearly between grid points (exact for an exponential
        tail); clipped to the grid ends.
        """
        above = np.cumsum(np.asarray(histogram[::-1], dtype=np.float64))[::-1][1:]
        want = fraction * events
        grid = ctl.grid_outputs
        if above[0] <= want:
            return float(grid[0])
        if above[-1] >= want:
            return float(grid[-1])
        j = int(np.argmax(above < want))
        y0, y1, y = (math.log(v + 0.5) for v in (above[j - 1], above[j], want))
        return float(grid[j - 1] + (y0 - y) / (y0 - y1) * (grid[j] - grid[j - 1]))

    @staticmethod
    def start(ctl: RateController, pileup: float) -> None:
        """First event of the stream: the feed-forward prediction, if calibrated."""
        cfg, st = ctl.config, ctl.state
        if cfg.feedforward_intercept is not None:
            st.level = cfg.feedforward_intercept
            ctl.set_output(st.level + cfg.feedforward_slope * pileup)

    @classmethod
    def warmup(cls, ctl: RateController) -> None:
        """After the first ``warmup_events`` events: re-set from their pile-up (or quantile)."""
        cfg, st = ctl.config, ctl.state
        st.warmed = True
        events = st.counts[0]
        mean_pileup = st.pileup / events
        if st.level is None:
            u_q = cls.quantile_output(ctl, st.counts[2:], events, ctl.target)
            st.level = u_q - cfg.feedforward_slope * mean_pileup
        ctl.set_output(st.level + cfg.feedforward_slope * mean_pileup)

    @classmethod
    def close(cls, ctl: RateController, counts: list[int], pileup_sum: float) -> None:
        """New output from the block that just ended."""
        cfg, st = ctl.config, ctl.state
        events, accepted, histogram = counts[0], counts[1], counts[2:]
        pileup, slope = pileup_sum / events, cfg.feedforward_slope
        u_q = cls.quantile_output(ctl, histogram, events, ctl.target)
        level = u_q - slope * pileup
        st.level = level if st.level is None else st.level + cfg.gain * (level - st.level)
        st.events_total += events
        st.accepted_total += accepted
        payback = 0.0
        if cfg.payback_blocks > 0:
            owed = ctl.target * st.events_total - st.accepted_total
            fraction = ctl.target + owed / (cfg.payback_blocks * events)
            fraction = min(max(fraction, ctl.target * (1 - cfg.payback_max)),
                           ctl.target * (1 + cfg.payback_max))
            payback = cls.quantile_output(ctl, histogram, events, fraction) - u_q
        next_pileup = pileup if st.last_pileup is None else 2 * pileup - st.last_pileup
        st.last_pileup = pileup
        ctl.set_output(st.level + slope * next_pileup + payback, threshold=False)


#: Update rules of the controller, by ``control.method``.
RULES = {"pid": PidRule, "quantile": QuantileRule}


class RateController:
    """Assigns a threshold to every event of a stream, block by block.

    Parameters
    ----------
    config : ControlConfig
        Update rule, gains, limits; ``enabled = False`` keeps the stored threshold.
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
        self.rule = RULES[config.method]
        steps = math.ceil((config.output_max - config.output_min) / config.grid_step - 1e-9)
        self.grid_outputs = config.output_min + config.grid_step * np.arange(steps + 1)
        self.grid_outputs[-1] = min(self.grid_outputs[-1], config.output_max)
        self.grid_cuts = np.array([self.threshold_at(u) for u in self.grid_outputs])
        self._zeros = [0] * (2 + self.rule.n_counts(self))
        self.state = state or ControllerState(threshold=self.threshold0)
        if not self.state.counts:
            self.state.counts, self.state.carry = list(self._zeros), list(self._zeros)

    def threshold_at(self, output: float) -> float:
        """Threshold for a controller output: ``t0 exp(u)`` (log mode) or ``t0 + scale u``."""
        if self.config.mode == "log":
            return self.threshold0 * math.exp(output)
        return self.threshold0 + self.scale * output

    def output_of(self, threshold: float) -> float:
        """Inverse of :meth:`threshold_at` (log mode: ``threshold`` must be positive)."""
        if self.config.mode == "log":
            return math.log(threshold / self.threshold0)
        return (threshold - self.threshold0) / self.scale

    def set_output(self, output: float, *, threshold: bool = True) -> None:
        """Clip ``output`` to the limits, store it (and its threshold, unless told not to)."""
        cfg, st = self.config, self.state
        st.output = min(max(output, cfg.output_min), cfg.output_max)
        if threshold:
            st.threshold = self.threshold_at(st.output)

    @property
    def lowest_threshold(self) -> float:
        """The lowest threshold the controller can set (events below it are never accepted)."""
        if not self.config.enabled:
            return self.threshold0
        return self.threshold_at(self.config.output_min)

    def _close_block(self) -> None:
        """Update the threshold from the block that just ended."""
        st, cfg = self.state, self.config
        if not cfg.enabled or st.key is None:
            return
        counts = [a + b for a, b in zip(st.counts, st.carry, strict=True)]
        pileup = st.pileup + st.carry_pileup
        if counts[0] < cfg.min_block_events:
            st.carry, st.carry_pileup = counts, pileup
            return
        st.carry, st.carry_pileup = list(self._zeros), 0.0
        self.rule.close(self, counts, pileup)
        st.threshold = self.threshold_at(st.output)

    def _warmup_at(self, n: int) -> int | None:
        """Events of the next ``n`` after which the warm-up ends, if it ends within them."""
        cfg, st = self.config, self.state
        if (not cfg.enabled or st.warmed or st.block != 0 or cfg.warmup_events <= 0
                or not hasattr(self.rule, "warmup")):
            return None
        need = cfg.warmup_events - st.counts[0]
        return need if 0 < need <= n else None

    def _count(self, scores: np.ndarray, pileup: np.ndarray) -> None:
        st = self.state
        new = [len(scores), int(np.count_nonzero(scores > st.threshold)),
               *self.rule.count(self, scores)]
        st.counts = [a + b for a, b in zip(st.counts, new, strict=True)]
        st.pileup += float(pileup.sum())

    def apply(
        self, scores: np.ndarray, key_run: np.ndarray, key_block: np.ndarray,
        pileup: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Threshold, decision and block index for consecutive events of the stream.

        Parameters
        ----------
        scores : (n,) array
            Decision scores, in stream order.
        key_run, key_block : (n,) int arrays
            Block keys from :func:`block_keys`.
        pileup : (n,) array, optional
            Pile-up of each event (the ``quantile`` rule's feed-forward); default 0.

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
        pileup = np.zeros(n) if pileup is None else np.asarray(pileup, dtype=np.float64)
        threshold = np.empty(n, dtype=np.float64)
        block = np.empty(n, dtype=np.int64)
        bounds = segments(key_run, key_block) if n else np.array([0])
        st = self.state
        for lo, hi in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
            key = (int(key_run[lo]), int(key_block[lo]))
            if key != st.key:
                self._close_block()
                st.key, st.block = key, st.block + 1
                st.counts, st.pileup = list(self._zeros), 0.0
                if st.block == 0 and self.config.enabled:
                    self.rule.start(self, float(pileup[lo]))
            while lo < hi:
                warm = self._warmup_at(hi - lo)
                end = hi if warm is None else lo + warm
                threshold[lo:end] = st.threshold
                block[lo:end] = st.block
                self._count(scores[lo:end], pileup[lo:end])
                if warm is not None:
                    self.rule.warmup(self)
                lo = end
        return threshold, scores > threshold, block
