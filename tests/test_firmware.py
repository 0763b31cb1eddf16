"""Firmware: config, fixed-point emulation, threshold conversion, hls4ml C simulation bit accuracy."""

from __future__ import annotations

import json
import types

import numpy as np
import pytest

from firmware.config import FirmwareConfig, load_config, parse_fixed
from firmware.report import multiplier_kind, parse_csynth_xml
from firmware.score_layer import threshold_units
from triggerad.errors import ConfigError

D = 10  # inputs of the small encoder


# ------------------------------------------------------------------------------------------------
# fast tests
# ------------------------------------------------------------------------------------------------

def test_unknown_key_names_nearest(tmp_path):
    path = tmp_path / "fw.yaml"
    path.write_text("hls:\n  clock_perod: 4.0\n")
    with pytest.raises(ConfigError, match=r"fw.yaml.hls: unknown key 'clock_perod'; did you mean 'clock_period'"):
        load_config(path)


def test_bad_type_string_and_signed_score(tmp_path):
    path = tmp_path / "fw.yaml"
    path.write_text("precision:\n  input: fixed16\n")
    with pytest.raises(ConfigError, match=r"precision.*expected an HLS type.*'fixed16'"):
        load_config(path)
    path.write_text("precision:\n  score: ap_fixed<16,8>\n")
    with pytest.raises(ConfigError, match="score must be an unsigned type"):
        load_config(path)


def test_packaged_config_loads():
    from triggerad.config import resolve_config

    cfg = load_config(resolve_config("firmware"))
    assert cfg.hls.part == "xcvu13p-flga2577-2-e" and cfg.hls.backend == "Vitis"
    assert cfg.validation.n_events == 100_000


def test_fixed_quantize_matches_ap_fixed_rules():
    t = parse_fixed("ap_fixed<4,2,AP_RND_CONV,AP_SAT>")  # LSB 0.25, range [-2, 1.75]
    x = np.array([0.125, 0.375, -0.125, 1.9, -3.0, 0.3])
    np.testing.assert_array_equal(t.quantize(x), [0.0, 0.5, -0.0, 1.75, -2.0, 0.25])
    trn = parse_fixed("ap_fixed<4,2>")  # truncation towards -inf, wrap-around
    np.testing.assert_array_equal(trn.quantize([0.3, -0.3, 2.0]), [0.25, -0.5, -2.0])
    u = parse_fixed("ap_ufixed<8,3,AP_RND_CONV,AP_SAT>")
    np.testing.assert_array_equal(u.quantize([-1.0, 9.0, 1.0 / 64]), [0.0, 8 - 1 / 32, 0.0])
    assert parse_fixed("ap_uint<1>").max_raw == 1


def test_threshold_conversion_rounds_to_nearest_lsb():
    t = parse_fixed("ap_ufixed<18,10,AP_RND_CONV,AP_SAT>")  # LSB 1/256
    assert threshold_units(12.0, t) == 3072
    assert threshold_units(12.0 + 0.4 / 256, t) == 3072
    assert threshold_units(12.0 + 0.6 / 256, t) == 3073
    assert threshold_units(5000.0, t) == 2**18 - 1  # above range: saturates (never fires)


def test_sweep_overrides_keep_observed_integer_bits():
    from firmware.validate import sweep_overrides

    over = sweep_overrides({"q_dense_0": 5, "q_mu": 20}, 12)
    assert over["q_dense_0"] == {"accum": "ap_fixed<12,5,AP_RND_CONV,AP_SAT>",
                                 "result": "ap_fixed<12,5,AP_RND_CONV,AP_SAT>"}
    assert over["q_mu"]["result"] == "ap_fixed<12,12,AP_RND_CONV,AP_SAT>"  # capped at the width


def test_multiplier_rule():
    assert multiplier_kind(8, 6, b_constant=True) == "LUT"
    assert multiplier_kind(16, 6, b_constant=True) == "LUT"
    assert multiplier_kind(16, 8, b_constant=True) == "DSP"
    assert multiplier_kind(18, 18, b_constant=False) == "DSP"
    assert multiplier_kind(10, 10, b_constant=False) == "LUT"


