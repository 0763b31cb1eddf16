"""Reconstructed jets of the LLP samples and their PFNano record (jets, candidates, vertices).

Jets are anti-kT (fastjet) of the particle-flow-like candidates of
:func:`triggerad.generation.tracking.reconstruct` (tracks and neutral candidates), their momenta
scaled by the jet energy scale ``jes`` (1 in simulation; the shifted sample's value otherwise).
Per (jet, track) pair the b-tagging variables of CMS PFNano are computed from the track line
(smeared reference point and direction) and the jet axis: ``btagEtaRel``, ``btagPtRatio``
(momentum perpendicular to the jet axis / |p|), ``btagPParRatio`` (momentum along the axis /
|p|), ``btagSip3dVal``/``Sig`` (3D impact parameter signed by the jet axis and its significance)
and ``btagJetDistVal`` (distance of closest approach between the track and the jet axis through
the primary vertex). A secondary vertex belongs to the selected jet nearest to its momentum
within DeltaR < ``sv_match_dr``.
"""

from __future__ import annotations

from dataclasses import dataclass

import awkward as ak
import numpy as np

from triggerad.generation.detector import cluster, pairs
from triggerad.generation.geometry import (
    FourMomenta,
    delta_r,
    line_distance,
    reference_point,
    relative_momentum,
    signed_impact_parameters,
    unit_vectors,
)
from triggerad.generation.tracking import Candidates
from triggerad.generation.vertexing import Vertices
from triggerad.jetinputs import PFNanoRecord


@dataclass
class JetSelectionConfig:
    """Reconstructed jets: anti-kT ``radius``, pT > ``pt_min`` (GeV, after the energy scale),
    |eta| < ``eta_max``; vertices join the nearest jet within ``sv_match_dr``."""

    radius: float = 0.4
    pt_min: float = 20.0
    eta_max: float = 2.4
    sv_match_dr: float = 0.4


@dataclass
class RecoJets(FourMomenta):
    """Selected jets of a batch (ordered by event, then decreasing pT) and their constituents.

    ``member_jet`` / ``member_cand`` index the jets and the candidates of each (jet, constituent)
    pair.
    """

    event: np.ndarray
    p4: np.ndarray
    member_jet: np.ndarray
    member_cand: np.ndarray


def reco_jets(c: Candidates, cfg: JetSelectionConfig, jes: float = 1.0) -> RecoJets:
    """Cluster the candidates, scale by ``jes``, select, order by pT within each event."""
    mom = c.momenta()
    counts = np.bincount(c.event, minlength=c.n_events)
    inputs = ak.unflatten(
        ak.zip({"px": mom[:, 0], "py": mom[:, 1], "pz": mom[:, 2], "E": mom[:, 3]}), counts
    )
    jets, constituents = cluster(inputs, cfg.radius, 0.5 * cfg.pt_min / jes, constituents=True)
    njet = ak.to_numpy(ak.num(jets, axis=1))
    flat = ak.flatten(jets, axis=1)
    p4 = np.stack([ak.to_numpy(flat[k]).astype(np.float64) for k in ("px", "py", "pz", "E")],
                  axis=-1) * jes
    event = np.repeat(np.arange(c.n_events), njet)
    per_jet = ak.to_numpy(ak.flatten(ak.num(constituents, axis=2), axis=None))
    member_jet = np.repeat(np.arange(len(p4)), per_jet)
    local = ak.to_numpy(ak.flatten(constituents, axis=None)).astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    member_cand = offsets[event[member_jet]] + local
    pt = np.hypot(p4[:, 0], p4[:, 1])
    eta = np.arcsinh(p4[:, 2] / np.maximum(pt, 1e-9))
    keep = (pt > cfg.pt_min) & (np.abs(eta) < cfg.eta_max)
    order = np.flatnonzero(keep)[np.lexsort((-pt[keep], event[keep]))]
    new = np.full(len(p4), -1)
    new[order] = np.arange(len(order))
    kept = new[member_jet] >= 0
    return RecoJets(event[order], p4[order], new[member_jet][kept], member_cand[kept])


def btag_variables(c: Candidates, cand: np.ndarray, axis: np.ndarray) -> dict[str, np.ndarray]:
    """The PFNano ``JetPFCands_btag*`` variables of candidates ``cand`` w.r.t. jet momenta
    ``axis`` (k, 3) (0 for neutral candidates)."""
    eta, phi, pt = c.eta[cand], c.phi[cand], c.pt[cand]
    u = unit_vectors(eta, phi)
    p = u * (pt * np.cosh(eta))[:, None]
    mag = pt * np.cosh(eta)
    p_par, p_rel, eta_rel = relative_momentum(p, axis)
    point = reference_point(c.d0[cand], c.dz[cand], phi)
    ip2d, ip3d = signed_impact_parameters(point, u, axis)
    frac = np.where(np.abs(ip3d) > 0, np.abs(ip2d) / np.where(ip3d != 0, np.abs(ip3d), 1.0), 1.0)
    err3 = np.sqrt((frac * c.d0_err[cand]) ** 2
                   + (1 - frac**2) * (c.dz_err[cand] / np.cosh(eta)) ** 2)
    track = c.charge[cand] != 0
    zero = np.zeros(len(cand))
    return {
        "eta_rel": np.where(track, eta_rel, zero),
        "pt_ratio": np.where(track, p_rel / mag, zero),
        "ppar_ratio": np.where(track, p_par / mag, zero),
        "sip3d_val": np.where(track, ip3d, zero),
        "sip3d_sig": np.where(track & (err3 > 0), ip3d / np.where(err3 > 0, err3, 1.0), zero),
        "jet_dist": np.where(track, line_distance(point, u, np.zeros_like(point), axis), zero),
    }


