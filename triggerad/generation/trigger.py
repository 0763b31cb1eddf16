"""The single-lepton trigger: one isolated electron or muon above threshold."""

from __future__ import annotations

import numpy as np

from triggerad.events import EventBatch
from triggerad.generation.config import TriggerConfig


def lepton_pass(pt: np.ndarray, iso: np.ndarray, cfg: TriggerConfig) -> np.ndarray:
    """(n, m) mask of leptons above ``lepton_pt_min`` with total relative isolation < ``iso_max``.

    Parameters
    ----------
    pt : (n, m) array
        Lepton pT (0 for empty slots).
    iso : (n, m, 3) array
        Relative isolation components [charged, photon, neutral].
    cfg : TriggerConfig
        Thresholds.
    """
    return (pt > cfg.lepton_pt_min) & (iso.sum(axis=-1) < cfg.iso_max)


def single_lepton(batch: EventBatch, cfg: TriggerConfig) -> np.ndarray:
    """(n,) bool: the events with at least one isolated electron or muon above threshold."""
    ele = lepton_pass(batch.electrons[..., 0], batch.ele_iso, cfg)
    mu = lepton_pass(batch.muons[..., 0], batch.mu_iso, cfg)
    return ele.any(axis=1) | mu.any(axis=1)
