"""VAE models, training, the model artifact and ``trigger-ad train`` on tiny synthetic samples."""

from __future__ import annotations

import json

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from anomaly import model as m  # noqa: E402
from anomaly.artifact import load_artifact, save_artifact  # noqa: E402
from anomaly.train import TrainConfig, fit_quantized_encoder, fit_vae, sample_weights  # noqa: E402
from triggerad import data as d  # noqa: E402
from triggerad.config import build, load, to_dict  # noqa: E402
from triggerad.errors import ConfigError, MissingFieldError, SchemaMismatchError  # noqa: E402
from triggerad.events import EventBatch, from_collections  # noqa: E402


def synthetic_batch(n: int, seed: int = 0) -> EventBatch:
    """``n`` single-lepton-like events: 0-3 electrons / muons, 0-8 jets, hadron counts."""
    rng = np.random.default_rng(seed)

    def coll(m_, pt_scale, eta_max, occupancy):
        pt = rng.exponential(pt_scale, (n, m_)) + 20
        pt[rng.random((n, m_)) > occupancy] = 0
        return {"pt": pt, "eta": rng.uniform(-eta_max, eta_max, (n, m_)),
                "phi": rng.uniform(-np.pi, np.pi, (n, m_))}

    ele, mu, jets = coll(3, 20, 2.5, 0.4), coll(3, 20, 2.1, 0.4), coll(8, 40, 4.0, 0.3)
    for lep in (ele, mu):
        lep["charge"] = rng.choice([-1, 1], (n, 3))
        lep["iso"] = rng.exponential(0.05, (n, 3, 3)) * (rng.random((n, 3, 3)) > 0.3)
    jets["mass"] = rng.exponential(8, (n, 8))
    jets["btag"] = rng.random((n, 8)) < 0.1
    return from_collections(
        rng.exponential(30, n), rng.uniform(-np.pi, np.pi, n), ele, mu, jets,
        n_ch_had=rng.poisson(40, n).astype(np.int32), n_neu_had=rng.poisson(20, n).astype(np.int32),
        weight=rng.uniform(0.5, 2.0, n), event=np.arange(n, dtype=np.int64) + 100,
    )


TINY = {
    "hlf_vae": {"kind": "hlf_vae", "encoder": [16, 8], "decoder": [8, 16], "latent_dim": 3},
    "l1_vae": {"kind": "l1_vae", "encoder": [16, 8], "decoder": [8, 16], "latent_dim": 4},
}


def tiny_config(kind: str, epochs: int = 3) -> TrainConfig:
    return build(TrainConfig, {
        "model": TINY[kind],
        "training": {"epochs": epochs, "batch_size": 128, "patience": 5, "seed": 3},
        "quantization": {"weight_bits": [8, 8, 8], "weight_integer": [1, 1, 2], "qat_epochs": 2,
                         "qat_learning_rate": 1e-3},
    }, where="test")


def prepared(kind: str, batch: EventBatch):
    """Raw inputs, normalisation and train/val input dicts of ``batch``."""
    from anomaly.artifact import raw_inputs

    x = raw_inputs(kind, batch)
    idx = d.split_indices(len(batch), (0.6, 0.2, 0.2), seed=1)
    mean, scale = m.fit_normalisation(kind, x[idx["train"]])
    inputs = m.prepare_inputs(kind, x, mean, scale)
    sub = {k: {name: v[i] for name, v in inputs.items()} for k, i in idx.items()}
    return x, idx, mean, scale, sub


