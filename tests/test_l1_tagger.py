"""The quantized L1 LLP tagger: features, config errors, training folder, firmware (C sim == integer
graph, 0 LSB; the tag bit flips exactly at the working point; signed thresholds)."""

from __future__ import annotations

import json
import types

import numpy as np
import pytest

from tagger.l1.features import FEATURES, N_CANDIDATES, l1_inputs
from triggerad.errors import ConfigError
from triggerad.fixedpoint import FixedPointConfig, FixedPointError, parse_fixed, threshold_units
from triggerad.jets import CHARGED_FEATURES, NEUTRAL_FEATURES, JetBatch

PT_FRAC = FEATURES.index("pt_frac")


# ------------------------------------------------------------------------------------------------
# features, thresholds, configs (fast)
# ------------------------------------------------------------------------------------------------

def test_leading_candidates_merged_by_pt_and_zero_padded():
    b = JetBatch.empty(2, {"charged": 3, "neutral": 2, "sv": 1})
    b.globals[:, 0] = 100.0
    ch, ne = CHARGED_FEATURES.index("pt_frac"), NEUTRAL_FEATURES.index("pt_frac")
    b.charged[0, :2, ch] = [0.1, 0.3]          # charged candidates (ranked by IP, not pT)
    b.charged[0, :2, CHARGED_FEATURES.index("sip2d_val")] = [0.5, -0.01]
    b.neutral[0, :1, ne] = [0.2]
    b.neutral[0, 0, NEUTRAL_FEATURES.index("is_gamma")] = 1.0
    x = l1_inputs(b, n_candidates=4)
    assert x.shape == (2, 4, len(FEATURES)) and x.dtype == np.float32
    np.testing.assert_allclose(x[0, :, PT_FRAC], [0.3, 0.2, 0.1, 0.0], rtol=1e-6)
    np.testing.assert_array_equal(x[0, :3, :3], [[1, 0, 0], [0, 1, 0], [1, 0, 0]])  # one-hot ID
    np.testing.assert_allclose(x[0, [0, 2], FEATURES.index("d0")], [-np.log10(2), np.log10(51)],
                               rtol=1e-5)
    assert not x[0, 3].any() and not x[1].any()  # padding and an empty jet: exactly zero
    assert l1_inputs(b).shape == (2, N_CANDIDATES, len(FEATURES))


def test_signed_threshold_units_keep_the_offline_selection():
    t = parse_fixed("ap_fixed<12,5>")  # LSB 1/128, range [-16, 16)
    raw = np.arange(t.min_raw, t.max_raw + 1)
    scores = t.from_raw(raw)
    for value in [-3.0, -3.0 + 0.3 / 128, -0.001, 0.0, 2.5, -16.0, -16.5, 15.99, 40.0]:
        units = threshold_units(value, t)
        np.testing.assert_array_equal(raw > units, scores > value, err_msg=str(value))
    assert threshold_units(-100.0, t) == t.min_raw - 1  # below the range: always tags
    with pytest.raises(FixedPointError, match="threshold -0.5: expected a finite value >= 0"):
        threshold_units(-0.5, parse_fixed("ap_ufixed<8,4>"))
    with pytest.raises(FixedPointError, match="threshold inf: expected a finite value for the "
                                              "signed"):
        threshold_units(float("inf"), t)


def test_config_errors_name_the_key(tmp_path):
    from tagger.l1.train import is_l1_config, load_config

    good = load_config("configs/tagger-l1-fast.yaml")
    assert good.model.conv_filters == [10, 10] and good.pruning.enabled
    assert is_l1_config("configs/tagger-l1.yaml") and not is_l1_config("configs/tagger-train.yaml")
    cases = {
        "model:\n  conv_filter: [4]\n": r"model: unknown key 'conv_filter'; did you mean 'conv_filters'",
        "model:\n  weight_bits: 1\n": r"weight_bits must be in \[2, 16\]",
        "pruning:\n  end_epoch: 40\n": r"pruning.end_epoch \(40\) must be smaller than training.epochs",
        "fixed_point:\n  input: fixed12\n": r"expected an HLS type.*'fixed12'",
        "training:\n  working_point_mistag: 2\n": r"working_point_mistag in \(0, 1\)",
    }
    for i, (text, message) in enumerate(cases.items()):
        path = tmp_path / f"c{i}.yaml"
        path.write_text("kind: l1_llp_tagger\n" + text)
        with pytest.raises(ConfigError, match=message):
            load_config(path)


