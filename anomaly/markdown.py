"""``report.md``: the human-readable evaluation report, rendered from the ``report.json`` record."""

from __future__ import annotations

from typing import Any

from triggerad.mdtable import fmt, table


def render_markdown(report: dict[str, Any]) -> str:
    """The human-readable ``report.md`` of a ``report.json`` record."""
    thr, ev = report["threshold"], report["evaluation_sample"]
    xsec_key = next((k for row in report["signals"].values() for k in row if k.startswith("xsec_")), "")
    parts = [
        f"# Evaluation of `{report.get('model', 'model')}`\n",
        "\n## Threshold\n\n",
        table(
            ["score", "cut (score > cut)", "target rate [Hz]", "input rate [Hz]",
             "achieved rate (val) [Hz]", f"CI {thr.get('rate_ci_cl', 0.6827):.4g}", "n above"],
            [[thr["score"], thr["value"], thr["target_rate_hz"], thr["input_rate_hz"],
              thr["achieved_rate_hz"], f"[{fmt(thr['rate_ci_low_hz'])}, {fmt(thr['rate_ci_high_hz'])}]",
              thr["n_background_above"]]],
        ),
        f"\n## Rate on the {ev['split']} split\n\n",
        table(
            ["events", "n_eff", "n above", "achieved rate [Hz]", "CI [Hz]", "low statistics"],
            [[ev["n_events"], ev["n_eff"], ev["n_above"], ev["achieved_rate_hz"],
              f"[{fmt(ev['rate_ci_low_hz'])}, {fmt(ev['rate_ci_high_hz'])}]", ev["low_statistics"]]],
        ),
        "\n## Signals at the threshold\n\n",
        f"Cross-section for {xsec_key.split('_')[1]} selected events per month at "
        f"{report['luminosity_fb_per_month']:g} fb^-1/month.\n\n",
        table(
            ["signal", "efficiency", "CI", "AUC", "xsec [pb]"],
            [[n, r["efficiency"], f"[{fmt(r['efficiency_ci'][0])}, {fmt(r['efficiency_ci'][1])}]",
              r["auc"], r[xsec_key]] for n, r in report["signals"].items()],
        ),
    ]
    signals = list(report["signals"])
    methods = {f"model {k}": v["signals"] for k, v in report["scores_at_same_rate"].items()}
    methods.update(report.get("baselines", {}))
    parts += [
        "\n## Efficiencies at the same SM rate (cut on the evaluation sample)\n\n",
        f"Every score below is cut on the {ev['split']} SM sample at the threshold's target "
        f"fraction {thr['fpr']:.3g} (the table above uses the stored cut). Baselines: plain "
        "autoencoder (MSE), IsolationForest, a normalizing flow (-log p), a supervised classifier per signal (trained on half "
        "of the signal, evaluated on the other half: an upper bound), and single-variable cuts.\n\n",
        table(["method", *signals],
               [[m, *(row.get(s, {}).get("efficiency") for s in signals)] for m, row in methods.items()]),
    ]
    if report.get("baselines", {}).get("best_single_variable"):
        best = report["baselines"]["best_single_variable"]
        on_val = all(best[s].get("chosen_on") == "validation" for s in best)
        parts.append("\nBest single variable: " + ", ".join(
            f"{s}: {best[s]['variable']}" for s in signals if s in best)
            + (" (chosen on the validation split and half of each signal; its efficiency on the "
               "other half)" if on_val else " (chosen on the evaluated sample itself: optimistic)")
            + "\n")
    for pair, row in report["float_vs_quantized"].items():
        parts += [
            f"\n## Float vs quantized: {pair}\n\n",
            f"Pearson {row['pearson']:.4f}, Spearman {row['spearman']:.4f}, weighted decision "
            f"agreement on the SM background {row['decision_agreement_background']:.6f} "
            f"({row['n_disagree_background']} events differ).\n\n",
            table(["signal", "decision agreement", *[k for k in next(iter(row["signals"].values()), {})
                                                       if k.startswith("efficiency")]],
                   [[s, *r.values()] for s, r in row["signals"].items()]),
        ]
    parts += [
        "\n## SM processes\n\n",
        table(["process", "events", "sigma x eff [pb]", "share of input", "n above", "rate above [Hz]"],
               [[p, *r.values()] for p, r in report["background_processes"].items()]),
        "\n## Figures\n\n",
        *[f"![{name}]({name})\n" for name in report.get("figures", [])],
    ]
    return "".join(parts)
