"""Physics validation of a generated cocktail, recomputed by ``trigger-ad generate`` on every run.

From the triggered events of each process: the Z mass peak and width, the W transverse-mass
edge, the isolation, hadron-count and MET distributions per process, the QCD lepton sources, the
effective number of events, and the SM fractions with cross-sections and efficiencies beside the
published ones (Cerri et al. 2019). Written to ``summary.json`` (``validation``) and, as
markdown, to ``validation.md``; ``docs/generation.md`` shows the table of the default sample.
"""

from __future__ import annotations

import numpy as np

from triggerad.events import EventBatch
from triggerad.generation.config import PUBLISHED_PROCESSES, GenerateConfig


def weighted_quantile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    """The ``q`` quantile of ``values`` with ``weights`` (nan if empty)."""
    if len(values) == 0 or np.sum(weights) <= 0:
        return float("nan")
    order = np.argsort(values, kind="stable")
    cum = np.cumsum(weights[order])
    return float(values[order][np.searchsorted(cum, q * cum[-1])])


def n_eff(weights: np.ndarray) -> float:
    """Effective number of events (sum w)^2 / sum w^2 (0 for no events)."""
    w2 = float(np.sum(np.square(weights)))
    return float(np.sum(weights)) ** 2 / w2 if w2 > 0 else 0.0


def leading_lepton(batch: EventBatch) -> dict[str, np.ndarray]:
    """pT, phi and total relative isolation of the highest-pT electron or muon (pT 0 if none)."""
    pt = np.concatenate([batch.electrons[..., 0], batch.muons[..., 0]], axis=1).astype(np.float64)
    phi = np.concatenate([batch.electrons[..., 2], batch.muons[..., 2]], axis=1)
    iso = np.concatenate([batch.ele_iso, batch.mu_iso], axis=1).sum(axis=-1)
    rows, lead = np.arange(len(batch)), np.argmax(pt, axis=1)
    return {"pt": pt[rows, lead], "phi": phi[rows, lead], "iso": iso[rows, lead]}


def transverse_mass(batch: EventBatch) -> np.ndarray:
    """MT of the leading lepton and MET."""
    lep = leading_lepton(batch)
    met_pt, met_phi = batch.met[:, 0], batch.met[:, 2]
    return np.sqrt(np.maximum(2 * lep["pt"] * met_pt * (1 - np.cos(lep["phi"] - met_phi)), 0.0))


def dilepton_mass(batch: EventBatch) -> np.ndarray:
    """Mass of the two leading same-flavour opposite-charge leptons (electrons first; nan if none)."""
    mass = np.full(len(batch), np.nan)
    for objs, charge in ((batch.muons, batch.mu_charge), (batch.electrons, batch.ele_charge)):
        ok = (objs[:, 1, 0] > 0) & (charge[:, 0] * charge[:, 1] < 0)
        pt1, eta1, phi1 = (objs[:, 0, i].astype(np.float64) for i in range(3))
        pt2, eta2, phi2 = (objs[:, 1, i].astype(np.float64) for i in range(3))
        m2 = 2 * pt1 * pt2 * (np.cosh(eta1 - eta2) - np.cos(phi1 - phi2))
        mass = np.where(ok, np.sqrt(np.maximum(m2, 0.0)), mass)
    return mass


def _smoothed_histogram(values: np.ndarray, weights: np.ndarray, lo: float, hi: float,
                        width: float) -> tuple[np.ndarray, np.ndarray]:
    """Bin centres and a 3-bin running mean of the weighted histogram."""
    edges = np.arange(lo, hi + width / 2, width)
    counts, _ = np.histogram(values, edges, weights=weights)
    return 0.5 * (edges[1:] + edges[:-1]), np.convolve(counts, np.ones(3) / 3, mode="same")


def peak_and_fwhm(values: np.ndarray, weights: np.ndarray, lo: float, hi: float,
                  width: float = 1.0) -> tuple[float, float]:
    """Position of the maximum and full width at half maximum of a smoothed histogram."""
    centres, h = _smoothed_histogram(values, weights, lo, hi, width)
    if h.max(initial=0) <= 0:
        return float("nan"), float("nan")
    top = int(np.argmax(h))
    above = np.flatnonzero(h >= h[top] / 2)
    return float(centres[top]), float((above.max() - above.min() + 1) * width)


