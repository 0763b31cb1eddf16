"""CMS NanoAOD reader (``Events`` tree) and a writer of event batches in NanoAOD naming.

Reader inputs (defaults in ``configs/branch_maps/nanoaod.yaml``; missing inputs are filled with
documented defaults, logged once):

- ``Electron_pt/eta/phi/charge``, ``Muon_*`` likewise; relative isolation: charged
  ``*_pfRelIso03_chg``, total ``*_pfRelIso03_all``; photon ``*_isoGamma`` and neutral ``*_isoNeu``
  where present (files written by :func:`write_root`), otherwise photon 0 and
  neutral = all - charged;
- ``Jet_pt/eta/phi/mass``, b-tag ``Jet_btagDeepFlavB > btag_wp`` (default 0.2783, DeepJet medium);
- ``MET_pt``, ``MET_phi``, ``run``, ``luminosityBlock``, ``event``, ``Pileup_nTrueInt``;
- trigger-ad extras: ``weight``, ``nChHad``, ``nNeuHad``, ``process`` (integer code into the JSON
  list of names in the ``ProcessNames`` string object).

:func:`write_root` stores every :class:`~triggerad.events.EventBatch` field under these names so
the reader gives back identical arrays (b-tag written as ``btagDeepFlavB`` 1.0 / 0.0).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from triggerad import atomic
from triggerad.events import EventBatch
from triggerad.io.common import load_branch_map
from triggerad.io.objects import ObjectBranchMap, ObjectTreeReader
from triggerad.io.rootio import PROCESS_NAMES


@dataclass
class NanoAODBranchMap(ObjectBranchMap):
    """Branch map of the NanoAOD reader; jets with ``btagDeepFlavB > btag_wp`` are b-tagged."""

    btag_wp: float = 0.2783


class NanoAODReader(ObjectTreeReader):
    """Read CMS NanoAOD ``Events`` trees into event batches (see module docstring)."""

    name = "nanoaod"
    iso_relative = True

    def __init__(self, branch_map=None, options=None):
        super().__init__(load_branch_map(NanoAODBranchMap, self.name, branch_map), options)
        self.tree_name = self.branch_map.tree

    def btag(self, values: np.ndarray) -> np.ndarray:
        """b-tagged when the discriminant exceeds ``btag_wp``."""
        return values > self.branch_map.btag_wp


#: Name of the NanoAOD events tree.
TREE = "Events"
#: Rows written per ``TTree.extend`` call (one basket per branch): small enough that reading a
#: chunk does not decompress much more than the chunk.
BASKET_EVENTS = 10_000


def _jagged(values: np.ndarray, present: np.ndarray):
    """Occupied slots of a padded (n, k) array as a jagged awkward array."""
    import awkward as ak

    return ak.unflatten(values[present], present.sum(axis=1))


def _branches(batch: EventBatch, codes: np.ndarray) -> dict:
    """The NanoAOD-named branches of ``batch`` (collections as awkward records)."""
    import awkward as ak

    out = {}
    for coll, objs, charge, iso in (
        ("Electron", batch.electrons, batch.ele_charge, batch.ele_iso),
        ("Muon", batch.muons, batch.mu_charge, batch.mu_iso),
    ):
        present = objs[..., 0] != 0  # NaN pT is written, for the reader to flag
        fields = {
            "pt": objs[..., 0], "eta": objs[..., 1], "phi": objs[..., 2],
            "charge": charge.astype(np.int32),
            "pfRelIso03_chg": iso[..., 0],
            "pfRelIso03_all": iso.sum(axis=-1, dtype=np.float32),
            "isoGamma": iso[..., 1],
            "isoNeu": iso[..., 2],
        }
        out[coll] = ak.zip({k: _jagged(v, present) for k, v in fields.items()})
    jets = batch.jets
    present = jets[..., 0] != 0
    out["Jet"] = ak.zip({k: _jagged(v, present) for k, v in {
        "pt": jets[..., 0], "eta": jets[..., 1], "phi": jets[..., 2], "mass": batch.jet_mass,
        "btagDeepFlavB": batch.jet_btag.astype(np.float32),
    }.items()})
    out.update({
        "MET_pt": batch.met[:, 0], "MET_phi": batch.met[:, 2],
        "run": batch.run, "luminosityBlock": batch.lumi, "event": batch.event,
        "Pileup_nTrueInt": batch.pileup, "weight": batch.weight,
        "nChHad": batch.n_ch_had, "nNeuHad": batch.n_neu_had, "process": codes,
    })
    return out


def write_root(path: str | Path, batch: EventBatch) -> None:
    """Write ``batch`` as a NanoAOD-style ``Events`` tree, atomically.

    Collections are jagged branches ``Electron_*``, ``Muon_*``, ``Jet_*`` with counters
    ``nElectron``, ``nMuon``, ``nJet``; process labels are stored as integer codes in ``process``
    indexing the JSON list of names in the ``ProcessNames`` string object.

    Parameters
    ----------
    path : str or Path
        Output ``.root`` file.
    batch : EventBatch
        Events with objects (a feature-only batch cannot be written in this layout).
    """
    import awkward as ak
    import uproot

    if not batch.has_objects:
        raise ValueError(f"{path}: cannot write a feature-only event batch as NanoAOD objects")
    names, codes = np.unique(batch.process.astype(str), return_inverse=True)
    codes = codes.astype(np.int32)
    with atomic.atomic_path(path) as tmp, uproot.recreate(tmp) as file:
        file[PROCESS_NAMES] = json.dumps(names.tolist())
        tree = None
        for start in range(0, max(len(batch), 1), BASKET_EVENTS):
            part = batch.take(slice(start, start + BASKET_EVENTS))
            data = _branches(part, codes[start:start + BASKET_EVENTS])
            if tree is None:
                types = {k: (ak.type(v) if isinstance(v, ak.Array) else v.dtype)
                         for k, v in data.items()}
                tree = file.mktree(TREE, types)
            tree.extend(data)
