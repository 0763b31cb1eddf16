"""Particle-flow-like candidates of the parametric detector: tracks and neutral candidates.

Charged particles produced inside the tracker become **tracks** with smeared momentum and
impact parameters computed from their *true* production vertex and momentum
(:func:`~triggerad.generation.geometry.impact_parameters`, straight lines, no magnetic field),
pT-, eta- and radius-dependent resolutions, an efficiency that falls with the production radius,
a hit count from the layers outside the production radius, a chi2 and a quality flag.

Everything else that reaches the calorimeters becomes a **neutral candidate** (photon or neutral
hadron): photons and electrons produced in front of the ECAL surface deposit electromagnetically
(``is_gamma``, HCAL fraction 0), hadrons -- and electromagnetic particles produced behind the
ECAL surface -- hadronically (HCAL fraction drawn around ``hcal_fraction_mean``, 1 behind the
ECAL). Charged particles without a track (outside |eta| < ``eta_max``, too soft, produced too far
out, or lost to the efficiency) therefore also appear as neutral candidates, as in particle
flow; untracked muons are lost. The direction of a neutral candidate is that of its calorimeter
impact point seen from the origin, so displaced neutrals point away from their true momentum.

PUPPI weights are an idealised proxy: charged candidates from pile-up 0, others 1; neutral
candidates the fraction of the charged pT within DR < ``puppi_cone`` that is not pile-up (1
without charged neighbours). Parameters: :class:`TrackingConfig`, :class:`CalorimeterConfig`
(documented in ``docs/tagger.md``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from triggerad.generation.detector import INVISIBLE, pairs
from triggerad.generation.geometry import delta_r, impact_parameters
from triggerad.generation.pythia import Particles

#: Charged-pion mass (GeV), given to charged hadron candidates.
PION_MASS = 0.13957
LEPTON_MASS = {11: 0.000511, 13: 0.10566}

#: CMS ``PackedCandidate`` PV-association codes used here (``pvAssocQuality``).
PV_USED_IN_FIT_TIGHT, PV_COMPATIBLE_DZ, PV_OTHER_DZ = 7, 5, 1


@dataclass
class TrackingConfig:
    """Track reconstruction (lengths in mm, momenta in GeV).

    A charged particle is a track candidate if |eta| < ``eta_max``, pT > ``pt_min``, its
    production radius is below ``radius_max`` and |z| below ``z_max``, and at least ``min_hits``
    of the ``layer_radii`` lie outside its production radius. It is found with probability
    ``efficiency / (1 + exp((r - eff_r50) / eff_r_width))`` (r = production radius) times
    ``efficiency_scale``.

    Resolutions (Gaussian, each x ``(1 + res_eta_slope |eta|) (1 + res_radius_slope r /
    radius_max)``): sigma(pT)/pT = ``pt_res_constant (+) pt_res_linear pT``; sigma(eta) =
    sigma(phi) = ``angle_res_constant (+) angle_res_pt / pT``; sigma(d0) = ``d0_res_constant (+)
    d0_res_pt / pT``; sigma(dz) likewise. The reported errors ``d0_err``/``dz_err`` are these
    sigmas; the impact parameters are smeared by ``ip_smear_scale`` x sigma (1: a calibrated
    detector; > 1 models a simulation whose resolution is worse than it reports).
    Non-Gaussian impact-parameter tails (off by default): a fraction ``ip_tail_fraction`` of the
    tracks (mis-measured: wrong hits, hard single scatters) get their d0 and dz smeared by
    ``ip_tail_scale`` x sigma instead (a double Gaussian; the reported errors stay the core
    sigmas, so their pulls have tails). With ``ip_tail_fraction`` 0 no random number is drawn
    for it and the tracks are exactly those of the pure Gaussian.
    Normalised track chi2: chi2(ndof)/ndof x ``chi2_scale`` with ndof = 2 hits - 5;
    ``trk_quality`` = 1 (high purity) for chi2/ndof < ``high_purity_chi2`` and at least
    ``high_purity_hits`` hits. ``pvAssocQuality``: 7 if |d0|/sigma and |dz|/sigma < 3, 5 if only
    |dz|/sigma < ``pv_dz_sig``, else 1; ``fromPV`` 3, 2, 0 correspondingly.
    """

    eta_max: float = 2.5
    pt_min: float = 1.0
    radius_max: float = 600.0
    z_max: float = 1200.0
    layer_radii: list[float] = field(default_factory=lambda: [
        29.0, 68.0, 109.0, 160.0, 255.0, 339.0, 418.0, 498.0, 608.0, 692.0, 780.0, 868.0,
        965.0, 1080.0,
    ])
    min_hits: int = 5
    efficiency: float = 0.95
    eff_r50: float = 350.0
    eff_r_width: float = 80.0
    efficiency_scale: float = 1.0
    pt_res_constant: float = 0.01
    pt_res_linear: float = 1.5e-4
    angle_res_constant: float = 2e-4
    angle_res_pt: float = 2e-3
    d0_res_constant: float = 0.010
    d0_res_pt: float = 0.090
    dz_res_constant: float = 0.025
    dz_res_pt: float = 0.110
    res_eta_slope: float = 0.3
    res_radius_slope: float = 2.0
    ip_smear_scale: float = 1.0
    ip_tail_fraction: float = 0.0
    ip_tail_scale: float = 3.0
    chi2_scale: float = 1.0
    high_purity_chi2: float = 5.0
    high_purity_hits: int = 8
    pv_dz_sig: float = 10.0

    def __post_init__(self) -> None:
        if not 0 <= self.efficiency * self.efficiency_scale <= 1:
            raise ValueError(
                f"efficiency x efficiency_scale must be in [0, 1], found {self.efficiency!r} x "
                f"{self.efficiency_scale!r}"
            )
        if min(self.radius_max, self.eff_r_width, self.pt_min, self.ip_smear_scale) <= 0:
            raise ValueError("radius_max, eff_r_width, pt_min and ip_smear_scale must be positive")
        if not 0 <= self.ip_tail_fraction < 1 or self.ip_tail_scale < 1:
            raise ValueError(
                f"expected 0 <= ip_tail_fraction < 1 and ip_tail_scale >= 1, found "
                f"{self.ip_tail_fraction!r}, {self.ip_tail_scale!r}"
            )


@dataclass
class CalorimeterConfig:
    """Neutral candidates (lengths in mm, energies in GeV).

    The calorimeter surface is a cylinder of radius ``ecal_radius`` and half-length ``ecal_z``;
    particles produced beyond ``outer_radius`` / ``outer_z`` leave nothing. Energy resolution
    sigma(E)/E = ``em_stochastic / sqrt(E) (+) em_constant`` for electromagnetic and
    ``had_stochastic / sqrt(E) (+) had_constant`` for hadronic deposits; energies x
    ``energy_scale``. Photons need pT > ``photon_pt_min``, neutral hadrons pT >
    ``hadron_pt_min``; |eta| < ``eta_max``.
    """

    eta_max: float = 3.0
    ecal_radius: float = 1290.0
    ecal_z: float = 3170.0
    outer_radius: float = 2950.0
    outer_z: float = 5550.0
    photon_pt_min: float = 0.5
    hadron_pt_min: float = 1.0
    em_stochastic: float = 0.03
    em_constant: float = 0.005
    had_stochastic: float = 1.0
    had_constant: float = 0.05
    hcal_fraction_mean: float = 0.85
    hcal_fraction_width: float = 0.15
    energy_scale: float = 1.0
    puppi_cone: float = 0.3


@dataclass
class Candidates:
    """Flat arrays of the candidates of a batch of events, ordered by event.

    ``source`` is the index of the particle (in the input :class:`Particles`) a candidate comes
    from. Track-only quantities are 0 for neutral candidates (``lost_inner_hits`` and
    ``n_hits`` too).
    """

    n_events: int
    event: np.ndarray
    source: np.ndarray
    charge: np.ndarray
    pdg_id: np.ndarray
    pt: np.ndarray
    eta: np.ndarray
    phi: np.ndarray
    mass: np.ndarray
    d0: np.ndarray
    d0_err: np.ndarray
    dz: np.ndarray
    dz_err: np.ndarray
    trk_chi2: np.ndarray
    n_hits: np.ndarray
    lost_inner_hits: np.ndarray
    trk_quality: np.ndarray
    pv_assoc_quality: np.ndarray
    from_pv: np.ndarray
    hcal_fraction: np.ndarray
    puppi_weight: np.ndarray

    @property
    def is_track(self) -> np.ndarray:
        return self.charge != 0

    def momenta(self) -> np.ndarray:
        """(k, 4) [px, py, pz, E]."""
        px, py = self.pt * np.cos(self.phi), self.pt * np.sin(self.phi)
        pz = self.pt * np.sinh(self.eta)
        e = np.sqrt(px**2 + py**2 + pz**2 + self.mass**2)
        return np.stack([px, py, pz, e], axis=-1)

    def offsets(self) -> np.ndarray:
        """(n + 1,) candidate offsets of the events."""
        return np.concatenate([[0], np.cumsum(np.bincount(self.event, minlength=self.n_events))])


def _hits(cfg: TrackingConfig, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hits (layers outside radius r) and lost inner hits (-1 none, else layers inside, max 2)."""
    layers = np.asarray(cfg.layer_radii)
    inside = np.searchsorted(np.sort(layers), r, side="left")
    lost = np.where(inside == 0, -1, np.minimum(inside, 2))
    return len(layers) - inside, lost


