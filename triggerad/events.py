"""The common event record: one batch of events as numpy arrays, consumed by every later step.

Readers fill it from files, the generator fills it from Pythia, writers store it, and
:mod:`anomaly.features` computes the 21 high-level features from it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from triggerad import schema
from triggerad.errors import ShapeError


def _object_full(n: int, value: str) -> np.ndarray:
    """``np.full(n, value, dtype=object)``, ~20x faster."""
    out = np.empty(n, dtype=object)
    out.fill(value)
    return out


def _zeros(n: int, shape: tuple = (), dtype=np.float32) -> np.ndarray:
    return np.zeros((n, *shape), dtype=dtype)


@dataclass
class EventBatch:
    """A batch of ``n`` events in the ADC2021 layout plus the extras the 21 features need.

    Attributes
    ----------
    objects : float32 (n, 19, 4)
        [pT, eta, phi, class] per slot: row 0 MET (eta 0), rows 1-4 electrons, 5-8 muons, 9-18 jets,
        pT-ordered within type, zero-padded (see :mod:`triggerad.schema`).
    ele_charge, mu_charge : int8 (n, 4)
        Charge (+1/-1, 0 for an empty slot) of the electrons / muons in slot order.
    ele_iso, mu_iso : float32 (n, 4, 3)
        Relative isolation (cone sum / lepton pT) split into [charged, photon, neutral hadron].
    jet_mass : float32 (n, 10)
        Jet mass in GeV, slot order.
    jet_btag : bool (n, 10)
        b-tag decision, slot order.
    n_ch_had, n_neu_had : int32 (n,)
        Number of charged / neutral hadrons in the event.
    event : int64 (n,)
        Event number.
    run, lumi : int64 (n,)
        Run and luminosity-block (or time index); 0 when the source has none.
    pileup : float32 (n,)
        Pile-up proxy (number of interactions); 0 when unknown.
    process : object (n,)
        Process label (str), e.g. ``"W"``; ``"data"`` when unknown.
    weight : float64 (n,)
        Event weight (cross-section x efficiency per generated event; 1 for data).
    source_file : object (n,)
        File each event was read from ("" for generated events).
    entry : int64 (n,)
        Entry number of the event in its source file.
    hlf : float32 (n, 21) or None
        Precomputed high-level features (flat ntuples and feature parquet files carry only these;
        their ``objects`` are then all zero and ``has_objects`` is False).
    defaults : tuple of str
        Names of inputs the source lacked and that were filled with documented defaults.
    """

    objects: np.ndarray
    ele_charge: np.ndarray
    mu_charge: np.ndarray
    ele_iso: np.ndarray
    mu_iso: np.ndarray
    jet_mass: np.ndarray
    jet_btag: np.ndarray
    n_ch_had: np.ndarray
    n_neu_had: np.ndarray
    event: np.ndarray
    run: np.ndarray
    lumi: np.ndarray
    pileup: np.ndarray
    process: np.ndarray
    weight: np.ndarray
    source_file: np.ndarray
    entry: np.ndarray
    hlf: np.ndarray | None = None
    has_objects: bool = True
    defaults: tuple = field(default_factory=tuple)

    #: Per-event array fields, in a stable order (``hlf`` is handled separately).
    ARRAY_FIELDS = (
        "objects", "ele_charge", "mu_charge", "ele_iso", "mu_iso", "jet_mass", "jet_btag",
        "n_ch_had", "n_neu_had", "event", "run", "lumi", "pileup", "process", "weight",
        "source_file", "entry",
    )

    @classmethod
    def empty(cls, n: int, **arrays: np.ndarray) -> EventBatch:
        """A batch of ``n`` events with every field at its default, overridden by ``arrays``.

        Slot classes are set in ``objects[..., 3]`` only for occupied slots (pT > 0), as in ADC2021.
        """
        defaults = dict(
            objects=lambda: _zeros(n, (schema.N_SLOTS, schema.N_COLUMNS)),
            ele_charge=lambda: _zeros(n, (schema.N_ELE,), np.int8),
            mu_charge=lambda: _zeros(n, (schema.N_MU,), np.int8),
            ele_iso=lambda: _zeros(n, (schema.N_ELE, 3)),
            mu_iso=lambda: _zeros(n, (schema.N_MU, 3)),
            jet_mass=lambda: _zeros(n, (schema.N_JET,)),
            jet_btag=lambda: _zeros(n, (schema.N_JET,), bool),
            n_ch_had=lambda: _zeros(n, (), np.int32),
            n_neu_had=lambda: _zeros(n, (), np.int32),
            event=lambda: np.arange(n, dtype=np.int64),
            run=lambda: _zeros(n, (), np.int64),
            lumi=lambda: _zeros(n, (), np.int64),
            pileup=lambda: _zeros(n, ()),
            process=lambda: _object_full(n, "data"),
            weight=lambda: np.ones(n, dtype=np.float64),
            source_file=lambda: _object_full(n, ""),
            entry=lambda: np.arange(n, dtype=np.int64),
        )
        # only the fields not given are made (a chunk read with a field selection gives few)
        base = {k: arrays[k] if k in arrays else make() for k, make in defaults.items()}
        extra = {k: v for k, v in arrays.items() if k not in base}
        batch = cls(**base, **extra)
        batch.validate()
        return batch

    def __len__(self) -> int:
        return int(self.objects.shape[0])

    def validate(self, where: str = "event batch") -> None:
        """Check shapes and dtypes; raise :class:`ShapeError` naming the field otherwise."""
        n = len(self)
        expected = {
            "objects": (n, schema.N_SLOTS, schema.N_COLUMNS),
            "ele_charge": (n, schema.N_ELE),
            "mu_charge": (n, schema.N_MU),
            "ele_iso": (n, schema.N_ELE, 3),
            "mu_iso": (n, schema.N_MU, 3),
            "jet_mass": (n, schema.N_JET),
            "jet_btag": (n, schema.N_JET),
        }
        for name in self.ARRAY_FIELDS:
            arr = getattr(self, name)
            shape = expected.get(name, (n,))
            if not isinstance(arr, np.ndarray) or arr.shape != shape:
                found = getattr(arr, "shape", type(arr).__name__)
                raise ShapeError(f"{where}: field {name!r} expected shape {shape}, found {found}")
        if self.hlf is not None and self.hlf.shape != (n, len(schema.FEATURE_NAMES)):
            raise ShapeError(
                f"{where}: field 'hlf' expected shape {(n, len(schema.FEATURE_NAMES))}, "
                f"found {self.hlf.shape}"
            )

    def take(self, index: np.ndarray | slice) -> EventBatch:
        """The sub-batch selected by a boolean mask, index array or slice."""
        arrays = {name: getattr(self, name)[index] for name in self.ARRAY_FIELDS}
        hlf = None if self.hlf is None else self.hlf[index]
        return dataclasses.replace(self, **arrays, hlf=hlf)

    @classmethod
    def concatenate(cls, batches: list[EventBatch]) -> EventBatch:
        """Join batches (all with or all without objects / precomputed features)."""
        if not batches:
            raise ValueError("cannot concatenate an empty list of event batches")
        arrays = {
            name: np.concatenate([getattr(b, name) for b in batches]) for name in cls.ARRAY_FIELDS
        }
        hlfs = [b.hlf for b in batches]
        hlf = None if any(h is None for h in hlfs) else np.concatenate(hlfs)
        defaults = tuple(dict.fromkeys(d for b in batches for d in b.defaults))
        return cls(
            **arrays, hlf=hlf, has_objects=all(b.has_objects for b in batches), defaults=defaults
        )

    # Convenience views -------------------------------------------------------------------------
    @property
    def met(self) -> np.ndarray:
        """(n, 4) MET row."""
        return self.objects[:, schema.MET_SLOT]

    @property
    def electrons(self) -> np.ndarray:
        """(n, 4, 4) electron slots."""
        return self.objects[:, schema.ELE_SLOTS]

    @property
    def muons(self) -> np.ndarray:
        """(n, 4, 4) muon slots."""
        return self.objects[:, schema.MU_SLOTS]

    @property
    def jets(self) -> np.ndarray:
        """(n, 10, 4) jet slots."""
        return self.objects[:, schema.JET_SLOTS]


def fill_slots(
    pt: np.ndarray, extras: dict[str, np.ndarray] | None, n_slots: int
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Order a padded (n, m) object collection by descending pT and keep the first ``n_slots``.

    Parameters
    ----------
    pt : (n, m) array
        Object pT, 0 (or negative) for absent objects.
    extras : dict of (n, m, ...) arrays
        Other per-object quantities (eta, phi, charge, ...) reordered the same way.
    n_slots : int
        Number of slots to keep (padding with zeros if m < n_slots).

    Returns
    -------
    pt_sorted : (n, n_slots) array
    extras_sorted : dict of (n, n_slots, ...) arrays
    """
    n, m = pt.shape
    order = np.argsort(-np.where(pt > 0, pt, -np.inf), axis=1, kind="stable")[:, :n_slots]
    rows = np.arange(n)[:, None]
    out_pt = np.zeros((n, n_slots), dtype=pt.dtype)
    k = min(m, n_slots)
    out_pt[:, :k] = np.where(pt[rows, order] > 0, pt[rows, order], 0)
    present = out_pt[:, :k] > 0
    out = {}
    for name, arr in (extras or {}).items():
        full = np.zeros((n, n_slots, *arr.shape[2:]), dtype=arr.dtype)
        vals = arr[rows, order]
        mask = present.reshape(present.shape + (1,) * (arr.ndim - 2))
        full[:, :k] = np.where(mask, vals, 0)
        out[name] = full
    return out_pt, out