@pytest.fixture(scope="module")
def trained_l1(tmp_path_factory):
    """A tiny L1 VAE trained 3 epochs in memory, its quantized encoder, and the saved artifact."""
    tf.keras.utils.set_random_seed(5)
    batch = synthetic_batch(800, seed=1)
    cfg = tiny_config("l1_vae")
    x, idx, mean, scale, sub = prepared("l1_vae", batch)
    w, _ = sample_weights(batch.weight, True)
    out = tmp_path_factory.mktemp("l1")
    vae, hist = fit_vae(cfg, sub["train"], sub["val"], w[idx["train"]], w[idx["val"]], out / "work")
    qenc, _ = fit_quantized_encoder(cfg, vae, sub["train"], sub["val"])
    info = {"background": [], "reader": "auto", "fingerprint": d.fingerprint(batch)}
    save_artifact(out / "model", vae=vae, quantized_encoder=qenc, mean=mean, scale=scale,
                  config=to_dict(cfg), data_info=info)
    return {"batch": batch, "x": x, "vae": vae, "qenc": qenc, "hist": hist, "path": out / "model",
            "sub": sub}


@pytest.mark.slow
def test_hlf_vae_trains_and_loss_decreases(tmp_path):
    tf.keras.utils.set_random_seed(11)
    batch = synthetic_batch(900, seed=2)
    _, idx, _, _, sub = prepared("hlf_vae", batch)
    ones = np.ones(len(batch), np.float32)
    _, hist = fit_vae(tiny_config("hlf_vae"), sub["train"], sub["val"], ones[idx["train"]],
                      ones[idx["val"]], tmp_path)
    assert len(hist["loss"]) == 3
    assert hist["loss"][-1] < hist["loss"][0]
    assert hist["val_loss"][-1] < hist["val_loss"][0]
    # loss = nll + beta kl per epoch (train metrics are averaged the same way)
    np.testing.assert_allclose(
        np.array(hist["val_loss"]), np.array(hist["val_nll"]) + 0.3 * np.array(hist["val_kl"]),
        rtol=1e-5,
    )
    assert (tmp_path / "checkpoints" / "vae.best.weights.h5").is_file()
    assert any((tmp_path / "logs").rglob("events.out.tfevents*"))


