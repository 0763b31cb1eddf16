"""Per-chunk part files, written atomically, and their checksums.

Score parts are parquet (``scores/part-XXXXX.parquet``, the default) or ROOT
(``scores/part-XXXXX.root``, tree ``Scores``; ROOT has no string branches, so ``source_file`` is
stored as ``file_index`` into ``summary.json["files"]``). Anomaly parts are always parquet.
The final score table is the concatenation of the parts in plan order.
"""

from __future__ import annotations

import hashlib
import threading
from concurrent.futures import Future
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from triggerad import spare
from triggerad.atomic import atomic_path

ROOT_TREE = "Scores"
SUFFIX = {"parquet": ".parquet", "root": ".root"}

#: Parquet columns written with dictionary encoding: those with few distinct values per part.
#: The others (entry, event, scores, inputs) are nearly unique, where trying a dictionary first
#: only costs time; the encoding changes the file bytes, never the values read back.
DICTIONARY_COLUMNS = ("source_file", "run", "lumi", "block", "threshold", "weight")


#: The concatenated anomalies parts in the output folder.
ANOMALIES_FILE = "anomalies.parquet"

#: Arrow schemas (with their pandas metadata) by column layout, for :func:`arrow_table`.
_SCHEMAS: dict[tuple, pa.Schema] = {}


