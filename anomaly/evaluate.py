"""The evaluation report of a model with a threshold: efficiencies, AUCs, baselines, figures.

``evaluate(MODEL, DIR, REPORT)`` scores the *test* split of the model's background (the split the
threshold was not set on, so the achieved rate there is an honest check) and every
``DIR/signal_<name>.h5``, and writes ``REPORT/`` atomically: ``report.md``, PNG figures,
``report.json`` (every number) and the provenance.

Comparisons at the same rate
----------------------------
- The model's efficiencies in ``signals`` use the stored cut (``threshold.json`` ``value``).
- Every other score of the model (``scores_at_same_rate``) and every baseline is cut on the
  evaluation background at the threshold's target fraction (``fpr``) with
  :func:`anomaly.rates.threshold_at_rate`, so they all select the same weighted SM fraction of
  the same events.
- The supervised classifier of each signal is trained on the background training split and one
  half of that signal, and evaluated on the other half (seeded).
- ``float_vs_quantized`` compares a float score with its quantized twin (``mu2`` / ``mu2_q``):
  correlations, and the agreement of the two trigger decisions when each is cut at the same
  fraction.

The cross-section for N selected events per month is ``N / (efficiency x L_month)`` in pb, with
``L_month`` from ``rates.luminosity_fb_per_month`` (Cerri et al. table).
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from scipy import stats

from anomaly import baselines as bl
from anomaly import plots, rates
from anomaly.roc import auc, roc, signal_efficiency
from anomaly.threshold import RatesConfig
from triggerad.atomic import atomic_dir, write_json, write_text
from triggerad.errors import InputFileError

log = logging.getLogger(__name__)

REPORT_JSON = "report.json"
REPORT_MD = "report.md"


@dataclass
class ReportConfig:
    """What the report contains (YAML section ``report``).

    Attributes
    ----------
    split : str
        Background split evaluated (``test``; ``val`` is the one the threshold was set on).
    events_per_month : float
        N in "cross-section for N selected events per month".
    compare_scores : list of str
        Model scores compared at the same rate (those the model provides).
    quantized_pairs : list of [float, quantized] score names
        Pairs for the float-vs-quantized comparison.
    n_curve_points, n_roc_points : int
        Samples of the rate-vs-threshold and ROC curves stored in ``report.json``.
    max_signal_events : int or None
        Use at most this many events per signal file.
    """

    split: Literal["val", "test"] = "test"
    events_per_month: float = 100.0
    compare_scores: list[str] = field(
        default_factory=lambda: ["loss", "nll", "kl", "mu2", "mu2_q", "kl_q"]
    )
    quantized_pairs: list[list[str]] = field(default_factory=lambda: [["mu2", "mu2_q"], ["kl", "kl_q"]])
    n_curve_points: int = 200
    n_roc_points: int = 200
    max_signal_events: int | None = None


@dataclass
class EvaluateConfig:
    """``configs/evaluate.yaml``: one attribute per section."""

    rates: RatesConfig = field(default_factory=RatesConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    autoencoder: bl.AutoencoderConfig = field(default_factory=bl.AutoencoderConfig)
    isolation_forest: bl.IsolationForestConfig = field(default_factory=bl.IsolationForestConfig)
    classifier: bl.ClassifierConfig = field(default_factory=bl.ClassifierConfig)
    single_variable: bl.SingleVariableConfig = field(default_factory=bl.SingleVariableConfig)


# ---------------------------------------------------------------------------------------------
# Pure metrics on arrays
# ---------------------------------------------------------------------------------------------
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
        name: {"efficiency": float(np.mean(s > cut)), "auc": auc(bkg_scores, bkg_weights, s)}
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
            f"efficiency_{a}": float(np.mean(s[a] > cut_a)),
            f"efficiency_{b}": float(np.mean(s[b] > cut_b)),
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


def model_report(
    bkg: dict[str, np.ndarray],
    bkg_weights: np.ndarray,
    bkg_process: np.ndarray,
    signals: dict[str, dict[str, np.ndarray]],
    threshold: dict[str, Any],
    cfg: EvaluateConfig,
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
    cfg : EvaluateConfig
        Configuration.
    sig_weights : dict of (m,) arrays, optional
        Signed event weights per signal (None: every signal event counts 1) for the
        efficiencies, AUCs and ROC curves (:mod:`anomaly.roc`).

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
    achieved = rates.rate_at_cut(bkg[score], bkg_weights, cut, cfg.rates.cl)
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
    cuts, fractions = rates.rate_curve(bkg[score], bkg_weights, cfg.report.n_curve_points)
    rocs = {
        name: roc(bkg[score], bkg_weights, s[score], cfg.report.n_roc_points, sig_w[name])
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
        signals = table[single[0]]
        best = {}
        for sig in signals:
            winner = max(single, key=lambda n, sig=sig: table[n][sig]["efficiency"])
            best[sig] = {**table[winner][sig], "variable": winner.removeprefix("single_")}
        table["best_single_variable"] = best
    return table, cuts


# ---------------------------------------------------------------------------------------------
# Baselines trained in the same run
# ---------------------------------------------------------------------------------------------
def baseline_scores(
    train_x: np.ndarray,
    train_w: np.ndarray,
    bkg_batch: Any,
    bkg_x: np.ndarray,
    sig_batches: dict[str, Any],
    sig_x: dict[str, np.ndarray],
    cfg: EvaluateConfig,
) -> tuple[dict[str, Any], dict[str, dict[str, np.ndarray]]]:
    """Train the enabled baselines and score the evaluation background and signals.

    Parameters
    ----------
    train_x, train_w : arrays
        21 features and weights of the background training split.
    bkg_batch, bkg_x : EventBatch, array
        Evaluation background and its 21 features.
    sig_batches, sig_x : dicts
        Signal batches and their 21 features, by signal name.
    cfg : EvaluateConfig
        Which baselines run, and their sizes.

    Returns
    -------
    bkg, sig : dicts
        Inputs of :func:`baselines_report`.
    """
    bkg: dict[str, Any] = {}
    sig: dict[str, dict[str, np.ndarray]] = {}
    if cfg.single_variable.enabled:
        for var in cfg.single_variable.variables:
            bkg[f"single_{var}"] = bl.single_variable(bkg_batch, bkg_x, var)
            sig[f"single_{var}"] = {
                n: bl.single_variable(sig_batches[n], x, var) for n, x in sig_x.items()
            }
    unsupervised = {
        "autoencoder": (cfg.autoencoder, bl.fit_autoencoder),
        "isolation_forest": (cfg.isolation_forest, bl.fit_isolation_forest),
    }
    for name, (section, fit) in unsupervised.items():
        if section.enabled:
            idx = bl.subsample(len(train_x), section.max_train_events, section.seed)
            scorer = fit(train_x[idx], train_w[idx], section)
            bkg[name] = scorer(bkg_x)
            sig[name] = {n: scorer(x) for n, x in sig_x.items()}
    if cfg.classifier.enabled:
        section = cfg.classifier
        idx = bl.subsample(len(train_x), section.max_train_events, section.seed)
        bkg["classifier"], sig["classifier"] = {}, {}
        for n, x in sig_x.items():
            fit_half, eval_half = bl.signal_halves(len(x), section.seed)
            scorer = bl.fit_classifier(train_x[idx], train_w[idx], x[fit_half], section)
            bkg["classifier"][n] = scorer(bkg_x)
            sig["classifier"][n] = scorer(x[eval_half])
    return bkg, sig


# ---------------------------------------------------------------------------------------------
# Report folder
# ---------------------------------------------------------------------------------------------
def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def render_markdown(report: dict[str, Any]) -> str:
    """The human-readable ``report.md`` of a ``report.json`` record."""
    thr, ev = report["threshold"], report["evaluation_sample"]
    xsec_key = next((k for row in report["signals"].values() for k in row if k.startswith("xsec_")), "")
    parts = [
        f"# Evaluation of `{report.get('model', 'model')}`\n",
        "\n## Threshold\n\n",
        _table(
            ["score", "cut (score > cut)", "target rate [Hz]", "input rate [Hz]",
             "achieved rate (val) [Hz]", f"CI {thr.get('rate_ci_cl', 0.6827):.4g}", "n above"],
            [[thr["score"], thr["value"], thr["target_rate_hz"], thr["input_rate_hz"],
              thr["achieved_rate_hz"], f"[{_fmt(thr['rate_ci_low_hz'])}, {_fmt(thr['rate_ci_high_hz'])}]",
              thr["n_background_above"]]],
        ),
        f"\n## Rate on the {ev['split']} split\n\n",
        _table(
            ["events", "n_eff", "n above", "achieved rate [Hz]", "CI [Hz]", "low statistics"],
            [[ev["n_events"], ev["n_eff"], ev["n_above"], ev["achieved_rate_hz"],
              f"[{_fmt(ev['rate_ci_low_hz'])}, {_fmt(ev['rate_ci_high_hz'])}]", ev["low_statistics"]]],
        ),
        "\n## Signals at the threshold\n\n",
        f"Cross-section for {xsec_key.split('_')[1]} selected events per month at "
        f"{report['luminosity_fb_per_month']:g} fb^-1/month.\n\n",
        _table(
            ["signal", "efficiency", "CI", "AUC", "xsec [pb]"],
            [[n, r["efficiency"], f"[{_fmt(r['efficiency_ci'][0])}, {_fmt(r['efficiency_ci'][1])}]",
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
        "autoencoder (MSE), IsolationForest, a supervised classifier per signal (trained on half "
        "of the signal, evaluated on the other half: an upper bound), and single-variable cuts.\n\n",
        _table(["method", *signals],
               [[m, *(row.get(s, {}).get("efficiency") for s in signals)] for m, row in methods.items()]),
    ]
    if report.get("baselines", {}).get("best_single_variable"):
        best = report["baselines"]["best_single_variable"]
        parts.append("\nBest single variable: " + ", ".join(
            f"{s}: {best[s]['variable']}" for s in signals if s in best) + "\n")
    for pair, row in report["float_vs_quantized"].items():
        parts += [
            f"\n## Float vs quantized: {pair}\n\n",
            f"Pearson {row['pearson']:.4f}, Spearman {row['spearman']:.4f}, weighted decision "
            f"agreement on the SM background {row['decision_agreement_background']:.6f} "
            f"({row['n_disagree_background']} events differ).\n\n",
            _table(["signal", "decision agreement", *[k for k in next(iter(row["signals"].values()), {})
                                                       if k.startswith("efficiency")]],
                   [[s, *r.values()] for s, r in row["signals"].items()]),
        ]
    parts += [
        "\n## SM processes\n\n",
        _table(["process", "events", "sigma x eff [pb]", "share of input", "n above", "rate above [Hz]"],
               [[p, *r.values()] for p, r in report["background_processes"].items()]),
        "\n## Figures\n\n",
        *[f"![{name}]({name})\n" for name in report.get("figures", [])],
    ]
    return "".join(parts)


def make_figures(
    outdir: Path,
    report: dict[str, Any],
    bkg: dict[str, np.ndarray],
    bkg_weights: np.ndarray,
    bkg_process: np.ndarray,
    signals: dict[str, dict[str, np.ndarray]],
) -> list[str]:
    """Write the report's PNGs into ``outdir``; return their file names."""
    thr = report["threshold"]
    score, cut = thr["score"], float(thr["value"])
    names = [
        plots.score_distributions(outdir / "scores.png", bkg[score], bkg_weights, bkg_process,
                                  {n: s[score] for n, s in signals.items()}, cut, score),
        plots.rate_curve(outdir / "rate_vs_threshold.png", report["rate_curve"]["cut"],
                         report["rate_curve"]["rate_hz"], cut, thr["target_rate_hz"], score),
        plots.roc_curves(outdir / "roc.png", {n: (r["fpr"], r["tpr"]) for n, r in report["roc"].items()},
                         thr["fpr"]),
    ]
    for pair in report["float_vs_quantized"]:
        a, b = pair.split("_vs_")
        names.append(plots.float_vs_quantized(outdir / f"float_vs_quantized_{a}.png", bkg[a], bkg[b], (a, b)))
    table = {f"model {thr['score']}": {n: r["efficiency"] for n, r in report["signals"].items()}}
    table.update({m: {s: r["efficiency"] for s, r in row.items()}
                  for m, row in report.get("baselines", {}).items() if m != "best_single_variable"})
    names.append(plots.efficiency_bars(outdir / "efficiencies.png", table))
    return names


