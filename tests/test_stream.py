"""Stream scoring end to end: exactly-once under kill/resume, Dask and processes == local, rate control,
corrupt inputs listed, schema mismatch and missing threshold refused (the fast path itself:
tests/test_stream_fastpath.py)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import stream_samples as ss
from stream_samples import CHUNK, score_args, score_table

from triggerad.cli import main
from triggerad.errors import ConfigError
from triggerad.stream.config import ScoreConfig
from triggerad.stream.unit import ID_COLUMNS

N_FILES, N_PER_FILE = 3, 3000  # the `stream` fixture of conftest.py


@pytest.fixture(scope="module")
def reference(model, stream, tmp_path_factory) -> Path:
    """An uninterrupted local run (fast path, all outputs)."""
    out = tmp_path_factory.mktemp("ref") / "out"
    assert main(score_args(model, stream, out, "--score", "mu2_q")) == 0
    return out


def assert_same_output(out: Path, ref: Path) -> None:
    pd.testing.assert_frame_equal(score_table(out), score_table(ref))
    pd.testing.assert_frame_equal(pd.read_parquet(out / "anomalies.parquet"),
                                  pd.read_parquet(ref / "anomalies.parquet"))
    assert (out / "blocks.csv").read_text() == (ref / "blocks.csv").read_text()
    assert (out / "threshold_log.jsonl").read_text() == (ref / "threshold_log.jsonl").read_text()
    a, b = (json.loads((d / "summary.json").read_text()) for d in (out, ref))
    assert (a["events"], a["accepted"]) == (b["events"], b["accepted"])


# End to end ------------------------------------------------------------------------------------
def test_reference_run_outputs(reference, model, tmp_path):
    table = score_table(reference)
    summary = json.loads((reference / "summary.json").read_text())
    thr = summary["threshold"]
    assert len(table) == summary["events"] == N_FILES * N_PER_FILE
    assert not table.duplicated(["source_file", "entry"]).any()
    assert list(table.columns[:5]) == ["source_file", "entry", "run", "lumi", "event"]
    np.testing.assert_array_equal(table["accepted"], table["mu2_q"] > thr["value"])
    assert summary["accepted"] == int(table["accepted"].sum())
    anomalies = pd.read_parquet(reference / "anomalies.parquet")
    assert len(anomalies) == summary["accepted"]
    # concatenated from the tables kept in memory: the bytes of the parts read back
    from triggerad.stream.writer import concatenate_parts

    parts = sorted((reference / "anomalies").glob("part-*.parquet"))
    assert len(parts) > 1
    concatenate_parts(parts, tmp_path / "anomalies.parquet")
    assert (tmp_path / "anomalies.parquet").read_bytes() == (
        reference / "anomalies.parquet").read_bytes()
    from anomaly.artifact import load_artifact

    assert list(anomalies.columns) == [*ID_COLUMNS, *load_artifact(model).input_names]
    blocks = pd.read_csv(reference / "blocks.csv")
    assert len(blocks) == N_FILES * N_PER_FILE // 1000  # lumi blocks of 1000 events
    np.testing.assert_array_equal(blocks["events"], 1000)
    np.testing.assert_allclose(blocks["rate_hz"],
                               blocks["accepted"] / 1000 * ss.INPUT_RATE_HZ)
    assert (blocks["mean_pileup"].diff().dropna() < 0).all()  # pile-up falls along the fill
    assert summary["files_failed"] == [] and summary["fast_path"] is True
    assert (reference / "rate_vs_pileup.png").stat().st_size > 0
    manifest = [json.loads(x) for x in (reference / "manifest.jsonl").read_text().splitlines()]
    assert [e["unit"] for e in manifest] == list(range(N_FILES * N_PER_FILE // CHUNK))


KILLED_RUN = """
import sys, time
import triggerad.stream.unit as scoring
original = scoring.UnitTask.score
def slow(*args):
    time.sleep(0.25)
    return original(*args)
