"""Run Pythia 8 in batches and turn its event records into flat numpy particle arrays.

``pythia.nextBatch(N)`` returns the whole event record of N events as awkward arrays at a few per
cent of the generation cost; everything downstream works on the flat arrays of :class:`Particles`
(one row per particle, ``offsets`` delimiting the events), never on Python loops over particles.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import awkward as ak

log = logging.getLogger(__name__)

#: Pythia's largest allowed seed.
MAX_SEED = 900_000_000


@dataclass
class Particles:
    """Flat particle arrays of ``n`` events (event ``i`` is ``offsets[i]:offsets[i + 1]``).

    Attributes
    ----------
    offsets : int64 (n + 1,)
    id, status, mother1, daughter1 : int32 (m,)
        PDG id, Pythia status and index (within its event) of the first mother and first daughter.
    px, py, pz, e : float64 (m,)
    charge : float64 (m,)
        Electric charge in units of e.
    vx, vy, vz : float64 (m,), optional
        Production vertex in mm (``xProd``, ``yProd``, ``zProd``; Pythia's origin is the hard
        interaction). Opt-in (``generate(..., vertices=True)``): None when not requested, and
        then every operation skips them.
    mother2 : int32 (m,), optional
        Pythia's second mother index (within the event's full record). Opt-in
        (``generate(..., history=True)``). Like ``mother1`` and ``daughter1`` it refers to
        positions in the unselected record, so it is meaningful only before :meth:`select` /
        :meth:`merge`.
    """

    offsets: np.ndarray
    id: np.ndarray
    status: np.ndarray
    mother1: np.ndarray
    daughter1: np.ndarray
    px: np.ndarray
    py: np.ndarray
    pz: np.ndarray
    e: np.ndarray
    charge: np.ndarray
    vx: np.ndarray | None = None
    vy: np.ndarray | None = None
    vz: np.ndarray | None = None
    mother2: np.ndarray | None = None

    FIELDS = ("id", "status", "mother1", "daughter1", "px", "py", "pz", "e", "charge")
    VERTEX_FIELDS = ("vx", "vy", "vz")
    HISTORY_FIELDS = ("mother2",)

    @property
    def has_vertices(self) -> bool:
        return self.vx is not None

    @property
    def has_history(self) -> bool:
        return self.mother2 is not None

    def fields(self) -> tuple[str, ...]:
        """Names of the per-particle arrays present (the opt-in fields only if set)."""
        return (
            self.FIELDS
            + (self.VERTEX_FIELDS if self.has_vertices else ())
            + (self.HISTORY_FIELDS if self.has_history else ())
        )

    def arrays(self) -> dict[str, np.ndarray]:
        """The per-particle arrays present, by name."""
        return {f: getattr(self, f) for f in self.fields()}

    @property
    def n_events(self) -> int:
        return len(self.offsets) - 1

    @functools.cached_property
    def event_index(self) -> np.ndarray:
        """(m,) index of the event of each particle."""
        return np.repeat(np.arange(self.n_events), np.diff(self.offsets))

    @functools.cached_property
    def pt(self) -> np.ndarray:
        return np.hypot(self.px, self.py)

    @functools.cached_property
    def phi(self) -> np.ndarray:
        return np.arctan2(self.py, self.px)

    @functools.cached_property
    def eta(self) -> np.ndarray:
        return np.arcsinh(self.pz / np.maximum(self.pt, 1e-9))

    def select(self, mask: np.ndarray) -> Particles:
        """The particles where ``mask`` is true, events kept (possibly empty)."""
        counts = np.bincount(self.event_index[mask], minlength=self.n_events)
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        return Particles(offsets, **{f: v[mask] for f, v in self.arrays().items()})

    @classmethod
    def merge(cls, a: Particles, b: Particles) -> Particles:
        """Per event, the particles of ``a`` followed by those of ``b`` (same number of events).

        The particles of ``a`` keep their position within their event. Opt-in fields are kept
        only if both carry them.
        """
        offsets = a.offsets + b.offsets
        # particle j of a goes to j + (b's particles in the events before), and likewise for b
        dest_a = np.arange(len(a.id)) + np.repeat(b.offsets[:-1], np.diff(a.offsets))
        dest_b = np.arange(len(b.id)) + np.repeat(a.offsets[1:], np.diff(b.offsets))
        out = {}
        for f in (f for f in a.fields() if f in b.fields()):
            va, vb = getattr(a, f), getattr(b, f)
            merged = np.empty(int(offsets[-1]), dtype=np.result_type(va, vb))
            merged[dest_a], merged[dest_b] = va, vb
            out[f] = merged
        return cls(offsets, **out)


class ChargeTable:
    """PDG id -> electric charge, from Pythia's particle data, cached per id."""

    def __init__(self, particle_data):
        self._pd = particle_data
        self._ids = np.zeros(0, dtype=np.int64)
        self._charges = np.zeros(0)

    def __call__(self, ids: np.ndarray) -> np.ndarray:
        new = np.setdiff1d(np.unique(ids), self._ids)
        if len(new):
            charges = np.array([self._pd.charge(int(i)) for i in new])
            ids_all = np.concatenate([self._ids, new])
            order = np.argsort(ids_all)
            self._ids, self._charges = ids_all[order], np.concatenate([self._charges, charges])[order]
        return self._charges[np.searchsorted(self._ids, ids)]


