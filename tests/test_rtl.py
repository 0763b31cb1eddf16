"""Open RTL flow (firmware.rtl): Verilog of the fixed-point graph, bit-exact in Verilator, Yosys.

The simulation tests need the system packages verilator and yosys (installed in CI; README
Set-up); without them they are skipped with a message saying what to install.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from firmware_samples import needs_verilator, needs_yosys

from firmware.config import load_config
from firmware.rtl.generate import RTLError, generate
from firmware.rtl.netlist import csd, signed_width
from firmware.rtl.sim import compare, simulate
from firmware.rtl.synth import parse_stat, resources, run_yosys
from triggerad.errors import ConfigError
from triggerad.fixedpoint import (
    Activation,
    Dense,
    Fixed,
    FixedGraph,
    Input,
    ScaleShift,
    SumSquares,
    ThresholdBit,
)

FIRMWARE_YAML = Path(__file__).resolve().parents[1] / "configs" / "firmware.yaml"


def test_csd_digits_and_widths():
    for v in range(-300, 301):
        digits = csd(v)
        assert sum(d << k for k, d in digits) == v
        ks = [k for k, _ in digits]
        assert all(b - a >= 2 for a, b in zip(ks, ks[1:], strict=False))  # no adjacent digits
    assert csd(7) == [(0, -1), (3, 1)]
    assert [signed_width(lo, hi) for lo, hi in [(0, 0), (-1, 0), (0, 1), (-128, 127), (0, 255)]] \
        == [1, 1, 2, 8, 9]


def _hand_network() -> FixedGraph:
    x_t = Fixed(6, 3, True, "AP_RND_CONV", "AP_SAT")
    w_t, b_t = Fixed(4, 2), Fixed(4, 2)
    d1 = Dense("d1", "x", x_t, [[2, -3], [1, 4]], w_t, [1, -2], b_t, Fixed(16, 8), Fixed(12, 6))
    h_t = Fixed(4, 2, False, "AP_RND_CONV", "AP_SAT")
    a1 = Activation("a1", "d1", d1.result, "relu", h_t)
    d2 = Dense("d2", "a1", h_t, [[3], [-1]], w_t, [0], b_t, Fixed(16, 8), Fixed(8, 4))
    return FixedGraph([Input("x", x_t), d1, a1, d2], ["a1", "d2"])


# inputs -> (relu outputs, output) in raw units, computed by hand (see docs/firmware.md)
HAND = [((1.0, 0.5), (4, 0), 12),       # d1 = (0.875, -0.75): 3.5 -> 4 (tie to even)
        ((-2.0, 3.875), (1, 15), -12),  # 4.875 saturates to 3.75 (raw 15)
        ((0.125, 0.125), (1, 0), 3),
        ((0.5, 0.5), (2, 0), 6),        # 2.5 -> 2 (tie to even)
        ((0.25, 0.0), (2, 0), 6),       # 1.5 -> 2 (tie to even)
        ((10.0, -10.0), (5, 0), 15)]    # inputs saturate to (3.875, -4)


def test_hand_made_network_reference_equals_hand_computed_integers():
    graph = _hand_network()
    ref = graph.run(np.array([h[0] for h in HAND]))
    assert ref["a1"].tolist() == [list(h[1]) for h in HAND]
    assert ref["d2"][:, 0].tolist() == [h[2] for h in HAND]


CASTS = [  # (name, function, result type): every rounding and overflow mode, both signs
    ("trn_wrap", "linear", Fixed(6, 3, True, "AP_TRN", "AP_WRAP")),
    ("trn_zero_sat", "linear", Fixed(6, 3, True, "AP_TRN_ZERO", "AP_SAT")),
    ("rnd_sat_sym", "linear", Fixed(6, 3, True, "AP_RND", "AP_SAT_SYM")),
    ("conv_sat", "linear", Fixed(6, 3, True, "AP_RND_CONV", "AP_SAT")),
    ("rnd_zero_sat_zero", "linear", Fixed(6, 3, True, "AP_RND_ZERO", "AP_SAT_ZERO")),
    ("rnd_inf_wrap_u", "linear", Fixed(6, 3, False, "AP_RND_INF", "AP_WRAP")),
    ("rnd_min_inf_sat_u", "linear", Fixed(6, 3, False, "AP_RND_MIN_INF", "AP_SAT")),
    ("relu_conv_sat_u", "relu", Fixed(5, 2, False, "AP_RND_CONV", "AP_SAT")),
    ("relu_rnd_wrap", "relu", Fixed(5, 2, True, "AP_RND", "AP_WRAP")),
    ("relu_trn_wrap_u", "relu", Fixed(4, 3, False, "AP_TRN", "AP_WRAP")),
    ("widen", "linear", Fixed(24, 10)),
]


def _cast_network(seed: int = 3) -> FixedGraph:
    rng = np.random.default_rng(seed)
    x_t = Fixed(8, 3, True, "AP_RND_CONV", "AP_SAT")
    n_t = Fixed(10, 4, True, "AP_RND_CONV", "AP_SAT")
    norm = ScaleShift("norm", "x", x_t, rng.integers(-400, 400, 3), Fixed(10, 2),
                      rng.integers(-100, 100, 3), Fixed(8, 4), n_t)
    w = rng.integers(-32, 32, (3, 3))
    w[1, 2] = 0  # a pruned weight
    d = Dense("d", "norm", n_t, w, Fixed(6, 1), rng.integers(-128, 128, 3), Fixed(8, 3),
              Fixed(32, 16), Fixed(22, 12))
    casts = [Activation(name, "d", d.result, fn, t) for name, fn, t in CASTS]
    score = SumSquares("score", "d", d.result, 3, Fixed(12, 8, False, "AP_RND_CONV", "AP_SAT"))
    bit = ThresholdBit("trigger", "score", 700)
    layers = [Input("x", x_t), norm, d, *casts, score, bit]
    return FixedGraph(layers, ["norm", *[c.name for c in casts], "score", "trigger"])


LEVELS_2_LATENCY = 9  # the cast network with at most 2 logic levels per stage


def _cast_inputs(n: int, seed: int = 4) -> np.ndarray:
    """Raw inputs over the whole range plus the edges (min, max, 0, +-1 LSB), as floats."""
    rng = np.random.default_rng(seed)
    raw = rng.integers(-128, 128, (n, 3)).astype(np.float64)
    edges = np.array([[-128] * 3, [127] * 3, [0] * 3, [1, -1, 1], [-1, 1, -1], [127, -128, 0],
                      [-128, 127, 127]], dtype=np.float64)
    return np.concatenate([edges, raw]) / 32.0  # LSB of ap_fixed<8,3> is 1/32


@needs_verilator
@pytest.mark.parametrize("style,dense_stages,other_stages,max_levels",
                         [("shift_add", 2, 1, 0), ("dsp", 0, 0, 0), ("shift_add", 0, 0, 2)])
def test_every_cast_mode_bit_exact_against_fixed_point(style, dense_stages, other_stages,
                                                       max_levels, tmp_path):
    graph = _cast_network()
    x = _cast_inputs(1500)
    design = generate(graph, style=style, dense_stages=dense_stages, other_stages=other_stages,
                      max_levels=max_levels)
    (tmp_path / "trigger_rtl.v").write_text(design.verilog)
    sim = simulate(design, [graph.inputs[0].result.to_raw(x)], tmp_path)
    ref = graph.run(x, keep=("d",))
    rows = compare(ref, sim["outputs"])
    assert {k: r["max_diff_lsb"] for k, r in rows.items()} == {k: 0 for k in rows}
    if max_levels:  # registers across layers, at most max_levels logic levels per stage
        assert design.max_levels_per_stage == max_levels
        assert sim["latency_cycles"] == design.latency == LEVELS_2_LATENCY
    else:
        assert sim["latency_cycles"] == design.latency == 2 * other_stages + dense_stages
    # the inputs reach the boundaries: saturation, ties and both trigger decisions occur
    assert 0 < ref["trigger"].mean() < 1
    assert (ref["conv_sat"] == Fixed(6, 3).max_raw).any() and (ref["conv_sat"] == -32).any()
    assert ((ref["d"] % 2**7) == 2**6).sum() > 10  # exact ties where the 6-bit results round
    assert (design.multipliers > 0) == (style == "dsp")


def test_layers_without_rtl_are_named():
    x_t = Fixed(8, 3)
    narrow = Dense("d", "x", x_t, [[100], [100]], Fixed(8, 1), [0], Fixed(8, 1), Fixed(8, 4),
                   Fixed(8, 4))
    with pytest.raises(RTLError, match="'d'.*accumulator ap_fixed<8,4>"):
        generate(FixedGraph([Input("x", x_t), narrow], ["d"]))
    with pytest.raises(RTLError, match="multiplier style 'lut'"):
        generate(_hand_network(), style="lut")


def test_rtl_config_section_errors(tmp_path):
    cfg = load_config(FIRMWARE_YAML)
    assert (cfg.rtl.clock_mhz, cfg.rtl.multipliers, cfg.rtl.sim_events, cfg.rtl.max_levels) == (
        240, "shift_add", 10000, 6)
    bad = tmp_path / "fw.yaml"
    bad.write_text("rtl:\n  dense_stage: 3\n")
    with pytest.raises(ConfigError, match="dense_stages"):
        load_config(bad)
    bad.write_text("rtl:\n  multipliers: lut\n")
    with pytest.raises(ConfigError, match="shift_add"):
        load_config(bad)
    bad.write_text("rtl:\n  other_stages: -1\n")
    with pytest.raises(ConfigError, match="other_stages"):
        load_config(bad)


STAT_LOG = """
3. Printing statistics.