scoring.UnitTask.score = slow
from triggerad.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_kill_and_resume_is_exactly_once(model, stream, reference, tmp_path):
    out = tmp_path / "out"
    args = score_args(model, stream, out, "--score", "mu2_q")
    proc = subprocess.Popen([sys.executable, "-c", KILLED_RUN, *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    manifest = out / "manifest.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if manifest.exists() and len(manifest.read_text().splitlines()) >= 4:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = len(manifest.read_text().splitlines())
    assert 4 <= done < N_FILES * N_PER_FILE // CHUNK  # killed mid-run
    assert not (out / "summary.json").exists()
    assert main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["resumed_units"] >= 4
    assert summary["events_this_run"] == N_FILES * N_PER_FILE - summary["resumed_units"] * CHUNK
    assert_same_output(out, reference)
    table = score_table(out)
    assert len(table) == N_FILES * N_PER_FILE and not table.duplicated(["source_file", "entry"]).any()


def test_resume_rewrites_damaged_parts(model, stream, reference, tmp_path):
    """A part without manifest line, a corrupt part and a half-written line are all redone."""
    out = tmp_path / "out"
    shutil.copytree(reference, out)
    lines = (out / "manifest.jsonl").read_text().splitlines()
    (out / "manifest.jsonl").write_text("\n".join(lines[:8]) + "\n" + lines[8][:40])
    with open(out / "scores" / "part-00005.parquet", "r+b") as fh:
        fh.seek(100)
        fh.write(b"garbage")
    (out / "summary.json").unlink()
    assert main(score_args(model, stream, out, "--score", "mu2_q")) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["resumed_units"] == 5
    assert_same_output(out, reference)


def test_changed_settings_refuse_to_resume(model, stream, reference, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(reference, out)
    assert main(score_args(model, stream, out, "--score", "mu2_q", "--rate-control",
                           "rate-control")) == 2
    assert "holds a run with different 'config'" in capsys.readouterr().err


@pytest.mark.slow
def test_dask_equals_local(model, stream, reference, tmp_path):
    from triggerad.executor import DaskExecutor
    from triggerad.stream.config import load_score_config
    from triggerad.stream.runner import run_stream

    config = load_score_config(None, {"chunking": {"chunk_size": CHUNK}})
    executor = DaskExecutor(workers=2, processes=False)
    try:
        summary = run_stream(str(model), [str(p) for p in stream], tmp_path / "out", config=config,
                             executor=executor, scores=["mu2_q"], progress=False)
    finally:
        executor.close()
    assert summary["executor"] == "dask"
    assert_same_output(tmp_path / "out", reference)


@pytest.mark.slow
def test_process_executor_equals_local(model, stream, reference, tmp_path):
    """Files counted and units scored in 2 worker processes: the same outputs."""
    out = tmp_path / "out"
    assert main(score_args(model, stream, out, "--score", "mu2_q", "--executor", "process",
                           "--workers", "2")) == 0
    assert json.loads((out / "summary.json").read_text())["executor"] == "process"
    assert_same_output(out, reference)


def test_unknown_executor_or_reader_exits_2_before_touching_files(model, stream, tmp_path,
                                                                 capsys):
    out = tmp_path / "out"
    assert main(score_args(model, stream, out, "--executor", "proces")) == 2
    assert "unknown executor 'proces'; did you mean 'process'?" in capsys.readouterr().err
    assert main(score_args(model, stream, out, "--reader", "nano")) == 2
    assert "unknown reader 'nano'; did you mean 'nanoaod'?" in capsys.readouterr().err
    assert not out.exists()


@pytest.fixture(scope="module")
def controlled(model, stream, tmp_path_factory) -> Path:
    """An uninterrupted run with the threshold controller."""
    out = tmp_path_factory.mktemp("controlled") / "out"
    assert main(score_args(model, stream, out, "--score", "mu2_q", "--rate-control",
                           "rate-control")) == 0
    return out


def test_rate_control_end_to_end(controlled, reference):
    out = controlled
    table = score_table(out)
    blocks = pd.read_csv(out / "blocks.csv")
    log = [json.loads(x) for x in (out / "threshold_log.jsonl").read_text().splitlines()]
    # one threshold per block, changed only at block boundaries, every change logged
    per_block = table.groupby("block")["threshold"].nunique()
    assert (per_block == 1).all()
    assert [e["block"] for e in log] == list(blocks["block"][blocks["threshold"].diff() != 0][1:])
    np.testing.assert_array_equal(table["accepted"], table["mu2_q"] > table["threshold"])
    # the first block runs at the stored threshold, identical to the fixed run
    ref = score_table(reference)
    first = table["block"] == 0
    np.testing.assert_array_equal(table["accepted"][first], ref["accepted"][first])
    anomalies = pd.read_parquet(out / "anomalies.parquet")
    assert len(anomalies) == table["accepted"].sum()


def test_rate_control_resume_is_identical(model, stream, controlled, tmp_path):
    """The controller state recorded in the manifest makes a resumed selection identical."""
    out = tmp_path / "out"
    shutil.copytree(controlled, out)
    lines = (out / "manifest.jsonl").read_text().splitlines()
    (out / "manifest.jsonl").write_text("\n".join(lines[:7]) + "\n")
    for name in ("summary.json", "anomalies.parquet", "threshold_log.jsonl"):
        (out / name).unlink()
    assert main(score_args(model, stream, out, "--score", "mu2_q", "--rate-control",
                           "rate-control")) == 0
    assert json.loads((out / "summary.json").read_text())["resumed_units"] == 7
    assert_same_output(out, controlled)
    # 7 parts read back, the others kept in memory: the same bytes
    assert (out / "anomalies.parquet").read_bytes() == (controlled / "anomalies.parquet").read_bytes()
    assert json.loads((out / "summary.json").read_text())["controller"]["threshold_changes"] > 0


def test_corrupt_file_listed_and_rest_scored(model, stream, tmp_path):
    from triggerad.events import EventBatch
    from triggerad.io.adc2021 import write_h5

    bad = tmp_path / "bad.h5"
    bad.write_bytes(os.urandom(2048))
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(stream[1].read_bytes()[:3000])
    empty = tmp_path / "empty.h5"
    write_h5(empty, EventBatch.empty(0))
    out = tmp_path / "out"
    args = score_args(model, [stream[0], bad, truncated, empty], out, "--score", "mu2_q")
    assert main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    failed = {Path(f["file"]).name for f in summary["files_failed"]}
    assert failed == {"bad.h5", "truncated.h5"}
    assert summary["files_empty"] == [str(empty)]
    assert all(f["error"] for f in summary["files_failed"])
    assert summary["events"] == N_PER_FILE
    assert main(score_args(model, [stream[0], bad], tmp_path / "out2", "--score", "mu2_q",
                           "--on-error", "fail")) == 2
    assert not (tmp_path / "out2" / "summary.json").exists()


def test_schema_mismatch_refused(model, tmp_path, capsys):
    from triggerad import schema
    from triggerad.io.flat import write_parquet

    frame = pd.DataFrame(np.ones((20, 21), np.float32), columns=list(schema.FEATURE_NAMES))
    frame["event"], frame["process"], frame["weight"] = np.arange(20), "W", 1.0
    write_parquet(tmp_path / "features.parquet", frame)
    assert main(score_args(model, [tmp_path / "features.parquet"], tmp_path / "out")) == 2
    assert "l1_vae" in capsys.readouterr().err


def test_model_without_threshold_refused(model, stream, tmp_path, capsys):
    bare = tmp_path / "bare"
    shutil.copytree(model, bare)
    (bare / "threshold.json").unlink()
    assert main(score_args(bare, stream[:1], tmp_path / "out")) == 2
    assert "trigger-ad threshold" in capsys.readouterr().err


def test_root_parts_match_parquet(model, stream, reference, tmp_path):
    out = tmp_path / "out"
    assert main(score_args(model, stream[:1], out, "--score", "mu2_q", "--format", "root")) == 0
    root = score_table(out)
    ref = score_table(reference)
    ref = ref[ref["source_file"] == str(stream[0])]
    np.testing.assert_array_equal(root["entry"], ref["entry"])
    np.testing.assert_allclose(root["mu2_q"], ref["mu2_q"])
    np.testing.assert_array_equal(root["file_index"], 0)


def test_score_config_unknown_key(tmp_path):
    from triggerad.stream.config import load_score_config

    bad = tmp_path / "score.yaml"
    bad.write_text("control:\n  kpp: 0.3\n")
    with pytest.raises(ConfigError, match="did you mean 'kp'"):
        load_score_config(bad)
    assert load_score_config(None) == ScoreConfig()


def test_failed_last_write_leaves_no_anomalies_file_and_resumes(model, stream, reference,
                                                                 tmp_path, monkeypatch):
    """The anomalies file and the monitor table are written beside the last unit's score part:
    when that write fails, the run leaves neither, and the manifest without the unit; a rerun
    completes it."""
    from triggerad.stream import runner

    write_part = runner.write_part

    def failing(frame, path, fmt="parquet", **kwargs):
        if path.parent.name == "scores" and path.name.startswith("part-00017"):
            time.sleep(0.5)  # the anomalies part and file are written meanwhile
            raise OSError(f"{path}: no space left on device (test)")
        return write_part(frame, path, fmt, **kwargs)

    out = tmp_path / "out"
    monkeypatch.setattr(runner, "write_part", failing)
    try:
        code = main(score_args(model, stream, out, "--score", "mu2_q"))
    except OSError as err:
        assert "no space left" in str(err)
    else:
        assert code != 0
    assert not (out / "anomalies.parquet").exists()  # removed again
    assert not (out / "blocks.csv").exists() and not (out / "threshold_log.jsonl").exists()
    assert (out / "anomalies" / "part-00017.parquet").exists()  # written, but not listed
    lines = (out / "manifest.jsonl").read_text().splitlines()
    assert [json.loads(line)["unit"] for line in lines] == list(range(17))
    monkeypatch.setattr(runner, "write_part", write_part)
    assert main(score_args(model, stream, out, "--score", "mu2_q")) == 0
    assert json.loads((out / "summary.json").read_text())["resumed_units"] == 17
    assert_same_output(out, reference)
