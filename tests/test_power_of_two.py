"""Power-of-two normalisation scales (``quantization.fixed_point.power_of_two_scales``): exact in
the fitted normalisation, checked when the fixed-point graph is built, a shift-only normaliser in
the RTL, and the RTL bit-exact with them."""

from __future__ import annotations

import numpy as np
import pytest
from firmware_samples import needs_verilator

from anomaly.model import QuantizationConfig, fit_normalisation
from firmware.rtl.generate import generate
from firmware.rtl.netlist import csd
from triggerad.config import build
from triggerad.errors import ConfigError
from triggerad.fixedpoint import FixedGraph, FixedPointConfig, FixedPointError
from triggerad.fixedpoint.keras import normalisation_layers


def _objects(n: int = 2000, seed: int = 0) -> np.ndarray:
    """(n, 57) L1-like inputs: 19 slots of (pT, eta, phi), pT exponential, 70 % occupied."""
    rng = np.random.default_rng(seed)
    pt = rng.exponential(30.0, (n, 19)) * (rng.random((n, 19)) < 0.7)
    ang = rng.uniform(-3.0, 3.0, (n, 19, 2)) * (pt > 0)[..., None]
    return np.concatenate([pt[..., None], ang], axis=2).reshape(n, 57)


@pytest.mark.parametrize("kind", ["l1_vae", "hlf_vae"])
def test_fitted_scales_are_exact_powers_of_two_nearest_in_log2(kind):
    x = _objects()
    mean, scale = fit_normalisation(kind, x)
    mean2, scale2 = fit_normalisation(kind, x, power_of_two=True)
    np.testing.assert_array_equal(mean2, mean)
    mantissa, _ = np.frexp(scale2.astype(np.float64))
    assert (mantissa == 0.5).all() and scale2.dtype == np.float32
    # nearest power of two in log2: within a factor sqrt(2) of the fitted scale
    ratio = np.log2(scale2 / scale)
    assert np.abs(ratio).max() <= 0.5 + 1e-6
    # RMS (l1_vae) or standard deviation (hlf_vae) of pT ~ 28 - 41 -> 32, of eta/phi ~ 1.5 -> 2
    assert scale2[:6].tolist() == [32.0, 2.0, 2.0] * 2


@pytest.mark.parametrize("name", ["train-l1.yaml", "train-l1-fast.yaml", "train-hlf-fast.yaml"])
def test_shipped_training_configs(name):
    from pathlib import Path

    from anomaly.train import TrainConfig
    from triggerad.config import load

    fp = load(TrainConfig, Path(__file__).resolve().parents[1] / "configs" / name
              ).quantization.fixed_point
    l1 = name.startswith("train-l1")
    assert fp.power_of_two_scales is l1  # the L1 trigger: shifts, narrow normalised inputs and mu
    assert fp.normalised == ("ap_fixed<14,7,AP_RND_CONV,AP_SAT>" if l1 else
                             "ap_fixed<16,7,AP_RND_CONV,AP_SAT>")
    assert fp.layers == ({"q_mu": {"result": "ap_fixed<12,6,AP_RND_CONV,AP_SAT>"}} if l1 else {})


def test_power_of_two_config_key_errors():
    q = build(QuantizationConfig, {"fixed_point": {"power_of_two_scales": True}}, "t.yaml:q")
    assert q.fixed_point.power_of_two_scales is True
    assert FixedPointConfig().power_of_two_scales is False
    with pytest.raises(ConfigError, match="power_of_two_scales"):
        build(QuantizationConfig, {"fixed_point": {"power_of_two_scales": "yes"}}, "t.yaml:q")
    with pytest.raises(ConfigError, match="did you mean 'power_of_two_scales'"):
        build(QuantizationConfig, {"fixed_point": {"power_of_two_scale": True}}, "t.yaml:q")
    with pytest.raises(FixedPointError, match="true or false, found 1"):
        FixedPointConfig(power_of_two_scales=1)
    # a stored scale that is not a power of two is refused when the graph is built
    cfg = FixedPointConfig(power_of_two_scales=True)
    with pytest.raises(FixedPointError, match=r"entry 1 is 3\.0, not an exact power of two \(1 of"):
        normalisation_layers([0.0, 0.0, 0.0], [0.5, 3.0, 64.0], cfg, "x", "norm")
    _, norm = normalisation_layers([0.0, 0.0, 0.0], [0.5, 4.0, 64.0], cfg, "x", "norm")
    # 2, 1/4 and 1/64 (12 significant bits for the smallest): one CSD digit each, a shift
    assert norm.scale_type.frac == 17 and norm.scale.tolist() == [2**18, 2**15, 2**11]
    assert [len(csd(int(s))) for s in norm.scale] == [1, 1, 1]


