"""Open RTL flow of the L1 LLP tagger's graph: pointwise Conv1D over the candidates, global
average pooling (sum, truncating division by the steps in ``accum_t``, cast), Dense, signed
tag bit -- bit-exact with the fixed-point graph in Verilator.

The simulation tests need the system package verilator (README Set-up); without it they are
skipped with a message saying what to install.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from firmware_samples import needs_verilator

from firmware.config import load_config
from firmware.rtl.generate import RTLError, generate
from firmware.rtl.netlist import Netlist, Term, reciprocal
from firmware.rtl.sim import compare, simulate
from triggerad.fixedpoint import (
    Activation,
    Dense,
    Fixed,
    FixedGraph,
    GlobalAveragePooling1D,
    Input,
    ThresholdBit,
)
from triggerad.fixedpoint.keras import mac_accumulator, pooling_accumulator

FIRMWARE_L1_YAML = Path(__file__).resolve().parents[1] / "configs" / "firmware-l1.yaml"


def test_reciprocal_divides_exactly_over_the_range():
    for n, hi, scale in [(10, 10_230, 16), (10, 163_680, 1), (3, 4_000, 4), (7, 999, 1),
                         (16, 5_000, 16), (1, 50, 1)]:
        m, s = reciprocal(n, hi, scale)
        y = np.arange(hi + 1, dtype=np.int64)
        np.testing.assert_array_equal((y * m) >> s, (y * scale) // n)
        assert s == 0 or not all((v * m) >> (s - 1) == v * scale // n for v in range(hi + 1)) \
            or m % 2 == 0  # the smallest shift (or one bit of m to spare)
    assert reciprocal(16, 5_000, 16) == (1, 0)  # a power of two: no multiplication
    with pytest.raises(ValueError, match="n, scale > 0"):
        reciprocal(0, 10)


def test_saturated_ranges_and_constant_terms_keep_exact_bounds():
    """A range entirely beyond a saturating type is that limit (a fully pruned filter with a
    negative bias, after a ReLU); a negated shifted constant keeps its sign."""
    net, u8 = Netlist(), Fixed(8, 8, False, "AP_TRN", "AP_SAT")
    below = net.cast(net.wire("a", -100, -50, 0), 0, u8)
    above = net.cast(net.wire("b", 300, 400, 0), 0, u8)
    assert (below.lo, below.hi, above.lo, above.hi) == (0, 0, 255, 255)
    c = net.value(Term(net.const(5, 0), 2, True), 0)
    assert c.const and c.lo == c.hi == -20


def _hand_tagger() -> FixedGraph:
    """3 candidates x 2 features -> pointwise conv (2 filters) -> ReLU -> average pooling ->
    Dense(1) -> signed tag bit, with small integer weights (computed by hand below)."""
    x_t = Fixed(6, 3)  # LSB 1/8
    w_t = Fixed(4, 4)  # integer weights
    conv = Dense("conv", "x", x_t, [[1, -1], [2, 1]], w_t, [0, 1], w_t, Fixed(16, 8),
                 Fixed(12, 9), pointwise=True)  # result: frac 3, exact
    h_t = Fixed(5, 3, False, "AP_RND_CONV", "AP_SAT")  # LSB 1/4, max 7.75
    relu = Activation("relu", "conv", conv.result, "relu", h_t)
    pool = GlobalAveragePooling1D("pool", "relu", h_t, 3, pooling_accumulator(h_t, 3), h_t)
    score = Dense("score", "pool", h_t, [[1], [-2]], w_t, [0], w_t, Fixed(16, 8), Fixed(12, 10))
    bit = ThresholdBit("trigger", "score", 0)
    return FixedGraph([Input("x", x_t), conv, relu, pool, score, bit],
                      ["relu", "pool", "score", "trigger"])


# candidates (3 x 2) -> ReLU outputs (raw, LSB 1/4), pooled (raw, LSB 1/4), logit (raw), bit.
# Event 1: conv = (2, .5), (-1.75, -.25), (6, 1) -> ReLU (8, 2), (0, 0), (24, 4); sums 32, 6 ->
#   accum_t (LSB 1/16) 128, 24 -> /3 truncated 42, 8 -> LSB 1/4: 10.5 -> 10 (tie to even), 2;
#   logit 10 - 2 * 2 = 6 > 0.
# Event 2: conv = (.5, .5), (.5, .5), (.25, 1.125) -> ReLU (2, 2), (2, 2), (1, 4) (4.5 -> 4);
#   sums 5, 8 -> 20, 32 -> 6, 10 -> 1.5 -> 2, 2.5 -> 2; logit 2 - 4 = -2 (bit 0, signed).
# Event 3: conv = (11.625, 1) everywhere -> ReLU saturates: (31, 4) x 3; sums 93, 12 -> 372,
#   48 -> 124, 16 -> 31, 4; logit 31 - 8 = 23.
HAND = [
    ([[1, .5], [.25, -1], [2, 2]], [8, 2, 0, 0, 24, 4], [10, 2], 6, 1),
    ([[.5, 0], [.5, 0], [0, .125]], [2, 2, 2, 2, 1, 4], [2, 2], -2, 0),
    ([[3.875, 3.875]] * 3, [31, 4] * 3, [31, 4], 23, 1),
]


def test_hand_made_tagger_reference_equals_hand_computed_integers():
    graph = _hand_tagger()
    ref = graph.run(np.array([h[0] for h in HAND]))
    assert ref["relu"].reshape(3, -1).tolist() == [h[1] for h in HAND]
    assert ref["pool"].tolist() == [h[2] for h in HAND]
    assert ref["score"][:, 0].tolist() == [h[3] for h in HAND]
    assert ref["trigger"][:, 0].tolist() == [h[4] for h in HAND]


@needs_verilator
@pytest.mark.parametrize("max_levels", [6, 0])
def test_hand_made_tagger_rtl_equals_hand_computed_integers(max_levels, tmp_path):
    graph = _hand_tagger()
    design = generate(graph, max_levels=max_levels)
    assert [(p.name, p.size) for p in design.inputs] == [("x", 6)]  # 3 candidates x 2 features
    (tmp_path / "trigger_rtl.v").write_text(design.verilog)
    x = np.array([h[0] for h in HAND])
    sim = simulate(design, [graph.inputs[0].result.to_raw(x)], tmp_path)
    out = sim["outputs"]
    assert out["relu"].tolist() == [h[1] for h in HAND]
    assert out["pool"].tolist() == [h[2] for h in HAND]
    assert out["score"][:, 0].tolist() == [h[3] for h in HAND]
    assert out["trigger"][:, 0].tolist() == [h[4] for h in HAND]
    assert sim["latency_cycles"] == design.latency >= 1 and design.multipliers == 0


def _random_l1_tagger(seed: int = 5, candidates: int = 10, features: int = 14,
                      filters: int = 6) -> FixedGraph:
    """An L1-tagger-shaped graph with random 50 %-pruned 8-bit weights and the L1 tagger's types
    (configs/tagger-l1-fast.yaml: ap_fixed<10,4> inputs, ap_fixed<8,2> weights,
    ap_ufixed<10,4,AP_RND_CONV,AP_SAT> activations and pooled means, exact accumulators), plus
    a signed pooling branch (the mean of the first convolution before its ReLU; its first
    filter fully pruned, a constant negative channel)."""
    rng = np.random.default_rng(seed)
    x_t = Fixed(10, 4, True, "AP_RND_CONV", "AP_SAT")
    w_t = Fixed(8, 2)
    a_t = Fixed(10, 4, False, "AP_RND_CONV", "AP_SAT")

    def dense(name, source, t_in, n_in, n_out, pointwise):
        w = rng.integers(-128, 128, (n_in, n_out)) * (rng.random((n_in, n_out)) < 0.5)
        b = rng.integers(-128, 128, n_out)
        if name == "conv0":  # a fully pruned filter: a constant (negative) channel
            w[:, 0], b[0] = 0, -77
        exact = mac_accumulator(t_in, w_t, w_t, n_in)
        return Dense(name, source, t_in, w, w_t, b, w_t, exact, exact, pointwise=pointwise)

    layers = [Input("candidates", x_t)]
    source, t = "candidates", x_t
    for i in range(2):
        conv = dense(f"conv{i}", source, t, features if i == 0 else filters, filters, True)
        layers += [conv, Activation(f"conv{i}_relu", conv.name, conv.result, "relu", a_t)]
        source, t = f"conv{i}_relu", a_t
    layers.append(GlobalAveragePooling1D("pool", source, a_t, candidates,
                                         pooling_accumulator(a_t, candidates), a_t))
    d0 = dense("dense0", "pool", a_t, filters, 8, False)
    score = dense("score", "dense0_relu", a_t, 8, 1, False)
    conv0 = layers[1].result
    signed_pool = GlobalAveragePooling1D("pool_signed", "conv0", conv0, candidates,
                                         pooling_accumulator(conv0, candidates),
                                         Fixed(12, 6, True, "AP_RND", "AP_SAT"))
    layers += [d0, Activation("dense0_relu", "dense0", d0.result, "relu", a_t), score,
               signed_pool]
    return FixedGraph(layers, ["pool", "pool_signed", "score"])


def _with_bit(graph: FixedGraph, x: np.ndarray) -> FixedGraph:
    """``graph`` plus the signed tag bit at the median logit of ``x`` (both decisions occur)."""
    units = int(np.median(graph.run(x)["score"]))
    return graph.extend(ThresholdBit("trigger", "score", units))


def _candidates(n: int, seed: int = 6, candidates: int = 10, features: int = 14) -> np.ndarray:
    """L1-like inputs: leading candidates filled, the rest zero; a few at the saturation edges."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 2.5, (n, candidates, features))
    x[rng.random((n, candidates)) < np.linspace(0, 0.8, candidates)] = 0.0  # missing ones
    edges = [7.984375, -8, 0, 0.015625, -0.015625]  # max, min, 0, +-1 LSB
    for k, v in enumerate(edges):
        x[k] = v
    x[len(edges), :, ::2], x[len(edges), :, 1::2] = edges[0], edges[1]
    return x


