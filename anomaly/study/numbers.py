"""The study's numbers from scores alone: efficiencies at each operating point, with intervals.

Every method (a score of a VAE, a baseline, a single variable, the supervised classifier) is cut
on the *evaluation* background at each target fraction with
:func:`triggerad.rates.threshold_at_rate`; at that cut the background fraction gets its
Clopper-Pearson interval on Kish effective counts and each signal its efficiency with the
Clopper-Pearson (binomial) interval (:func:`triggerad.metrics.signal_efficiency`).

An operating point is *measurable* when at least ``min_effective`` effective background events
pass the cut; otherwise the numbers are kept in ``report.json`` but the table says "not
measurable at this size". The best single-variable cut is chosen per signal and operating point
on the same evaluation sample (an optimistic choice for the baseline, never for the VAE).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from triggerad import rates
from triggerad.atomic import atomic_path
from triggerad.metrics import signal_efficiency

#: Method name of the best single-variable cut (derived from the ``single_*`` methods).
BEST_SINGLE = "best_single_variable"
#: Method name of the supervised classifier (the bound).
SUPERVISED = "classifier"


@dataclass
class ScoreSet:
    """Scores of every method on the evaluation background and on each signal.

    Attributes
    ----------
    bkg_weight : (n,) array
        Weights of the evaluation background.
    methods : dict
        ``{method: {"bkg": {signal: (n,) array}, "sig": {signal: (m,) array},
        "sig_w": {signal: (m,) array or None}}}``; a method that does not depend on the signal
        has the same background array under every signal.
    """

    bkg_weight: np.ndarray
    methods: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)

    def add(self, method: str, bkg, sig: dict[str, np.ndarray],
            sig_w: dict[str, np.ndarray | None] | None = None) -> None:
        """Add a method: ``bkg`` one array (any signal) or ``{signal: array}``."""
        per = bkg if isinstance(bkg, dict) else {s: bkg for s in sig}
        self.methods[method] = {"bkg": per, "sig": dict(sig),
                                "sig_w": {s: (sig_w or {}).get(s) for s in sig}}

    @property
    def signals(self) -> list[str]:
        """Signal names (those of the first method)."""
        first = next(iter(self.methods.values()), {"sig": {}})
        return list(first["sig"])

    def save(self, path: str | Path) -> None:
        """Write an ``.npz`` (atomically)."""
        arrays = {"bkg_weight": self.bkg_weight}
        for m, rec in self.methods.items():
            for s in rec["sig"]:
                arrays[f"{m}|bkg|{s}"] = rec["bkg"][s]
                arrays[f"{m}|sig|{s}"] = rec["sig"][s]
                if rec["sig_w"][s] is not None:
                    arrays[f"{m}|sig_w|{s}"] = rec["sig_w"][s]
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            np.savez(handle, **arrays)

    @classmethod
    def load(cls, path: str | Path) -> ScoreSet:
        """Read what :meth:`save` wrote."""
        with np.load(path, allow_pickle=False) as data:
            out = cls(bkg_weight=data["bkg_weight"])
            for key in data.files:
                if key == "bkg_weight":
                    continue
                m, part, s = key.split("|")
                rec = out.methods.setdefault(m, {"bkg": {}, "sig": {}, "sig_w": {}})
                rec[part][s] = data[key]
        for rec in out.methods.values():
            for s in rec["sig"]:
                rec["sig_w"].setdefault(s, None)
        return out


def operating_point(bkg: np.ndarray, bkg_w: np.ndarray, sig: np.ndarray,
                    sig_w: np.ndarray | None, fraction: float, *, cl: float,
                    min_effective: float) -> dict[str, Any]:
    """One method, one signal, one target background fraction.

    Returns
    -------
    dict
        ``cut``; the background ``bkg_fraction`` with ``bkg_ci`` [low, high], ``n_above``,
        ``k_eff`` (effective events above the cut), ``measurable``; the signal ``efficiency``,
        ``efficiency_ci`` and ``n_selected`` (:func:`triggerad.metrics.signal_efficiency`).
    """
    cut = rates.threshold_at_rate(bkg, bkg_w, fraction)
    achieved = rates.rate_at_cut(bkg, bkg_w, cut, cl=cl)
    if sig_w is not None and np.all(sig_w == sig_w[0]) and sig_w[0] > 0:
        sig_w = None  # equal weights: plain binomial counts
    row = signal_efficiency(sig, cut, cl, sig_w)
    return {
        "cut": cut, "bkg_fraction": achieved.fraction,
        "bkg_ci": [achieved.ci_low, achieved.ci_high], "n_above": achieved.n_above,
        "k_eff": achieved.k_eff, "measurable": bool(achieved.k_eff >= min_effective),
        **row,
    }


def study_table(scores: ScoreSet, fprs: list[float], *, cl: float, min_effective: float
                ) -> dict[str, dict[str, dict[str, dict[str, Any]]]]:
    """``{fpr label: {signal: {method: operating_point record}}}`` plus the best single cut.

    The fpr label is ``f"{fpr:g}"``. ``best_single_variable`` is the ``single_*`` method with the
    highest efficiency among the measurable ones (all of them if none is), with its
    ``variable``.
    """
    table: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}
    for fpr in fprs:
        per_signal: dict[str, dict[str, dict[str, Any]]] = {}
        for s in scores.signals:
            rows = {
                m: operating_point(rec["bkg"][s], scores.bkg_weight, rec["sig"][s], rec["sig_w"][s],
                                   fpr, cl=cl, min_effective=min_effective)
                for m, rec in scores.methods.items() if s in rec["sig"]
            }
            single = [m for m in rows if m.startswith("single_")]
            if single:
                pool = [m for m in single if rows[m]["measurable"]] or single
                best = max(pool, key=lambda m: rows[m]["efficiency"])
                rows[BEST_SINGLE] = {**rows[best], "variable": best.removeprefix("single_")}
            per_signal[s] = rows
        table[f"{fpr:g}"] = per_signal
    return table


def comparison(table: dict, method: str) -> dict[str, dict[str, Any]]:
    """Per operating point: does ``method`` beat the best single cut, and its ratio to the bound.

    Returns
    -------
    dict
        ``{fpr label: {"wins": k, "signals": n, "mean_ratio_to_supervised": r or None,
        "measurable": bool}}``; ``measurable`` is False when any number involved is not.
    """
    out = {}
    for label, per_signal in table.items():
        wins, ratios, measurable = 0, [], True
        for rows in per_signal.values():
            if method not in rows:
                continue
            mine = rows[method]
            measurable &= mine["measurable"]
            if BEST_SINGLE in rows:
                measurable &= rows[BEST_SINGLE]["measurable"]
                wins += mine["efficiency"] > rows[BEST_SINGLE]["efficiency"]
            if SUPERVISED in rows:
                measurable &= rows[SUPERVISED]["measurable"]
                bound = rows[SUPERVISED]["efficiency"]
                if bound > 0:
                    ratios.append(mine["efficiency"] / bound)
        out[label] = {"wins": int(wins), "signals": len(per_signal),
                      "mean_ratio_to_supervised": float(np.mean(ratios)) if ratios else None,
                      "measurable": bool(measurable)}
    return out


def needed_effective(fpr: float, min_effective: float) -> float:
    """Effective background events the evaluation split needs to measure ``fpr``."""
    return min_effective / fpr
