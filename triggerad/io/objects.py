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

A branch name may be given as a list of alternatives (the first present one is used). A section's
``select`` keeps only the objects whose integer branch equals the given value, e.g. the L1 objects
of the triggering bunch crossing (``{L1EG_bx: 0}``) or the missing-ET entry of a list of energy
sums (``{L1EtSum_etSumType: 2}``); a value ``null`` removes an inherited selection.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from triggerad.events import EventBatch, from_collections
from triggerad.io.rootio import RootReader, padded, per_event

#: A branch name, or alternatives of which the first present one is read.
Names = str | list[str]


@dataclass
class LeptonBranches:
    """Branches of one lepton collection (None: the source has no such input)."""

    pt: Names
    eta: Names
    phi: Names
    charge: Names | None = None
    iso_charged: Names | None = None
    iso_photon: Names | None = None
    iso_neutral: Names | None = None
    iso_total: Names | None = None
    select: dict[str, int | None] = field(default_factory=dict)


@dataclass
class JetBranches:
    """Branches of the jet collection."""

    pt: Names
    eta: Names
    phi: Names
    mass: Names | None = None
    btag: Names | None = None
    select: dict[str, int | None] = field(default_factory=dict)


@dataclass
class MetBranches:
    """Branches of the missing transverse momentum (flat, or a collection of which the first
    selected entry is used)."""

    pt: Names
    phi: Names
    select: dict[str, int | None] = field(default_factory=dict)


@dataclass
class EventBranches:
    """Per-event branches; each optional (absent -> documented default, logged once).

    ``process`` holds integer codes indexing the JSON list of names stored in the file's
    ``ProcessNames`` string (as written by :func:`triggerad.io.nanoaod.write_root`).
    """

    event: Names | None = None
    run: Names | None = None
    lumi: Names | None = None
    weight: Names | None = None
    pileup: Names | None = None
    process: Names | None = None
    n_ch_had: Names | None = None
    n_neu_had: Names | None = None


@dataclass
class ObjectBranchMap:
    """Branch map of an object-collection tree: tree name and one section per collection.

    ``iso_relative``: whether the isolation branches are relative (True) or cone sums in GeV
    (False, divided here by the lepton pT); None: the reader's default.
    """

    tree: str
    electron: LeptonBranches
    muon: LeptonBranches
    jet: JetBranches
    met: MetBranches
    event: EventBranches
    iso_relative: bool | None = None


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

    def btag(self, values: np.ndarray, path: str) -> np.ndarray:
        """b-tag decisions from the padded raw b-tag branch values of ``path``."""
        raise NotImplementedError

    def branch_map_for(self, path: str) -> ObjectBranchMap:
        """The branch map used for ``path`` (readers with per-file presets override this)."""
        return self.branch_map

    def sum_weights(self, path: str) -> float:
        """Sum of the event-weight branch over the file (its entry count when there is none)."""
        name = self.branch_map_for(path).event.weight
        if not self.has_branch(path, name):
            return float(self.num_entries(path))
        return self.branch_sum(path, name)

    def _fetch(self, path: str, start: int, stop: int, section, keys, required: bool,
               raw: dict) -> dict:
        """Read the branches ``section.<key>`` (None for an absent optional one) into ``raw``."""
        out = {}
        for key in keys:
            name = getattr(section, key)
            arr = self.branch(path, name, start, stop, required=required) if name else None
            if arr is not None:
                raw[self.resolve(path, name)] = arr
            out[key] = arr
        return out

    def _selected(self, path: str, start: int, stop: int, select: dict, arrays: dict) -> dict:
        """Apply a section's ``select`` (object kept when each listed branch equals its value)."""
        cuts = {name: value for name, value in select.items() if value is not None}
        if not cuts:
            return arrays
        keep = None
        for name, value in cuts.items():
            passed = self.branch(path, name, start, stop) == value
            keep = passed if keep is None else keep & passed
        return {k: None if v is None else v[keep] for k, v in arrays.items()}

    def _read(self, path: str, start: int, stop: int) -> EventBatch:
        bmap = self.branch_map_for(path)
        raw: dict = {}

        def fetch(section, required, optional):
            arrays = (self._fetch(path, start, stop, section, required, True, raw)
                      | self._fetch(path, start, stop, section, optional, False, raw))
            return self._selected(path, start, stop, section.select, arrays)

        lepton_keys = ("charge", *_ISO_COMPONENTS, "iso_total")
        leptons = {"electron": fetch(bmap.electron, ("pt", "eta", "phi"), lepton_keys),
                   "muon": fetch(bmap.muon, ("pt", "eta", "phi"), lepton_keys)}
        jet = fetch(bmap.jet, ("pt", "eta", "phi"), ("mass", "btag"))
        met = fetch(bmap.met, ("pt", "phi"), ())
        event = self._fetch(path, start, stop, bmap.event, (*_EVENT_FIELDS, "process"), False, raw)
        bad = self.check_raw_nonfinite(path, start, raw)

        defaults: list[str] = []
        relative = self.iso_relative if bmap.iso_relative is None else bmap.iso_relative
        collections = {key: self._lepton(key, arrays, defaults, relative)
                       for key, arrays in leptons.items()}
        width = padded(jet["pt"]).shape[1]
        jets = {k: padded(jet[k], width=width) for k in ("pt", "eta", "phi", "mass") if jet[k]
                is not None}
        if jet["btag"] is not None:
            jets["btag"] = self.btag(padded(jet["btag"], np.float64, width=width), path)
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

    def _lepton(self, key: str, arrays: dict, defaults: list, relative: bool) -> dict:
        """Padded pt/eta/phi/charge/iso of one lepton collection for ``from_collections``."""
        pt = padded(arrays["pt"])
        coll = {"pt": pt, "eta": padded(arrays["eta"], width=pt.shape[1]),
                "phi": padded(arrays["phi"], width=pt.shape[1])}
        if arrays["charge"] is None:
            defaults.append(f"{key} charge (0)")
        else:
            coll["charge"] = padded(arrays["charge"], np.int8, width=pt.shape[1])
        comps = {k: arrays[k] for k in (*_ISO_COMPONENTS, "iso_total")}
        coll["iso"] = self._isolation(key, pt, comps, defaults, relative)
        return coll

    def _isolation(self, key: str, pt: np.ndarray, comps: dict, defaults: list,
                   relative: bool) -> np.ndarray:
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
        if not relative:
            iso = np.where(pt[..., None] > 0, iso / np.where(pt > 0, pt, 1)[..., None], 0)
        return iso.astype(np.float32)