def _smear_tracks(p: Particles, idx: np.ndarray, cfg: TrackingConfig, rng) -> dict:
    """Reconstructed quantities of the tracks made from particles ``idx``."""
    pt_true, eta_true, phi_true = p.pt[idx], p.eta[idx], p.phi[idx]
    r = np.hypot(p.vx[idx], p.vy[idx])
    scale = (1 + cfg.res_eta_slope * np.abs(eta_true)) * (1 + cfg.res_radius_slope * r / cfg.radius_max)
    k = len(idx)
    normal = rng.normal(size=(6, k))
    pt = pt_true * (1 + np.hypot(cfg.pt_res_constant, cfg.pt_res_linear * pt_true) * scale * normal[0])
    pt = np.maximum(pt, 1e-3)
    angle = np.hypot(cfg.angle_res_constant, cfg.angle_res_pt / pt_true) * scale
    eta = eta_true + angle * normal[1]
    phi = (phi_true + angle * normal[2] + np.pi) % (2 * np.pi) - np.pi
    d0_true, dz_true = impact_parameters(
        p.vx[idx], p.vy[idx], p.vz[idx], p.px[idx], p.py[idx], p.pz[idx]
    )
    d0_err = np.hypot(cfg.d0_res_constant, cfg.d0_res_pt / pt_true) * scale
    dz_err = np.hypot(cfg.dz_res_constant, cfg.dz_res_pt / pt_true) * scale
    ip_scale = cfg.ip_smear_scale
    if cfg.ip_tail_fraction > 0:  # mis-measured tracks: d0 and dz together
        ip_scale = ip_scale * np.where(rng.random(k) < cfg.ip_tail_fraction,
                                       cfg.ip_tail_scale, 1.0)
    d0 = d0_true + ip_scale * d0_err * normal[3]
    dz = dz_true + ip_scale * dz_err * normal[4]
    n_hits, lost = _hits(cfg, r)
    ndof = np.maximum(2 * n_hits - 5, 1)
    chi2 = rng.chisquare(ndof) / ndof * cfg.chi2_scale
    quality = (chi2 < cfg.high_purity_chi2) & (n_hits >= cfg.high_purity_hits)
    tight = (np.abs(d0 / d0_err) < 3) & (np.abs(dz / dz_err) < 3)
    compatible = np.abs(dz / dz_err) < cfg.pv_dz_sig
    assoc = np.where(tight, PV_USED_IN_FIT_TIGHT, np.where(compatible, PV_COMPATIBLE_DZ, PV_OTHER_DZ))
    abs_id = np.abs(p.id[idx])
    lepton = np.isin(abs_id, (11, 13))
    charge = p.charge[idx].astype(np.int8)
    return {
        "charge": charge,
        "pdg_id": np.where(lepton, p.id[idx], 211 * charge).astype(np.int32),
        "pt": pt, "eta": eta, "phi": phi,
        "mass": np.where(abs_id == 11, LEPTON_MASS[11],
                         np.where(abs_id == 13, LEPTON_MASS[13], PION_MASS)),
        "d0": d0, "d0_err": d0_err, "dz": dz, "dz_err": dz_err, "trk_chi2": chi2,
        "n_hits": n_hits.astype(np.int8), "lost_inner_hits": lost.astype(np.int8),
        "trk_quality": quality.astype(np.int8), "pv_assoc_quality": assoc.astype(np.int8),
        "from_pv": np.select([assoc == PV_USED_IN_FIT_TIGHT, assoc == PV_COMPATIBLE_DZ], [3, 2], 0)
        .astype(np.int8),
    }