def test_reload_gives_identical_scores(trained_l1):
    """Float scores: equal within float32 tolerance across batch sizes, bit-identical for the same
    batch size on the same machine (what docs/anomaly.md promises). mu2_q: exact integers,
    bit-identical for any batch size; the in-memory model gives the same integer graph."""
    from anomaly.quantized import quantized_scores, score_graph
    from triggerad.fixedpoint import FixedPointConfig

    art = load_artifact(trained_l1["path"])
    assert art.kind == "l1_vae" and art.latent_dim == 4 and art.default_score == "mu2_q"
    assert len(art.input_names) == 57 and art.input_names[:3] == ["MET_pT", "MET_eta", "MET_phi"]
    batch = trained_l1["batch"]
    scores = art.score(batch, batch_size=300)
    assert set(scores) == {"loss", "nll", "kl", "mu2", "mu2_q", "kl_q"}
    assert all(v.dtype == np.float64 and v.shape == (800,) for v in scores.values())
    # the same numbers from the in-memory models that were saved
    inputs = m.prepare_inputs("l1_vae", trained_l1["x"], art.mean, art.scale)
    terms = trained_l1["vae"].terms(inputs, sample=False)
    for key in ("loss", "nll", "kl", "mu2"):
        np.testing.assert_allclose(scores[key], terms[key].numpy(), rtol=1e-5, atol=1e-6)
    graph = score_graph(trained_l1["qenc"], FixedPointConfig(), art.mean, art.scale)
    assert graph.digest() == art.fixed_graph().digest()
    for key, values in quantized_scores(graph, trained_l1["x"]).items():
        np.testing.assert_array_equal(scores[key], values)
    # QKeras (float normalisation, float32) is the training-time twin: close, not identical
    mu_q = trained_l1["qenc"](m.encoder_input("l1_vae", inputs))[0].numpy()
    mu2_qkeras = (mu_q.astype(np.float64) ** 2).sum(axis=1)
    assert np.corrcoef(mu2_qkeras, scores["mu2_q"])[0, 1] > 0.99
    assert np.median(np.abs(mu2_qkeras - scores["mu2_q"])) < 0.05 * np.median(scores["mu2_q"])
    # encoder-only models of the artifact reproduce mu2 from normalised inputs
    xn = art.normalise(trained_l1["x"])
    np.testing.assert_allclose(
        (art.float_encoder().predict(xn, verbose=0) ** 2).sum(axis=1), scores["mu2"], rtol=1e-5
    )
    enc_q = art.quantized_encoder()
    assert [type(lay).__name__ for lay in enc_q.layers[1:]] == [
        "QDense", "QActivation", "QDense", "QActivation", "QDense"
    ]
    # QAT started from the float weights: the quantized score tracks the float one
    assert np.corrcoef(scores["mu2"], scores["mu2_q"])[0, 1] > 0.9
    # a second load: the same batch size gives bit-identical scores (same machine), another
    # batch size float scores within tolerance and mu2_q bit-identical
    again = load_artifact(trained_l1["path"])
    same = again.score(trained_l1["x"], batch_size=300)
    other = again.score(trained_l1["x"])
    for key, values in scores.items():
        np.testing.assert_array_equal(same[key], values)
        np.testing.assert_allclose(other[key], values, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(other["mu2_q"], scores["mu2_q"])


def test_l1_masked_loss_ignores_padded_slots(trained_l1):
    vae = trained_l1["vae"]
    inputs = {k: v[:50].copy() for k, v in trained_l1["sub"]["val"].items()}
    padded = inputs["m"] == 0
    assert padded.sum() > 100  # jets/leptons slots are mostly empty
    before = {k: v.numpy() for k, v in vae.terms(inputs, sample=False).items()}
    inputs["x"] = np.where(padded, np.random.default_rng(0).normal(0, 5, inputs["x"].shape),
                           inputs["x"]).astype(np.float32)
    after = {k: v.numpy() for k, v in vae.terms(inputs, sample=False).items()}
    for key in before:
        np.testing.assert_array_equal(after[key], before[key])
    # but changing an occupied entry (MET pT) changes the loss
    inputs["x"][:, 0] += 1.0
    assert not np.allclose(vae.terms(inputs, sample=False)["loss"].numpy(), before["loss"])


def test_schema_mismatch_refused(trained_l1, tmp_path):
    art = load_artifact(trained_l1["path"])
    batch = trained_l1["batch"].take(slice(0, 5))
    feature_only = EventBatch.empty(5, hlf=np.zeros((5, 21), np.float32), has_objects=False)
    with pytest.raises(SchemaMismatchError, match="expects the 57 L1 inputs"):
        art.score(feature_only)
    with pytest.raises(SchemaMismatchError, match=r"expects shape \(n, 57\).*found shape \(5, 21\)"):
        art.score(np.zeros((5, 21)))
    import pandas as pd

    frame = pd.DataFrame(trained_l1["x"][:5], columns=art.input_names).rename(
        columns={"Jet3_eta": "Jet3_Eta"})
    with pytest.raises(SchemaMismatchError, match="needs column 'Jet3_eta'.*did you mean 'Jet3_Eta'"):
        art.score(frame)
    # an artifact trained on another input schema is refused, naming expected vs found
    meta = json.loads((trained_l1["path"] / "artifact.json").read_text())
    meta["input_names"][1] = "MET_rapidity"
    changed = load_artifact(trained_l1["path"])
    changed.meta = meta
    with pytest.raises(SchemaMismatchError, match="'MET_rapidity'"):
        changed.inputs(batch)


def test_threshold_roundtrip(trained_l1):
    art = load_artifact(trained_l1["path"])
    assert art.threshold is None
    art.write_threshold({"score": "mu2_q", "value": 1.25})
    assert load_artifact(trained_l1["path"]).threshold == {"score": "mu2_q", "value": 1.25}
    (trained_l1["path"] / "threshold.json").unlink()


def test_split_is_seeded_and_exact():
    batch = synthetic_batch(101, seed=4)
    a, b = d.split(batch, (0.6, 0.2, 0.2), seed=9), d.split(batch, (0.6, 0.2, 0.2), seed=9)
    assert [len(a[k]) for k in ("train", "val", "test")] == [60, 20, 21]
    np.testing.assert_array_equal(a["val"].event, b["val"].event)
    assert not np.array_equal(a["val"].event, d.split(batch, (0.6, 0.2, 0.2), seed=10)["val"].event)
    all_events = np.sort(np.concatenate([a[k].event for k in a]))
    np.testing.assert_array_equal(all_events, batch.event)
    with pytest.raises(ConfigError, match="summing to 1"):
        d.split(batch, (0.6, 0.3, 0.2))
    np.testing.assert_allclose(sample_weights(np.array([1.0, 3.0]), True)[0], [0.5, 1.5])


def test_config_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  latent_dims: 4\n")
    with pytest.raises(ConfigError, match="unknown key 'latent_dims'.*did you mean 'latent_dim'"):
        load(TrainConfig, bad)
    bad.write_text("quantization:\n  weight_bits: [6, 6]\n")
    with pytest.raises(ConfigError, match=r"bad.yaml.*weight_bits: expected 3 entries"):
        load(TrainConfig, bad)
    from triggerad.config import resolve_config

    for name in ("train-hlf", "train-l1", "train-hlf-fast", "train-l1-fast"):
        cfg = load(TrainConfig, resolve_config(name))
        assert cfg.model.kind == ("hlf_vae" if "hlf" in name else "l1_vae")
    assert load(TrainConfig, resolve_config("train-hlf")).model.encoder == [50, 50]
    assert load(TrainConfig, resolve_config("train-l1")).quantization.weight_bits == [6, 6, 6]


@pytest.mark.slow
def test_cli_train_writes_artifact_and_reloads_split(tmp_path):
    from triggerad.cli import main

    adc2021 = pytest.importorskip("triggerad.io.adc2021")
    batch = synthetic_batch(1000, seed=6)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    adc2021.write_h5(data_dir / "background.h5", batch)
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(
        "model: {kind: hlf_vae, encoder: [16, 8], decoder: [8, 16], latent_dim: 3}\n"
        "training: {epochs: 2, batch_size: 200, seed: 1}\n"
        "quantization: {qat_epochs: 1}\n"
    )
    out = tmp_path / "model"
    assert main(["train", str(cfg), "--data", str(data_dir), "--out", str(out)]) == 0
    for name in ("artifact.json", "vae.weights.h5", "quantized_encoder.weights.h5",
                 "provenance.json", "config.resolved.yaml"):
        assert (out / name).is_file(), name
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["command"] == "train" and prov["summary"]["epochs_run"] == 2
    art = load_artifact(out)
    info = art.data_info
    assert info["counts"] == {"train": 600, "val": 200, "test": 200}
    assert info["background"] == [str((data_dir / "background.h5").resolve())]
    # the saved normalisation is the one of the training split only
    from anomaly.features import compute_features

    train_x = compute_features(d.split(batch, (0.6, 0.2, 0.2), seed=info["split_seed"])["train"])
    np.testing.assert_allclose(art.mean, train_x.mean(axis=0), rtol=1e-5)
    val = d.load_split(info, "val")
    np.testing.assert_array_equal(
        val.event, d.split(batch, (0.6, 0.2, 0.2), seed=info["split_seed"])["val"].event
    )
    # the reloaded model reproduces the validation metrics of the best (restored) epoch
    scores = art.score(val)
    summary = prov["summary"]
    for key in ("loss", "nll", "kl"):
        np.testing.assert_allclose(np.average(scores[key], weights=val.weight),
                                   summary[f"val_{key}"], rtol=1e-4)
    with pytest.raises(MissingFieldError, match="no split 'vall'.*'val'"):
        d.load_split(info, "vall")
    adc2021.write_h5(data_dir / "background.h5", synthetic_batch(1000, seed=7))
    with pytest.raises(SchemaMismatchError, match="changed since the model was trained"):
        d.load_split(info, "test")