def arrow_table(frame: pd.DataFrame) -> pa.Table:
    """``pa.Table.from_pandas(frame, preserve_index=False)``: the same table, schema and pandas
    metadata (hence the same parquet bytes), faster for the parts' column layouts.

    ``from_pandas`` spends ~40 us per column inferring what the layout already says (a
    62-column anomalies part: 2.5 ms); here the schema is derived once per layout (names and
    dtypes) from the frame's first zero rows, and the columns are wrapped as they are. Layouts
    with other than numeric, bool or string-dtype columns take ``from_pandas`` itself.
    """
    names = list(frame.columns)
    dtypes = list(frame.dtypes)
    fast = len(set(names)) == len(names) and all(isinstance(n, str) for n in names) and all(
        isinstance(d, pd.StringDtype) or (isinstance(d, np.dtype) and d.kind in "biuf")
        for d in dtypes)
    if not fast:
        return pa.Table.from_pandas(frame, preserve_index=False, nthreads=1)
    key = (tuple(names), tuple(dtypes))  # dtypes hash and compare by value
    schema = _SCHEMAS.get(key)
    if schema is None:
        schema = _SCHEMAS[key] = pa.Table.from_pandas(frame.iloc[:0], preserve_index=False).schema
    arrays = []
    for field, values in zip(schema, _column_values(frame, dtypes), strict=True):
        array = pa.array(values, from_pandas=True)  # NaN -> null, as from_pandas does
        arrays.append(array if array.type == field.type else array.cast(field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


#: Runs of at least this many adjacent columns of one numpy dtype (the anomalies part's inputs)
#: are taken out of the frame as one 2-D array rather than one Series per column (~15 us each).
BLOCK_COLUMNS = 8


def _column_values(frame: pd.DataFrame, dtypes: list):
    """The values of each column of ``frame``, in order: numpy arrays, or the pandas arrays of
    string columns."""
    runs, i = [], 0  # (first, end) of the runs of columns of one numpy dtype
    while i < len(dtypes):
        j = i + 1
        if isinstance(dtypes[i], np.dtype):
            while j < len(dtypes) and dtypes[j] == dtypes[i]:
                j += 1
        runs.append((i, j))
        i = j
    if all(j - i < BLOCK_COLUMNS for i, j in runs):  # the score parts: one Series per column
        for (_, column), dtype in zip(frame.items(), dtypes, strict=True):
            yield column.array if isinstance(dtype, pd.StringDtype) else column.to_numpy()
        return
    for i, j in runs:
        if j - i >= BLOCK_COLUMNS:
            yield from np.ascontiguousarray(frame.iloc[:, i:j].to_numpy().T)  # contiguous rows
            continue
        for k in range(i, j):
            column = frame.iloc[:, k]
            yield column.array if isinstance(dtypes[k], pd.StringDtype) else column.to_numpy()


def part_path(outdir: Path, kind: str, index: int, fmt: str = "parquet") -> Path:
    """``outdir/<kind>/part-XXXXX.<suffix>`` for unit ``index``."""
    return Path(outdir) / kind / f"part-{index:05d}{SUFFIX[fmt]}"


def sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_part(frame: pd.DataFrame, path: Path, fmt: str = "parquet", *,
               files: list | None = None, tables: dict | None = None) -> str:
    """Write ``frame`` atomically as parquet or ROOT and return the file's sha256.

    Parameters
    ----------
    frame : DataFrame
        The rows of one work unit.
    path : Path
        Target file.
    fmt : {"parquet", "root"}
        Output format.
    files : list of str, optional
        For ROOT: the file list ``source_file`` is mapped into (``file_index``).
    tables : dict, optional
        For parquet: ``tables[path]`` is set to the Arrow table written (what reading the file
        back gives; :func:`concatenate_parts` then need not read it).
    """
    if fmt != "root":
        # into memory, hashed there and written once (no second pass over the file)
        dictionary = [c for c in DICTIONARY_COLUMNS if c in frame.columns]
        sink = pa.BufferOutputStream()
        table = arrow_table(frame)
        pq.write_table(table, sink, use_dictionary=dictionary)
        if tables is not None:
            tables[Path(path)] = table
        data = sink.getvalue()
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            fh.write(data)
        return hashlib.sha256(data).hexdigest()
    import uproot

    index = {name: i for i, name in enumerate(files or [])}
    branches = {c: frame[c].to_numpy() for c in frame.columns if c != "source_file"}
    branches["file_index"] = frame["source_file"].map(index).to_numpy("int32")
    with atomic_path(path) as tmp, uproot.recreate(tmp) as root_file:
        root_file[ROOT_TREE] = branches
    return sha256(path)


def _read_table(path: Path, columns: list[str] | None = None) -> pa.Table:
    """One parquet file as a table (``pq.read_table``'s result, without the dataset layer:
    its import alone costs a fresh ``trigger-ad score`` ~0.3 s)."""
    with pq.ParquetFile(path) as parquet:
        return parquet.read(columns=columns)


def read_part(path: Path, columns: list[str] | None = None) -> pd.DataFrame:
    """Read a part file (parquet or ROOT) back, optionally only ``columns``."""
    if Path(path).suffix == ".root":
        import uproot

        with uproot.open(path) as root_file:
            return root_file[ROOT_TREE].arrays(columns, library="pd")
    return _read_table(path, columns).to_pandas()


def concatenate_parts(paths: list[Path], target: Path, known: dict | None = None, *,
                      writing: threading.Event | None = None) -> int:
    """Concatenate parquet parts (in the given order) into ``target`` atomically; return rows.

    ``known``: path -> Arrow table of parts written by this process (:func:`write_part`
    ``tables``), taken instead of reading the file back (same table, same bytes written).
    ``writing`` is set when the parquet encoding starts (it runs without the GIL).
    """
    known = known or {}
    tables = [known[Path(p)] if Path(p) in known else _read_table(p) for p in paths]
    tables = [t for t in tables if t.num_rows] or tables[:1]
    table = pa.concat_tables(tables) if tables else pa.table({})
    with atomic_path(target) as tmp, pq.ParquetWriter(tmp, table.schema) as parquet:
        if writing is not None:
            writing.set()
        parquet.write_table(table)  # what pq.write_table(table, tmp) does: the same bytes
    return sum(t.num_rows for t in tables)


def start_concatenation(paths: list[Path], target: Path, known: dict | None = None) -> Future:
    """:func:`concatenate_parts` in a background thread; returns its future once the thread
    encodes the table (no longer needs the GIL), so that the caller's Python work overlaps it
    rather than delaying its start."""
    writing = threading.Event()

    def run() -> int:
        try:
            return concatenate_parts(paths, target, known, writing=writing)
        finally:
            writing.set()

    future = spare.background(run, name="concatenate")
    writing.wait()
    return future
