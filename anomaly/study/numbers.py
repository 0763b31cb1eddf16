"""The study's numbers from scores alone: efficiencies at each operating point, with intervals.

Every method (a score of a VAE, a baseline, a single variable, the supervised classifier) is cut
on the *evaluation* background at each target fraction with
:func:`triggerad.rates.threshold_at_rate`; at that cut the background fraction gets its
Clopper-Pearson interval on Kish effective counts and each signal its efficiency with the
Clopper-Pearson (binomial) interval (:func:`triggerad.metrics.signal_efficiency`).

An operating point is *measurable* when at least ``min_effective`` effective background events
pass the cut; otherwise the numbers are kept in ``report.json`` but the table says "not
measurable at this size".

The best single-variable cut (:data:`BEST_SINGLE`) is chosen per signal and operating point -
the variable and its direction (``>`` or ``<``) - on a *separate* selection sample (the SM
validation split and the half of each signal the supervised classifier trains on), and its
efficiency is measured on the evaluation split and the other signal half
(:func:`best_single_fair`). The old choice on the evaluation sample itself (optimistic for the
baseline) stays as :data:`BEST_SINGLE_EVAL`, labelled as such. The best *unsupervised* method
is chosen the same way (:func:`best_unsupervised_fair`): on the selection sample, reported on the
held-out one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from triggerad import rates
from triggerad.atomic import atomic_path
from triggerad.metrics import signal_efficiency

#: Method name of the best single-variable cut, chosen on the selection sample (validation).
BEST_SINGLE = "best_single_variable"
#: The best single-variable cut chosen on the evaluation sample itself (optimistic).
BEST_SINGLE_EVAL = "best_single_variable_chosen_on_evaluation"
#: Names of the companion score sets of :attr:`ScoreSet.splits`.
SELECTION, HELDOUT = "selection", "heldout"
#: Directions of a single-variable cut: keep events above (``>``) or below (``<``) the cut.
DIRECTIONS = {">": 1.0, "<": -1.0}
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
    splits : dict of str to ScoreSet
        Companion sets saved in the same file: :data:`SELECTION` (single variables on the SM
        validation split and the selection half of each signal) and :data:`HELDOUT` (on the
        evaluation split and the other half), for :func:`best_single_fair`.
    """

    bkg_weight: np.ndarray
    methods: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    splits: dict[str, ScoreSet] = field(default_factory=dict)

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

    def _arrays(self, prefix: str = "") -> dict[str, np.ndarray]:
        arrays = {f"{prefix}bkg_weight": self.bkg_weight}
        for m, rec in self.methods.items():
            for s in rec["sig"]:
                arrays[f"{prefix}{m}|bkg|{s}"] = rec["bkg"][s]
                arrays[f"{prefix}{m}|sig|{s}"] = rec["sig"][s]
                if rec["sig_w"][s] is not None:
                    arrays[f"{prefix}{m}|sig_w|{s}"] = rec["sig_w"][s]
        for name, sub in self.splits.items():
            arrays.update(sub._arrays(f"{name}/"))
        return arrays

    def save(self, path: str | Path) -> None:
        """Write an ``.npz`` (atomically), the companion sets under ``<name>/`` keys."""
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            np.savez(handle, **self._arrays())

    @classmethod
    def load(cls, path: str | Path) -> ScoreSet:
        """Read what :meth:`save` wrote."""
        with np.load(path, allow_pickle=False) as data:
            return cls._from_arrays({key: data[key] for key in data.files})

    @classmethod
    def _from_arrays(cls, arrays: dict[str, np.ndarray]) -> ScoreSet:
        own = {k: v for k, v in arrays.items() if "/" not in k}
        out = cls(bkg_weight=own.pop("bkg_weight"))
        for key, value in own.items():
            m, part, s = key.split("|")
            rec = out.methods.setdefault(m, {"bkg": {}, "sig": {}, "sig_w": {}})
            rec[part][s] = value
        for rec in out.methods.values():
            for s in rec["sig"]:
                rec["sig_w"].setdefault(s, None)
        for name in sorted({k.split("/", 1)[0] for k in arrays if "/" in k}):
            out.splits[name] = cls._from_arrays(
                {k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith(f"{name}/")})
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


def best_single_fair(selection: ScoreSet, heldout: ScoreSet, signal: str, fpr: float, *,
                     cl: float, min_effective: float) -> dict[str, Any] | None:
    """The best single-variable cut chosen on ``selection``, measured on ``heldout``.

    Every ``single_*`` method of ``selection`` in both directions (:data:`DIRECTIONS`) is cut at
    ``fpr`` of the selection background; the one with the highest selection efficiency (ties: the
    first, ``>`` before ``<``) is then cut at ``fpr`` of the held-out background and its held-out
    efficiency returned, with ``variable``, ``direction``, ``selection_efficiency``.
    """
    best = None
    for m in (m for m in selection.methods if m.startswith("single_")):
        rec = selection.methods[m]
        if signal not in rec["sig"] or m not in heldout.methods:
            continue
        for direction, sign in DIRECTIONS.items():
            eff = operating_point(sign * rec["bkg"][signal], selection.bkg_weight,
                                  sign * rec["sig"][signal], rec["sig_w"][signal], fpr, cl=cl,
                                  min_effective=min_effective)["efficiency"]
            if best is None or eff > best[0]:
                best = (eff, m, direction, sign)
    if best is None:
        return None
    eff, m, direction, sign = best
    rec = heldout.methods[m]
    row = operating_point(sign * rec["bkg"][signal], heldout.bkg_weight, sign * rec["sig"][signal],
                          rec["sig_w"][signal], fpr, cl=cl, min_effective=min_effective)
    return {**row, "cut": sign * row["cut"], "variable": m.removeprefix("single_"),
            "direction": direction, "selection_efficiency": eff}


