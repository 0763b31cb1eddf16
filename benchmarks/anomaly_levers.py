"""Detector levers of issue 18, measured on a finished reference study (same data, same splits).

Each lever retrains only the model it concerns with the study's own training config
(:func:`anomaly.study.config.train_config`) plus the lever's overrides, scores the study's
evaluation split and signals with it, adds its scores to the study's ``scores.npz`` (which holds
the baselines, the single variables and their fair selection sets, the supervised bound) and
cuts every method at each measurable FPR (:func:`anomaly.study.numbers.study_table`, the fair
best single cut, :func:`anomaly.study.numbers.comparison`). A lever with several seeds is an
ensemble: the per-event mean of each score over the seeds. The study folder is read only.

Usage::

    python benchmarks/anomaly_levers.py STUDY --out DIR [--levers l1_fitted,l1_fixed_pt64]

A lever whose model is an unsupervised baseline of :data:`anomaly.baselines.UNSUPERVISED` (e.g.
the normalizing flow, ``flow``) fits it on the study's SM training split (the HLF VAE's split)
with the study's evaluation config section plus the overrides, with each seed as the section's
``seed``; its scores are cached in ``DIR/models/<lever>_s<seed>.npz``.

Writes ``DIR/levers.json`` and ``DIR/levers.md`` (one row per method and operating point:
efficiency per signal, wins vs the fair best single cut, mean ratio to the supervised bound).
Trained models stay in ``DIR/models/<lever>_s<seed>`` and are reused when the script runs again.
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np

from anomaly.transform import PT_LIKE

#: lever -> (model, overrides of the training config sections, seeds). Several seeds: the
#: per-event mean score of the models.
FIXED_64 = {"model": {"normalisation": {"mode": "fixed", "pt": 64, "eta": 4, "phi": 4}}}
FIXED_32 = {"model": {"normalisation": {"mode": "fixed", "pt": 32, "eta": 2, "phi": 2}}}
FIXED_16 = {"model": {"normalisation": {"mode": "fixed", "pt": 16, "eta": 2, "phi": 2}}}
LONGER = {"training": {"epochs": 150}}
LONGER_400 = {"training": {"epochs": 400}}
ROBUST = {"model": {"normalisation": {"mode": "robust"}}}
LEVERS = {
    "l1_fitted": ("l1_vae", {}, [42]),
    "l1_fixed_pt64": ("l1_vae", FIXED_64, [42]),
    "l1_fixed_pt32": ("l1_vae", FIXED_32, [42]),
    "l1_fixed_pt16": ("l1_vae", FIXED_16, [42]),
    "l1_fixed_pt32_ens3": ("l1_vae", FIXED_32, [42, 43, 44]),
    "l1_fitted_ens3": ("l1_vae", {}, [42, 43, 44]),
    "hlf_seed42": ("hlf_vae", {}, [42]),
    "hlf_ens3": ("hlf_vae", {}, [42, 43, 44]),
    "hlf_epochs150": ("hlf_vae", LONGER, [42]),
    "hlf_epochs400": ("hlf_vae", LONGER_400, [42]),
    "hlf_robust": ("hlf_vae", ROBUST, [42]),
    "hlf_robust_ens3": ("hlf_vae", ROBUST, [42, 43, 44]),
    "hlf_unweighted": ("hlf_vae", {"data": {"use_weights": False}}, [42]),
    "hlf_log1p_pt": ("hlf_vae", {"model": {"input_transform": {"log1p": list(PT_LIKE)}}}, [42]),
    "hlf_log1p_pt_epochs400": ("hlf_vae", {"model": {"input_transform": {
        "log1p": list(PT_LIKE)}}, **LONGER_400}, [42]),
    "hlf_wpow05": ("hlf_vae", {"data": {"weight_power": 0.5}}, [42]),
    # log1p of the hadronic / single-lepton pT-like features only (the lepton-system ones linear)
    "hlf_log1p_had": ("hlf_vae", {"model": {"input_transform": {
        "log1p": ["HT", "allJetMass", "LepPt", "MT"]}}}, [42]),
    # the seed spread of the comparison baseline vs log1p
    "hlf_seed43": ("hlf_vae", {}, [43]),
    "hlf_log1p_pt_seed43": ("hlf_vae", {"model": {"input_transform": {"log1p": list(PT_LIKE)}}},
                            [43]),
    "hlf_log1p_had_seed43": ("hlf_vae", {"model": {"input_transform": {
        "log1p": ["HT", "allJetMass", "LepPt", "MT"]}}}, [43]),
    "hlf_seed44": ("hlf_vae", {}, [44]),
    "hlf_log1p_had_seed44": ("hlf_vae", {"model": {"input_transform": {
        "log1p": ["HT", "allJetMass", "LepPt", "MT"]}}}, [44]),
    "hlf_log1p_had_ens3": ("hlf_vae", {"model": {"input_transform": {
        "log1p": ["HT", "allJetMass", "LepPt", "MT"]}}}, [42, 43, 44]),
    "hlf_ens2": ("hlf_vae", {}, [42, 43]),
    "hlf_log1p_had_ens2": ("hlf_vae", {"model": {"input_transform": {
        "log1p": ["HT", "allJetMass", "LepPt", "MT"]}}}, [42, 43]),
}
NO_JACOBIAN = {"jacobian": False}
LEVERS.update({
    "flow": ("flow", {"jacobian": True}, [1]),
    "flow_ens3": ("flow", {"jacobian": True}, [1, 2, 3]),
    "flow_long": ("flow", {"jacobian": True, "epochs": 100, "patience": 10}, [1]),
    "flow_small": ("flow", {"jacobian": True, "couplings": 4, "hidden": [32, 32]}, [1]),
    "flow_lr3e-4": ("flow", {"jacobian": True, "learning_rate": 3e-4, "epochs": 100,
                             "patience": 10}, [1]),
    "flow_nojac": ("flow", NO_JACOBIAN, [1]),
    "flow_nojac_ens3": ("flow", NO_JACOBIAN, [1, 2, 3]),
    "flow_nojac_big": ("flow", {**NO_JACOBIAN, "couplings": 10, "hidden": [128, 128],
                                "epochs": 80, "patience": 10}, [1]),
})
FPRS = [0.03, 0.01]


def train_lever(cfg, study: Path, out: Path, model: str, overrides: dict, seed: int) -> Path:
    """Train (or reuse) one model of a lever; return its folder."""
    from anomaly.study.config import data_dir, train_config
    from anomaly.train import TrainConfig, train
    from triggerad.config import load, to_dict

    base, path = train_config(cfg, model, data_dir(cfg, study) / "background.h5")
    sections = to_dict(base)
    for section, values in overrides.items():
        sections[section].update(values)
    sections["training"]["seed"] = seed
    folder = out / "models" / f"{path.stem}_{_key(overrides)}_s{seed}"
    if not (folder / "artifact.json").is_file():
        tcfg = load(TrainConfig, path, sections)
        summary = train(tcfg, folder, extra={"config_file": str(path),
                                             "by": "benchmarks/anomaly_levers.py"})
        print(f"  trained {folder.name}: {summary['epochs_run']} epochs, "
              f"{summary['seconds']:.0f} s (under load)")
    return folder


def _key(overrides: dict) -> str:
    """Folder tag of the overrides (``default``, ``modefixed_pt32_eta2_phi2``, ``epochs150``;
    a list value by its length and a digest of its items, ``log1p8-1a2b3c``)."""
    flat = {**overrides.get("model", {}).get("normalisation", {}),
            **overrides.get("model", {}).get("input_transform", {}),
            **{k: v for sec in overrides.values() for k, v in sec.items()
               if k not in ("normalisation", "input_transform")}}
    def tag(v):
        if not isinstance(v, list):
            return str(v)
        return f"{len(v)}-{hashlib.sha1(','.join(map(str, v)).encode()).hexdigest()[:6]}"

    return "_".join(f"{k}{tag(v)}" for k, v in flat.items()) or "default"


def lever_scores(cfg, study: Path, out: Path, lever: str, scores) -> list[str]:
    """Add the lever's (mean over seeds) scores to ``scores``; return the method names."""
    from anomaly.baselines import UNSUPERVISED
    from anomaly.evaluate import EvaluateConfig
    from anomaly.study.config import data_dir
    from triggerad.config import load, resolve_config
    from triggerad.data import load_signals, load_split
    from triggerad.models import load_model

    model, overrides, seeds = LEVERS[lever]
    split = load(EvaluateConfig, resolve_config(cfg.evaluation.config)).report.split
    sig, _ = load_signals(data_dir(cfg, study), cfg.evaluation.max_signal_events)
    if model in UNSUPERVISED:
        return baseline_lever_scores(cfg, study, out, lever, scores, sig, split)
    per_seed = []
    for seed in seeds:
        art = load_model(train_lever(cfg, study, out, model, overrides, seed))
        bkg = load_split(art.data_info, split)
        if not np.array_equal(np.asarray(bkg.weight, np.float64), scores.bkg_weight):
            raise RuntimeError(f"{lever}: evaluation split differs from the study's")
        per_seed.append((art.score(bkg), {n: art.score(b) for n, b in sig.items()},
                         art.score_names))
    methods = []
    for name in per_seed[0][2]:
        b = np.mean([p[0][name] for p in per_seed], axis=0)
        s = {n: np.mean([p[1][n][name] for p in per_seed], axis=0) for n in sig}
        scores.add(f"{lever}:{name}", b, s, {n: batch.weight for n, batch in sig.items()})
        methods.append(f"{lever}:{name}")
    return methods