def _impact_point(p: Particles, idx: np.ndarray, cfg: CalorimeterConfig):
    """Calorimeter impact point of the straight line of each particle, and whether the particle
    was produced in front of the calorimeter surface."""
    v = np.stack([p.vx[idx], p.vy[idx], p.vz[idx]], axis=-1)
    mom = np.stack([p.px[idx], p.py[idx], p.pz[idx]], axis=-1)
    u = mom / np.maximum(np.linalg.norm(mom, axis=-1, keepdims=True), 1e-12)
    a = np.maximum(u[:, 0] ** 2 + u[:, 1] ** 2, 1e-18)
    b = v[:, 0] * u[:, 0] + v[:, 1] * u[:, 1]
    c = v[:, 0] ** 2 + v[:, 1] ** 2 - cfg.ecal_radius**2
    s_r = (-b + np.sqrt(np.maximum(b**2 - a * c, 0.0))) / a
    uz = np.where(np.abs(u[:, 2]) > 1e-12, u[:, 2], 1e-12)
    s_z = (np.sign(uz) * cfg.ecal_z - v[:, 2]) / uz
    front = (c < 0) & (np.abs(v[:, 2]) < cfg.ecal_z)
    s = np.where(front, np.maximum(np.minimum(s_r, s_z), 0.0), 0.0)
    return v + s[:, None] * u, front


