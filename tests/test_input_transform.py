"""HLF VAE encoder input transform (``model.input_transform.log1p``) and ``data.weight_power``."""

from __future__ import annotations

import json

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from anomaly import model as m  # noqa: E402
from anomaly.artifact import load_artifact  # noqa: E402
from anomaly.train import TrainConfig, sample_weights, train  # noqa: E402
from anomaly.transform import InputTransform  # noqa: E402
from triggerad import data as d  # noqa: E402
from triggerad import schema  # noqa: E402
from triggerad.config import build  # noqa: E402
from triggerad.errors import ConfigError, ModelFolderError  # noqa: E402

NAMES = list(schema.FEATURE_NAMES)
HT, LEPPT, METP = NAMES.index("HT"), NAMES.index("LepPt"), NAMES.index("METp")


def model_section(**extra) -> dict:
    return {"kind": "hlf_vae", "encoder": [16, 8], "decoder": [8, 16], "latent_dim": 3, **extra}


@pytest.mark.parametrize("section, match", [
    ({"input_transform": {"log1p": ["LepPT"]}}, r"unknown feature 'LepPT'.*'LepPt'"),
    ({"input_transform": {"log1p": ["METp"]}}, r"'METp' \(gaussian likelihood\) can be negative"),
    ({"input_transform": {"log1p": ["HT", "HT"]}}, "listed twice"),
    ({"input_transform": {"log1P": ["HT"]}}, "log1p"),
    ({"kind": "l1_vae", "input_transform": {"log1p": ["HT"]}}, "for kind 'hlf_vae'"),
])
def test_config_errors_name_the_key(section, match):
    with pytest.raises(ConfigError, match=match):
        build(TrainConfig, {"model": model_section(**section)}, where="cfg.yaml")


def test_weight_power_config_and_numbers():
    with pytest.raises(ConfigError, match=r"weight_power must be a number in \[0, 1\], found 1.5"):
        build(TrainConfig, {"data": {"weight_power": 1.5}}, where="cfg.yaml")
    w = np.array([1.0, 4.0, -9.0])
    np.testing.assert_allclose(sample_weights(w, True, power=0.5)[0], [0.5, 1.0, 1.5])
    np.testing.assert_allclose(sample_weights(w, True, "drop", power=0.5)[0], [1.0, 2.0, 0.0])
    np.testing.assert_array_equal(sample_weights(w, True, power=0.0)[0], [1, 1, 1])
    np.testing.assert_allclose(sample_weights(w, True, power=1.0)[0], [3 / 14, 12 / 14, 27 / 14], rtol=1e-6)


def test_transform_numbers_and_targets_unchanged():
    x = np.zeros((3, len(NAMES)), np.float32)
    x[:, HT] = [np.e - 1, 0.0, -5.0]
    x[:, LEPPT] = [3.0, 7.0, 0.0]
    x[:, METP] = [-4.0, 2.0, 1.0]
    t = InputTransform(["HT"], NAMES, np.zeros(len(NAMES)), np.full(len(NAMES), 2.0))
    out = t.apply(x)
    np.testing.assert_allclose(out[:, HT], [1.0, 0.0, 0.0], atol=1e-7)  # negative -> log1p(0)
    np.testing.assert_array_equal(np.delete(out, HT, axis=1), np.delete(x, HT, axis=1))
    assert InputTransform([], NAMES).apply(x) is x
    mean, scale = np.ones(len(NAMES), np.float32), np.full(len(NAMES), 4.0, np.float32)
    prepared = m.prepare_inputs("hlf_vae", x, mean, scale, transform=t)
    np.testing.assert_allclose(prepared["x"][:, HT], (np.array([1.0, 0, 0]) - 1) / 4, atol=1e-7)
    np.testing.assert_allclose(prepared["x"][:, METP], [-1.25, 0.25, 0.0])
    # the likelihood targets are those of the raw features with the raw normalisation
    raw = m.prepare_inputs("hlf_vae", x, np.zeros(len(NAMES)), np.full(len(NAMES), 2.0))
    np.testing.assert_array_equal(prepared["t"], raw["t"])
    np.testing.assert_allclose(prepared["t"][:, HT], [(np.e - 1) / 2, 0, 0], rtol=1e-6)


