"""Figures of the evaluation report (matplotlib, mplhep's CMS fonts and ticks).

No experiment label: trigger-ad results are not CMS results; each figure carries a small
"trigger-ad simulation" tag instead.

Each function writes one PNG and returns its file name. They take plain arrays so they can be
used outside the report too. They draw on :class:`matplotlib.figure.Figure` objects under a
temporary style, so they neither choose a backend nor change pyplot's state or style (a notebook
keeps its own).
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import matplotlib
import matplotlib.colors
import matplotlib.style
import mplhep
import numpy as np
from matplotlib.figure import Figure


def _cms_style(plot):
    """Run ``plot`` under the mplhep CMS style, restoring the caller's style afterwards."""

    @functools.wraps(plot)
    def styled(*args, **kwargs):
        with matplotlib.style.context(mplhep.style.CMS):
            return plot(*args, **kwargs)

    return styled


def _figure():
    fig = Figure(figsize=(10, 8))
    ax = fig.subplots()
    ax.text(0.0, 1.01, "trigger-ad simulation", transform=ax.transAxes, fontsize=14,
            style="italic", va="bottom")
    return fig, ax


def _save(fig, path: Path) -> str:
    fig.savefig(path, dpi=80, bbox_inches="tight")
    return path.name


def _colors(name: str) -> tuple:
    return matplotlib.colormaps[name].colors


def _bins(*arrays: np.ndarray, n: int = 60) -> np.ndarray:
    values = np.concatenate([np.asarray(a, dtype=np.float64) for a in arrays])
    lo, hi = np.quantile(values, [0.0, 0.9999]) if values.size else (0.0, 1.0)
    return np.linspace(lo, hi if hi > lo else lo + 1.0, n + 1)


@_cms_style
def score_distributions(
    path: Path,
    bkg_scores: np.ndarray,
    bkg_weights: np.ndarray,
    bkg_process: np.ndarray,
    signals: dict[str, np.ndarray],
    cut: float,
    score_name: str,
) -> str:
    """Unit-area score histograms per SM process (weighted) and per signal, log y, with the cut."""
    fig, ax = _figure()
    bins = _bins(bkg_scores, *signals.values())
    filled, lines = _colors("Pastel1"), _colors("Dark2")
    for i, proc in enumerate(sorted(set(bkg_process.tolist()))):
        sel = bkg_process == proc
        ax.hist(np.clip(bkg_scores[sel], bins[0], bins[-1]), bins=bins, weights=bkg_weights[sel],
                density=True, histtype="stepfilled", alpha=0.6, color=filled[i % len(filled)],
                label=f"SM {proc}")
    for i, (name, scores) in enumerate(signals.items()):
        ax.hist(np.clip(scores, bins[0], bins[-1]), bins=bins, density=True, histtype="step",
                linewidth=2, color=lines[i % len(lines)], label=name)
    ax.axvline(cut, color="k", linestyle="--", label="threshold")
    ax.set_yscale("log")
    ax.set_xlabel(f"score {score_name}")
    ax.set_ylabel("unit-normalised density")
    ax.legend(fontsize=12, ncol=2)
    return _save(fig, path)


@_cms_style
def rate_curve(
    path: Path, cuts: np.ndarray, rates_hz: np.ndarray, cut: float, target_rate_hz: float,
    score_name: str,
) -> str:
    """Trigger rate (Hz) against the score cut, log y, with the chosen cut and target rate."""
    fig, ax = _figure()
    positive = rates_hz > 0
    ax.step(cuts[positive], rates_hz[positive], where="post", label="SM rate")
    ax.axvline(cut, color="k", linestyle="--", label="threshold")
    ax.axhline(target_rate_hz, color="r", linestyle=":", label="target rate")
    ax.set_yscale("log")
    ax.set_xlabel(f"cut on {score_name}")
    ax.set_ylabel("rate above cut [Hz]")
    ax.legend(fontsize=14)
    return _save(fig, path)


@_cms_style
def roc_curves(
    path: Path, rocs: dict[str, tuple[np.ndarray, np.ndarray]], fpr_at_threshold: float,
) -> str:
    """Signal efficiency against background efficiency (log x) per signal, threshold marked."""
    fig, ax = _figure()
    for name, (fpr, tpr) in rocs.items():
        positive = fpr > 0
        ax.plot(fpr[positive], tpr[positive], label=name)
    ax.axvline(fpr_at_threshold, color="k", linestyle="--", label="threshold")
    ax.set_xscale("log")
    ax.set_xlabel("SM efficiency (weighted)")
    ax.set_ylabel("signal efficiency")
    ax.legend(fontsize=14)
    return _save(fig, path)


@_cms_style
def float_vs_quantized(path: Path, x: np.ndarray, y: np.ndarray, names: tuple[str, str]) -> str:
    """2-d histogram of the float score against its quantized twin (log-scaled counts)."""
    fig, ax = _figure()
    lo = float(min(np.min(x), np.min(y)))
    hi = float(np.quantile(np.concatenate([x, y]), 0.999))
    hi = hi if hi > lo else lo + 1.0
    ax.hist2d(x, y, bins=80, range=[[lo, hi], [lo, hi]], norm=matplotlib.colors.LogNorm(),
              cmap="viridis")
    ax.plot([lo, hi], [lo, hi], color="r", linewidth=1, label="y = x")
    ax.set_xlabel(names[0])
    ax.set_ylabel(names[1])
    ax.legend(fontsize=14)
    return _save(fig, path)