def _normaliser(mean, scale, pow2: bool) -> FixedGraph:
    layers = normalisation_layers(mean, scale, FixedPointConfig(power_of_two_scales=pow2), "x",
                                  "norm")
    return FixedGraph(layers, ["norm"])


def test_power_of_two_normaliser_is_shifts_only_in_the_netlist():
    x = _objects()
    for kind, offset_adders, fitted in (("l1_vae", 0, 275), ("hlf_vae", 57, 347)):
        mean, scale = fit_normalisation(kind, x)
        _, scale2 = fit_normalisation(kind, x, power_of_two=True)
        adders = {}
        for name, s, pow2 in (("fitted", scale, False), ("pow2", scale2, True)):
            graph = _normaliser(mean, s, pow2)
            assert np.count_nonzero(graph.layer("norm").bias) == offset_adders
            design = generate(graph, max_levels=0, other_stages=1)
            (layer,) = [la for la in design.layers if la["kind"] == "ScaleShift"]
            adders[name] = layer["adders"]
        # 12-bit constants take CSD shift-adds; powers of two none (one per non-zero offset)
        assert adders == {"fitted": fitted, "pow2": offset_adders}


@needs_verilator
def test_rtl_bit_exact_with_power_of_two_scales_and_narrow_mu(trained, tmp_path):
    """The small trigger (conftest ``trained``: 10 inputs) with power-of-two scales (and the
    fitted means: one offset adder per input) and mu rounded to ap_fixed<10,5> before the
    squares: the Verilator simulation equals the fixed-point reference, 0 LSB."""
    from anomaly.quantized import quantized_scores, score_graph
    from firmware.rtl.sim import compare, simulate
    from firmware.score_layer import SCORE, TRIGGER, trigger_reference

    x, _, _, enc = trained
    mean, scale = fit_normalisation("hlf_vae", x, power_of_two=True)
    cfg = FixedPointConfig(power_of_two_scales=True,
                           layers={"q_mu": {"result": "ap_fixed<10,5,AP_RND_CONV,AP_SAT>"}})
    graph = score_graph(enc, cfg, mean, scale)
    scores = quantized_scores(graph, x, ["mu2_q"])["mu2_q"]
    reference = FixedGraph(trigger_reference(graph, float(np.quantile(scores, 0.9))).layers,
                           [SCORE, TRIGGER])
    xs = x[:3000]
    design = generate(reference, max_levels=6)
    norm = next(la for la in design.layers if la["kind"] == "ScaleShift")
    assert norm["adders"] == 10
    (tmp_path / "trigger_rtl.v").write_text(design.verilog)
    sim = simulate(design, [reference.inputs[0].result.to_raw(xs)], tmp_path)
    rows = compare(reference.run(xs), sim["outputs"])
    assert {k: r["max_diff_lsb"] for k, r in rows.items()} == {SCORE: 0, TRIGGER: 0}
    assert sim["n_events"] == 3000 and 200 < sim["outputs"][TRIGGER].sum() < 400


def test_firmware_estimate_counts_power_of_two_normalisation_products_as_shifts():
    from types import SimpleNamespace

    from firmware.report import MULTIPLICATIONS

    def layer(scale):
        w = SimpleNamespace(data=np.asarray(scale), type=SimpleNamespace(
            precision=SimpleNamespace(width=19)))
        return SimpleNamespace(get_weights=lambda name: w)

    count = MULTIPLICATIONS["BatchNormalization"]
    assert count(layer([1 / 32, 0.5, 1.0, 2.0, 1 / 1.7, 1 / 35.2])) == (6, 2, 19, True)
    assert count(layer([1 / 32, 0.5, 1.0])) == (3, 0, 19, True)


def test_threshold_before_the_cast_matches_the_cast_score():
    """The trigger bit compares the score before its cast (in parallel with the rounding): the
    first pre-cast value above the threshold, checked against every value of a range."""
    from firmware.rtl.layers import _first_above
    from firmware.rtl.netlist import Sig
    from triggerad.fixedpoint import Fixed

    t = Fixed(8, 4, False, "AP_RND_CONV", "AP_SAT")  # LSB 1/16, max 15.9375 (raw 255)
    x = Sig("s", 0, 5000)  # at 6 fractional bits: 2 bits rounded, saturating above raw 255
    raw = t.cast(np.arange(5001.0), 6)
    for units in (0, 7, 100, 254):
        first = _first_above(x, 6, t, units)
        assert first == int(np.flatnonzero(raw > units)[0])
    assert _first_above(x, 6, t, 255) is None  # the saturated score never exceeds its maximum
    assert _first_above(x, 6, t, 7) == 30  # 30/4 = 7.5 rounds to 8 (tie to even), 29/4 to 7