def baseline_lever_scores(cfg, study: Path, out: Path, lever: str, scores, sig: dict,
                          split: str) -> list[str]:
    """A baseline lever: fit it on the study's training split per seed, add the mean score."""
    from dataclasses import replace

    from anomaly import baselines as bl
    from anomaly.evaluate import EvaluateConfig
    from anomaly.features import compute_features
    from triggerad.config import load, resolve_config
    from triggerad.data import load_split
    from triggerad.models import load_model

    model, overrides, seeds = LEVERS[lever]
    attr, fit = bl.UNSUPERVISED[model]
    section = getattr(load(EvaluateConfig, resolve_config(cfg.evaluation.config)), attr)
    info = load_model(study / "models" / "hlf_vae").data_info
    bkg = load_split(info, split)
    if not np.array_equal(np.asarray(bkg.weight, np.float64), scores.bkg_weight):
        raise RuntimeError(f"{lever}: evaluation split differs from the study's")
    names = list(sig)
    per_seed = []
    for seed in seeds:
        cache = out / "models" / f"{lever}_s{seed}.npz"
        if not cache.is_file():
            import time

            train = load_split(info, "train")
            sec = replace(section, **overrides, enabled=True, seed=seed)
            idx = bl.subsample(len(train), sec.max_train_events, sec.seed)
            start = time.perf_counter()
            scorer = fit(compute_features(train)[idx], train.weight[idx], sec)
            print(f"  fitted {cache.stem}: {time.perf_counter() - start:.0f} s (under load)")
            cache.parent.mkdir(parents=True, exist_ok=True)
            np.savez(cache, bkg=scorer(compute_features(bkg)),
                     **{f"sig_{n}": scorer(compute_features(sig[n])) for n in names})
        with np.load(cache) as data:
            per_seed.append((data["bkg"], {n: data[f"sig_{n}"] for n in names}))
    scores.add(lever, np.mean([p[0] for p in per_seed], axis=0),
               {n: np.mean([p[1][n] for p in per_seed], axis=0) for n in names},
               {n: batch.weight for n, batch in sig.items()})
    return [lever]