def make_pythia(settings: list[str], seed: int):
    """An initialised, silent Pythia instance with these settings and this seed.

    Raises
    ------
    RuntimeError
        If Pythia rejects a setting or fails to initialise (the settings are listed).
    """
    import pythia8mc

    pythia = pythia8mc.Pythia("", False)
    for line in ["Print:quiet = on", "Random:setSeed = on", f"Random:seed = {seed}", *settings]:
        if not pythia.readString(line):
            raise RuntimeError(f"Pythia rejected the setting {line!r}")
    if not pythia.init():
        raise RuntimeError(
            "Pythia failed to initialise with the settings:\n  " + "\n  ".join(settings)
        )
    return pythia


def particles_from_batch(
    batch: ak.Array, charges: ChargeTable, *, vertices: bool = False, history: bool = False
) -> Particles:
    """Flatten the event records of ``pythia.nextBatch`` into :class:`Particles`.

    ``vertices=True`` also fills the production vertices (Pythia leaves ``vProd`` unset, here 0,
    for particles made at the origin); ``history=True`` the second mother index.
    """
    import awkward as ak  # here: slow to import, and readers import this package's helpers

    prt = batch["prt"]
    counts = ak.to_numpy(ak.num(prt, axis=1)).astype(np.int64)
    flat = ak.flatten(prt, axis=1)
    mom = flat["p"]
    ids = ak.to_numpy(flat["id"])
    extra = {}
    if vertices:
        vprod = flat["vProd"]
        extra.update({
            name: ak.to_numpy(ak.fill_none(vprod[axis], 0.0)).astype(np.float64)
            for name, axis in zip(Particles.VERTEX_FIELDS, ("px", "py", "pz"), strict=True)
        })
    if history:
        extra.update({name: ak.to_numpy(flat[name]) for name in Particles.HISTORY_FIELDS})
    return Particles(
        offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        id=ids,
        status=ak.to_numpy(flat["status"]),
        mother1=ak.to_numpy(flat["mother1"]),
        daughter1=ak.to_numpy(flat["daughter1"]),
        px=ak.to_numpy(mom["px"]),
        py=ak.to_numpy(mom["py"]),
        pz=ak.to_numpy(mom["pz"]),
        e=ak.to_numpy(mom["e"]),
        charge=charges(ids),
        **extra,
    )


def generate(
    pythia, n_events: int, charges: ChargeTable, *, vertices: bool = False, history: bool = False
) -> Particles:
    """Generate ``n_events`` events (failed events are retried by Pythia) as :class:`Particles`.

    ``vertices=True`` fills the production vertices (``vx``, ``vy``, ``vz``, mm),
    ``history=True`` the second mother index (``mother2``; ``mother1`` is always filled).
    """
    return particles_from_batch(
        pythia.nextBatch(n_events), charges, vertices=vertices, history=history
    )


def sigma_pb(pythia) -> tuple[float, float]:
    """Pythia's estimated cross-section of the generated events and its error, in pb."""
    info = pythia.infoPython()
    return float(info.sigmaGen()) * 1e9, float(info.sigmaErr()) * 1e9


def forced_fractions(pythia, hadrons: list[int]) -> dict[int, float]:
    """Summed branching fraction of the channels left on, for each hadron (after forcing)."""
    out = {}
    for pid in hadrons:
        entry = pythia.particleData.particleDataEntryPtr(pid)
        out[pid] = sum(
            entry.channel(i).bRatio()
            for i in range(entry.sizeChannels())
            if entry.channel(i).onMode() > 0
        )
    return out


def forcing_settings(hadrons: list[int], products: list[int]) -> list[str]:
    """Pythia settings forcing ``hadrons`` to decay to channels containing one of ``products``."""
    any_of = " ".join(str(p) for p in products)
    return [s for h in hadrons for s in (f"{h}:onMode = off", f"{h}:onIfAny = {any_of}")]


def check_settings(groups: dict[str, list[str]], where: str) -> None:
    """Refuse a setting Pythia does not accept, before any worker starts.

    Parameters
    ----------
    groups : dict
        Config key (``processes.W``, ``pileup``) -> its Pythia settings.
    where : str
        The config file, for the message.

    Raises
    ------
    ConfigError
        Naming the file, the key and the rejected line.
    """
    import contextlib
    import io

    import pythia8mc

    from triggerad.errors import ConfigError

    pythia = pythia8mc.Pythia("", False)
    for key, lines in groups.items():
        for line in lines:
            with contextlib.redirect_stdout(io.StringIO()):
                accepted = pythia.readString(line)
            if not accepted:
                raise ConfigError(
                    f"{where}: {key}: Pythia rejects the setting {line!r} (unknown name, or a "
                    "value that is not meaningful for it); see the Pythia 8 settings manual"
                )
