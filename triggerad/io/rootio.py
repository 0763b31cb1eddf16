"""Reading ROOT event trees with uproot: TTree or RNTuple, branch look-up, padding, process names.

:class:`RootReader` is the base of the Delphes, NanoAOD and flat-ntuple readers. The event
container named ``tree_name`` may be a TTree or an RNTuple (the format CMS NanoAOD is moving to);
both are read through uproot with the same branch maps. A branch-map name ``Muon_pt`` also finds
the RNTuple sub-field ``Muon.pt`` (a collection stored as a record field), and a branch-map entry
may be a list of names: the first present one is used (e.g. a branch renamed between versions).

It turns uproot's low-level errors into :class:`~triggerad.errors.InputFileError` /
``MissingFieldError`` naming the file, tree and branch (only around the calls that read the
file), and checks raw branches for NaN/inf *before* objects are built (a NaN pT would otherwise
look like an empty slot and vanish silently).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np

from triggerad.errors import MissingFieldError, missing_field
from triggerad.io.base import Reader, check_readable
from triggerad.io.common import reading

#: Name of the object holding the JSON list of process names (index = integer process code).
PROCESS_NAMES = "ProcessNames"
#: Class names of event containers: TTree and RNTuple (the latter as written by ROOT >= 6.34
#: and by uproot, and by older ROOT versions' experimental RNTuple).
TTREE = "TTree"
RNTUPLE_CLASSES = ("ROOT::RNTuple", "ROOT::Experimental::RNTuple")
#: The oldest uproot that reads (and writes, ``mkrntuple``) RNTuples of the 1.0 format.
RNTUPLE_MIN_UPROOT = (5, 6)


def open_root(path: str):
    """Open a ROOT file with uproot, raising :class:`InputFileError` if it is not readable."""
    import uproot

    with reading(f"{path}: not a readable ROOT file"):
        return uproot.open(path, array_cache=None)


def root_contents(path: str, file=None) -> dict[str, str]:
    """Name -> class name of every object in a ROOT file (cycle numbers stripped)."""
    file = open_root(path) if file is None else file
    with reading(f"{path}: cannot list the ROOT file's contents"):
        return dict(file.classnames(cycle=False))


def event_containers(contents: dict[str, str]) -> list[str]:
    """Names of the event containers (TTrees and RNTuples) among a file's contents."""
    return [k for k, c in contents.items() if c == TTREE or c in RNTUPLE_CLASSES]


def describe_contents(contents: dict[str, str], limit: int = 5) -> str:
    """A short summary of a ROOT file's contents: ``"3 TH1F (h1, h2, h3), 1 TObjString (x)"``."""
    if not contents:
        return "nothing (an empty ROOT file)"
    by_class: dict[str, list[str]] = {}
    for name, cls in contents.items():
        by_class.setdefault(cls, []).append(name)
    parts = []
    for cls, names in sorted(by_class.items()):
        shown = ", ".join(names[:limit]) + (", ..." if len(names) > limit else "")
        parts.append(f"{len(names)} {cls} ({shown})")
    return "; ".join(parts)


def uproot_version() -> tuple[int, ...]:
    """The installed uproot version as a tuple of integers (pre-release suffixes dropped)."""
    import uproot

    parts = []
    for piece in uproot.__version__.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def check_rntuple_support(path: str, name: str) -> None:
    """Refuse an RNTuple when the installed uproot is too old to read it, naming the version."""
    import uproot

    if uproot_version() < RNTUPLE_MIN_UPROOT:
        need = ".".join(map(str, RNTUPLE_MIN_UPROOT))
        raise MissingFieldError(
            f"{path}: {name!r} is an RNTuple; reading RNTuples needs uproot >= {need} (installed: "
            f"{uproot.__version__}); upgrade with pip install 'uproot>={need}'"
        )


def find_branch(name: str | list[str] | None, branches: set[str]) -> str | None:
    """The first of ``name`` (a name or alternatives) present in ``branches``, or None.

    ``Coll_field`` also matches ``Coll.field``: NanoAOD collections written to an RNTuple as
    record fields.
    """
    for candidate in [name] if isinstance(name, str) else (name or []):
        if candidate in branches:
            return candidate
        dotted = candidate.replace("_", ".", 1)
        if "_" in candidate and dotted in branches:
            return dotted
    return None


def missing_tree(path: str, name: str, contents: dict[str, str], reader: str) -> MissingFieldError:
    """The error for a ROOT file without the expected TTree / RNTuple: what it holds instead."""
    containers = event_containers(contents)
    if containers:
        return missing_field("tree", name, path, containers)
    return MissingFieldError(
        f"{path}: no TTree or RNTuple {name!r} (expected by the {reader} reader): the file holds "
        f"no event tree at all, only {describe_contents(contents)}"
    )


