"""``report.md`` of the LLP tagger evaluation, rendered from the ``report.json`` record."""

from __future__ import annotations

from typing import Any

from triggerad.mdtable import table


def _eff(row: dict) -> str:
    text = f"{row['efficiency']:.3f}"
    return text + " (limited)" if row["limited"] else text


def _model_sections(rep: dict[str, Any]) -> list[str]:
    model = rep["model"]
    da = "with" if model["domain_adaptation"] else "without"
    mistags = list(rep["efficiency_vs_ctau"]["efficiency"])
    parts = [f"\n## `{model['path']}` ({da} domain adaptation)\n\n"
             f"Trained c-tau range {model['ctau_range_mm'][0]:.3g} - "
             f"{model['ctau_range_mm'][1]:.3g} mm.\n\n### ROC (true c-tau)\n\n"]
    rows = []
    for key, rocs in rep["roc"].items():
        for against in ("udsg", "b", "c"):
            r = rocs.get(against)
            if r is None:
                rows.append([key, against, None, None, None, *[None] * len(mistags)])
                continue
            rows.append([key, against, r["n_signal"], r["n_background"], r["auc"],
                         *[_eff(r["at_mistag"][m]) for m in mistags]])
    parts.append(table(["c-tau", "vs", "LLP jets", "bkg jets", "AUC",
                         *[f"eff. at {m} mistag" for m in mistags]], rows))
    curve = rep["efficiency_vs_ctau"]
    parts.append("\n### LLP efficiency vs true c-tau (udsg mistag)\n\n")
    rows = [[f"{lo:.3g} - {hi:.3g}", n,
             *[None if curve["efficiency"][m][i] is None else
               _eff({"efficiency": curve["efficiency"][m][i], "limited": curve["limited"][m][i]})
               for m in mistags]]
            for i, (lo, hi, n) in enumerate(zip(curve["edges_mm"][:-1], curve["edges_mm"][1:],
                                                curve["n_llp"], strict=True))]
    parts.append(table(["c-tau [mm]", "LLP jets", *[f"{m}" for m in mistags]], rows))
    parts.append("\n### Efficiency vs c-tau hypothesis (fixed true c-tau)\n\n")
    rows = [[key, s["n_llp"], s["mistag"], s["peak_ctau_mm"], max(s["efficiency"])]
            for key, s in rep["ctau_scan"].items() if s is not None]
    parts.append(table(["true c-tau", "LLP jets", "udsg mistag", "peak hypothesis [mm]",
                         "peak efficiency"], rows))
    parts.append("\n### Domain check: P_max, simulation vs data-like\n\n")
    rows = [[key, d["n_simulation"], d["n_data_like"], d["jsd_bits"]]
            for key, d in rep["domain"].items()]
    parts.append(table(["c-tau hypothesis", "sim. events", "data-like events", "JSD [bits]"],
                        rows))
    return parts


def render_markdown(report: dict[str, Any]) -> str:
    """The human-readable ``report.md`` of a ``report.json`` record."""
    data = report["data"]
    parts = [
        f"# LLP tagger evaluation of `{report['model']['path']}`\n\n",
        f"Discriminant: **{report['discriminant']}**; LLP jets at their true c-tau, SM jets at "
        "the c-tau hypothesis of each comparison; jets "
        + ("weighted by their event weights" if report["settings"]["weighted"] else "unweighted")
        + ". \"(limited)\": fewer than 1/mistag effective "
        "background jets, the cut sits above every background jet. JSD in bits (log2; 1 = "
        "disjoint).\n\n",
        f"Data `{data['dir']}`: " + ", ".join(f"{k} {v}" for k, v in data["jets"].items())
        + " jets; jets used per file: " + ", ".join(f"{k} {v}" for k, v in data["split"].items())
        + " (files a model was trained on: its validation split only).\n",
    ]
    parts += _model_sections(report)
    if "compare" in report:
        parts += _model_sections(report["compare"])
        da = report["domain_adaptation"]
        parts.append("\n## Domain adaptation: cost and benefit\n\n")
        rows = [[key, *[c[a] for a in ("udsg", "b", "c")]] for key, c in da["auc_cost"].items()]
        parts.append(table(["c-tau", "AUC cost vs udsg", "vs b", "vs c"], rows))
        parts.append("\n")
        rows = [[key, j["with_da"], j["without_da"], j["ratio"]] for key, j in da["jsd"].items()]
        parts.append(table(["c-tau hypothesis", "JSD with DA", "JSD without DA",
                             "ratio (without / with)"], rows))
    parts.append("\n## Figures\n\n" + "".join(f"![{f}]({f})\n" for f in report.get("figures", [])))
    return "".join(parts)
