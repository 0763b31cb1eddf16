"""ONNX export: VAE folders and a multi-input Conv1D kind, ONNX Runtime vs Keras, metadata, errors."""

from __future__ import annotations

import json
import re
import shutil
import sys

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("tf2onnx")

from stream_samples import drifting_batch  # noqa: E402

from anomaly import model as m  # noqa: E402
from anomaly.artifact import load_artifact, raw_inputs, save_artifact  # noqa: E402
from triggerad import data as d  # noqa: E402
from triggerad.arrayops import tensorflow as tf_ops  # noqa: E402
from triggerad.cli import main  # noqa: E402
from triggerad.config import to_dict  # noqa: E402
from triggerad.errors import ConfigError  # noqa: E402
from triggerad.export import Decision, ExportSpec, TensorDoc  # noqa: E402
from triggerad.export.convert import ExportError, read_metadata, require_packages  # noqa: E402
from triggerad.io.adc2021 import write_h5  # noqa: E402
from triggerad.models import ModelKind, register_kind  # noqa: E402

N_EVENTS = 5000  # background events: 3000 / 1000 / 1000 split


def session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    write_h5(folder / "background.h5", drifting_batch(N_EVENTS, seed=11))
    return folder


@pytest.fixture(scope="module")
def l1_model(data_dir, tmp_path_factory):
    """A small L1 VAE trained two epochs by `trigger-ad train`, threshold on mu2_q at 5 %."""
    folder = tmp_path_factory.mktemp("l1")
    cfg = folder / "tiny.yaml"
    cfg.write_text(
        "model: {kind: l1_vae, encoder: [16, 8], decoder: [8, 16], latent_dim: 3}\n"
        "training: {epochs: 2, batch_size: 256, seed: 1}\n"
        "quantization: {weight_bits: [8, 8, 8], weight_integer: [2, 2, 2], qat_epochs: 1}\n"
    )
    out = folder / "model"
    assert main(["-q", "train", str(cfg), "--data", str(data_dir), "--out", str(out)]) == 0
    assert main(["-q", "threshold", str(out), "--fpr", "0.05", "--input-rate", "100kHz"]) == 0
    return out


@pytest.fixture(scope="module")
def hlf_model(data_dir, tmp_path_factory):
    """An untrained HLF VAE folder with the data record of its background, cut on nll at 2 %."""
    tf.keras.utils.set_random_seed(2)
    path = tmp_path_factory.mktemp("hlf") / "model"
    mcfg = m.ModelConfig(kind="hlf_vae", encoder=[16, 8], decoder=[8, 16], latent_dim=3)
    qcfg = m.QuantizationConfig()
    cfg = d.DataConfig(background=[str(data_dir)])
    batch = d.load_sample([str(data_dir)])
    x = raw_inputs("hlf_vae", batch)
    split = d.split_indices(len(batch), cfg.fractions, cfg.seed)
    mean, scale = m.fit_normalisation("hlf_vae", x[split["train"]])
    vae, qenc = m.build_vae(mcfg), m.build_quantized_encoder(21, mcfg, qcfg)
    save_artifact(path, vae=vae, quantized_encoder=qenc, mean=mean, scale=scale,
                  config={"model": to_dict(mcfg), "quantization": to_dict(qcfg)},
                  data_info=d.describe([str(data_dir)], "auto", cfg, batch))
    art = load_artifact(path)
    nll = art.score(x[split["val"]])["nll"]
    art.write_threshold({"score": "nll", "value": float(np.quantile(nll, 0.98))})
    return path


