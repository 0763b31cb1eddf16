"""The shortcuts of the default scoring path give what the general code gives: Arrow conversion
of the parts (same table, schema and bytes as ``from_pandas``), per-block counts of sorted parts,
the objects' finite/physical pre-check and the integer graph's block size."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from stream_samples import small_graph

from triggerad.io.base import objects_clean, unphysical_rows
from triggerad.stream import monitor
from triggerad.stream.writer import DICTIONARY_COLUMNS, arrow_table, write_part


def score_frame(n: int = 500, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    source = pd.array(["/data/stream_00.h5"] * n, dtype=pd.Series([""]).dtype)
    return pd.DataFrame({
        "source_file": source, "entry": np.arange(n), "run": np.ones(n, np.int64),
        "lumi": np.repeat(np.arange(5), n // 5), "event": np.arange(n) * 3,
        "pileup": rng.uniform(20, 60, n).astype(np.float32), "weight": np.ones(n),
        "mu2_q": np.r_[np.nan, np.inf, rng.exponential(1.0, n - 2)],
        "block": np.repeat(np.arange(5), n // 5), "threshold": np.full(n, 3.5),
        "accepted": rng.uniform(size=n) < 0.1,
    })


def wide_frame(n: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(2)
    frame = score_frame(n).iloc[:, :5]
    inputs = pd.DataFrame(rng.normal(size=(n, 57)).astype(np.float32),
                          columns=[f"x{i}" for i in range(57)])
    return pd.concat([frame, inputs], axis=1)


def wide_frame_nan() -> pd.DataFrame:
    frame = wide_frame()
    frame.loc[3, "x7"] = np.nan  # inside the block of inputs: null, as from_pandas
    return frame


@pytest.mark.parametrize("frame", [score_frame(), score_frame().iloc[:0], wide_frame(),
                                   wide_frame_nan(), wide_frame().iloc[:0],
                                   score_frame().assign(label=np.array(["a"] * 500, object))],
                         ids=["scores", "empty", "anomalies", "anomalies-nan", "anomalies-empty",
                              "object-column"])
def test_arrow_table_equals_from_pandas(frame, tmp_path):
    fast, reference = arrow_table(frame), pa.Table.from_pandas(frame, preserve_index=False)
    assert fast.equals(reference)
    assert fast.schema.equals(reference.schema, check_metadata=True)
    if "mu2_q" in frame:  # NaN -> null (row 0), as from_pandas
        assert fast.column("mu2_q").null_count == reference.column("mu2_q").null_count
    # same parquet bytes as the former writer (from_pandas straight into the file)
    digest = write_part(frame, tmp_path / "part.parquet")
    pq.write_table(reference, tmp_path / "ref.parquet",
                   use_dictionary=[c for c in DICTIONARY_COLUMNS if c in frame.columns])
    assert digest == hashlib.sha256((tmp_path / "ref.parquet").read_bytes()).hexdigest()
    pd.testing.assert_frame_equal(pq.read_table(tmp_path / "part.parquet").to_pandas(), frame)


def groupby_partial(frame: pd.DataFrame) -> pd.DataFrame:
    grouped = frame.groupby("block", sort=False)
    return pd.DataFrame({
        "run": grouped["run"].first(), "lumi": grouped["lumi"].first(),
        "threshold": grouped["threshold"].first(), "threshold_end": grouped["threshold"].last(),
        "events": grouped.size(), "accepted": grouped["accepted"].sum(),
        "pileup_sum": grouped["pileup"].sum(),
    })


def test_block_partial_sorted_equals_groupby():
    frame = score_frame(1000)
    frame["threshold"] = np.linspace(3.0, 4.0, len(frame))  # first != last within a block
    frame.loc[frame["block"] == 2, "block"] = 7  # gaps in the keys
    frame.loc[frame["block"] > 2, "block"] += 10
    pd.testing.assert_frame_equal(monitor.block_partial(frame), groupby_partial(frame),
                                  check_exact=False, rtol=1e-6)
    shuffled = frame.iloc[::-1].reset_index(drop=True)  # unsorted: the general path
    pd.testing.assert_frame_equal(monitor.block_partial(shuffled), groupby_partial(shuffled))


def objects(n: int, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.zeros((n, 19, 4), np.float32)
    out[..., 0] = rng.exponential(30.0, (n, 19)) * (rng.uniform(size=(n, 19)) < 0.6)
    out[..., 1] = rng.uniform(-4, 4, (n, 19))
    out[..., 2] = rng.uniform(-np.pi, np.pi, (n, 19))
    out[..., 3] = 1.0
    return out


@pytest.mark.parametrize("n", [0, 1, 7, 300, 1001])
def test_objects_clean_on_clean_events(n):
    assert objects_clean(objects(n)) is True
    assert objects_clean(objects(n)[::2]) is True  # not contiguous


@pytest.mark.parametrize("slot,column,value", [
    (0, 0, np.nan), (5, 1, np.nan), (18, 3, np.inf), (3, 2, -np.inf), (7, 0, -1.0),
    (1, 0, 14_001.0), (2, 2, 3.2), (2, 2, -3.2), (11, 1, np.inf)])
@pytest.mark.parametrize("row", [0, 299, 1000])
def test_objects_clean_flags_every_bad_value(slot, column, value, row):
    bad = objects(1001)
    bad[row, slot, column] = value
    assert objects_clean(bad) is False


def test_objects_clean_is_sound():
    """Whenever the pre-check passes, the full checks find nothing (it may only be stricter:
    phi of empty slots)."""
    rng = np.random.default_rng(6)
    for trial in range(40):
        a = objects(257, seed=trial)
        idx = tuple(rng.integers(0, s) for s in a.shape)
        a[idx] = rng.choice([np.nan, np.inf, -1.0, 3.3, 20_000.0, 0.5, -0.5])
        if objects_clean(a):
            assert np.isfinite(a).all() and not unphysical_rows(a)


def test_graph_result_does_not_depend_on_the_block_size():
    x = np.random.default_rng(5).normal(0, 20, (5000, 9)).astype(np.float32)
    results = [small_graph(block)(x)[0] for block in (7, 2048, 4096, 10_000)]
    for other in results[1:]:
        np.testing.assert_array_equal(other, results[0])


def test_reader_chooser_detects_each_file_once(monkeypatch, tmp_path):
    from triggerad.io import registry
    from triggerad.stream.plan import ReaderChooser

    calls = []
    detect = registry.detect_reader
    monkeypatch.setattr(registry, "detect_reader",
                        lambda path, record="events": calls.append(path) or detect(path, record))
    chooser = ReaderChooser("auto")
    paths = [str(tmp_path / "a.parquet"), str(tmp_path / "b.h5")]
    readers = [chooser(p) for p in paths * 3]
    assert calls == paths  # the HDF5 check (it opens the file) once per file, not per unit
    assert [r.name for r in readers[:2]] == ["parquet", "adc2021"]
    assert readers[2] is readers[0] and readers[3] is readers[1]


@pytest.mark.parametrize("n", [1, 255, 256, 2048, 3000])
def test_column_extremes_equal_the_column_reductions(n):
    from triggerad.io.base import column_extremes

    a = np.random.default_rng(n).normal(size=(n, 19, 4)).astype(np.float32)
    for nan in (False, True):
        if nan:
            a[n // 2, 3, 1] = np.nan
        low, high = column_extremes(a)
        np.testing.assert_array_equal(low, a.reshape(-1, 4).min(axis=0))  # NaN propagates
        np.testing.assert_array_equal(high, a.reshape(-1, 4).max(axis=0))