def from_collections(
    met_pt: np.ndarray,
    met_phi: np.ndarray,
    electrons: dict[str, np.ndarray],
    muons: dict[str, np.ndarray],
    jets: dict[str, np.ndarray],
    **event_fields: np.ndarray,
) -> EventBatch:
    """Build an :class:`EventBatch` from zero-padded per-type collections.

    Objects are ordered by pT within type and truncated to the ADC2021 slot counts (4 e, 4 mu,
    10 jets); class ids are set for occupied slots.

    Parameters
    ----------
    met_pt, met_phi : (n,) arrays
        Missing transverse momentum magnitude and azimuth.
    electrons, muons : dict of (n, m) arrays
        Keys ``pt``, ``eta``, ``phi`` and optionally ``charge`` (n, m) and ``iso`` (n, m, 3).
    jets : dict of (n, m) arrays
        Keys ``pt``, ``eta``, ``phi`` and optionally ``mass``, ``btag``.
    **event_fields : (n,) arrays
        Any per-event :class:`EventBatch` field (``event``, ``process``, ``weight``, ...).
    """
    n = len(met_pt)
    objects = np.zeros((n, schema.N_SLOTS, schema.N_COLUMNS), dtype=np.float32)
    objects[:, schema.MET_SLOT, 0] = met_pt
    objects[:, schema.MET_SLOT, 2] = met_phi
    objects[:, schema.MET_SLOT, 3] = np.where(np.asarray(met_pt) > 0, schema.CLASS_MET, 0)
    fields: dict[str, np.ndarray] = {}
    for coll, slots, nslot, cls, prefix, extra_names in (
        (electrons, schema.ELE_SLOTS, schema.N_ELE, schema.CLASS_ELE, "ele", ("charge", "iso")),
        (muons, schema.MU_SLOTS, schema.N_MU, schema.CLASS_MU, "mu", ("charge", "iso")),
        (jets, schema.JET_SLOTS, schema.N_JET, schema.CLASS_JET, "jet", ("mass", "btag")),
    ):
        pt = np.asarray(coll["pt"], dtype=np.float32).reshape(n, -1)
        extras = {k: np.asarray(coll[k]) for k in ("eta", "phi", *extra_names) if k in coll}
        pt_s, ext = fill_slots(pt, extras, nslot)
        objects[:, slots, 0] = pt_s
        objects[:, slots, 1] = ext.get("eta", 0)
        objects[:, slots, 2] = ext.get("phi", 0)
        objects[:, slots, 3] = np.where(pt_s > 0, cls, 0)
        for name in extra_names:
            if name in ext:
                fields[f"{prefix}_{name}"] = ext[name]
    casts = {"ele_charge": np.int8, "mu_charge": np.int8, "ele_iso": np.float32,
             "mu_iso": np.float32, "jet_mass": np.float32, "jet_btag": bool}
    fields = {k: v.astype(casts[k]) for k, v in fields.items()}
    return EventBatch.empty(n, objects=objects, **fields, **event_fields)
