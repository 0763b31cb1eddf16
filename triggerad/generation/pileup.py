"""Pile-up: N ~ Poisson(mu) minimum-bias interactions added to every hard event.

One overlay code path (:class:`Pileup`) serves the anomaly cocktail (:mod:`.run`) and the LLP jet
samples (:mod:`tagger.generate`); the minimum-bias events come from a *route* (registry
:data:`ROUTES`, config key ``pileup.route``):

``overlay``
    A second Pythia instance generates new minimum-bias events for every hard event (the honest
    way; ~mu times the cost of the hard process).
``library``
    A pool of ``pileup.pool_size`` minimum-bias events is generated once, cached on disk (file
    name = hash of the generator settings, pool size and seed; written atomically) and every
    overlay draws events from it uniformly, each rotated by a random angle in phi. The reuse
    factor (overlays / pool size) is reported and bounded by ``pileup.max_reuse``
    (:func:`check_reuse`): a small, heavily reused pool correlates the events.
``hgmm``
    Synthetic events sampled from a hierarchical Gaussian-mixture model fitted to the pool
    (:mod:`.hgmm`).

Every route gives each minimum-bias event its own z vertex, z ~ N(0, ``beamspot_sigma_z``),
added to the production vertices of its particles; the hard event stays at the origin (the
primary vertex) unless the caller moves it first (:func:`shift_z`; the track samples'
``selection.dz_reference: beam_spot``). Pile-up contributes its final-state particles (status > 0) with their production
vertices; their mother / daughter indices refer to their own minimum-bias record.
"""

from __future__ import annotations

import hashlib
import json
import logging
import zlib
from pathlib import Path

import numpy as np

from triggerad import atomic
from triggerad.errors import ConfigError
from triggerad.generation import pythia as py
from triggerad.generation.config import PileupConfig

log = logging.getLogger(__name__)

#: Version of the cached pool files (bump when their content changes).
POOL_FORMAT = 1
#: Events per ``nextBatch`` call when building a pool.
POOL_BATCH = 250
#: Pools already loaded in this process, by file.
_POOLS: dict[Path, py.Particles] = {}
#: HGMMs already loaded in this process, by file.
_MODELS: dict[Path, object] = {}


def minbias_settings(cfg: PileupConfig, ecm: float) -> list[str]:
    """Pythia settings of the minimum-bias generator: the beam energy and ``pileup.settings``
    (not ``beam.settings``: minimum bias needs multiparton interactions even when the hard
    process runs without them)."""
    return [f"Beams:eCM = {ecm}", *cfg.settings]


def final_state(particles: py.Particles) -> py.Particles:
    """The final-state particles (status > 0), events kept."""
    return particles.select(particles.status > 0)


def take_events(pool: py.Particles, index: np.ndarray) -> py.Particles:
    """Events ``index`` of ``pool`` (repeats allowed), in that order."""
    counts = np.diff(pool.offsets)[index]
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    src = np.repeat(pool.offsets[index] - offsets[:-1], counts) + np.arange(offsets[-1])
    return py.Particles(offsets, **{f: v[src] for f, v in pool.arrays().items()})


def rotate_phi(particles: py.Particles, angles: np.ndarray) -> py.Particles:
    """Rotate every event about the beam axis by its angle (momenta and production vertices).

    pT, eta, the energy, z and the impact parameters of every particle, and the azimuthal
    differences within an event, are unchanged (up to rounding).
    """
    a = angles[particles.event_index]
    c, s = np.cos(a), np.sin(a)
    out = particles.arrays()
    out["px"], out["py"] = c * particles.px - s * particles.py, s * particles.px + c * particles.py
    if particles.has_vertices:
        out["vx"], out["vy"] = c * particles.vx - s * particles.vy, s * particles.vx + c * particles.vy
    return py.Particles(particles.offsets, **out)


def shift_z(particles: py.Particles, z: np.ndarray) -> py.Particles:
    """Add ``z[i]`` (mm) to the production z of every particle of event ``i``."""
    out = particles.arrays()
    out["vz"] = particles.vz + z[particles.event_index]
    return py.Particles(particles.offsets, **out)


