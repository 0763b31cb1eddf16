"""Metrics of the evaluation report on plain arrays: AUC, ROC, efficiencies, per-process rates.

Background events carry weights (``sigma x eff / N``); signal samples are unweighted. An event is
selected when ``score > cut``; every signal efficiency is :func:`triggerad.rates.efficiency`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats

from triggerad import rates


def auc(bkg_scores: np.ndarray, bkg_weights: np.ndarray, sig_scores: np.ndarray) -> float:
    """Area under the ROC curve: weighted background against (unweighted) signal."""
    from sklearn.metrics import roc_auc_score

    y = np.concatenate([np.zeros(len(bkg_scores)), np.ones(len(sig_scores))])
    w = np.concatenate([bkg_weights, np.full(len(sig_scores), 1.0)])
    return float(roc_auc_score(y, np.concatenate([bkg_scores, sig_scores]), sample_weight=w))


def roc(
    bkg_scores: np.ndarray, bkg_weights: np.ndarray, sig_scores: np.ndarray, *,
    n_points: int = 200,
) -> tuple[np.ndarray, np.ndarray]:
    """ROC curve sampled at log-spaced background efficiencies: (fpr, tpr) arrays."""
    from sklearn.metrics import roc_curve

    y = np.concatenate([np.zeros(len(bkg_scores)), np.ones(len(sig_scores))])
    w = np.concatenate([bkg_weights, np.full(len(sig_scores), 1.0)])
    fpr, tpr, _ = roc_curve(y, np.concatenate([bkg_scores, sig_scores]), sample_weight=w)
    smallest = fpr[fpr > 0].min() if np.any(fpr > 0) else 1.0
    grid = np.logspace(np.log10(smallest), 0, n_points)
    return grid, np.interp(grid, fpr, tpr)


def signal_efficiency(scores: np.ndarray, cut: float, cl: float) -> dict[str, Any]:
    """Efficiency ``score > cut`` of an (unweighted) signal sample with its Clopper-Pearson interval."""
    eff = rates.efficiency(scores, cut)
    k = int(np.count_nonzero(np.asarray(scores) > cut))
    low, high = rates.clopper_pearson(k, len(scores), cl)
    return {"efficiency": eff, "efficiency_ci": [low, high], "n_selected": k}


def efficiencies_at_fraction(
    bkg_scores: np.ndarray, bkg_weights: np.ndarray, signals: dict[str, np.ndarray], fraction: float
) -> tuple[float, dict[str, dict[str, float]]]:
    """Cut ``bkg_scores`` at the weighted ``fraction`` and measure each signal's efficiency.

    Returns
    -------
    cut : float
        The cut.
    table : dict
        ``{signal: {"efficiency": e, "auc": a}}``.
    """
    cut = rates.threshold_at_rate(bkg_scores, bkg_weights, fraction)
    table = {
        name: {"efficiency": rates.efficiency(s, cut), "auc": auc(bkg_scores, bkg_weights, s)}
        for name, s in signals.items()
    }
    return cut, table


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
