"""The parametric trigger-level detector: final-state particles -> smeared trigger objects.

Everything is vectorised over all particles of a batch of events: per-object loops are replaced by
"pair" index arrays (every object with every particle of its event) and ``np.bincount`` sums.
Parameters are in :class:`~triggerad.generation.config.DetectorConfig` (documented in
``docs/generation.md``).
"""

from __future__ import annotations

import contextlib
import functools
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from triggerad.generation.config import DetectorConfig, LeptonConfig
from triggerad.generation.pythia import Particles

if TYPE_CHECKING:  # awkward is imported where it is used: it is slow to import, and readers
    import awkward as ak  # (PFNano, via jetinputs) import this module for its numpy helpers

#: Neutrinos and the lightest neutralino leave no trace.
INVISIBLE = (12, 14, 16, 1000022)


def delta_phi(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a - b wrapped into [-pi, pi)."""
    return (a - b + np.pi) % (2 * np.pi) - np.pi


def pairs(obj_event: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (object, particle) of every object with every particle of its event.

    Parameters
    ----------
    obj_event : (k,) int
        Event of each object.
    offsets : (n + 1,) int
        Particle offsets of the events.

    Returns
    -------
    obj_idx, part_idx : (p,) int arrays
    """
    lens = np.diff(offsets)[obj_event]
    obj_idx = np.repeat(np.arange(len(obj_event)), lens)
    first = np.cumsum(lens) - lens
    part_idx = np.repeat(offsets[obj_event] - first, lens) + np.arange(lens.sum())
    return obj_idx, part_idx


def pad(event: np.ndarray, n_events: int, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Turn flat per-object arrays (sorted by ``event``) into zero-padded (n, m, ...) arrays."""
    counts = np.bincount(event, minlength=n_events)
    m = max(1, int(counts.max(initial=0)))
    rank = np.arange(len(event)) - (np.cumsum(counts) - counts)[event]
    out = {}
    for name, arr in arrays.items():
        full = np.zeros((n_events, m, *arr.shape[1:]), dtype=arr.dtype)
        full[event, rank] = arr
        out[name] = full
    return out


def iso_category(p: Particles) -> np.ndarray:
    """0 charged, 1 photon, 2 neutral hadron (the Cerri isolation components)."""
    return np.where(p.charge != 0, 0, np.where(p.id == 22, 1, 2))


def cone_sums(
    p: Particles, event: np.ndarray, eta: np.ndarray, phi: np.ndarray, cone: float,
    exclude: np.ndarray | None = None,
) -> np.ndarray:
    """pT sums of the particles ``p`` within DR < ``cone`` of each axis, split by category.

    Parameters
    ----------
    p : Particles
        The particles entering the sums (already filtered).
    event, eta, phi : (k,) arrays
        Event and direction of each axis.
    cone : float
        Cone radius.
    exclude : (k,) int, optional
        Index (into ``p``) of a particle to leave out of each axis' sum (the lepton itself).

    Returns
    -------
    (k, 3) float64 : [charged, photon, neutral hadron] sums in GeV.
    """
    k = len(event)
    oi, pi = pairs(event, p.offsets)
    p_eta, p_phi, p_pt, cat = p.eta, p.phi, p.pt, iso_category(p)
    dr2 = (p_eta[pi] - eta[oi]) ** 2 + delta_phi(p_phi[pi], phi[oi]) ** 2
    inside = dr2 < cone**2
    if exclude is not None:
        inside &= pi != exclude[oi]
    return np.bincount(
        oi * 3 + cat[pi], weights=np.where(inside, p_pt[pi], 0.0), minlength=3 * k
    ).reshape(k, 3)


def relative_resolution(cfg: LeptonConfig, pt: np.ndarray, eta: np.ndarray) -> np.ndarray:
    """sigma(pT)/pT of a lepton (stochastic, constant and linear terms in quadrature)."""
    res = np.sqrt(
        cfg.res_stochastic**2 / np.maximum(pt, 1e-3) + cfg.res_constant**2
        + (cfg.res_linear * pt) ** 2
    )
    return res * np.where(np.abs(eta) > cfg.forward_eta, cfg.forward_factor, 1.0)


def efficiency(cfg: LeptonConfig, pt: np.ndarray) -> np.ndarray:
    """Reconstruction efficiency: a sigmoid turn-on to ``eff_plateau``."""
    return cfg.eff_plateau / (1.0 + np.exp(-(pt - cfg.eff_pt50) / cfg.eff_width))


@dataclass
class Reco:
    """Reconstructed objects of a batch: padded collections and per-event quantities.

    ``electrons``/``muons`` have keys pt, eta, phi, charge, iso (n, m, 3) and mother (index of
    the lepton's decay mother in the detector's input particles, -1 for empty slots, fakes and
    mothers not tracked); ``jets`` pt, eta, phi, mass, btag and raw_pt (the unsmeared clustered
    pT). ``unclustered`` (n, 2) is the measured (px, py) sum of the visible deposits in neither a
    reconstructed lepton nor a reconstructed jet. ``iso_particles`` are the particles entering
    isolation sums (kept for fakes).
    """

    electrons: dict[str, np.ndarray]
    muons: dict[str, np.ndarray]
    jets: dict[str, np.ndarray]
    unclustered: np.ndarray
    met_pt: np.ndarray
    met_phi: np.ndarray
    n_ch_had: np.ndarray
    n_neu_had: np.ndarray
    iso_particles: Particles

    def update_met(self) -> None:
        """MET = minus the vector sum of the reconstructed leptons, jets and unclustered deposits."""
        mex, mey = -self.unclustered[:, 0].copy(), -self.unclustered[:, 1].copy()
        for coll in (self.electrons, self.muons, self.jets):
            mex -= (coll["pt"] * np.cos(coll["phi"])).sum(axis=1)
            mey -= (coll["pt"] * np.sin(coll["phi"])).sum(axis=1)
        self.met_pt, self.met_phi = np.hypot(mex, mey), np.arctan2(mey, mex)


class Detector:
    """Apply the parametric detector to :class:`Particles` with a seeded numpy generator."""

    def __init__(self, cfg: DetectorConfig, rng: np.random.Generator):
        self.cfg = cfg
        self.rng = rng

    def __call__(self, particles: Particles) -> Reco:
        """Reconstruct a batch of events.

        Electrons and muons are found among the visible particles; every other visible particle
        is a calorimeter deposit (a muon only its minimum-ionising ``muon_mip_deposit``), clustered
        into jets; what is in no reconstructed object is the unclustered sum, and MET is minus
        the vector sum of all of them, each with its own resolution.
        """
        cfg = self.cfg
        n = particles.n_events
        abs_id = np.abs(particles.id)
        visible = (
            (particles.status > 0) & ~np.isin(abs_id, INVISIBLE)
            & (np.abs(particles.eta) < cfg.calo_eta_max)
        )
        vis_global = np.flatnonzero(visible)
        vis = particles.select(visible)
        icfg = cfg.isolation
        in_iso = vis.pt > np.where(vis.charge != 0, icfg.charged_pt_min, icfg.neutral_pt_min)
        iso_index = np.flatnonzero(in_iso)
        iso_parts = vis.select(in_iso)
        leptons = {
            pdg: self._leptons(iso_parts, pdg, lcfg)
            for pdg, lcfg in ((11, cfg.electron), (13, cfg.muon))
        }
        used = np.zeros(len(vis.id), dtype=bool)
        for lep in leptons.values():
            vis_idx = iso_index[lep.pop("index")]
            used[vis_idx] = True
            lep["mother"] = decay_mother(particles, vis_global[vis_idx])
        calo = calorimeter_deposits(vis.select(~used), cfg.muon_mip_deposit)
        keep = (calo.pt > cfg.jet.constituent_pt_min) & (
            np.abs(calo.eta) < cfg.jet.eta_max + cfg.jet.radius
        )
        jets, clustered = self._jets(calo.select(keep), particles, n)
        unclustered = self._unclustered(calo, clustered)
        n_ch, n_neu = self._hadron_counts(vis)
        electrons, muons = (
            _pad_leptons(leptons[pdg].pop("event"), n, leptons[pdg]) for pdg in (11, 13)
        )
        reco = Reco(
            electrons=electrons, muons=muons, jets=jets, unclustered=unclustered,
            met_pt=np.zeros(n), met_phi=np.zeros(n), n_ch_had=n_ch, n_neu_had=n_neu,
            iso_particles=iso_parts,
        )
        reco.update_met()
        return reco

    def _leptons(self, p: Particles, pdg: int, cfg: LeptonConfig) -> dict[str, np.ndarray]:
        """Efficiency, smearing and isolation of the final-state electrons or muons."""
        idx = np.flatnonzero(
            (np.abs(p.id) == pdg) & (p.pt > 0.8 * cfg.pt_min) & (np.abs(p.eta) < cfg.eta_max)
        )
        true_pt, eta, phi = p.pt[idx], p.eta[idx], p.phi[idx]
        found = self.rng.random(len(idx)) < efficiency(cfg, true_pt)
        pt = true_pt * (1.0 + relative_resolution(cfg, true_pt, eta) * self.rng.normal(size=len(idx)))
        event = p.event_index[idx]
        iso = cone_sums(p, event, eta, phi, self.cfg.isolation.cone, exclude=idx)
        rel_iso = iso / np.maximum(pt, 1e-3)[:, None]
        ok = found & (pt > cfg.pt_min) & (rel_iso.sum(axis=1) < self.cfg.isolation.object_max)
        return {
            "event": event[ok], "pt": pt[ok], "eta": eta[ok], "phi": phi[ok],
            "charge": -np.sign(p.id[idx][ok]).astype(np.int8), "iso": rel_iso[ok],
            "index": idx[ok],
        }

    def _jets(
        self, p: Particles, truth: Particles, n: int
    ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Anti-kT jets (fastjet) of the given deposits, smeared, b-tagged, padded.

        Returns the padded jets and the (n, 3) sums of the raw px, py and pT of the reconstructed
        jets (what the unclustered sum must not count again).
        """
        import awkward as ak

        jcfg = self.cfg.jet
        counts = np.diff(p.offsets)
        inputs = ak.unflatten(ak.zip({"px": p.px, "py": p.py, "pz": p.pz, "E": p.e}), counts)
        jets = cluster(inputs, jcfg.radius, 0.5 * jcfg.pt_min)
        njet = ak.to_numpy(ak.num(jets, axis=1))
        flat = ak.flatten(jets, axis=1)
        px, py, pz, e = (ak.to_numpy(flat[c]).astype(np.float64) for c in ("px", "py", "pz", "E"))
        event = np.repeat(np.arange(n), njet)
        raw_pt = np.hypot(px, py)
        eta = np.arcsinh(pz / np.maximum(raw_pt, 1e-9))
        phi = np.arctan2(py, px)
        mass = np.sqrt(np.maximum(e**2 - px**2 - py**2 - pz**2, 0.0))
        res = np.hypot(jcfg.res_stochastic / np.sqrt(np.maximum(raw_pt, 1e-3)), jcfg.res_constant)
        scale = np.maximum(1.0 + res * self.rng.normal(size=len(raw_pt)), 0.0)
        pt, mass = raw_pt * scale, mass * scale
        ok = (pt > jcfg.pt_min) & (np.abs(eta) < jcfg.eta_max)
        btag = self._btag(truth, event[ok], eta[ok], phi[ok])
        clustered = np.stack([
            np.bincount(event[ok], weights=w[ok], minlength=n) for w in (px, py, raw_pt)
        ], axis=1)
        return pad(event[ok], n, {
            "pt": pt[ok], "eta": eta[ok], "phi": phi[ok], "mass": mass[ok], "btag": btag,
            "raw_pt": raw_pt[ok],
        }), clustered

    def _btag(
        self, truth: Particles, event: np.ndarray, eta: np.ndarray, phi: np.ndarray
    ) -> np.ndarray:
        """b-tag decisions: flavour from DR matching to b/c hadrons, then tag probabilities."""
        bcfg = self.cfg.btag
        flavour = hadron_flavour(truth.id)
        hf = truth.select((flavour > 0) & (truth.pt > bcfg.hadron_pt_min))
        oi, pi = pairs(event, hf.offsets)
        dr2 = (hf.eta[pi] - eta[oi]) ** 2 + delta_phi(hf.phi[pi], phi[oi]) ** 2
        matched = np.where(dr2 < bcfg.match_dr**2, hadron_flavour(hf.id)[pi], 0)
        jet_flavour = np.zeros(len(event), dtype=np.int64)
        np.maximum.at(jet_flavour, oi, matched)
        prob = np.choose(jet_flavour, [bcfg.eff_light, bcfg.eff_c, bcfg.eff_b])
        prob = np.where(np.abs(eta) < bcfg.eta_max, prob, 0.0)
        return self.rng.random(len(event)) < prob

    def _unclustered(self, calo: Particles, clustered: np.ndarray) -> np.ndarray:
        """Measured (px, py) of the deposits in no reconstructed jet (leptons are not deposits).

        Each unclustered deposit of transverse momentum pT is measured with a Gaussian error of
        ``unclustered_res_stochastic`` x sqrt(pT) (GeV) along each axis, i.e. the sum is smeared
        by ``unclustered_res_stochastic`` x sqrt(sum pT) per component.
        """
        evt, n = calo.event_index, calo.n_events
        total = np.stack([
            np.bincount(evt, weights=w, minlength=n) for w in (calo.px, calo.py, calo.pt)
        ], axis=1)
        rest = total - clustered
        sigma = self.cfg.unclustered_res_stochastic * np.sqrt(np.maximum(rest[:, 2], 0.0))
        return rest[:, :2] + sigma[:, None] * self.rng.normal(size=(n, 2))

    def _hadron_counts(self, vis: Particles) -> tuple[np.ndarray, np.ndarray]:
        """Numbers of charged and neutral hadrons above threshold in their |eta| ranges."""
        cfg = self.cfg
        hadron = (np.abs(vis.id) > 100) & (vis.pt > cfg.hadron_pt_min)
        abs_eta = np.abs(vis.eta)
        charged = hadron & (vis.charge != 0) & (abs_eta < cfg.charged_eta_max)
        neutral = hadron & (vis.charge == 0) & (abs_eta < cfg.neutral_eta_max)
        evt, n = vis.event_index, vis.n_events
        return (
            np.bincount(evt[charged], minlength=n).astype(np.int32),
            np.bincount(evt[neutral], minlength=n).astype(np.int32),
        )


def _pad_leptons(event: np.ndarray, n: int, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """:func:`pad` for leptons, with ``mother`` -1 in the empty slots."""
    out = pad(event, n, arrays)
    out["mother"] = np.where(out["pt"] > 0, out["mother"], -1)
    return out


def calorimeter_deposits(vis: Particles, mip: float) -> Particles:
    """The visible particles as calorimeter deposits: a muon deposits min(E, ``mip``) GeV.

    Muons cross the calorimeters as minimum-ionising particles, so a muon (found or not) never
    enters a jet or the unclustered sum with its full momentum; its four-momentum is scaled to
    the deposit, direction kept.
    """
    scale = np.where(np.abs(vis.id) == 13, np.minimum(1.0, mip / np.maximum(vis.e, 1e-9)), 1.0)
    if np.all(scale == 1.0):
        return vis
    arrays = vis.arrays()
    for f in ("px", "py", "pz", "e"):
        arrays[f] = arrays[f] * scale
    return Particles(vis.offsets, **arrays)


def decay_mother(particles: Particles, index: np.ndarray) -> np.ndarray:
    """Index (into ``particles``) of the particle whose decay produced each ``index`` particle.

    Copies of the same particle (a lepton after photon radiation, recoil copies) are skipped: the
    result is the first ancestor with another PDG id, or -1 if there is none.
    """
    evt = particles.event_index[index]
    first = particles.offsets[evt]
    current = index.copy()
    mother = np.full(len(index), -1, dtype=np.int64)
    todo = np.arange(len(index))
    while len(todo):
        local = particles.mother1[current[todo]]
        has = local > 0
        todo, local = todo[has], local[has]
        up = first[todo] + local
        same = particles.id[up] == particles.id[index[todo]]
        mother[todo[~same]] = up[~same]
        current[todo] = up
        todo = todo[same]
    return mother


@functools.cache
def _fastjet():
    """Import fastjet with its C++ banner (printed on first use) sent to /dev/null."""
    import awkward as ak
    import fastjet

    jetdef = fastjet.JetDefinition(fastjet.antikt_algorithm, 0.4)
    dummy = ak.Array([[{"px": 1.0, "py": 0.0, "pz": 0.0, "E": 1.0}]])
    with open(os.devnull, "w") as null, _redirect_fd(1, null.fileno()):
        fastjet.ClusterSequence(dummy, jetdef).inclusive_jets()
    return fastjet


@contextlib.contextmanager
def _redirect_fd(fd: int, target: int):
    saved = os.dup(fd)
    try:
        os.dup2(target, fd)
        yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)


def cluster(
    inputs: ak.Array, radius: float, pt_min: float, *, constituents: bool = False
) -> ak.Array | tuple[ak.Array, ak.Array]:
    """Anti-kT jets (px, py, pz, E records) of jagged particle four-vectors, per event.

    With ``constituents=True`` also returns, per event and jet, the indices (within the event's
    inputs) of the jet's constituents, as a doubly jagged array in the order of the jets.
    """
    fastjet = _fastjet()
    jetdef = fastjet.JetDefinition(fastjet.antikt_algorithm, radius)
    sequence = fastjet.ClusterSequence(inputs, jetdef)
    jets = sequence.inclusive_jets(min_pt=pt_min)
    if constituents:
        return jets, sequence.constituent_index(min_pt=pt_min)
    return jets


def hadron_flavour(pdg: np.ndarray) -> np.ndarray:
    """2 for b hadrons, 1 for c hadrons (without b), 0 otherwise."""
    a = np.abs(pdg)
    digits = np.stack([(a // 100) % 10, (a // 1000) % 10])
    is_hadron = a > 100
    b = is_hadron & (digits == 5).any(axis=0)
    c = is_hadron & (digits == 4).any(axis=0)
    return np.where(b, 2, np.where(c, 1, 0))
