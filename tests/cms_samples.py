"""Tiny CMS NanoAOD-like files with the real branch names of each era, written with uproot.

Every file holds the same physics: event 0 is one muon (pT 40 GeV, eta 0.5, phi 0, charge -1,
relative isolation 0.1 charged / 0.15 total) plus MET 30 GeV at phi pi/3, so by hand
MT = sqrt(2 * 40 * 30 * (1 - cos(pi/3))) = sqrt(1200), METp = 30 cos(pi/3) = 15,
METo = 30 sin(pi/3); event 1 is an electron (pT 25) with three jets (pT 60, 45, 30; b-tag
discriminants 0.9 / 0.2 / 0.05) and MET 10 GeV at phi 0.
"""

from __future__ import annotations

import awkward as ak
import numpy as np
import uproot

MUON_PT, MET_PT, MET_PHI = 40.0, 30.0, np.pi / 3
MT = float(np.sqrt(2 * MUON_PT * MET_PT * (1 - np.cos(MET_PHI))))
METP, METO = MET_PT * np.cos(MET_PHI), MET_PT * np.sin(MET_PHI)
JET_PT = [60.0, 45.0, 30.0]
DISCRIMINANT = [0.9, 0.2, 0.05]


def _coll(rows: list[list[dict]]) -> ak.Array:
    """A jagged record collection (fields float32, ``charge``/``bx``/``etSumType`` int32)."""
    arr = ak.Array(rows)
    ints = {"charge", "bx", "etSumType", "bestTrack_charge"}
    return ak.zip({
        f: ak.values_astype(arr[f], np.int32 if f in ints else np.float32) for f in arr.fields
    })


def _lepton(pt, eta, phi, charge, **extra):
    return {"pt": pt, "eta": eta, "phi": phi, "charge": charge, **extra}


def offline_collections(taggers: tuple[str, ...], met_names: tuple[str, ...]) -> dict:
    """Electron / Muon / Jet collections and flat MET branches in standard NanoAOD naming."""
    iso = {"pfRelIso03_chg": 0.1, "pfRelIso03_all": 0.15}
    jets = [{"pt": pt, "eta": 0.3 * i, "phi": 1.0 + i, "mass": 5.0,
             **{f"btag{t}": d for t in taggers}} for i, (pt, d) in enumerate(zip(JET_PT, DISCRIMINANT, strict=True))]
    data = {
        "Electron": _coll([[], [_lepton(25.0, -1.0, 2.0, 1, **iso)]]),
        "Muon": _coll([[_lepton(MUON_PT, 0.5, 0.0, -1, **iso)], []]),
        "Jet": _coll([[], jets]),
    }
    for met in met_names:
        data[f"{met}_pt"] = np.array([MET_PT, 10.0], dtype=np.float32)
        data[f"{met}_phi"] = np.array([MET_PHI, 0.0], dtype=np.float32)
    return data


def event_branches(gen_weight=None) -> dict:
    """run / luminosityBlock / event (and genWeight, Pileup_nTrueInt for simulation)."""
    out = {"run": np.array([1, 1], np.uint32), "luminosityBlock": np.array([7, 7], np.uint32),
           "event": np.array([101, 102], np.uint64)}
    if gen_weight is not None:
        out["genWeight"] = np.asarray(gen_weight, dtype=np.float32)
        out["Pileup_nTrueInt"] = np.array([35.0, 52.0], np.float32)
    return out


#: Collections of each era (the signature branches real files have).
ERAS = {
    "run2-ul": lambda: offline_collections(("DeepFlavB", "DeepB"), ("MET", "PuppiMET")),
    "run3": lambda: offline_collections(("DeepFlavB", "RobustParTAK4B", "PNetB"),
                                        ("MET", "PuppiMET")),
    "v15": lambda: offline_collections(("DeepFlavB", "PNetB", "UParTAK4B"), ("PFMET", "PuppiMET")),
}


def scouting_2024() -> dict:
    """Run-3 scouting NanoAOD (2024 layout): ScoutingMuonVtx/NoVtx, ScoutingElectron, ..."""
    mu = _lepton(MUON_PT, 0.5, 0.0, -1, trackIso=4.0, ecalIso=2.0, hcalIso=1.0, m=0.1)
    ele = _lepton(25.0, -1.0, 2.0, 1, trackIso=0.5, ecalIso=1.0, hcalIso=0.25, m=0.0)
    ele["bestTrack_charge"] = ele.pop("charge")
    jets = [{"pt": pt, "eta": 0.3 * i, "phi": 1.0 + i, "m": 5.0} for i, pt in enumerate(JET_PT)]
    return {
        "ScoutingMuonVtx": _coll([[mu], []]),
        "ScoutingMuonNoVtx": _coll([[dict(mu, pt=41.0)], []]),
        "ScoutingElectron": _coll([[], [ele]]),
        "ScoutingPFJet": _coll([[], jets]),
        "ScoutingMET_pt": np.array([MET_PT, 10.0]),
        "ScoutingMET_phi": np.array([MET_PHI, 0.0]),
    }


