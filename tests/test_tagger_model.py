"""The LLP tagger network, its gradient-reversal layer and its model folder (tagger.model,
tagger.artifact)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf
from tagger_samples import SIZES, jets

from tagger import artifact
from tagger import inputs as tin
from tagger.model import GradientReversal, ModelConfig, build_tagger
from triggerad.config import to_dict
from triggerad.errors import ConfigError, OutOfRangeError, SchemaMismatchError
from triggerad.models import ModelFolderError, load_model


def test_gradient_reversal_forward_identity_and_gradient_minus_lambda():
    layer = GradientReversal(0.0)
    x = tf.constant(np.random.default_rng(1).normal(size=(4, 3)), tf.float32)
    upstream = tf.constant(np.random.default_rng(2).normal(size=(4, 3)), tf.float32)
    for lam in (0.0, 0.5, 30.0):
        layer.lam.assign(lam)
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
            target = tf.reduce_sum(y * upstream)   # d target / d y = upstream
        np.testing.assert_array_equal(y.numpy(), x.numpy())
        grad = tape.gradient(target, x).numpy()
        np.testing.assert_array_equal(grad, (-np.float32(lam) * upstream).numpy())


def test_gradient_reversal_lambda_is_read_by_compiled_functions():
    layer = GradientReversal(1.0)
    x = tf.ones((2, 2))

    @tf.function
    def grad():
        with tf.GradientTape() as tape:
            tape.watch(x)
            s = tf.reduce_sum(layer(x))
        return tape.gradient(s, x)

    assert grad().numpy()[0, 0] == -1.0
    layer.lam.assign(3.0)
    assert grad().numpy()[0, 0] == -3.0


def test_network_layer_sizes_follow_config():
    cfg = ModelConfig(charged=[8, 4], neutral=[4, 2], sv=[4, 3], dense=16, class_layers=[10],
                      domain_layers=[6, 5], dropout=0.0)
    net = build_tagger(cfg, SIZES)
    assert net.get_layer("charged_conv1").filters == 4
    assert net.get_layer("features_dense").units == 16
    assert net.get_layer("domain_dense1").units == 5
    # flatten: 6*4 + 5*2 + 2*3 = 40, + 14 globals + log10 ctau = 55 -> 16
    assert net.get_layer("features_dense").kernel.shape == (55, 16)
    out = net({k: tf.zeros((3, *v.shape[1:])) for k, v in zip(net.input_names, net.inputs, strict=True)})
    assert out["class"].shape == (3, 5) and out["domain"].shape == (3, 1)
    np.testing.assert_allclose(out["class"].numpy().sum(axis=1), 1.0, rtol=1e-6)


def test_model_config_rejects_bad_sizes():
    with pytest.raises(ValueError, match="charged must be a non-empty list"):
        ModelConfig(charged=[])
    with pytest.raises(ValueError, match="dropout must be in"):
        ModelConfig(dropout=1.0)


def test_normalisation_keeps_padding_zero():
    b = jets(200, seed=3)
    norm = tin.fit_normalisation(b)
    x = tin.arrays(b, norm, np.zeros(len(b)))
    pad = ~np.any(b.charged != 0, axis=-1)
    assert pad.any()
    assert np.all(x["charged"][pad] == 0)
    real = x["charged"][~pad]
    np.testing.assert_allclose(real.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(real.std(axis=0), 1, atol=1e-4)


def _save(path, *, ctau_range=(0.01, 1e4)):
    cfg = ModelConfig(charged=[8], neutral=[4], sv=[4], dense=8, class_layers=[8],
                      domain_layers=[4])
    b = jets(300, seed=5)
    net = build_tagger(cfg, SIZES)
    artifact.save(path, net=net, sizes=SIZES, normalisation=tin.fit_normalisation(b),
                  ctau_range_mm=ctau_range, config={"model": to_dict(cfg)},
                  data_info={"fingerprint": "x"}, domain_adaptation=True)
    return net, b


def test_artifact_round_trip_predict(tmp_path):
    net, b = _save(tmp_path / "m")
    model = load_model(tmp_path / "m")
    assert isinstance(model, artifact.TaggerModel)
    assert model.class_names == ["LLP", "b", "c", "uds", "g"]
    assert model.ctau_range_mm == (0.01, 1e4)
    assert model.domain_adaptation
    p = model.predict(b, ctau_mm=1.0, batch_size=64)
    ref = net(tin.arrays(b, model.normalisation, np.zeros(len(b))), training=False)["class"]
    np.testing.assert_allclose(p, ref.numpy(), atol=1e-6)
    # per-jet c-tau: the jets' own for LLP jets
    llp = b.take(b.label == 0)
    own = model.predict(llp)
    explicit = model.predict(llp, ctau_mm=llp.ctau)
    np.testing.assert_allclose(own, explicit, atol=1e-6)
    assert not np.allclose(model.predict(llp, ctau_mm=1e3), model.predict(llp, ctau_mm=0.01))
    scores = model.score(llp)
    np.testing.assert_allclose(scores["prob_LLP"], own[:, 0], atol=1e-6)


def test_artifact_refuses_other_schema_and_missing_ctau(tmp_path):
    _save(tmp_path / "m")
    model = artifact.load(tmp_path / "m")
    other = jets(10, sizes={"charged": 7, "neutral": 5, "sv": 2})
    with pytest.raises(SchemaMismatchError, match=r"branch 'charged'.*shape \(6, 17\).*\(7, 17\)"):
        model.predict(other, ctau_mm=1.0)
    meta = json.loads((tmp_path / "m" / "artifact.json").read_text())
    meta["input_schema"]["sv"]["features"][0] = "sv_pt"
    (tmp_path / "m" / "artifact.json").write_text(json.dumps(meta))
    with pytest.raises(SchemaMismatchError, match=r"branch 'sv'.*first missing 'sv_pt'"):
        artifact.load(tmp_path / "m").predict(jets(5), ctau_mm=1.0)
    with pytest.raises(OutOfRangeError, match="have no c-tau"):
        model.predict(jets(50, labels=(1, 2)))
    with pytest.raises(OutOfRangeError, match="c-tau must be a positive number"):
        model.predict(jets(5), ctau_mm=-1.0)


def test_artifact_version_and_keys_checked(tmp_path):
    _save(tmp_path / "m")
    file = tmp_path / "m" / "artifact.json"
    meta = json.loads(file.read_text())
    file.write_text(json.dumps({**meta, "format_version": 99}))
    with pytest.raises(ModelFolderError, match="format_version 99 of llp_tagger models"):
        artifact.load(tmp_path / "m")
    del meta["ctau_range_mm"]
    file.write_text(json.dumps(meta))
    with pytest.raises(ModelFolderError, match="without 'ctau_range_mm'"):
        artifact.load(tmp_path / "m")


def test_check_ctau_policy(tmp_path, caplog):
    _save(tmp_path / "m", ctau_range=(0.1, 100.0))
    model = artifact.load(tmp_path / "m")
    model.check_ctau([0.1, 1.0, 100.0])
    with pytest.raises(OutOfRangeError, match=r"c-tau 1000.0 mm \(1 of 2 values\).*\[0.1, 100\]"):
        model.check_ctau([1.0, 1000.0])
    model.check_ctau(1000.0, policy="warn")
    assert "outside the range" in caplog.text
    with pytest.raises(ConfigError, match="expected 'error' or 'warn'"):
        model.check_ctau(1.0, policy="ignore")
