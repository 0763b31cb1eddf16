"""Hand-built particle records and reconstructed events for the generation tests."""

from __future__ import annotations

import numpy as np

from triggerad.generation.detector import Reco
from triggerad.generation.pythia import Particles


def particles(events: list[list[tuple]]) -> Particles:
    """Particles from per-event lists of (id, status, daughter1, px, py, pz, charge[, mother1])."""
    rows = [(*r, 0) if len(r) == 7 else r for ev in events for r in ev]
    cols = list(zip(*rows, strict=True))
    px, py, pz = (np.array(c, float) for c in cols[3:6])
    return Particles(
        offsets=np.concatenate([[0], np.cumsum([len(e) for e in events])]).astype(np.int64),
        id=np.array(cols[0]), status=np.array(cols[1]), mother1=np.array(cols[7]),
        daughter1=np.array(cols[2]), px=px, py=py, pz=pz, e=np.sqrt(px**2 + py**2 + pz**2),
        charge=np.array(cols[6], float),
    )


def pion(pt: float, eta: float, phi: float, charge: int = 1) -> tuple:
    """A final-state charged pion row for :func:`particles`."""
    return (211 * charge, 1, 0, pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta), charge)


def leptons(n: int, pt=(), eta=(), phi=(), mother=()) -> dict[str, np.ndarray]:
    """A lepton collection with one column (or none): pt/eta/phi/mother per event, iso 0."""
    m = 1 if len(pt) else 0
    shape = (n, m)
    return {
        "pt": np.asarray(pt, float).reshape(shape), "eta": np.asarray(eta, float).reshape(shape),
        "phi": np.asarray(phi, float).reshape(shape),
        "charge": np.where(np.asarray(pt).reshape(shape) > 0, 1, 0).astype(np.int8),
        "iso": np.zeros((*shape, 3)),
        "mother": np.asarray(mother, np.int64).reshape(shape) if m else np.zeros(shape, np.int64),
    }


def jets(pt, eta, phi) -> dict[str, np.ndarray]:
    """A (n, m) jet collection (raw pT = pT, mass 0, not b-tagged)."""
    pt = np.asarray(pt, float)
    return {"pt": pt.copy(), "eta": np.asarray(eta, float), "phi": np.asarray(phi, float),
            "mass": np.zeros_like(pt), "btag": np.zeros(pt.shape, bool), "raw_pt": pt.copy()}


def reco(jet_coll: dict, iso_particles: Particles, electrons=None, muons=None) -> Reco:
    """A :class:`Reco` of these jets and isolation particles, no unclustered deposits."""
    n = len(jet_coll["pt"])
    out = Reco(
        electrons=electrons or leptons(n), muons=muons or leptons(n), jets=jet_coll,
        unclustered=np.zeros((n, 2)), met_pt=np.zeros(n), met_phi=np.zeros(n),
        n_ch_had=np.zeros(n, np.int32), n_neu_had=np.zeros(n, np.int32),
        iso_particles=iso_particles,
    )
    out.update_met()
    return out


class FixedRng:
    """Stand-in for a numpy Generator: ``random`` always 0, ``normal`` always ``normal``."""

    def __init__(self, normal: float = 0.0):
        self.value = normal

    def random(self, size=None):
        return np.zeros(size)

    def normal(self, size=None):
        return np.full(size, self.value)
