"""Synthetic minimum-bias events from a hierarchical Gaussian-mixture model (HGMM).

The approach of the "fast pile-up synthesis" study: every minimum-bias event of the pool is
described by a Gaussian mixture over its particles' parameters, and a second mixture over those
per-event parameters generates new events.

Per particle class (charged hadrons, photons, neutral hadrons; each split into prompt particles,
made at the origin with d0 = dz = 0 exactly, and displaced ones from decays of long-lived
hadrons), each particle has the scaled features ``x = standardise(log pT, eta, phi,
asinh(d0 / D0_SCALE), asinh(dz / DZ_SCALE))`` (prompt classes: the first three; impact
parameters in the CMS convention of :func:`triggerad.generation.geometry.impact_parameters`;
the asinh compresses the long tails). For each of ``hgmm.events`` pool events:

1. level 1: a full-covariance GMM over the event's particles with K components, K in
   1..``max_components`` chosen by BIC (at least ``MIN_PER_COMPONENT`` particles per
   component; events with fewer particles than that form the group K = 0, whose particles come
   from one GMM fitted to all particles of the class). ``cov_floor``^2 is added to every
   covariance diagonal (no "speckles" from tiny covariances). The event becomes the vector
   ``theta = (log(n + 1), log weights, means, log diag(L), offdiag(L))``, L the Cholesky factor
   of each covariance, components ordered by their mean log pT;
2. level 2: per K, a full-covariance GMM over the thetas of the events with that K (BIC,
   1..``max_components`` components).

Sampling draws K from its observed frequencies, theta from the level-2 mixture of that K, the
multiplicity and the level-1 mixture from theta, and the particles from it (features clipped to
the 0.05-99.95 percentiles of the fitted particles); every draw uses the caller's generator.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np

from triggerad import atomic
from triggerad.generation import pythia as py
from triggerad.generation.geometry import impact_parameters, reference_point

#: Scales (mm) of the asinh compression of d0 and dz.
D0_SCALE, DZ_SCALE = 0.01, 0.01
#: Fewest particles per level-1 component.
MIN_PER_COMPONENT = 8
#: Particle classes: PDG id and mass (GeV) given to sampled particles.
#: Particles made at the origin (prompt: d0 = dz = 0 exactly) and displaced ones (decay
#: products of long-lived hadrons) are separate classes; prompt classes have 3 features.
CLASSES = {
    "charged": (211, 0.13957, True), "charged_displaced": (211, 0.13957, False),
    "photon": (22, 0.0, True), "photon_displaced": (22, 0.0, False),
    "neutral_hadron": (130, 0.497611, True), "neutral_hadron_displaced": (130, 0.497611, False),
}
N_FEATURES = 5
#: Sampled features are clipped to these percentiles of the fitted ones.
CLIP_PERCENTILES = (0.05, 99.95)
#: Version of the cached model files.
MODEL_FORMAT = 2
INVISIBLE = (12, 14, 16)


def particle_class(p: py.Particles) -> np.ndarray:
    """Class index (order of :data:`CLASSES`) of every particle; -1 for neutrinos."""
    abs_id = np.abs(p.id)
    species = np.where(p.charge != 0, 0, np.where(abs_id == 22, 1, 2))
    displaced = (p.vx != 0) | (p.vy != 0) | (p.vz != 0)
    return np.where(np.isin(abs_id, INVISIBLE), -1, 2 * species + displaced)


def raw_features(p: py.Particles) -> np.ndarray:
    """(m, 5) unscaled features: log pT, eta, phi, asinh(d0 / D0_SCALE), asinh(dz / DZ_SCALE)."""
    d0, dz = impact_parameters(p.vx, p.vy, p.vz, p.px, p.py, p.pz)
    return np.stack([np.log(np.maximum(p.pt, 1e-6)), p.eta, p.phi,
                     np.arcsinh(d0 / D0_SCALE), np.arcsinh(dz / DZ_SCALE)], axis=1)


def _gmm(x: np.ndarray, k_max: int, reg: float, seed: int):
    """Full-covariance GMM (as a :class:`Mixture`) with the number of components (<= k_max)
    of lowest BIC."""
    from sklearn.mixture import GaussianMixture

    if len(x) < 2:   # one point: a narrow Gaussian around it
        d = x.shape[1]
        return Mixture(np.ones(1), x.copy(), np.sqrt(reg) * np.eye(d)[None])
    best = None
    for k in range(1, min(k_max, len(x)) + 1):
        g = GaussianMixture(k, covariance_type="full", reg_covar=reg, random_state=seed,
                            n_init=1, max_iter=200).fit(x)
        if best is None or g.bic(x) < best[0]:
            best = (g.bic(x), g)
    return Mixture.of(best[1])


def encode(n: int, weights: np.ndarray, means: np.ndarray, covs: np.ndarray) -> np.ndarray:
    """theta of one event (components ordered by mean log pT)."""
    order = np.argsort(means[:, 0])
    chol = np.linalg.cholesky(covs[order])
    low = np.tril_indices(means.shape[1], -1)
    return np.concatenate([
        [np.log(n + 1.0)], np.log(weights[order]), means[order].ravel(),
        np.log(np.diagonal(chol, axis1=1, axis2=2)).ravel(), chol[:, low[0], low[1]].ravel(),
    ])


def decode(theta: np.ndarray, k: int, floor: float, d: int):
    """(m, dim) thetas of ``d`` features -> multiplicities, weights (m, k), means (m, k, d),
    Cholesky factors (m, k, d, d)."""
    m = len(theta)
    n = np.maximum(np.rint(np.exp(theta[:, 0]) - 1.0), 0).astype(np.int64)
    if k == 0:
        return n, None, None, None
    i = 1
    logw = theta[:, i:i + k]
    i += k
    w = np.exp(logw - logw.max(axis=1, keepdims=True))
    w /= w.sum(axis=1, keepdims=True)
    means = theta[:, i:i + k * d].reshape(m, k, d)
    i += k * d
    diag = np.maximum(np.exp(theta[:, i:i + k * d]), floor).reshape(m, k, d)
    i += k * d
    chol = np.zeros((m, k, d, d))
    low = np.tril_indices(d, -1)
    chol[:, :, low[0], low[1]] = theta[:, i:].reshape(m, k, -1)
    diag_index = np.arange(d)
    chol[:, :, diag_index, diag_index] = diag
    return n, w, means, chol


@dataclass
class Mixture:
    """A Gaussian mixture: weights (J,), means (J, D), Cholesky factors (J, D, D)."""

    weights: np.ndarray
    means: np.ndarray
    chol: np.ndarray

    @classmethod
    def of(cls, g) -> Mixture:
        return cls(g.weights_, g.means_, np.linalg.cholesky(g.covariances_))

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        comp = rng.choice(len(self.weights), size=n, p=self.weights / self.weights.sum())
        z = rng.standard_normal((n, self.means.shape[1]))
        return self.means[comp] + np.einsum("nij,nj->ni", self.chol[comp], z)


@dataclass
class ClassModel:
    """The HGMM of one particle class."""

    center: np.ndarray
    scale: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    k_values: np.ndarray
    k_prob: np.ndarray
    level2: dict[int, Mixture]
    pooled: Mixture
    floor: float


def fit_class(x: np.ndarray, event: np.ndarray, n_events: int, *, max_components: int,
              floor: float, seed: int) -> ClassModel:
    """Fit the two levels to the features ``x`` (m, d) of particles of events ``event``."""
    center, scale = x.mean(axis=0), np.maximum(x.std(axis=0), 1e-9)
    xs = (x - center) / scale
    reg = floor**2
    counts = np.bincount(event, minlength=n_events)
    bounds = np.concatenate([[0], np.cumsum(counts)])
    order = np.argsort(event, kind="stable")
    xs_sorted = xs[order]
    thetas: dict[int, list] = {}
    for i in range(n_events):
        pts = xs_sorted[bounds[i]:bounds[i + 1]]
        k_max = min(max_components, len(pts) // MIN_PER_COMPONENT)
        if k_max == 0:
            thetas.setdefault(0, []).append([np.log(len(pts) + 1.0)])
            continue
        g = _gmm(pts, k_max, reg, seed)
        covs = np.einsum("kij,klj->kil", g.chol, g.chol)
        thetas.setdefault(len(g.weights), []).append(encode(len(pts), g.weights, g.means, covs))
    level2 = {}
    for k, rows in thetas.items():
        t = np.asarray(rows)
        j_max = max(1, min(max_components, len(t) // (2 * t.shape[1] + 2)))
        level2[k] = _gmm(t, j_max, 1e-3, seed)
    k_values = np.array(sorted(thetas))
    k_prob = np.array([len(thetas[k]) for k in k_values], float)
    pooled = _gmm(xs, max_components, reg, seed)
    lo, hi = np.percentile(xs, CLIP_PERCENTILES, axis=0)
    return ClassModel(center, scale, lo, hi, k_values,
                      k_prob / k_prob.sum(), level2, pooled, floor)


def sample_class(model: ClassModel, n_events: int, rng: np.random.Generator
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Sampled unscaled features (m, 5) and per-event counts (n_events,) of one class."""
    ks = model.k_values[rng.choice(len(model.k_values), size=n_events, p=model.k_prob)]
    counts = np.zeros(n_events, np.int64)
    d = len(model.center)
    feats, owner = [np.zeros((0, d))], [np.zeros(0, np.int64)]
    for k in model.k_values:
        idx = np.flatnonzero(ks == k)
        if not len(idx):
            continue
        n, w, means, chol = decode(model.level2[k].sample(len(idx), rng), int(k), model.floor, d)
        counts[idx] = n
        total = int(n.sum())
        ev = np.repeat(np.arange(len(idx)), n)
        if k == 0:
            xs = model.pooled.sample(total, rng)
        else:
            cum = np.cumsum(w, axis=1)[ev]
            comp = np.minimum((rng.random(total)[:, None] > cum).sum(axis=1), int(k) - 1)
            z = rng.standard_normal((total, d))
            xs = means[ev, comp] + np.einsum("nij,nj->ni", chol[ev, comp], z)
        feats.append(np.clip(xs, model.lo, model.hi))
        owner.append(idx[ev])
    order = np.argsort(np.concatenate(owner), kind="stable")
    return np.concatenate(feats)[order] * model.scale + model.center, counts