@needs_verilator
def test_rtl_equals_fixed_point_on_random_l1_shaped_tagger(tmp_path):
    """0 LSB against FixedGraph on every output, both pipelinings' defaults (max_levels 6), the
    tag bit taking both values, signed and unsigned pooling exercised."""
    x = _candidates(1000)
    graph = _with_bit(_random_l1_tagger(seed=6, filters=4), x)  # a negative median logit
    design = generate(graph, max_levels=6, input_sizes={"candidates": 140})
    (tmp_path / "trigger_rtl.v").write_text(design.verilog)
    sim = simulate(design, [graph.inputs[0].result.to_raw(x)], tmp_path)
    ref = graph.run(x)
    rows = compare(ref, sim["outputs"])
    assert {k: r["max_diff_lsb"] for k, r in rows.items()} == {k: 0 for k in rows}
    assert 0.3 < ref["trigger"].mean() < 0.7
    assert (ref["pool_signed"] < 0).any() and (ref["pool_signed"] > 0).any()
    assert (ref["pool_signed"][:, 0] == ref["pool_signed"][0, 0]).all() and ref["pool_signed"][0, 0] < 0
    assert (ref["pool"] > 0).mean() > 0.3
    assert design.multipliers == 0 and design.max_levels_per_stage <= 6
    assert sim["latency_cycles"] == design.latency
    assert generate(graph).inputs[0].size == 140  # positions from the pooling's steps


