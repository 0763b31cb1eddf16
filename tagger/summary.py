"""The summary of an LLP-sample run: counts, coverage, throughput and the checked distributions.

Checked distributions (``checks`` in ``summary.json``):

- ``d0_significance``: per class, the signed transverse impact-parameter significance
  (``sip2d_sig``) of every charged candidate: mean and standard deviation of the core
  (|s| < 5), the 68 % half-width ((q84 - q16) / 2), the median and the fraction with |s| > 3.
  Prompt (uds, g) jets should show mean ~0 and width ~1; b, c and LLP jets a positive tail.
  ``d0_significance_sm_jets`` compares all SM jets of the simulation and of the shifted
  simulation (the latter smears impact parameters more than it reports).
- ``sv_vs_ctau``: per c-tau decade, for LLP-labelled jets: the fraction with >= 1 secondary
  vertex, the median true 3D distance of the associated LLP decay, the median 3D flight distance
  of the leading vertex and the median |SV - true| distance.
- ``sv_fraction_per_class``: the fraction of jets with >= 1 secondary vertex per class.
"""

from __future__ import annotations

import numpy as np

from triggerad.config import to_dict
from triggerad.jets import CHARGED_FEATURES, GLOBAL_FEATURES, LABELS, SV_FEATURES, JetBatch

#: c-tau bin edges (mm): decades from 10 um to 10 m.
CTAU_EDGES = (0.01, 0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0)

SIMPLIFICATIONS = [
    "tracks are straight lines (no magnetic field, no multiple scattering or material); "
    "impact parameters come from the true production vertex and momentum plus Gaussian "
    "smearing with parametrised pT/eta/radius-dependent resolutions",
    "track efficiency is a function of the production radius only (no pattern recognition, no "
    "fake or duplicate tracks, no hit-level simulation); hits are counted from layer radii",
    "neutral candidates are single particles with Gaussian energy smearing and a drawn HCAL "
    "fraction (no shower overlap or clustering); untracked charged particles become neutral "
    "hadrons, untracked muons are lost",
    "the primary vertex is the origin (no beam spot spread, no PV reconstruction); PUPPI weights "
    "are a truth-assisted proxy",
    "secondary vertices: pair seeding + clustering + iterative least-squares fit of straight "
    "lines (no Kalman filter, no adaptive weights, no vertex merging/arbitration as in CMS IVF)",
    "no trigger, no jet energy corrections; the shifted simulation's shifts are parameters, "
    "not a model of real data",
]


def _ctau_bin(ctau: np.ndarray) -> np.ndarray:
    """Decade index of each c-tau (-1 for 0 or outside the edges)."""
    idx = np.searchsorted(CTAU_EDGES, ctau, side="right") - 1
    return np.where((ctau > 0) & (idx >= 0) & (idx < len(CTAU_EDGES) - 1), idx, -1)


def _bin_names() -> list[str]:
    return [f"[{lo:g}, {hi:g}) mm" for lo, hi in zip(CTAU_EDGES[:-1], CTAU_EDGES[1:], strict=True)]


def ctau_coverage(batch: JetBatch) -> dict:
    """Jets per c-tau decade and class (LLP jets and all jets of signal events)."""
    bins = _ctau_bin(batch.ctau)
    out = {}
    for i, name in enumerate(_bin_names()):
        sel = bins == i
        out[name] = {"all": int(sel.sum()), "LLP": int(np.sum(sel & (batch.label == 0)))}
    return out


def _track_significances(batch: JetBatch, jets: np.ndarray) -> np.ndarray:
    """sip2d_sig of every charged candidate of the selected jets."""
    sig_idx, frac_idx = CHARGED_FEATURES.index("sip2d_sig"), CHARGED_FEATURES.index("pt_frac")
    block = batch.charged[jets]
    return block[..., sig_idx][block[..., frac_idx] > 0].astype(np.float64)


def _stats(s: np.ndarray) -> dict:
    core = s[np.abs(s) < 5]
    q16, q50, q84 = np.quantile(s, [0.16, 0.5, 0.84])
    return {
        "tracks": int(len(s)), "core_mean": float(core.mean()), "core_std": float(core.std()),
        "half_width_68": float((q84 - q16) / 2), "median": float(q50),
        "frac_abs_above_3": float(np.mean(np.abs(s) > 3)),
    }


def d0_significance(batch: JetBatch) -> dict:
    """Per class: statistics of sip2d_sig of all charged candidates (module docstring)."""
    out = {}
    for i, name in enumerate(LABELS):
        s = _track_significances(batch, batch.label == i)
        if len(s):
            out[name] = _stats(s)
    return out


