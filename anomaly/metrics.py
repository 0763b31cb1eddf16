"""Anomaly-report metrics on plain arrays: per-process rates, float vs quantized scores.

The generic weighted metrics (AUC, ROC, efficiencies; signed weights) are in
:mod:`triggerad.metrics`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats

from triggerad import rates


def process_table(
    scores: np.ndarray, weights: np.ndarray, process: np.ndarray, cut: float, input_rate_hz: float
) -> dict[str, dict[str, float]]:
    """Per SM process: events, weight (pb), share of the input rate, events and rate above the cut."""
    total = weights.sum()
    table = {}
    for proc in sorted(set(process.tolist())):
        sel = process == proc
        above = sel & (scores > cut)
        table[proc] = {
            "n_events": int(sel.sum()),
            "sum_weights_pb": float(weights[sel].sum()),
            "fraction_of_input": float(weights[sel].sum() / total),
            "n_above": int(above.sum()),
            "rate_above_hz": float(weights[above].sum() / total * input_rate_hz),
        }
    return table


def float_vs_quantized(
    bkg: dict[str, np.ndarray], bkg_weights: np.ndarray, signals: dict[str, dict[str, np.ndarray]],
    pair: tuple[str, str], fraction: float,
) -> dict[str, Any]:
    """Compare a float score with its quantized twin, each cut at the same weighted fraction.

    Returns
    -------
    dict
        ``pearson`` and ``spearman`` correlations on the background, the cuts, the weighted
        background and per-signal agreement of the two decisions, and both efficiencies.
    """
    a, b = pair
    cut_a = rates.threshold_at_rate(bkg[a], bkg_weights, fraction)
    cut_b = rates.threshold_at_rate(bkg[b], bkg_weights, fraction)
    agree = (bkg[a] > cut_a) == (bkg[b] > cut_b)
    per_signal = {
        name: {
            "decision_agreement": float(np.mean((s[a] > cut_a) == (s[b] > cut_b))),
            f"efficiency_{a}": rates.efficiency(s[a], cut_a),
            f"efficiency_{b}": rates.efficiency(s[b], cut_b),
        }
        for name, s in signals.items()
    }
    return {
        "pearson": float(stats.pearsonr(bkg[a], bkg[b])[0]),
        "spearman": float(stats.spearmanr(bkg[a], bkg[b])[0]),
        f"cut_{a}": cut_a,
        f"cut_{b}": cut_b,
        "decision_agreement_background": float(bkg_weights[agree].sum() / bkg_weights.sum()),
        "n_disagree_background": int((~agree).sum()),
        "signals": per_signal,
    }
