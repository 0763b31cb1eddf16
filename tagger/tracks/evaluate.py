"""Evaluation of track classifiers against the truth: AUC, accuracy, the pT-cut baseline, track
importance and throughput; ``report.json`` and ``report.md``.

Every model is scored on the test events of the file of its pile-up mu in the data folder: the
test split it was trained with if the file is the one it was trained on (same fingerprint), else
all events of the file (an independent sample). Metrics use the truth labels whatever the
labelling of the training (a CWoLa model is judged on signal vs QCD, not on its mixtures):

``auc``
    area under the ROC curve, signal vs QCD (:func:`triggerad.metrics.auc`);
``accuracy``
    at the network's own cut (logit 0; for a CWoLa model the cut between its mixtures);
``best_accuracy``
    at the best cut on the score (the quantity a pT cut is quoted with);
``baseline``
    per mu, the scalar pT sum of the kept tracks as the discriminant (the "pT cut");
``track_importance``
    occlusion: the mean |change of the logit| when one track is masked, separately for tracks
    of the hard process and of pile-up, over ``importance_events`` test events (mu > 0), and
    ``importance_<model>.png``: the tracks of 3 signal events in (eta, phi), marker area ~ that
    change;
``inference_events_per_s``, ``train_events_per_s``
    throughput on this machine (CPU unless TensorFlow sees a GPU).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from tagger.tracks import features as feat
from tagger.tracks.data import TrackSample, read, sample_path, split
from triggerad import atomic, metrics
from triggerad.mdtable import table

REPORT_JSON, REPORT_MD = "report.json", "report.md"


def scores_metrics(score: np.ndarray, label: np.ndarray, cut: float) -> dict:
    """AUC, accuracy at ``cut`` and the best accuracy over all cuts of a discriminant."""
    sig, bkg = score[label == 1], score[label == 0]
    order = np.sort(score)
    cuts = np.unique(order[:: max(1, len(order) // 500)])
    best = max(float(np.mean((score >= c) == (label == 1))) for c in cuts)
    return {"auc": metrics.auc(bkg, None, sig),
            "accuracy": float(np.mean((score >= cut) == (label == 1))),
            "best_accuracy": best, "signal_events": int(len(sig)), "qcd_events": int(len(bkg))}


def test_events(model, sample: TrackSample) -> tuple[TrackSample, str]:
    """The events to score: the model's test split of its own file, else the whole file."""
    info = model.data_info
    if sample.fingerprint() == info["fingerprint"]:
        s = info["split"]
        idx = split(len(sample), seed=s["seed"], val_fraction=s["val_fraction"],
                    test_fraction=s["test_fraction"])["test"]
        return sample.take(idx), "test split of the training file"
    return sample, "all events (independent sample)"


def occlusion(model, sample: TrackSample, n_events: int) -> tuple[np.ndarray, np.ndarray]:
    """|change of the logit| when each track of the first ``n_events`` events is masked
    (n_events, N) (0 for padding), and the mask."""
    n_events = min(n_events, len(sample))
    x, mask = feat.inputs(sample.tracks[:n_events], sample.n_tracks[:n_events],
                          model.meta["normalisation"], model.meta["input_features"])
    base = model.net.predict([x, mask], verbose=0)[:, 0]
    size = mask.shape[1]
    delta = np.zeros((n_events, size))
    eye = 1.0 - np.eye(size, dtype=np.float32)
    for e in range(n_events):
        out = model.net.predict([np.repeat(x[e:e + 1], size, 0), mask[e] * eye], verbose=0)
        delta[e] = np.abs(out[:, 0] - base[e]) * mask[e]
    return delta, mask


def track_importance(model, sample: TrackSample, n_events: int, plot: Path | None = None
                     ) -> dict:
    """Occlusion importance of hard-process and pile-up tracks (module docstring); with
    ``plot``, a PNG of the tracks of 3 signal events in (eta, phi), area ~ importance."""
    delta, mask = occlusion(model, sample, n_events)
    n_events = len(delta)
    valid = mask > 0
    pile = sample.from_pileup[:n_events] > 0
    mean = lambda sel: float(delta[sel].mean()) if sel.any() else None  # noqa: E731
    out = {"events": n_events, "hard_process": mean(valid & ~pile),
           "pileup": mean(valid & pile),
           "pileup_track_fraction": float(pile[valid].mean()) if valid.any() else 0.0}
    if plot is not None:
        out["figure"] = importance_plot(plot, sample, delta, pile, model.name)
    return out


