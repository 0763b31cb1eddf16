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
  :func:`triggerad.rates.threshold_at_rate`, so they all select the same weighted SM fraction of
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

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from anomaly import baselines as bl
from anomaly import plots
from anomaly.flow import FlowConfig
from anomaly.markdown import render_markdown
from anomaly.report import baselines_report, method_curves, model_report
from triggerad.atomic import atomic_dir, write_json, write_text
from triggerad.errors import InputFileError
from triggerad.threshold import RatesConfig

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
    flow: FlowConfig = field(default_factory=FlowConfig)
    classifier: bl.ClassifierConfig = field(default_factory=bl.ClassifierConfig)
    single_variable: bl.SingleVariableConfig = field(default_factory=bl.SingleVariableConfig)


def make_figures(
    outdir: Path,
    report: dict[str, Any],
    bkg: dict[str, np.ndarray],
    bkg_weights: np.ndarray,
    bkg_process: np.ndarray,
    signals: dict[str, dict[str, np.ndarray]],
    curves: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] | None = None,
) -> list[str]:
    """Write the report's PNGs into ``outdir``; return their file names.

    ``curves`` (:func:`anomaly.report.method_curves` of the model and the baselines) adds
    ``efficiency_vs_fpr.png``: every method's curve per signal, the model and the best
    single-variable cut highlighted with their operating points."""
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
    if curves:
        model = f"model {score}"
        best_rows = report.get("baselines", {}).get("best_single_variable", {})
        best = {s: f"single_{r['variable']}" for s, r in best_rows.items()}
        points = {s: {model: r["efficiency"],
                      **({best[s]: best_rows[s]["efficiency"]} if s in best else {})}
                  for s, r in report["signals"].items()}
        names.append(plots.efficiency_vs_fpr(outdir / "efficiency_vs_fpr.png", curves,
                                             float(thr["fpr"]), model=model, best=best,
                                             points=points))
    return names


def single_selection(art, cfg: EvaluateConfig, sig_batches: dict[str, Any]) -> dict[str, Any] | None:
    """Where the best single variable is chosen (``baselines_report(selection=...)``): the
    single variables on the model's validation split and the classifier's halves of each signal.
    """
    from anomaly.features import compute_features
    from triggerad.data import load_split

    if not cfg.single_variable.enabled:
        return None
    val = load_split(art.data_info, "val", where=f"{art.path}/artifact.json")
    val_x = compute_features(val)
    return {"bkg": {f"single_{v}": bl.single_variable(val, val_x, v)
                    for v in cfg.single_variable.variables},
            "weights": val.weight,
            "halves": {n: bl.signal_halves(len(b), cfg.classifier.seed)
                       for n, b in sig_batches.items()}}


def evaluate(
    model: str | Path, data_dir: str | Path, out: str | Path, cfg: EvaluateConfig | None = None,
    *, progress: bool = True,
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
    from anomaly.features import compute_features
    from triggerad.data import fingerprint, load_signals, load_split
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
    missing = [k for k in ("fpr", "input_rate_hz") if k not in threshold]
    if missing:
        raise InputFileError(
            f"{Path(model) / 'threshold.json'}: lacks {', '.join(map(repr, missing))} (a cut set "
            f"by hand?); the report needs them: set it with `trigger-ad threshold {model}`"
        )
    any_baseline = any(getattr(cfg, k).enabled for k in
                       (*(a for a, _ in bl.UNSUPERVISED.values()), "classifier", "single_variable"))
    bar = tqdm(total=4 + any_baseline, desc="evaluate", file=sys.stderr, disable=not progress)
    bkg_batch = load_split(art.data_info, cfg.report.split, where=f"{art.path}/artifact.json")
    sig_batches, signal_files = load_signals(data_dir, cfg.report.max_signal_events)
    bar.update()
    bkg = art.score(bkg_batch)
    sig = {n: art.score(b) for n, b in sig_batches.items()}
    bar.update()
    sig_weights = {n: b.weight for n, b in sig_batches.items()}
    report = model_report(bkg, bkg_batch.weight, bkg_batch.process, sig, threshold, cfg,
                          sig_weights=sig_weights)
    bar.update()
    score = threshold["score"]
    curve_bkg: dict[str, Any] = {f"model {score}": bkg[score]}
    curve_sig: dict[str, Any] = {f"model {score}": {n: s[score] for n, s in sig.items()}}
    if any_baseline:
        train = load_split(art.data_info, "train")
        b_bkg, b_sig = bl.baseline_scores(
            compute_features(train), train.weight, bkg_batch, compute_features(bkg_batch),
            sig_batches, {n: compute_features(b) for n, b in sig_batches.items()}, cfg,
        )
        report["baselines"], report["baseline_cuts"] = baselines_report(
            b_bkg, bkg_batch.weight, b_sig, float(threshold["fpr"]),
            selection=single_selection(art, cfg, sig_batches) if cfg.report.split != "val" else None,
        )
        curve_bkg.update(b_bkg)
        curve_sig.update(b_sig)
        bar.update()
    curves = method_curves(curve_bkg, bkg_batch.weight, curve_sig,
                           n_points=cfg.report.n_roc_points, sig_weights=sig_weights)
    report.update(
        model=str(model), kind=art.kind, data_dir=str(data_dir),
        evaluation_fingerprint=fingerprint(bkg_batch),
        signal_files=signal_files,
    )
    with atomic_dir(out) as tmp:
        report["figures"] = make_figures(tmp, report, bkg, bkg_batch.weight, bkg_batch.process, sig,
                                         curves)
        write_json(tmp / REPORT_JSON, report)
        write_text(tmp / REPORT_MD, render_markdown(report))
        write_provenance(tmp, "evaluate", cfg, {"model": str(model), "data": str(data_dir)})
    bar.update()
    bar.close()
    return report
