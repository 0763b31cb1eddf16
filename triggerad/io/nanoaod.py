"""CMS NanoAOD reader (``Events`` TTree or RNTuple) and a writer of event batches in NanoAOD naming.

The branch map is a *preset* chosen per file from its branches (:mod:`triggerad.io.presets`):
CMS Run-2 UL (v9), Run-3 2022-23 (v11-v12), 2024+ (v15), Run-3 scouting (2022-23, 2024+), the
Level-1 trigger objects (``l1``, chosen explicitly) and trigger-ad's own files. The preset of each
file is logged once and recorded in provenance (:meth:`NanoAODReader.describe`); a user branch map
overrides any key and may fix the preset (``preset: run3``). Missing inputs are filled with
documented defaults, logged once.

In the CMS presets: electrons / muons ``*_pt/eta/phi/charge``, relative isolation charged
``*_pfRelIso03_chg`` and total ``*_pfRelIso03_all`` (photon 0, neutral = all - charged); jets
``Jet_pt/eta/phi/mass`` b-tagged when the chosen tagger's discriminant exceeds the working point;
MET ``MET_pt/phi`` (``PFMET_*`` in v15); ``run``, ``luminosityBlock``, ``event``,
``Pileup_nTrueInt``; the event weight is ``genWeight`` (see :mod:`triggerad.samples` for the
normalisation to a cross-section with ``Runs/genEventSumw``).

trigger-ad's own files (preset ``triggerad``) add ``weight``, ``nChHad``, ``nNeuHad``,
``*_isoGamma``, ``*_isoNeu`` and ``process`` (integer code into the JSON list of names in the
``ProcessNames`` string object). :func:`write_root` stores every
:class:`~triggerad.events.EventBatch` field under these names so the reader gives back identical
arrays (b-tag written as ``btagDeepFlavB`` 1.0 / 0.0).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from triggerad import atomic
from triggerad.config import to_dict
from triggerad.errors import ConfigError, MissingFieldError
from triggerad.events import EventBatch
from triggerad.io.common import read_overrides
from triggerad.io.objects import ObjectTreeReader
from triggerad.io.presets import (
    AUTO,
    PRESETS,
    NanoAODBranchMap,
    build_preset,
    check_preset_name,
    detect_preset,
    no_preset_message,
    signature,
)
from triggerad.io.rootio import PROCESS_NAMES, find_branch

log = logging.getLogger(__name__)

#: Branches whose presence is worth a note when the preset in use does not read them.
OTHER_OBJECTS = {"L1EG_pt": "l1", "ScoutingPFJet_pt": "scouting"}


class NanoAODReader(ObjectTreeReader):
    """Read CMS NanoAOD ``Events`` trees / RNTuples into event batches (see module docstring).

    Parameters
    ----------
    branch_map : dict, str or Path, optional
        Overrides of the preset's keys (a mapping or a YAML file); ``preset: NAME`` fixes the
        preset, ``auto`` (default) detects it per file.
    options : ReadOptions, optional
        Chunk size and non-finite policy.

    Raises
    ------
    ConfigError
        Before any file is read, for an unknown preset or an override that fits no preset
        (a misspelt key, a wrong type).
    """

    name = "nanoaod"
    iso_relative = True

    def __init__(self, branch_map=None, options=None):
        user, where = read_overrides(self.name, branch_map)
        choice = str(user.get("preset", AUTO))
        check_preset_name(choice, where)
        names = PRESETS if choice == AUTO else (choice,)
        maps, errors = {}, []
        for name in names:
            try:
                maps[name] = build_preset(name, user, where)
            except ConfigError as err:
                errors.append(err)
        if not maps:  # an error every preset gives is the user's, not a preset mismatch
            raise errors[0]
        self.choice = choice
        self.maps: dict[str, NanoAODBranchMap] = maps
        self.map_errors = dict(zip([n for n in names if n not in maps], errors, strict=True))
        self.detectors = {n: maps[n].detect if n in maps else signature(n) for n in PRESETS}
        self._preset_of: dict[tuple, str] = {}
        super().__init__(maps[choice] if choice != AUTO else None, options)
        self.tree_name = str(user.get("tree", "Events"))

    def preset(self, path: str) -> str:
        """The preset used for ``path``: fixed by the branch map, or detected (logged once)."""
        opened = self._opened(path)
        if opened.key in self._preset_of:
            return self._preset_of[opened.key]
        if self.choice != AUTO:
            name = self.choice
        else:
            name = detect_preset(opened.branches, self.detectors)
            if name is None:
                raise MissingFieldError(
                    no_preset_message(f"{path}:{self.tree_name}", self.detectors))
        if name not in self.maps:  # the user's overrides do not fit this file's preset
            raise self.map_errors[name]
        bmap = self.maps[name]
        log.info("%s: NanoAOD preset %r (%s)%s", path, name, bmap.description,
                 " chosen in the branch map" if self.choice != AUTO else " detected from the branches")
        for branch, other in OTHER_OBJECTS.items():
            if find_branch(branch, opened.branches) and not name.startswith(other):
                log.info("%s: also holds %s objects (%s...); `preset: %s` in --branch-map reads them",
                         path, other, branch, other)
        self._preset_of[opened.key] = name
        return name

    def branch_map_for(self, path: str) -> NanoAODBranchMap:
        """The branch map of the preset of ``path``."""
        return self.maps[self.preset(path)]

    def source_note(self, path: str) -> str:
        """Which preset the branch names came from (for missing-branch errors)."""
        name = self._preset_of.get(self._opened(path).key)
        if name is None:
            return ""
        how = "chosen in the branch map" if self.choice != AUTO else "detected from the branches"
        return f"NanoAOD preset {name!r}, {self.maps[name].description}, {how}"

    def describe(self, path: str) -> dict:
        """Reader, preset, era, MET and b-tag choice used for ``path`` (for provenance)."""
        bmap = self.branch_map_for(path)
        return {"reader": self.name, **bmap.summary(), "branch_map": to_dict(bmap)}

    def btag(self, values: np.ndarray, path: str) -> np.ndarray:
        """b-tagged when the discriminant exceeds the preset's working point."""
        return values > self.branch_map_for(path).btag_cut

    def generator_sumw(self, path: str) -> float | None:
        """Sum of generator weights of ``path`` from the ``Runs`` tree (None: not stored)."""
        runs = self.branch_map_for(path).runs
        return self.runs_sum(path, runs.tree, [runs.sumw] if isinstance(runs.sumw, str)
                             else list(runs.sumw))


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