def scouting_2022() -> dict:
    """Run-3 scouting NanoAOD (2022 layout): one ScoutingMuon collection, ScoutingElectron_charge."""
    data = scouting_2024()
    data["ScoutingMuon"] = data.pop("ScoutingMuonVtx")
    del data["ScoutingMuonNoVtx"]
    ele = data["ScoutingElectron"]
    data["ScoutingElectron"] = ak.zip({("charge" if f == "bestTrack_charge" else f): ele[f]
                                       for f in ele.fields})
    return data


def l1_objects() -> dict:
    """L1 NanoAOD tables: objects of bunch crossings -1, 0, 1 and the list of energy sums."""
    def obj(pt, eta, phi, bx, **extra):
        return {"pt": pt, "eta": eta, "phi": phi, "bx": bx, **extra}

    sums = [{"pt": 300.0, "phi": 0.0, "etSumType": 0, "bx": 0},     # total ET
            {"pt": 80.0, "phi": 1.0, "etSumType": 2, "bx": -1},     # ETM of the previous BX
            {"pt": MET_PT, "phi": MET_PHI, "etSumType": 2, "bx": 0},  # ETM: the MET slot
            {"pt": 55.0, "phi": 2.0, "etSumType": 3, "bx": 0}]      # missing HT
    return {
        "L1Mu": _coll([[obj(MUON_PT, 9.0, 9.0, 0, etaAtVtx=0.5, phiAtVtx=0.0),
                        obj(70.0, 0.1, 0.1, 1, etaAtVtx=0.1, phiAtVtx=0.1)], []]),
        "L1EG": _coll([[obj(90.0, 0.0, 0.0, -1)], [obj(25.0, -1.0, 2.0, 0)]]),
        "L1Jet": _coll([[], [obj(pt, 0.3 * i, 1.0 + i, 0) for i, pt in enumerate(JET_PT)]]),
        "L1EtSum": _coll([sums, [{"pt": 10.0, "phi": 0.0, "etSumType": 2, "bx": 0}]]),
    }


def write_events(path, data: dict, container: str = "ttree", runs: dict | None = None,
                 histograms: bool = False) -> None:
    """Write ``data`` as an ``Events`` TTree (collections -> ``Coll_field`` + ``nColl``) or RNTuple
    (collections -> record fields ``Coll.field``), plus an optional ``Runs`` tree."""
    with uproot.recreate(path) as f:
        if container == "rntuple":
            f.mkrntuple("Events", data)
        else:
            f.mktree("Events", {k: ak.type(v) if isinstance(v, ak.Array) else v.dtype
                                for k, v in data.items()}).extend(data)
        if runs is not None:
            f.mktree("Runs", {k: np.asarray(v).dtype for k, v in runs.items()}).extend(
                {k: np.asarray(v) for k, v in runs.items()})
        if histograms:
            f["h_pt"] = np.histogram([1.0, 2.0], bins=2)


def random_run3(n: int, seed: int, negative_fraction: float = 0.2, gen_weight: float = 1.5) -> dict:
    """``n`` random events in Run-3 NanoAOD naming with ``genWeight = +-gen_weight`` (a fraction
    ``negative_fraction`` negative, as in NLO samples)."""
    rng = np.random.default_rng(seed)

    def coll(mean_count, fields):
        counts = rng.poisson(mean_count, n)
        total = int(counts.sum())
        return ak.zip({k: ak.unflatten(np.asarray(make(total), dtype=np.float32), counts)
                       for k, make in fields.items()})

    lepton = {"pt": lambda m: rng.exponential(30, m) + 5, "eta": lambda m: rng.uniform(-2.4, 2.4, m),
              "phi": lambda m: rng.uniform(-np.pi, np.pi, m), "charge": lambda m: rng.choice([-1, 1], m),
              "pfRelIso03_chg": lambda m: rng.uniform(0, 0.2, m),
              "pfRelIso03_all": lambda m: rng.uniform(0.2, 0.4, m)}
    jet = {"pt": lambda m: rng.exponential(40, m) + 20, "eta": lambda m: rng.uniform(-4, 4, m),
           "phi": lambda m: rng.uniform(-np.pi, np.pi, m), "mass": lambda m: rng.uniform(0, 20, m),
           "btagDeepFlavB": lambda m: rng.random(m), "btagRobustParTAK4B": lambda m: rng.random(m),
           "btagPNetB": lambda m: rng.random(m)}
    sign = np.where(rng.random(n) < negative_fraction, -1.0, 1.0)
    return {
        "Electron": coll(0.6, lepton), "Muon": coll(0.6, lepton), "Jet": coll(4, jet),
        "MET_pt": rng.exponential(40, n).astype(np.float32),
        "MET_phi": rng.uniform(-np.pi, np.pi, n).astype(np.float32),
        "run": np.ones(n, np.uint32), "luminosityBlock": np.ones(n, np.uint32),
        "event": np.arange(n, dtype=np.uint64), "genWeight": (sign * gen_weight).astype(np.float32),
    }