=== top ===

   Number of wires:                 12
   Number of cells:                 20
     CARRY8                          2
     DSP48E2                         1
     FDRE                            7
     LUT2                            4
     LUT6                            3
     RAMB18E2                        2
     SRLC32E                         1

End of script.
"""


def test_yosys_stat_parser_on_fixed_text():
    cells = parse_stat(STAT_LOG)
    assert cells["LUT6"] == 3 and cells["FDRE"] == 7
    r = resources(cells, "xcvu13p-flga2577-2-e", "xilinx")
    assert (r["LUT"], r["FF"], r["CARRY"], r["DSP"], r["BRAM"]) == (8, 7, 2, 1, 1.0)
    assert r["percent_of_part"]["DSP"] == pytest.approx(100 / 12288, abs=1e-3)


@needs_verilator
@needs_yosys
def test_firmware_rtl_step_on_hand_made_trigger(tmp_path, capsys):
    """`trigger-ad firmware --rtl`'s step: the RTL of a hand-made trigger (2-layer network, sum
    of squares, bit) equals the hand-computed integers on every event; the report holds the
    simulated latency and the resources parsed from the real Yosys log."""
    from triggerad.cli.firmware import _rtl

    net = _hand_network()
    d2 = net.layer("d2")
    score = SumSquares("score", "d2", d2.result, 1, Fixed(10, 2, False, "AP_RND_CONV", "AP_SAT"))
    graph = FixedGraph([*net.layers, score, ThresholdBit("trigger", "score", 100)],
                       ["a1", "d2", "score", "trigger"])
    cfg = load_config(FIRMWARE_YAML)
    x = np.concatenate([[h[0] for h in HAND], np.random.default_rng(0).normal(0, 2, (300, 2))])
    assert _rtl(graph, x, cfg, tmp_path)
    printed = capsys.readouterr().out
    # max_levels 6: the 2-layer network + square + bit in 2 stages of <= 6 logic levels
    assert "latency 2 clocks = 8.3 ns at 240 MHz" in printed and "max diff 0 LSB" in printed
    rtl = tmp_path / "rtl"
    s = json.loads((rtl / "rtl_report.json").read_text())
    assert s["bit_exact"] and s["n_events"] == 306 and s["latency_cycles"] == 2
    assert s["max_adder_levels_per_stage"] <= 6 and s["latency_ns_200mhz"] == 10.0
    assert s["fmax_estimate_mhz"] == pytest.approx(1000 / (0.5 + 6 * 0.6), abs=0.1)
    assert [p["name"] for p in s["outputs"]] == ["score", "trigger"]
    words = [line.split()[1] for line in (rtl / "tb_output.hex").read_text().splitlines()]
    out = generate(FixedGraph(graph.layers, ["score", "trigger"])).unpack_outputs(words[:6])
    assert out["score"][:, 0].tolist() == [h[2] ** 2 for h in HAND]  # d2^2: frac 4 -> 8
    assert out["trigger"][:, 0].tolist() == [int(h[2] ** 2 > 100) for h in HAND]
    log = (rtl / "yosys.log").read_text()  # a real Yosys log, parsed again
    r = resources(parse_stat(log), "xcvu13p", "xilinx")
    assert r["LUT"] == s["resources"]["LUT"] > 0 and r["DSP"] == 0 and r["FF"] > 0
    assert (rtl / "rtl_report.md").read_text().count("Yosys estimates") == 1
    generic = run_yosys(rtl, cfg.rtl.top, "trigger_rtl.v", flow="generic", part="xcvu13p")
    assert generic["LUT"] > 0 and generic["CARRY"] == 0


@needs_verilator
@pytest.mark.slow
def test_rtl_equals_hls4ml_csim_on_the_small_l1_encoder(trigger, tmp_path):
    """The quickstart-style trigger (raw objects -> normalisation -> quantized L1 encoder ->
    sum of mu^2 -> bit; conftest fixture ``trigger``, threshold at the 90 % quantile): the
    Verilator simulation of the generated RTL equals the hls4ml C simulation on every one of the
    12 000 events, 0 LSB on the score and identical trigger bits."""
    from firmware.convert import predict
    from firmware.score_layer import SCORE, TRIGGER

    reference = FixedGraph(trigger.reference.layers, [SCORE, TRIGGER])
    x = trigger.x_fixed
    score_fw, bit_fw = predict(trigger.hls, x, 4000)  # the C simulation
    rtl = load_config(FIRMWARE_YAML).rtl  # the defaults: shift_add, <= 6 levels per stage
    design = generate(reference, style=rtl.multipliers, max_levels=rtl.max_levels)
    (tmp_path / "trigger_rtl.v").write_text(design.verilog)
    sim = simulate(design, [reference.inputs[0].result.to_raw(x)], tmp_path)
    score_t = reference.layer(SCORE).result
    rtl_score, rtl_bit = sim["outputs"][SCORE][:, 0], sim["outputs"][TRIGGER][:, 0]
    assert sim["n_events"] == len(x) == 12_000
    np.testing.assert_array_equal(rtl_score, score_t.to_raw(score_fw[:, 0]))  # 0 LSB
    np.testing.assert_array_equal(rtl_bit, bit_fw[:, 0].astype(np.int64))
    assert 1000 <= rtl_bit.sum() <= 1400  # both decisions occur (~10 % above the threshold)
    assert design.multipliers == 0 and sim["latency_cycles"] == design.latency
