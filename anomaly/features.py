"""Model inputs from the event record: the 21 high-level features (Cerri et al. 2019) and the 57 L1 inputs.

Definitions (all vectorised over events; objects are the ADC2021 slots of the event record, so at
most 4 electrons, 4 muons and 10 jets enter):

- ``HT``: scalar sum of jet pT.
- ``allJetMass``: invariant mass of the system of all jets (with their masses).
- ``allMuPt`` / ``allElePt``: pT of the vector sum of all muons / electrons.
- ``allMuMass`` / ``allEleMass``: invariant mass of all muons / electrons (leptons massless, so one
  lepton gives exactly 0).
- The *lepton* is the highest-pT electron or muon. ``LepPt`` its pT; ``LepIsoCh``,
  ``LepIsoGamma``, ``LepIsoNeu`` its relative isolation components; ``LepCharge`` its charge
  (+1/-1); ``LepIsEle`` 1 for an electron, 0 for a muon.
- ``METp`` / ``METo``: MET component parallel / perpendicular to the lepton,
  ``MET cos(dphi)`` / ``MET sin(dphi)`` with ``dphi = phi_MET - phi_lep`` wrapped to [-pi, pi).
- ``MT``: ``sqrt(2 LepPt MET (1 - cos dphi))``.
- ``nMu``, ``nJets``, ``nEle``: occupied slots; ``bJets``: b-tagged jets; ``nChHad``, ``nNeuHad``:
  hadron counts of the event record.

Events with no lepton get 0 for every lepton quantity, ``MT = 0``, and ``METp``/``METo`` equal to
the MET x/y components (the lepton direction is taken as phi = 0).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from triggerad import schema
from triggerad.events import EventBatch


def _four_vector_sum(objs: np.ndarray, mass: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
    """Sum (E, px, py, pz) over the occupied slots of (n, k, 4) objects (massless unless given)."""
    pt = objs[..., 0].astype(np.float64)
    eta = objs[..., 1].astype(np.float64)
    phi = objs[..., 2].astype(np.float64)
    occupied = pt > 0
    pt = np.where(occupied, pt, 0.0)
    m = np.zeros_like(pt) if mass is None else np.where(occupied, mass.astype(np.float64), 0.0)
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    energy = np.where(occupied, np.sqrt(px**2 + py**2 + pz**2 + m**2), 0.0)
    return tuple(v.sum(axis=1) for v in (energy, px, py, pz))


def _system_pt_mass(objs: np.ndarray, mass: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
    energy, px, py, pz = _four_vector_sum(objs, mass)
    m2 = energy**2 - px**2 - py**2 - pz**2
    # Relative clip: rounding of E^2 - p^2 for (nearly) collinear massless objects
    m2 = np.where(m2 > 1e-9 * energy**2, m2, 0.0)
    return np.hypot(px, py), np.sqrt(m2)


def compute_features(batch: EventBatch) -> np.ndarray:
    """The 21 high-level features of every event, in :data:`triggerad.schema.FEATURE_NAMES` order.

    Parameters
    ----------
    batch : EventBatch
        Events with objects; a batch read from a feature-only source (``has_objects`` False)
        returns its precomputed ``hlf``.

    Returns
    -------
    (n, 21) float32 array
    """
    if not batch.has_objects:
        return np.asarray(batch.hlf, dtype=np.float32)
    n = len(batch)
    ele, mu, jets, met = batch.electrons, batch.muons, batch.jets, batch.met
    ele_pt, mu_pt, jet_pt = ele[..., 0], mu[..., 0], jets[..., 0]

    ht = np.where(jet_pt > 0, jet_pt, 0).sum(axis=1, dtype=np.float64)
    _, all_jet_mass = _system_pt_mass(jets, batch.jet_mass)
    all_mu_pt, all_mu_mass = _system_pt_mass(mu)
    all_ele_pt, all_ele_mass = _system_pt_mass(ele)

    # The lepton: leading electron (slot 1) or leading muon (slot 5), whichever has higher pT.
    lead_ele, lead_mu = ele_pt[:, 0], mu_pt[:, 0]
    is_ele = (lead_ele >= lead_mu) & (lead_ele > 0)
    has_lep = (lead_ele > 0) | (lead_mu > 0)
    lep = np.where(is_ele[:, None], ele[:, 0], mu[:, 0])
    lep_pt = np.where(has_lep, lep[:, 0], 0).astype(np.float64)
    lep_phi = np.where(has_lep, lep[:, 2], 0).astype(np.float64)
    lep_iso = np.where(is_ele[:, None], batch.ele_iso[:, 0], batch.mu_iso[:, 0])
    lep_iso = np.where(has_lep[:, None], lep_iso, 0)
    lep_charge = np.where(is_ele, batch.ele_charge[:, 0], batch.mu_charge[:, 0])
    lep_charge = np.where(has_lep, lep_charge, 0)

    met_pt = met[:, 0].astype(np.float64)
    dphi = np.mod(met[:, 2].astype(np.float64) - lep_phi + np.pi, 2 * np.pi) - np.pi
    met_par, met_perp = met_pt * np.cos(dphi), met_pt * np.sin(dphi)
    mt = np.sqrt(np.clip(2 * lep_pt * met_pt * (1 - np.cos(dphi)), 0, None))

    columns = {
        "HT": ht,
        "allJetMass": all_jet_mass,
        "allMuPt": all_mu_pt,
        "allMuMass": all_mu_mass,
        "allElePt": all_ele_pt,
        "allEleMass": all_ele_mass,
        "LepPt": lep_pt,
        "LepIsoCh": lep_iso[:, 0],
        "LepIsoGamma": lep_iso[:, 1],
        "LepIsoNeu": lep_iso[:, 2],
        "METp": met_par,
        "METo": met_perp,
        "MT": mt,
        "nMu": (mu_pt > 0).sum(axis=1),
        "nJets": (jet_pt > 0).sum(axis=1),
        "bJets": (batch.jet_btag & (jet_pt > 0)).sum(axis=1),
        "nEle": (ele_pt > 0).sum(axis=1),
        "LepCharge": lep_charge,
        "LepIsEle": is_ele,
        "nChHad": batch.n_ch_had,
        "nNeuHad": batch.n_neu_had,
    }
    out = np.empty((n, len(schema.FEATURE_NAMES)), dtype=np.float32)
    for i, name in enumerate(schema.FEATURE_NAMES):
        out[:, i] = columns[name]
    return out


def feature_frame(batch: EventBatch) -> pd.DataFrame:
    """The 21 features plus ``event``, ``process`` and ``weight`` as a DataFrame.

    Column names and order are fixed (:data:`FEATURE_NAMES` then :data:`ID_COLUMNS`); scripts
    outside the project rely on them.
    """
    frame = pd.DataFrame(compute_features(batch), columns=list(schema.FEATURE_NAMES))
    frame["event"] = batch.event.astype(np.int64)
    frame["process"] = pd.array(batch.process.astype(str), dtype="string")
    frame["weight"] = batch.weight.astype(np.float64)
    return frame


#: Names of the 57 L1 inputs, slot-major: MET_pT, MET_eta, MET_phi, Electron0_pT, ...
L1_INPUT_NAMES = tuple(
    f"{slot}_{col}" for slot in schema.SLOT_NAMES for col in schema.COLUMN_NAMES[:3]
)

#: Columns of the L1 inputs in the flattened (n, 19 x 4) objects: [pT, eta, phi] of each slot.
_L1_COLUMNS = np.array(
    [slot * schema.N_COLUMNS + col for slot in range(schema.N_SLOTS) for col in range(3)]
)


def input_names(kind: str) -> tuple[str, ...]:
    """The ordered input names of a model kind (``hlf_vae``: the 21 features, ``l1_vae``: the
    57 L1 inputs)."""
    return schema.FEATURE_NAMES if kind == "hlf_vae" else L1_INPUT_NAMES


def l1_inputs(batch: EventBatch) -> np.ndarray:
    """The 57 L1 inputs: [pT, eta, phi] of the 19 slots, flattened slot-major, as (n, 57) float32."""
    if not batch.has_objects:
        raise ValueError(
            "this input has no trigger objects (a feature-only source such as a flat ntuple or a "
            "feature parquet file); the L1 model needs the 19 x 4 object list"
        )
    objects = batch.objects.reshape(len(batch), schema.N_SLOTS * schema.N_COLUMNS)
    # one gather of the 57 columns (a strided slice + reshape copies twice and ~5x slower)
    return np.take(objects, _L1_COLUMNS, axis=1).astype(np.float32, copy=False)


def l1_mask(batch: EventBatch) -> np.ndarray:
    """(n, 57) float32: 1 for the entries of occupied slots (MET always), 0 for zero padding."""
    occupied = batch.objects[:, :, 0] > 0
    occupied[:, schema.MET_SLOT] = True
    return np.repeat(occupied, 3, axis=1).astype(np.float32)
