"""The shortcuts of a scoring run's fixed cost give what the general code gives: the per-block
monitor table with numpy, the threshold log, the anomalies file concatenated in a background
thread, the git lookup started in the background, the cached config text and branch maps."""

from __future__ import annotations

import subprocess

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from stream_samples import small_graph

from triggerad import provenance
from triggerad.io.common import default_branch_map_path, read_default_map
from triggerad.stream import monitor
from triggerad.stream.finalise import _threshold_log
from triggerad.stream.writer import concatenate_parts, start_concatenation


def part(blocks, seed: int, *, nan: bool = False) -> pd.DataFrame:
    """A score part's monitor columns for blocks ``blocks`` (block sizes 1-40 events)."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 40, len(blocks))
    block = np.repeat(np.asarray(blocks, np.int64), sizes)
    n = len(block)
    pileup = rng.uniform(20, 60, n).astype(np.float32)
    if nan:
        pileup[0] = np.nan
    return pd.DataFrame({"block": block, "run": np.full(n, 3, np.int64), "lumi": block + 100,
                         "pileup": pileup, "threshold": np.linspace(2.0, 2.5, n),
                         "accepted": rng.uniform(size=n) < 0.2})


LAYOUTS = {
    "disjoint": [part([0, 1, 2], 1), part([3, 4], 2), part([7], 3)],
    "spanning-two": [part([0, 1], 1), part([1, 2, 3], 2), part([3], 3), part([5, 6], 4)],
    "spanning-three": [part([0, 1], 1), part([1], 2), part([1, 2], 3)],  # pandas path
    "unsorted": [part([2, 3], 1), part([0, 1], 2)],  # pandas path
    "nan-pileup": [part([0, 1], 1, nan=True), part([1, 2], 2)],  # pandas path
    "one": [part([4, 5, 6], 5)],
    "with-empty": [part([0], 1), part([], 2), part([1], 3)],
}


@pytest.mark.parametrize("frames", LAYOUTS.values(), ids=LAYOUTS.keys())
def test_block_table_equals_pandas(frames):
    partials = [monitor.block_partial(f) for f in frames]
    kwargs = {"band": [0.8, 1.2], "confidence": 0.6827}
    reference = monitor.add_rates(monitor.aggregate_blocks(partials, partial=True), 1e5, 2e4,
                                  **kwargs)
    table = monitor.block_table(partials, 1e5, 2e4, **kwargs)
    pd.testing.assert_frame_equal(table, reference, check_exact=True)
    assert table.to_csv(index=False) == reference.to_csv(index=False)  # blocks.csv bytes
    # and what the per-event frames give in one piece
    whole = monitor.aggregate_blocks([pd.concat(frames, ignore_index=True)])
    pd.testing.assert_frame_equal(table[whole.columns], whole, check_exact=False, rtol=1e-6)


def test_block_table_empty():
    reference = monitor.add_rates(monitor.aggregate_blocks([], partial=True), 1e5, 2e4,
                                  band=[0.8, 1.2])
    pd.testing.assert_frame_equal(monitor.block_table([None], 1e5, 2e4, band=[0.8, 1.2]),
                                  reference)


def reference_log(table) -> list[dict]:
    """The former row-by-row threshold log."""
    first, end = table["threshold"].to_numpy(), table["threshold_end"].to_numpy()
    out = []
    for i in range(len(table)):
        where = {"block": int(table["block"].iat[i]), "run": int(table["run"].iat[i]),
                 "lumi": int(table["lumi"].iat[i])}
        if i and first[i] != end[i - 1]:
            out.append({**where, "threshold": float(first[i]),
                        "previous_threshold": float(end[i - 1]),
                        "previous_block_fraction": float(table["accepted"].iat[i - 1]
                                                         / table["events"].iat[i - 1])})
        if end[i] != first[i]:
            out.append({**where, "threshold": float(end[i]), "previous_threshold": float(first[i]),
                        "within_block": True})
    return out


def test_threshold_log_equals_row_by_row():
    table = monitor.block_table([monitor.block_partial(f) for f in LAYOUTS["spanning-two"]],
                                1e5, 2e4, band=[0.8, 1.2])
    assert len(_threshold_log(table)) > 3
    assert _threshold_log(table) == reference_log(table)
    steady = table.assign(threshold=1.5, threshold_end=1.5)
    assert _threshold_log(steady) == reference_log(steady) == []


def anomaly_tables(n_parts: int = 3) -> list[pa.Table]:
    rng = np.random.default_rng(4)
    return [pa.Table.from_pandas(pd.DataFrame(rng.normal(size=(n, 12)).astype(np.float32),
                                              columns=[f"x{i}" for i in range(12)]),
                                 preserve_index=False)
            for n in (30, 0, 17)[:n_parts]]


def test_concatenation_in_background_same_bytes(tmp_path):
    tables = anomaly_tables()
    paths = []
    for i, table in enumerate(tables):
        paths.append(tmp_path / f"part-{i}.parquet")
        pq.write_table(table, paths[-1])
    pq.write_table(pa.concat_tables([tables[0], tables[2]]), tmp_path / "ref.parquet")
    future = start_concatenation(paths, tmp_path / "bg.parquet",
                                 dict(zip(paths[:2], tables[:2], strict=True)))  # 1 read back
    assert future.result() == 47
    assert concatenate_parts(paths, tmp_path / "fg.parquet") == 47
    reference = (tmp_path / "ref.parquet").read_bytes()
    assert (tmp_path / "bg.parquet").read_bytes() == reference
    assert (tmp_path / "fg.parquet").read_bytes() == reference


def test_concatenation_error_reaches_the_caller(tmp_path):
    future = start_concatenation([tmp_path / "missing.parquet"], tmp_path / "out.parquet")
    with pytest.raises(OSError):
        future.result()
    assert not (tmp_path / "out.parquet").exists()
    assert not list(tmp_path.iterdir())  # no temporary file left


@pytest.fixture
def fresh_git():
    provenance._reset_git_hash()
    yield
    provenance._reset_git_hash()


def test_git_hash_background_equals_synchronous(fresh_git):
    expected = provenance._git_lookup()  # synchronous, in this thread
    future = provenance.start_git_hash()
    assert provenance.start_git_hash() is future  # one lookup per process
    assert future.result(timeout=30) == expected == provenance.git_hash()
    assert provenance.provenance("score")["git_hash"] == expected


@pytest.mark.parametrize("failure", ["oserror", "timeout", "not-a-checkout"])
def test_git_failure_gives_unknown(fresh_git, monkeypatch, failure):
    def run(argv, **kwargs):
        if failure == "oserror":
            raise FileNotFoundError(2, "No such file or directory", "git")
        if failure == "timeout":
            raise subprocess.TimeoutExpired(argv, 10)
        return subprocess.CompletedProcess(argv, 128, "", "fatal: not a git repository")

    monkeypatch.setattr(provenance.subprocess, "run", run)
    assert provenance.start_git_hash().result(timeout=30) == "unknown"
    assert provenance.git_hash() == "unknown"


def test_git_hash_dirty_suffix(fresh_git, monkeypatch):
    def run(argv, **kwargs):
        out = "abc123\n" if "rev-parse" in argv else " M triggerad/x.py\n"
        return subprocess.CompletedProcess(argv, 0, out, "")

    monkeypatch.setattr(provenance.subprocess, "run", run)
    assert provenance.git_hash() == "abc123-dirty"


def test_default_branch_map_cached_copy():
    from triggerad.config import read_yaml

    path = default_branch_map_path("adc2021")
    first = read_default_map(path)
    assert first == read_yaml(path)
    first.clear()  # the cache hands out copies
    assert read_default_map(path) == read_yaml(path)


def test_fastpath_graph_cached_while_unchanged(tmp_path):
    import json

    from anomaly.stream import fastpath
    from triggerad.models import ModelFolderError

    meta = {"normalisation": {"mean": [0.0]}, "config": {"quantization": {"bits": 8}}}
    (tmp_path / fastpath._WEIGHTS).write_bytes(b"weights")
    graph = small_graph()
    fastpath.write_fastpath(tmp_path, meta, graph)
    first = fastpath.load_fastpath(tmp_path, meta)
    assert first.digest() == graph.digest()
    assert fastpath.load_fastpath(tmp_path, meta) is first  # parsed once
    (tmp_path / fastpath._WEIGHTS).write_bytes(b"other weights")  # checked on every call
    with pytest.raises(ModelFolderError, match="built from another quantized_encoder"):
        fastpath.load_fastpath(tmp_path, meta)
    (tmp_path / fastpath._WEIGHTS).write_bytes(b"weights")
    path = tmp_path / fastpath.FASTPATH_FILE
    data = json.loads(path.read_text())
    data["digest"] = "0" * 64  # an edited file is read again
    path.write_text(json.dumps(data))
    with pytest.raises(ModelFolderError, match="differs from the recorded"):
        fastpath.load_fastpath(tmp_path, meta)
