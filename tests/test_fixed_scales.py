"""``model.normalisation``: fixed physics input scales of the L1 VAE (config, artifact, fixed point)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from anomaly import model as m  # noqa: E402
from anomaly.train import TrainConfig  # noqa: E402
from triggerad import schema  # noqa: E402
from triggerad.config import build, load  # noqa: E402
from triggerad.errors import ConfigError  # noqa: E402

PER_TYPE = {"MET": 128, "Electron": 32, "Muon": 16, "Jet": 64}


def expected_scale(pt: dict, eta: float, phi: float) -> np.ndarray:
    """The 57 scales written by hand from the slot layout: MET, 4 electrons, 4 muons, 10 jets."""
    types = ["MET"] + ["Electron"] * 4 + ["Muon"] * 4 + ["Jet"] * 10
    assert len(types) == schema.N_SLOTS
    return np.array([v for t in types for v in (pt[t], eta, phi)], dtype=np.float32)


def test_fixed_scales_ignore_the_data():
    cfg = build(m.ModelConfig, {"kind": "l1_vae", "normalisation": {
        "mode": "fixed", "pt": PER_TYPE, "eta": 2, "phi": 4}}, where="t.yaml:model")
    x = np.random.default_rng(0).exponential(30, (50, 57)).astype(np.float32)
    mean, scale = m.fit_normalisation("l1_vae", x, cfg.normalisation)
    np.testing.assert_array_equal(scale, expected_scale(PER_TYPE, 2.0, 4.0))
    np.testing.assert_array_equal(mean, np.zeros(57, np.float32))
    assert scale[0] == 128 and scale[3] == 32 and scale[15] == 16 and scale[27] == 64
    one = build(m.ModelConfig, {"kind": "l1_vae", "normalisation": {"mode": "fixed", "pt": 64}},
                where="t.yaml:model")
    np.testing.assert_array_equal(m.fit_normalisation("l1_vae", x, one.normalisation)[1],
                                  expected_scale(dict.fromkeys(PER_TYPE, 64), 4.0, 4.0))
    # default: fitted (root mean square of the occupied entries), unchanged
    fitted = m.fit_normalisation("l1_vae", x, m.ModelConfig(kind="l1_vae").normalisation)[1]
    np.testing.assert_allclose(fitted[0], np.sqrt(np.mean(x[:, 0].astype(np.float64) ** 2)),
                               rtol=1e-6)


@pytest.mark.parametrize(("section", "message"), [
    ("{mode: fixed, ptt: 64}", r"t.yaml.model.normalisation: unknown key 'ptt'.*did you mean 'pt'"),
    ("{mode: fixd}", r"normalisation.mode: expected one of 'fitted', 'fixed', 'robust', found 'fixd'.*"
                     r"did you mean 'fixed'"),
    ("{mode: fixed, pt: {Jets: 32}}", r"unknown object type 'Jets'.*did you mean 'Jet'"),
    ("{mode: fixed, pt: {Jet: 32}}", r"missing object types \['MET', 'Electron', 'Muon'\]"),
    ("{mode: fixed, eta: 0}", r"eta must be a positive finite scale, found 0"),
])
def test_bad_normalisation_config(tmp_path, section, message):
    path = tmp_path / "t.yaml"
    path.write_text(f"model: {{kind: l1_vae, normalisation: {section}}}\n")
    with pytest.raises(ConfigError, match=message):
        load(TrainConfig, path)
    path.write_text("model: {kind: l1_vae, normalisation: {mode: robust}}\n")
    with pytest.raises(ConfigError, match="mode 'robust' is for kind 'hlf_vae'.*found kind 'l1_vae'"):
        load(TrainConfig, path)
    path.write_text("model: {kind: hlf_vae, normalisation: {mode: fixed}}\n")
    with pytest.raises(ConfigError, match="mode 'fixed' is for kind 'l1_vae'.*found kind 'hlf_vae'"):
        load(TrainConfig, path)


def test_power_of_two_option_needs_power_of_two_fixed_scales(tmp_path):
    path = tmp_path / "t.yaml"
    quant = "quantization: {fixed_point: {power_of_two_scales: true}}"
    path.write_text(f"model: {{kind: l1_vae, normalisation: {{mode: fixed, pt: 50}}}}\n{quant}\n")
    with pytest.raises(ConfigError, match=r"t.yaml.*needs powers of two.*\{'pt.MET': 50.0"):
        load(TrainConfig, path)
    path.write_text(f"model: {{kind: l1_vae, normalisation: {{mode: fixed, pt: 32}}}}\n{quant}\n")
    cfg = load(TrainConfig, path)
    assert cfg.model.normalisation.pt == 32 and cfg.quantization.fixed_point.power_of_two_scales


@pytest.mark.slow
def test_trained_artifact_and_fixed_point_graph_use_the_fixed_scales(tmp_path):
    """Train a tiny L1 VAE with fixed scales: artifact, config record and integer graph agree."""
    from anomaly.artifact import load_artifact
    from anomaly.train import train
    from tests.test_vae import synthetic_batch
    from triggerad.fixedpoint.layers import ScaleShift
    from triggerad.io.adc2021 import write_h5

    write_h5(tmp_path / "background.h5", synthetic_batch(600, seed=4))
    cfg = build(TrainConfig, {
        "data": {"background": [str(tmp_path / "background.h5")]},
        "model": {"kind": "l1_vae", "encoder": [8, 4], "decoder": [4, 8], "latent_dim": 3,
                  "normalisation": {"mode": "fixed", "pt": PER_TYPE, "eta": 2, "phi": 4}},
        "training": {"epochs": 2, "batch_size": 200, "seed": 1},
        "quantization": {"weight_bits": [8, 8, 8], "weight_integer": [1, 1, 2], "qat_epochs": 1},
    }, where="test")
    train(cfg, tmp_path / "model")
    art = load_artifact(tmp_path / "model")
    want = expected_scale(PER_TYPE, 2.0, 4.0)
    np.testing.assert_array_equal(art.scale, want)
    np.testing.assert_array_equal(art.mean, np.zeros(57, np.float32))
    assert art.config["model"]["normalisation"] == {"mode": "fixed", "pt": PER_TYPE, "eta": 2.0,
                                                    "phi": 4.0}
    norm = next(la for la in art.fixed_graph().layers if isinstance(la, ScaleShift))
    # powers of two: the integer multipliers are exactly 1 / scale, the offsets exactly 0
    np.testing.assert_array_equal(np.ldexp(norm.scale, -norm.scale_type.frac),
                                  1.0 / want.astype(np.float64))
    assert not norm.bias.any()
    # a 64 GeV jet and a 16 GeV muon are both normalised to exactly 1 (resp. 1) in the graph
    x = np.zeros((1, 57), np.float32)
    x[0, 27], x[0, 15], x[0, 28] = 64.0, 16.0, 1.0
    raw = norm.input_type.assign(x.astype(np.float64) * 2.0 ** norm.input_type.frac)
    out = norm.forward(raw) * 2.0 ** -norm.result.frac
    assert out[0, 27] == 1.0 and out[0, 15] == 1.0 and out[0, 28] == 0.5


def test_robust_hlf_scales_median_and_iqr():
    cfg = build(m.ModelConfig, {"kind": "hlf_vae", "normalisation": {"mode": "robust"}},
                where="t.yaml:model")
    x = np.zeros((8, 21))
    x[:, 0] = [1, 2, 3, 4, 5, 6, 7, 1000]  # a tail: median 4.5, IQR 3.5 (numpy's linear rule)
    x[:, 1] = [0, 0, 0, 0, 0, 0, 0, 8]     # IQR 0: the standard deviation
    mean, scale = m.fit_normalisation("hlf_vae", x, cfg.normalisation)
    assert mean[0] == pytest.approx(4.5) and scale[0] == pytest.approx(3.5 / 1.349)
    assert mean[1] == 0 and scale[1] == pytest.approx(np.std(x[:, 1]))
    assert scale[2] == 1.0  # constant
