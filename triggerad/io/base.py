"""The reader interface: every input format is read as entry ranges of an :class:`EventBatch`.

Readers are addressable by (file, entry range) so that stream scoring can record exactly what it
processed and resume; :meth:`Reader.iter_chunks` reads a file in bounded memory.

A consumer that needs only some fields passes ``fields`` (names from :data:`READABLE_FIELDS`) to
:meth:`Reader.read` / :meth:`Reader.iter_chunks`: readers that support it (ADC2021 HDF5) then read
only those datasets; every other field keeps its documented default and is neither listed in
``batch.defaults`` nor logged as missing from the source. Readers without support read every
field as before (the selection is then only a lower bound of what is filled); their notes of
missing inputs are kept unless they name a field outside the selection.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from triggerad.errors import ConfigError, InputFileError, NonFiniteError, did_you_mean
from triggerad.events import EventBatch

log = logging.getLogger(__name__)

#: Event-record fields a reader can be asked for (``source_file`` and ``entry`` are always filled).
READABLE_FIELDS = (
    *(f for f in EventBatch.ARRAY_FIELDS if f not in ("source_file", "entry")), "hlf",
)

#: Floating-point fields checked for NaN/inf.
FLOAT_FIELDS = ("objects", "ele_iso", "mu_iso", "jet_mass", "weight", "pileup", "hlf")
#: Largest possible pT of an object or of MET (GeV): the LHC collision energy, rounded up.
MAX_PT_GEV = 14_000.0
#: Slack on |phi| <= pi for float32 rounding and readers wrapping to [-pi, pi].
PHI_SLACK = 1e-5
#: Option names per policy, for the messages (CLI flag and reader option).
POLICY_HINT = {
    "nonfinite": "--nonfinite drop (trigger-ad features, score) or reader option nonfinite: drop",
    "unphysical": "--unphysical drop (trigger-ad features, score) or reader option "
                  "unphysical: drop",
}


def unphysical_rows(objects: np.ndarray) -> dict[str, np.ndarray]:
    """Per-event masks of physically impossible trigger objects (slots with pT > 0).

    Parameters
    ----------
    objects : (n, N_SLOTS, 4) array
        pT, eta, phi, class per slot (:attr:`EventBatch.objects`).

    Returns
    -------
    dict
        Problem (``"pT < 0"``, ``"pT > 14000 GeV"``, ``"|phi| > pi"``) -> (n,) bool mask; only
        problems that occur.
    """
    pt, phi = objects[..., 0], objects[..., 2]
    if not pt.size or (pt.min() >= 0 and pt.max() <= MAX_PT_GEV
                       and np.abs(phi).max() <= np.pi + PHI_SLACK):
        return {}  # the common case, in three reductions
    masks = {
        "pT < 0": (pt < 0).any(axis=1),
        f"pT > {MAX_PT_GEV:.0f} GeV": (pt > MAX_PT_GEV).any(axis=1),
        "|phi| > pi": ((np.abs(phi) > np.pi + PHI_SLACK) & (pt > 0)).any(axis=1),
    }
    return {k: m for k, m in masks.items() if m.any()}


def column_extremes(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Minimum and maximum of each column (last axis) of ``a`` (NaN propagates), in two passes
    over the contiguous array: rows of whole columns in blocks of 256, then the columns."""
    flat = np.ascontiguousarray(a).reshape(-1)
    width = a.shape[-1]
    block = width * 256  # column c sits at the positions = c mod width
    split = flat.size - flat.size % block
    if split == flat.size:  # whole blocks (a chunk of 2048 events): four reductions
        rows = flat.reshape(-1, block)
        return (rows.min(axis=0).reshape(-1, width).min(axis=0),
                rows.max(axis=0).reshape(-1, width).max(axis=0))
    parts = [flat[:split].reshape(-1, block), flat[split:].reshape(-1, width)]
    parts = [p for p in parts if p.size]
    low = np.min([p.min(axis=0).reshape(-1, width).min(axis=0) for p in parts], axis=0)
    high = np.max([p.max(axis=0).reshape(-1, width).max(axis=0) for p in parts], axis=0)
    return low, high