@pytest.fixture(scope="module")
def hlf_export(hlf_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("hlf_onnx") / "hlf_vae.onnx"
    assert main(["-q", "export", str(hlf_model), "--onnx", str(out), "--full"]) == 0
    return out, json.loads((out.parent / "hlf_vae.onnx.json").read_text())


@pytest.mark.slow  # with its fixtures (training, conversion)
def test_hlf_vae_full_export_equals_keras_and_model_scores(hlf_model, hlf_export):
    out, report = hlf_export
    art = load_artifact(hlf_model)
    sess = session(out)
    assert [i.name for i in sess.get_inputs()] == ["features"]
    assert sess.get_inputs()[0].shape[1] == 21
    assert sorted(o.name for o in sess.get_outputs()) == sorted(
        ["score", "mu", "logvar", "reconstruction", "loss", "nll", "kl", "mu2"])
    x = art.inputs(d.load_split(art.data_info, "test"))  # events the export did not see
    names = ["score", "mu", "loss", "nll", "kl", "mu2"]
    got = dict(zip(names, sess.run(names, {"features": x}), strict=True))
    want = art.score(x)
    for key in ("loss", "nll", "kl", "mu2"):
        np.testing.assert_allclose(got[key], want[key], rtol=1e-6, atol=1e-5, err_msg=key)
    np.testing.assert_array_equal(got["score"], got["nll"])  # the threshold's score
    mu = art.float_encoder().predict(art.normalise(x), verbose=0)
    np.testing.assert_allclose(got["mu"], mu, atol=1e-5)
    # the report: ONNX Runtime vs Keras on the validation split, agreement at the stored cut
    val = report["validation"]
    assert val["n_events"] == 1000 and val["below_min_events"]
    assert val["source"].startswith("validation split of ")
    for name, diff in val["outputs"].items():
        assert diff["max_abs_diff"] <= 1e-6 * max(1.0, diff["max_abs_value"]) + 1e-6, name
    assert val["decision"]["value"] == art.threshold["value"]
    assert val["decision"]["agreement"] == 1.0 and val["decision"]["n_selected_onnx"] > 0
    assert val["references"]["model_score"]["decision"]["agreement"] == 1.0
    assert report["replaced_tf_ops"] == ["Erfc", "Expm1", "Lgamma", "Log1p"]
    assert report["packages"]["onnxruntime"] == ort.__version__


def test_metadata_round_trip(hlf_model, hlf_export):
    out, report = hlf_export
    art = load_artifact(hlf_model)
    meta = read_metadata(out)
    assert meta == report["metadata"]
    assert meta["kind"] == "hlf_vae" and meta["score"] == "nll"
    assert meta["threshold"] == art.threshold
    assert meta["input_names"] == art.input_names == meta["inputs"][0]["columns"]
    assert meta["normalisation"]["mean"] == art.mean.tolist()
    assert meta["training_versions"] == art.meta["versions"]
    assert meta["score_definition"].startswith("reconstruction negative log-likelihood")
    assert meta["opset"] == 17 and meta["export_format_version"] == 1
    assert meta["git_hash"] and meta["trigger_ad_version"]
    # what a C++ consumer sees through ONNX Runtime: plain strings, JSON for structures
    custom = session(out).get_modelmeta().custom_metadata_map
    assert custom["kind"] == "hlf_vae"
    assert json.loads(custom["threshold"])["value"] == art.threshold["value"]


@pytest.mark.slow  # with its fixtures (training, conversion)
def test_l1_default_export_is_the_float_encoder(l1_model, tmp_path):
    out = tmp_path / "l1.onnx"
    assert main(["-q", "export", str(l1_model), "--onnx", str(out), "--events", "600"]) == 0
    art = load_artifact(l1_model)
    sess = session(out)
    assert [o.name for o in sess.get_outputs()] == ["score", "mu", "logvar"]
    import onnx

    dense = [n for n in onnx.load(str(out)).graph.node if n.op_type in ("MatMul", "Gemm")]
    assert len(dense) == 4  # encoder only: 2 hidden layers + mu and logvar heads, no decoder
    x = art.inputs(d.load_split(art.data_info, "test"))
    score, mu = sess.run(["score", "mu"], {"l1_inputs": x})
    np.testing.assert_allclose(score, art.score(x)["mu2"], rtol=1e-6, atol=1e-5)
    encoder_input = art.normalise(x) * m.input_mask(x)  # mask and normalisation in the graph
    np.testing.assert_allclose(mu, art.float_encoder().predict(encoder_input, verbose=0), atol=1e-5)
    report = json.loads((tmp_path / "l1.onnx.json").read_text())
    assert report["validation"]["n_events"] == 600
    assert report["validation"]["decision"]["agreement"] == 1.0
    threshold_ref = report["validation"]["references"]["threshold_score"]
    assert threshold_ref["output"] == "score" and 0.9 < threshold_ref["decision"]["agreement"] <= 1
    meta = read_metadata(out)
    assert meta["score"] == "mu2" and meta["threshold"]["score"] == "mu2_q"
    assert "firmware is the reference" in meta["threshold_note"]
    assert report["replaced_tf_ops"] == []


def test_unknown_kind_and_schema_are_clear_errors(l1_model, tmp_path, capsys):
    folder = tmp_path / "odd"
    folder.mkdir()
    (folder / "artifact.json").write_text(json.dumps({"format_version": 1, "kind": "l1_vea"}))
    assert main(["export", str(folder), "--onnx", str(tmp_path / "x.onnx")]) == 2
    err = capsys.readouterr().err
    assert "unknown model kind 'l1_vea'" in err
    assert "did you mean 'l1_vae'?" in err and "'hlf_vae'" in err

    renamed = tmp_path / "renamed"
    shutil.copytree(l1_model, renamed)
    meta = json.loads((renamed / "artifact.json").read_text())
    meta["input_names"][1] = "MET_Eta"
    (renamed / "artifact.json").write_text(json.dumps(meta))
    assert main(["export", str(renamed), "--onnx", str(tmp_path / "y.onnx")]) == 2
    assert ("does not know this input schema: 57 inputs, the l1_vae of this trigger-ad version "
            "has 57; first difference at position 1: found 'MET_Eta', expected 'MET_eta'"
            ) in capsys.readouterr().err
    assert main(["export", str(l1_model), "--onnx", str(tmp_path / "z.onnx"), "--score", "mu2_q"]) == 2
    assert "computes the float scores ['mu2', 'kl', 'nll', 'loss'], not 'mu2_q' (use its float " \
           "twin 'mu2')" in capsys.readouterr().err
    (renamed / "threshold.json").unlink()
    shutil.copy(l1_model / "artifact.json", renamed / "artifact.json")
    assert main(["export", str(renamed), "--onnx", str(tmp_path / "z.onnx")]) == 2
    assert "no threshold.json; run `trigger-ad threshold" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.onnx*"))


# ------------------------------------------------------------------------------------------------
# a multi-input Conv1D model (the shape of the LLP tagger) through a kind registered at run time
# ------------------------------------------------------------------------------------------------

BLOCKS = {"charged": (10, 6), "neutral": (8, 4), "secondary_vertices": (4, 5), "globals": (5,),
          "log10_ctau": (1,)}
CLASSES = ["light", "b", "c", "llp"]


def toy_tagger():
    keras = tf.keras
    inputs = {k: keras.Input(shape, name=k) for k, shape in BLOCKS.items()}
    features = []
    for block in ("charged", "neutral", "secondary_vertices"):
        h = keras.layers.Conv1D(8, 1, activation="relu", name=f"{block}_conv0")(inputs[block])
        h = keras.layers.Conv1D(4, 3, padding="same", activation="relu", name=f"{block}_conv1")(h)
        features.append(keras.layers.Flatten(name=f"{block}_flat")(h))
    h = keras.layers.Concatenate()([*features, inputs["globals"], inputs["log10_ctau"]])
    h = keras.layers.Dense(16, activation="relu", name="dense")(h)
    return keras.Model(inputs, {"probs": keras.layers.Dense(4, activation="softmax", name="out")(h)})


def random_inputs(n, seed):
    rng = np.random.default_rng(seed)
    return {k: (rng.normal(3.0, 2.0, (n, *shape))).astype(np.float32) for k, shape in BLOCKS.items()}


def build_toy_export(model_dir, options):
    """The export builder of the toy kind: per-block normalisation inside the graph."""
    meta = json.loads((model_dir / "artifact.json").read_text())
    net = toy_tagger()
    net.load_weights(str(model_dir / "tagger.weights.h5"))
    raw = {k: tf.keras.Input(shape, name=k) for k, shape in BLOCKS.items()}
    norm = meta["normalisation"]

    def standardise(block):
        mean, scale = np.float32(norm[block]["mean"]), np.float32(norm[block]["scale"])
        return tf.keras.layers.Lambda(lambda t: (t - mean) / scale, name=f"{block}_norm")

    scaled = {k: standardise(k)(raw[k]) for k in BLOCKS}
    data = np.load(model_dir / "validation.npz")
    return ExportSpec(
        model=tf.keras.Model(raw, net(scaled)),
        inputs=[TensorDoc(k, shape, f"{k} block, raw") for k, shape in BLOCKS.items()],
        outputs=[TensorDoc("probs", (4,), "class probabilities", columns=CLASSES)],
        validation_inputs={k: data[k][:options.n_events or None] for k in BLOCKS},
        validation_source="validation.npz",
        metadata={"kind": "toy_llp_tagger", "classes": CLASSES, "normalisation": norm},
        decision=Decision("probs", meta["working_point"], column=3, description="P(llp) cut"),
    )


class ToyKind(ModelKind):
    """The toy multi-input kind, registered at run time."""

    name = "toy_llp_tagger"

    def export_spec(self, path, options):
        return build_toy_export(path, options)


def normalised(x, norm):
    return {k: (v - np.float32(norm[k]["mean"])) / np.float32(norm[k]["scale"]) for k, v in x.items()}


@pytest.fixture(scope="module")
def toy_model(tmp_path_factory):
    """A folder of the toy multi-input kind (random weights), its kind registered at run time."""
    tf.keras.utils.set_random_seed(4)
    folder = tmp_path_factory.mktemp("toy") / "tagger"
    folder.mkdir()
    net = toy_tagger()
    net.save_weights(str(folder / "tagger.weights.h5"))
    val = random_inputs(2000, seed=1)
    norm = {k: {"mean": v.mean(axis=0).tolist(), "scale": v.std(axis=0).tolist()}
            for k, v in val.items()}
    wp = float(np.median(net.predict(normalised(val, norm), verbose=0)["probs"][:, 3]))
    np.savez(folder / "validation.npz", **val)
    (folder / "artifact.json").write_text(json.dumps(
        {"format_version": 1, "kind": "toy_llp_tagger", "normalisation": norm,
         "working_point": wp}))
    register_kind(ToyKind())
    return folder, net, norm, wp


def test_multi_input_conv1d_kind_exports(toy_model, tmp_path):
    folder, net, norm, wp = toy_model
    out = tmp_path / "tagger.onnx"
    assert main(["-q", "export", str(folder), "--onnx", str(out)]) == 0
    sess = session(out)
    assert [i.name for i in sess.get_inputs()] == list(BLOCKS)
    assert [tuple(i.shape[1:]) for i in sess.get_inputs()] == list(BLOCKS.values())
    fresh = random_inputs(3000, seed=2)
    (probs,) = sess.run(["probs"], fresh)
    reference = net.predict(normalised(fresh, norm), verbose=0)["probs"]
    np.testing.assert_allclose(probs, reference, atol=1e-5)
    report = json.loads((tmp_path / "tagger.onnx.json").read_text())
    decision = report["validation"]["decision"]
    assert decision["selection"] == f"probs[:, 3] > {wp!r}"
    assert decision["agreement"] >= 0.9999 and decision["n_selected_reference"] == 1000
    assert read_metadata(out)["classes"] == CLASSES


def test_refuses_overwrite_and_low_agreement(toy_model, tmp_path, monkeypatch, capsys):
    folder = toy_model[0]
    out = tmp_path / "tagger.onnx"
    out.write_bytes(b"not mine")
    assert main(["export", str(folder), "--onnx", str(out)]) == 2
    assert "tagger.onnx: exists; pass --force to replace it" in capsys.readouterr().err
    assert main(["export", str(folder), "--onnx", str(tmp_path / "tagger.txt")]) == 2
    assert "expected a file name ending in .onnx" in capsys.readouterr().err

    from triggerad.export import validate

    real = validate.run_onnx

    def broken(*args, **kwargs):  # a conversion that shifts the output of every other event
        values = real(*args, **kwargs)
        values["probs"][::2] += 1.0
        return values

    monkeypatch.setattr(validate, "run_onnx", broken)
    assert main(["export", str(folder), "--onnx", str(out), "--force"]) == 2
    err = capsys.readouterr().err
    found = re.search(r"agree on (0\.\d+) of the decisions probs\[:, 3\] > \S+ \((\d+) of 2000 "
                      r"events differ\), below validation.min_agreement 0.9999; nothing written", err)
    assert found and 400 < int(found[2]) < 600  # ~half of the shifted events were below the cut
    assert float(found[1]) == pytest.approx(1 - int(found[2]) / 2000)
    assert out.read_bytes() == b"not mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tagger.onnx"]  # no report, no temp files


