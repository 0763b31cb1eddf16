"""The study's stages, each through the project's own API: generate -> train the HLF and L1 VAEs
-> thresholds -> scores (both VAEs and the baselines) -> report.

Layout of the study folder::

    STUDY/data/              trigger-ad generate output (or generation.data: not copied)
    STUDY/models/hlf_vae/    trigger-ad train output, with threshold.json
    STUDY/models/l1_vae/
    STUDY/scores.npz         every method's scores on the evaluation background and the signals
    STUDY/report/            report.md, report.json, PNG plots
    STUDY/contamination/     signal-contaminated trainings (data, models, scores, report/)
    STUDY/steps/<step>.json  markers of the finished stages (:mod:`anomaly.study.steps`)
"""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from anomaly.study.config import MODELS, StudyConfig, data_dir, train_config, train_step
from anomaly.study.numbers import ScoreSet
from anomaly.study.steps import Step, run_steps
from triggerad.atomic import atomic_dir
from triggerad.errors import ConfigError, StatisticsError

log = logging.getLogger(__name__)

SCORES_FILE = "scores.npz"


def step_generate(cfg: StudyConfig, out: Path) -> dict[str, Any]:
    """Generate the cocktail and the signals into ``STUDY/data`` (atomically)."""
    from triggerad.generation.config import load_config
    from triggerad.generation.run import generate
    from triggerad.provenance import write_provenance

    g = cfg.generation
    if g.data:
        if not (Path(g.data) / "background.h5").is_file():
            raise ConfigError(f"generation.data: {g.data!r} holds no background.h5 (expected a "
                              "`trigger-ad generate` output folder)")
        return {"data": g.data, "generated": False}
    gen = load_config(g.config)
    for name, fraction in g.events_fraction.items():
        gen.processes[name].events_fraction = fraction
    with atomic_dir(out / "data") as tmp:
        summary = generate(gen, g.events, tmp, seed=g.seed, workers=g.workers,
                           executor=g.executor)
        write_provenance(tmp, "generate", gen, {"config": g.config, "events": g.events,
                                                "seed": g.seed, "by": "trigger-ad study"})
    processes = {
        name: {k: p.get(k) for k in ("generated", "selected", "selected_sigma_pb")}
        for name, p in summary["processes"].items()
    }
    return {"data": str(out / "data"), "generated": True,
            "background_events": summary["background_events"],
            "generation_seconds": summary["wall_seconds"], "processes": processes}


def step_train(cfg: StudyConfig, out: Path, model: str) -> dict[str, Any]:
    """Train one VAE on ``data/background.h5`` into ``STUDY/models/<model>``."""
    from anomaly.train import train

    tcfg, path = train_config(cfg, model, data_dir(cfg, out) / "background.h5")
    summary = train(tcfg, out / "models" / model,
                    extra={"config_file": str(path), "by": "trigger-ad study"})
    return {"config": str(path), **summary}


def input_rate_hz(batch, rates_cfg) -> float:
    """The input rate the background represents: sigma_total x the mean luminosity."""
    from triggerad import rates
    from triggerad.threshold import input_rate_from_luminosity

    lumi = rates.mean_luminosity_cm2s(rates_cfg.luminosity_fb_per_month)
    return input_rate_from_luminosity(float(batch.weight.sum()), lumi)


def step_threshold(cfg: StudyConfig, out: Path) -> dict[str, Any]:
    """Each VAE's default score cut at ``evaluation.threshold_fpr`` on its validation split."""
    from triggerad.config import load_section, resolve_config
    from triggerad.data import load_sample
    from triggerad.models import kind_of, load_model
    from triggerad.threshold import RatesConfig, Target, set_threshold

    rates_cfg = load_section(RatesConfig, resolve_config(cfg.evaluation.config), "rates")
    record = {}
    for model in MODELS:
        art = load_model(out / "models" / model)
        info = art.data_info
        rate = input_rate_hz(load_sample(info["background"], info["reader"]), rates_cfg)
        try:
            thr = set_threshold(art, kind_of(art).load_split(art, "val"),
                                Target(fpr=cfg.evaluation.threshold_fpr), rate,
                                data={"source": "model validation split", "split": "val"},
                                cl=rates_cfg.cl, min_events=rates_cfg.min_events_above)
        except StatisticsError as err:  # the table's cuts are set on the evaluation split
            log.warning("%s: no threshold: %s", model, err)
            record[model] = {"error": str(err)}
            continue
        record[model] = {k: thr[k] for k in ("score", "value", "fpr", "input_rate_hz",
                                             "achieved_rate_hz", "rate_ci_low_hz",
                                             "rate_ci_high_hz", "n_background_above", "k_eff")}
    return record


