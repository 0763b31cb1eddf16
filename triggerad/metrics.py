"""Weighted metrics on plain arrays: ROC curves, AUC, efficiencies, Jensen-Shannon divergence.

Shared by the anomaly-detection report (:mod:`anomaly.report`) and the LLP tagger evaluation
(:mod:`tagger.metrics`). Background events carry weights (``sigma x eff / N``); signal samples
are unweighted unless signal weights are given. An event is selected when ``score > cut``; every
signal efficiency is :func:`triggerad.rates.efficiency`.

Weights may have either sign (NLO generators); every quantity is a ratio of signed weighted sums
(see :mod:`triggerad.rates`, "Negative weights"). scikit-learn's ``roc_curve`` /
``roc_auc_score`` refuse such weights (a signed cumulative sum is not monotonic), hence these
implementations:

- ``efficiency = sum w[score > cut] / sum w`` with a Clopper-Pearson interval on Kish effective
  counts (plain counts for unit weights);
- ``AUC = P(s_sig > s_bkg) + P(s_sig = s_bkg) / 2`` over weighted pairs (the Mann-Whitney
  statistic; unbiased with signed weights; equal to the area under the ROC curve);
- the ROC curve: background and signal fractions with ``score >= t`` at every distinct score
  ``t``. With negative weights the background fraction can step down; curves sampled on a grid of
  background efficiencies use its running maximum (the curve's non-decreasing envelope).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from triggerad import rates


def _weights(scores: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    if weights is None:
        return np.ones(len(scores))
    weights = np.asarray(weights, dtype=np.float64)
    if weights.shape != (len(scores),):
        raise ValueError(f"{len(scores)} scores but weights of shape {weights.shape}")
    return weights


def _sum_at_or_above(scores: np.ndarray, weights: np.ndarray, cuts: np.ndarray) -> np.ndarray:
    """Sum of the weights of the events with ``score >= cut``, for each cut."""
    order = np.argsort(scores, kind="stable")
    cum = np.concatenate([[0.0], np.cumsum(weights[order])])
    return cum[-1] - cum[np.searchsorted(scores[order], cuts, side="left")]


def signal_efficiency(scores: np.ndarray, cut: float, cl: float,
                      weights: np.ndarray | None = None) -> dict[str, Any]:
    """Efficiency ``score > cut`` of a signal sample with its Clopper-Pearson interval.

    Parameters
    ----------
    scores : (m,) array
        Signal scores.
    cut : float
        The cut.
    cl : float
        Confidence level of the interval.
    weights : (m,) array, optional
        Signed event weights (None: every event counts 1, the interval is on plain counts).

    Returns
    -------
    dict
        ``efficiency``, ``efficiency_ci`` [low, high], ``n_selected`` (unweighted), and with
        weights ``n_eff`` (Kish) and ``n_negative``.
    """
    scores = np.asarray(scores, dtype=np.float64)
    eff = rates.efficiency(scores, cut, weights)
    k = int(np.count_nonzero(scores > cut))
    if weights is None:
        low, high = rates.clopper_pearson(k, len(scores), cl)
        return {"efficiency": eff, "efficiency_ci": [low, high], "n_selected": k}
    result = rates.rate_at_cut(scores, weights, cut, cl=cl)
    return {"efficiency": eff, "efficiency_ci": [result.ci_low, result.ci_high],
            "n_selected": k, "n_eff": result.n_eff, "n_negative": result.n_negative}


def auc(bkg_scores: np.ndarray, bkg_weights: np.ndarray, sig_scores: np.ndarray,
        sig_weights: np.ndarray | None = None) -> float:
    """Area under the ROC curve: weighted background against (optionally weighted) signal.

    Ties count one half. Weights may be negative; each sample's sum must be positive.
    """
    bkg = np.asarray(bkg_scores, dtype=np.float64)
    sig = np.asarray(sig_scores, dtype=np.float64)
    wb, ws = _weights(bkg, bkg_weights), _weights(sig, sig_weights)
    order = np.argsort(bkg, kind="stable")
    cum = np.concatenate([[0.0], np.cumsum(wb[order])])
    lo = np.searchsorted(bkg[order], sig, side="left")
    hi = np.searchsorted(bkg[order], sig, side="right")
    below = cum[lo] + 0.5 * (cum[hi] - cum[lo])  # background weight under each signal event
    return float(np.average(below / cum[-1], weights=ws))


def roc_points(bkg_scores: np.ndarray, bkg_weights: np.ndarray, sig_scores: np.ndarray,
               sig_weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Background and signal fractions with ``score >= t`` at every distinct score, from (0, 0)."""
    bkg = np.asarray(bkg_scores, dtype=np.float64)
    sig = np.asarray(sig_scores, dtype=np.float64)
    wb, ws = _weights(bkg, bkg_weights), _weights(sig, sig_weights)
    cuts = np.unique(np.concatenate([bkg, sig]))[::-1]
    fpr = _sum_at_or_above(bkg, wb, cuts) / wb.sum()
    tpr = _sum_at_or_above(sig, ws, cuts) / ws.sum()
    return np.concatenate([[0.0], fpr]), np.concatenate([[0.0], tpr])


def roc(
    bkg_scores: np.ndarray, bkg_weights: np.ndarray, sig_scores: np.ndarray, *,
    n_points: int = 200, sig_weights: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """ROC curve sampled at log-spaced background efficiencies: (fpr, tpr) arrays."""
    fpr, tpr = roc_points(bkg_scores, bkg_weights, sig_scores, sig_weights)
    fpr = np.maximum.accumulate(fpr)
    smallest = fpr[fpr > 0].min() if np.any(fpr > 0) else 1.0
    grid = np.logspace(np.log10(smallest), 0, n_points)
    return grid, np.interp(grid, fpr, tpr)


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


def jensen_shannon(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon divergence of two histograms, in bits (log base 2; 0 <= JSD <= 1).

    ``JSD = (KL(p || m) + KL(q || m)) / 2`` with ``m = (p + q) / 2``; each histogram is
    normalised to unit sum first. Identical histograms give 0, histograms without a common
    non-empty bin give 1 (ln 2 in nats).

    Parameters
    ----------
    p, q : array
        Non-negative bin contents (same binning; any overall normalisation).
    """
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    if p.shape != q.shape:
        raise ValueError(f"histograms of different shapes {p.shape} and {q.shape}")
    if (p < 0).any() or (q < 0).any() or not (p.sum() > 0 and q.sum() > 0):
        raise ValueError("histograms must be non-negative with a positive sum")
    p, q = p / p.sum(), q / q.sum()
    m = 0.5 * (p + q)

    def kl(a: np.ndarray) -> float:
        nz = a > 0
        return float(np.sum(a[nz] * np.log2(a[nz] / m[nz])))

    return max(0.0, 0.5 * (kl(p) + kl(q)))