def evaluate(
    model: str | Path, data_dir: str | Path, out: str | Path, cfg: EvaluateConfig | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluate a model with a threshold on its test background and the signals of ``data_dir``.

    Parameters
    ----------
    model : path
        Model artifact folder holding ``threshold.json``.
    data_dir : path
        Folder with ``signal_<name>.h5`` files (from ``trigger-ad generate``), or a sample list
        whose ``is_signal`` samples are the signals (:mod:`triggerad.samples`).
    out : path
        Report folder, written atomically.
    cfg : EvaluateConfig, optional
        Configuration (defaults: ``configs/evaluate.yaml`` values).
    progress : bool
        Show a progress bar on stderr.

    Returns
    -------
    dict
        The ``report.json`` record.

    Raises
    ------
    InputFileError
        If the model has no threshold yet, or ``data_dir`` holds no signal sample.
    """
    from tqdm import tqdm

    from anomaly.artifact import load_artifact
    from anomaly.data import fingerprint, load_signals, load_split
    from anomaly.features import compute_features
    from triggerad.provenance import write_provenance

    cfg = cfg or EvaluateConfig()
    art = load_artifact(model)
    threshold = art.threshold
    if threshold is None:
        raise InputFileError(
            f"{Path(model) / 'threshold.json'}: the model has no threshold yet; run "
            f"`trigger-ad threshold {model} --rate RATE --input-rate RATE` (or --events-per-day / "
            "--fpr) first"
        )
    any_baseline = any(getattr(cfg, k).enabled for k in
                       ("autoencoder", "isolation_forest", "classifier", "single_variable"))
    bar = tqdm(total=4 + any_baseline, desc="evaluate", file=sys.stderr, disable=not progress)
    bkg_batch = load_split(art.data_info, cfg.report.split)
    sig_batches, signal_files = load_signals(data_dir, cfg.report.max_signal_events)
    bar.update()
    bkg = art.score(bkg_batch)
    sig = {n: art.score(b) for n, b in sig_batches.items()}
    bar.update()
    report = model_report(bkg, bkg_batch.weight, bkg_batch.process, sig, threshold, cfg,
                          {n: b.weight for n, b in sig_batches.items()})
    bar.update()
    if any_baseline:
        train = load_split(art.data_info, "train")
        b_bkg, b_sig = baseline_scores(
            compute_features(train), train.weight, bkg_batch, compute_features(bkg_batch),
            sig_batches, {n: compute_features(b) for n, b in sig_batches.items()}, cfg,
        )
        report["baselines"], report["baseline_cuts"] = baselines_report(
            b_bkg, bkg_batch.weight, b_sig, float(threshold["fpr"])
        )
        bar.update()
    report.update(
        model=str(model), kind=art.kind, data_dir=str(data_dir),
        evaluation_fingerprint=fingerprint(bkg_batch),
        signal_files=signal_files,
    )
    with atomic_dir(out) as tmp:
        report["figures"] = make_figures(tmp, report, bkg, bkg_batch.weight, bkg_batch.process, sig)
        write_json(tmp / REPORT_JSON, report)
        write_text(tmp / REPORT_MD, render_markdown(report))
        write_provenance(tmp, "evaluate", cfg, {"model": str(model), "data": str(data_dir)})
    bar.update()
    bar.close()
    return report