# ------------------------------------------------------------------------------------------------
# pieces
# ------------------------------------------------------------------------------------------------

def test_onnx_forms_of_special_functions_are_accurate():
    from scipy import special

    from triggerad.export import onnx_math

    ops = {"lgamma": (tf.math.lgamma, special.gammaln), "erfc": (tf.math.erfc, special.erfc),
           "log1p": (tf.math.log1p, np.log1p), "expm1": (tf.math.expm1, np.expm1)}
    spec = [tf.TensorSpec((None,), tf.float32, name="x")]

    @tf.function(input_signature=spec)
    def functions(x):
        return {k: tf.identity(fn(x), name=k) for k, (fn, _) in ops.items()}

    import tf2onnx

    proto, _ = tf2onnx.convert.from_function(functions, input_signature=spec, opset=17,
                                             custom_op_handlers=onnx_math.handlers())
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    grid = {
        "lgamma": np.concatenate([rng.uniform(-20, 0.5, 4000), rng.uniform(0.5, 500, 4000),
                                  np.arange(1, 300)]),
        "erfc": rng.uniform(-5, 9, 8000),
        "log1p": np.concatenate([-np.logspace(-10, -1e-3, 4000), np.logspace(-10, 6, 4000)]),
        "expm1": np.concatenate([-np.logspace(-10, 2.5, 4000), np.logspace(-10, 1.9, 4000)]),
    }
    for name, (_, exact) in ops.items():
        x = grid[name].astype(np.float32)
        (got,) = sess.run([n.name for n in sess.get_outputs() if n.name.startswith(name)],
                          {"x": x})
        ref = exact(x.astype(np.float64))
        # relative error; for lgamma absolute below 1 (its zeros at 1 and 2)
        floor = 1.0 if name == "lgamma" else 1e-300
        err = np.abs(got - ref) / np.maximum(np.abs(ref), floor)
        bound = 2.5e-7 if name == "erfc" else 1.2e-7  # the erfc fit's 1.2e-7, else rounding
        if name == "lgamma":  # near the poles only the argument's own rounding matters
            err = err[np.abs(x - np.round(x)) > 1e-3]
        assert err.max() <= bound, (name, err.max())