def step_scores(cfg: StudyConfig, out: Path) -> dict[str, Any]:
    """Score the evaluation background and the signals with every method; write scores.npz."""
    from anomaly import baselines as bl
    from anomaly.evaluate import EvaluateConfig
    from anomaly.features import compute_features
    from triggerad.config import load, resolve_config
    from triggerad.data import load_signals, load_split
    from triggerad.models import load_model

    ecfg = load(EvaluateConfig, resolve_config(cfg.evaluation.config))
    arts = {m: load_model(out / "models" / m) for m in MODELS}
    infos = [a.data_info for a in arts.values()]
    same = {(i["fingerprint"], tuple(i["fractions"]), i["split_seed"]) for i in infos}
    if len(same) != 1:
        raise ConfigError("training: the HLF and L1 configs split the background differently "
                          "(data.fractions / data.seed); the study compares them on one "
                          "evaluation split, so give both the same")
    split = ecfg.report.split
    bkg = load_split(infos[0], split)
    sig, _ = load_signals(data_dir(cfg, out), cfg.evaluation.max_signal_events)
    sig_w = {n: b.weight for n, b in sig.items()}
    scores = ScoreSet(bkg_weight=np.asarray(bkg.weight, dtype=np.float64))
    val = load_split(infos[0], "val")
    val_scores: dict[str, np.ndarray] = {}  # every unsupervised score on the validation split
    for model, art in arts.items():
        b, v = art.score(bkg), art.score(val)
        s = {n: art.score(batch) for n, batch in sig.items()}
        for name in art.score_names:
            scores.add(f"{model}:{name}", b[name], {n: v[name] for n, v in s.items()}, sig_w)
            val_scores[f"{model}:{name}"] = v[name]
    train = load_split(infos[0], "train")
    sig_x = {n: compute_features(batch) for n, batch in sig.items()}
    train_x = compute_features(train)
    scorers = bl.fit_unsupervised(train_x, train.weight, ecfg)
    b_bkg, b_sig = bl.baseline_scores(train_x, train.weight, bkg, compute_features(bkg), sig,
                                      sig_x, ecfg, scorers=scorers)
    val_x = compute_features(val)
    val_scores.update({m: f(val_x) for m, f in scorers.items()})
    val_scores.update({m: bl.single_variable(val, val_x, m.removeprefix("single_"))
                       for m in b_bkg if m.startswith("single_")})
    halves = {n: bl.signal_halves(len(x), ecfg.classifier.seed) for n, x in sig_x.items()}
    for method, values in b_bkg.items():
        if method == "classifier":  # evaluated on the half of each signal it did not see
            scores.add(method, values, b_sig[method], {n: sig_w[n][halves[n][1]] for n in sig})
        else:
            scores.add(method, values, b_sig[method], sig_w)
    scores.splits = selection_splits(scores, val_scores, np.asarray(val.weight, np.float64),
                                     halves)
    scores.save(out / SCORES_FILE)
    w = scores.bkg_weight
    return {"split": split, "n_background": int(len(w)),
            "n_eff_background": float(w.sum() ** 2 / np.square(w).sum()),
            "n_train_background": int(len(train)),
            "signals": {n: int(len(b)) for n, b in sig.items()},
            "methods": list(scores.methods)}


def selection_splits(scores: ScoreSet, val_scores: dict[str, np.ndarray], val_w: np.ndarray,
                     halves: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, ScoreSet]:
    """Selection and held-out sets (``numbers.best_single_fair``, ``best_unsupervised_fair``).

    Selection: every method of ``val_scores`` (the single variables and the unsupervised scores)
    on the SM validation split and the first half of each signal (the classifier's training
    half); held-out: the same methods and the classifier on the evaluation split and the second
    half (the classifier's scores already are on that half).
    """
    from anomaly.study.numbers import HELDOUT, SELECTION, SUPERVISED

    selection = ScoreSet(bkg_weight=val_w)
    heldout = ScoreSet(bkg_weight=scores.bkg_weight)
    for m, val in val_scores.items():
        rec = scores.methods[m]
        for part, target, bkg in ((0, selection, val), (1, heldout, rec["bkg"])):
            target.add(m, bkg, {n: v[halves[n][part]] for n, v in rec["sig"].items()},
                       {n: None if w is None else w[halves[n][part]]
                        for n, w in rec["sig_w"].items()})
    if SUPERVISED in scores.methods:
        rec = scores.methods[SUPERVISED]
        heldout.add(SUPERVISED, rec["bkg"], rec["sig"], rec["sig_w"])
    return {SELECTION: selection, HELDOUT: heldout} if val_scores else {}


def step_report(cfg: StudyConfig, out: Path, config_path: str) -> dict[str, Any]:
    """Write ``STUDY/report`` from scores.npz and the earlier steps' records."""
    from anomaly.study.report import write_report
    from anomaly.study.steps import STEPS_DIR, finished

    records = {p.stem: finished(out, p.stem) for p in sorted((out / STEPS_DIR).glob("*.json"))}
    report = write_report(out / "report", ScoreSet.load(out / SCORES_FILE), cfg, records,
                          config_path=config_path)
    return {"headline": report["headline"]}


def study_steps(cfg: StudyConfig, config_path: str) -> list[Step]:
    """The stages of a study, in order (the contamination stages last, when configured)."""
    from anomaly.study.contamination import contamination_steps

    return [
        Step("generate", partial(step_generate, cfg)),
        *(Step(train_step(m), partial(step_train, cfg, model=m)) for m in MODELS),
        Step("threshold", partial(step_threshold, cfg)),
        Step("scores", partial(step_scores, cfg)),
        Step("report", partial(step_report, cfg, config_path=config_path)),
        *contamination_steps(cfg),
    ]


def run_study(cfg: StudyConfig, out: str | Path, *, config_path: str = "") -> dict[str, Any]:
    """Run (or resume) a study into ``out``; return every step's record."""
    return run_steps(Path(out).resolve(), study_steps(cfg, config_path))
