"""QCD in the single-lepton stream without brute force: forced heavy-flavour decays and jet fakes.

A plain QCD sample (pTHat > 20 GeV) contains an isolated lepton above 23 GeV in ~2-3e-6 of the
events, so it is modelled with event weights instead of rejection (derivations in
docs/generation.md):

* heavy flavour: B (D) hadrons forced to semileptonic channels, the event weighted by the
  probability that at least one of them decays into an accepted lepton
  (:func:`forced_decay_weight`);
* fakes: a parametrised jet -> electron/muon probability applied to ordinary QCD jets; the fake
  carries a Beta-distributed fraction of its jet, and the event is weighted by the probability
  that at least one jet fakes an accepted lepton (:func:`apply_fakes`).

Both weights are "probability of at least one accepted lepton", so every stored event passes the
trigger and the statistics of the weighted samples are as large as the generated events allow.
"""

from __future__ import annotations

import numpy as np
from scipy import special

from triggerad.generation.config import DetectorConfig, QcdModelConfig, TriggerConfig
from triggerad.generation.detector import Reco, cone_sums, hadron_flavour, relative_resolution
from triggerad.generation.pythia import Particles
from triggerad.generation.trigger import lepton_pass

#: Per-event lepton-source labels of :func:`lepton_source` ("" = no accepted lepton).
SOURCES = ("prompt", "tau", "b", "c", "other", "fake")


def accepted_leptons(reco: Reco, trigger: TriggerConfig) -> list[np.ndarray]:
    """(n, m) masks of the electrons and muons that fire the single-lepton trigger.

    The values are rounded to float32 as in the stored event record, so the masks agree with
    :func:`~triggerad.generation.trigger.single_lepton` on the written events.
    """
    return [
        lepton_pass(coll["pt"].astype(np.float32), coll["iso"].astype(np.float32), trigger)
        for coll in (reco.electrons, reco.muons)
    ]


def forced_decay_weight(
    reco: Reco, particles: Particles, fractions: dict[int, float], trigger: TriggerConfig
) -> np.ndarray:
    """Per event, P(at least one forced particle decays into an accepted lepton).

    In the forced sample every forced particle (B hadron, tau, ...) decayed through one of the
    channels left on, whose branching fractions sum to BR_i. In nature it does so with
    probability BR_i, independently of the others, so the event fires the trigger through a
    forced decay with probability ``1 - prod(1 - BR_i)`` over the forced particles whose own
    lepton (a direct decay product) is accepted; 0 if there is none.

    Parameters
    ----------
    reco : Reco
        The reconstructed event (leptons carry ``mother``).
    particles : Particles
        The detector's input particles (``mother`` indexes them).
    fractions : dict
        |PDG id| -> summed branching fraction of the channels left on.
    trigger : TriggerConfig
        Defines "accepted".
    """
    ids = np.array(sorted(fractions), dtype=np.int64)
    brs = np.array([fractions[i] for i in ids])
    mothers = np.unique(np.concatenate([
        coll["mother"][acc & (coll["mother"] >= 0)]
        for coll, acc in zip((reco.electrons, reco.muons), accepted_leptons(reco, trigger),
                             strict=True)
    ]))
    mid = np.abs(particles.id[mothers]).astype(np.int64)
    forced = np.isin(mid, ids)
    br = brs[np.searchsorted(ids, mid[forced])]
    log_miss = np.bincount(
        particles.event_index[mothers[forced]], weights=np.log1p(-np.minimum(br, 1 - 1e-15)),
        minlength=particles.n_events,
    )
    return -np.expm1(log_miss)


def lepton_source(reco: Reco, particles: Particles, trigger: TriggerConfig) -> np.ndarray:
    """(n,) label of the origin of each event's leading accepted lepton (see :data:`SOURCES`).

    ``prompt``: from a boson, top or BSM resonance; ``tau``; ``b`` / ``c``: from a b / c hadron
    decay; ``other``: from another hadron; ``fake``: a jet reconstructed as a lepton; ``""``: no
    accepted lepton.
    """
    acc = accepted_leptons(reco, trigger)
    pt = np.concatenate([np.where(a, c["pt"], 0.0) for a, c in zip(
        acc, (reco.electrons, reco.muons), strict=True)], axis=1)
    mother = np.concatenate([reco.electrons["mother"], reco.muons["mother"]], axis=1)
    n = len(pt)
    lead = mother[np.arange(n), np.argmax(pt, axis=1)] if pt.shape[1] else np.full(n, -1)
    mid = np.abs(particles.id[np.maximum(lead, 0)]) if len(particles.id) else np.zeros(n, int)
    flavour = hadron_flavour(mid)
    label = np.select(
        [lead < 0, mid == 15, flavour == 2, flavour == 1, mid < 100],
        ["fake", "tau", "b", "c", "prompt"], "other",
    ).astype(object)
    label[pt.max(axis=1, initial=0.0) <= 0] = ""
    return label


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


def fraction_min(
    raw_pt: np.ndarray, cone: np.ndarray, response: np.ndarray, trigger: TriggerConfig
) -> np.ndarray:
    """Smallest jet-momentum fraction f for which the fake lepton fires the trigger.

    The lepton has true pT f x ``raw_pt`` and measured pT f x ``raw_pt`` x ``response``; its
    isolation is the cone activity ``cone`` minus its own share, max(cone - f raw_pt, 0). It is
    accepted if f raw_pt response > ``lepton_pt_min`` and the isolation is below ``iso_max`` x
    the lepton pT, i.e. cone < f raw_pt (1 + iso_max response).
    """
    j = np.maximum(raw_pt, 1e-9)
    return np.maximum(trigger.lepton_pt_min / (j * response),
                      cone / (j * (1.0 + trigger.iso_max * response)))