def _neutrals(p: Particles, idx: np.ndarray, cfg: CalorimeterConfig, rng) -> dict:
    """Neutral candidates from the calorimeter deposits of particles ``idx`` (with a mask of the
    ones kept)."""
    point, front = _impact_point(p, idx, cfg)
    r_prod = np.hypot(p.vx[idx], p.vy[idx])
    inside = (r_prod < cfg.outer_radius) & (np.abs(p.vz[idx]) < cfg.outer_z)
    abs_id = np.abs(p.id[idx])
    em = front & np.isin(abs_id, (11, 22))
    energy_true = p.e[idx]
    res = np.where(
        em, np.hypot(cfg.em_stochastic / np.sqrt(np.maximum(energy_true, 1e-6)), cfg.em_constant),
        np.hypot(cfg.had_stochastic / np.sqrt(np.maximum(energy_true, 1e-6)), cfg.had_constant),
    )
    energy = np.maximum(energy_true * (1 + res * rng.normal(size=len(idx))), 0.0) * cfg.energy_scale
    hcal = np.where(em, 0.0, np.where(
        front & ~em,
        np.clip(rng.normal(cfg.hcal_fraction_mean, cfg.hcal_fraction_width, len(idx)), 0.0, 1.0),
        1.0,
    ))
    r_pt = np.hypot(point[:, 0], point[:, 1])
    eta = np.arcsinh(point[:, 2] / np.maximum(r_pt, 1e-9))
    phi = np.arctan2(point[:, 1], point[:, 0])
    pt = energy / np.cosh(eta)
    keep = inside & (np.abs(eta) < cfg.eta_max) & np.where(
        em, pt > cfg.photon_pt_min, pt > cfg.hadron_pt_min
    )
    zeros = np.zeros(len(idx))
    out = {
        "charge": zeros.astype(np.int8), "pdg_id": np.where(em, 22, 130).astype(np.int32),
        "pt": pt, "eta": eta, "phi": phi, "mass": zeros,
        "d0": zeros, "d0_err": zeros, "dz": zeros, "dz_err": zeros, "trk_chi2": zeros,
        "n_hits": zeros.astype(np.int8), "lost_inner_hits": zeros.astype(np.int8),
        "trk_quality": zeros.astype(np.int8), "pv_assoc_quality": zeros.astype(np.int8),
        "from_pv": zeros.astype(np.int8), "hcal_fraction": hcal,
    }
    return {k: v[keep] for k, v in out.items()}, idx[keep]