@dataclass
class OpenTree:
    """An open event container: the file, the TTree or RNTuple and its branch / field names."""

    key: tuple
    file: object
    tree: object
    branches: set[str]
    rntuple: bool


def open_tree(path: str, name: str, reader: str, key: tuple = ()) -> OpenTree:
    """Open the TTree or RNTuple ``name`` of ``path`` with its branch / field names.

    Raises
    ------
    MissingFieldError
        If the file has no such container (saying what it holds instead), or it is an RNTuple
        and the installed uproot cannot read RNTuples (naming the version needed).
    InputFileError
        If the file or the container's metadata cannot be read.
    """
    file = open_root(path)
    contents = root_contents(path, file)
    cls = contents.get(name)
    if cls != TTREE and cls not in RNTUPLE_CLASSES:
        file.close()
        raise missing_tree(path, name, contents, reader)
    rntuple = cls in RNTUPLE_CLASSES
    if rntuple:
        check_rntuple_support(path, name)
    with reading(f"{path}: cannot read {'RNTuple' if rntuple else 'tree'} {name!r}"):
        tree = file[name]
        branches = set(tree.keys(recursive=True))
        if not rntuple:  # short names of branches nested in a split object
            branches |= set(tree.keys(recursive=True, full_paths=False))
    return OpenTree(key, file, tree, branches, rntuple)


class RootReader(Reader):
    """Base of the readers of one TTree or RNTuple per file (name from ``self.tree_name``)."""

    tree_name = "Events"

    def __init__(self, branch_map=None, options=None):
        super().__init__(branch_map, options)
        self._open: OpenTree | None = None  # the last file opened

    # File and tree ------------------------------------------------------------------------------
    def _opened(self, path: str) -> OpenTree:
        """The open event container of ``path``, kept open between chunks of one file.

        The key holds the path, modification time and size, so a rewritten file is reopened.
        """
        path = str(path)
        check_readable(path)
        stat = os.stat(path)
        key = (path, stat.st_mtime_ns, stat.st_size)
        opened = self._open
        if opened is None or opened.key != key:
            # The previous file is not closed explicitly: another thread may still be reading it;
            # it closes when its last reference goes.
            opened = self._open = open_tree(path, self.tree_name, self.name, key)
        return opened

    def __getstate__(self) -> dict:
        """Pickle without the open file (readers are sent to Dask workers)."""
        return {**self.__dict__, "_open": None}

    def num_entries(self, path) -> int:
        """Number of entries of the tree in ``path``."""
        return int(self._opened(path).tree.num_entries)

    def resolve(self, path: str, name: str | list[str] | None) -> str | None:
        """The branch of ``path`` that branch-map entry ``name`` refers to, or None if absent.

        ``name`` may be a list (the first present name wins); ``Coll_field`` also matches the
        RNTuple sub-field ``Coll.field``.
        """
        return find_branch(name, self._opened(path).branches)

    def has_branch(self, path: str, name: str | list[str] | None) -> bool:
        """Whether the tree of ``path`` holds branch ``name`` (None is never present)."""
        return self.resolve(path, name) is not None

    def source_note(self, path: str) -> str:
        """Context added to missing-branch errors (e.g. the branch-map preset used)."""
        return ""

    def branch(self, path: str, name: str | list[str], start: int, stop: int,
               required: bool = True):
        """Entries ``[start, stop)`` of branch ``name`` as an awkward array.

        Returns None for an absent optional branch (the caller fills a default and logs it).

        Raises
        ------
        MissingFieldError
            If a required branch is absent, listing the nearest available branches (at most 10)
            and the branch-map preset in use.
        InputFileError
            If the branch's data cannot be read (truncated or corrupt baskets).
        """
        opened = self._opened(path)
        found = self.resolve(path, name)
        if found is None:
            if required:
                wanted = name if isinstance(name, str) else " or ".join(name)
                raise missing_field("branch", wanted, f"{path}:{self.tree_name}",
                                    sorted(opened.branches), note=self.source_note(path))
            return None
        with reading(f"{path}:{self.tree_name}: cannot read branch {found!r} entries "
                     f"[{start}, {stop})"):
            return opened.tree[found].array(entry_start=start, entry_stop=stop, library="ak")

    def branch_sum(self, path: str, name: str | list[str]) -> float:
        """Sum over every entry of a numeric per-event branch, read in chunks."""
        total = self.num_entries(path)
        size = self.options.chunk_size
        return float(sum(
            np.sum(per_event(self.branch(path, name, lo, min(lo + size, total)), np.float64))
            for lo in range(0, total, size)
        ))

    def runs_sum(self, path: str, tree: str, names: list[str]) -> float | None:
        """Sum of the first present branch of ``names`` in the run tree ``tree`` (None: absent).

        NanoAOD's ``Runs`` tree holds one entry per run and file with ``genEventSumw``, the sum
        of the generator weights of every event produced (before any skim).
        """
        file = self._opened(path).file
        contents = root_contents(path, file)
        if contents.get(tree) != TTREE and contents.get(tree) not in RNTUPLE_CLASSES:
            return None
        with reading(f"{path}:{tree}: cannot read the run tree"):
            runs = file[tree]
            keys = set(runs.keys())
            name = next((n for n in names if n in keys), None)
            if name is None:
                return None
            values = runs[name].array(library="np")
        return float(np.sum(np.asarray(values, dtype=np.float64)))

    def process_labels(self, path: str, codes: np.ndarray) -> np.ndarray:
        """Map integer process codes to names using the file's ``ProcessNames`` JSON string."""
        file = self._opened(path).file
        contents = root_contents(path, file)
        if PROCESS_NAMES not in contents:
            raise missing_field("object", PROCESS_NAMES, path, contents)
        with reading(f"{path}: cannot read {PROCESS_NAMES}"):
            text = str(file[PROCESS_NAMES])
        try:
            names = np.asarray(json.loads(text), dtype=object)
        except json.JSONDecodeError as err:
            raise MissingFieldError(
                f"{path}: {PROCESS_NAMES} is not a JSON list of names: {err}") from err
        bad = (codes < 0) | (codes >= len(names))
        if bad.any():
            raise MissingFieldError(
                f"{path}: process code {int(codes[bad][0])!r} has no entry in {PROCESS_NAMES} "
                f"({len(names)} names)"
            )
        return names[codes]

    # Non-finite raw values ----------------------------------------------------------------------
    def check_raw_nonfinite(self, path: str, start: int, arrays: dict) -> np.ndarray:
        """Per-event mask of raw branches holding NaN/inf; raise in ``nonfinite: error`` mode.

        Parameters
        ----------
        arrays : dict
            Branch name -> (jagged or flat) awkward array of the chunk.

        Returns
        -------
        bad : bool (n,) array
            Events to drop (``nonfinite: drop``); the caller poisons them so the base reader drops
            them with their entry numbers.
        """
        import awkward as ak

        n = len(next(iter(arrays.values())))
        rows = {}
        for name, arr in arrays.items():
            if not np.issubdtype(_dtype(arr), np.floating):
                continue
            mask = ~np.isfinite(arr)
            rows[name] = np.asarray(ak.any(mask, axis=-1) if arr.ndim > 1 else mask, dtype=bool)
        return self.nonfinite_events(rows, n, f"{path}:{self.tree_name}", start=start,
                                     what="branches ")


