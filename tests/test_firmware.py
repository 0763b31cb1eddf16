"""Firmware: config, threshold conversion, hls4ml C simulation == the integer fixed-point graph."""

from __future__ import annotations

import json
import types

import numpy as np
import pytest
from firmware_samples import D, compiled_trigger, encoder

from firmware.config import FirmwareConfig, load_config, parse_fixed
from firmware.report import multiplier_kind, parse_csynth_xml
from firmware.score_layer import threshold_units
from triggerad.errors import ConfigError
from triggerad.fixedpoint import FixedPointConfig

# the fixtures `trained` and `trigger` (the small encoder and its compiled trigger): conftest.py


# ------------------------------------------------------------------------------------------------
# fast tests
# ------------------------------------------------------------------------------------------------

def test_unknown_key_names_nearest(tmp_path):
    path = tmp_path / "fw.yaml"
    path.write_text("hls:\n  clock_perod: 4.0\n")
    with pytest.raises(ConfigError, match=r"fw.yaml.hls: unknown key 'clock_perod'; did you mean 'clock_period'"):
        load_config(path)


def test_bad_type_string_and_types_that_belong_to_the_model(tmp_path):
    path = tmp_path / "fw.yaml"
    path.write_text("precision:\n  default: fixed16\n")
    with pytest.raises(ConfigError, match=r"precision.*expected an HLS type.*'fixed16'"):
        load_config(path)
    # the trigger's types are the model's (quantization.fixed_point), not the firmware config's
    path.write_text("precision:\n  input: ap_fixed<18,13>\n  score: ap_ufixed<18,10>\n")
    with pytest.raises(ConfigError, match=r"fw.yaml:precision: input, score now belong to the "
                                          r"model: set them under quantization.fixed_point"):
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


def test_threshold_conversion_keeps_the_offline_selection():
    t = parse_fixed("ap_ufixed<18,10,AP_RND_CONV,AP_SAT>")  # LSB 1/256
    assert threshold_units(12.0, t) == 3072
    assert threshold_units(12.0 + 0.4 / 256, t) == 3072
    assert threshold_units(12.0 + 0.6 / 256, t) == 3072  # floor: score > 12.0023 <=> raw > 3072
    assert threshold_units(5000.0, t) == 2**18 - 1  # above range: never fires


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

@pytest.mark.slow
def test_trigger_csim_bit_exact(trigger, trained):
    """12 000 events: C simulation == integer graph == the fast path's mu2_q, 0 LSB."""
    from anomaly.quantized import quantized_scores
    from firmware.convert import predict
    from firmware.emit import TriggerInputs, _float_agreement
    from firmware.validate import validate_trigger

    res = validate_trigger(trigger.hls, trigger.reference, trigger.x_fixed, 4000, progress=False)
    assert res.exact.n_events == 12_000
    assert res.exact.decision_agreement == 1.0  # stated: identical decisions
    assert res.exact.max_score_diff_lsb == 0.0  # stated: 0 LSB (bit exact)
    assert len(res.disagreeing) == 0
    assert 1000 <= res.bits_fw.sum() <= 1400  # ~10 % above the 90 % quantile threshold
    # the scores the fast path / evaluation / threshold use, from the raw (unrounded) inputs
    x, mean, scale, enc = trained
    fast = quantized_scores(trigger.graph, x, ["mu2_q"])["mu2_q"]
    np.testing.assert_array_equal(fast, res.scores_fw)
    np.testing.assert_array_equal(fast > trigger.threshold, res.bits_fw == 1)
    # hls4ml was given exactly the graph's types
    types_fw = {layer.name: {k: v.precision for k, v in layer.types.items()}
                for layer in trigger.hls.get_layers()}
    from firmware.convert import fixed_from_hls

    for name, wanted in trigger.reference.hls_precisions().items():
        for key, text in wanted.items():
            assert fixed_from_hls(types_fw[name][f"{key}_t"]).hls() == text, (name, key)
    inputs = TriggerInputs(enc, trigger.graph, mean, scale, [f"x{i}" for i in range(D)],
                           trigger.threshold)
    vs_float = _float_agreement(inputs, x, res, trigger.reference.layer("score").result, 1000)
    assert vs_float.decision_agreement >= 0.97  # fixed-point inputs/normalisation cost little
    score, bit = predict(trigger.hls, trigger.x_fixed[:3], 3)  # any batch size, same numbers
    np.testing.assert_array_equal(score[:, 0], res.scores_fw[:3])


