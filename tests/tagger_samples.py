"""Tiny synthetic jet samples for the tagger tests (no generator run).

Every class shifts a few features (LLP: large impact-parameter significances, far vertices),
LLP and SM jets have different (pT, eta) spectra, and the shifted-simulation sample scales the
impact-parameter significances, as the generator's shifted simulation does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from triggerad.io.jeth5 import write_jets_h5
from triggerad.jets import CHARGED_FEATURES, GLOBAL_FEATURES, SV_FEATURES, JetBatch

SIZES = {"charged": 6, "neutral": 5, "sv": 2}


def jets(n: int, *, seed: int = 0, labels=(0, 1, 2, 3, 4), domain: int = 0,
         sizes: dict | None = None, ip_scale: float = 1.0) -> JetBatch:
    """``n`` synthetic jets with labels drawn from ``labels`` (``domain`` 1: unlabelled)."""
    sizes = sizes or SIZES
    rng = np.random.default_rng(seed)
    label = rng.choice(np.asarray(labels), n).astype(np.int8)
    llp = label == 0
    b = JetBatch.empty(n, sizes)
    nc = rng.integers(1, sizes["charged"] + 1, n)
    nn = rng.integers(0, sizes["neutral"] + 1, n)
    ns = rng.integers(0, sizes["sv"] + 1, n)
    shift = np.where(llp, 3.0, 0.0) + 0.5 * np.where(label == 1, 1.0, 0.0)
    ch = rng.normal(size=b.charged.shape).astype(np.float32)
    ch[..., CHARGED_FEATURES.index("sip2d_sig")] += shift[:, None] * ip_scale
    ch[..., CHARGED_FEATURES.index("sip3d_sig")] += shift[:, None] * ip_scale
    ch *= (np.arange(sizes["charged"])[None, :] < nc[:, None])[..., None]
    ne = rng.normal(size=b.neutral.shape).astype(np.float32)
    ne *= (np.arange(sizes["neutral"])[None, :] < nn[:, None])[..., None]
    sv = rng.normal(size=b.sv.shape).astype(np.float32)
    sv[..., SV_FEATURES.index("dxy")] += 2 * shift[:, None]
    sv *= (np.arange(sizes["sv"])[None, :] < ns[:, None])[..., None]
    gl = rng.normal(size=b.globals.shape).astype(np.float32)
    # LLP jets softer and more central than SM jets (the resampling must fix this)
    log_pt = np.where(llp, rng.normal(1.6, 0.15, n), rng.normal(1.9, 0.3, n))
    gl[:, GLOBAL_FEATURES.index("pt")] = 10 ** np.clip(log_pt, 1.31, 2.99)
    gl[:, GLOBAL_FEATURES.index("eta")] = np.where(
        llp, np.clip(rng.normal(0, 0.8, n), -2.39, 2.39), rng.uniform(-2.39, 2.39, n))
    gl[:, GLOBAL_FEATURES.index("n_charged")] = nc
    ctau = np.where(llp, 10 ** rng.uniform(-2, 4, n), 0.0).astype(np.float32)
    if domain:
        label[:] = -1
        ctau[:] = 0
    b.charged[:], b.neutral[:], b.sv[:], b.globals[:] = ch, ne, sv, gl
    b.ctau[:], b.label[:] = ctau, label
    b.domain[:] = domain
    b.event[:] = np.arange(n) + seed * 1_000_000
    return b


def write_sample(folder: str | Path, n_signal: int = 1500, n_background: int = 1500,
                 n_domain: int = 1500, seed: int = 0) -> Path:
    """A folder with signal.h5, background.h5 and shifted_sim.h5 of synthetic jets."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_jets_h5(folder / "signal.h5", jets(n_signal, seed=seed + 1, labels=(0, 0, 0, 3, 4)))
    write_jets_h5(folder / "background.h5", jets(n_background, seed=seed + 2, labels=(1, 2, 3, 4)))
    write_jets_h5(folder / "shifted_sim.h5",
                  jets(n_domain, seed=seed + 3, labels=(1, 2, 3, 4), domain=1, ip_scale=1.3))
    return folder
