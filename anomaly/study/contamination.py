"""Signal-contamination robustness: how much a detector loses when its training sample already
holds the anomaly (issue 18). Optional study stages (config section ``contamination``).

For each model, signal and fraction f:

1. ``round(f x N_train)`` events of the SM *training* split are replaced by events of the signal
   (:func:`contaminate`: a seeded permutation of the training positions, nested across fractions,
   and a seeded draw from one half of the signal). The replaced events take the mean SM training
   weight, so the signal is the fraction f of the training events and of the loss weight. The
   validation and evaluation splits keep exactly their SM events (same positions, same split
   seed: identical fingerprints, checked after the file is written and read back).
2. The contaminated background is written as ``STUDY/contamination/data/<signal>_<f>.h5`` and the
   model retrained on it with the study's own training config (:func:`anomaly.study.config.train_config`,
   :func:`anomaly.train.train`); f = 0 reuses the study's clean model.
3. Its scores on the *clean* SM evaluation split and on the other half of the signal (never used
   for the contamination) go to ``STUDY/contamination/scores/<model>_<signal>_<f>.npz``.

The stage ``contamination`` then cuts each model's default score on the clean SM evaluation split
at each ``contamination.fprs`` value (:func:`anomaly.study.numbers.operating_point`: the
threshold is always set on clean SM data) and writes ``STUDY/contamination/report/``:
``contamination.md``, ``contamination.json`` and ``efficiency_vs_contamination.png``.
"""

from __future__ import annotations

import dataclasses
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from anomaly.baselines import signal_halves
from anomaly.study.numbers import ScoreSet, operating_point
from anomaly.study.steps import Step
from triggerad.errors import StatisticsError

CONTAM_DIR = "contamination"
#: Name of the stage that collects the contaminated trainings into the table and the plot.
REPORT_STEP = "contamination"


def label(fraction: float) -> str:
    """File and marker label of a fraction (``0``, ``0.001``)."""
    return f"{fraction:g}"


def step_name(model: str, signal: str, fraction: float) -> str:
    """Marker name of one contaminated training."""
    return f"contaminate_{model}_{signal}_{label(fraction)}"


def configured_signals(cfg) -> list[str]:
    """The signals of ``contamination.signals`` (``all``: every signal the study has)."""
    from anomaly.study.config import study_signals

    signals = cfg.contamination.signals
    return study_signals(cfg) if signals == "all" else list(signals)


def contaminate(bkg, signal, *, fraction: float, train_idx: np.ndarray, seed: int
                ) -> tuple[Any, dict[str, Any]]:
    """Replace ``round(fraction x len(train_idx))`` training events of ``bkg`` by ``signal`` events.

    Parameters
    ----------
    bkg, signal : EventBatch
        The whole background (every split) and one signal.
    fraction : float
        Fraction of the training split replaced.
    train_idx : (n,) int array
        Positions of the training split in ``bkg`` (:func:`triggerad.data.split_indices`).
    seed : int
        Seed of the replaced positions (a permutation of ``train_idx``: the events replaced at a
        smaller fraction are a subset of those at a larger one) and of the injected events
        (drawn from the first of :func:`anomaly.baselines.signal_halves` ``(len(signal), seed)``;
        the second half measures the efficiencies).

    Returns
    -------
    batch : EventBatch
        ``bkg`` with the replaced positions holding signal events, weighted by the mean
        training weight; every other position unchanged.
    info : dict
        ``n_train``, ``n_replaced``, ``replaced`` (positions), ``injected`` (signal indices),
        ``held_out`` (signal indices never injected), ``signal_weight``.
    """
    from triggerad.events import EventBatch

    pool, held_out = signal_halves(len(signal), seed)
    n = int(round(fraction * len(train_idx)))
    if n > len(pool):
        raise StatisticsError(
            f"contamination: fraction {fraction:g} of {len(train_idx)} training events needs {n} "
            f"signal events, the signal's injection half has {len(pool)}; generate more signal "
            "or use a smaller fraction")
    replaced = np.sort(np.random.default_rng(seed).permutation(train_idx)[:n])
    injected = np.random.default_rng(seed + 1).permutation(pool)[:n]
    index = np.arange(len(bkg))
    index[replaced] = len(bkg) + np.arange(n)
    batch = EventBatch.concatenate([bkg, signal.take(injected)]).take(index)
    weight = np.array(batch.weight, copy=True)
    mean_w = float(np.mean(bkg.weight[train_idx]))
    weight[replaced] = mean_w
    batch = dataclasses.replace(batch, weight=weight.astype(batch.weight.dtype))
    return batch, {"n_train": int(len(train_idx)), "n_replaced": n, "replaced": replaced,
                   "injected": injected, "held_out": held_out, "signal_weight": mean_w}