def reference_single(rows: dict[str, Any]) -> str | None:
    """The best single-variable method of a signal's rows: the fair one when present."""
    return next((m for m in (BEST_SINGLE, BEST_SINGLE_EVAL) if m in rows), None)


def study_table(scores: ScoreSet, fprs: list[float], *, cl: float, min_effective: float
                ) -> dict[str, dict[str, dict[str, dict[str, Any]]]]:
    """``{fpr label: {signal: {method: operating_point record}}}`` plus the best single cuts.

    The fpr label is ``f"{fpr:g}"``. :data:`BEST_SINGLE_EVAL` is the ``single_*`` method with the
    highest efficiency on the evaluation sample among the measurable ones (all of them if none
    is), with its ``variable``; :data:`BEST_SINGLE` (when ``scores.splits`` holds the selection
    and held-out sets) is chosen on the selection sample (:func:`best_single_fair`).
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
                rows[BEST_SINGLE_EVAL] = {**rows[best], "variable": best.removeprefix("single_")}
            if SELECTION in scores.splits and HELDOUT in scores.splits:
                fair = best_single_fair(scores.splits[SELECTION], scores.splits[HELDOUT], s, fpr,
                                        cl=cl, min_effective=min_effective)
                if fair is not None:
                    rows[BEST_SINGLE] = fair
            per_signal[s] = rows
        table[f"{fpr:g}"] = per_signal
    return table


def comparison(table: dict, method: str) -> dict[str, dict[str, Any]]:
    """Per operating point: does ``method`` beat the best single cut (the one chosen on the
    selection sample when there is one, :func:`reference_single`), and its ratio to the bound.

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
            single = reference_single(rows)
            if single is not None:
                measurable &= rows[single]["measurable"]
                wins += mine["efficiency"] > rows[single]["efficiency"]
            if SUPERVISED in rows:
                measurable &= rows[SUPERVISED]["measurable"]
                bound = rows[SUPERVISED]["efficiency"]
                if bound > 0:
                    ratios.append(mine["efficiency"] / bound)
        out[label] = {"wins": int(wins), "signals": len(per_signal),
                      "mean_ratio_to_supervised": float(np.mean(ratios)) if ratios else None,
                      "measurable": bool(measurable)}
    return out


def unsupervised(methods) -> list[str]:
    """The unsupervised methods among ``methods``: not a single variable, not the classifier."""
    return [m for m in methods if not m.startswith("single_")
            and m not in (SUPERVISED, BEST_SINGLE, BEST_SINGLE_EVAL)]


def best_unsupervised_fair(selection: ScoreSet, heldout: ScoreSet, fprs: list[float], *,
                           cl: float, min_effective: float) -> dict[str, dict[str, Any]]:
    """Per operating point, the best unsupervised method chosen on ``selection``, measured on
    ``heldout``.

    On the selection sample each unsupervised method (:func:`unsupervised`, those present in
    both sets) is compared with the best single-variable cut chosen and measured on that same
    sample: the most wins, then the highest mean of selection efficiency / supervised
    efficiency (the classifier's held-out efficiency, a fixed per-signal normalisation: it is
    trained on the selection half of the signal, so it has no selection efficiency). The chosen
    method's :func:`comparison` on ``heldout`` (against :data:`BEST_SINGLE`, chosen on
    ``selection``) is returned.

    Returns
    -------
    dict
        ``{fpr label: {"method", "chosen_on": "selection", "selection_wins",
        "selection_mean_ratio", "selection_measurable", **comparison on heldout}}``; empty when
        no unsupervised method is in both sets.
    """
    candidates = [m for m in unsupervised(selection.methods) if m in heldout.methods]
    if not candidates:
        return {}
    both = {SELECTION: selection, HELDOUT: heldout}
    held = study_table(ScoreSet(heldout.bkg_weight, heldout.methods, both), fprs, cl=cl,
                       min_effective=min_effective)
    on_sel = study_table(ScoreSet(selection.bkg_weight, selection.methods,
                                  {SELECTION: selection, HELDOUT: selection}),
                         fprs, cl=cl, min_effective=min_effective)
    out = {}
    for label, per_signal in on_sel.items():
        ranked = {}
        for m in candidates:
            wins, ratios, measurable = 0, [], True
            for s, rows in per_signal.items():
                if m not in rows:
                    continue
                measurable &= rows[m]["measurable"]
                if BEST_SINGLE in rows:
                    wins += rows[m]["efficiency"] > rows[BEST_SINGLE]["efficiency"]
                bound = held[label].get(s, {}).get(SUPERVISED, {}).get("efficiency", 0.0)
                if bound > 0:
                    ratios.append(rows[m]["efficiency"] / bound)
            ranked[m] = (int(wins), float(np.mean(ratios)) if ratios else 0.0, measurable)
        best = max(candidates, key=lambda m: ranked[m][:2])
        out[label] = {"method": best, "chosen_on": "selection", "selection_wins": ranked[best][0],
                      "selection_mean_ratio": ranked[best][1],
                      "selection_measurable": ranked[best][2],
                      **comparison({label: held[label]}, best)[label]}
    return out


def needed_effective(fpr: float, min_effective: float) -> float:
    """Effective background events the evaluation split needs to measure ``fpr``."""
    return min_effective / fpr