def group(particles: py.Particles, counts: np.ndarray) -> py.Particles:
    """Join consecutive events: the first ``counts[0]`` events become event 0, and so on."""
    bounds = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return py.Particles(particles.offsets[bounds], **particles.arrays())


# ---------------------------------------------------------------------------------------------
# the pool of minimum-bias events


def pool_seed(cfg: PileupConfig, seed: int) -> int:
    """The seed of the pool: ``pileup.seed``, or the run's seed when it is None."""
    return seed if cfg.seed is None else cfg.seed


def pool_key(cfg: PileupConfig, ecm: float, seed: int) -> dict:
    """Everything a pool depends on (its identity in the cache)."""
    import pythia8mc

    return {
        "format": POOL_FORMAT, "settings": minbias_settings(cfg, ecm), "pool_size": cfg.pool_size,
        "seed": pool_seed(cfg, seed), "pythia": getattr(pythia8mc, "__version__", "unknown"),
    }


def pool_path(cfg: PileupConfig, ecm: float, seed: int) -> Path:
    """The cache file of the pool of this config and seed."""
    key = pool_key(cfg, ecm, seed)
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return Path(cfg.cache_dir).expanduser() / f"minbias-{cfg.pool_size}-{digest}.npz"


def build_pool(cfg: PileupConfig, ecm: float, seed: int, *, progress: bool = False
               ) -> py.Particles:
    """Generate the pool: ``pool_size`` minimum-bias events (final state, with vertices).

    The Pythia seed is derived from the pool seed only, so a pool is the same whoever builds it.
    """
    from tqdm import tqdm

    state = np.random.SeedSequence([pool_seed(cfg, seed), zlib.crc32(b"pileup-pool")])
    pythia = py.make_pythia(minbias_settings(cfg, ecm),
                            int(state.generate_state(1)[0]) % py.MAX_SEED + 1)
    charges = py.ChargeTable(pythia.particleData)
    parts = []
    with tqdm(total=cfg.pool_size, unit="ev", desc="pile-up pool", disable=not progress) as bar:
        for lo in range(0, cfg.pool_size, POOL_BATCH):
            k = min(POOL_BATCH, cfg.pool_size - lo)
            parts.append(final_state(py.generate(pythia, k, charges, vertices=True)))
            bar.update(k)
    return concatenate(parts)


def concatenate(parts: list[py.Particles]) -> py.Particles:
    """The events of several :class:`Particles`, one after the other."""
    offsets = [parts[0].offsets]
    for p in parts[1:]:
        offsets.append(p.offsets[1:] + offsets[-1][-1])
    fields = parts[0].fields()
    return py.Particles(np.concatenate(offsets),
                        **{f: np.concatenate([getattr(p, f) for p in parts]) for f in fields})


def write_pool(path: Path, pool: py.Particles, key: dict) -> None:
    """Write a pool atomically (``.npz``: offsets, particle arrays, ``key`` as JSON)."""
    with atomic.atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, offsets=pool.offsets, key=np.array(json.dumps(key, sort_keys=True)),
                 **pool.arrays())


def read_pool(path: Path, key: dict) -> py.Particles:
    """Read a cached pool, checking that it was made with ``key``.

    Raises
    ------
    ConfigError
        If the file was written with another format or other settings (a hash collision or a
        file copied by hand).
    """
    with np.load(path) as data:
        found = json.loads(str(data["key"]))
        if found != json.loads(json.dumps(key, sort_keys=True)):
            raise ConfigError(
                f"pile-up pool {path}: made with {found!r}, expected {key!r}; delete the file "
                "to rebuild it"
            )
        fields = py.Particles.FIELDS + py.Particles.VERTEX_FIELDS
        return py.Particles(data["offsets"], **{f: data[f] for f in fields})