def test_cli_refuses_no_da_for_an_l1_config(tmp_path, capsys):
    from triggerad.cli import main

    assert main(["tagger", "train", "configs/tagger-l1-fast.yaml", "--data", str(tmp_path),
                 "--out", str(tmp_path / "m"), "--no-da"]) == 2
    assert "--no-da: configs/tagger-l1-fast.yaml is an L1 tagger config" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


# ------------------------------------------------------------------------------------------------
# the model: QKeras network with hand-set weights, its integer graph and its firmware
# ------------------------------------------------------------------------------------------------

def _hand_model(seed: int = 3):
    """The L1 network with random weights on the weight grid, except one path that carries
    ``pt_frac`` of the candidates alone: conv0[pt_frac -> 0] = conv1[0 -> 0] = dense0[0 -> 0] =
    score[0] = 1, the path's source feeds nothing else, biases 0 except the logit's -1. For
    inputs holding only ``pt_frac`` every other channel is 0 and the logit is
    ``relu_q(trunc(sum(pt_frac) / 10)) - 1``; other inputs reach the logit through every layer."""
    from tagger.l1.model import L1ModelConfig, build_l1_tagger

    cfg = L1ModelConfig()
    net = build_l1_tagger(cfg)
    rng = np.random.default_rng(seed)
    for layer in net.layers:
        if not hasattr(layer, "kernel"):
            continue
        k = rng.integers(-40, 40, layer.kernel.shape) / 64.0  # on the ap_fixed<8,2> grid
        k[rng.random(k.shape) < 0.5] = 0.0                     # pruned-looking
        b = np.zeros(layer.bias.shape)
        kk = k[0] if k.ndim == 3 else k
        src = PT_FRAC if layer.name == "conv0" else 0
        kk[src, :] = 0.0  # the path's source feeds the path only ...
        kk[src, 0] = 1.0  # ... which other channels feed too (they are 0 on the path's jets)
        if layer.name == "score":
            b[:] = -1.0
        layer.set_weights([k, b])
    return cfg, net


