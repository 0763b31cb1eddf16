"""Stream scoring: fast path == model scores, exactly-once under kill/resume, Dask == local, rate control,
corrupt inputs listed, schema mismatch and missing threshold refused."""

from __future__ import annotations

import json
import logging
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

from triggerad.cli import main
from triggerad.errors import ConfigError
from triggerad.stream.config import ControlConfig, ScoreConfig
from triggerad.stream.control import RateController, block_keys
from triggerad.stream.monitor import garwood
from triggerad.stream.unit import ID_COLUMNS
from triggerad.stream.writer import read_part

N_FILES, N_PER_FILE, CHUNK = 3, 3000, 500


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return ss.make_model(tmp_path_factory.mktemp("model") / "l1_vae")


@pytest.fixture(scope="module")
def stream(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("stream")
    return ss.write_stream(folder, N_FILES, N_PER_FILE, pileup=(60, 20), lumi_size=1000)


def score_args(model, inputs, out, *extra) -> list[str]:
    return ["score", str(model), *map(str, inputs), "--out", str(out), "--chunk-size",
            str(CHUNK), "--no-progress", *extra]


@pytest.fixture(scope="module")
def reference(model, stream, tmp_path_factory) -> Path:
    """An uninterrupted local run (fast path, all outputs)."""
    out = tmp_path_factory.mktemp("ref") / "out"
    assert main(score_args(model, stream, out, "--score", "mu2_q")) == 0
    return out


def score_table(out: Path) -> pd.DataFrame:
    """The final score table: the parts concatenated in plan order."""
    parts = sorted((out / "scores").glob("part-*"))
    return pd.concat([read_part(p) for p in parts], ignore_index=True)


def assert_same_output(out: Path, ref: Path) -> None:
    pd.testing.assert_frame_equal(score_table(out), score_table(ref))
    pd.testing.assert_frame_equal(pd.read_parquet(out / "anomalies.parquet"),
                                  pd.read_parquet(ref / "anomalies.parquet"))
    assert (out / "blocks.csv").read_text() == (ref / "blocks.csv").read_text()
    assert (out / "threshold_log.jsonl").read_text() == (ref / "threshold_log.jsonl").read_text()
    a, b = (json.loads((d / "summary.json").read_text()) for d in (out, ref))
    assert (a["events"], a["accepted"]) == (b["events"], b["accepted"])


# Fast path ---------------------------------------------------------------------------------------
def test_fastpath_float_close_to_keras_and_integer_graph_close_to_qkeras(model):
    """Float encoder: numpy == Keras within float32 tolerance. Quantized encoder: the integer
    graph is the reference; QKeras (float32, training-time) may differ from it by one quantizer
    step where an accumulated value lands on a rounding boundary, on some CPUs, rarely."""
    from anomaly import model as m
    from anomaly.artifact import load_artifact, raw_inputs
    from anomaly.stream.fastpath import NumpyNet, UnsupportedModelError

    art = load_artifact(model)
    vae, qenc = art._build()
    x = np.random.default_rng(0).normal(0, 2, (20_000, 57)).astype(np.float32)
    expected = vae.encoder.predict(x, batch_size=8192, verbose=0)
    found = NumpyNet.from_keras(vae.encoder)(x)
    assert len(found) == len(expected) == 2
    for e, f in zip(expected, found, strict=True):
        np.testing.assert_allclose(f, e, rtol=1e-5, atol=1e-5)
    with pytest.raises(UnsupportedModelError, match="triggerad.fixedpoint"):
        NumpyNet.from_keras(qenc)
    # QKeras on exactly the fixed-point normalised inputs the integer graph sees
    graph = art.fixed_graph()
    raw = graph.run(raw_inputs("l1_vae", ss.drifting_batch(20_000, seed=4)),
                    keep=("standardise", "q_relu_1"))
    x_norm = graph.value("standardise", raw["standardise"]).astype(np.float32)
    hidden = m.keras.Model(qenc.input, qenc.get_layer("q_relu_1").output)
    step = graph.layer("q_relu_1").result.lsb
    diff = np.abs(hidden.predict(x_norm, batch_size=8192, verbose=0)
                  - graph.value("q_relu_1", raw["q_relu_1"]))
    assert np.mean(diff > 0) < 1e-3 and diff.max() <= step  # at most one step, rarely
    mu_keras = qenc.predict(x_norm, batch_size=8192, verbose=0)[0]
    differ = np.any(np.abs(mu_keras - graph.value("q_mu", raw["q_mu"])) > 1e-6, axis=1)
    assert np.mean(differ) < 2e-3


def test_scorer_fast_scores_equal_model_scores(model):
    """The stream fast path and ModelArtifact.score compute mu2_q/kl_q with the same integer
    graph: identical for any chunking; the float mu2 agrees within float32 tolerance."""
    from anomaly.artifact import load_artifact, raw_inputs
    from anomaly.stream.scoring import StreamScorer

    art = load_artifact(model)
    raw = raw_inputs("l1_vae", ss.drifting_batch(3000, seed=11))
    scorer = StreamScorer(art, ["mu2", "mu2_q", "kl_q"])
    fast = scorer.score_inputs(raw)
    assert scorer.fast
    chunked = [scorer.score_inputs(part) for part in np.array_split(raw, 7)]
    reference = art.score(raw, batch_size=1000)
    for name in ("mu2_q", "kl_q"):
        np.testing.assert_array_equal(fast[name], reference[name])
        np.testing.assert_array_equal(np.concatenate([c[name] for c in chunked]), fast[name])
    lsb = art.fixed_graph().layer("score").result.lsb
    np.testing.assert_array_equal(np.round(fast["mu2_q"] / lsb) * lsb, fast["mu2_q"])  # on grid
    np.testing.assert_allclose(fast["mu2"], reference["mu2"], rtol=1e-5, atol=1e-6)
    with pytest.raises(ConfigError, match="did you mean 'mu2_q'"):
        StreamScorer(art, ["mu2q"])


def test_default_scoring_is_the_fixed_point_reference_without_tensorflow(model, tmp_path):
    """By default only the threshold's score is computed, from MODEL/fastpath.json: the same graph
    as the Keras-built reference (digest), the same mu2_q bit for bit and the same decisions,
    in a process that never imports TensorFlow."""
    from anomaly.artifact import load_artifact, raw_inputs
    from anomaly.stream.fastpath import load_fastpath
    from anomaly.stream.scoring import StreamScorer
    from triggerad.io.adc2021 import Adc2021Reader

    art = load_artifact(model)
    assert load_fastpath(model, art.meta).digest() == art.fixed_graph().digest()
    raw = raw_inputs("l1_vae", ss.drifting_batch(4000, seed=13))
    scorer = StreamScorer(str(model))
    assert scorer.scores == ["mu2_q"] and scorer.fast
    fast = scorer.score_inputs(raw)["mu2_q"]
    reference = art.score(raw, batch_size=1000)["mu2_q"]
    np.testing.assert_array_equal(fast, reference)
    cut = art.threshold["value"]
    np.testing.assert_array_equal(fast > cut, reference > cut)
    assert 0 < np.mean(fast > cut) < 0.5
    assert StreamScorer(str(model), ["all"]).scores == art.score_names
    stream = ss.write_stream(tmp_path, 1, 800)
    out = tmp_path / "out"
    code = ("import sys; from triggerad.cli import main; "
            f"rc = main({score_args(model, stream, out)!r}); "
            "print('TF' if 'tensorflow' in sys.modules else 'noTF'); sys.exit(rc)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-1] == "noTF"
    table = score_table(out)
    assert [c for c in table.columns if c in art.score_names] == ["mu2_q"]
    expected = art.score(Adc2021Reader().read(stream[0]))
    np.testing.assert_array_equal(table["mu2_q"].to_numpy(), expected["mu2_q"])
    np.testing.assert_array_equal(table["accepted"].to_numpy(), expected["mu2_q"] > cut)


def test_fastpath_file_is_checked_on_load(model, tmp_path, caplog):
    """Missing -> rebuilt from the weights by the scorer (logged), or an actionable error from
    load_fastpath; another format version, an edited graph or other weights -> ModelFolderError
    naming the file and the fix."""
    from anomaly.artifact import load_artifact
    from anomaly.stream.fastpath import FASTPATH_FILE, FastPathMissingError, load_fastpath
    from anomaly.stream.scoring import StreamScorer
    from triggerad.models import ModelFolderError

    folder = tmp_path / "model"
    shutil.copytree(model, folder)
    path = folder / FASTPATH_FILE
    original = json.loads(path.read_text())
    meta = load_artifact(folder).meta

    def edited(change) -> None:
        data = json.loads(json.dumps(original))
        change(data)
        path.write_text(json.dumps(data))

    edited(lambda d: d.update(format_version=99))
    with pytest.raises(ModelFolderError, match=r"fastpath.json: format_version 99, this "
                       r"trigger-ad reads 1; delete .*fastpath.json and re-run"):
        load_fastpath(folder, meta)
    edited(lambda d: d["graph"]["layers"][2]["bias"].__setitem__(0, 5))
    with pytest.raises(ModelFolderError, match="digest .* differs .*edited file"):
        load_fastpath(folder, meta)
    edited(lambda d: d["built_from"].update(normalisation="0" * 64))
    with pytest.raises(ModelFolderError, match="built from another normalisation"):
        load_fastpath(folder, meta)
    path.write_text("{not json")
    with pytest.raises(ModelFolderError, match="unreadable"):
        StreamScorer(str(folder)).prepare()
    path.unlink()
    with pytest.raises(FastPathMissingError, match="fastpath.json: missing.*--score all"):
        load_fastpath(folder, meta)
    raw = ss.drifting_batch(500, seed=2)
    with caplog.at_level(logging.WARNING):
        scorer = StreamScorer(str(folder))
        scores = scorer.score_inputs(scorer.inputs(raw))
    assert "wrote it from the weights" in caplog.text
    assert json.loads(path.read_text()) == original
    art = load_artifact(model)
    np.testing.assert_array_equal(scores["mu2_q"], art.score(raw)["mu2_q"])


def test_score_all_gives_the_keras_scores(model, stream, tmp_path):
    """--score all: every score of the model, the decoder ones from Keras (float tolerance)."""
    from anomaly.artifact import load_artifact
    from triggerad.io.adc2021 import Adc2021Reader

    out = tmp_path / "out"
    assert main(score_args(model, stream[:1], out, "--score", "all")) == 0
    table = score_table(out)
    art = load_artifact(model)
    expected = art.score(Adc2021Reader().read(stream[0]))
    for name in art.score_names:
        if name in ("mu2_q",):
            np.testing.assert_array_equal(table[name].to_numpy(), expected[name])
        else:
            np.testing.assert_allclose(table[name].to_numpy(), expected[name], rtol=1e-5,
                                       atol=1e-6)
    assert json.loads((out / "summary.json").read_text())["scores"] == art.score_names


def test_encoder_inputs_and_table_are_bit_identical_to_the_plain_definitions(model):
    import pyarrow as pa

    from anomaly.artifact import load_artifact
    from anomaly.model import input_mask
    from anomaly.stream.scoring import encoder_inputs
    from triggerad.stream.unit import unit_table

    art = load_artifact(model)
    batch = ss.drifting_batch(3000, seed=12)
    batch.source_file = np.full(len(batch), "some/file.h5", dtype=object)
    x = art.inputs(batch)
    expected = art.normalise(x) * input_mask(x)
    assert encoder_inputs(art, x).tobytes() == expected.tobytes()
    scores = {"mu2_q": np.arange(len(batch), dtype=np.float64)}
    table = unit_table(batch, scores)
    plain = pd.DataFrame({"source_file": batch.source_file, "entry": batch.entry, "run": batch.run,
                          "lumi": batch.lumi, "event": batch.event, "pileup": batch.pileup,
                          "weight": batch.weight, **scores})
    pd.testing.assert_frame_equal(table, plain, check_exact=True)
    fast, slow = (pa.Table.from_pandas(t, preserve_index=False) for t in (table, plain))
    assert fast.schema.equals(slow.schema, check_metadata=True) and fast.equals(slow)


# Rate monitor and controller -------------------------------------------------------------------
def test_garwood_intervals():
    low, high = garwood(np.array([0, 1, 10]))
    np.testing.assert_allclose(low, [0.0, 0.1727, 6.8913], atol=2e-4)
    np.testing.assert_allclose(high, [1.8411, 3.2996, 14.2670], atol=2e-4)


def drifting_scores(n_blocks=40, block=4000, seed=5):
    """Exponential scores whose scale falls with pile-up (60 -> 20) over the fill."""
    rng = np.random.default_rng(seed)
    n = n_blocks * block
    pileup = np.linspace(60, 20, n)
    scores = rng.exponential(1.0, n) * (1 + 0.02 * (pileup - 40))
    keys = block_keys(np.zeros(n, np.int64), np.zeros(n, np.int64), np.arange(n), block)
    return scores, keys


def test_controller_holds_rate_where_fixed_threshold_does_not():
    scores, keys = drifting_scores()
    target, band = 0.05, (0.8, 1.2)
    threshold0 = -np.log(target)  # exactly 5 % at pile-up 40
    results = {}
    for enabled in (False, True):
        ctl = RateController(ControlConfig(enabled=enabled), threshold0, target)
        # fed in chunks that do not align with blocks, as the stream driver does
        accepted = np.concatenate([
            ctl.apply(scores[i:i + 3000], keys[0][i:i + 3000], keys[1][i:i + 3000])[1]
            for i in range(0, len(scores), 3000)
        ])
        ratio = accepted.reshape(40, -1).mean(axis=1) / target
        results[enabled] = (np.mean((ratio >= band[0]) & (ratio <= band[1])), accepted.mean())
    in_band_fixed, in_band_controlled = results[False][0], results[True][0]
    assert in_band_fixed <= 0.25
    assert in_band_controlled >= 0.75
    assert abs(results[True][1] / target - 1) < 0.12  # overall rate close to target
    # the measured plant gain -d ln(fraction)/d ln(threshold) of an exponential tail at the
    # target is ln(1 / target) = 3.0, whatever the (drifting) scale
    assert 2.4 < ctl.state.elasticity < 3.6


def test_controller_is_causal_and_chunking_invariant():
    scores, keys = drifting_scores(n_blocks=10, block=1000)
    whole = RateController(ControlConfig(enabled=True), 3.0, 0.05).apply(scores, *keys)
    ctl = RateController(ControlConfig(enabled=True), 3.0, 0.05)
    parts = [ctl.apply(scores[i:i + 777], keys[0][i:i + 777], keys[1][i:i + 777])
             for i in range(0, len(scores), 777)]
    for k in range(3):
        np.testing.assert_array_equal(whole[k], np.concatenate([p[k] for p in parts]))
    # changing the scores of block 6 onwards leaves the thresholds of blocks 0-6 unchanged
    changed = scores.copy()
    changed[6000:] *= 3
    other = RateController(ControlConfig(enabled=True), 3.0, 0.05).apply(changed, *keys)
    np.testing.assert_array_equal(other[0][:7000], whole[0][:7000])
    assert not np.array_equal(other[0][7000:], whole[0][7000:])


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


# Reading only what the scorer needs, local executor ----------------------------------------------
def test_read_fields_give_the_model_inputs(model, tmp_path):
    """The fields the scorer reads give the same model inputs as a full read, for both kinds."""
    from io_samples import random_batch

    from anomaly.artifact import raw_inputs
    from anomaly.kinds import INPUT_FIELDS
    from anomaly.stream.scoring import StreamScorer
    from triggerad.io.adc2021 import Adc2021Reader, write_h5

    write_h5(tmp_path / "a.h5", random_batch(60))
    reader = Adc2021Reader()
    full = reader.read(tmp_path / "a.h5")
    for kind, fields in INPUT_FIELDS.items():
        selected = reader.read(tmp_path / "a.h5", fields=fields)
        np.testing.assert_array_equal(raw_inputs(kind, selected), raw_inputs(kind, full))
    assert StreamScorer(str(model), ["mu2_q"]).read_fields == (
        "objects", "run", "lumi", "event", "pileup", "weight")


def test_score_unit_reads_only_the_needed_fields(model, tmp_path, caplog):
    """A file holding only the needed datasets is scored exactly, with no 'missing' warning."""
    import h5py

    from anomaly.artifact import raw_inputs
    from anomaly.stream.scoring import StreamScorer
    from triggerad.stream.plan import ReaderChooser, WorkUnit
    from triggerad.stream.unit import UnitTask

    batch = ss.drifting_batch(300, seed=5, lumi_size=100)
    batch.weight = np.linspace(0.5, 2.0, 300)
    path = tmp_path / "lean.h5"
    with h5py.File(path, "w") as f:
        f["Particles"] = batch.objects
        for name in ("run", "lumi", "event", "pileup", "weight"):
            f[name] = getattr(batch, name)
    scorer = StreamScorer(str(model), ["mu2_q"])
    unit = WorkUnit(0, str(path), 50, 250, 0)
    with caplog.at_level(logging.WARNING):
        result = UnitTask(ReaderChooser("adc2021"), scorer, "mu2_q", 0.0)(unit)
    assert not [r for r in caplog.records if "found no input for" in r.getMessage()]
    part = batch.take(slice(50, 250))
    table = result.table
    np.testing.assert_array_equal(table["entry"], np.arange(50, 250))
    for name in ("run", "lumi", "event", "pileup", "weight"):
        np.testing.assert_array_equal(table[name], getattr(part, name), err_msg=name)
    expected = scorer.score_inputs(raw_inputs("l1_vae", part))["mu2_q"]
    np.testing.assert_array_equal(table["mu2_q"], expected)
    assert len(result.candidates) == int((expected > 0).sum())


def test_local_executor_reads_ahead_in_plan_order():
    from triggerad.executor import LocalExecutor

    class Task:
        """Reads get slower along the plan; records which reads started before each score."""

        def __init__(self):
            self.started: list[int] = []

        def read(self, unit):
            self.started.append(unit)
            time.sleep(0.01 * unit)
            return unit * 10

        def score(self, unit, batch):
            return unit, batch, len(self.started)

        def __call__(self, unit):
            return self.score(unit, self.read(unit))

    for read_ahead in (0, 1, 2):
        out = list(LocalExecutor(read_ahead).map(Task(), range(5)))
        assert [(u, b) for u, b, _ in out] == [(u, 10 * u) for u in range(5)]
        # when unit k is scored, at most reads up to k + read_ahead have started
        assert all(u + 1 <= n <= u + 1 + read_ahead for u, _, n in out)
    with pytest.raises(ValueError, match="read_ahead must be >= 0"):
        LocalExecutor(-1)


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