def falling_edge(values: np.ndarray, weights: np.ndarray, lo: float, hi: float,
                 width: float = 2.0) -> float:
    """Where a smoothed histogram falls below half its maximum, beyond the maximum (interpolated)."""
    centres, h = _smoothed_histogram(values, weights, lo, hi, width)
    if h.max(initial=0) <= 0:
        return float("nan")
    top = int(np.argmax(h))
    below = np.flatnonzero(h[top:] < h[top] / 2)
    if len(below) == 0:
        return float("nan")
    i = top + int(below[0])
    frac = (h[i - 1] - h[top] / 2) / (h[i - 1] - h[i])
    return float(centres[i - 1] + frac * width)


def process_validation(batch: EventBatch, source: np.ndarray) -> dict:
    """Per-process numbers: n_eff, leading-lepton isolation, hadron counts, MET, lepton sources.

    Means, fractions and medians are weighted with the event weights. ``lone_lepton_no_jet``
    counts events whose only object is one lepton (no jet, HT = 0).
    """
    w = batch.weight
    lep = leading_lepton(batch)
    n_lep = (batch.electrons[..., 0] > 0).sum(axis=1) + (batch.muons[..., 0] > 0).sum(axis=1)
    n_jet = (batch.jets[..., 0] > 0).sum(axis=1)
    total = float(np.sum(w))

    def mean(x):
        return float(np.sum(w * x) / total) if total > 0 else float("nan")

    labels = [s for s in dict.fromkeys(source.tolist()) if s]
    return {
        "selected": len(batch), "n_eff": n_eff(w),
        "lepton_iso_mean": mean(lep["iso"]),
        "lepton_iso_zero_fraction": mean(lep["iso"] == 0),
        "n_ch_had_mean": mean(batch.n_ch_had), "n_neu_had_mean": mean(batch.n_neu_had),
        "met_median": weighted_quantile(batch.met[:, 0].astype(np.float64), w, 0.5),
        "lone_lepton_no_jet": int(np.sum((n_lep == 1) & (n_jet == 0))),
        "lepton_sources": {s: float(np.sum(w[source == s]) / total) for s in sorted(labels)},
    }


def group_comparison(processes: dict[str, dict], cfg: GenerateConfig, sm_total: float) -> dict:
    """Per Cerri et al. group: fraction, cross-section and efficiency beside the published ones.

    A group's cross-section is that of its inclusive process, the largest in the group (the
    heavy-flavour QCD samples are subsets of the inclusive QCD one); its efficiency is the
    group's selected cross-section divided by it.
    """
    out = {}
    for group, pub in PUBLISHED_PROCESSES.items():
        names = [n for n, p in cfg.processes.items() if p.kind == "sm" and p.group == group]
        sigma = max((processes[n]["sigma_pb"] for n in names), default=0.0)
        selected = sum(processes[n]["selected_sigma_pb"] for n in names)
        fraction = selected / sm_total if sm_total > 0 else 0.0
        out[group] = {
            "fraction": fraction, "published_fraction": pub["fraction"],
            "ratio": fraction / pub["fraction"],
            "sigma_nb": sigma / 1e3, "efficiency": selected / sigma if sigma > 0 else 0.0,
            "published_sigma_nb": pub["sigma_nb"], "published_acceptance": pub["acceptance"],
            "published_trigger_efficiency": pub["trigger_efficiency"],
            "published_efficiency": pub["acceptance"] * pub["trigger_efficiency"],
        }
    return out