def objects_clean(objects: np.ndarray, extremes: tuple | None = None) -> bool:
    """True if every value of ``objects`` (n, N_SLOTS, 4) is finite and no slot is
    :func:`unphysical_rows` (pT in [0, 14 TeV], |phi| <= pi): the common case, decided from the
    per-column minima and maxima (:func:`column_extremes`, or ``extremes`` when the reader
    computed them while reading; NaN propagates through them) instead of a sum and three
    strided reductions. False means "look closer"."""
    if not objects.size:
        return True
    low, high = column_extremes(objects) if extremes is None else extremes
    return bool(np.isfinite(low).all() and np.isfinite(high).all() and low[0] >= 0
                and high[0] <= MAX_PT_GEV and max(-low[2], high[2]) <= np.pi + PHI_SLACK)


def keep_extremes(batch, low: np.ndarray, high: np.ndarray) -> None:
    """Record the per-column extremes of ``batch.objects`` found while reading it (taken by
    :meth:`Reader.handle_nonfinite` for this very array only)."""
    batch._objects_extremes = (batch.objects, low, high)


def _kept_extremes(batch) -> tuple | None:
    kept = getattr(batch, "_objects_extremes", None)
    return kept[1:] if kept is not None and kept[0] is batch.objects else None


def select_fields(fields: Iterable[str] | None) -> frozenset[str] | None:
    """Validate a field selection: None (every field) or :data:`READABLE_FIELDS` names.

    A single name may be given as a string.

    Raises
    ------
    ConfigError
        For a name that is not an event-record field (with the nearest valid name).
    """
    if fields is None:
        return None
    wanted = frozenset([fields] if isinstance(fields, str) else fields)
    for name in sorted(wanted):
        if name not in READABLE_FIELDS:
            raise ConfigError(
                f"fields: {name!r} is not an event-record field; " + did_you_mean(name, READABLE_FIELDS)
            )
    return wanted


@dataclass
class ReadOptions:
    """Options shared by every reader (the ``reader`` section of a config).

    Attributes
    ----------
    chunk_size : int
        Events per chunk; memory use is bounded by this, not by the file size.
    nonfinite : {"error", "drop"}
        What to do with events holding NaN or inf: ``error`` stops with the file, field and
        count; ``drop`` removes those events and logs a warning with the count.
    unphysical : {"error", "drop"}
        The same for events with physically impossible objects (:func:`unphysical_rows`:
        negative pT, |phi| > pi, pT above the collision energy).
    """

    chunk_size: int = 100_000
    nonfinite: Literal["error", "drop"] = "error"
    unphysical: Literal["error", "drop"] = "error"

    def __post_init__(self) -> None:
        if self.chunk_size <= 0:
            raise ValueError(f"chunk_size must be positive, found {self.chunk_size!r}")