CSYNTH = """<?xml version="1.0" encoding="UTF-8"?>
<profile>
  <UserAssignments><TargetClockPeriod>5.00</TargetClockPeriod></UserAssignments>
  <PerformanceEstimates>
    <SummaryOfTimingAnalysis><unit>ns</unit><EstimatedClockPeriod>4.123</EstimatedClockPeriod></SummaryOfTimingAnalysis>
    <SummaryOfOverallLatency>
      <unit>clock cycles</unit>
      <Best-caseLatency>7</Best-caseLatency><Average-caseLatency>7</Average-caseLatency>
      <Worst-caseLatency>8</Worst-caseLatency><Interval-min>1</Interval-min><Interval-max>1</Interval-max>
    </SummaryOfOverallLatency>
  </PerformanceEstimates>
  <AreaEstimates>
    <Resources><BRAM_18K>0</BRAM_18K><DSP48E>3</DSP48E><FF>2345</FF><LUT>12345</LUT><URAM>0</URAM></Resources>
    <AvailableResources><BRAM_18K>5376</BRAM_18K><DSP48E>12288</DSP48E><FF>3456000</FF><LUT>1728000</LUT><URAM>1280</URAM></AvailableResources>
  </AreaEstimates>
</profile>
"""


def test_csynth_parser_on_fixture():
    r = parse_csynth_xml(CSYNTH)
    assert r["latency_best_cycles"] == 7 and r["latency_worst_cycles"] == 8
    assert r["interval_min_cycles"] == 1 and r["target_clock_ns"] == 5
    np.testing.assert_allclose(r["estimated_clock_ns"], 4.123)
    np.testing.assert_allclose(r["latency_best_ns"], 7 * 4.123)
    assert r["resources"] == {"BRAM_18K": 0, "DSP": 3, "FF": 2345, "LUT": 12345, "URAM": 0}
    assert r["available"]["LUT"] == 1728000


# ------------------------------------------------------------------------------------------------
# compiled models (slow: one g++ build each)
# ------------------------------------------------------------------------------------------------