def importance_plot(path: Path, sample: TrackSample, delta: np.ndarray, pile: np.ndarray,
                    title: str) -> str:
    """Tracks of up to 3 signal events in (eta, phi): marker area ~ occlusion importance,
    hard process vs pile-up in two colours; returns the file name."""
    from matplotlib.figure import Figure

    events = np.flatnonzero(sample.label[:len(delta)] == 1)[:3]
    fig = Figure(figsize=(4 * max(len(events), 1), 4))
    axes = np.atleast_1d(fig.subplots(1, max(len(events), 1)))
    scale = 400 / max(float(delta.max()), 1e-9)
    for ax, e in zip(axes, events, strict=False):
        k = int(sample.n_tracks[e])
        eta, phi = sample.tracks[e, :k, 1], sample.tracks[e, :k, 2]
        for sel, colour, name in ((~pile[e, :k], "tab:red", "hard process"),
                                  (pile[e, :k], "tab:blue", "pile-up")):
            ax.scatter(eta[sel], phi[sel], s=5 + scale * delta[e, :k][sel], c=colour,
                       alpha=0.6, label=name)
        ax.set_xlabel("track eta")
        ax.set_ylabel("track phi")
        ax.set_title(f"signal event {e}", fontsize=9)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{title}: |logit change| when a track is masked", fontsize=10)
    with atomic.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=70, bbox_inches="tight", format="png")
    return path.name


def evaluate(models: list, data: str | Path, out: str | Path, *, importance_events: int = 20
             ) -> dict:
    """Score ``models`` (loaded :class:`~tagger.tracks.artifact.TrackClassifier`) on the files
    of folder ``data``; write ``report.json`` and ``report.md`` into ``out``.

    Returns
    -------
    dict : the report.
    """
    Path(out).mkdir(parents=True, exist_ok=True)
    samples: dict[float, TrackSample] = {}
    report: dict = {"models": {}, "baseline": {}}
    for model in models:
        mu = float(model.data_info["mu"])
        name = model.name
        if name in report["models"]:  # same network and labelling: tell them by folder
            name = f"{name}_{model.path.name}"
        if mu not in samples:
            samples[mu] = read(sample_path(data, mu))
        events, which = test_events(model, samples[mu])
        start = time.perf_counter()
        score = model.score(events.tracks, events.n_tracks)
        seconds = time.perf_counter() - start
        entry = scores_metrics(score, events.label, 0.5)
        train = model.meta["training"]
        entry.update({
            "mu": mu, "architecture": model.meta["architecture"],
            "labelling": model.meta["labelling"], "test_events": which,
            "train_events": train["train_events"], "epochs": train["epochs_run"],
            "train_seconds": train["seconds"], "train_events_per_s": train["train_events_per_s"],
            "inference_events_per_s": len(events) / seconds, "parameters": train["parameters"],
            "track_importance": track_importance(
                model, events, importance_events, plot=Path(out) / f"importance_{name}.png")
            if importance_events and mu > 0 else None,
        })
        report["models"][name] = entry
        key = f"mu{mu:g}"
        if key not in report["baseline"]:
            report["baseline"][key] = {"sum_pt": scores_metrics(
                feat.sum_pt(events.tracks, events.n_tracks), events.label, np.inf)}
            report["baseline"][key]["sum_pt"].pop("accuracy")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic.write_json(out / REPORT_JSON, report)
    atomic.write_text(out / REPORT_MD, markdown(report))
    return report


def markdown(report: dict) -> str:
    """``report.md``: one row per model and the baselines."""
    rows = []
    for name, e in report["models"].items():
        lab = e["labelling"]
        labelling = lab["name"] if lab["name"] == "supervised" else \
            f"CWoLa f = {lab['fraction']:.0%} vs {lab['reference_fraction']:.0%}"
        imp = e["track_importance"] or {}
        ratio = (f"{imp['hard_process'] / imp['pileup']:.1f}"
                 if imp.get("pileup") and imp.get("hard_process") else "-")
        rows.append([name, f"{e['mu']:g}", e["architecture"], labelling, f"{e['auc']:.3f}",
                     f"{e['accuracy']:.3f}", f"{e['best_accuracy']:.3f}",
                     str(e["train_events"]), f"{e['train_events_per_s']:.0f}", ratio])
    lines = ["# Track-level LLP classification", "",
             table(["model", "mu", "network", "labels", "AUC", "accuracy", "best accuracy",
                    "train events", "train events/s", "importance hard/PU"], rows), "",
             "## pT-cut baseline (scalar pT sum of the kept tracks)", ""]
    lines.append(table(["mu", "AUC", "best accuracy"], [
        [k, f"{v['sum_pt']['auc']:.3f}", f"{v['sum_pt']['best_accuracy']:.3f}"]
        for k, v in report["baseline"].items()]))
    return "\n".join(lines) + "\n"


def summary_lines(report: dict) -> list[str]:
    """One line per model and baseline."""
    lines = [f"{name:<28} AUC {e['auc']:.3f}  accuracy {e['accuracy']:.3f}  best accuracy "
             f"{e['best_accuracy']:.3f}  ({e['train_events_per_s']:.0f} train events/s)"
             for name, e in report["models"].items()]
    lines += [f"{'pT-sum cut ' + k:<28} AUC {v['sum_pt']['auc']:.3f}  best accuracy "
              f"{v['sum_pt']['best_accuracy']:.3f}" for k, v in report["baseline"].items()]
    return lines
