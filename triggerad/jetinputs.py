"""Jets with their constituents in the CMS PFNano layout, and the tagger inputs computed from them.

A :class:`PFNanoRecord` holds events the way a PFNano file does: per-event collections ``jet``
(``Jet_*``), ``pfcands`` (``PFCands_*``), ``jet_pfcands`` (``JetPFCands_*``: one row per
(jet, candidate) pair, with ``jet_idx``/``cand_idx`` indices within the event and the
jet-dependent b-tagging variables), ``sv`` (``SV_*``) and ``jet_svs`` (``JetSVs_*``: one row per
(jet, vertex) pair with ``jet_idx``/``sv_idx``), plus per-event fields. Both the PFNano reader
and the sample generator build this record; :func:`jet_batch` turns it into the fixed-shape
:class:`~triggerad.jets.JetBatch` -- one code path, so a file written and read back gives the
same tagger inputs bit for bit. Feature definitions: ``docs/tagger.md``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from triggerad.errors import OutOfRangeError
from triggerad.generation.detector import pairs
from triggerad.generation.geometry import delta_r
from triggerad.jets import (
    DEFAULT_SIZES,
    JetBatch,
)

#: Record fields per collection (internal names; the branch names are in the pfnano branch map).
FIELDS = {
    "jet": ("pt", "eta", "phi", "mass", "ctau", "label", "gen_pt", "gen_dr", "vertex_fraction",
            "vertex_x", "vertex_y", "vertex_z", "hadron_flavour", "parton_flavour"),
    "pfcands": ("pt", "eta", "phi", "mass", "charge", "pdg_id", "d0", "d0_err", "dz", "dz_err",
                "puppi_weight", "trk_chi2", "pv_assoc_quality", "trk_quality", "lost_inner_hits",
                "hcal_fraction", "from_pv"),
    "jet_pfcands": ("jet_idx", "cand_idx", "eta_rel", "pt_ratio", "ppar_ratio", "sip3d_val",
                    "sip3d_sig", "jet_dist"),
    "sv": ("pt", "eta", "phi", "mass", "x", "y", "z", "ndof", "chi2", "ntracks", "dlen",
           "dlen_sig", "dxy", "dxy_sig", "p_angle"),
    "jet_svs": ("jet_idx", "sv_idx", "pt", "mass", "ntracks", "chi2", "normchi2", "dxy",
                "dxysig", "d3d", "d3dsig", "costhetasvpv", "delta_r", "enratio"),
}
EVENT_FIELDS = ("event", "run", "lumi", "weight", "pileup", "process", "domain")
#: Integer fields (all others are float32; ``process`` is str).
INT_FIELDS = {
    "label": np.int8, "hadron_flavour": np.int8, "parton_flavour": np.int16, "charge": np.int8,
    "pdg_id": np.int32, "pv_assoc_quality": np.int8, "trk_quality": np.int8,
    "lost_inner_hits": np.int8, "from_pv": np.int8, "jet_idx": np.int16, "cand_idx": np.int32,
    "sv_idx": np.int16, "ntracks": np.int16, "event": np.int64, "run": np.int64,
    "lumi": np.int64, "domain": np.int8,
}
#: Index fields: (collection, field) -> collection indexed.
INDEX_FIELDS = {
    ("jet_pfcands", "jet_idx"): "jet", ("jet_pfcands", "cand_idx"): "pfcands",
    ("jet_svs", "jet_idx"): "jet", ("jet_svs", "sv_idx"): "sv",
}
#: DeltaR given to ``dr_min_sv`` when the jet has no secondary vertex (and its upper clip).
NO_SV_DR = 0.4
#: Invariant-mass threshold (GeV) of the CSV "above charm" track.
CHARM_MASS = 1.5
#: Cone of ``n_tracks_eta_rel``.
ETA_REL_CONE = 0.3


def dtype_of(name: str):
    """The stored dtype of a record field."""
    if name == "process":
        return object
    if name == "weight":
        return np.float64
    return INT_FIELDS.get(name, np.float32)


@dataclass
class Collection:
    """One per-event collection: ``counts`` (n_events,) and flat arrays ``data[field]``."""

    counts: np.ndarray
    data: dict[str, np.ndarray]

    @property
    def offsets(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.counts)]).astype(np.int64)

    @property
    def event_index(self) -> np.ndarray:
        return np.repeat(np.arange(len(self.counts)), self.counts)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.data[name]


@dataclass
class PFNanoRecord:
    """Events in the PFNano layout (module docstring). ``events[field]`` are (n_events,) arrays."""

    events: dict[str, np.ndarray]
    jet: Collection
    pfcands: Collection
    jet_pfcands: Collection
    sv: Collection
    jet_svs: Collection

    @property
    def n_events(self) -> int:
        return len(self.jet.counts)

    def collections(self) -> dict[str, Collection]:
        return {name: getattr(self, name) for name in FIELDS}

    @classmethod
    def build(cls, events: dict, **collections: tuple[np.ndarray, dict]) -> PFNanoRecord:
        """A record from per-event fields and ``name=(counts, {field: flat array})`` for every
        collection, casting every field to its stored dtype (float32 for floats)."""
        cast = {k: np.asarray(v).astype(dtype_of(k)) for k, v in events.items()}
        made = {}
        for name, (counts, data) in collections.items():
            made[name] = Collection(
                np.asarray(counts, dtype=np.int64),
                {k: np.asarray(data[k]).astype(dtype_of(k)) for k in FIELDS[name]},
            )
        return cls(events=cast, **made)


def check_indices(
    record: PFNanoRecord, where: str, names: dict, *, first_entry: int = 0
) -> None:
    """Raise :class:`OutOfRangeError` if an index field points outside its collection.

    Parameters
    ----------
    record : PFNanoRecord
    where : str
        File (and tree) named in the message.
    names : dict
        (collection, field) -> branch name, for the message.
    first_entry : int
        Entry number of the record's first event in the file.
    """
    for (coll, fld), target in INDEX_FIELDS.items():
        c = getattr(record, coll)
        index = c[fld].astype(np.int64)
        size = getattr(record, target).counts[c.event_index]
        bad = (index < 0) | (index >= size)
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            ev = int(c.event_index[k])
            raise OutOfRangeError(
                f"{where}: branch {names[(coll, fld)]!r} at entry {first_entry + ev}: index "
                f"{int(index[k])!r} out of range (the event has {int(size[k])} entries in "
                f"{target!r}); {int(bad.sum())} bad indices in entries [{first_entry}, "
                f"{first_entry + record.n_events})"
            )


def _ranked(jet: np.ndarray, key: np.ndarray, values: np.ndarray, n_jets: int, size: int):
    """Scatter per-entry ``values`` (k, F) into (n_jets, size, F), ordered by decreasing ``key``
    within each jet (ties keep the entry order), truncated at ``size``."""
    order = np.lexsort((np.arange(len(jet)), -key, jet))
    jet_sorted = jet[order]
    counts = np.bincount(jet_sorted, minlength=n_jets)
    rank = np.arange(len(order)) - np.repeat(np.cumsum(counts) - counts, counts)
    keep = rank < size
    out = np.zeros((n_jets, size, values.shape[1]), dtype=np.float32)
    out[jet_sorted[keep], rank[keep]] = values[order][keep]
    return out


def _min_sv_dr(jet, eta, phi, sv_jet, sv_eta, sv_phi, n_jets) -> np.ndarray:
    """For each entry, the smallest DeltaR to a vertex of the same jet, clipped at NO_SV_DR."""
    order = np.argsort(sv_jet, kind="stable")
    offsets = np.concatenate([[0], np.cumsum(np.bincount(sv_jet, minlength=n_jets))])
    oi, pi = pairs(jet, offsets)
    dr = delta_r(eta[oi], phi[oi], sv_eta[order][pi], sv_phi[order][pi])
    out = np.full(len(jet), NO_SV_DR)
    np.minimum.at(out, oi, dr)
    return np.minimum(out, NO_SV_DR)


def _above_charm(jet, sig, p4, ips: np.ndarray, n_jets: int) -> np.ndarray:
    """(n_jets, 4) impact parameters of the first track (by decreasing ``sig``) that lifts the
    invariant mass of the track sum above :data:`CHARM_MASS` (0 if none)."""
    order = np.lexsort((np.arange(len(jet)), -sig, jet))
    j = jet[order]
    csum = np.cumsum(p4[order], axis=0)
    start = np.concatenate([[0], np.cumsum(np.bincount(j, minlength=n_jets))])[:-1]
    before = np.where((start[j] > 0)[:, None], csum[np.maximum(start[j] - 1, 0)], 0.0)
    s = csum - before
    mass2 = s[:, 3] ** 2 - np.sum(s[:, :3] ** 2, axis=1)
    above = np.flatnonzero(mass2 > CHARM_MASS**2)
    out = np.zeros((n_jets, ips.shape[1]), dtype=np.float64)
    jets_above, first = np.unique(j[above], return_index=True)
    out[jets_above] = ips[order][above[first]]
    return out


def _four_momenta(pt, eta, phi, mass) -> np.ndarray:
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    return np.stack([px, py, pz, np.sqrt(px**2 + py**2 + pz**2 + mass**2)], axis=-1)


def jet_batch(record: PFNanoRecord, sizes: dict[str, int] | None = None) -> JetBatch:
    """The fixed-shape tagger inputs of every jet of ``record`` (definitions: docs/tagger.md).

    Parameters
    ----------
    record : PFNanoRecord
        Events with valid indices (:func:`check_indices`).
    sizes : dict, optional
        ``{"charged": Nc, "neutral": Nn, "sv": Ns}`` (default 25, 25, 4).

    Returns
    -------
    JetBatch
        One row per jet of the record, in event order; ``source_file`` empty, ``entry`` the
        event index within the record.
    """
    sizes = {**DEFAULT_SIZES, **(sizes or {})}
    jets, cands, jp, svs, js = (record.jet, record.pfcands, record.jet_pfcands, record.sv,
                                record.jet_svs)
    f64 = {k: v.astype(np.float64) for k, v in jets.data.items()}
    c64 = {k: v.astype(np.float64) for k, v in cands.data.items()}
    n_jets = int(jets.counts.sum())
    jet_of_event = jets.event_index
    gj = jets.offsets[jp.event_index] + jp["jet_idx"]
    gc = cands.offsets[jp.event_index] + jp["cand_idx"]
    sj = jets.offsets[js.event_index] + js["jet_idx"]
    gs = svs.offsets[js.event_index] + js["sv_idx"]
    jpt, jeta, jphi = f64["pt"][gj], f64["eta"][gj], f64["phi"][gj]
    ceta, cphi = c64["eta"][gc], c64["phi"][gc]
    dr = delta_r(ceta, cphi, jeta, jphi)
    pt_frac = c64["pt"][gc] / np.maximum(jpt, 1e-9)
    sv_eta, sv_phi = svs["eta"].astype(np.float64)[gs], svs["phi"].astype(np.float64)[gs]
    dr_sv = _min_sv_dr(gj, ceta, cphi, sj, sv_eta, sv_phi, n_jets)
    charged = cands["charge"][gc] != 0

    d0, d0_err = c64["d0"][gc], c64["d0_err"][gc]
    side = np.where(d0 * np.sin(jphi - cphi) >= 0, 1.0, -1.0)
    sip2d = np.abs(d0) * side
    sip2d_sig = np.where(d0_err > 0, sip2d / np.where(d0_err > 0, d0_err, 1.0), 0.0)
    pair = {k: jp[k].astype(np.float64) for k in ("eta_rel", "pt_ratio", "ppar_ratio",
                                                   "sip3d_val", "sip3d_sig", "jet_dist")}
    ch_values = np.stack([
        pair["eta_rel"], pair["pt_ratio"], pair["ppar_ratio"], dr, sip2d, sip2d_sig,
        pair["sip3d_val"], pair["sip3d_sig"], pair["jet_dist"], pt_frac, dr_sv,
        c64["pv_assoc_quality"][gc], c64["from_pv"][gc], c64["puppi_weight"][gc],
        c64["trk_chi2"][gc], c64["trk_quality"][gc], c64["lost_inner_hits"][gc],
    ], axis=-1)
    ch = np.flatnonzero(charged)
    charged_block = _ranked(gj[ch], sip2d_sig[ch], ch_values[ch], n_jets, sizes["charged"])
    ne = np.flatnonzero(~charged)
    ne_values = np.stack([
        pt_frac, dr, (cands["pdg_id"][gc] == 22).astype(np.float64), c64["hcal_fraction"][gc],
        dr_sv, c64["puppi_weight"][gc],
    ], axis=-1)[ne]
    neutral_block = _ranked(gj[ne], c64["pt"][gc][ne], ne_values, n_jets, sizes["neutral"])
    s64 = {k: v.astype(np.float64) for k, v in js.data.items()}
    sv_values = np.stack([
        s64["pt"], s64["delta_r"], s64["mass"], s64["ntracks"], s64["chi2"],
        svs["ndof"].astype(np.float64)[gs], s64["dxy"], s64["dxysig"], s64["d3d"], s64["d3dsig"],
        s64["costhetasvpv"], s64["enratio"],
    ], axis=-1)
    sv_block = _ranked(sj, s64["d3dsig"], sv_values, n_jets, sizes["sv"])

    n_charged = np.bincount(gj[ch], minlength=n_jets)
    n_neutral = np.bincount(gj[ne], minlength=n_jets)
    n_sv = np.bincount(sj, minlength=n_jets)
    p4 = _four_momenta(c64["pt"][gc], ceta, cphi, c64["mass"][gc])[ch]
    sums = np.stack([np.bincount(gj[ch], p4[:, k], minlength=n_jets) for k in range(3)], axis=-1)
    sum_pt = np.hypot(sums[:, 0], sums[:, 1])
    sum_eta = np.arcsinh(sums[:, 2] / np.maximum(sum_pt, 1e-9))
    sum_phi = np.arctan2(sums[:, 1], sums[:, 0])
    charm = _above_charm(gj[ch], sip2d_sig[ch], p4, np.stack(
        [sip2d[ch], sip2d_sig[ch], pair["sip3d_val"][ch], pair["sip3d_sig"][ch]], axis=-1), n_jets)
    selected = (c64["trk_quality"][gc][ch] == 1) & (c64["pt"][gc][ch] > 1.0)
    glob = np.stack([
        f64["pt"], f64["eta"], n_charged, n_neutral, n_sv,
        sum_pt / np.maximum(f64["pt"], 1e-9),
        np.where(n_charged > 0, delta_r(sum_eta, sum_phi, f64["eta"], f64["phi"]), 0.0),
        np.where(n_sv > 0, 0.0, 2.0), charm[:, 0], charm[:, 1], charm[:, 2], charm[:, 3],
        np.bincount(gj[ch][selected], minlength=n_jets),
        np.bincount(gj[ch][dr[ch] < ETA_REL_CONE], minlength=n_jets),
    ], axis=-1)
    ev = record.events
    return JetBatch.empty(
        n_jets, sizes,
        charged=charged_block, neutral=neutral_block, sv=sv_block,
        globals=glob.astype(np.float32),
        ctau=jets["ctau"].astype(np.float32), label=jets["label"].astype(np.int8),
        gen_pt=jets["gen_pt"].astype(np.float32), gen_dr=jets["gen_dr"].astype(np.float32),
        vertex_fraction=jets["vertex_fraction"].astype(np.float32),
        vertex=np.stack([jets["vertex_x"], jets["vertex_y"], jets["vertex_z"]], axis=-1)
        .astype(np.float32),
        hadron_flavour=jets["hadron_flavour"].astype(np.int8),
        parton_flavour=jets["parton_flavour"].astype(np.int16),
        event=ev["event"][jet_of_event].astype(np.int64),
        jet_index=(np.arange(n_jets) - jets.offsets[jet_of_event]).astype(np.int16),
        process=ev["process"][jet_of_event].astype(object),
        weight=ev["weight"][jet_of_event].astype(np.float64),
        domain=ev["domain"][jet_of_event].astype(np.int8),
        pileup=ev["pileup"][jet_of_event].astype(np.float32),
        entry=jet_of_event.astype(np.int64),
    )


def concatenate_records(records: list[PFNanoRecord]) -> PFNanoRecord:
    """The events of several records, in order (at least one record)."""
    first = records[0]
    return PFNanoRecord(
        events={k: np.concatenate([r.events[k] for r in records]) for k in first.events},
        **{
            name: Collection(
                np.concatenate([getattr(r, name).counts for r in records]),
                {f: np.concatenate([getattr(r, name).data[f] for r in records])
                 for f in FIELDS[name]},
            )
            for name in FIELDS
        },
    )


def take_events(record: PFNanoRecord, index) -> PFNanoRecord:
    """The events of ``record`` selected by a slice or a boolean mask (in order)."""
    keep = np.zeros(record.n_events, bool)
    keep[index] = True
    out = {}
    for name in FIELDS:
        coll = getattr(record, name)
        rows = np.repeat(keep, coll.counts)
        out[name] = Collection(coll.counts[keep], {k: v[rows] for k, v in coll.data.items()})
    return PFNanoRecord(events={k: v[keep] for k, v in record.events.items()}, **out)