def validate(
    batches: dict[str, EventBatch], sources: dict[str, np.ndarray], processes: dict[str, dict],
    cfg: GenerateConfig,
) -> dict:
    """The whole validation block of ``summary.json``.

    Parameters
    ----------
    batches, sources : dict
        Per process: the triggered events with their final weights, and their lepton sources.
    processes : dict
        The per-process summary entries (``sigma_pb``, ``selected_sigma_pb``).
    cfg : GenerateConfig
        The generation config (groups and kinds of the processes).
    """
    def group_batch(group: str) -> EventBatch | None:
        names = [n for n, p in cfg.processes.items() if p.kind == "sm" and p.group == group]
        return EventBatch.concatenate([batches[n] for n in names]) if names else None

    z, w = group_batch("Z"), group_batch("W")
    z_peak, z_fwhm = (
        peak_and_fwhm(dilepton_mass(z), z.weight, 60.0, 120.0) if z is not None and len(z)
        else (float("nan"), float("nan"))
    )
    w_edge = falling_edge(transverse_mass(w), w.weight, 0.0, 150.0) if w is not None and len(w) \
        else float("nan")
    qcd = [n for n, p in cfg.processes.items() if p.kind == "sm" and p.group == "QCD"]
    qcd_w = np.concatenate([batches[n].weight for n in qcd]) if qcd else np.zeros(0)
    qcd_s = np.concatenate([sources[n] for n in qcd]) if qcd else np.zeros(0, dtype=object)
    qcd_total = float(qcd_w.sum())
    sm_total = sum(p["selected_sigma_pb"] for n, p in processes.items()
                   if cfg.processes[n].kind == "sm")
    return {
        "z_mass_peak_gev": z_peak, "z_mass_fwhm_gev": z_fwhm, "w_mt_edge_gev": w_edge,
        "processes": {n: process_validation(batches[n], sources[n]) for n in batches},
        "qcd_lepton_sources": {
            s: float(qcd_w[qcd_s == s].sum() / qcd_total)
            for s in sorted(set(qcd_s.tolist())) if qcd_total > 0
        },
        "qcd_processes": {
            n: processes[n]["selected_sigma_pb"] / qcd_total for n in qcd if qcd_total > 0
        },
        "groups": group_comparison(processes, cfg, sm_total),
    }


def format_validation(val: dict) -> str:
    """The validation block as markdown tables (printed and written to ``validation.md``)."""
    lines = [
        f"Z mass peak {val['z_mass_peak_gev']:.1f} GeV, FWHM {val['z_mass_fwhm_gev']:.1f} GeV; "
        f"W MT edge (half maximum) {val['w_mt_edge_gev']:.1f} GeV",
        "",
        "| process | selected | n_eff | lepton iso mean | iso = 0 | nChHad mean | nNeuHad mean "
        "| MET median [GeV] | lone lepton, no jet |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for name, p in val["processes"].items():
        lines.append(
            f"| {name} | {p['selected']} | {p['n_eff']:.0f} | {p['lepton_iso_mean']:.3f} "
            f"| {p['lepton_iso_zero_fraction'] * 100:.1f} % | {p['n_ch_had_mean']:.1f} "
            f"| {p['n_neu_had_mean']:.1f} | {p['met_median']:.1f} | {p['lone_lepton_no_jet']} |"
        )
    sources = ", ".join(f"{s or 'none'} {f * 100:.1f} %" for s, f in
                        val["qcd_lepton_sources"].items())
    shares = ", ".join(f"{n} {f * 100:.1f} %" for n, f in val["qcd_processes"].items())
    lines += ["", f"QCD lepton sources (weighted): {sources}; by sample: {shares}", "",
              "| group | fraction | published | ratio | sigma [nb] | efficiency "
              "| published sigma [nb] x acc. x trig. eff. |",
              "|---|--:|--:|--:|--:|--:|--:|"]
    for group, g in val["groups"].items():
        lines.append(
            f"| {group} | {g['fraction'] * 100:.1f} % | {g['published_fraction'] * 100:.1f} % "
            f"| {g['ratio']:.2f} | {g['sigma_nb']:.4g} | {g['efficiency']:.3g} "
            f"| {g['published_sigma_nb']:.4g} x {g['published_acceptance'] * 100:.3g} % x "
            f"{g['published_trigger_efficiency'] * 100:.3g} % = {g['published_efficiency']:.3g} |"
        )
    return "\n".join(lines)