@pytest.mark.slow
def test_firmware_agrees_bit_for_bit_and_the_tag_bit_flips_at_the_working_point(tmp_path):
    """One HLS project (build_trigger_project with the L1 kind): on random candidates and on
    constructed jets exactly at, one step above and one below a negative working point, the C
    simulation equals the integer graph (0 LSB, every decision), the bit is 0, 1, 0 there, and
    hls4ml got the graph's pooling and logit types."""
    import tensorflow as tf

    from firmware.config import FirmwareConfig
    from firmware.emit import TriggerInputs, build_trigger_project
    from firmware.kinds import L1_TAGGER
    from triggerad.fixedpoint import from_keras

    tf.keras.utils.set_random_seed(1)
    cfg, net = _hand_model()
    fp = FixedPointConfig(input="ap_fixed<12,4,AP_RND_CONV,AP_SAT>")
    graph = from_keras(net, fp)
    assert [la.kind for la in graph.layers][1:4] == ["PointwiseConv1D", "Activation",
                                                     "PointwiseConv1D"]
    cut = 5 / 64 - 1.0  # a working point on the logit grid, negative (signed logit)
    # jets holding only pt_frac on their first candidate: logit = relu_q(v / 10) - 1
    on_path = np.zeros((3, N_CANDIDATES, len(FEATURES)))
    on_path[:, 0, PT_FRAC] = [10 * 5 / 64, 10 * 6 / 64, 10 * 4 / 64]  # at, above, below the cut
    rng = np.random.default_rng(7)
    x = rng.normal(0, 1.5, size=(1500, N_CANDIDATES, len(FEATURES)))
    x *= (rng.random((1500, N_CANDIDATES, 1)) < 0.8)                  # padded candidates
    x_all = np.concatenate([on_path, x])
    inputs = TriggerInputs(net, graph, None, None, list(FEATURES), cut, "logit_q")
    reference = L1_TAGGER.reference(inputs)
    raw = reference.run(x_all, keep=("score", "trigger"))
    score_t = reference.layer("score").result
    units = reference.layer("trigger").units
    assert score_t.signed and units == threshold_units(cut, score_t) < 0
    np.testing.assert_array_equal(raw["score"][:3, 0], [units, units + 2**score_t.frac // 64,
                                                     units - 2**score_t.frac // 64])
    np.testing.assert_array_equal(raw["trigger"][:3, 0], [0, 1, 0])
    assert 0 < raw["trigger"][3:].mean() < 1  # both decisions among the random jets, and a
    assert np.std(score_t.from_raw(raw["score"][3:])) > 0.3  # logit that depends on them

    fw = FirmwareConfig()
    fw.hls.project_name = "l1_llp_tagger"
    fw.validation.testbench_events = 20
    prj = tmp_path / "prj"
    summary = build_trigger_project(inputs, x_all, fw, prj, kind=L1_TAGGER)
    assert summary["n_events"] == len(x_all)
    assert summary["decision_agreement"] == 1.0 and summary["max_score_diff_lsb"] == 0.0
    assert summary["score_name"] == "logit_q" and summary["threshold_units"] == units
    layers = {r["name"]: r for r in summary["layers"]}
    assert layers["pool"]["result_type"] == graph.layer("pool").result.hls()
    assert layers["conv0"]["multiplications"] == 10 * 14 * 10
    assert summary["bit_widths"]["nonzero_macs"] < summary["bit_widths"]["total_macs"]
    expected = np.loadtxt(prj / "tb_data" / "tb_output_predictions.dat")
    np.testing.assert_array_equal(expected[:3, 1], [0, 1, 0])
    tb_in = np.loadtxt(prj / "tb_data" / "tb_input_features.dat")
    assert tb_in.shape == (20, N_CANDIDATES * len(FEATURES))
    np.testing.assert_array_equal(tb_in[:3].reshape(3, N_CANDIDATES, -1), on_path)
    readme = (prj / "README.md").read_text()
    assert "element\n`c * 14 + k` is feature `k` of candidate `c`" in readme
    assert "| 3 | pt_frac |" in readme and "tag bit" in readme


@pytest.mark.slow
def test_training_writes_a_firmware_ready_folder(tmp_path):
    """`trigger-ad tagger train` with an L1 config: folder contract, working point on logit_q,
    the L1 firmware kind accepts it, the tagger report's P(LLP) is monotonic in logit_q."""
    from firmware.kinds import L1_TAGGER, firmware_kind
    from tagger.l1.artifact import L1_LLP_TAGGER
    from tests.tagger_samples import write_sample
    from triggerad.cli import main
    from triggerad.models import load_model, register_kind

    register_kind(L1_LLP_TAGGER)
    data = write_sample(tmp_path / "data", 600, 600, 10)
    cfg = tmp_path / "l1.yaml"
    cfg.write_text("kind: l1_llp_tagger\nmodel:\n  conv_filters: [4, 4]\n  dense: [4]\n"
                   "pruning:\n  begin_epoch: 0\n  end_epoch: 1\n  sparsity: 0.5\n"
                   "training:\n  epochs: 3\n")
    assert main(["tagger", "train", str(cfg), "--data", str(data), "--out",
                 str(tmp_path / "m")]) == 0
    model = load_model(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "artifact.json").read_text())
    assert meta["kind"] == "l1_llp_tagger" and meta["format_version"] == 1
    assert meta["input_schema"]["candidates"]["shape"] == [N_CANDIDATES, len(FEATURES)]
    assert meta["fixed_point_digest"] == model.fixed_graph().digest()
    assert (tmp_path / "m" / "provenance.json").is_file()
    assert 0.45 <= meta["metrics"]["weight_sparsity"] <= 0.55  # pruned (0.5), even on 2 steps/epoch
    thr = model.threshold
    assert thr["score"] == "logit_q" and thr["fpr"] == 1e-3
    assert firmware_kind(model) is L1_TAGGER
    inputs = L1_TAGGER.trigger_inputs(model)
    assert inputs.threshold == thr["value"] and inputs.mean is None
    jets = L1_LLP_TAGGER.load_split(model, "val")
    scores = model.score(jets)
    p = model.predict(jets)[:, 0]
    order = np.argsort(scores["logit_q"], kind="stable")
    assert np.all(np.diff(p[order]) >= 0)
    stale = types.SimpleNamespace(path=model.path, threshold={**thr, "score": "p_llp"})
    with pytest.raises(ConfigError, match=r"the cut is on 'p_llp', but the firmware computes "
                                          r"'logit_q'"):
        L1_TAGGER.trigger_inputs(stale)
