"""Jet HDF5 files: one row per jet, fixed-shape tagger inputs, chunked along the jet axis.

Layout (``format = "trigger-ad-jets"``, ``format_version`` 1 in the file attributes): one dataset
per :class:`~triggerad.jets.JetBatch` field (``charged`` (n, Nc, Fc), ``neutral`` (n, Nn, Fn),
``sv`` (n, Ns, Fs), ``globals`` (n, 14) float32; ``ctau``, ``label``, ``gen_pt``, ``gen_dr``,
``vertex_fraction``, ``vertex`` (n, 3), ``hadron_flavour``, ``parton_flavour``, ``event``,
``jet_index``, ``weight``, ``domain``, ``pileup``, ``process`` (variable-length str)). Datasets are
chunked by :data:`CHUNK_JETS` jets (LZF-compressed), so a reader of a slice of jets (e.g. a
``tf.data`` pipeline) decompresses only that slice. The attributes ``charged_features``,
``neutral_features``, ``sv_features``, ``global_features``, ``labels`` and ``domains`` hold the
schema; the reader refuses files whose schema differs from this version's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from triggerad import atomic
from triggerad.errors import InputFileError, SchemaMismatchError, TriggerADError, missing_field
from triggerad.io.base import Reader, ReadOptions, check_readable
from triggerad.io.common import load_branch_map, low_level_errors
from triggerad.io.jetbase import JetReaderMixin
from triggerad.jets import ARRAY_FIELDS, DOMAINS, FEATURES, LABELS, JetBatch

FORMAT = "trigger-ad-jets"
FORMAT_VERSION = 1
#: Jets per HDF5 chunk (a ``charged`` chunk of 25 x 17 float32 per jet is 870 kB, inside
#: HDF5's default 1 MB chunk cache).
CHUNK_JETS = 512
#: Default jets per chunk of the reader (~50 MB with the default block sizes).
DEFAULT_CHUNK_JETS = 20_000
#: Fields stored as datasets (``source_file``/``entry`` are filled by the reader).
STORED = tuple(f for f in ARRAY_FIELDS if f not in ("source_file", "entry"))
SCHEMA_ATTRS = {
    "charged_features": FEATURES["charged"], "neutral_features": FEATURES["neutral"],
    "sv_features": FEATURES["sv"], "global_features": FEATURES["globals"], "labels": LABELS,
    "domains": DOMAINS,
}


def write_jets_h5(path: str | Path, batch: JetBatch, *, description: str = "") -> None:
    """Write ``batch`` as a jet HDF5 file, atomically (module docstring)."""
    import h5py

    with atomic.atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["format"] = FORMAT
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["description"] = description
        for key, names in SCHEMA_ATTRS.items():
            f.attrs[key] = list(names)
        n = len(batch)
        for name in STORED:
            arr = getattr(batch, name)
            chunks = (max(1, min(CHUNK_JETS, n)), *arr.shape[1:])
            if name == "process":
                f.create_dataset(name, data=arr.astype(str).astype(object),
                                 dtype=h5py.string_dtype(), chunks=chunks)
            else:
                f.create_dataset(name, data=arr, chunks=chunks, compression="lzf")


def is_jet_file(path: str | Path) -> bool:
    """Whether ``path`` is a readable HDF5 file with the jet-file ``format`` attribute."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return f.attrs.get("format") == FORMAT
    except (OSError, ValueError):
        return False


@dataclass
class JetsBranchMap:
    """Options of the jet HDF5 reader: jets whose c-tau (mm, when > 0) lies outside
    ``ctau_range`` are refused."""

    ctau_range: list[float] = field(default_factory=lambda: [0.01, 10_000.0])


class JetH5Reader(JetReaderMixin, Reader):
    """Read jet HDF5 files (module docstring) in jet ranges."""

    name = "jets"

    def __init__(self, branch_map=None, options=None):
        # ~2.5 kB per jet: a smaller default chunk than the event readers'
        options = options or ReadOptions(chunk_size=DEFAULT_CHUNK_JETS)
        super().__init__(load_branch_map(JetsBranchMap, self.name, branch_map), options)
        self.ctau_range = tuple(self.branch_map.ctau_range)

    def _open(self, path: str):
        import h5py

        check_readable(path)
        try:
            f = h5py.File(path, "r")
        except low_level_errors() as err:
            raise InputFileError(f"{path}: not a readable HDF5 file (truncated or corrupt?): "
                                 f"{err}") from err
        if f.attrs.get("format") != FORMAT:
            f.close()
            raise InputFileError(f"{path}: not a trigger-ad jet file (expected the attribute "
                                 f"format = {FORMAT!r})")
        return f

    def num_entries(self, path) -> int:
        """Number of jets in ``path``."""
        with self._open(str(path)) as f:
            if "event" not in f:
                raise missing_field("dataset", "event", str(path), list(f.keys()))
            return int(f["event"].shape[0])

    def _read_jets(self, path: str, start: int, stop: int) -> JetBatch:
        with self._open(path) as f:
            version = int(f.attrs.get("format_version", -1))
            if version != FORMAT_VERSION:
                raise SchemaMismatchError(
                    f"{path}: jet file format_version {version!r}, this trigger-ad reads "
                    f"{FORMAT_VERSION}")
            for key, names in SCHEMA_ATTRS.items():
                found = [str(x) for x in f.attrs.get(key, [])]
                if found != list(names):
                    raise SchemaMismatchError(
                        f"{path}: attribute {key!r} expected {list(names)!r}, found {found!r}")
            arrays = {}
            for name in STORED:
                if name not in f:
                    raise missing_field("dataset", name, path, list(f.keys()))
                try:
                    data = f[name][start:stop]
                except TriggerADError:
                    raise
                except low_level_errors() as err:
                    raise InputFileError(f"{path}: cannot read dataset {name!r} rows [{start}, "
                                         f"{stop}) (truncated or corrupt?): {err}") from err
                if name == "process":
                    data = np.array([x.decode() if isinstance(x, bytes) else str(x)
                                     for x in data], dtype=object)
                arrays[name] = data
        n = len(arrays["event"])
        return JetBatch(**arrays, source_file=np.full(n, "", dtype=object),
                        entry=np.arange(start, start + n, dtype=np.int64))
