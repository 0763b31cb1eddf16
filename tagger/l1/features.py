"""The L1 tagger's inputs: the leading candidates of a jet with features an L1 system has.

Computed from the candidate blocks of a :class:`~triggerad.jets.JetBatch` (any reader: jet
HDF5 or PFNano ROOT), so the L1 tagger is trained and evaluated on the same samples, through the
same readers, as the full tagger. The charged (tracks, PF/PUPPI charged candidates) and neutral
candidates of a jet are merged, ordered by pT, and the leading :data:`N_CANDIDATES` kept
(zero-padded). Secondary vertices and every other offline-only quantity (vertex fits,
impact-parameter *significances*, which need offline track errors) are not used.

Per candidate, :data:`FEATURES` (all exactly 0 for a padded candidate):

=====================  =========================================================================
``is_charged``         one-hot particle ID: charged candidate (track)
``is_photon``          one-hot: photon
``is_neutral_hadron``  one-hot: neutral hadron
``pt_frac``            pT / jet pT
``log_pt``             log10(1 + pT / GeV)
``delta_r``            10 x DeltaR(candidate, jet axis)
``eta_rel``            pseudorapidity relative to the jet axis / 4 (charged; 0 for neutrals)
``d0``                 signed transverse impact parameter (sign from the jet axis), slog
``ip3d``               signed 3D impact parameter, slog
``dz``                 longitudinal part ``sqrt(ip3d^2 - d0^2)``, slog
``puppi_weight``       PUPPI weight
``from_pv``            primary-vertex association (0-3) / 3
``trk_chi2``           log10(1 + track chi2) (charged)
``lost_inner_hits``    missing inner hits of the track (charged; displaced-track signature)
=====================  =========================================================================

``slog(x) = sign(x) log10(1 + |x| / 10 um)`` compresses the impact parameters (1 um - 1 m) into
about [-5, 5]; in an L1 system it is a look-up table on the track word. The stored jet record
holds jet-relative quantities (DeltaR, eta_rel, the jet-signed d0) rather than the candidates'
own eta, phi, dx, dy: they stand in for TOoLLiP's Delta eta, Delta phi and dx/dy.
"""

from __future__ import annotations

import numpy as np

from triggerad.jets import CHARGED_FEATURES, NEUTRAL_FEATURES, JetBatch

#: Candidates per jet (leading in pT).
N_CANDIDATES = 10
#: Per-candidate features, in order (module docstring).
FEATURES = ("is_charged", "is_photon", "is_neutral_hadron", "pt_frac", "log_pt", "delta_r",
            "eta_rel", "d0", "ip3d", "dz", "puppi_weight", "from_pv", "trk_chi2",
            "lost_inner_hits")
#: Impact parameter (mm) of one unit inside the ``slog``.
IP_SCALE_MM = 0.01

_C = {name: i for i, name in enumerate(CHARGED_FEATURES)}
_N = {name: i for i, name in enumerate(NEUTRAL_FEATURES)}


def slog(x: np.ndarray) -> np.ndarray:
    """``sign(x) log10(1 + |x| / IP_SCALE_MM)`` (0 at 0)."""
    return np.sign(x) * np.log10(1.0 + np.abs(x) / IP_SCALE_MM)


def _charged(block: np.ndarray, jet_pt: np.ndarray) -> np.ndarray:
    """(n, k, F) L1 features of the charged block (rows of padding stay 0)."""
    c = block.astype(np.float64)
    d0, ip3d = c[..., _C["sip2d_val"]], c[..., _C["sip3d_val"]]
    pt_frac = c[..., _C["pt_frac"]]
    out = np.zeros(c.shape[:-1] + (len(FEATURES),))
    out[..., 0] = 1.0
    out[..., 3] = pt_frac
    out[..., 4] = np.log10(1.0 + np.maximum(pt_frac * jet_pt[:, None], 0.0))
    out[..., 5] = 10.0 * c[..., _C["delta_r"]]
    out[..., 6] = c[..., _C["eta_rel"]] / 4.0
    out[..., 7] = slog(d0)
    out[..., 8] = slog(ip3d)
    out[..., 9] = slog(np.sqrt(np.maximum(ip3d * ip3d - d0 * d0, 0.0)))
    out[..., 10] = c[..., _C["puppi_weight"]]
    out[..., 11] = c[..., _C["from_pv"]] / 3.0
    out[..., 12] = np.log10(1.0 + np.maximum(c[..., _C["trk_chi2"]], 0.0))
    out[..., 13] = c[..., _C["lost_inner_hits"]]
    return out * block.any(axis=-1)[..., None]


def _neutral(block: np.ndarray, jet_pt: np.ndarray) -> np.ndarray:
    """(n, k, F) L1 features of the neutral block (rows of padding stay 0)."""
    c = block.astype(np.float64)
    pt_frac = c[..., _N["pt_frac"]]
    gamma = c[..., _N["is_gamma"]]
    out = np.zeros(c.shape[:-1] + (len(FEATURES),))
    out[..., 1] = gamma
    out[..., 2] = 1.0 - gamma
    out[..., 3] = pt_frac
    out[..., 4] = np.log10(1.0 + np.maximum(pt_frac * jet_pt[:, None], 0.0))
    out[..., 5] = 10.0 * c[..., _N["delta_r"]]
    out[..., 10] = c[..., _N["puppi_weight"]]
    out[..., 11] = 1.0  # neutrals are associated with the primary vertex by construction
    return out * block.any(axis=-1)[..., None]


def l1_inputs(batch: JetBatch, n_candidates: int = N_CANDIDATES) -> np.ndarray:
    """The L1 tagger inputs of ``batch``: (n, n_candidates, len(FEATURES)) float32.

    Charged and neutral candidates merged, the leading ``n_candidates`` in pT (ties: charged
    first, then block order), zero-padded.
    """
    jet_pt = np.asarray(batch.globals[:, 0], dtype=np.float64)
    cands = np.concatenate([_charged(batch.charged, jet_pt), _neutral(batch.neutral, jet_pt)],
                           axis=1)
    present = np.concatenate([batch.charged.any(axis=-1), batch.neutral.any(axis=-1)], axis=1)
    key = np.where(present, cands[..., 3], -1.0)
    order = np.argsort(-key, axis=1, kind="stable")[:, :n_candidates]
    out = np.take_along_axis(cands, order[..., None], axis=1)
    if out.shape[1] < n_candidates:
        out = np.pad(out, ((0, 0), (0, n_candidates - out.shape[1]), (0, 0)))
    return out.astype(np.float32)


def input_schema(n_candidates: int = N_CANDIDATES) -> dict:
    """The input schema stored with an L1 model (feature names, per-jet shape, layout)."""
    return {"candidates": {"features": list(FEATURES), "shape": [n_candidates, len(FEATURES)],
                           "order": "leading in pT (charged and neutral merged), zero-padded"}}