def _synthetic_objects(n: int, seed: int) -> np.ndarray:
    """Raw pT-like (exponential, zero-padded) and eta/phi-like columns."""
    rng = np.random.default_rng(seed)
    pt = rng.exponential(30.0, size=(n, D // 2)) * (rng.random((n, D // 2)) < 0.7)
    ang = rng.uniform(-3.0, 3.0, size=(n, D - D // 2)) * (pt[:, : D - D // 2] > 0)
    return np.concatenate([pt, ang], axis=1)


def _small_encoder(x_norm: np.ndarray):
    """A QKeras encoder D -> 8 -> 4 (6-bit weights, 8-bit relu), trained briefly, seed fixed."""
    import tensorflow as tf
    from qkeras import QActivation, QDense, quantized_bits, quantized_relu
    from tensorflow import keras

    tf.keras.utils.set_random_seed(3)
    q = quantized_bits(6, 0, alpha=1)
    inp = keras.Input((D,))
    h = QDense(8, kernel_quantizer=q, bias_quantizer=q, name="q_dense_0")(inp)
    h = QActivation(quantized_relu(8, 3), name="q_relu_0")(h)
    mu = QDense(4, kernel_quantizer=q, bias_quantizer=q, name="q_mu")(h)
    enc = keras.Model(inp, mu)
    target = np.tanh(x_norm @ np.random.default_rng(4).normal(size=(D, 4)) / 2).astype(np.float32)
    enc.compile(keras.optimizers.Adam(0.01), "mse")
    enc.fit(x_norm, target, epochs=2, batch_size=256, verbose=0)
    return enc


@pytest.fixture(scope="module")
def trained():
    x = _synthetic_objects(4000, seed=1)
    mean, scale = x.mean(axis=0), x.std(axis=0)
    enc = _small_encoder(((x - mean) / scale).astype(np.float32))
    return x, mean, scale, enc


@pytest.fixture(scope="module")
def trigger(trained, tmp_path_factory):
    """The firmware trigger model with the threshold exactly at the score of one event."""
    from firmware.convert import compile_model
    from firmware.score_layer import trigger_graph
    from firmware.validate import keras_reference

    x, mean, scale, enc = trained
    cfg = FirmwareConfig()
    x_fixed = parse_fixed(cfg.precision.input).quantize(x)
    scores = keras_reference(trigger_graph(enc, mean, scale, 1.0, cfg.precision), x_fixed, 4096)[0]
    anchor = int(np.argsort(scores[:, 0])[len(scores) * 9 // 10])  # 90 % quantile event
    threshold = float(scores[anchor, 0])
    model = trigger_graph(enc, mean, scale, threshold, cfg.precision)
    hls_model = compile_model(model, cfg, tmp_path_factory.mktemp("trigger"))
    return types.SimpleNamespace(cfg=cfg, model=model, hls=hls_model, x_fixed=x_fixed,
                                 anchor=anchor, threshold=threshold)


@pytest.mark.slow
def test_trigger_csim_bit_exact(trigger, trained):
    from firmware.emit import TriggerInputs, _float_agreement
    from firmware.validate import validate_trigger

    score_t = parse_fixed(trigger.cfg.precision.score)
    res = validate_trigger(trigger.hls, trigger.model, trigger.x_fixed, score_t, 1000, progress=False)
    assert res.exact.n_events == 4000
    assert res.exact.decision_agreement == 1.0  # stated: identical decisions
    assert res.exact.max_score_diff_lsb == 0.0  # stated: 0 LSB (bit exact)
    assert len(res.disagreeing) == 0
    assert 300 <= res.bits_fw.sum() <= 500  # ~10 % above the 90 % quantile threshold
    x, mean, scale, enc = trained
    inputs = TriggerInputs(enc, mean, scale, [f"x{i}" for i in range(D)], trigger.threshold)
    vs_float = _float_agreement(inputs, x, res, score_t, 1000)
    assert vs_float.decision_agreement >= 0.97  # fixed-point inputs/normalisation cost little


@pytest.mark.slow
def test_trigger_bit_just_above_and_below_threshold(trigger):
    """Events whose fixed-point score is T-1, T and T+1 LSB (T = threshold units) -> 0, 0, 1."""
    from firmware.convert import predict
    from firmware.validate import keras_reference

    score_t = parse_fixed(trigger.cfg.precision.score)
    units = threshold_units(trigger.threshold, score_t)
    rng = np.random.default_rng(7)
    in_t = parse_fixed(trigger.cfg.precision.input)
    base = trigger.x_fixed[trigger.anchor]
    steps = rng.integers(-3, 4, size=(3000, D)) * in_t.lsb
    candidates = in_t.quantize(base + steps)
    found = score_t.units(keras_reference(trigger.model, candidates, 4096)[0][:, 0])
    picks = [int(np.flatnonzero(found == units + k)[0]) for k in (-1, 0, 1)]
    events = candidates[picks]
    score, bit = predict(trigger.hls, events, 16)
    np.testing.assert_array_equal(score_t.units(score[:, 0]), [units - 1, units, units + 1])
    np.testing.assert_array_equal(bit[:, 0], [0, 0, 1])


@pytest.mark.slow
def test_multi_input_conv1d_model_agrees(tmp_path):
    """Two inputs: QConv1D (kernel 1) -> relu -> flatten, concatenated with a vector -> QDense."""
    import tensorflow as tf
    from qkeras import QActivation, QConv1D, QDense, quantized_bits, quantized_relu
    from tensorflow import keras

    from firmware.convert import compile_model, output_types, predict
    from firmware.validate import keras_reference, max_output_diff_lsb

    tf.keras.utils.set_random_seed(5)
    q = quantized_bits(6, 0, alpha=1)
    cands = keras.Input((6, 3), name="candidates")
    glob = keras.Input((4,), name="globals")
    h = QConv1D(4, 1, kernel_quantizer=q, bias_quantizer=q, name="q_conv")(cands)
    h = QActivation(quantized_relu(8, 3), name="q_conv_relu")(h)
    h = keras.layers.Flatten(name="flat")(h)
    h = keras.layers.Concatenate(name="concat")([h, glob])
    h = QDense(5, kernel_quantizer=q, bias_quantizer=q, name="q_dense")(h)
    h = QActivation(quantized_relu(8, 3), name="q_dense_relu")(h)
    out = QDense(2, kernel_quantizer=q, bias_quantizer=q, name="q_out")(h)
    model = keras.Model([cands, glob], out)

    cfg = FirmwareConfig()
    cfg.precision.input = "ap_fixed<12,4,AP_RND_CONV,AP_SAT>"
    in_t = parse_fixed(cfg.precision.input)
    rng = np.random.default_rng(6)
    xs = [in_t.quantize(rng.normal(size=(2000, 6, 3))), in_t.quantize(rng.normal(size=(2000, 4)))]
    hls_model = compile_model(model, cfg, tmp_path / "conv")
    fw = predict(hls_model, [x.reshape(len(x), -1) for x in xs], 500)
    ref = keras_reference(model, xs, 500)
    diffs = max_output_diff_lsb(fw, ref, output_types(hls_model))
    assert diffs == [0.0]  # stated: 0 LSB of the exact ('auto') output type
    assert np.std(ref[0]) > 0.05  # a non-trivial output


@pytest.mark.slow
def test_cli_writes_validated_project(trained, tmp_path, monkeypatch):
    """`trigger-ad firmware` on a stand-in artifact: report, README, test bench, provenance."""
    import triggerad.data
    import triggerad.models
    from triggerad.cli import main

    x, mean, scale, enc = trained
    art = types.SimpleNamespace(
        path=tmp_path / "model", mean=mean, scale=scale, input_names=[f"x{i}" for i in range(D)],
        threshold={"score": "mu2_q", "value": 1.5}, data_info={}, quantized_encoder=lambda: enc,
        inputs=lambda batch: batch, kind="l1_vae",
    )
    monkeypatch.setattr(triggerad.models, "load_model", lambda path: art)
    monkeypatch.setattr(triggerad.data, "load_split", lambda info, name: x)
    cfg = tmp_path / "fw.yaml"
    cfg.write_text("validation:\n  testbench_events: 50\n  n_events: 0\n  sweep_widths: [12]\n")
    prj = tmp_path / "prj"
    assert main(["firmware", str(art.path), "--config", str(cfg), "--out", str(prj),
                 "--events", "2500", "--sweep"]) == 0
    report = json.loads((prj / "firmware_report.json").read_text())
    assert report["n_events"] == 2500
    assert report["decision_agreement"] == 1.0 and report["max_score_diff_lsb"] == 0.0
    assert report["synthesis_run"] is False
    (point,) = report["sweep"]
    assert point["width"] == 12 and point["n_events"] == 2500
    assert point["types"]["q_dense_0"].startswith("ap_fixed<12,")
    assert point["decision_agreement"] >= 0.9  # 12-bit results still mostly agree
    assert report["total_macs"] == D + D * 8 + 8 * 4 + 4  # normalisation + 2 Dense + squares
    assert report["threshold_units"] == 384  # 1.5 / (1/256)
    assert "No synthesis was run" in (prj / "firmware_report.md").read_text()
    assert 'vitis_hls -f build_prj.tcl' in (prj / "README.md").read_text()
    tb_in = np.loadtxt(prj / "tb_data" / "tb_input_features.dat")
    tb_out = np.loadtxt(prj / "tb_data" / "tb_output_predictions.dat")
    assert tb_in.shape == (50, D) and tb_out.shape == (50, 2)
    np.testing.assert_array_equal(tb_in, parse_fixed(FirmwareConfig().precision.input).quantize(x[:50]))
    assert (prj / "disagreements.csv").read_text() == "event_index,score_firmware,bit_firmware\n"
    assert (prj / "build_prj.tcl").is_file() and (prj / "provenance.json").is_file()
    _run_project_testbench(prj, tmp_path / "tb")


def _run_project_testbench(prj, workdir):
    """Build the project's own HLS test bench with g++, run it on tb_data, run check_csim.py."""
    import subprocess
    import sys

    workdir.mkdir()
    (workdir / "weights").symlink_to(prj / "firmware" / "weights")
    (workdir / "tb_data").symlink_to(prj / "tb_data")
    exe = workdir / "tb"
    subprocess.run(["g++", "-std=c++14", "-O1", f"-I{prj / 'firmware'}",
                    f"-I{prj / 'firmware' / 'ap_types'}", str(prj / "anomaly_trigger_test.cpp"),
                    str(prj / "firmware" / "anomaly_trigger.cpp"), "-o", str(exe)], check=True)
    subprocess.run([str(exe)], cwd=workdir, check=True, capture_output=True)
    check = subprocess.run([sys.executable, "check_csim.py"], cwd=prj, capture_output=True, text=True)
    assert check.returncode == 0 and "50 events, 0 differ" in check.stdout
