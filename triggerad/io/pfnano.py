"""CMS PFNano files (``Events`` tree, one entry per event): reader into jets, and writer.

PFNano stores jets with their constituents per event: ``Jet_*``; ``PFCands_*`` (pt, eta, phi,
mass, charge, pdgId, d0, d0Err, dz, dzErr, puppiWeight, trkChi2, pvAssocQuality, trkQuality,
lostInnerHits); ``JetPFCands_*`` (one entry per (jet, candidate) pair: ``jetIdx``,
``pFCandsIdx`` and the b-tagging variables ``btagEtaRel``, ``btagPtRatio``, ``btagPParRatio``,
``btagSip3dVal``, ``btagSip3dSig``, ``btagJetDistVal``); ``SV_*``; ``JetSVs_*`` (one entry per
(jet, vertex) pair: ``jetIdx``, ``sVIdx``, pt, mass, ntracks, chi2, normchi2, dxy, dxysig, d3d,
d3dsig, costhetasvpv, deltaR, enration). The reader builds a
:class:`~triggerad.jetinputs.PFNanoRecord` per chunk of events and turns it into the fixed-shape
tagger inputs with :func:`~triggerad.jetinputs.jet_batch`, keeping jets with pT > ``jet_pt_min``
and |eta| < ``jet_eta_max`` (branch map ``configs/branch_maps/pfnano.yaml``).

trigger-ad extras (absent from CMS files; then the documented default, logged once): per jet
``Jet_llpCtau`` (0), ``Jet_llpLabel`` (-1), ``Jet_genPt`` (0), ``Jet_genDR`` (-1),
``Jet_vertexFraction`` (0), ``Jet_vertexX/Y/Z`` (0); NanoAOD MC branches ``Jet_hadronFlavour``,
``Jet_partonFlavour`` (0); per candidate ``PFCands_hcalFraction`` (0 for charged and photons, 1
for neutral hadrons) and ``PFCands_fromPV`` (from ``pvAssocQuality``: 7 -> 3, 5-6 -> 2, 4 -> 1,
else 0); per event ``weight`` (1), ``process`` (integer code into the ``ProcessNames`` JSON list;
``data``), ``domain`` (0), ``Pileup_nTrueInt`` (0), ``run``/``luminosityBlock`` (0); ``SV_*``
other than eta, phi, ndof (0). :func:`write_pfnano` writes every field, so a written file reads
back to identical inputs.

Bad input: a missing required branch (named, with the 10 nearest), an index out of its
collection, NaN/inf in a floating-point branch (error or drop the event), a c-tau outside
``ctau_range``, an empty file: clear errors naming the file and the branch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from triggerad import atomic
from triggerad.errors import ShapeError, did_you_mean, missing_field
from triggerad.io.base import ReadOptions
from triggerad.io.common import load_branch_map
from triggerad.io.jetbase import JetReaderMixin
from triggerad.io.rootio import PROCESS_NAMES, RootReader
from triggerad.jetinputs import (
    EVENT_FIELDS,
    FIELDS,
    PFNanoRecord,
    check_indices,
    jet_batch,
    take_events,
)
from triggerad.jets import DEFAULT_SIZES, JetBatch

#: Optional record fields and their defaults (None: derived, see the module docstring).
OPTIONAL = {
    "jet": {"ctau": 0.0, "label": -1, "gen_pt": 0.0, "gen_dr": -1.0, "vertex_fraction": 0.0,
            "vertex_x": 0.0, "vertex_y": 0.0, "vertex_z": 0.0, "hadron_flavour": 0,
            "parton_flavour": 0},
    "pfcands": {"hcal_fraction": None, "from_pv": None},
    "jet_pfcands": {},
    "sv": {f: 0.0 for f in FIELDS["sv"] if f not in ("eta", "phi", "ndof")},
    "jet_svs": {},
    "event": {"event": None, "run": 0, "lumi": 0, "weight": 1.0, "pileup": 0.0,
              "process": "data", "domain": 0},
}
#: PFNano collection prefix of each record collection (the writer's branch names).
PREFIX = {"jet": "Jet", "pfcands": "PFCands", "jet_pfcands": "JetPFCands", "sv": "SV",
          "jet_svs": "JetSVs"}
#: Default events per chunk of the reader.
DEFAULT_CHUNK_EVENTS = 10_000
#: Events per ``TTree.extend`` call of the writer.
BASKET_EVENTS = 10_000


@dataclass
class PFNanoBranchMap:
    """Branch names of every record field (``null``: use the default), the tree, the fixed
    candidate-block sizes, the jet selection and the accepted c-tau range (mm)."""

    tree: str = "Events"
    jet: dict[str, str | None] = field(default_factory=dict)
    pfcands: dict[str, str | None] = field(default_factory=dict)
    jet_pfcands: dict[str, str | None] = field(default_factory=dict)
    sv: dict[str, str | None] = field(default_factory=dict)
    jet_svs: dict[str, str | None] = field(default_factory=dict)
    event: dict[str, str | None] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_SIZES))
    jet_pt_min: float = 20.0
    jet_eta_max: float = 2.4
    ctau_range: list[float] = field(default_factory=lambda: [0.01, 10_000.0])

    def __post_init__(self) -> None:
        for section, valid in (*FIELDS.items(), ("event", EVENT_FIELDS)):
            mapping = getattr(self, section)
            for key in mapping:
                if key not in valid:
                    raise ValueError(f"{section}: unknown field {key!r}; "
                                     + did_you_mean(key, valid))
            missing = [k for k in valid if k not in mapping and k not in OPTIONAL[section]]
            if missing:
                raise ValueError(f"{section}: no branch given for the required field(s) {missing}")
        for key, value in self.sizes.items():
            if key not in DEFAULT_SIZES:
                raise ValueError(f"sizes: unknown key {key!r}; " + did_you_mean(key, DEFAULT_SIZES))
            if value <= 0:
                raise ValueError(f"sizes.{key} must be positive, found {value!r}")
        if len(self.ctau_range) != 2 or not 0 < self.ctau_range[0] < self.ctau_range[1]:
            raise ValueError(f"ctau_range must be [min, max] with 0 < min < max, found "
                             f"{self.ctau_range!r}")

    def branch(self, section: str, name: str) -> str | None:
        return getattr(self, section).get(name)


def _derived(section: str, name: str, data: dict, n: int) -> np.ndarray:
    """Defaults computed from other fields (module docstring)."""
    if (section, name) == ("pfcands", "hcal_fraction"):
        return np.where((data["charge"] == 0) & (data["pdg_id"] != 22), 1.0, 0.0)
    if (section, name) == ("pfcands", "from_pv"):
        q = data["pv_assoc_quality"]
        return np.select([q == 7, (q == 5) | (q == 6), q == 4], [3, 2, 1], 0)
    raise KeyError(name)


class PFNanoReader(JetReaderMixin, RootReader):
    """Read (CMS or trigger-ad) PFNano files into jets (module docstring)."""

    name = "pfnano"
    ctau_field = "Jet_llpCtau"

    def __init__(self, branch_map=None, options=None):
        # events carry ~100 candidates each: a smaller default chunk than the event readers'
        options = options or ReadOptions(chunk_size=DEFAULT_CHUNK_EVENTS)
        super().__init__(load_branch_map(PFNanoBranchMap, self.name, branch_map), options)
        self.tree_name = self.branch_map.tree
        self.ctau_range = tuple(self.branch_map.ctau_range)
        self.ctau_field = self.branch_map.branch("jet", "ctau") or "ctau"

    def check_branches(self, path: str) -> None:
        """Raise :class:`MissingFieldError` for the first required branch absent from ``path``
        (listing the nearest branch names, at most 10)."""
        for section, fields in (*FIELDS.items(), ("event", EVENT_FIELDS)):
            for name in fields:
                branch = self.branch_map.branch(section, name)
                if name not in OPTIONAL[section] and not self.has_branch(path, branch):
                    raise missing_field(
                        "branch", str(branch), f"{path}:{self.tree_name}",
                        sorted(self._opened(path).branches))

    def _collection(self, path: str, section: str, start: int, stop: int, raw: dict):
        """Counts and flat arrays of one collection (defaults filled, noted once)."""
        import awkward as ak

        arrays, counts, counted_by = {}, None, None
        for name in FIELDS[section]:
            branch = self.branch_map.branch(section, name)
            optional = name in OPTIONAL[section]
            if optional and not self.has_branch(path, branch):
                continue
            arr = self.branch(path, branch, start, stop)
            raw[branch] = arr
            num = ak.to_numpy(ak.num(arr, axis=1)).astype(np.int64)
            if counts is None:
                counts, counted_by = num, branch
            elif not np.array_equal(num, counts):
                k = int(np.flatnonzero(num != counts)[0])
                raise ShapeError(
                    f"{path}:{self.tree_name}: branch {branch!r} has {int(num[k])} entries at "
                    f"entry {start + k}, but {counted_by!r} has {int(counts[k])}")
            arrays[name] = ak.to_numpy(ak.flatten(arr, axis=1))
        total = int(counts.sum())
        for name in FIELDS[section]:
            if name in arrays:
                continue
            default = OPTIONAL[section][name]
            self.note_default(path, f"{PREFIX[section]} {name}")
            arrays[name] = (_derived(section, name, arrays, total) if default is None
                            else np.full(total, default))
        return counts, arrays

    def _events(self, path: str, start: int, stop: int, raw: dict) -> dict:
        n = stop - start
        out = {}
        for name in EVENT_FIELDS:
            branch = self.branch_map.branch("event", name)
            if self.has_branch(path, branch):
                arr = np.asarray(self.branch(path, branch, start, stop))
                if name == "process":
                    arr = self.process_labels(path, arr.astype(np.int64))
                else:
                    raw[branch] = arr
                out[name] = arr
            else:
                self.note_default(path, f"event {name}")
                default = OPTIONAL["event"][name]
                out[name] = (np.arange(start, stop) if default is None
                             else np.full(n, default, dtype=object if name == "process" else None))
        return out

    def _read_jets(self, path: str, start: int, stop: int) -> JetBatch:
        self.check_branches(path)
        raw: dict = {}
        collections = {s: self._collection(path, s, start, stop, raw) for s in FIELDS}
        events = self._events(path, start, stop, raw)
        record = PFNanoRecord.build(events, **collections)
        names = {(s, f): self.branch_map.branch(s, f) for s in FIELDS for f in FIELDS[s]}
        bad = self.check_raw_nonfinite(path, start, raw)
        if bad.any():
            record = take_events(record, ~bad)
        kept = np.flatnonzero(~bad) + start
        check_indices(record, f"{path}:{self.tree_name}", names, first_entry=start)
        batch = jet_batch(record, self.branch_map.sizes)
        batch.entry = kept[batch.entry]
        keep = (batch.pt > self.branch_map.jet_pt_min) & (
            np.abs(batch.eta) < self.branch_map.jet_eta_max)
        return batch.take(keep)


def _branches(record: PFNanoRecord, codes: np.ndarray, bmap: PFNanoBranchMap) -> dict:
    """The PFNano-named branches of a record (collections as awkward records)."""
    import awkward as ak

    out = {}
    for section, coll in record.collections().items():
        prefix = PREFIX[section] + "_"
        fields = {}
        for name in FIELDS[section]:
            branch = bmap.branch(section, name)
            if not branch or not branch.startswith(prefix):
                raise ValueError(f"the writer needs branch names {prefix}*, found {branch!r} "
                                 f"for {section}.{name}")
            fields[branch[len(prefix):]] = ak.unflatten(coll.data[name], coll.counts)
        out[PREFIX[section]] = ak.zip(fields)
    for name in EVENT_FIELDS:
        out[bmap.branch("event", name)] = codes if name == "process" else record.events[name]
    return out


def write_pfnano(path: str | Path, record: PFNanoRecord) -> None:
    """Write ``record`` as a PFNano ``Events`` tree with the default branch names, atomically.

    Process names are stored as integer codes (``process``) into the JSON list of names in the
    ``ProcessNames`` string object, as by the NanoAOD writer.
    """
    import awkward as ak
    import uproot

    bmap = load_branch_map(PFNanoBranchMap, "pfnano")
    names, codes = np.unique(record.events["process"].astype(str), return_inverse=True)
    codes = codes.astype(np.int32)
    with atomic.atomic_path(path) as tmp, uproot.recreate(tmp) as file:
        file[PROCESS_NAMES] = json.dumps(names.tolist())
        tree = None
        for lo in range(0, max(record.n_events, 1), BASKET_EVENTS):
            part = take_events(record, slice(lo, lo + BASKET_EVENTS))
            data = _branches(part, codes[lo:lo + BASKET_EVENTS], bmap)
            if tree is None:
                types = {k: (ak.type(v) if isinstance(v, ak.Array) else v.dtype)
                         for k, v in data.items()}
                tree = file.mktree(bmap.tree, types)
            tree.extend(data)