def _paths(out: Path, model: str, signal: str, fraction: float) -> dict[str, Path]:
    name = f"{signal}_{label(fraction)}"
    root = out / CONTAM_DIR
    return {"data": root / "data" / f"{name}.h5", "model": root / "models" / model / name,
            "scores": root / "scores" / f"{model}_{name}.npz"}


def step_contaminate(cfg, out: Path, model: str, signal: str, fraction: float) -> dict[str, Any]:
    """Train ``model`` with ``fraction`` of its training split replaced by ``signal``; score it."""
    from anomaly.evaluate import EvaluateConfig
    from anomaly.study.config import data_dir, train_config
    from anomaly.train import train
    from triggerad.config import load, resolve_config
    from triggerad.data import fingerprint, load_sample, load_signals, load_split, split_indices
    from triggerad.errors import ConfigError
    from triggerad.io.adc2021 import write_h5
    from triggerad.models import load_model

    c = cfg.contamination
    clean = load_model(out / "models" / model)
    info = clean.data_info
    signals, _ = load_signals(data_dir(cfg, out), cfg.evaluation.max_signal_events)
    if signal not in signals:
        from triggerad.errors import did_you_mean

        raise ConfigError(f"contamination.signals: no signal {signal!r} in {data_dir(cfg, out)}; "
                          + did_you_mean(signal, signals))
    sig = signals[signal]
    split = load(EvaluateConfig, resolve_config(cfg.evaluation.config)).report.split
    evaluation = load_split(info, split)
    paths = _paths(out, model, signal, fraction)
    record: dict[str, Any] = {"model": model, "signal": signal, "fraction": fraction,
                              "evaluation_split": split,
                              "evaluation_fingerprint": fingerprint(evaluation)}
    if fraction == 0:
        art = clean
        held_out = signal_halves(len(sig), c.seed)[1]
        record.update(n_train=int(info["counts"]["train"]), n_replaced=0,
                      model_dir=str(out / "models" / model))
    else:
        bkg = load_sample(info["background"], info["reader"],
                          chunk_size=info.get("chunk_size", 100_000),
                          max_events=info.get("max_events"))
        idx = split_indices(len(bkg), info["fractions"], info["split_seed"])
        batch, inj = contaminate(bkg, sig, fraction=fraction, train_idx=idx["train"], seed=c.seed)
        held_out = inj["held_out"]
        paths["data"].parent.mkdir(parents=True, exist_ok=True)
        write_h5(paths["data"], batch)
        tcfg, path = train_config(cfg, model, paths["data"])
        summary = train(tcfg, paths["model"], extra={"config_file": str(path),
                                                    "by": "trigger-ad study (contamination)"})
        art = load_model(paths["model"])
        for part in ("val", split):  # the clean splits, read back from the written file
            if fingerprint(load_split(art.data_info, part)) != fingerprint(bkg.take(idx[part])):
                raise RuntimeError(f"contamination: the {part} split of {paths['data']} differs "
                                   "from the clean one (a bug: only training events are replaced)")
        record.update(n_train=inj["n_train"], n_replaced=inj["n_replaced"],
                      signal_weight=inj["signal_weight"], model_dir=str(paths["model"]),
                      data=str(paths["data"]),
                      training={k: summary.get(k) for k in ("epochs_run", "best_epoch",
                                                            "val_loss", "seconds")})
    scores = ScoreSet(bkg_weight=np.asarray(evaluation.weight, dtype=np.float64))
    b = art.score(evaluation)
    s = art.score(sig.take(held_out))
    for name in art.score_names:
        scores.add(f"{model}:{name}", b[name], {signal: s[name]},
                   {signal: np.asarray(sig.weight[held_out])})
    paths["scores"].parent.mkdir(parents=True, exist_ok=True)
    scores.save(paths["scores"])
    record.update(n_signal_held_out=int(len(held_out)), default_score=clean.default_score,
                  scores=str(paths["scores"]))
    return record


def contamination_table(cfg, out: Path, records: dict[str, dict[str, Any]], *, cl: float
                        ) -> dict[str, Any]:
    """``{method: {fpr: {signal: {fraction: operating_point record + n_replaced}}}}``.

    ``method`` is ``<model>:<default score>``; the cut is set on the clean evaluation split.
    """
    c, ev = cfg.contamination, cfg.evaluation
    table: dict[str, Any] = {}
    for model in c.models:
        for signal in configured_signals(cfg):
            for fraction in c.fractions:
                rec = records[step_name(model, signal, fraction)]
                method = f"{model}:{rec['default_score']}"
                scores = ScoreSet.load(out / CONTAM_DIR / "scores" / Path(rec["scores"]).name)
                m = scores.methods[method]
                for fpr in c.fprs:
                    row = operating_point(m["bkg"][signal], scores.bkg_weight, m["sig"][signal],
                                          m["sig_w"][signal], fpr, cl=cl,
                                          min_effective=ev.min_effective_events)
                    row.update(n_replaced=rec["n_replaced"], n_train=rec["n_train"],
                               n_signal=rec["n_signal_held_out"])
                    (table.setdefault(method, {}).setdefault(label(fpr), {})
                     .setdefault(signal, {}))[label(fraction)] = row
    return table