@pytest.fixture(scope="module")
def log1p_model(tmp_path_factory):
    """A tiny HLF VAE trained with log1p of HT, LepPt, MT (2 epochs), its data and summary."""
    from test_vae import synthetic_batch

    from triggerad.io import adc2021

    tmp = tmp_path_factory.mktemp("log1p")
    (tmp / "data").mkdir()
    batch = synthetic_batch(1000, seed=6)
    adc2021.write_h5(tmp / "data" / "background.h5", batch)
    cfg = build(TrainConfig, {
        "data": {"background": [str(tmp / "data")], "weight_power": 0.5},
        "model": model_section(input_transform={"log1p": ["HT", "LepPt", "MT"]}),
        "training": {"epochs": 2, "batch_size": 200, "seed": 1},
        "quantization": {"qat_epochs": 1}}, where="test")
    summary = train(cfg, tmp / "model")
    return tmp / "model", batch, summary


def test_log1p_model_stored_and_scored_identically(log1p_model):
    from anomaly.features import compute_features
    from anomaly.stream.scoring import StreamScorer

    folder, batch, summary = log1p_model
    art = load_artifact(folder)
    meta = json.loads((folder / "artifact.json").read_text())
    assert meta["input_transform"]["log1p"] == ["HT", "LepPt", "MT"]
    assert art.config["data"]["weight_power"] == 0.5
    # encoder normalisation on log(1 + x) of the training split, targets on the raw features
    train_x = compute_features(d.split(batch, (0.6, 0.2, 0.2),
                                       seed=art.data_info["split_seed"])["train"])
    np.testing.assert_allclose(art.mean[HT], np.log1p(train_x[:, HT].astype(np.float64)).mean(),
                               rtol=1e-5)
    np.testing.assert_allclose(art.transform.target_mean[HT], train_x[:, HT].mean(), rtol=1e-5)
    np.testing.assert_allclose(art.mean[METP], train_x[:, METP].mean(), rtol=1e-4, atol=1e-4)
    assert art.transform.target_mean[METP] == art.mean[METP]
    # scoring reproduces the training's validation metrics (same transform in both; the
    # validation loss is weighted by weight ** 0.5)
    val = d.load_split(art.data_info, "val")
    scores = art.score(val)
    for key in ("loss", "nll", "kl"):
        np.testing.assert_allclose(np.average(scores[key], weights=val.weight ** 0.5),
                                   summary[f"val_{key}"], rtol=1e-4)
    # the stream fast path (fastpath.json, no TensorFlow) gives the same integer score
    fast = StreamScorer(art, scores=["mu2_q", "mu2"]).score_inputs(art.inputs(val))
    np.testing.assert_array_equal(fast["mu2_q"], scores["mu2_q"])
    np.testing.assert_allclose(fast["mu2"], scores["mu2"], rtol=1e-5, atol=1e-6)
    # the integer graph takes the transformed features
    direct = art.fixed_graph()
    from anomaly.quantized import quantized_scores

    np.testing.assert_array_equal(
        quantized_scores(direct, art.transformed(art.inputs(val)), ["mu2_q"])["mu2_q"],
        scores["mu2_q"])


def test_export_and_firmware_refuse_a_transform(log1p_model):
    from anomaly.export import build_vae_export
    from firmware.kinds import AnomalyEncoder
    from triggerad.export.spec import ExportOptions

    folder, _, _ = log1p_model
    art = load_artifact(folder)
    with pytest.raises(ConfigError, match=r"ONNX export .*model.input_transform.log1p"):
        build_vae_export(folder, ExportOptions())
    with pytest.raises(ConfigError, match=r"the firmware .*\['HT', 'LepPt', 'MT'\]"):
        AnomalyEncoder().trigger_inputs(art)


def test_edited_transform_refused(log1p_model, tmp_path):
    import shutil

    folder, _, _ = log1p_model
    copy = tmp_path / "model"
    shutil.copytree(folder, copy)
    meta = json.loads((copy / "artifact.json").read_text())
    meta["input_transform"]["log1p"] = ["HT"]
    (copy / "artifact.json").write_text(json.dumps(meta))
    with pytest.raises(ModelFolderError, match=r"input_transform.log1p \['HT'\] differs"):
        load_artifact(copy)
    del meta["input_transform"]["target_normalisation"]
    meta["input_transform"]["log1p"] = ["HT", "LepPt", "MT"]
    (copy / "artifact.json").write_text(json.dumps(meta))
    with pytest.raises(ModelFolderError, match="target_normalisation"):
        load_artifact(copy)
