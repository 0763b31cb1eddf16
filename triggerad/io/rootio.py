"""Reading ROOT trees with uproot: opening, branch look-up, padding jagged branches, process names.

:class:`RootReader` is the base of the Delphes, NanoAOD and flat-ntuple readers. It turns uproot's
low-level errors into :class:`~triggerad.errors.InputFileError` / ``MissingFieldError`` naming the
file, tree and branch, and checks raw branches for NaN/inf *before* objects are built (a NaN pT
would otherwise look like an empty slot and vanish silently).
"""

from __future__ import annotations

import json
import os

import numpy as np

from triggerad.errors import (
    InputFileError,
    MissingFieldError,
    TriggerADError,
    missing_field,
)
from triggerad.io.base import Reader, check_readable
from triggerad.io.common import low_level_errors

#: Name of the object holding the JSON list of process names (index = integer process code).
PROCESS_NAMES = "ProcessNames"


def open_root(path: str):
    """Open a ROOT file with uproot, raising :class:`InputFileError` if it is not readable."""
    import uproot

    try:
        return uproot.open(path, array_cache=None)
    except TriggerADError:
        raise
    except low_level_errors() as err:
        raise InputFileError(f"{path}: not a readable ROOT file (truncated or corrupt?): {err}") from err


def tree_names(path: str, file=None) -> list[str]:
    """Names of the TTrees in a ROOT file (cycle numbers stripped)."""
    file = open_root(path) if file is None else file
    try:
        return [k for k, c in file.classnames(cycle=False).items() if c == "TTree"]
    except low_level_errors() as err:
        raise InputFileError(f"{path}: cannot list the ROOT file's contents (corrupt?): {err}") from err


class RootReader(Reader):
    """Base of the readers of one TTree per file (tree name from ``self.tree_name``)."""

    tree_name = "Events"

    def __init__(self, branch_map=None, options=None):
        super().__init__(branch_map, options)
        self._open: tuple | None = None  # (key, file, tree, branch names) of the last file

    # File and tree ------------------------------------------------------------------------------
    def _opened(self, path: str) -> tuple:
        """(key, file, tree, branch names) of ``path``, kept open between chunks of one file.

        The key holds the path, modification time and size, so a rewritten file is reopened.
        """
        path = str(path)
        check_readable(path)
        stat = os.stat(path)
        key = (path, stat.st_mtime_ns, stat.st_size)
        opened = self._open
        if opened is None or opened[0] != key:
            # The previous file is not closed explicitly: another thread may still be reading it;
            # it closes when its last reference goes.
            file = open_root(path)
            names = tree_names(path, file)
            if self.tree_name not in names:
                file.close()
                raise missing_field("tree", self.tree_name, path, names)
            try:
                tree = file[self.tree_name]
                branches = set(tree.keys(recursive=True)) | set(
                    tree.keys(recursive=True, full_paths=False))
            except low_level_errors() as err:
                file.close()
                raise InputFileError(
                    f"{path}: cannot read tree {self.tree_name!r} (truncated or corrupt?): {err}"
                ) from err
            opened = self._open = (key, file, tree, branches)
        return opened

    def __getstate__(self) -> dict:
        """Pickle without the open file (readers are sent to Dask workers)."""
        return {**self.__dict__, "_open": None}

    def num_entries(self, path) -> int:
        """Number of entries of the tree in ``path``."""
        return int(self._opened(path)[2].num_entries)

    def has_branch(self, path: str, name: str | None) -> bool:
        """Whether the tree of ``path`` holds branch ``name`` (None is never present)."""
        return name is not None and name in self._opened(path)[3]

    def branch(self, path: str, name: str, start: int, stop: int, required: bool = True):
        """Entries ``[start, stop)`` of branch ``name`` as an awkward array.

        Returns None for an absent optional branch (the caller fills a default and logs it).

        Raises
        ------
        MissingFieldError
            If a required branch is absent, listing the available branches nearest first.
        InputFileError
            If the branch's data cannot be read (truncated or corrupt baskets).
        """
        tree = self._opened(path)[2]
        if not self.has_branch(path, name):
            if required:
                raise missing_field(
                    "branch", str(name), f"{path}:{self.tree_name}",
                    tree.keys(recursive=True, full_paths=False),
                )
            return None
        try:
            return tree[name].array(entry_start=start, entry_stop=stop, library="ak")
        except TriggerADError:
            raise
        except low_level_errors() as err:
            raise InputFileError(
                f"{path}:{self.tree_name}: cannot read branch {name!r} entries [{start}, {stop}) "
                f"(truncated or corrupt file?): {err}"
            ) from err

    def process_labels(self, path: str, codes: np.ndarray) -> np.ndarray:
        """Map integer process codes to names using the file's ``ProcessNames`` JSON string."""
        file = self._opened(path)[1]
        if PROCESS_NAMES not in file.keys(cycle=False):
            raise missing_field("object", PROCESS_NAMES, path, file.keys(cycle=False))
        try:
            names = np.asarray(json.loads(str(file[PROCESS_NAMES])), dtype=object)
        except (*low_level_errors(), json.JSONDecodeError) as err:
            raise InputFileError(f"{path}: {PROCESS_NAMES} is not a JSON list of names: {err}") from err
        bad = (codes < 0) | (codes >= len(names))
        if bad.any():
            raise MissingFieldError(
                f"{path}: process code {int(codes[bad][0])!r} has no entry in {PROCESS_NAMES} "
                f"(holds {len(names)} names)"
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