def apply_fakes(
    reco: Reco, qcd: QcdModelConfig, det: DetectorConfig, trigger: TriggerConfig,
    rng: np.random.Generator,
) -> np.ndarray:
    """Turn one jet per event into an accepted fake lepton (in place); return the event weights.

    Every (jet, flavour) candidate fakes a lepton with probability p (:func:`fake_probabilities`);
    the lepton carries a fraction f ~ Beta(a, b) of the jet's true momentum, measured with the
    lepton resolution, along the jet axis; its isolation is the activity in the cone around it
    minus its own share, so the rest of the jet is in the cone. The candidate is accepted if
    f > f_min (:func:`fraction_min`), with probability q = p (1 - I(f_min; a, b)). The event
    weight is P(at least one accepted fake) = 1 - prod(1 - q); one candidate is drawn with
    probability proportional to q and its f from the Beta distribution truncated to f > f_min.
    The jet keeps (1 - f) of its measured momentum and is dropped below the jet threshold, its
    remainder then going to the unclustered sum; MET is recomputed. Events without a candidate
    get weight 0 and are left unchanged.

    Returns
    -------
    (n,) float64 : P(at least one jet fakes an accepted lepton) per event.
    """
    jets = reco.jets
    n, m = jets["pt"].shape
    a, b = qcd.fake_fraction_a, qcd.fake_fraction_b
    probs = fake_probabilities(jets, qcd, det)
    rows, cols = np.nonzero(probs > 0)
    jet = cols % m
    is_mu = cols >= m
    raw, eta = jets["raw_pt"][rows, jet], jets["eta"][rows, jet]
    phi = jets["phi"][rows, jet]
    cone = cone_sums(reco.iso_particles, rows, eta, phi, det.isolation.cone)
    typical_pt = raw * a / (a + b)
    res = np.where(
        is_mu, relative_resolution(det.muon, typical_pt, eta),
        relative_resolution(det.electron, typical_pt, eta),
    )
    response = np.maximum(1.0 + res * rng.normal(size=len(rows)), 1e-3)
    cdf_min = special.betainc(a, b, np.clip(fraction_min(raw, cone.sum(axis=1), response,
                                                           trigger), 0.0, 1.0))
    q = probs[rows, cols] * (1.0 - cdf_min)
    accepted = np.zeros_like(probs)
    accepted[rows, cols] = q
    weight = -np.expm1(np.log1p(-np.minimum(accepted, 1 - 1e-15)).sum(axis=1))
    # one candidate per event, with probability proportional to q
    total = accepted.sum(axis=1)
    cum = np.cumsum(q)
    first = np.searchsorted(rows, np.arange(n))
    start = np.concatenate([[0.0], cum])[first]
    u = start + rng.random(n) * total
    last = np.searchsorted(rows, np.arange(n), side="right") - 1
    chosen = np.minimum(np.searchsorted(cum, u, side="right"), last)
    events = np.flatnonzero(total > 0)
    k = chosen[events]
    f = special.betaincinv(a, b, cdf_min[k] + rng.random(len(k)) * (1.0 - cdf_min[k]))
    pt = f * raw[k] * response[k]
    activity = np.maximum(cone[k].sum(axis=1) - f * raw[k], 0.0)
    share = cone[k] / np.maximum(cone[k].sum(axis=1), 1e-9)[:, None]
    iso = share * (activity / pt)[:, None]
    charge = np.where(rng.random(len(k)) < 0.5, -1, 1).astype(np.int8)
    _shrink_jet(reco, events, jet[k], 1.0 - f, det.jet.pt_min)
    for coll, mine in ((reco.electrons, ~is_mu[k]), (reco.muons, is_mu[k])):
        new = {"pt": pt, "eta": eta[k], "phi": phi[k], "charge": charge, "iso": iso,
               "mother": np.full(len(k), -1)}
        for name, values in new.items():
            column = np.zeros((n, 1, *coll[name].shape[2:]), dtype=coll[name].dtype)
            if name == "mother":
                column[:] = -1
            column[events[mine], 0] = values[mine]
            coll[name] = np.concatenate([coll[name], column], axis=1)
    reco.update_met()
    return weight


def _shrink_jet(
    reco: Reco, events: np.ndarray, cols: np.ndarray, keep: np.ndarray, pt_min: float
) -> None:
    """Scale jets (``events``, ``cols``) to the fraction ``keep``; below ``pt_min`` the rest goes
    to the unclustered sum and the jet is removed."""
    jets = reco.jets
    for name in ("pt", "mass", "raw_pt"):
        jets[name][events, cols] *= keep
    gone = jets["pt"][events, cols] < pt_min
    ev, col = events[gone], cols[gone]
    reco.unclustered[ev, 0] += jets["pt"][ev, col] * np.cos(jets["phi"][ev, col])
    reco.unclustered[ev, 1] += jets["pt"][ev, col] * np.sin(jets["phi"][ev, col])
    for name in jets:
        jets[name][ev, col] = 0