def _jet_svs(jets: RecoJets, sv: Vertices, n_events: int, dr_max: float):
    """(jet, vertex) pairs: each vertex with the nearest selected jet within ``dr_max``."""
    offsets = np.concatenate([[0], np.cumsum(np.bincount(jets.event, minlength=n_events))])
    oi, pi = pairs(sv.event, offsets)
    dr = delta_r(sv.eta[oi], sv.phi[oi], jets.eta[pi], jets.phi[pi])
    near = dr < dr_max
    oi, pi, dr = oi[near], pi[near], dr[near]
    order = np.lexsort((dr, oi))
    first = np.r_[True, oi[order][1:] != oi[order][:-1]] if len(order) else np.zeros(0, bool)
    return pi[order][first], oi[order][first], dr[order][first]


def _local(global_index: np.ndarray, event: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    return global_index - offsets[event]


def build_record(
    c: Candidates, sv: Vertices, jets: RecoJets, cfg: JetSelectionConfig, events: dict,
    jet_truth: dict,
) -> PFNanoRecord:
    """The PFNano record of a batch.

    Parameters
    ----------
    c, sv, jets : the candidates, vertices and selected jets of the batch
    cfg : JetSelectionConfig
    events : dict
        Per-event fields (``event``, ``run``, ``lumi``, ``weight``, ``pileup``, ``process``,
        ``domain``).
    jet_truth : dict
        Per selected jet: ``ctau``, ``label``, ``gen_pt``, ``gen_dr``, ``vertex_fraction``,
        ``vertex_x/y/z``, ``hadron_flavour``, ``parton_flavour``.
    """
    n = c.n_events
    jet_counts = np.bincount(jets.event, minlength=n)
    jet_offsets = np.concatenate([[0], np.cumsum(jet_counts)])
    # candidates kept: the constituents of the selected jets, in their original order
    used = np.unique(jets.member_cand)
    cand_counts = np.bincount(c.event[used], minlength=n)
    cand_offsets = np.concatenate([[0], np.cumsum(cand_counts)])
    new_index = np.full(len(c.event), -1)
    new_index[used] = np.arange(len(used))
    order = np.lexsort((new_index[jets.member_cand], jets.member_jet))
    mj, mc = jets.member_jet[order], jets.member_cand[order]
    pair_event = jets.event[mj]
    btag = btag_variables(c, mc, jets.p4[mj, :3])
    jet_pfcands = {
        "jet_idx": _local(mj, pair_event, jet_offsets),
        "cand_idx": _local(new_index[mc], pair_event, cand_offsets), **btag,
    }
    pfcands = {k: getattr(c, k)[used] for k in (
        "pt", "eta", "phi", "mass", "charge", "pdg_id", "d0", "d0_err", "dz", "dz_err",
        "puppi_weight", "trk_chi2", "pv_assoc_quality", "trk_quality", "lost_inner_hits",
        "hcal_fraction", "from_pv")}
    sv_counts = np.bincount(sv.event, minlength=n)
    sv_offsets = np.concatenate([[0], np.cumsum(sv_counts)])
    pos = sv.position
    sv_fields = {
        "pt": sv.pt, "eta": sv.eta, "phi": sv.phi, "mass": sv.mass, "x": pos[:, 0],
        "y": pos[:, 1], "z": pos[:, 2], "ndof": sv.ndof, "chi2": sv.chi2, "ntracks": sv.ntracks,
        "dlen": sv.d3d, "dlen_sig": sv.d3d / np.maximum(sv.d3d_err, 1e-12), "dxy": sv.dxy,
        "dxy_sig": sv.dxy / np.maximum(sv.dxy_err, 1e-12),
        "p_angle": np.arccos(np.clip(sv.cos_angle, -1.0, 1.0)),
    }
    js_jet, js_sv, js_dr = _jet_svs(jets, sv, n, cfg.sv_match_dr)
    order = np.lexsort((js_sv, js_jet))
    js_jet, js_sv, js_dr = js_jet[order], js_sv[order], js_dr[order]
    js_event = jets.event[js_jet]
    jet_svs = {
        "jet_idx": _local(js_jet, js_event, jet_offsets),
        "sv_idx": _local(js_sv, js_event, sv_offsets),
        "pt": sv.pt[js_sv], "mass": sv.mass[js_sv], "ntracks": sv.ntracks[js_sv],
        "chi2": sv.chi2[js_sv], "normchi2": sv.chi2[js_sv] / np.maximum(sv.ndof[js_sv], 1),
        "dxy": sv.dxy[js_sv], "dxysig": sv_fields["dxy_sig"][js_sv], "d3d": sv.d3d[js_sv],
        "d3dsig": sv_fields["dlen_sig"][js_sv], "costhetasvpv": sv.cos_angle[js_sv],
        "delta_r": js_dr, "enratio": sv.p4[js_sv, 3] / np.maximum(jets.p4[js_jet, 3], 1e-9),
    }
    jet_fields = {"pt": jets.pt, "eta": jets.eta, "phi": jets.phi,
                  "mass": jets.mass,
                  **jet_truth}
    return PFNanoRecord.build(
        events,
        jet=(jet_counts, jet_fields), pfcands=(cand_counts, pfcands),
        jet_pfcands=(np.bincount(pair_event, minlength=n), jet_pfcands),
        sv=(sv_counts, sv_fields), jet_svs=(np.bincount(js_event, minlength=n), jet_svs),
    )
