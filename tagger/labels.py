"""Truth labels of jets, in the scheme of the CMS LLP tagger (arXiv:1912.12238).

1. **Vertices**: vertex 0 is the primary interaction; vertex k >= 1 is the decay of the k-th
   decaying long-lived particle (LLP) of the event. An LLP *decays* where its daughters are
   produced away from its own production point (copies of an LLP in the event record, and the
   formation of an R-hadron from a gluino, happen at the same point and are not decays).
2. **Origin of every particle**: the LLP decay it descends from, found by walking the *whole*
   mother list: both mothers of ordinary particles, and every parton of the string
   (``mother1..mother2``) for hadrons from string fragmentation or R-hadron formation
   (|status| 81-86, 101-106). Pythia's ``isAncestor`` follows only one end of a string, so it
   misses hadrons made from the other end of a string that contains LLP decay products.
3. **Generator jets**: anti-kT jets of the visible final-state particles of the hard event; for
   each, the pT fraction ``f_k`` carried by the particles of each vertex k; the jet is associated
   with ``argmax_k f_k``. Associated with an LLP decay -> label **LLP**; otherwise **b** (a b
   hadron within DeltaR < ``match_dr``), **c** (a c hadron), else from the hardest parton about to
   hadronise (|status| 71-79) within ``match_dr``: **g** for a gluon, **uds** for u/d/s
   (c/b partons give c/b); no parton -> unlabelled (-1).
4. **Reconstructed jets** take the label of the nearest generator jet within ``match_dr``
   (unmatched: -1); the matching details (generator pT, DeltaR, f of the associated vertex, its
   true position, hadron and parton flavour) are stored with the jet.
"""

from __future__ import annotations

from dataclasses import dataclass

import awkward as ak
import numpy as np

from triggerad.generation.detector import INVISIBLE, cluster, hadron_flavour, pairs
from triggerad.generation.geometry import delta_r
from triggerad.generation.pythia import Particles
from triggerad.jets import LABELS, UNLABELLED

LLP, B, C, UDS, G = (LABELS.index(n) for n in ("LLP", "b", "c", "uds", "g"))


@dataclass
class LabelConfig:
    """Generator jets and truth matching.

    Attributes
    ----------
    gen_pt_min : float
        Generator jets with pT below this (GeV) are not kept (they can still not be matched).
    match_dr : float
        DeltaR for hadron / parton matching to generator jets and for reco-gen jet matching.
    hadron_pt_min : float
        b/c hadrons softer than this (GeV) do not flavour a jet.
    parton_pt_min : float
        Partons softer than this (GeV) do not flavour a jet.
    """

    gen_pt_min: float = 8.0
    match_dr: float = 0.4
    hadron_pt_min: float = 5.0
    parton_pt_min: float = 5.0


