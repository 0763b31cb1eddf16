"""``trigger-ad tagger evaluate``: the numbers of the LLP tagger report, from a model and jet files.

The discriminant is P(LLP) (:mod:`tagger.metrics`). LLP jets are evaluated with their **true**
c-tau; SM jets (which have none) with the c-tau hypothesis of the comparison at hand:

- ``roc``: LLP vs udsg, vs b, vs c for LLP jets of true c-tau within ``window_decades`` of each
  value of ``roc_ctau_mm`` (1 mm, 1 m), SM jets scored at that value;
- ``efficiency_vs_ctau``: per c-tau bin (10 um - 10 m, ``per_decade`` bins a decade) the LLP
  efficiency at each mistag of udsg jets scored at the bin's geometric centre;
- ``ctau_scan``: LLP jets of (nearly) fixed true c-tau (1 mm, 1 m) and udsg jets scored with a
  scan of c-tau hypotheses; the efficiency at ``scan_mistag`` should peak at the true value;
- ``domain``: per event, P_max = max over its jets of P(LLP), in the labelled SM simulation
  (``background`` file, domain 0) vs the shifted simulation ("data-like", domain 1), both scored
  at each ``domain_ctau_mm``; histograms and Jensen-Shannon divergence (bits).

With ``compare`` (a model trained without domain adaptation) the same numbers are computed for
it and ``domain_adaptation`` holds the AUC cost (AUC without DA - AUC with DA) and the JSD ratio.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tagger import metrics as tm
from tagger.evaldata import load_jets
from triggerad.errors import StatisticsError
from triggerad.jets import JetBatch

log = logging.getLogger(__name__)

REPORT_JSON = "report.json"
REPORT_MD = "report.md"


@dataclass
class EvaluateConfig:
    """Settings of the tagger evaluation (defaults: the reference's figures).

    Attributes
    ----------
    mistags : list of float
        udsg (and b, c) mistag rates at which LLP efficiencies are quoted.
    roc_ctau_mm : list of float
        c-tau values of the ROC curves and of the fixed-c-tau scans.
    window_decades : float
        LLP jets within +- this many decades of a value count as "c-tau = value".
    ctau_low_mm, ctau_high_mm : float
        Range of the efficiency-vs-c-tau curve and of the hypothesis scan.
    per_decade : int
        Bins per decade of the efficiency-vs-c-tau curve.
    scan_per_decade : int
        Hypotheses per decade of the c-tau scan.
    scan_mistag : float
        udsg mistag of the c-tau scan.
    domain_ctau_mm : list of float
        c-tau hypotheses of the domain check.
    pmax_bins : int
        Bins of the P_max histograms on [0, 1].
    n_roc_points : int
        Points of each stored ROC curve.
    batch_size : int
        Jets per forward pass.
    max_jets : int or None
        Read at most this many jets per file.
    weighted : bool
        Use the jets' event weights (sigma / N: the physics mix of the SM processes); False:
        every jet counts 1 (more effective background jets at small mistag).
    """

    mistags: list[float] = field(default_factory=lambda: list(tm.MISTAGS))
    roc_ctau_mm: list[float] = field(default_factory=lambda: [1.0, 1000.0])
    window_decades: float = 0.5
    ctau_low_mm: float = 0.01
    ctau_high_mm: float = 10_000.0
    per_decade: int = 1
    scan_per_decade: int = 2
    scan_mistag: float = 1e-3
    domain_ctau_mm: list[float] = field(default_factory=lambda: [1.0, 1000.0])
    pmax_bins: int = 20
    n_roc_points: int = 100
    batch_size: int = 8192
    max_jets: int | None = None
    weighted: bool = True


def ctau_key(ctau_mm: float) -> str:
    """Readable key of a c-tau value: ``10um``, ``1mm``, ``1m``."""
    if ctau_mm >= 1000:
        return f"{ctau_mm / 1000:g}m"
    if ctau_mm >= 1:
        return f"{ctau_mm:g}mm"
    return f"{ctau_mm * 1000:g}um"


class _Scorer:
    """P(LLP) of jet sets at fixed hypotheses, cached (the SM jets are scored at few values)."""

    def __init__(self, model, batch_size: int):
        self.model, self.batch_size = model, batch_size
        self._cache: dict[tuple, np.ndarray] = {}

    def p_llp(self, name: str, jets: JetBatch, ctau_mm: float | None = None) -> np.ndarray:
        key = (name, None if ctau_mm is None else float(ctau_mm))
        if key not in self._cache:
            probs = self.model.predict(jets, ctau_mm=ctau_mm, batch_size=self.batch_size)
            self._cache[key] = probs[:, tm.LLP].astype(np.float64)
        return self._cache[key]


def _near(ctau: np.ndarray, value: float, decades: float) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return (ctau > 0) & (np.abs(np.log10(np.maximum(ctau, 1e-30)) - np.log10(value)) <= decades)


def model_numbers(model, jets: dict[str, JetBatch], cfg: EvaluateConfig, bar=None
                  ) -> dict[str, Any]:
    """Every number of the report for one model (see the module docstring).

    Parameters
    ----------
    model : tagger.artifact.TaggerModel
        The model (``predict``, ``class_names``).
    jets : dict
        ``llp`` (labelled LLP jets), ``sm`` (labelled b, c, uds, g jets), ``sim_sm`` and
        ``data_like`` (SM jets of the two domains, for P_max).
    cfg : EvaluateConfig
        Settings.
    """
    scorer = _Scorer(model, cfg.batch_size)
    llp, sm = jets["llp"], jets["sm"]
    p_llp_true = scorer.p_llp("llp", llp)
    step = bar.update if bar is not None else (lambda: None)

    roc = {}
    for value in cfg.roc_ctau_mm:
        sel = _near(llp.ctau, value, cfg.window_decades)
        p = np.concatenate([p_llp_true[sel], scorer.p_llp("sm", sm, value)])
        label = np.concatenate([llp.label[sel], sm.label])
        weight = np.concatenate([llp.weight[sel], sm.weight])
        roc[ctau_key(value)] = {"ctau_mm": value}
        for against in tm.BACKGROUNDS:
            try:
                roc[ctau_key(value)][against] = tm.roc_against(
                    p, label, weight, against, mistags=cfg.mistags, n_points=cfg.n_roc_points)
            except StatisticsError as err:
                log.warning("ROC at c-tau %s: %s", ctau_key(value), err)
                roc[ctau_key(value)][against] = None
    step()

    edges = tm.ctau_bins(cfg.ctau_low_mm, cfg.ctau_high_mm, cfg.per_decade)
    centres = np.sqrt(edges[:-1] * edges[1:])
    udsg = tm.background_mask(sm.label, "udsg")
    curve = {"edges_mm": edges.tolist(), "centres_mm": centres.tolist(), "n_llp": [],
             "efficiency": {f"{m:g}": [] for m in cfg.mistags},
             "limited": {f"{m:g}": [] for m in cfg.mistags}}
    for lo, hi, centre in zip(edges[:-1], edges[1:], centres, strict=True):
        sel = (llp.ctau >= lo) & (llp.ctau < hi)
        curve["n_llp"].append(int(sel.sum()))
        bkg = scorer.p_llp("sm", sm, centre)[udsg]
        for m in cfg.mistags:
            if sel.any() and udsg.any():
                row = tm.efficiency_at_mistag(p_llp_true[sel], bkg, m,
                                              sig_weights=llp.weight[sel],
                                              bkg_weights=sm.weight[udsg])
                eff, limited = row["efficiency"], row["limited"]
            else:
                eff, limited = None, True
            curve["efficiency"][f"{m:g}"].append(eff)
            curve["limited"][f"{m:g}"].append(limited)
    step()

    hypotheses = tm.ctau_bins(cfg.ctau_low_mm, cfg.ctau_high_mm, cfg.scan_per_decade)
    scan = {}
    for value in cfg.roc_ctau_mm:
        sel = _near(llp.ctau, value, cfg.window_decades / 2)
        if not sel.any() or not udsg.any():
            scan[ctau_key(value)] = None
            continue
        fixed = llp.take(sel)
        sig = [scorer.p_llp(f"scan_{value}", fixed, h) for h in hypotheses]
        bkg = [scorer.p_llp("sm", sm, h)[udsg] for h in hypotheses]
        scan[ctau_key(value)] = {
            "true_ctau_mm": value, "n_llp": int(sel.sum()), "mistag": cfg.scan_mistag,
            **tm.hypothesis_scan(hypotheses, sig, bkg, cfg.scan_mistag,
                                 sig_weights=fixed.weight, bkg_weights=sm.weight[udsg]),
        }
        scorer._cache = {k: v for k, v in scorer._cache.items() if k[0] != f"scan_{value}"}
    step()

    domain = {}
    for value in cfg.domain_ctau_mm:
        pmax = {}
        for name in ("sim_sm", "data_like"):
            b = jets[name]
            maxima, first = tm.per_event_max(scorer.p_llp(name, b, value), b.source_file,
                                             b.process, b.event)
            pmax[name] = (maxima, b.weight[first])
        domain[ctau_key(value)] = {"ctau_mm": value, **tm.domain_check(
            pmax["sim_sm"][0], pmax["data_like"][0], sim_weights=pmax["sim_sm"][1],
            data_weights=pmax["data_like"][1], bins=cfg.pmax_bins)}
    step()
    return {"roc": roc, "efficiency_vs_ctau": curve, "ctau_scan": scan, "domain": domain}


def _model_info(model) -> dict[str, Any]:
    return {"path": str(model.path), "kind": model.kind,
            "domain_adaptation": model.domain_adaptation,
            "ctau_range_mm": list(model.ctau_range_mm),
            "training_fingerprint": model.data_info.get("fingerprint")}


def da_comparison(with_da: dict, without: dict) -> dict[str, Any]:
    """AUC cost and JSD change of domain adaptation: per c-tau of the ROC and domain checks.

    ``auc_cost`` = AUC(no DA) - AUC(DA) (positive: DA costs performance); ``jsd_ratio`` =
    JSD(no DA) / JSD(DA) (above 1: DA brings the domains closer).
    """
    cost = {key: {a: (None if r[a] is None or without["roc"][key][a] is None
                      else without["roc"][key][a]["auc"] - r[a]["auc"])
                  for a in tm.BACKGROUNDS}
            for key, r in with_da["roc"].items()}
    jsd = {key: {"with_da": d["jsd_bits"], "without_da": without["domain"][key]["jsd_bits"],
                 "ratio": (without["domain"][key]["jsd_bits"] / d["jsd_bits"]
                           if d["jsd_bits"] > 0 else None)}
           for key, d in with_da["domain"].items()}
    return {"auc_cost": cost, "jsd": jsd}


def evaluate(model, data_dir: str | Path, out: str | Path, cfg: EvaluateConfig | None = None, *,
             compare=None, progress: bool = True) -> dict[str, Any]:
    """Write ``report.json``, ``report.md`` and the plots of ``model`` on ``data_dir`` into ``out``.

    Parameters
    ----------
    model : path or TaggerModel
        The tagger (``domain_adaptation`` as trained).
    data_dir : path
        A sample folder of ``trigger-ad tagger generate`` (``signal``, ``background``,
        ``shifted_sim`` .h5 or .root).
    out : path
        Report folder, written atomically (a temporary folder renamed when complete).
    cfg : EvaluateConfig, optional
        Settings (defaults: the reference's figures).
    compare : path or TaggerModel, optional
        The same tagger trained without domain adaptation.
    progress : bool
        Progress bar on stderr.

    Returns
    -------
    dict
        The ``report.json`` record.
    """
    from tqdm import tqdm

    from tagger import plots
    from tagger.artifact import load
    from tagger.report import render_markdown
    from triggerad.atomic import atomic_dir, write_json, write_text
    from triggerad.provenance import write_provenance

    cfg = cfg or EvaluateConfig()
    model = load(model) if isinstance(model, (str, Path)) else model
    other = load(compare) if isinstance(compare, (str, Path)) else compare
    jets, info = load_jets(data_dir, cfg.max_jets, [m for m in (model, other) if m is not None])
    if not cfg.weighted:
        jets = {name: dataclasses.replace(b, weight=np.ones(len(b))) for name, b in jets.items()}
    for m in (model, other):
        if m is not None:
            m.check_ctau(jets["llp"].ctau, policy="warn", where=f"{data_dir}: LLP jets")
    bar = tqdm(total=4 * (1 + (other is not None)), desc="evaluate", file=sys.stderr,
               disable=not progress)
    report: dict[str, Any] = {
        "model": _model_info(model), "discriminant": "P(LLP)", "data": {"dir": str(data_dir),
                                                                         **info},
        "settings": {k: v for k, v in vars(cfg).items()},
        **model_numbers(model, jets, cfg, bar),
    }
    if other is not None:
        report["compare"] = {"model": _model_info(other), **model_numbers(other, jets, cfg, bar)}
        with_da, without = ((report, report["compare"]) if model.domain_adaptation
                            else (report["compare"], report))
        report["domain_adaptation"] = da_comparison(with_da, without)
    bar.close()
    with atomic_dir(out) as tmp:
        report["figures"] = plots.make_figures(tmp, report)
        write_json(tmp / REPORT_JSON, report)
        write_text(tmp / REPORT_MD, render_markdown(report))
        write_provenance(tmp, "tagger evaluate", cfg, {
            "model": str(model.path), "compare": None if other is None else str(other.path),
            "data": str(data_dir)})
    return report


def summary_lines(report: dict[str, Any]) -> list[str]:
    """Key numbers of a report, one line each (printed by the command)."""
    lines = []
    for name, rep in (("model", report), ("compare", report.get("compare"))):
        if rep is None:
            continue
        da = "with DA" if rep["model"]["domain_adaptation"] else "without DA"
        for key, roc in rep["roc"].items():
            udsg = roc.get("udsg")
            if udsg is None:
                continue
            effs = ", ".join(f"{row['efficiency']:.3f} at {m} udsg mistag"
                             + (" (limited)" if row["limited"] else "")
                             for m, row in udsg["at_mistag"].items())
            lines.append(f"{name} ({da}) c-tau {key}: AUC(LLP vs udsg) {udsg['auc']:.4f}; "
                         f"LLP efficiency {effs}")
        jsd = ", ".join(f"{k} {d['jsd_bits']:.4g}" for k, d in rep["domain"].items())
        lines.append(f"{name} ({da}) JSD(P_max sim vs data-like) [bits]: {jsd}")
    return lines