def load_pool(cfg: PileupConfig, ecm: float, seed: int, *, progress: bool = False
              ) -> py.Particles:
    """The pool of this config and seed: from memory, the disk cache, or built (and cached)."""
    path = pool_path(cfg, ecm, seed)
    if path not in _POOLS:
        key = pool_key(cfg, ecm, seed)
        if path.exists():
            _POOLS[path] = read_pool(path, key)
        else:
            log.info("building the pile-up pool %s (%d events)", path, cfg.pool_size)
            pool = build_pool(cfg, ecm, seed, progress=progress)
            write_pool(path, pool, key)
            _POOLS[path] = pool
    return _POOLS[path]


def check_reuse(cfg: PileupConfig, overlays: float) -> float:
    """The reuse factor overlays / ``pool_size`` of a ``library`` run; error above the bound.

    Raises
    ------
    ConfigError
        If the reuse factor exceeds ``pileup.max_reuse``.
    """
    reuse = overlays / cfg.pool_size
    if cfg.route == "library" and reuse > cfg.max_reuse:
        need = int(np.ceil(overlays / cfg.max_reuse))
        raise ConfigError(
            f"pileup.max_reuse: the pile-up library would be reused {reuse:.1f} times "
            f"({overlays:.0f} expected overlays = mu x events, pool_size {cfg.pool_size}), above "
            f"max_reuse = {cfg.max_reuse!r}; set pileup.pool_size >= {need}, raise "
            "pileup.max_reuse or generate fewer events"
        )
    return reuse


def prepare(cfg: PileupConfig, ecm: float, seed: int, *, overlays: float,
            progress: bool = True) -> dict:
    """Before a run: check the reuse bound and build the pool once (not in every worker).

    Parameters
    ----------
    cfg : PileupConfig
    ecm : float
        Beam energy (GeV).
    seed : int
        The run's seed.
    overlays : float
        Expected minimum-bias overlays of the run (sum of mu x generated events).
    progress : bool
        Progress bar while building the pool.

    Returns
    -------
    dict : ``route``, ``expected_overlays`` and, for the pool routes, ``pool_size`` and
    ``pool_file`` (``library``: also ``expected_reuse``).
    """
    info = {"route": cfg.route, "expected_overlays": float(overlays)}
    if cfg.route in POOL_ROUTES and overlays > 0:
        if cfg.route == "library":
            info["expected_reuse"] = check_reuse(cfg, overlays)
        load_pool(cfg, ecm, seed, progress=progress)
        if cfg.route == "hgmm":
            load_model(cfg, ecm, seed)
        info.update(pool_size=cfg.pool_size, pool_file=str(pool_path(cfg, ecm, seed)))
    return info


# ---------------------------------------------------------------------------------------------
# routes


class OverlaySource:
    """Full overlay: new minimum-bias events from a second Pythia instance for every draw."""

    def __init__(self, cfg: PileupConfig, ecm: float, *, pythia_seed: int, seed: int,
                 charges: py.ChargeTable):
        self.pythia = py.make_pythia(minbias_settings(cfg, ecm), pythia_seed)
        self.charges = charges

    def draw(self, n: int, rng: np.random.Generator) -> py.Particles:
        """``n`` minimum-bias events (final state, vertices at Pythia's origin)."""
        return final_state(py.generate(self.pythia, n, self.charges, vertices=True))


class LibrarySource:
    """Minimum-bias library: events drawn uniformly from the cached pool, rotated in phi."""

    def __init__(self, cfg: PileupConfig, ecm: float, *, pythia_seed: int, seed: int,
                 charges: py.ChargeTable):
        self.pool = load_pool(cfg, ecm, seed)

    def draw(self, n: int, rng: np.random.Generator) -> py.Particles:
        """``n`` pool events, each rotated by its own angle uniform in [-pi, pi)."""
        events = take_events(self.pool, rng.integers(0, self.pool.n_events, n))
        return rotate_phi(events, rng.uniform(-np.pi, np.pi, n))


def model_path(cfg: PileupConfig, ecm: float, seed: int) -> Path:
    """The cache file of the HGMM fitted to the pool of this config and seed."""
    from triggerad.generation import hgmm

    h = cfg.hgmm
    digest = hgmm.model_key(pool_key(cfg, ecm, seed), h.events, h.max_components, h.cov_floor)
    return Path(cfg.cache_dir).expanduser() / f"hgmm-{digest}.npz"