@_cms_style
def efficiency_bars(path: Path, table: dict[str, dict[str, float]]) -> str:
    """Grouped bars of signal efficiency (log y) per signal for the model and each baseline."""
    fig, ax = _figure()
    signals = sorted({s for row in table.values() for s in row})
    width = 0.8 / max(len(table), 1)
    colors = _colors("tab20")
    effs = {m: np.array([row.get(s, 0.0) or 0.0 for s in signals]) for m, row in table.items()}
    positive = np.concatenate([e[e > 0] for e in effs.values()] + [np.ones(1)])
    floor = 0.5 * positive.min()  # the axis follows the data; an efficiency of 0 is a marker
    for i, (method, eff) in enumerate(effs.items()):
        x = np.arange(len(signals)) + i * width
        color = colors[i % len(colors)]
        ax.bar(x[eff > 0], eff[eff > 0], width=width, label=method, color=color)
        ax.plot(x[eff <= 0], np.full((eff <= 0).sum(), floor), "v", color=color, markersize=9,
                label=f"{method}: 0 (no event passes)" if (eff <= 0).any() else None)
    ax.set_xticks(np.arange(len(signals)) + 0.4 - width / 2, signals, fontsize=12)
    ax.set_yscale("log")
    ax.set_ylim(0.7 * floor, 1.5)
    ax.set_ylabel("signal efficiency at the same SM rate")
    ax.legend(fontsize=11, ncol=2)
    return _save(fig, path)


def _curve_style(method: str, model: str, best: str | None) -> dict:
    if method == model:
        return {"color": "tab:red", "linewidth": 3, "zorder": 5}
    if method == best:
        return {"color": "tab:blue", "linewidth": 3, "zorder": 4,
                "label": "best single-variable cut at the threshold (in the title)"}
    if method == "classifier":
        return {"color": "black", "linestyle": ":", "linewidth": 2,
                "label": "classifier (supervised bound)"}
    if method.startswith("single_"):
        return {"color": "tab:cyan", "linestyle": "--", "linewidth": 1, "alpha": 0.6}
    return {"linewidth": 1.5, "linestyle": "-."}


@_cms_style
def efficiency_vs_fpr(
    path: Path,
    curves: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]],
    fpr_at_threshold: float,
    *,
    model: str,
    best: dict[str, str] | None = None,
    points: dict[str, dict[str, float]] | None = None,
) -> str:
    """Signal efficiency against SM efficiency of every method, one panel per signal.

    Parameters
    ----------
    path : Path
        PNG to write.
    curves : dict
        ``{signal: {method: (fpr, tpr)}}`` (:func:`anomaly.report.method_curves`).
    fpr_at_threshold : float
        SM efficiency of the threshold (a vertical line; the operating points sit on it).
    model : str
        The model's method name (highlighted in red).
    best : dict, optional
        ``{signal: method}``: the best single-variable cut per signal (highlighted in blue).
    points : dict, optional
        ``{signal: {method: efficiency}}`` at the threshold, drawn as markers; an efficiency of 0
        is a downward triangle at the bottom of the (data-scaled) axis.
    """
    best, points = best or {}, points or {}
    signals = list(curves)
    ncols = min(2, max(len(signals), 1))
    nrows = max(math.ceil(len(signals) / ncols), 1)
    fig = Figure(figsize=(9 * ncols, 7 * nrows))
    axes = np.atleast_1d(fig.subplots(nrows, ncols)).ravel()
    for ax, sig in zip(axes, signals, strict=False):
        lowest_x, lowest_y = 1.0, 1.0
        other_single = "other single-variable cuts" if sig == signals[0] else None
        for method, (fpr, tpr) in curves[sig].items():
            keep = (fpr > 0) & (tpr > 0)
            style = {"label": method, **_curve_style(method, model, best.get(sig))}
            if method.startswith("single_") and method != best.get(sig):
                style["label"], other_single = other_single, None  # one legend entry
            ax.plot(fpr[keep], tpr[keep], **style)
            if keep.any():
                lowest_x = min(lowest_x, float(fpr[keep].min()))
                lowest_y = min(lowest_y, float(tpr[keep].min()))
        floor = lowest_y / 2
        for method, eff in points.get(sig, {}).items():
            color = "tab:red" if method == model else "tab:blue"
            if eff > 0:
                ax.plot([fpr_at_threshold], [eff], "o", color=color, markersize=10, zorder=6)
            else:
                ax.plot([fpr_at_threshold], [floor], "v", color=color, markersize=10, zorder=6)
        ax.axvline(fpr_at_threshold, color="0.4", linestyle="--", linewidth=1, label="threshold")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(lowest_x, 1.0)
        ax.set_ylim(floor / 1.5, 1.3)
        ax.set_xlabel("SM efficiency (weighted)")
        ax.set_ylabel("signal efficiency")
        title = f"{sig} (best single: {best[sig].removeprefix('single_')})" if sig in best else sig
        ax.set_title(title, fontsize=16)
        ax.text(0.0, 1.01, "trigger-ad simulation", transform=ax.transAxes, fontsize=12,
                style="italic", va="bottom")
    for ax in axes[len(signals):]:
        ax.set_visible(False)
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=3, fontsize=12, frameon=False)
    fig.tight_layout(rect=(0, 0.04 + 0.02 * math.ceil(len(names) / 3), 1, 1))
    return _save(fig, path)
