"""The study report: ``report.json`` (every number), ``report.md`` (the tables) and the plots.

Cells of operating points without enough effective SM events above the cut read "not
measurable" (their numbers stay in ``report.json``); the published points (Cerri et al. at an SM
efficiency of 5.4e-6, the ADC2021 convention of 1e-5) are compared only when the evaluation
sample can measure them, otherwise the report says how many effective events that would need.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from anomaly.study import numbers
from anomaly.study.numbers import BEST_SINGLE, BEST_SINGLE_EVAL, SUPERVISED, ScoreSet
from triggerad import rates
from triggerad.atomic import atomic_dir, write_json, write_text
from triggerad.config import load_section, resolve_config, to_dict
from triggerad.threshold import RatesConfig

#: Cerri et al. 2019 (arXiv:1811.10276): signal efficiencies of the NLL score at SM efficiency
#: 5.4e-6 (/work/shared/reference/physics.md), by our signal names.
CERRI_FPR = 5.4e-6
CERRI_NLL = {"A_4l": 2.8e-3, "LQ_btau": 6.8e-4, "h0_tautau": 3.7e-4, "hplus_taunu": 1.2e-3}
#: ADC2021 (arXiv:2107.02157) quotes signal efficiencies at this background FPR.
ADC2021_FPR = 1e-5
NOT_MEASURABLE = "not measurable"


def _cell(row: dict[str, Any] | None) -> str:
    if row is None:
        return "-"
    if not row["measurable"]:
        return NOT_MEASURABLE
    low, high = row["efficiency_ci"]
    return f"{row['efficiency']:.3g} [{low:.3g}, {high:.3g}]"


def _method_order(methods: list[str], headline: str) -> list[str]:
    first = [headline] if headline in methods else []
    vaes = sorted(m for m in methods if ":" in m and m != headline)
    singles = sorted(m for m in methods if m.startswith("single_"))
    tail = [m for m in (BEST_SINGLE, BEST_SINGLE_EVAL, SUPERVISED) if m in methods]
    rest = sorted(set(methods) - set(first) - set(vaes) - set(singles) - set(tail))
    return first + vaes + rest + singles + tail


def threshold_checks(scores: ScoreSet, thresholds: dict[str, Any], cl: float) -> dict[str, Any]:
    """Each VAE's stored cut (set on its validation split) applied to the evaluation split."""
    out = {}
    for model, thr in (thresholds or {}).items():
        if not isinstance(thr, dict) or "score" not in thr:
            continue
        method = f"{model}:{thr['score']}"
        if method not in scores.methods:
            continue
        bkg = next(iter(scores.methods[method]["bkg"].values()))
        r = rates.rate_at_cut(bkg, scores.bkg_weight, float(thr["value"]), cl=cl)
        rate = float(thr["input_rate_hz"])
        out[model] = {**thr, "test_rate_hz": r.fraction * rate,
                      "test_rate_ci_hz": [r.ci_low * rate, r.ci_high * rate],
                      "test_n_above": r.n_above, "test_k_eff": r.k_eff}
    return out


def published(scores: ScoreSet, headline: str, *, cl: float, min_effective: float,
              n_eff: float) -> dict[str, Any]:
    """Our headline method at the published operating points, or why it cannot be measured."""
    out = {}
    for name, fpr, reference in (("Cerri et al. 2019 (NLL)", CERRI_FPR, CERRI_NLL),
                                 ("ADC2021 convention", ADC2021_FPR, {})):
        needed = numbers.needed_effective(fpr, min_effective)
        row: dict[str, Any] = {"fpr": fpr, "needed_n_eff": needed, "n_eff": n_eff,
                               "published": reference, "ours": {}}
        if headline in scores.methods:
            table = numbers.study_table(ScoreSet(scores.bkg_weight, {headline: scores.methods[
                headline]}), [fpr], cl=cl, min_effective=min_effective)[f"{fpr:g}"]
            row["ours"] = {s: r[headline] for s, r in table.items()}
        row["measurable"] = bool(row["ours"]) and all(r["measurable"] for r in row["ours"].values())
        out[name] = row
    return out


