"""Figures of the LLP tagger report, drawn from the ``report.json`` record.

Each function writes one PNG (atomically) and returns its file name. They draw on
:class:`matplotlib.figure.Figure` objects, so they neither choose a backend nor change pyplot's
state.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from triggerad.atomic import atomic_path

COLORS = {"udsg": "tab:blue", "b": "tab:red", "c": "tab:green"}


def _save(fig: Figure, path: Path) -> str:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=80, bbox_inches="tight", format="png")
    return path.name


def roc_curves(path: Path, rocs: dict[str, dict], title: str) -> str:
    """LLP efficiency vs mistag (log x) for each background class of one c-tau."""
    fig = Figure(figsize=(7, 6))
    ax = fig.subplots()
    for against, r in rocs.items():
        if not isinstance(r, dict) or "fpr" not in r:
            continue
        ax.plot(r["fpr"], r["tpr"], color=COLORS.get(against),
                label=f"LLP vs {against} (AUC {r['auc']:.3f})")
    ax.set_xscale("log")
    ax.set_xlim(1e-5, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("mistag rate")
    ax.set_ylabel("LLP efficiency")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="upper left")
    return _save(fig, path)


def efficiency_vs_ctau(path: Path, curves: dict[str, dict], mistags: list[str]) -> str:
    """LLP efficiency at each udsg mistag vs true c-tau, per model."""
    fig = Figure(figsize=(7, 6))
    ax = fig.subplots()
    styles = ["-", "--", ":"]
    for i, (name, curve) in enumerate(curves.items()):
        x = np.asarray(curve["centres_mm"])
        for j, m in enumerate(mistags):
            y = np.array([np.nan if v is None else v for v in curve["efficiency"][m]])
            ax.plot(x, y, styles[i % 3], marker="o", color=f"C{j}",
                    label=f"{name}, {m} udsg mistag")
    ax.set_xscale("log")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("true c-tau [mm]")
    ax.set_ylabel("LLP efficiency")
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="best", fontsize=8)
    return _save(fig, path)


def ctau_scan(path: Path, scans: dict[str, dict | None]) -> str:
    """LLP efficiency vs the c-tau hypothesis for fixed-true-c-tau samples."""
    fig = Figure(figsize=(7, 6))
    ax = fig.subplots()
    for i, (key, scan) in enumerate(scans.items()):
        if scan is None:
            continue
        ax.plot(scan["ctau_mm"], scan["efficiency"], marker="o", color=f"C{i}",
                label=f"true c-tau {key} (peak {scan['peak_ctau_mm']:.3g} mm)")
        ax.axvline(scan["true_ctau_mm"], color=f"C{i}", ls=":")
    ax.set_xscale("log")
    ax.set_xlabel("c-tau hypothesis [mm]")
    ax.set_ylabel("LLP efficiency at fixed udsg mistag")
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="best", fontsize=8)
    return _save(fig, path)


def pmax(path: Path, checks: dict[str, dict], title: str) -> str:
    """P_max distributions, simulation vs data-like, per model (with their JSD)."""
    fig = Figure(figsize=(7, 6))
    ax = fig.subplots()
    for i, (name, d) in enumerate(checks.items()):
        edges = np.asarray(d["edges"])
        ax.stairs(d["simulation"], edges, color=f"C{i}", label=f"{name}: simulation")
        ax.stairs(d["data_like"], edges, color=f"C{i}", ls="--",
                  label=f"{name}: data-like (JSD {d['jsd_bits']:.3g} bit)")
    ax.set_yscale("log")
    ax.set_ylim(bottom=1e-4)
    ax.set_xlabel("P_max = max per event of P(LLP)")
    ax.set_ylabel("fraction of events")
    ax.set_title(title)
    ax.legend(loc="best", fontsize=8)
    return _save(fig, path)


def _label(rep: dict) -> str:
    return "with DA" if rep["model"]["domain_adaptation"] else "without DA"


def make_figures(outdir: Path, report: dict[str, Any]) -> list[str]:
    """Every figure of the report into ``outdir``; their file names."""
    outdir = Path(outdir)
    reps = [report] + ([report["compare"]] if "compare" in report else [])
    names = []
    for key, rocs in report["roc"].items():
        names.append(roc_curves(outdir / f"roc_{key}.png",
                                {a: r for a, r in rocs.items() if a != "ctau_mm"},
                                f"c-tau {key} ({_label(report)})"))
    mistags = list(report["efficiency_vs_ctau"]["efficiency"])
    names.append(efficiency_vs_ctau(outdir / "efficiency_vs_ctau.png",
                                    {_label(r): r["efficiency_vs_ctau"] for r in reps}, mistags))
    names.append(ctau_scan(outdir / "ctau_scan.png", report["ctau_scan"]))
    for key in report["domain"]:
        names.append(pmax(outdir / f"pmax_{key}.png", {_label(r): r["domain"][key] for r in reps},
                          f"c-tau hypothesis {key}"))
    return names