def _four_squares(n: int, largest: int) -> list[int]:
    """Four integers in [0, largest] whose squares sum to ``n`` (Lagrange; first found, largest first)."""
    import math

    for a in range(min(largest, math.isqrt(n)), -1, -1):
        for b in range(min(a, math.isqrt(n - a * a)), -1, -1):
            for c in range(min(b, math.isqrt(n - a * a - b * b)), -1, -1):
                rest = n - a * a - b * b - c * c
                d = math.isqrt(rest)
                if d * d == rest and d <= c:
                    return [a, b, c, d]
    raise ValueError(f"{n} is not a sum of four squares <= {largest}^2")


@pytest.mark.slow
def test_trigger_bit_just_above_and_below_threshold(tmp_path):
    """Inputs built to have integer scores T-25 ... T+24 LSB (T = threshold units): bit = score > T.

    The encoder passes x_i / 4 to mu_i (weights 1/2, zero biases), the normalisation is the
    identity, so for x_i = m_i / 4 the score is sum (m_i / 16)^2 = sum m_i^2 LSB exactly; every
    integer is a sum of four squares, solved for directly.
    """
    from firmware.convert import predict

    enc = encoder()
    w0, b0, w1, b1 = (np.zeros_like(w) for w in enc.get_weights())
    w0[np.arange(4), np.arange(4)] = 0.5
    w1[np.arange(4), np.arange(4)] = 0.5
    enc.set_weights([w0, b0, w1, b1])
    units = 5000
    threshold = (units + 0.5) / 256  # half-way between grid scores, as threshold_at_rate sets it
    graph, reference, _, hls_model = compiled_trigger(enc, np.zeros(D), np.ones(D), threshold,
                                                       tmp_path / "edge")
    assert reference.layer("trigger").units == units
    wanted = np.arange(units - 25, units + 25)
    events = np.zeros((len(wanted), D))
    events[:, :4] = [np.array(_four_squares(int(n), 63)) / 4 for n in wanted]
    raw = reference.run(events, keep=("score", "trigger"))
    np.testing.assert_array_equal(raw["score"], wanted)  # the integer path: T-25 ... T+24 LSB
    np.testing.assert_array_equal(raw["trigger"], wanted > units)
    score_t = reference.layer("score").result
    np.testing.assert_array_equal(score_t.from_raw(raw["score"]) > threshold, wanted > units)
    score, bit = predict(hls_model, events, 16)  # the C simulation
    np.testing.assert_array_equal(score_t.to_raw(score[:, 0]), wanted)
    np.testing.assert_array_equal(bit[:, 0], wanted > units)
    edge = np.searchsorted(wanted, units)
    np.testing.assert_array_equal(bit[edge - 1:edge + 2, 0], [0, 0, 1])  # T-1, T, T+1


@pytest.mark.slow
def test_pointwise_conv_pooling_dense_integer_graph_equals_csim(tmp_path):
    """QConv1D (kernel 1) -> relu -> GlobalAveragePooling1D -> QDense -> relu -> QDense, with
    narrow saturating/wrapping accumulators and an odd number of pooled steps: the integer graph
    equals the C simulation on every output bit, and hls4ml got the graph's pooling types (its
    own default for global pooling, ap_fixed<16,6>, would overflow here)."""
    import tensorflow as tf
    from qkeras import QActivation, QConv1D, QDense, quantized_bits, quantized_relu
    from tensorflow import keras

    from firmware.convert import compile_model, fixed_from_hls, predict
    from triggerad.fixedpoint import from_keras

    tf.keras.utils.set_random_seed(5)
    q = quantized_bits(6, 2, alpha=1)
    inp = keras.Input((7, 3), name="candidates")
    h = QConv1D(4, 1, kernel_quantizer=q, bias_quantizer=q, name="q_conv")(inp)
    h = QActivation(quantized_relu(8, 4), name="q_conv_relu")(h)
    h = keras.layers.GlobalAveragePooling1D(name="pool")(h)
    h = QDense(5, kernel_quantizer=q, bias_quantizer=q, name="q_dense")(h)
    h = QActivation(quantized_relu(6, 3), name="q_dense_relu")(h)
    out = QDense(2, kernel_quantizer=q, bias_quantizer=q, name="q_out")(h)
    model = keras.Model(inp, out)
    fp = FixedPointConfig(input="ap_fixed<10,4,AP_RND_CONV,AP_SAT>", layers={
        "q_conv": {"accum": "ap_fixed<12,5,AP_RND,AP_SAT>", "result": "ap_fixed<10,5,AP_TRN,AP_SAT>"},
        "pool": {"accum": "ap_fixed<12,4,AP_TRN,AP_SAT>", "result": "ap_fixed<10,3,AP_RND_CONV,AP_WRAP>"},
        "q_dense": {"accum": "ap_fixed<11,4,AP_TRN_ZERO,AP_WRAP>"},
    })
    graph = from_keras(model, fp)
    assert not graph.layer("q_conv").exact_accum and not graph.layer("pool").exact_accum
    assert graph.layer("q_out").exact_accum  # auto: exact
    rng = np.random.default_rng(6)
    x = rng.normal(0, 2.5, size=(3000, 7, 3))
    hls_model = compile_model(model, FirmwareConfig(), tmp_path / "conv", graph.hls_precisions())
    pool = next(la for la in hls_model.get_layers() if la.name == "pool")
    assert fixed_from_hls(pool.types["accum_t"].precision).hls() == "ap_fixed<12,4,AP_TRN,AP_SAT>"
    fw = predict(hls_model, x.reshape(len(x), -1), 500)[0]
    raw = graph.run(x, keep=("pool",))
    out_t = graph.layer("q_out").result
    np.testing.assert_array_equal(out_t.to_raw(fw), raw["q_out"])  # 0 LSB
    pooled = graph.value("pool", raw["pool"])
    assert np.std(graph.value("q_out", raw["q_out"])) > 0.05 and pooled.max() > 1  # non-trivial