def _dtype(arr) -> np.dtype:
    import awkward as ak

    layout = ak.to_layout(arr)
    while hasattr(layout, "content"):
        layout = layout.content
    return getattr(layout, "dtype", np.dtype(object))


def padded(arr, dtype=np.float32, width: int | None = None) -> np.ndarray:
    """A jagged (n, var) awkward array as a zero-padded (n, m) numpy array.

    ``m`` is ``width`` if given (longer rows are clipped), else the largest multiplicity in the
    chunk (at least 1). A flat array becomes one column.
    """
    import awkward as ak

    if arr.ndim == 1:
        return ak.to_numpy(arr).astype(dtype).reshape(-1, 1)
    counts = ak.to_numpy(ak.num(arr, axis=1)).astype(np.int64)
    flat = ak.to_numpy(ak.flatten(arr, axis=1)).astype(dtype)
    m = width if width is not None else max(1, int(counts.max(initial=0)))
    rows = np.repeat(np.arange(len(counts)), counts)
    cols = np.arange(len(flat)) - np.repeat(np.cumsum(counts) - counts, counts)
    keep = cols < m
    out = np.zeros((len(counts), m), dtype=dtype)
    out[rows[keep], cols[keep]] = flat[keep]
    return out


def per_event(arr, dtype) -> np.ndarray:
    """A per-event quantity stored flat or as a one-element collection (Delphes ``MissingET.MET``)."""
    import awkward as ak

    if arr.ndim > 1:
        arr = ak.fill_none(ak.firsts(arr, axis=1), 0)
    return ak.to_numpy(arr).astype(dtype)
