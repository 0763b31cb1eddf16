"""QCD in the single-lepton stream without brute force: forced heavy-flavour decays and jet fakes.

A plain QCD sample (pTHat > 20 GeV) contains an isolated lepton above 23 GeV in ~2-3e-6 of the
events, so it is modelled with event weights instead of rejection (see docs/generation.md):

* heavy flavour: B hadrons forced to semileptonic channels, the event weighted by the product of
  the forced branching fractions (:func:`forced_decay_weight`);
* fakes: a parametrised jet -> electron/muon probability applied to ordinary QCD jets, one jet
  turned into a lepton and the event weighted by P(at least one fake) (:func:`apply_fakes`).
"""

from __future__ import annotations

import numpy as np

from triggerad.generation.config import DetectorConfig, QcdModelConfig
from triggerad.generation.detector import Reco, cone_sums
from triggerad.generation.pythia import Particles


def forced_decay_weight(particles: Particles, fractions: dict[int, float]) -> np.ndarray:
    """Per event, the product of the forced branching fractions of its decayed forced particles.

    A particle counts once: copies (B0 mixing, recoil copies of a tau), whose first daughter is
    the same species, are skipped.

    Parameters
    ----------
    particles : Particles
        The full event records.
    fractions : dict
        |PDG id| -> summed branching fraction of the channels left on.
    """
    ids = np.array(sorted(fractions), dtype=np.int64)
    brs = np.array([fractions[i] for i in ids])
    abs_id = np.abs(particles.id).astype(np.int64)
    evt = particles.event_index
    daughter = np.clip(particles.offsets[evt] + particles.daughter1, 0, len(abs_id) - 1)
    decayed = (
        np.isin(abs_id, ids) & (particles.status < 0) & (particles.daughter1 > 0)
        & ~np.isin(abs_id[daughter], ids)
    )
    log_br = np.log(brs[np.searchsorted(ids, abs_id[decayed])])
    return np.exp(np.bincount(evt[decayed], weights=log_br, minlength=particles.n_events))


def fake_probabilities(
    jets: dict[str, np.ndarray], qcd: QcdModelConfig, det: DetectorConfig
) -> np.ndarray:
    """(n, 2m) fake probabilities: columns [jet -> electron for m jets, jet -> muon for m jets]."""
    pt, abs_eta = jets["pt"], np.abs(jets["eta"])
    above = pt > qcd.fake_jet_pt_min
    shape = np.power(np.maximum(pt, 1e-3) / qcd.fake_pt_ref, qcd.fake_power) * above
    p_e = np.where(abs_eta < det.electron.eta_max, qcd.fake_ele_rate * shape, 0.0)
    p_mu = np.where(abs_eta < det.muon.eta_max, qcd.fake_mu_rate * shape, 0.0)
    return np.clip(np.concatenate([p_e, p_mu], axis=1), 0.0, 1.0)


def apply_fakes(
    reco: Reco, qcd: QcdModelConfig, det: DetectorConfig, rng: np.random.Generator
) -> np.ndarray:
    """Turn one jet per event into a fake lepton (in place) and return the event weights.

    The (jet, flavour) is drawn with probability proportional to its fake probability; the
    lepton gets pT = ``fake_pt_scale`` x jet pT, the jet direction, a random charge and as
    isolation the cone activity around the jet axis not carried by the lepton. The jet is
    removed. Events without a candidate jet get weight 0.

    Returns
    -------
    (n,) float64 : P(at least one jet fakes a lepton) per event.
    """
    jets = reco.jets
    n, m = jets["pt"].shape
    probs = fake_probabilities(jets, qcd, det)
    weight = 1.0 - np.prod(1.0 - probs, axis=1)
    total = probs.sum(axis=1)
    u = rng.random(n) * total
    choice = np.minimum((np.cumsum(probs, axis=1) < u[:, None]).sum(axis=1), 2 * m - 1)
    charge = np.where(rng.random(n) < 0.5, -1, 1).astype(np.int8)
    rows = np.flatnonzero(total > 0)
    col, is_mu = choice[rows] % m, choice[rows] >= m
    pt = qcd.fake_pt_scale * jets["pt"][rows, col]
    eta, phi = jets["eta"][rows, col], jets["phi"][rows, col]
    cone = cone_sums(reco.iso_particles, rows, eta, phi, det.isolation.cone)
    cone_total = np.maximum(cone.sum(axis=1), 1e-9)
    rel = (cone / cone_total[:, None]) * (np.maximum(cone_total - pt, 0.0) / pt)[:, None]
    for name in jets:
        jets[name][rows, col] = 0
    for coll, flavour_rows in ((reco.electrons, ~is_mu), (reco.muons, is_mu)):
        new = {"pt": pt, "eta": eta, "phi": phi, "charge": charge[rows], "iso": rel}
        for name, values in new.items():
            column = np.zeros((n, 1, *coll[name].shape[2:]), dtype=coll[name].dtype)
            column[rows[flavour_rows], 0] = values[flavour_rows]
            coll[name] = np.concatenate([coll[name], column], axis=1)
    return weight