class HgmmModel:
    """The fitted HGMM of all particle classes (:func:`fit`), sampled with :meth:`sample`."""

    def __init__(self, classes: dict[str, ClassModel], charged_plus: float):
        self.classes = classes
        self.charged_plus = charged_plus

    def sample(self, n_events: int, rng: np.random.Generator) -> py.Particles:
        """``n_events`` synthetic minimum-bias events (status 1, vertices from d0 and dz)."""
        parts, counts = [], []
        for name, model in self.classes.items():
            x, c = sample_class(model, n_events, rng)
            pid, mass, _ = CLASSES[name]
            parts.append((x, pid, mass))
            counts.append(c)
        counts = np.stack(counts, axis=1)               # (n_events, classes)
        offsets = np.concatenate([[0], np.cumsum(counts.sum(axis=1))]).astype(np.int64)
        # particle j of class c in event i goes after the event's earlier classes
        start = offsets[:-1, None] + np.concatenate(
            [np.zeros((n_events, 1), np.int64), np.cumsum(counts, axis=1)[:, :-1]], axis=1)
        m = int(offsets[-1])
        out = {f: np.zeros(m) for f in ("px", "py", "pz", "e", "charge", "vx", "vy", "vz")}
        ids = np.zeros(m, np.int32)
        for c, (x, pid, mass) in enumerate(parts):
            ev = np.repeat(np.arange(n_events), counts[:, c])
            first = np.concatenate([[0], np.cumsum(counts[:, c])])[:-1]
            dest = start[ev, c] + np.arange(len(ev)) - first[ev]
            pt, eta, phi = np.exp(x[:, 0]), x[:, 1], np.angle(np.exp(1j * x[:, 2]))
            d0, dz = ((D0_SCALE * np.sinh(x[:, 3]), DZ_SCALE * np.sinh(x[:, 4]))
                      if x.shape[1] == N_FEATURES else (np.zeros(len(x)), np.zeros(len(x))))
            px, py_, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
            charge = np.zeros(len(ev))
            if pid == 211:
                charge = np.where(rng.random(len(ev)) < self.charged_plus, 1.0, -1.0)
            vertex = reference_point(d0, dz, phi)
            for f, v in zip(("px", "py", "pz", "charge", "vx", "vy", "vz"),
                            (px, py_, pz, charge, *vertex.T), strict=True):
                out[f][dest] = v
            out["e"][dest] = np.sqrt(px**2 + py_**2 + pz**2 + mass**2)
            ids[dest] = (pid * charge).astype(np.int32) if pid == 211 else pid
        zeros = np.zeros(m, np.int32)
        return py.Particles(offsets, id=ids, status=np.ones(m, np.int32), mother1=zeros,
                            daughter1=zeros, **out)

    # persistence: flat npz arrays
    def arrays(self) -> dict[str, np.ndarray]:
        out = {"charged_plus": np.array(self.charged_plus)}
        for name, m in self.classes.items():
            for f in ("center", "scale", "lo", "hi", "k_values", "k_prob"):
                out[f"{name}/{f}"] = getattr(m, f)
            out[f"{name}/floor"] = np.array(m.floor)
            for key, mix in [*((f"K{k}", v) for k, v in m.level2.items()), ("pooled", m.pooled)]:
                for f in ("weights", "means", "chol"):
                    out[f"{name}/{key}/{f}"] = getattr(mix, f)
        return out

    @classmethod
    def from_arrays(cls, a) -> HgmmModel:
        classes = {}
        for name in CLASSES:
            if f"{name}/center" not in a:
                continue
            mix = {key: Mixture(*(a[f"{name}/{key}/{f}"] for f in ("weights", "means", "chol")))
                   for key in [f"K{k}" for k in a[f"{name}/k_values"]] + ["pooled"]}
            classes[name] = ClassModel(
                *(a[f"{name}/{f}"] for f in ("center", "scale", "lo", "hi", "k_values",
                                             "k_prob")),
                {int(k): mix[f"K{k}"] for k in a[f"{name}/k_values"]}, mix["pooled"],
                float(a[f"{name}/floor"]))
        return cls(classes, float(a["charged_plus"]))


