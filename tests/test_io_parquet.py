"""Parquet feature reader: chunks across row groups, renamed and optional columns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from triggerad import schema
from triggerad.errors import ConfigError
from triggerad.events import EventBatch
from triggerad.io.base import ReadOptions
from triggerad.io.flat import ParquetReader, write_parquet


def frame(n: int, seed: int = 5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    out = pd.DataFrame(rng.uniform(0, 10, (n, 21)).astype(np.float32),
                       columns=list(schema.FEATURE_NAMES))
    out["event"] = np.arange(n, dtype=np.int64) * 3
    out["process"] = np.resize(np.array(["W", "Z", "QCD"]), n)
    out["weight"] = rng.uniform(0, 2, n)
    return out


@pytest.mark.parametrize("chunk", [1, 4, 7, 30])
def test_chunks_across_row_groups(tmp_path, chunk):
    df = frame(23)
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), tmp_path / "f.parquet",
                   row_group_size=5)
    assert pq.ParquetFile(tmp_path / "f.parquet").metadata.num_row_groups == 5
    reader = ParquetReader(options=ReadOptions(chunk_size=chunk))
    chunks = list(reader.iter_chunks(tmp_path / "f.parquet"))
    assert [len(c) for c in chunks] == [min(chunk, 23 - s) for s in range(0, 23, chunk)]
    b = EventBatch.concatenate(chunks)
    np.testing.assert_array_equal(b.hlf, df[list(schema.FEATURE_NAMES)].to_numpy())
    np.testing.assert_array_equal(b.event, df["event"])
    np.testing.assert_array_equal(b.weight, df["weight"])
    assert list(b.process) == list(df["process"])
    np.testing.assert_array_equal(b.entry, np.arange(23))
    assert not b.has_objects and b.defaults == ()


def test_read_entry_range_in_middle_of_row_groups(tmp_path):
    df = frame(23)
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), tmp_path / "f.parquet",
                   row_group_size=5)
    b = ParquetReader().read(tmp_path / "f.parquet", 8, 17)
    np.testing.assert_array_equal(b.event, df["event"][8:17])
    np.testing.assert_array_equal(b.entry, np.arange(8, 17))


def test_renamed_column_and_missing_optional_columns(tmp_path):
    df = frame(6).drop(columns=["event", "process", "weight"]).rename(columns={"MT": "mt"})
    write_parquet(tmp_path / "f.parquet", df)
    b = ParquetReader({"features": {"MT": "mt"}}).read(tmp_path / "f.parquet")
    np.testing.assert_array_equal(b.hlf[:, schema.FEATURE_NAMES.index("MT")], df["mt"])
    np.testing.assert_array_equal(b.event, np.arange(6))
    np.testing.assert_array_equal(b.weight, np.ones(6))
    assert set(b.defaults) == {"event", "process", "weight"}


def test_unknown_feature_in_branch_map_names_nearest():
    with pytest.raises(ConfigError, match=r"unknown feature 'METP'.*did you mean 'METp'"):
        ParquetReader({"features": {"METP": "met_par"}})


def test_write_parquet_is_atomic_and_keeps_metadata(tmp_path):
    write_parquet(tmp_path / "f.parquet", frame(3), metadata={"trigger_ad": "x"})
    assert [p.name for p in tmp_path.iterdir()] == ["f.parquet"]
    assert pq.read_schema(tmp_path / "f.parquet").metadata[b"trigger_ad"] == b"x"
