"""Tiny event samples and writers of Delphes-like / flat ROOT files for the io tests."""

from __future__ import annotations

import json

import awkward as ak
import numpy as np
import uproot

from triggerad import schema
from triggerad.events import EventBatch, from_collections


def random_batch(n: int = 40, seed: int = 7) -> EventBatch:
    """``n`` random events with every EventBatch field set (unsorted, over-full collections)."""
    rng = np.random.default_rng(seed)

    def coll(m, extra):
        pt = np.where(rng.random((n, m)) < 0.5, rng.uniform(5, 100, (n, m)), 0).astype(np.float32)
        return {"pt": pt, "eta": rng.uniform(-2, 2, (n, m)).astype(np.float32),
                "phi": rng.uniform(-3, 3, (n, m)).astype(np.float32), **extra(m)}

    def lep(m):
        return {"charge": rng.choice([-1, 1], (n, m)).astype(np.int8),
                "iso": rng.uniform(0, 0.5, (n, m, 3)).astype(np.float32)}

    def jet(m):
        return {"mass": rng.uniform(0, 20, (n, m)).astype(np.float32), "btag": rng.random((n, m)) < 0.3}

    return from_collections(
        rng.uniform(0, 100, n).astype(np.float32), rng.uniform(-3, 3, n).astype(np.float32),
        coll(5, lep), coll(5, lep), coll(12, jet),
        event=np.arange(n, dtype=np.int64) + 1000, run=np.full(n, 3, dtype=np.int64),
        lumi=np.arange(n, dtype=np.int64) // 10, pileup=rng.uniform(0, 50, n).astype(np.float32),
        process=np.resize(np.array(["W", "Z", "QCD", "ttbar"], dtype=object), n),
        weight=rng.uniform(0, 1, n), n_ch_had=rng.integers(0, 50, n).astype(np.int32),
        n_neu_had=rng.integers(0, 50, n).astype(np.int32),
    )


def single_muon_batch() -> EventBatch:
    """One event: a muon (pT 40, eta 0.5, phi 0, charge -1) and MET 30 GeV at phi pi/2."""
    empty = {"pt": np.zeros((1, 0)), "eta": np.zeros((1, 0)), "phi": np.zeros((1, 0))}
    muons = {"pt": np.array([[40.0]]), "eta": np.array([[0.5]]), "phi": np.array([[0.0]]),
             "charge": np.array([[-1]], dtype=np.int8),
             "iso": np.array([[[0.05, 0.02, 0.01]]], dtype=np.float32)}
    return from_collections(
        np.array([30.0]), np.array([np.pi / 2]), empty, muons, empty,
        event=np.array([7]), process=np.array(["W"], dtype=object), weight=np.array([2.5]),
    )


def _jagged(values: np.ndarray, present: np.ndarray) -> ak.Array:
    return ak.unflatten(values[present], present.sum(axis=1))


def write_delphes(path, batch: EventBatch, naming: str = "delphes") -> None:
    """Write ``batch`` as a Delphes-like tree (absolute isolation sums, BTag word, MissingET).

    ``naming="delphes"``: real Delphes names (``Electron.PT``, ``Electron_size``);
    ``naming="uproot"``: uproot's defaults (``Electron_PT``, ``nElectron``).
    """
    data = {}
    for coll, objs, charge, iso in (("Electron", batch.electrons, batch.ele_charge, batch.ele_iso),
                                    ("Muon", batch.muons, batch.mu_charge, batch.mu_iso)):
        present = objs[..., 0] > 0
        pt = objs[..., 0]
        data[coll] = ak.zip({k: _jagged(v, present) for k, v in {
            "PT": pt, "Eta": objs[..., 1], "Phi": objs[..., 2], "Charge": charge.astype(np.int32),
            "SumPtCharged": iso[..., 0] * pt, "SumPtNeutral": iso[..., 2] * pt}.items()})
    present = batch.jets[..., 0] > 0
    data["Jet"] = ak.zip({k: _jagged(v, present) for k, v in {
        "PT": batch.jets[..., 0], "Eta": batch.jets[..., 1], "Phi": batch.jets[..., 2],
        "Mass": batch.jet_mass, "BTag": batch.jet_btag.astype(np.int32) * 5}.items()})
    one = np.ones((len(batch), 1), dtype=bool)
    data["MissingET"] = ak.zip({"MET": _jagged(batch.met[:, :1], one),
                                "Phi": _jagged(batch.met[:, 2:3], one)})
    data["Event"] = ak.zip({"Number": _jagged(batch.event[:, None], one)})
    data["EFlowTrack_size"] = batch.n_ch_had
    data["EFlowNeutralHadron_size"] = batch.n_neu_had
    kw = ({"field_name": lambda outer, inner: f"{outer}.{inner}",
           "counter_name": lambda counted: f"{counted}_size"} if naming == "delphes" else {})
    with uproot.recreate(path) as f:
        tree = f.mktree("Delphes", {k: ak.type(v) if isinstance(v, ak.Array) else v.dtype
                                    for k, v in data.items()}, **kw)
        tree.extend(data)


def uproot_delphes_map() -> dict:
    """Branch-map override for Delphes-like files written with uproot's default naming."""
    out = {}
    for sec, coll, fields in (
        ("electron", "Electron", {"pt": "PT", "eta": "Eta", "phi": "Phi", "charge": "Charge",
                                  "iso_charged": "SumPtCharged", "iso_neutral": "SumPtNeutral"}),
        ("muon", "Muon", {"pt": "PT", "eta": "Eta", "phi": "Phi", "charge": "Charge",
                          "iso_charged": "SumPtCharged", "iso_neutral": "SumPtNeutral"}),
        ("jet", "Jet", {"pt": "PT", "eta": "Eta", "phi": "Phi", "mass": "Mass", "btag": "BTag"}),
        ("met", "MissingET", {"pt": "MET", "phi": "Phi"}),
    ):
        out[sec] = {k: f"{coll}_{v}" for k, v in fields.items()}
    out["event"] = {"event": "Event_Number"}
    return out


def write_flat(path, hlf: np.ndarray, branches: dict[str, str] | None = None,
               process: list[str] | None = None, tree: str = "features") -> None:
    """Write 21 feature columns (renamed per ``branches``) plus event/weight/process codes."""
    n = len(hlf)
    branches = branches or {}
    data = {branches.get(f, f): hlf[:, i].astype(np.float32)
            for i, f in enumerate(schema.FEATURE_NAMES)}
    data["event"] = np.arange(n, dtype=np.int64) + 100
    data["weight"] = np.full(n, 0.5)
    with uproot.recreate(path) as f:
        if process is not None:
            names = sorted(set(process))
            f["ProcessNames"] = json.dumps(names)
            data["process"] = np.array([names.index(p) for p in process], dtype=np.int32)
        tree_ = f.mktree(tree, {k: v.dtype for k, v in data.items()})
        tree_.extend(data)