def test_pooling_without_exact_accumulator_is_named():
    h_t = Fixed(8, 4, False)
    pool = GlobalAveragePooling1D("pool", "x", h_t, 4, Fixed(8, 4, False), h_t)
    with pytest.raises(RTLError, match="'pool'.*accumulator ap_ufixed<8,4>"):
        generate(FixedGraph([Input("x", h_t), pool], ["pool"]), input_sizes={"x": 8})


@needs_verilator
def test_firmware_rtl_step_on_l1_tagger_graph(tmp_path, capsys):
    """`trigger-ad firmware L1MODEL --rtl`'s step on an L1-tagger-shaped trigger (score + bit;
    no Yosys here: tests/test_rtl.py runs it): the report is bit-exact, with the latency and the
    C-simulation comparison when C-simulation outputs are given."""
    from triggerad.cli.firmware import _rtl

    x = _candidates(400, seed=9, candidates=4, features=5)
    graph = _with_bit(_random_l1_tagger(seed=8, candidates=4, features=5, filters=3), x)
    cfg = load_config(FIRMWARE_L1_YAML)
    cfg.rtl.synthesis = "none"
    ref = graph.run(x)
    csim = {"score": ref["score"], "trigger": ref["trigger"]}  # stands in for the C simulation
    assert _rtl(graph, x, cfg, tmp_path, csim=csim)
    printed = capsys.readouterr().out
    assert "max diff 0 LSB" in printed and "vs the hls4ml C simulation" in printed
    s = json.loads((tmp_path / "rtl" / "rtl_report.json").read_text())
    assert s["bit_exact"] and s["n_events"] == 400 and s["resources"] is None
    assert s["vs_csim"] == {"score": {"max_diff_lsb": 0, "events_differing": 0},
                            "trigger": {"max_diff_lsb": 0, "events_differing": 0}}
    assert [p["name"] for p in s["outputs"]] == ["score", "trigger"]
    assert s["inputs"] == [{"name": "candidates", "type": "ap_fixed<10,4,AP_RND_CONV,AP_SAT>",
                            "size": 20, "offset": 0}]


def test_load_data_reads_jets_for_tagger_kinds(tmp_path):
    """`trigger-ad firmware L1MODEL --data FILES` (and the RTL benchmark) read jet files through
    the kind's `load_data` hook: all jets of every file (globs expanded), in order."""
    from tagger_samples import write_sample

    from tagger.l1.artifact import L1_LLP_TAGGER
    from triggerad.errors import InputFileError

    folder = write_sample(tmp_path, n_signal=30, n_background=20, n_domain=5)
    jets = L1_LLP_TAGGER.load_data(None, [str(folder / "background.h5"), str(folder / "s*.h5")])
    assert len(jets) == 20 + 5 + 30  # background, then shifted_sim and signal (sorted glob)
    with pytest.raises(InputFileError, match="no jet files match"):
        L1_LLP_TAGGER.load_data(None, [str(folder / "nothing*.h5")])