class Reader:
    """Base class of the format readers.

    Subclasses implement :meth:`num_entries` and :meth:`_read` (or :meth:`_read_range`, to honour
    a field selection) and set ``name``.
    """

    name = "base"
    #: What the reader yields: ``"events"`` (EventBatch) or ``"jets"`` (JetBatch).
    record = "events"
    #: Prefixes of default notes not to log: inputs the caller fills itself (a sample list sets
    #: the process label of its events).
    quiet_defaults: tuple[str, ...] = ()

    def __init__(self, branch_map: dict | None = None, options: ReadOptions | None = None):
        self.options = options or ReadOptions()
        self.branch_map = branch_map
        self._warned: set[str] = set()
        #: Events dropped so far by each policy (``nonfinite``, ``unphysical``), for provenance.
        self.dropped = {"nonfinite": 0, "unphysical": 0}

    def num_entries(self, path: str | Path) -> int:
        """Number of events in ``path``."""
        raise NotImplementedError

    def _read(self, path: str, start: int, stop: int) -> EventBatch:
        raise NotImplementedError

    def _read_range(
        self, path: str, start: int, stop: int | None, fields: frozenset[str] | None
    ) -> EventBatch:
        """Entries ``[start, min(stop, num_entries))`` holding at least ``fields`` (None: all).

        The default reads every field with :meth:`_read`; readers that can skip unrequested
        fields (and open the file once per call) override it.
        """
        check_readable(path)
        total = self.num_entries(path)
        stop = total if stop is None else min(stop, total)
        return self._read(path, start, stop)

    def read(
        self,
        path: str | Path,
        start: int = 0,
        stop: int | None = None,
        fields: Iterable[str] | None = None,
    ) -> EventBatch:
        """Read entries ``[start, stop)`` of ``path`` as an :class:`EventBatch`.

        Parameters
        ----------
        path : str or Path
            Input file.
        start, stop : int
            Entry range (``stop`` None or past the end: up to the last entry).
        fields : iterable of str, optional
            Fields the caller needs (names from :data:`READABLE_FIELDS`); default every field.
            Fields outside the selection may be left at the reader's documented defaults
            (possibly as read-only views of one value) and are not reported in
            ``batch.defaults`` nor logged as missing.

        Returns
        -------
        EventBatch
            With ``source_file`` and ``entry`` filled; non-finite values of the selected fields
            handled per :attr:`ReadOptions.nonfinite`.

        Raises
        ------
        ConfigError
            For an unknown field name.
        """
        path = str(path)
        wanted = select_fields(fields)
        batch = self._read_range(path, start, stop, wanted)
        batch.source_file = np.empty(len(batch), dtype=object)
        batch.source_file.fill(path)  # ~20x faster than np.full for an object array
        batch.entry = np.arange(start, start + len(batch), dtype=np.int64)
        batch.validate(where=path)
        if wanted is not None:
            batch.defaults = tuple(
                d for d in batch.defaults if d in wanted or d not in READABLE_FIELDS
            )
        for name in batch.defaults:
            self.note_default(path, name)
        return self.handle_nonfinite(batch, path, wanted)

    def iter_chunks(
        self, path: str | Path, fields: Iterable[str] | None = None
    ) -> Iterator[EventBatch]:
        """Yield the events of ``path`` in chunks of ``options.chunk_size``.

        ``fields`` selects the fields to read, as in :meth:`read`.

        Raises
        ------
        InputFileError
            If the file holds no events.
        """
        total = self.num_entries(path)
        if total == 0:
            raise InputFileError(f"{path}: file holds no events")
        size = self.options.chunk_size
        for start in range(0, total, size):
            yield self.read(path, start, start + size, fields)

    def describe(self, path: str | Path) -> dict:
        """What provenance records about how ``path`` was read (reader and branch map)."""
        from triggerad.config import to_dict

        return {"reader": self.name, "branch_map": to_dict(self.branch_map)}

    def sum_weights(self, path: str | Path) -> float:
        """Sum of the event weights of every entry of ``path`` (read in chunks)."""
        return float(sum(b.weight.sum() for b in self.iter_chunks(path, fields=("weight",))))

    def generator_sumw(self, path: str | Path) -> float | None:
        """Sum of the generator weights of every event produced for ``path``, when the file
        stores it (NanoAOD ``Runs/genEventSumw``); None otherwise."""
        return None

    def note_default(self, path: str, name: str) -> None:
        """Log once per reader that ``name`` is missing from the source and filled by default."""
        if name not in self._warned and not name.startswith(self.quiet_defaults):
            self._warned.add(name)
            log.warning(
                "%s: the %s reader found no input for %s; filled with its documented default "
                "(see README, 'Event record')", path, self.name, name,
            )

    def handle_nonfinite(
        self, batch: EventBatch, path: str, fields: frozenset[str] | None = None
    ) -> EventBatch:
        """Reject or drop events holding NaN/inf, naming the fields and the count.

        Only the floating-point fields in ``fields`` (None: all) are checked: the caller does not
        use the others.
        """
        rows = {}
        check_objects = fields is None or "objects" in fields
        clean_objects = check_objects and objects_clean(batch.objects, _kept_extremes(batch))
        for name in FLOAT_FIELDS:
            if (fields is not None and name not in fields) or (name == "objects" and clean_objects):
                continue
            arr = getattr(batch, name)
            if arr is None or np.isfinite(arr.sum()):  # NaN/inf propagate: a finite sum is clean
                continue
            rows[name] = ~np.isfinite(arr.reshape(len(batch), -1)).all(axis=1)
        start = int(batch.entry[0]) if len(batch) else 0
        bad = self.nonfinite_events(rows, len(batch), path, start=start)
        if check_objects and not clean_objects:
            found = unphysical_rows(np.where(bad[:, None, None], 0, batch.objects)
                                    if bad.any() else batch.objects)
            if found:
                bad |= self.policy_events("unphysical", found, len(batch), path, start=start,
                                          problem="physically impossible objects: ")
        return batch.take(~bad) if bad.any() else batch

    def nonfinite_events(self, rows: dict[str, np.ndarray], n: int, where: str, *, start: int,
                         what: str = "") -> np.ndarray:
        """Apply the ``nonfinite`` option to the events holding NaN or inf: the one policy.

        Parameters
        ----------
        rows : dict
            Field or branch name -> (n,) bool mask of the events where it is not finite.
        n : int
            Events in the chunk.
        where : str
            The file (and tree) for the message.
        start : int
            Entry number of the chunk's first event.
        what : str
            Word before the list of names (``"branches "`` for raw ROOT branches).

        Returns
        -------
        bad : (n,) bool array
            The events to drop (``nonfinite: drop``; a warning with the counts is logged).

        Raises
        ------
        NonFiniteError
            With ``nonfinite: error``, naming the file, the entry range, the fields and counts.
        """
        return self.policy_events("nonfinite", rows, n, where, start=start,
                                  problem=f"NaN or inf in {what}")

    def policy_events(self, policy: str, rows: dict[str, np.ndarray], n: int, where: str, *,
                      start: int, problem: str) -> np.ndarray:
        """Apply reader option ``policy`` (``nonfinite``, ``unphysical``) to flagged events.

        Returns the (n,) mask of events to drop; raises :class:`NonFiniteError` in ``error`` mode
        naming the file, entry range, problems and counts, and the option that drops them.
        """
        bad = np.zeros(n, dtype=bool)
        found = []
        for name, mask in rows.items():
            if mask.any():
                found.append(f"{name} ({int(mask.sum())} events)")
                bad |= mask
        if not bad.any():
            return bad
        message = (f"{where}: {int(bad.sum())} of {n} events in entries [{start}, {start + n}) "
                   f"hold {problem}{', '.join(found)}")
        if getattr(self.options, policy) == "error":
            raise NonFiniteError(f"{message}; to skip them (counted) use {POLICY_HINT[policy]}")
        log.warning("%s; dropped (%s: drop)", message, policy)
        self.dropped[policy] += int(bad.sum())
        return bad


def check_readable(path: str | Path) -> None:
    """Raise :class:`InputFileError` if ``path`` does not exist, is a folder or is unreadable."""
    p = Path(path)
    if not p.exists():
        raise InputFileError(f"{path}: no such file")
    if p.is_dir():
        raise InputFileError(f"{path}: is a folder, expected a file")
    try:
        with open(p, "rb") as fh:
            fh.read(1)
    except OSError as err:
        raise InputFileError(f"{path}: cannot read ({err.strerror or err})") from err
