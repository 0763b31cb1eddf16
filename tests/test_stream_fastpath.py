"""The stream scorer's fast path: the numpy float and integer graphs against Keras / QKeras, the
``fastpath.json`` checks, ``--score all``, and reading only the fields the scores need.

The end-to-end runs (exactly-once, resume, executors, rate control) are in
:mod:`tests.test_stream`.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import stream_samples as ss
from stream_samples import score_args, score_table

from triggerad.cli import main
from triggerad.errors import ConfigError


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
