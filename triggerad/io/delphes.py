"""Reader of Delphes ROOT trees (``Delphes`` tree, ``Electron.PT``-style branches).

Inputs and their defaults (each default is logged once per reader):

- electrons / muons: ``PT``, ``Eta``, ``Phi``, ``Charge``; isolation from ``SumPtCharged`` (charged)
  and ``SumPtNeutral`` (taken as the neutral-hadron component), cone sums in GeV divided by the
  lepton pT; Delphes has no separate photon component: photon isolation is 0.
- jets: ``PT``, ``Eta``, ``Phi``, ``Mass``, ``BTag`` (bit ``btag_bit`` of the b-tag word).
- MET: ``MissingET.MET``, ``MissingET.Phi`` (one-element collections).
- event number ``Event.Number``; hadron counts ``EFlowTrack_size``, ``EFlowNeutralHadron_size``;
  weight 1, run / lumi / pile-up 0 and process ``data`` unless the branch map names branches.

Branch names are configurable (``configs/branch_maps/delphes.yaml``), e.g. for files written by
uproot, whose collections are named ``Electron_PT`` with counter ``nElectron``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from triggerad.io.common import load_branch_map
from triggerad.io.objects import ObjectBranchMap, ObjectTreeReader


@dataclass
class DelphesBranchMap(ObjectBranchMap):
    """Branch map of the Delphes reader; ``btag_bit`` selects the working point in ``Jet.BTag``."""

    btag_bit: int = 0


class DelphesReader(ObjectTreeReader):
    """Read Delphes trees into event batches (see module docstring)."""

    name = "delphes"
    iso_relative = False

    def __init__(self, branch_map=None, options=None):
        super().__init__(load_branch_map(DelphesBranchMap, self.name, branch_map), options)
        self.tree_name = self.branch_map.tree

    def btag(self, values: np.ndarray, path: str) -> np.ndarray:
        """b-tagged when bit ``btag_bit`` of the Delphes ``BTag`` word is set."""
        return (values.astype(np.int64) >> self.branch_map.btag_bit) & 1 == 1