def is_llp(pdg: np.ndarray, ids: list[int], rhadrons: bool) -> np.ndarray:
    """Whether each PDG id is one of the LLP ``ids`` (sign ignored) or, with ``rhadrons``, an
    R-hadron (gluinoball 1000993, gluino mesons 1009xxx, gluino baryons 109xxxx)."""
    a = np.abs(pdg)
    out = np.isin(a, ids)
    if rhadrons:
        out |= (a == 1000993) | ((a // 1000) == 1009) | ((a // 10000) == 109)
    return out


def _mothers(p: Particles) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Global mother ranges [lo, hi] of every particle (-1 none) and whether it is a range."""
    start = p.offsets[p.event_index]
    m1, m2 = p.mother1.astype(np.int64), p.mother2.astype(np.int64)
    status = np.abs(p.status)
    ranged = ((status >= 81) & (status <= 86)) | ((status >= 101) & (status <= 106))
    ranged &= (m1 > 0) & (m2 > m1)
    lo = np.where(m1 > 0, start + m1, -1)
    hi = np.where(m2 > 0, start + m2, -1)
    return lo, hi, ranged


def decaying_llps(p: Particles, llp: np.ndarray) -> np.ndarray:
    """Indices of the LLP instances whose daughters are produced away from them."""
    d1 = p.daughter1.astype(np.int64)
    cand = np.flatnonzero(llp & (d1 > 0))
    dau = p.offsets[p.event_index[cand]] + d1[cand]
    moved = np.hypot(np.hypot(p.vx[dau] - p.vx[cand], p.vy[dau] - p.vy[cand]),
                     p.vz[dau] - p.vz[cand]) > 0
    return cand[moved]


def origins(p: Particles, llp: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vertex of origin of every particle (0 primary, k >= 1 the k-th LLP decay of its event).

    Parameters
    ----------
    p : Particles
        The full event record with history and vertices (``generate(..., vertices=True,
        history=True)``), before any selection.
    llp : bool (m,)
        Which particles are LLPs (:func:`is_llp`).

    Returns
    -------
    origin : int (m,)
    decays : int (d,)
        Indices of the decaying LLPs (vertex k of event e is the k-th of them in e).
    decay_vertex : float (d, 3)
        Their decay points (mm): the production point of their first daughter.
    """
    decays = decaying_llps(p, llp)
    ev = p.event_index[decays]
    rank = np.arange(len(decays)) - np.searchsorted(ev, ev, side="left") + 1
    dau = p.offsets[ev] + p.daughter1[decays].astype(np.int64)
    decay_vertex = np.stack([p.vx[dau], p.vy[dau], p.vz[dau]], axis=-1)
    lo, hi, ranged = _mothers(p)
    seed = np.zeros(len(p.id), dtype=np.int64)
    seed[decays] = rank
    return _descendants(seed, lo, hi, ranged), decays, decay_vertex


def _descendants(seed: np.ndarray, lo, hi, ranged) -> np.ndarray:
    """For every particle, the largest ``seed`` value among its ancestors (0 if none), walking
    both mothers, or every parton of the range for string hadrons. Iterates to convergence
    (as many rounds as the deepest ancestry chain)."""
    value = np.zeros(len(seed), dtype=np.int64)
    has_lo, has_hi = lo >= 0, hi >= 0
    safe_lo, safe_hi = np.maximum(lo, 0), np.maximum(hi, 0)
    # reduceat over [lo, hi + 1) needs increasing pairs; odd slots are ignored
    bounds = np.stack([safe_lo, np.maximum(safe_hi + 1, safe_lo + 1)], axis=-1).ravel()
    r_index = np.flatnonzero(ranged)
    while True:
        source = np.append(np.maximum(seed, value), 0)
        new = np.maximum(np.where(has_lo, source[safe_lo], 0), np.where(has_hi, source[safe_hi], 0))
        if len(r_index):
            spans = np.maximum.reduceat(source, bounds.reshape(-1, 2)[r_index].ravel())[::2]
            new[r_index] = spans
        new = np.maximum(new, value)
        if np.array_equal(new, value):
            return value
        value = new


@dataclass
class GenJets:
    """Generator jets of a batch: per jet event, pT, eta, phi, label, associated vertex, its
    pT fraction and true position, hadron and parton flavour."""

    event: np.ndarray
    pt: np.ndarray
    eta: np.ndarray
    phi: np.ndarray
    label: np.ndarray
    vertex_index: np.ndarray
    vertex_fraction: np.ndarray
    vertex: np.ndarray
    hadron_flavour: np.ndarray
    parton_flavour: np.ndarray


def gen_jets(
    p: Particles, origin: np.ndarray, decay_vertex: np.ndarray, decays: np.ndarray,
    cfg: LabelConfig, radius: float,
) -> GenJets:
    """Cluster and label the generator jets of the full event record ``p`` (module docstring)."""
    n = p.n_events
    visible = (p.status > 0) & ~np.isin(np.abs(p.id), INVISIBLE)
    final = np.flatnonzero(visible)
    vis = p.select(visible)
    counts = np.diff(vis.offsets)
    inputs = ak.unflatten(ak.zip({"px": vis.px, "py": vis.py, "pz": vis.pz, "E": vis.e}), counts)
    jets, constituents = cluster(inputs, radius, cfg.gen_pt_min, constituents=True)
    njet = ak.to_numpy(ak.num(jets, axis=1))
    flat = ak.flatten(jets, axis=1)
    px, py, pz = (ak.to_numpy(flat[c]).astype(np.float64) for c in ("px", "py", "pz"))
    event = np.repeat(np.arange(n), njet)
    pt = np.hypot(px, py)
    eta = np.arcsinh(pz / np.maximum(pt, 1e-9))
    phi = np.arctan2(py, px)
    # constituents: (event, jet, k) -> global particle index
    per_jet = ak.num(constituents, axis=2)
    local = ak.to_numpy(ak.flatten(constituents, axis=None)).astype(np.int64)
    jet_of = np.repeat(np.arange(len(pt)), ak.to_numpy(ak.flatten(per_jet, axis=None)))
    part = final[vis.offsets[event[jet_of]] + local]
    n_vertex = int(origin.max(initial=0)) + 1
    frac = np.bincount(jet_of * n_vertex + origin[part], weights=p.pt[part],
                       minlength=len(pt) * n_vertex).reshape(len(pt), n_vertex)
    frac /= np.maximum(frac.sum(axis=1, keepdims=True), 1e-12)
    vertex_index = np.argmax(frac, axis=1) if len(pt) else np.zeros(0, np.int64)
    vertex = np.zeros((len(pt), 3))
    displaced = np.flatnonzero(vertex_index > 0)
    if len(displaced):
        first = np.searchsorted(p.event_index[decays], event[displaced], side="left")
        vertex[displaced] = decay_vertex[first + vertex_index[displaced] - 1]
    hflav, pflav = _flavours(p, event, eta, phi, cfg)
    label = np.select(
        [vertex_index > 0, hflav == 5, hflav == 4, np.abs(pflav) == 21,
         np.isin(np.abs(pflav), (1, 2, 3)), np.abs(pflav) == 4, np.abs(pflav) == 5],
        [LLP, B, C, G, UDS, C, B], UNLABELLED,
    )
    return GenJets(event, pt, eta, phi, label, vertex_index,
                   frac[np.arange(len(pt)), vertex_index], vertex, hflav, pflav)


def _nearest(event, eta, phi, cand: np.ndarray, p: Particles, dr_max: float):
    """For each jet, the highest-pT particle among ``cand`` within ``dr_max`` (-1 if none)."""
    sub = p.select(cand)
    index = np.flatnonzero(cand)
    oi, pi = pairs(event, sub.offsets)
    near = delta_r(eta[oi], phi[oi], sub.eta[pi], sub.phi[pi]) < dr_max
    oi, pi = oi[near], pi[near]
    order = np.lexsort((-sub.pt[pi], oi))
    best = np.full(len(event), -1)
    first = np.r_[True, oi[order][1:] != oi[order][:-1]] if len(order) else np.zeros(0, bool)
    best[oi[order][first]] = index[pi[order][first]]
    return best


def _flavours(p: Particles, event, eta, phi, cfg: LabelConfig):
    """Hadron flavour (5, 4, 0) and parton flavour (PDG id, 0) of each jet."""
    hf = hadron_flavour(p.id)
    has_b = _nearest(event, eta, phi, (hf == 2) & (p.pt > cfg.hadron_pt_min), p, cfg.match_dr)
    has_c = _nearest(event, eta, phi, (hf == 1) & (p.pt > cfg.hadron_pt_min), p, cfg.match_dr)
    status = np.abs(p.status)
    parton = (
        (status >= 71) & (status <= 79) & (p.pt > cfg.parton_pt_min)
        & ((np.abs(p.id) <= 5) | (p.id == 21))
    )
    best = _nearest(event, eta, phi, parton, p, cfg.match_dr)
    hflav = np.where(has_b >= 0, 5, np.where(has_c >= 0, 4, 0)).astype(np.int8)
    pflav = np.where(best >= 0, p.id[np.maximum(best, 0)], 0).astype(np.int16)
    return hflav, pflav


def match(
    event: np.ndarray, eta: np.ndarray, phi: np.ndarray, gen: GenJets, n_events: int,
    dr_max: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Index of the nearest generator jet within ``dr_max`` of each reco jet (-1) and its DeltaR
    (-1 unmatched)."""
    order = np.argsort(gen.event, kind="stable")
    offsets = np.concatenate([[0], np.cumsum(np.bincount(gen.event, minlength=n_events))])
    oi, pi = pairs(event, offsets)
    g = order[pi]
    dr = delta_r(eta[oi], phi[oi], gen.eta[g], gen.phi[g])
    near = dr < dr_max
    oi, g, dr = oi[near], g[near], dr[near]
    sort = np.lexsort((dr, oi))
    first = np.r_[True, oi[sort][1:] != oi[sort][:-1]] if len(sort) else np.zeros(0, bool)
    index = np.full(len(event), -1)
    best_dr = np.full(len(event), -1.0)
    index[oi[sort][first]] = g[sort][first]
    best_dr[oi[sort][first]] = dr[sort][first]
    return index, best_dr