def sv_vs_ctau(batch: JetBatch) -> dict:
    """Per c-tau decade, secondary vertices of LLP jets against the true decay (module doc)."""
    n_sv = batch.globals[:, GLOBAL_FEATURES.index("n_sv")]
    d3d = batch.sv[:, 0, SV_FEATURES.index("d3d")].astype(np.float64)
    true = np.linalg.norm(batch.vertex.astype(np.float64), axis=1)
    bins = _ctau_bin(batch.ctau)
    out = {}
    for i, name in enumerate(_bin_names()):
        sel = (bins == i) & (batch.label == 0)
        with_sv = sel & (n_sv > 0)
        entry = {"llp_jets": int(sel.sum())}
        if sel.any():
            entry.update({
                "frac_with_sv": float(with_sv.sum() / sel.sum()),
                "median_true_decay_distance_mm": float(np.median(true[sel])),
            })
        if with_sv.any():
            entry.update({
                "median_sv_d3d_mm": float(np.median(d3d[with_sv])),
                "median_abs_sv_minus_true_mm": float(np.median(np.abs(d3d - true)[with_sv])),
            })
        out[name] = entry
    return out


def describe(outputs: dict, entries: dict, cfg) -> dict:
    """The summary dict (module docstring) of the combined outputs and per-sample entries."""
    files = {}
    labelled = []
    for kind, (record, batch) in outputs.items():
        files[kind] = {
            "events": int(record.n_events), "jets": len(batch),
            "class_counts": batch.class_counts(), "ctau_coverage": ctau_coverage(batch),
            "weighted_jets_pb": float(batch.weight.sum()),
        }
        if kind != "shifted":
            labelled.append(batch)
    sim = JetBatch.concatenate(labelled) if labelled else JetBatch.empty(0)
    n_sv = sim.globals[:, GLOBAL_FEATURES.index("n_sv")]
    jets = sum(e["jets"] for e in entries.values())
    seconds = sum(e["jets"] / e["jets_per_s"] for e in entries.values() if e["jets_per_s"] > 0)
    cpu = sum(e["jets"] / e["jets_per_cpu_s"] for e in entries.values()
              if e["jets_per_cpu_s"] > 0)
    checks = {
        "d0_significance": d0_significance(sim),
        "sv_vs_ctau": sv_vs_ctau(sim),
        "sv_fraction_per_class": {
            name: float(np.mean(n_sv[sim.label == i] > 0))
            for i, name in enumerate(LABELS) if np.any(sim.label == i)
        },
    }
    if "shifted" in outputs and "background" in outputs:
        checks["d0_significance_sm_jets"] = {
            name: _stats(_track_significances(b, np.ones(len(b), bool)))
            for name, b in (("simulation", outputs["background"][1]),
                            ("shifted_simulation", outputs["shifted"][1])) if len(b)
        }
    return {
        "samples": entries, "outputs": files,
        "jets_per_s_per_worker": jets / seconds if seconds > 0 else 0.0,
        "jets_per_cpu_s": jets / cpu if cpu > 0 else 0.0,
        "checks": checks,
        "model": {
            "tracking": to_dict(cfg.tracking), "calorimeter": to_dict(cfg.calorimeter),
            "vertexing": to_dict(cfg.vertexing), "jets": to_dict(cfg.jets),
            "labels": to_dict(cfg.labels), "domain": to_dict(cfg.domain),
            "simplifications": SIMPLIFICATIONS,
        },
    }


def format_table(summary: dict) -> str:
    """Class counts per output file and c-tau coverage of the LLP jets, as text."""
    lines = [f"{'file':<12}{'jets':>8}" + "".join(f"{n:>8}" for n in (*LABELS, "unlab."))]
    for kind, entry in summary["outputs"].items():
        counts = entry["class_counts"]
        lines.append(f"{kind:<12}{entry['jets']:>8}"
                     + "".join(f"{counts[n]:>8}" for n in (*LABELS, "unlabelled")))
    if "signal" in summary["outputs"]:
        lines.append("LLP jets per c-tau decade: " + ", ".join(
            f"{name}: {v['LLP']}" for name, v in summary["outputs"]["signal"]["ctau_coverage"]
            .items()))
    lines.append(f"{summary['jets_per_s_per_worker']:.0f} jets/s per worker (wall), "
                 f"{summary['jets_per_cpu_s']:.0f} jets per CPU second")
    return "\n".join(lines)
