"""Figures of the study: signal efficiency against SM efficiency for every method.

Plain matplotlib (no experiment label: this is not a CMS result; a small "trigger-ad
simulation" tag instead). Each signal gets a panel with the curve of every method; the headline
VAE score and the best single-variable cut are highlighted, and their efficiencies at the
operating points are drawn as markers with their intervals (an efficiency of 0 as an upper-limit
arrow at the interval's upper end). SM efficiencies below the measurable range (fewer than the
required effective events above the cut) are shaded. The axes are scaled to the data.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from anomaly.study.numbers import SUPERVISED, ScoreSet, reference_single
from triggerad.metrics import roc

FIGURE = "efficiency_vs_fpr.png"


def _style(method: str, headline: str, best_single: str | None) -> dict[str, Any]:
    if method == headline:
        return {"color": "tab:red", "linewidth": 2.5, "zorder": 5}
    if method == best_single:
        return {"color": "tab:blue", "linewidth": 2.5, "zorder": 4}
    if method == SUPERVISED:
        return {"color": "black", "linestyle": ":", "linewidth": 1.5}
    if method.startswith("single_"):
        return {"color": "tab:cyan", "linestyle": "--", "linewidth": 1.0}
    if ":" in method:
        return {"color": "0.55", "linewidth": 0.8}
    return {"linewidth": 1.0, "linestyle": "-."}


def _markers(ax, rows: dict[str, dict[str, Any]], method: str, color: str) -> None:
    """Operating points of one method: error bars, or an upper-limit arrow for 0 selected."""
    for row in rows:
        r = row.get(method)
        if r is None or not r["measurable"]:
            continue
        low, high = r["efficiency_ci"]
        if r["efficiency"] > 0:
            ax.errorbar([r["bkg_fraction"]], [r["efficiency"]],
                        yerr=[[r["efficiency"] - low], [high - r["efficiency"]]],
                        fmt="o", color=color, markersize=6, capsize=3, zorder=6)
        else:
            ax.errorbar([r["bkg_fraction"]], [high], yerr=[[high * 0.5], [0]], uplims=True,
                        fmt="v", color=color, markersize=6, zorder=6)


def efficiency_vs_fpr(folder: Path, scores: ScoreSet, report: dict[str, Any], *,
                      headline: str) -> list[str]:
    """Write the efficiency-vs-FPR panels into ``folder``; return the file names."""
    ev = report["evaluation_sample"]
    n_eff, min_eff = ev["n_eff"], ev["min_effective_events"]
    signals = scores.signals
    ncols = min(2, len(signals))
    nrows = math.ceil(len(signals) / ncols)
    fig = Figure(figsize=(7 * ncols, 5.5 * nrows))
    axes = np.atleast_1d(fig.subplots(nrows, ncols)).ravel()
    labels = list(report["table"])
    measurable = [k for k in labels if report["statistics"][k]["measurable"]]
    pick = min(measurable or labels, key=float)
    for ax, s in zip(axes, signals, strict=False):
        rows_at = [report["table"][k][s] for k in labels]
        ref = reference_single(report["table"][pick][s])
        best_row = report["table"][pick][s].get(ref, {}) if ref else {}
        best = f"single_{best_row['variable']}" if best_row else None
        lowest = 1.0
        for method, rec in scores.methods.items():
            if s not in rec["sig"]:
                continue
            fpr, tpr = roc(rec["bkg"][s], scores.bkg_weight, rec["sig"][s], n_points=200,
                           sig_weights=rec["sig_w"][s])
            label = "best single-variable cut (in the title)" if method == best else method
            ax.plot(fpr, tpr, label=label, **_style(method, headline, best))
            if np.any(tpr > 0):
                lowest = min(lowest, float(tpr[tpr > 0].min()))
        _markers(ax, rows_at, headline, "tab:red")
        if ref:  # the chosen cut's own operating points (chosen on validation when available)
            _markers(ax, rows_at, ref, "tab:blue")
        floor = 1.0 / max(n_eff, 1.0)
        ax.axvspan(floor, min(min_eff / max(n_eff, 1.0), 1.0), color="0.88", zorder=0,
                   label=f"< {min_eff:g} effective SM events above the cut")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(floor, 1.0)
        ax.set_ylim(max(lowest / 2, 1e-6), 1.05)
        ax.set_xlabel("SM efficiency (weighted fraction of the input rate)")
        ax.set_ylabel("signal efficiency")
        ax.set_title(s + (f" (best single variable at FPR {pick}: {best[7:]} "
                          f"{best_row.get('direction', '>')})" if best else ""),
                     fontsize=11)
        ax.text(0.02, 0.97, "trigger-ad simulation", transform=ax.transAxes, fontsize=9,
                va="top", color="0.3")
        ax.grid(True, which="major", alpha=0.3)
    for ax in axes[len(signals):]:
        ax.set_visible(False)
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=5, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.03 + 0.012 * math.ceil(len(names) / 5), 1, 1))
    fig.savefig(Path(folder) / FIGURE, dpi=90)
    return [FIGURE]


CONTAMINATION_FIGURE = "efficiency_vs_contamination.png"


def efficiency_vs_contamination(folder: Path, report: dict[str, Any]) -> list[str]:
    """Efficiency at fixed FPR against the signal fraction injected into the training split.

    One panel per method and operating point, one line per signal with its Clopper-Pearson
    intervals; the fractions are evenly spaced categories (0 has no place on a log axis); an
    efficiency of 0 is an upper-limit arrow. Returns the file names written into ``folder``.
    """
    fractions = report["fractions"]
    panels = [(m, f) for m, per in report["table"].items() for f in per]
    fig = Figure(figsize=(6.5 * len(panels), 5))
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    x = np.arange(len(fractions))
    for ax, (method, fpr) in zip(axes, panels, strict=True):
        lowest = 1.0
        for i, (signal, rows) in enumerate(report["table"][method][fpr].items()):
            eff = np.array([rows[f]["efficiency"] for f in fractions])
            ci = np.array([rows[f]["efficiency_ci"] for f in fractions])
            shift = x + 0.04 * (i - 1.5)
            line = ax.plot(shift, np.where(eff > 0, eff, np.nan), "-o", label=signal)[0]
            pos = eff > 0
            ax.errorbar(shift[pos], eff[pos], yerr=[eff[pos] - ci[pos, 0], ci[pos, 1] - eff[pos]],
                        fmt="none", color=line.get_color(), capsize=3)
            if np.any(~pos):
                ax.errorbar(shift[~pos], ci[~pos, 1], yerr=[ci[~pos, 1] * 0.5, 0 * ci[~pos, 1]],
                            uplims=True, fmt="v", color=line.get_color())
            lowest = min(lowest, float(np.min(np.where(ci[:, 0] > 0, ci[:, 0], ci[:, 1] / 2))))
        ax.set_xticks(x, [f"{float(f) * 100:g} %" for f in fractions])
        ax.set_yscale("log")
        ax.set_ylim(max(lowest / 1.5, 1e-6), 1.05)
        ax.set_xlabel("signal fraction of the training split")
        ax.set_ylabel(f"signal efficiency at SM efficiency {fpr} (clean SM)")
        ax.set_title(method, fontsize=11)
        ax.text(0.02, 0.97, "trigger-ad simulation", transform=ax.transAxes, fontsize=9,
                va="top", color="0.3")
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(Path(folder) / CONTAMINATION_FIGURE, dpi=90)
    return [CONTAMINATION_FIGURE]
