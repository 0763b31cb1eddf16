"""Feature-only sources: flat ROOT ntuples (one branch per feature) and feature parquet files.

Both fill :attr:`EventBatch.hlf` with the 21 features (``has_objects`` False). The branch map
names the branch / column of each feature (``features: {HT: my_ht, ...}``; features not listed
use their own name) and of ``event``, ``process`` and ``weight`` (optional: absent -> entry number,
``data``, 1, logged once). In ROOT files ``process`` holds integer codes into the JSON list of names
in the ``ProcessNames`` string; in parquet files it is a string column.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from triggerad import atomic, schema
from triggerad.errors import ShapeError, did_you_mean, missing_field
from triggerad.events import EventBatch
from triggerad.io.base import Reader, check_readable
from triggerad.io.common import load_branch_map, reading
from triggerad.io.rootio import RootReader, per_event


@dataclass
class FeatureBranchMap:
    """Branch (ROOT) or column (parquet) of each feature and of the per-event fields."""

    tree: str = "features"
    features: dict[str, str] = field(default_factory=dict)
    event: str | None = "event"
    process: str | None = "process"
    weight: str | None = "weight"

    def __post_init__(self) -> None:
        for name in self.features:
            if name not in schema.FEATURE_NAMES:
                raise ValueError(
                    f"features: unknown feature {name!r}; "
                    + did_you_mean(name, schema.FEATURE_NAMES)
                )

    def column(self, feature: str) -> str:
        """Branch / column holding ``feature``."""
        return self.features.get(feature, feature)


def feature_batch(hlf: np.ndarray, start: int, event=None, process=None, weight=None) -> EventBatch:
    """An :class:`EventBatch` of precomputed features; absent fields are listed in ``defaults``."""
    n = len(hlf)
    given = {"event": event, "process": process, "weight": weight}
    arrays = {k: v for k, v in given.items() if v is not None}
    arrays.setdefault("event", np.arange(start, start + n, dtype=np.int64))
    batch = EventBatch.empty(n, **arrays, hlf=np.asarray(hlf, dtype=np.float32), has_objects=False)
    batch.defaults = tuple(k for k, v in given.items() if v is None)
    return batch


class FlatReader(RootReader):
    """Read a flat ROOT ntuple holding the 21 features as one branch each."""

    name = "flat"

    def __init__(self, branch_map=None, options=None):
        super().__init__(load_branch_map(FeatureBranchMap, self.name, branch_map), options)
        self.tree_name = self.branch_map.tree

    def _read(self, path: str, start: int, stop: int) -> EventBatch:
        bmap = self.branch_map
        columns = {f: self.branch(path, bmap.column(f), start, stop) for f in schema.FEATURE_NAMES}
        for feature, arr in columns.items():
            if arr.ndim != 1:
                raise ShapeError(
                    f"{path}:{self.tree_name}: branch {bmap.column(feature)!r} ({feature}) is "
                    f"jagged ({arr.type}); a flat ntuple needs one number per event"
                )
        hlf = np.stack([per_event(columns[f], np.float32) for f in schema.FEATURE_NAMES], axis=1)
        extra = {k: self.branch(path, getattr(bmap, k), start, stop, required=False)
                 for k in ("event", "process", "weight") if getattr(bmap, k)}
        return feature_batch(
            hlf, start,
            event=None if extra.get("event") is None else per_event(extra["event"], np.int64),
            process=None if extra.get("process") is None
            else self.process_labels(path, per_event(extra["process"], np.int64)),
            weight=None if extra.get("weight") is None else per_event(extra["weight"], np.float64),
        )


class ParquetReader(Reader):
    """Read feature parquet files (as written by ``trigger-ad features``) in bounded memory.

    Entry ranges are read with ``ParquetFile.iter_batches`` over the row groups they overlap, so
    memory is bounded by the chunk and row-group sizes, not the file size.
    """

    name = "parquet"

    def __init__(self, branch_map=None, options=None):
        super().__init__(load_branch_map(FeatureBranchMap, self.name, branch_map), options)

    def _file(self, path: str):
        import pyarrow.parquet as pq

        with reading(f"{path}: not a readable parquet file"):
            return pq.ParquetFile(path)

    def num_entries(self, path) -> int:
        """Number of rows of the parquet file."""
        check_readable(path)
        return int(self._file(str(path)).metadata.num_rows)

    def _read(self, path: str, start: int, stop: int) -> EventBatch:
        pf = self._file(path)
        bmap = self.branch_map
        available = pf.schema_arrow.names
        columns = [bmap.column(f) for f in schema.FEATURE_NAMES]
        for col in columns:
            if col not in available:
                raise missing_field("column", col, path, available)
        extras = {k: getattr(bmap, k) for k in ("event", "process", "weight")
                  if getattr(bmap, k) in available}
        with reading(f"{path}: cannot read rows [{start}, {stop})"):
            table = _rows(pf, start, stop, columns + list(extras.values()))
        try:
            hlf = np.stack([table.column(c).to_numpy().astype(np.float32) for c in columns], axis=1)
        except (ValueError, TypeError) as err:
            raise ShapeError(f"{path}: feature columns must be numeric: {err}") from err
        get = {k: table.column(c).to_numpy(zero_copy_only=False) for k, c in extras.items()}
        return feature_batch(
            hlf, start,
            event=get["event"].astype(np.int64) if "event" in get else None,
            process=get["process"].astype(str).astype(object) if "process" in get else None,
            weight=get["weight"].astype(np.float64) if "weight" in get else None,
        )


def _rows(pf, start: int, stop: int, columns: list[str]):
    """Rows ``[start, stop)`` of a ParquetFile as a pyarrow Table, reading only overlapping groups."""
    import pyarrow as pa

    meta = pf.metadata
    bounds = np.cumsum([0] + [meta.row_group(i).num_rows for i in range(meta.num_row_groups)])
    groups = [i for i in range(meta.num_row_groups) if bounds[i] < stop and bounds[i + 1] > start]
    pieces, offset = [], bounds[groups[0]] if groups else start
    for rb in pf.iter_batches(batch_size=max(1, stop - start), row_groups=groups, columns=columns):
        lo, hi = max(start - offset, 0), min(stop - offset, rb.num_rows)
        if hi > lo:
            pieces.append(rb.slice(lo, hi - lo))
        offset += rb.num_rows
    if not pieces:
        return pa.Table.from_batches([], schema=pf.schema_arrow.empty_table().select(columns).schema)
    return pa.Table.from_batches(pieces)


def write_parquet(path: str | Path, frame, metadata: dict[str, str] | None = None) -> None:
    """Write a DataFrame as a parquet file atomically (``metadata`` added to the schema)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    if metadata:
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})
    with atomic.atomic_path(path) as tmp:
        pq.write_table(table, tmp)