def best_unsupervised(table: dict, methods: list[str]) -> dict[str, dict[str, Any]]:
    """Per operating point, the unsupervised method with the most wins, then the best ratio,
    chosen on the evaluation sample itself (optimistic: it picks the luckiest method).
    """
    candidates = numbers.unsupervised(methods)
    out = {}
    for label in table:
        rows = {m: numbers.comparison({label: table[label]}, m)[label] for m in candidates}
        if rows:
            best = max(rows, key=lambda m: (rows[m]["wins"],
                                            rows[m]["mean_ratio_to_supervised"] or 0.0))
            out[label] = {"method": best, "chosen_on": "evaluation", **rows[best]}
    return out


def best_unsupervised_choices(scores: ScoreSet, table: dict, fprs: list[float], *, cl: float,
                              min_effective: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(best, chosen on evaluation)``: ``best`` is chosen on the selection sample and measured
    on the held-out one (:func:`numbers.best_unsupervised_fair`) when the scores hold both for
    the unsupervised methods, otherwise the choice on the evaluation sample.
    """
    optimistic = best_unsupervised(table, list(scores.methods))
    fair = {}
    if numbers.SELECTION in scores.splits and numbers.HELDOUT in scores.splits:
        fair = numbers.best_unsupervised_fair(scores.splits[numbers.SELECTION],
                                              scores.splits[numbers.HELDOUT], fprs, cl=cl,
                                              min_effective=min_effective)
    return (fair or optimistic), optimistic


def build_report(scores: ScoreSet, cfg, records: dict[str, Any], *, config_path: str = ""
                 ) -> dict[str, Any]:
    """Every number of the study (the content of ``report.json``)."""
    ev = cfg.evaluation
    rates_cfg = load_section(RatesConfig, resolve_config(ev.config), "rates")
    w = scores.bkg_weight
    n_eff = float(w.sum() ** 2 / np.square(w).sum())
    table = numbers.study_table(scores, ev.fprs, cl=rates_cfg.cl, min_effective=ev.min_effective_events)
    statistics = {
        f"{fpr:g}": {"needed_n_eff": numbers.needed_effective(fpr, ev.min_effective_events),
                     "expected_k_eff": fpr * n_eff,
                     "measurable": fpr * n_eff >= ev.min_effective_events}
        for fpr in ev.fprs
    }
    vae_defaults = [f"{m}:{r['score']}" for m, r in (records.get("threshold") or {}).items()
                    if isinstance(r, dict) and "score" in r]
    compared = list(dict.fromkeys([ev.headline, *vae_defaults]))
    best, best_on_eval = best_unsupervised_choices(scores, table, ev.fprs, cl=rates_cfg.cl,
                                                   min_effective=ev.min_effective_events)
    seconds = {k: v.get("seconds") for k, v in records.items() if isinstance(v, dict)}
    return {
        "config": config_path, "study_config": to_dict(cfg),
        "evaluation_sample": {"n_events": int(len(w)), "n_eff": n_eff,
                              "min_effective_events": ev.min_effective_events, "cl": rates_cfg.cl},
        "samples": {k: records.get(k) for k in ("generate", "scores")},
        "training": {k: {f: (records.get(k) or {}).get(f) for f in
                         ("events", "epochs_run", "best_epoch", "val_loss", "seconds")}
                     for k in ("train_hlf", "train_l1")},
        "step_seconds": seconds,
        "statistics": statistics,
        "table": table,
        "headline": {m: numbers.comparison(table, m) for m in compared},
        "best_unsupervised": best,
        "best_unsupervised_chosen_on_evaluation": best_on_eval,
        "thresholds": threshold_checks(scores, records.get("threshold") or {}, rates_cfg.cl),
        "threshold_errors": {m: r["error"] for m, r in (records.get("threshold") or {}).items()
                             if isinstance(r, dict) and "error" in r},
        "published": published(scores, ev.headline, cl=rates_cfg.cl,
                               min_effective=ev.min_effective_events, n_eff=n_eff),
    }


def _best_label(best: dict[str, Any]) -> str:
    if best and all(c.get("chosen_on") == "selection" for c in best.values()):
        return ("best unsupervised (chosen on the validation split + selection half of the "
                "signals; numbers on the evaluation split + the other half)")
    return "best unsupervised, chosen on the evaluation split itself (optimistic)"


def render_markdown(report: dict[str, Any]) -> str:
    """``report.md``: sizes, statistics per operating point, the comparison, the tables."""
    ev = report["evaluation_sample"]
    cl = f"{100 * ev['cl']:.4g} %"
    lines = ["# Anomaly-detection reference study", ""]
    if report["config"]:
        lines += [f"`trigger-ad study {report['config']} --out DIR`", ""]
    gen = report["samples"].get("generate") or {}
    sc = report["samples"].get("scores") or {}
    lines += ["## Samples and run time", ""]
    if gen.get("processes"):
        lines.append("| process | generated | selected |")
        lines.append("|---|--:|--:|")
        lines += [f"| {n} | {p['generated']} | {p['selected']} |" for n, p in gen["processes"].items()]
        lines.append("")
    lines.append(f"- background after the trigger: {gen.get('background_events', '?')} events; "
                 f"training split {sc.get('n_train_background', '?')}; evaluation split "
                 f"({sc.get('split', '?')}) {ev['n_events']} events, {ev['n_eff']:.0f} effective "
                 "(Kish)")
    if sc.get("signals"):
        lines.append("- signal events: " + ", ".join(f"{n} {k}" for n, k in sc["signals"].items())
                     + " (the supervised classifier is evaluated on the half it did not see)")
    for k, t in report["training"].items():
        if t.get("events"):
            lines.append(f"- {k}: {t['events']['train']} training events, {t['epochs_run']} epochs "
                         f"(best {t['best_epoch']}), val loss {t['val_loss']:.4g}")
    total = sum(s or 0 for s in report["step_seconds"].values())
    lines.append("- wall time per step [s]: " + ", ".join(
        f"{k} {v:.0f}" for k, v in report["step_seconds"].items() if v is not None)
        + f"; total {total:.0f} s ({total / 60:.1f} min)")
    lines += ["", "## What this sample can measure", "",
              f"An operating point is measurable when >= {ev['min_effective_events']:g} effective "
              "SM events of the evaluation split pass the cut.", "",
              "| SM fraction (FPR) | effective events needed | expected here | measurable |",
              "|--:|--:|--:|---|"]
    for label, s in report["statistics"].items():
        lines.append(f"| {label} | {s['needed_n_eff']:.3g} | {s['expected_k_eff']:.1f} | "
                     f"{'yes' if s['measurable'] else 'no: ' + NOT_MEASURABLE + ' at this size'} |")
    lines += ["", "## Summary: unsupervised score vs the best single-variable cut", "",
              "The best single-variable cut (variable and direction) is chosen on the SM "
              "validation split and half of each signal, and measured on the evaluation split "
              "and the other half (when the scores hold that selection sample; otherwise on the "
              "evaluation split itself, an optimistic choice).", "",
              "| method | FPR | wins vs best single variable | mean efficiency / supervised |",
              "|---|--:|--:|--:|"]
    for method, per in report["headline"].items():
        for label, c in per.items():
            if not c["measurable"]:
                lines.append(f"| {method} | {label} | {NOT_MEASURABLE} at this size | - |")
                continue
            ratio = c["mean_ratio_to_supervised"]
            lines.append(f"| {method} | {label} | {c['wins']} of {c['signals']} | "
                         f"{'-' if ratio is None else f'{ratio:.2f}'} |")
    best = report.get("best_unsupervised", {})
    for key, what in (("best_unsupervised", _best_label(best)),
                      ("best_unsupervised_chosen_on_evaluation",
                       "best unsupervised, chosen on the evaluation split itself (optimistic)")):
        if key != "best_unsupervised" and all(c.get("chosen_on") == "evaluation"
                                              for c in best.values()):
            continue  # the line above is already this choice
        for label, c in report.get(key, {}).items():
            if c["measurable"]:
                ratio = c["mean_ratio_to_supervised"]
                lines.append(f"| {what}: {c['method']} | {label} | {c['wins']} of "
                             f"{c['signals']} | {'-' if ratio is None else f'{ratio:.2f}'} |")
    for label, per_signal in report["table"].items():
        signals = list(per_signal)
        methods = _method_order(sorted({m for r in per_signal.values() for m in r}),
                                report["study_config"]["evaluation"]["headline"])
        lines += ["", f"## Efficiency at SM fraction {label} ({cl} Clopper-Pearson interval)", ""]
        if not any(r["measurable"] for rows in per_signal.values() for r in rows.values()):
            k_max = max(r["k_eff"] for rows in per_signal.values() for r in rows.values())
            lines.append(f"{NOT_MEASURABLE.capitalize()} at this size for every method: at most "
                         f"{k_max:.1f} effective SM events pass a cut (needed: "
                         f"{ev['min_effective_events']:g}); the numbers are in report.json.")
            continue
        lines += ["| method | " + " | ".join(signals) + " |", "|---|" + "--:|" * len(signals)]
        for m in methods:
            name = m
            if m == BEST_SINGLE:
                name = ("best single variable, chosen on the validation split (" + ", ".join(
                    f"{per_signal[s][m]['variable']} {per_signal[s][m]['direction']}"
                    if m in per_signal[s] else "-" for s in signals) + ")")
            elif m == BEST_SINGLE_EVAL:
                name = ("best single variable chosen on the evaluation split itself (optimistic; "
                        + ", ".join(per_signal[s][m]["variable"] for s in signals) + ")")
            lines.append(f"| {name} | " + " | ".join(_cell(per_signal[s].get(m)) for s in signals)
                         + " |")
        k_eff = {m: per_signal[signals[0]][m]["k_eff"] for m in methods
                 if m in per_signal[signals[0]]}
        lines.append("")
        lines.append("Effective SM events above each method's cut: " + ", ".join(
            f"{m} {k:.1f}" for m, k in k_eff.items() if m not in (BEST_SINGLE, BEST_SINGLE_EVAL)))
    lines += ["", "## Thresholds (set on each VAE's validation split)", "",
              "| model | score | SM fraction | rate on val [Hz] | rate on the evaluation split [Hz] "
              f"({cl}) | SM events above (effective) |", "|---|---|--:|--:|--:|--:|"]
    for model, error in report["threshold_errors"].items():
        lines.append(f"| {model} | - | - | no threshold: {error} | - | - |")
    for model, t in report["thresholds"].items():
        low, high = t["test_rate_ci_hz"]
        lines.append(f"| {model} | {t['score']} | {t['fpr']:.3g} | {t['achieved_rate_hz']:.4g} | "
                     f"{t['test_rate_hz']:.4g} [{low:.4g}, {high:.4g}] | {t['test_n_above']} "
                     f"({t['test_k_eff']:.1f}) |")
    lines += ["", "## Published operating points", ""]
    for name, p in report["published"].items():
        if p["measurable"]:
            ours = ", ".join(f"{s} {_cell(r)}" for s, r in p["ours"].items())
            lines.append(f"- {name} at FPR {p['fpr']:.3g}: ours {ours}")
        else:
            lines.append(f"- {name} at FPR {p['fpr']:.3g}: {NOT_MEASURABLE} at this size (needs "
                         f"{p['needed_n_eff']:.3g} effective SM events in the evaluation split, "
                         f"has {p['n_eff']:.0f})")
        if p["published"]:
            lines.append("  published: " + ", ".join(f"{s} {v:.2g}" for s, v in p["published"].items()))
    contamination = report["study_config"].get("contamination")
    if contamination:
        fractions = " / ".join(f"{100 * f:g} %" for f in contamination["fractions"])
        lines += ["", "## Signal contamination", "",
                  f"The models retrained with signal in the training split ({fractions}; cut on "
                  "the clean SM evaluation split): "
                  "[../contamination/report/contamination.md](../contamination/report/contamination.md)"
                  " (written by the stages after this report)."]
    if report.get("figures"):
        lines += ["", "## Figures", ""] + [f"![{f}]({f})" for f in report["figures"]]
    return "\n".join(lines) + "\n"


def write_report(folder: str | Path, scores: ScoreSet, cfg, records: dict[str, Any], *,
                 config_path: str = "") -> dict[str, Any]:
    """Build the report and write ``folder/`` (atomically): report.json, report.md, plots."""
    from anomaly.study import plots

    report = build_report(scores, cfg, records, config_path=config_path)
    with atomic_dir(folder) as tmp:
        report["figures"] = plots.efficiency_vs_fpr(
            tmp, scores, report, headline=cfg.evaluation.headline)
        write_json(tmp / "report.json", report)
        write_text(tmp / "report.md", render_markdown(report))
    return report
