"""Calibration of the rate controller's pile-up feed-forward (``control.feedforward_*`` keys).

The ``quantile`` rule (:mod:`triggerad.stream.control`) shifts its output linearly with the mean
pile-up of the coming block; :func:`fit_feedforward` measures that line on calibration events
spanning a range of pile-up (``benchmarks/rate_control_pileup.py`` shows the use).
"""

from __future__ import annotations

import numpy as np

from triggerad.stream.config import ControlConfig
from triggerad.stream.control import RateController


def fit_feedforward(
    scores: np.ndarray, pileup: np.ndarray, *, threshold: float, target_fraction: float,
    config: ControlConfig | None = None, bins: int = 5,
) -> dict:
    """Calibrate the ``quantile`` rule's feed-forward on events spanning a range of pile-up.

    The events are cut into ``bins`` pile-up bins of equal size; in each, the output (of a
    controller with ``config`` and stored ``threshold``) of the score quantile accepting
    ``target_fraction`` is fitted linearly against the bin's mean pile-up, weighted by events.

    Returns
    -------
    dict : ``feedforward_intercept`` and ``feedforward_slope`` (config keys), and ``bins``
    (mean pile-up, events, output per bin).
    """
    ctl = RateController(config or ControlConfig(), threshold, target_fraction)
    scores, pileup = np.asarray(scores, dtype=np.float64), np.asarray(pileup, dtype=np.float64)
    edges = np.quantile(pileup, np.linspace(0, 1, bins + 1))
    which = np.clip(np.searchsorted(edges, pileup, side="right") - 1, 0, bins - 1)
    rows = []
    for b in range(bins):
        s = scores[which == b]
        if len(s):
            cut = float(np.quantile(s, 1 - target_fraction))
            if ctl.config.mode == "log" and cut <= 0:
                raise ValueError(f"fit_feedforward: the target quantile of pile-up bin {b} is "
                                 f"{cut!r}, not positive: use control.mode: linear")
            rows.append({"mean_pileup": float(pileup[which == b].mean()), "events": len(s),
                         "output": ctl.output_of(cut)})
    if len(rows) < 2:
        raise ValueError(f"fit_feedforward: need events in >= 2 pile-up bins, found {len(rows)}")
    p, u, w = (np.array([r[k] for r in rows]) for k in ("mean_pileup", "output", "events"))
    slope, intercept = np.polyfit(p, u, 1, w=np.sqrt(w))
    return {"feedforward_intercept": float(intercept), "feedforward_slope": float(slope),
            "bins": rows}