@pytest.mark.parametrize("kind", ["hlf_vae", "l1_vae"])
def test_input_preparation_in_tensorflow_equals_numpy(kind):
    batch = drifting_batch(500, seed=3)
    x = raw_inputs(kind, batch)
    mean, scale = m.fit_normalisation(kind, x)
    ref = m.prepare_inputs(kind, x, mean, scale)
    got = m.prepare_inputs(kind, tf.constant(x), mean, scale, ops=tf_ops())
    assert sorted(got) == sorted(ref)
    np.testing.assert_allclose(got["x"].numpy(), ref["x"], rtol=1e-7, atol=0)
    key = "t" if kind == "hlf_vae" else "m"
    np.testing.assert_allclose(got[key].numpy(), ref[key], rtol=1e-7, atol=0)
    assert got[key].dtype == tf.float32


def test_export_config_and_missing_packages(tmp_path, monkeypatch):
    from triggerad.config import resolve_config
    from triggerad.export.config import load_config

    assert load_config(resolve_config("export")).onnx.opset == 17
    path = tmp_path / "export.yaml"
    path.write_text("onnx: {opset: 19}\n")
    with pytest.raises(ConfigError, match=r"export.yaml.onnx: opset must be in \[13, 18\].*19"):
        load_config(path)
    path.write_text("validation: {min_agreemnt: 0.99}\n")
    with pytest.raises(ConfigError, match="unknown key 'min_agreemnt'; did you mean 'min_agreement'"):
        load_config(path)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(ExportError, match=r"needs onnxruntime.*pip install -e '\.\[onnx\]'"):
        require_packages()