def render_markdown(report: dict[str, Any]) -> str:
    """``contamination.md``: one table per method and operating point."""
    lines = ["# Signal-contamination robustness", "",
             "Each signal in turn replaces a fraction of the SM *training* split (the validation "
             "and evaluation splits stay clean SM); the model is retrained and its score cut on "
             "the **clean SM evaluation split** at the given FPR. Efficiency with its "
             f"{report['cl']:.4g} Clopper-Pearson interval, on the half of each signal that was "
             "never injected; relative change = eff(largest fraction) / eff(smallest) - 1. "
             "(*: fewer than "
             f"{report['min_effective_events']:g} effective SM events above the cut.)", ""]
    fractions = report["fractions"]
    for method, per_fpr in report["table"].items():
        for fpr, per_signal in per_fpr.items():
            lines += [f"## {method}, FPR {fpr}", "",
                      "| signal | " + " | ".join(f"{float(f) * 100:g} % (events)"
                                                  for f in fractions) + " | relative change |",
                      "|---|" + "--:|" * (len(fractions) + 1)]
            for signal, rows in per_signal.items():
                cells = []
                for f in fractions:
                    r = rows[f]
                    low, high = r["efficiency_ci"]
                    flag = "" if r["measurable"] else "*"
                    cells.append(f"{r['efficiency']:.3g} [{low:.3g}, {high:.3g}]{flag} "
                                 f"({r['n_replaced']})")
                e0, e1 = rows[fractions[0]]["efficiency"], rows[fractions[-1]]["efficiency"]
                change = f"{e1 / e0 - 1:+.0%}" if e0 > 0 else "-"
                lines.append(f"| {signal} | " + " | ".join(cells) + f" | {change} |")
            lines.append("")
    lines += [f"![{f}]({f})" for f in report.get("figures", [])]
    return "\n".join(lines) + "\n"


def step_report(cfg, out: Path) -> dict[str, Any]:
    """Collect the contaminated trainings: ``STUDY/contamination/report/`` (md, json, png)."""
    from anomaly.study import plots
    from anomaly.study.steps import finished
    from triggerad.atomic import atomic_dir, write_json, write_text
    from triggerad.config import load_section, resolve_config
    from triggerad.threshold import RatesConfig

    c = cfg.contamination
    cl = load_section(RatesConfig, resolve_config(cfg.evaluation.config), "rates").cl
    records = {name: finished(out, name) for name in _training_steps(cfg)}
    table = contamination_table(cfg, out, records, cl=cl)
    report = {"cl": cl, "min_effective_events": cfg.evaluation.min_effective_events,
              "fractions": [label(f) for f in sorted(c.fractions)], "fprs": c.fprs,
              "threshold": "cut on the clean SM evaluation split at each FPR",
              "trainings": records, "table": table}
    with atomic_dir(out / CONTAM_DIR / "report") as tmp:
        report["figures"] = plots.efficiency_vs_contamination(tmp, report)
        write_json(tmp / "contamination.json", report)
        write_text(tmp / "contamination.md", render_markdown(report))
    return {"table": {m: {f: {s: {k: r["efficiency"] for k, r in rows.items()}
                              for s, rows in per.items()} for f, per in t.items()}
                      for m, t in table.items()}}


def _training_steps(cfg) -> list[str]:
    c = cfg.contamination
    return [step_name(m, s, f) for m in c.models for s in configured_signals(cfg)
            for f in sorted(c.fractions)]


def contamination_steps(cfg) -> list[Step]:
    """The contamination stages (none without a ``contamination`` section): one training per
    model, signal and fraction, each needing only the data and that model's clean training,
    then the report stage."""
    from anomaly.study.config import train_step

    c = cfg.contamination
    if c is None:
        return []
    steps = [Step(step_name(m, s, f), partial(step_contaminate, cfg, model=m, signal=s, fraction=f),
                  needs=("generate", train_step(m)))
             for m in c.models for s in configured_signals(cfg) for f in sorted(c.fractions)]
    return steps + [Step(REPORT_STEP, partial(step_report, cfg),
                         needs=tuple(st.name for st in steps))]
