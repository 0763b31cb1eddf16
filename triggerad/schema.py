"""Fixed data layouts shared by every step: the ADC2021 object list and the 21 Cerri et al. features.

The ADC2021 L1 layout (arXiv:2107.02157) stores, per event, 19 slots x [pT, eta, phi, class]:
row 0 MET (eta = 0), rows 1-4 electrons, rows 5-8 muons, rows 9-18 jets, pT-ordered within each
type and zero-padded. Class ids: 1 MET, 2 electron, 3 muon, 4 jet.
"""

from __future__ import annotations

N_SLOTS = 19
N_COLUMNS = 4
COLUMN_NAMES = ("pT", "eta", "phi", "class")

MET_SLOT = 0
ELE_SLOTS = slice(1, 5)
MU_SLOTS = slice(5, 9)
JET_SLOTS = slice(9, 19)
N_ELE, N_MU, N_JET = 4, 4, 10

CLASS_MET, CLASS_ELE, CLASS_MU, CLASS_JET = 1, 2, 3, 4
SLOT_CLASSES = (CLASS_MET,) + (CLASS_ELE,) * N_ELE + (CLASS_MU,) * N_MU + (CLASS_JET,) * N_JET
SLOT_NAMES = ("MET",) + tuple(f"Electron{i}" for i in range(N_ELE)) + tuple(
    f"Muon{i}" for i in range(N_MU)
) + tuple(f"Jet{i}" for i in range(N_JET))

#: |eta| acceptance of each object type in the ADC2021 pre-selection.
ETA_ACCEPTANCE = {"electron": 3.0, "muon": 2.1, "jet": 4.0}

#: Isolation components stored per lepton, in this order (relative to the lepton pT).
ISO_COMPONENTS = ("charged", "photon", "neutral")

#: The 21 high-level features of Cerri et al. 2019, in their order. Scripts outside the project rely
#: on these exact names.
FEATURE_NAMES = (
    "HT",
    "allJetMass",
    "allMuPt",
    "allMuMass",
    "allElePt",
    "allEleMass",
    "LepPt",
    "LepIsoCh",
    "LepIsoGamma",
    "LepIsoNeu",
    "METp",
    "METo",
    "MT",
    "nMu",
    "nJets",
    "bJets",
    "nEle",
    "LepCharge",
    "LepIsEle",
    "nChHad",
    "nNeuHad",
)

#: Likelihood family of each feature (Cerri et al. 2019, table 1).
FEATURE_LIKELIHOODS = {
    **{name: "clipped_lognormal" for name in FEATURE_NAMES[:10]},  # HT ... LepIsoNeu
    "METp": "gaussian",
    "METo": "gaussian",
    "MT": "truncated_gaussian",
    **{name: "discrete_gaussian" for name in ("nMu", "nJets", "bJets", "nEle")},
    "LepCharge": "bernoulli",
    "LepIsEle": "bernoulli",
    "nChHad": "poisson",
    "nNeuHad": "poisson",
}

#: Columns of a feature parquet file besides the 21 features.
ID_COLUMNS = ("event", "process", "weight")