@pytest.mark.slow
def test_multi_input_conv1d_model_agrees(tmp_path):
    """Generic conversion (no fixed-point graph): two inputs, QConv1D (kernel 1) -> relu ->
    flatten, concatenated with a vector -> QDense; only the inputs' types are given."""
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

    in_type = "ap_fixed<12,4,AP_RND_CONV,AP_SAT>"
    in_t = parse_fixed(in_type)
    rng = np.random.default_rng(6)
    xs = [in_t.quantize(rng.normal(size=(2000, 6, 3))), in_t.quantize(rng.normal(size=(2000, 4)))]
    hls_model = compile_model(model, FirmwareConfig(), tmp_path / "conv",
                              {"candidates": {"result": in_type}, "globals": {"result": in_type}})
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
    from anomaly.quantized import score_graph
    from triggerad.cli import main

    x, mean, scale, enc = trained
    graph = score_graph(enc, FixedPointConfig(), mean, scale)
    art = types.SimpleNamespace(
        path=tmp_path / "model", mean=mean, scale=scale, input_names=[f"x{i}" for i in range(D)],
        threshold={"score": "mu2_q", "value": 1.5, "fixed_point_digest": graph.digest()},
        data_info={}, quantized_encoder=lambda: enc, inputs=lambda batch: batch,
        fixed_graph=lambda: graph, kind="l1_vae",
    )
    monkeypatch.setattr(triggerad.models, "load_model", lambda path: art)
    monkeypatch.setattr(triggerad.data, "load_split", lambda info, name, **kw: x)
    cfg = tmp_path / "fw.yaml"
    cfg.write_text("validation:\n  testbench_events: 50\n  n_events: 0\n  sweep_widths: [12]\n")
    prj = tmp_path / "prj"
    assert main(["firmware", str(art.path), "--config", str(cfg), "--out", str(prj),
                 "--events", "2500", "--sweep"]) == 0
    report = json.loads((prj / "firmware_report.json").read_text())
    assert report["n_events"] == 2500
    assert report["decision_agreement"] == 1.0 and report["max_score_diff_lsb"] == 0.0
    assert report["synthesis_run"] is False
    assert report["fixed_point_digest"] == graph.digest()
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
    np.testing.assert_array_equal(tb_in, parse_fixed(FixedPointConfig().input).quantize(x[:50]))
    assert (prj / "disagreements.csv").read_text() == "event_index,score_firmware,bit_firmware\n"
    assert (prj / "build_prj.tcl").is_file() and (prj / "provenance.json").is_file()
    _run_project_testbench(prj, tmp_path / "tb")


def test_threshold_on_the_float_score_is_refused(tmp_path):
    """A cut set on the float mu2 is not applied to the firmware's mu2_q (another rate)."""
    from firmware.kinds import ANOMALY_ENCODER

    trigger_inputs = ANOMALY_ENCODER.trigger_inputs

    art = types.SimpleNamespace(path=tmp_path / "model", threshold={
        "score": "mu2", "value": 4.2, "target_rate_hz": 1000.0, "input_rate_hz": 4e7})
    with pytest.raises(ConfigError, match=r"threshold.json: the cut is on 'mu2', but the firmware "
                       r"computes 'mu2_q'.*`trigger-ad threshold .*model --rate 1000 --input-rate "
                       r"4e\+07 --score mu2_q`"):
        trigger_inputs(art)
    stale = types.SimpleNamespace(
        path=tmp_path / "model", fixed_graph=lambda: types.SimpleNamespace(digest=lambda: "b" * 64),
        threshold={"score": "mu2_q", "value": 4.2, "fpr": 1e-3, "fixed_point_digest": "a" * 64})
    with pytest.raises(ConfigError, match=r"set with other fixed-point types.*--fpr 0.001 --score"):
        trigger_inputs(stale)


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