def reconstruct(
    particles: Particles, tracking: TrackingConfig, calo: CalorimeterConfig,
    rng: np.random.Generator, *, pileup: np.ndarray | None = None,
) -> Candidates:
    """Tracks and neutral candidates of final-state particles.

    Parameters
    ----------
    particles : Particles
        Final-state particles **with vertices** (``generate(..., vertices=True)``).
    tracking, calo : TrackingConfig, CalorimeterConfig
    rng : numpy Generator
    pileup : bool (m,), optional
        Which particles come from pile-up interactions (for the PUPPI proxy).

    Returns
    -------
    Candidates
        Tracks and neutral candidates, ordered by event (tracks first within an event).
    """
    if not particles.has_vertices:
        raise ValueError("tracking needs particles with production vertices (vertices=True)")
    p = particles
    abs_id = np.abs(p.id)
    visible = (p.status > 0) & ~np.isin(abs_id, INVISIBLE)
    r = np.hypot(p.vx, p.vy)
    n_hits, _ = _hits(tracking, r)
    candidate = (
        visible & (p.charge != 0) & (np.abs(p.eta) < tracking.eta_max) & (p.pt > tracking.pt_min)
        & (r < tracking.radius_max) & (np.abs(p.vz) < tracking.z_max)
        & (n_hits >= tracking.min_hits)
    )
    eff = tracking.efficiency * tracking.efficiency_scale / (
        1 + np.exp(np.minimum((r - tracking.eff_r50) / tracking.eff_r_width, 50.0))
    )
    found = candidate & (rng.random(len(p.id)) < eff)
    track_idx = np.flatnonzero(found)
    tracks = _smear_tracks(p, track_idx, tracking, rng)
    tracks["hcal_fraction"] = np.zeros(len(track_idx))
    calo_idx = np.flatnonzero(visible & ~found & (abs_id != 13))
    neutrals, calo_idx = _neutrals(p, calo_idx, calo, rng)
    source = np.concatenate([track_idx, calo_idx])
    event = p.event_index[source]
    order = np.lexsort((np.arange(len(source)), event))
    merged = {k: np.concatenate([tracks[k], neutrals[k]])[order] for k in tracks}
    source, event = source[order], event[order]
    is_pu = np.zeros(len(source), bool) if pileup is None else pileup[source]
    merged["puppi_weight"] = _puppi(event, merged, is_pu, p.n_events, calo.puppi_cone)
    return Candidates(n_events=p.n_events, event=event, source=source, **merged)


def _puppi(event, c: dict, is_pu: np.ndarray, n_events: int, cone: float) -> np.ndarray:
    """The PUPPI-weight proxy (module docstring)."""
    charged = c["charge"] != 0
    weight = np.where(charged, np.where(is_pu, 0.0, 1.0), 1.0)
    if not is_pu.any():
        return weight
    ch_idx = np.flatnonzero(charged)
    ch_offsets = np.concatenate([[0], np.cumsum(np.bincount(event[ch_idx], minlength=n_events))])
    neu_idx = np.flatnonzero(~charged)
    oi, pi = pairs(event[neu_idx], ch_offsets)
    j = ch_idx[pi]
    near = delta_r(c["eta"][neu_idx][oi], c["phi"][neu_idx][oi], c["eta"][j], c["phi"][j]) < cone
    total = np.bincount(oi, weights=np.where(near, c["pt"][j], 0.0), minlength=len(neu_idx))
    hard = np.bincount(oi, weights=np.where(near & ~is_pu[j], c["pt"][j], 0.0),
                       minlength=len(neu_idx))
    weight[neu_idx] = np.where(total > 0, hard / np.where(total > 0, total, 1.0), 1.0)
    return weight
