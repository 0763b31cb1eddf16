"""The numbers of the evaluation report: the model at its threshold and the baselines at its rate.

:func:`model_report` and :func:`baselines_report` turn scores (from the model and the baselines)
into the records of ``report.json``; the metrics come from :mod:`triggerad.metrics` (generic)
and :mod:`anomaly.metrics` (per process, float vs quantized).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from anomaly.metrics import float_vs_quantized, process_table
from triggerad import rates
from triggerad.metrics import auc, efficiencies_at_fraction, roc, signal_efficiency

log = logging.getLogger(__name__)


def model_report(
    bkg: dict[str, np.ndarray],
    bkg_weights: np.ndarray,
    bkg_process: np.ndarray,
    signals: dict[str, dict[str, np.ndarray]],
    threshold: dict[str, Any],
    cfg,
    *,
    sig_weights: dict[str, np.ndarray] | None = None,
) -> dict[str, Any]:
    """Every number of the report that depends on the model's scores only.

    Parameters
    ----------
    bkg : dict of (n,) arrays
        Model scores of the evaluation background, by score name.
    bkg_weights, bkg_process : (n,) arrays
        Background weights and process labels.
    signals : dict
        ``{signal: {score name: (m,) array}}``.
    threshold : dict
        Contents of ``threshold.json`` (``score``, ``value``, ``fpr``, ``input_rate_hz``, ...).
    cfg : anomaly.evaluate.EvaluateConfig
        Configuration (sections ``rates`` and ``report``).
    sig_weights : dict of (m,) arrays, optional
        Signed event weights per signal (None: every signal event counts 1) for the
        efficiencies, AUCs and ROC curves (:mod:`triggerad.metrics`).

    Returns
    -------
    dict
        Keys ``threshold``, ``evaluation_sample``, ``signals``, ``scores_at_same_rate``,
        ``float_vs_quantized``, ``background_processes``, ``rate_curve``, ``roc``.
    """
    score, cut, fraction = threshold["score"], float(threshold["value"]), float(threshold["fpr"])
    input_rate = float(threshold["input_rate_hz"])
    lumi_pb = cfg.rates.luminosity_fb_per_month * 1000.0
    n_month = cfg.report.events_per_month
    xsec_key = f"xsec_{n_month:g}_per_month_pb"
    achieved = rates.rate_at_cut(bkg[score], bkg_weights, cut, cl=cfg.rates.cl)
    low_stats = min(achieved.k_eff, achieved.n_above) < cfg.rates.min_events_above
    if low_stats:
        log.warning(
            "only %d background events (%.1f effective) of the evaluation sample pass the "
            "threshold: the measured rate and the baselines' cuts are statistically weak",
            achieved.n_above, achieved.k_eff,
        )
    sig_table = {}
    sig_w = {name: (sig_weights or {}).get(name) for name in signals}
    for name, s in signals.items():
        row = signal_efficiency(s[score], cut, cfg.rates.cl, sig_w[name])
        row["auc"] = auc(bkg[score], bkg_weights, s[score], sig_w[name])
        row[xsec_key] = rates.xsec_for_events(row["efficiency"], lumi_pb, n_month)
        row["n_events"] = int(len(s[score]))
        sig_table[name] = row
    same_rate = {}
    for name in cfg.report.compare_scores:
        if name in bkg:
            c, table = efficiencies_at_fraction(
                bkg[name], bkg_weights, {k: v[name] for k, v in signals.items()}, fraction
            )
            same_rate[name] = {"cut": c, "signals": table}
    fvq = {
        f"{a}_vs_{b}": float_vs_quantized(bkg, bkg_weights, signals, (a, b), fraction)
        for a, b in cfg.report.quantized_pairs
        if a in bkg and b in bkg
    }
    cuts, fractions = rates.rate_curve(bkg[score], bkg_weights, n_points=cfg.report.n_curve_points)
    rocs = {
        name: roc(bkg[score], bkg_weights, s[score], n_points=cfg.report.n_roc_points,
                  sig_weights=sig_w[name])
        for name, s in signals.items()
    }
    return {
        "threshold": threshold,
        "evaluation_sample": {
            "split": cfg.report.split,
            "n_events": achieved.n_total,
            "n_eff": achieved.n_eff,
            "n_above": achieved.n_above,
            "k_eff": achieved.k_eff,
            "achieved_fraction": achieved.fraction,
            "achieved_rate_hz": achieved.fraction * input_rate,
            "rate_ci_low_hz": achieved.ci_low * input_rate,
            "rate_ci_high_hz": achieved.ci_high * input_rate,
            "rate_ci_cl": achieved.cl,
            "low_statistics": bool(low_stats),
        },
        "luminosity_fb_per_month": cfg.rates.luminosity_fb_per_month,
        "signals": sig_table,
        "scores_at_same_rate": same_rate,
        "float_vs_quantized": fvq,
        "background_processes": process_table(bkg[score], bkg_weights, bkg_process, cut, input_rate),
        "rate_curve": {"score": score, "cut": cuts, "rate_hz": fractions * input_rate},
        "roc": {name: {"fpr": f, "tpr": t} for name, (f, t) in rocs.items()},
    }


def baselines_report(
    bkg_scores: dict[str, np.ndarray],
    bkg_weights: np.ndarray,
    sig_scores: dict[str, dict[str, np.ndarray]],
    fraction: float,
    *,
    selection: dict[str, Any] | None = None,
) -> tuple[dict[str, dict[str, dict[str, float]]], dict[str, Any]]:
    """Efficiencies of each baseline at the weighted background ``fraction``.

    Parameters
    ----------
    bkg_scores : dict
        ``{baseline: (n,) scores}`` on the evaluation background; a baseline trained per signal
        (the classifier) gives ``{baseline: {signal: (n,) scores}}`` instead.
    bkg_weights : (n,) array
        Background weights.
    sig_scores : dict
        ``{baseline: {signal: (m,) scores}}``.
    fraction : float
        Target weighted background fraction.
    selection : dict, optional
        Where the best single variable is chosen: ``{"bkg": {baseline: (k,) scores}, "weights":
        (k,) array, "halves": {signal: (selection indices, held-out indices)}}`` (the SM
        validation split and one half of each signal). Its efficiency is then that of the chosen
        variable on ``bkg_scores`` and the other half of the signal (``chosen_on``
        ``"validation"``). None: chosen on the reported sample itself (``chosen_on`` ``"evaluation"``,
        optimistic: it picks the luckiest variable).

    Returns
    -------
    table : dict
        ``{baseline: {signal: {"efficiency": e, "auc": a}}}``, plus ``best_single_variable``
        (with the chosen ``variable``) when single-variable baselines are present.
    cuts : dict
        ``{baseline: cut}`` or ``{baseline: {signal: cut}}``.
    """
    table: dict[str, dict[str, dict[str, Any]]] = {}
    cuts: dict[str, Any] = {}
    for name, bkg in bkg_scores.items():
        if isinstance(bkg, dict):  # one model per signal
            table[name], cuts[name] = {}, {}
            for sig, s in sig_scores[name].items():
                cuts[name][sig], row = efficiencies_at_fraction(bkg[sig], bkg_weights, {sig: s}, fraction)
                table[name].update(row)
        else:
            cuts[name], table[name] = efficiencies_at_fraction(bkg, bkg_weights, sig_scores[name], fraction)
    single = [n for n in table if n.startswith("single_")]
    if single:
        table["best_single_variable"] = _best_single(table, single, bkg_scores, bkg_weights,
                                                     sig_scores, fraction, selection)
    return table, cuts


def method_curves(
    bkg_scores: dict[str, Any],
    bkg_weights: np.ndarray,
    sig_scores: dict[str, dict[str, np.ndarray]],
    *,
    n_points: int = 200,
    sig_weights: dict[str, np.ndarray] | None = None,
) -> dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Signal efficiency against SM efficiency of every method, per signal.

    Parameters
    ----------
    bkg_scores : dict
        ``{method: (n,) scores}`` on the evaluation background, or ``{method: {signal: (n,)}}``
        for a method trained per signal (the classifier), as :func:`baselines_report` takes.
    bkg_weights : (n,) array
        Background weights.
    sig_scores : dict
        ``{method: {signal: (m,) scores}}``.
    n_points : int
        Points per curve (log-spaced in SM efficiency, :func:`triggerad.metrics.roc`).
    sig_weights : dict of (m,) arrays, optional
        Signal weights by signal name (default: equal). A method that scores only part of a
        signal sample (the classifier: the half it did not train on) gets equal weights.

    Returns
    -------
    dict
        ``{signal: {method: (fpr, tpr)}}``, methods in the order of ``bkg_scores``.
    """
    out: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
    for method, bkg in bkg_scores.items():
        for sig, s in sig_scores[method].items():
            b = bkg[sig] if isinstance(bkg, dict) else bkg
            w = (sig_weights or {}).get(sig)
            out.setdefault(sig, {})[method] = roc(
                b, bkg_weights, s, n_points=n_points,
                sig_weights=w if w is not None and len(w) == len(s) else None)
    return out


def _best_single(table, single, bkg_scores, bkg_weights, sig_scores, fraction, selection):
    """The best single-variable row per signal (:func:`baselines_report`, ``selection``)."""
    best = {}
    for sig in table[single[0]]:
        if selection is None or any(n not in selection["bkg"] for n in single):
            winner = max(single, key=lambda n, sig=sig: table[n][sig]["efficiency"])
            best[sig] = {**table[winner][sig], "variable": winner.removeprefix("single_"),
                         "chosen_on": "evaluation"}
            continue
        pick, held = selection["halves"][sig]
        chosen = {n: efficiencies_at_fraction(selection["bkg"][n], selection["weights"],
                                              {sig: sig_scores[n][sig][pick]}, fraction)[1][sig]
                  for n in single}
        winner = max(single, key=lambda n: chosen[n]["efficiency"])
        row = efficiencies_at_fraction(bkg_scores[winner], bkg_weights,
                                       {sig: sig_scores[winner][sig][held]}, fraction)[1][sig]
        best[sig] = {**row, "variable": winner.removeprefix("single_"), "chosen_on": "validation",
                     "selection_efficiency": chosen[winner]["efficiency"]}
    return best