def fit(pool: py.Particles, *, events: int, max_components: int, cov_floor: float,
        seed: int) -> HgmmModel:
    """Fit the HGMM to the first ``events`` events of ``pool`` (final state, with vertices).

    Parameters
    ----------
    pool : Particles
        Minimum-bias events at the origin.
    events : int
        Pool events used (the fit costs ~ events x classes x max_components small GMM fits).
    max_components : int
        Largest number of components of every mixture (BIC chooses).
    cov_floor : float
        Added in quadrature to the diagonal of every level-1 covariance (scaled features).
    seed : int
        Seed of the EM initialisations.
    """
    n = min(events, pool.n_events)
    sub = py.Particles(pool.offsets[:n + 1], **{f: v[:pool.offsets[n]]
                                                for f, v in pool.arrays().items()})
    cls = particle_class(sub)
    x = raw_features(sub)
    classes = {}
    for c, (name, (_, _, prompt)) in enumerate(CLASSES.items()):
        sel = cls == c
        if sel.sum() < MIN_PER_COMPONENT:
            continue
        classes[name] = fit_class(x[sel][:, :3] if prompt else x[sel], sub.event_index[sel], n,
                                  max_components=max_components, floor=cov_floor, seed=seed)
    charged = sub.charge[sub.charge != 0]
    return HgmmModel(classes, float(np.mean(charged > 0)) if len(charged) else 0.5)


def model_key(pool_key: dict, events: int, max_components: int, cov_floor: float) -> str:
    """Hash of the pool and the fit parameters (the model's cache file name)."""
    key = {"pool": pool_key, "events": events, "max_components": max_components,
           "cov_floor": cov_floor, "format": MODEL_FORMAT}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def write_model(path, model: HgmmModel) -> None:
    """Write a fitted model atomically (``.npz``)."""
    with atomic.atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **model.arrays())


def read_model(path) -> HgmmModel:
    """Read a model written by :func:`write_model`."""
    with np.load(path) as data:
        return HgmmModel.from_arrays({k: data[k] for k in data.files})
