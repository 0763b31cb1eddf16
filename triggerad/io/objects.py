"""Readers of ROOT trees holding physics-object collections (Delphes, NanoAOD): shared part.

The branch map names, per collection, the branches of pT, eta, phi, charge, the isolation components
and (jets) mass and b-tag; plus MET and per-event fields. Collections are padded per chunk, then
ordered by pT and truncated to the ADC2021 slots by :func:`triggerad.events.from_collections`.

Isolation (relative to the lepton pT, components [charged, photon, neutral hadron]):

- ``iso_charged``, ``iso_photon``, ``iso_neutral``: the components, where the source has them;
- ``iso_total``: the sum of all three; when ``iso_neutral`` is absent, neutral = total - charged -
  photon;
- a component the source lacks is 0 (logged once per reader).

Subclasses set ``iso_relative`` (False: the branches hold cone sums in GeV, divided here by the
lepton pT) and implement :meth:`ObjectTreeReader.btag`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from triggerad.events import EventBatch, from_collections
from triggerad.io.rootio import RootReader, padded, per_event


@dataclass
class LeptonBranches:
    """Branches of one lepton collection (None: the source has no such input)."""

    pt: str
    eta: str
    phi: str
    charge: str | None = None
    iso_charged: str | None = None
    iso_photon: str | None = None
    iso_neutral: str | None = None
    iso_total: str | None = None


@dataclass
class JetBranches:
    """Branches of the jet collection."""

    pt: str
    eta: str
    phi: str
    mass: str | None = None
    btag: str | None = None


@dataclass
class MetBranches:
    """Branches of the missing transverse momentum (flat, or a one-element collection)."""

    pt: str
    phi: str


@dataclass
class EventBranches:
    """Per-event branches; each optional (absent -> documented default, logged once).

    ``process`` holds integer codes indexing the JSON list of names stored in the file's
    ``ProcessNames`` string (as written by :func:`triggerad.io.nanoaod.write_root`).
    """

    event: str | None = None
    run: str | None = None
    lumi: str | None = None
    weight: str | None = None
    pileup: str | None = None
    process: str | None = None
    n_ch_had: str | None = None
    n_neu_had: str | None = None


@dataclass
class ObjectBranchMap:
    """Branch map of an object-collection tree: tree name and one section per collection."""

    tree: str
    electron: LeptonBranches
    muon: LeptonBranches
    jet: JetBranches
    met: MetBranches
    event: EventBranches


#: Defaults of the per-event fields (EventBatch field -> (dtype, what the missing input is called)).
_EVENT_FIELDS = {
    "event": (np.int64, "event number (entry number used)"),
    "run": (np.int64, "run number (0)"),
    "lumi": (np.int64, "luminosity block (0)"),
    "weight": (np.float64, "event weight (1)"),
    "pileup": (np.float32, "pile-up (0)"),
    "n_ch_had": (np.int32, "charged-hadron count (0)"),
    "n_neu_had": (np.int32, "neutral-hadron count (0)"),
}

_ISO_COMPONENTS = ("iso_charged", "iso_photon", "iso_neutral")


class ObjectTreeReader(RootReader):
    """Base of the Delphes and NanoAOD readers (see module docstring)."""

    #: Whether the isolation branches are relative (True) or cone sums in GeV (False).
    iso_relative = True
    branch_map: ObjectBranchMap

    def btag(self, values: np.ndarray) -> np.ndarray:
        """b-tag decisions from the padded raw b-tag branch values."""
        raise NotImplementedError

    def _fetch(self, path: str, start: int, stop: int, section, keys, required: bool,
               raw: dict) -> dict:
        """Read the branches ``section.<key>`` (None for an absent optional one) into ``raw``."""
        out = {}
        for key in keys:
            name = getattr(section, key)
            arr = self.branch(path, name, start, stop, required=required) if name else None
            if arr is not None:
                raw[name] = arr
            out[key] = arr
        return out

    def _read(self, path: str, start: int, stop: int) -> EventBatch:
        bmap = self.branch_map
        raw: dict = {}

        def fetch(section, required, optional):
            return (self._fetch(path, start, stop, section, required, True, raw)
                    | self._fetch(path, start, stop, section, optional, False, raw))

        lepton_keys = ("charge", *_ISO_COMPONENTS, "iso_total")
        leptons = {"electron": fetch(bmap.electron, ("pt", "eta", "phi"), lepton_keys),
                   "muon": fetch(bmap.muon, ("pt", "eta", "phi"), lepton_keys)}
        jet = fetch(bmap.jet, ("pt", "eta", "phi"), ("mass", "btag"))
        met = fetch(bmap.met, ("pt", "phi"), ())
        event = fetch(bmap.event, (), (*_EVENT_FIELDS, "process"))
        bad = self.check_raw_nonfinite(path, start, raw)

        defaults: list[str] = []
        collections = {key: self._lepton(key, arrays, defaults) for key, arrays in leptons.items()}
        width = padded(jet["pt"]).shape[1]
        jets = {k: padded(jet[k], width=width) for k in ("pt", "eta", "phi", "mass") if jet[k]
                is not None}
        if jet["btag"] is not None:
            jets["btag"] = self.btag(padded(jet["btag"], np.float64, width=width))
        defaults += [what for k, what in (("mass", "jet mass (0)"), ("btag", "jet b-tag (False)"))
                     if jet[k] is None]
        n = len(met["pt"])
        fields = {}
        for name, (dtype, what) in _EVENT_FIELDS.items():
            if event[name] is None:
                defaults.append(what)
            else:
                fields[name] = per_event(event[name], dtype)
        fields.setdefault("event", np.arange(start, start + n, dtype=np.int64))
        if event["process"] is None:
            defaults.append("process label ('data')")
        else:
            fields["process"] = self.process_labels(path, per_event(event["process"], np.int64))
        batch = from_collections(
            per_event(met["pt"], np.float32), per_event(met["phi"], np.float32),
            collections["electron"], collections["muon"], jets, **fields,
        )
        batch.defaults = tuple(dict.fromkeys(defaults))
        if bad.any():  # poisoned: the base reader drops them keeping their entry numbers
            batch.objects[bad, 0, 0] = np.nan
        return batch

    def _lepton(self, key: str, arrays: dict, defaults: list) -> dict:
        """Padded pt/eta/phi/charge/iso of one lepton collection for ``from_collections``."""
        pt = padded(arrays["pt"])
        coll = {"pt": pt, "eta": padded(arrays["eta"], width=pt.shape[1]),
                "phi": padded(arrays["phi"], width=pt.shape[1])}
        if arrays["charge"] is None:
            defaults.append(f"{key} charge (0)")
        else:
            coll["charge"] = padded(arrays["charge"], np.int8, width=pt.shape[1])
        comps = {k: arrays[k] for k in (*_ISO_COMPONENTS, "iso_total")}
        coll["iso"] = self._isolation(key, pt, comps, defaults)
        return coll

    def _isolation(self, key: str, pt: np.ndarray, comps: dict, defaults: list) -> np.ndarray:
        """(n, m, 3) relative isolation [charged, photon, neutral] of one lepton collection."""
        width = pt.shape[1]
        values = {k: padded(v, width=width) for k, v in comps.items() if v is not None}
        for comp in ("iso_charged", "iso_photon"):
            if comp not in values:
                defaults.append(f"{key} {comp} (0)")
                values[comp] = np.zeros_like(pt)
        if "iso_neutral" not in values:
            if "iso_total" in values:
                values["iso_neutral"] = values["iso_total"] - values["iso_charged"] - values[
                    "iso_photon"]
            else:
                defaults.append(f"{key} iso_neutral (0)")
                values["iso_neutral"] = np.zeros_like(pt)
        iso = np.stack([values[c] for c in _ISO_COMPONENTS], axis=-1)
        if not self.iso_relative:
            iso = np.where(pt[..., None] > 0, iso / np.where(pt > 0, pt, 1)[..., None], 0)
        return iso.astype(np.float32)