def summarise(scores, methods: list[str], cl: float, min_effective: float, fprs=FPRS) -> dict:
    """``{method: {fpr: {"efficiency": {signal: e}, "best_single": {signal: e}, wins, ratio}}}``."""
    from anomaly.study import numbers

    table = numbers.study_table(scores, fprs, cl=cl, min_effective=min_effective)
    out = {}
    for m in methods:
        comp = numbers.comparison(table, m)
        out[m] = {label: {
            "efficiency": {s: rows[m]["efficiency"] for s, rows in per.items()},
            "best_single": {s: rows[numbers.BEST_SINGLE]["efficiency"] for s, rows in per.items()},
            "supervised": {s: rows[numbers.SUPERVISED]["efficiency"] for s, rows in per.items()},
            **comp[label]} for label, per in table.items()}
    return out


def markdown(summary: dict) -> str:
    """One table per FPR: method, efficiency per signal, wins, mean ratio to supervised."""
    lines = []
    for label in next(iter(summary.values())):
        first = next(iter(summary.values()))[label]
        signals = list(first["efficiency"])
        lines += [f"## FPR {label}", "", "| method | " + " | ".join(signals)
                  + " | wins vs fair best cut | mean ratio to supervised |",
                  "|---|" + "--:|" * (len(signals) + 2),
                  "| best single cut (fair) | " + " | ".join(
                      f"{first['best_single'][s]:.3g}" for s in signals) + " | | |",
                  "| supervised (bound) | " + " | ".join(
                      f"{first['supervised'][s]:.3g}" for s in signals) + " | | |"]
        for m, per in summary.items():
            r = per[label]
            ratio = r["mean_ratio_to_supervised"]
            lines.append(f"| {m} | " + " | ".join(f"{r['efficiency'][s]:.3g}" for s in signals)
                         + f" | {r['wins']} of {r['signals']} | "
                         + (f"{ratio:.3f}" if ratio is not None else "-") + " |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    from anomaly.study.config import load_study
    from anomaly.study.numbers import ScoreSet
    from triggerad.atomic import write_json, write_text
    from triggerad.config import load_section, resolve_config
    from triggerad.threshold import RatesConfig

    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="example: python benchmarks/anomaly_levers.py /tmp/study --out /tmp/levers "
               "--levers l1_fitted,l1_fixed_pt64")
    parser.add_argument("study", help="a finished `trigger-ad study` folder (read only)")
    parser.add_argument("--out", required=True, help="output folder (models, levers.json/md)")
    parser.add_argument("--levers", default=",".join(LEVERS),
                        help=f"comma-separated, of {', '.join(LEVERS)}")
    parser.add_argument("--fprs", default=",".join(f"{f:g}" for f in FPRS),
                        help="SM fractions to compare at, comma-separated (default %(default)s; "
                             "the reference-size study measures down to 0.001)")
    args = parser.parse_args(argv)
    fprs = [float(f) for f in args.fprs.split(",")]
    study, out = Path(args.study).resolve(), Path(args.out).resolve()
    cfg = load_study(study / "config.resolved.yaml")
    rates_cfg = load_section(RatesConfig, resolve_config(cfg.evaluation.config), "rates")
    scores = ScoreSet.load(study / "scores.npz")
    # the study's own VAE scores and unsupervised baselines
    from anomaly.baselines import UNSUPERVISED

    methods = [m for m in scores.methods if ":" in m or m in UNSUPERVISED]
    for lever in args.levers.split(","):
        if lever not in LEVERS:
            parser.error(f"unknown lever {lever!r}; valid: {', '.join(LEVERS)}")
        print(f"=== {lever}")
        methods += lever_scores(cfg, study, out, lever, scores)
    summary = summarise(scores, methods, rates_cfg.cl, cfg.evaluation.min_effective_events, fprs)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "levers.json", summary)
    write_text(out / "levers.md", markdown(summary))
    print(markdown(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
