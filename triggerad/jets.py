"""The jet record: one batch of jets with the fixed-shape inputs of the LLP jet tagger.

The PFNano reader (:mod:`triggerad.io.pfnano`), the jet HDF5 reader (:mod:`triggerad.io.jeth5`)
and the LLP sample generator (:mod:`tagger.generate`) produce :class:`JetBatch`; the tagger consumes
it. The per-candidate inputs follow the CMS LLP tagger (arXiv:1912.12238); every feature is
defined in ``docs/tagger.md`` and computed in :mod:`triggerad.jetinputs`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from triggerad.errors import ShapeError

#: Features of each charged candidate (tracks), ranked by signed 2D impact-parameter significance.
CHARGED_FEATURES = (
    "eta_rel", "pt_ratio", "ppar_ratio", "delta_r", "sip2d_val", "sip2d_sig", "sip3d_val",
    "sip3d_sig", "jet_dist", "pt_frac", "dr_min_sv", "pv_assoc_quality", "from_pv",
    "puppi_weight", "trk_chi2", "trk_quality", "lost_inner_hits",
)
#: Features of each neutral candidate, ranked by pT.
NEUTRAL_FEATURES = ("pt_frac", "delta_r", "is_gamma", "hcal_fraction", "dr_min_sv", "puppi_weight")
#: Features of each secondary vertex, ranked by 3D flight-distance significance.
SV_FEATURES = (
    "pt", "delta_r", "mass", "ntracks", "chi2", "ndof", "dxy", "dxy_sig", "d3d", "d3d_sig",
    "cos_theta_svpv", "energy_ratio",
)
#: The 14 global jet features (CSV-style track sums after the counts).
GLOBAL_FEATURES = (
    "pt", "eta", "n_charged", "n_neutral", "n_sv", "track_sum_et_ratio", "track_sum_delta_r",
    "vertex_category", "sip2d_val_above_charm", "sip2d_sig_above_charm",
    "sip3d_val_above_charm", "sip3d_sig_above_charm", "n_selected_tracks", "n_tracks_eta_rel",
)
FEATURES = {
    "charged": CHARGED_FEATURES, "neutral": NEUTRAL_FEATURES, "sv": SV_FEATURES,
    "globals": GLOBAL_FEATURES,
}
#: Default numbers of charged candidates, neutral candidates and secondary vertices per jet.
DEFAULT_SIZES = {"charged": 25, "neutral": 25, "sv": 4}

#: Class labels (``label`` values 0-4); -1 = no label (unmatched jet, or the data-like sample).
LABELS = ("LLP", "b", "c", "uds", "g")
UNLABELLED = -1
#: ``domain`` values: 0 simulation, 1 the shifted ("data-like") simulation.
DOMAINS = ("simulation", "shifted_simulation")

#: Per-jet array fields, in a stable order.
ARRAY_FIELDS = (
    "charged", "neutral", "sv", "globals", "ctau", "label", "gen_pt", "gen_dr",
    "vertex_fraction", "vertex", "hadron_flavour", "parton_flavour", "event", "jet_index",
    "process", "weight", "domain", "pileup", "source_file", "entry",
)
#: Floating-point fields checked for NaN/inf by readers.
FLOAT_FIELDS = ("charged", "neutral", "sv", "globals", "ctau", "weight")


@dataclass
class JetBatch:
    """A batch of ``n`` jets.

    Attributes
    ----------
    charged : float32 (n, Nc, len(CHARGED_FEATURES))
    neutral : float32 (n, Nn, len(NEUTRAL_FEATURES))
    sv : float32 (n, Ns, len(SV_FEATURES))
        Zero-padded candidate blocks (sizes from the config, default 25, 25, 4).
    globals : float32 (n, 14)
    ctau : float32 (n,)
        Proper decay length c-tau (mm) of the generated LLP of the event (signal samples); 0 for
        jets of events without an LLP.
    label : int8 (n,)
        Index into :data:`LABELS`, or -1 (unlabelled).
    gen_pt, gen_dr : float32 (n,)
        pT of the matched generator-level jet and its DeltaR to this jet (0 and -1 unmatched).
    vertex_fraction : float32 (n,)
        Momentum fraction f of the matched generator jet carried by its associated vertex.
    vertex : float32 (n, 3)
        True position (mm) of the associated vertex (0 for the primary vertex).
    hadron_flavour, parton_flavour : int8 / int16 (n,)
        5/4/0 from b/c hadron matching; PDG id of the matched parton (0 unmatched).
    event : int64 (n,)
        Event number; ``jet_index``: int16 index of the jet in its event.
    process : object (n,)
        Process name (str).
    weight : float64 (n,)
        Event weight (sigma / N_generated in pb; 1 when unknown).
    domain : int8 (n,)
        Index into :data:`DOMAINS`.
    pileup : float32 (n,)
        Pile-up interactions of the event.
    source_file, entry : object / int64 (n,)
        Where each jet was read from (file and event entry).
    defaults : tuple of str
        Inputs the source lacked and that were filled with documented defaults.
    """

    charged: np.ndarray
    neutral: np.ndarray
    sv: np.ndarray
    globals: np.ndarray
    ctau: np.ndarray
    label: np.ndarray
    gen_pt: np.ndarray
    gen_dr: np.ndarray
    vertex_fraction: np.ndarray
    vertex: np.ndarray
    hadron_flavour: np.ndarray
    parton_flavour: np.ndarray
    event: np.ndarray
    jet_index: np.ndarray
    process: np.ndarray
    weight: np.ndarray
    domain: np.ndarray
    pileup: np.ndarray
    source_file: np.ndarray
    entry: np.ndarray
    defaults: tuple = field(default_factory=tuple)

    DTYPES = {
        "charged": np.float32, "neutral": np.float32, "sv": np.float32, "globals": np.float32,
        "ctau": np.float32, "label": np.int8, "gen_pt": np.float32, "gen_dr": np.float32,
        "vertex_fraction": np.float32, "vertex": np.float32, "hadron_flavour": np.int8,
        "parton_flavour": np.int16, "event": np.int64, "jet_index": np.int16, "process": object,
        "weight": np.float64, "domain": np.int8, "pileup": np.float32, "source_file": object,
        "entry": np.int64,
    }

    @classmethod
    def empty(cls, n: int, sizes: dict[str, int] | None = None, **arrays: np.ndarray) -> JetBatch:
        """``n`` jets with every field at its default, overridden by ``arrays``."""
        sizes = {**DEFAULT_SIZES, **(sizes or {})}
        shapes = {
            "charged": (sizes["charged"], len(CHARGED_FEATURES)),
            "neutral": (sizes["neutral"], len(NEUTRAL_FEATURES)),
            "sv": (sizes["sv"], len(SV_FEATURES)), "globals": (len(GLOBAL_FEATURES),),
            "vertex": (3,),
        }
        base = {}
        for name, dtype in cls.DTYPES.items():
            if dtype is object:
                base[name] = np.full(n, "data" if name == "process" else "", dtype=object)
            else:
                base[name] = np.zeros((n, *shapes.get(name, ())), dtype=dtype)
        base["label"][:] = UNLABELLED
        base["gen_dr"][:] = -1
        base["weight"][:] = 1.0
        base["event"] = np.arange(n, dtype=np.int64)
        base["entry"] = np.arange(n, dtype=np.int64)
        unknown = set(arrays) - set(base) - {"defaults"}
        if unknown:
            raise TypeError(f"unknown JetBatch fields {sorted(unknown)}")
        base.update(arrays)
        batch = cls(**base)
        batch.validate()
        return batch

    def __len__(self) -> int:
        return len(self.event)

    @property
    def sizes(self) -> dict[str, int]:
        """Candidate-block sizes {charged, neutral, sv}."""
        return {"charged": self.charged.shape[1], "neutral": self.neutral.shape[1],
                "sv": self.sv.shape[1]}

    @property
    def pt(self) -> np.ndarray:
        return self.globals[:, GLOBAL_FEATURES.index("pt")]

    @property
    def eta(self) -> np.ndarray:
        return self.globals[:, GLOBAL_FEATURES.index("eta")]

    @property
    def log10_ctau(self) -> np.ndarray:
        """log10(c-tau / mm); NaN for jets without an LLP (c-tau 0)."""
        with np.errstate(divide="ignore"):
            return np.where(self.ctau > 0, np.log10(np.where(self.ctau > 0, self.ctau, 1.0)), np.nan)

    def validate(self, where: str = "JetBatch") -> None:
        """Check shapes and dtypes of every field.

        Raises
        ------
        ShapeError
            Naming the field, the expected and the found shape or type.
        """
        n = len(self.event)
        blocks = {"charged": CHARGED_FEATURES, "neutral": NEUTRAL_FEATURES, "sv": SV_FEATURES}
        for name in ARRAY_FIELDS:
            arr = getattr(self, name)
            if not isinstance(arr, np.ndarray) or arr.shape[:1] != (n,):
                raise ShapeError(
                    f"{where}: field {name!r} expected {n} rows, found "
                    f"{getattr(arr, 'shape', type(arr).__name__)!r}"
                )
            if arr.dtype != np.dtype(self.DTYPES[name]):
                raise ShapeError(
                    f"{where}: field {name!r} expected dtype {np.dtype(self.DTYPES[name])}, "
                    f"found {arr.dtype}"
                )
        for name, names in blocks.items():
            arr = getattr(self, name)
            if arr.ndim != 3 or arr.shape[2] != len(names):
                raise ShapeError(
                    f"{where}: field {name!r} expected shape (n, k, {len(names)}), "
                    f"found {arr.shape!r}"
                )
        if self.globals.shape[1:] != (len(GLOBAL_FEATURES),):
            raise ShapeError(f"{where}: field 'globals' expected shape (n, {len(GLOBAL_FEATURES)}), "
                             f"found {self.globals.shape!r}")

    def take(self, index) -> JetBatch:
        """The jets selected by a boolean mask, integer indices or a slice."""
        return dataclasses.replace(self, **{f: getattr(self, f)[index] for f in ARRAY_FIELDS})

    @classmethod
    def concatenate(cls, batches: list[JetBatch]) -> JetBatch:
        """Concatenate batches (same block sizes); an empty list gives 0 jets."""
        if not batches:
            return cls.empty(0)
        sizes = {tuple(b.sizes.values()) for b in batches}
        if len(sizes) > 1:
            raise ShapeError(f"cannot concatenate jet batches of different block sizes: {sizes}")
        defaults = tuple(dict.fromkeys(d for b in batches for d in b.defaults))
        return cls(
            **{f: np.concatenate([getattr(b, f) for b in batches]) for f in ARRAY_FIELDS},
            defaults=defaults,
        )

    def class_counts(self) -> dict[str, int]:
        """Number of jets per label name (and ``unlabelled``)."""
        counts = {name: int(np.sum(self.label == i)) for i, name in enumerate(LABELS)}
        counts["unlabelled"] = int(np.sum(self.label == UNLABELLED))
        return counts