def load_model(cfg: PileupConfig, ecm: float, seed: int, *, progress: bool = False):
    """The HGMM of this config and seed: from memory, the disk cache, or fitted to the pool
    (and cached)."""
    from triggerad.generation import hgmm

    path = model_path(cfg, ecm, seed)
    if path not in _MODELS:
        if path.exists():
            _MODELS[path] = hgmm.read_model(path)
        else:
            pool = load_pool(cfg, ecm, seed, progress=progress)
            log.info("fitting the pile-up HGMM to %d pool events", cfg.hgmm.events)
            model = hgmm.fit(pool, events=cfg.hgmm.events,
                             max_components=cfg.hgmm.max_components,
                             cov_floor=cfg.hgmm.cov_floor, seed=pool_seed(cfg, seed))
            hgmm.write_model(path, model)
            _MODELS[path] = model
    return _MODELS[path]


class HgmmSource:
    """Synthetic minimum-bias events sampled from the HGMM fitted to the pool
    (:mod:`triggerad.generation.hgmm`)."""

    def __init__(self, cfg: PileupConfig, ecm: float, *, pythia_seed: int, seed: int,
                 charges: py.ChargeTable):
        self.model = load_model(cfg, ecm, seed)

    def draw(self, n: int, rng: np.random.Generator) -> py.Particles:
        """``n`` sampled events at the origin."""
        return self.model.sample(n, rng)


#: ``pileup.route`` -> source of minimum-bias events.
ROUTES = {"overlay": OverlaySource, "library": LibrarySource, "hgmm": HgmmSource}
#: Routes that use the cached pool.
POOL_ROUTES = ("library", "hgmm")


class Pileup:
    """Adds N ~ Poisson(mu) minimum-bias events to each hard event (any route).

    Parameters
    ----------
    cfg : PileupConfig
    ecm : float
        Beam energy (GeV).
    pythia_seed : int
        Seed of the ``overlay`` route's Pythia instance (a job's pile-up seed).
    seed : int
        The run's seed (the pool's, unless ``pileup.seed`` is set).
    charges : ChargeTable
        PDG id -> charge.
    """

    def __init__(self, cfg: PileupConfig, ecm: float, *, pythia_seed: int, seed: int,
                 charges: py.ChargeTable):
        if cfg.route not in ROUTES:
            from triggerad.errors import did_you_mean

            raise ConfigError(f"pileup.route: unknown route {cfg.route!r}; "
                              + did_you_mean(cfg.route, ROUTES))
        self.cfg = cfg
        self.mu = cfg.mu
        self.source = ROUTES[cfg.route](cfg, ecm, pythia_seed=pythia_seed, seed=seed,
                                        charges=charges)

    def events(self, counts: np.ndarray, rng: np.random.Generator) -> py.Particles:
        """Pile-up of ``len(counts)`` events: event i holds ``counts[i]`` minimum-bias events,
        each at its own z vertex."""
        total = int(counts.sum())
        pu = self.source.draw(total, rng)
        pu = shift_z(pu, rng.normal(0.0, self.cfg.beamspot_sigma_z, total))
        return group(pu, counts)

    def overlay(self, hard: py.Particles, rng: np.random.Generator
                ) -> tuple[py.Particles, np.ndarray, np.ndarray]:
        """Add N ~ Poisson(mu) minimum-bias events to each event.

        Returns
        -------
        particles : Particles
            Per event, the hard particles (first, in their order) then the pile-up. Vertices
            are kept if the hard event has them.
        n_pileup : int64 (n_events,)
            N of each event.
        from_pileup : bool (m,)
            Which particles of ``particles`` come from pile-up.
        """
        n_pu = rng.poisson(self.mu, size=hard.n_events)
        if n_pu.sum() == 0:
            return hard, n_pu, np.zeros(len(hard.id), bool)
        pu = self.events(n_pu, rng)
        merged = py.Particles.merge(hard, pu)
        from_pu = np.ones(len(merged.id), bool)
        from_pu[np.arange(len(hard.id)) + np.repeat(pu.offsets[:-1], np.diff(hard.offsets))] = False
        return merged, n_pu, from_pu
